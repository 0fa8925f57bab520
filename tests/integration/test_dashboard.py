"""GET /dashboard: the operator page (http/dashboard.html) that credod serves without
authentication under a strict Content-Security-Policy, and that renders /admin/cluster,
/admin/actors and /metrics with the admin token it takes from the URL fragment.

The page is rendered by headless Chromium (`--dump-dom` after a virtual-time budget that lets its
fetches and a few 2 s refreshes run) and the dumped DOM is parsed with html.parser. Tests that need
Chromium skip without it; the 3-node test also needs the backends (like test_cluster.py)."""

import html.parser
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
import urllib.parse

from backend_harness import skip_without_backends
from cluster_harness import (CONVERGE_S, cluster_secret, cluster_view, ring_version,
                             start_cluster, supervisors, wait_converged)
from credo_harness import CredoServer, raw_request

CSP = {
    "default-src": {"'none'"},
    "script-src": {"'self'"},
    "style-src": {"'self'"},
    "connect-src": {"'self'"},
    "img-src": {"'self'", "data:"},
    "frame-ancestors": {"'none'"},
    "base-uri": {"'none'"},
    "form-action": {"'none'"},
}
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or \
    shutil.which("chromium-browser")
CHROMIUM_TIMEOUT_S = 60
VIRTUAL_TIME_MS = 8000   # the page refreshes every 2 s: several rounds of fetches
DUMP_ATTEMPTS = 3        # fresh renders until the page shows what it is waiting for
INTEGER_RE = re.compile(r"^[0-9]+$")


def report(message: str) -> None:
    print(f"[dashboard] {message}", flush=True)


# --------------------------------------------------------------------------------------------
# The dumped DOM
# --------------------------------------------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class Element:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: "Element | None"):
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list["Element | str"] = []

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    @property
    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text for c in self.children)

    def iter(self):
        yield self
        for c in self.children:
            if isinstance(c, Element):
                yield from c.iter()

    def find_all(self, tag: str, cls: str | None = None) -> list["Element"]:
        return [e for e in self.iter() if e.tag == tag and (cls is None or cls in e.classes)]

    def by_id(self, ident: str) -> "Element | None":
        return next((e for e in self.iter() if e.attrs.get("id") == ident), None)

    def cells(self) -> list[str]:
        return [td.text.strip() for td in self.children if isinstance(td, Element) and
                td.tag == "td"]


class DomParser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {}, None)
        self.current = self.root

    def handle_starttag(self, tag, attrs):
        element = Element(tag, dict(attrs), self.current)
        self.current.children.append(element)
        if tag not in VOID:
            self.current = element

    def handle_startendtag(self, tag, attrs):
        self.current.children.append(Element(tag, dict(attrs), self.current))

    def handle_endtag(self, tag):
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data):
        self.current.children.append(data)


def parse_dom(text: str) -> Element:
    parser = DomParser()
    parser.feed(text)
    parser.close()
    return parser.root


class Page:
    """What a render of the dashboard shows."""

    def __init__(self, dom_text: str):
        self.source = dom_text
        self.dom = parse_dom(dom_text)

    def element(self, ident: str) -> Element:
        element = self.dom.by_id(ident)
        if element is None:
            raise AssertionError(f"no #{ident} in the rendered page:\n{self.source[:3000]}")
        return element

    def text(self, ident: str) -> str:
        return self.element(ident).text.strip()

    def rows(self, table: str, cls: str) -> list[Element]:
        return self.element(table).find_all("tr", cls)

    def members(self) -> dict[str, list[str]]:
        return {tr.attrs.get("data-node"): tr.cells() for tr in self.rows("members", "member")}

    def actors(self) -> dict[str, list[str]]:
        return {tr.attrs.get("data-kind"): tr.cells() for tr in self.rows("actors", "actor")}

    def error(self) -> str | None:
        """The error banner's text when it is shown, else None."""
        banner = self.element("error")
        if "hidden" in banner.attrs or not banner.text.strip():
            return None
        return banner.text.strip()


# --------------------------------------------------------------------------------------------
# Headless Chromium
# --------------------------------------------------------------------------------------------

def dashboard_url(server: CredoServer, token: str) -> str:
    return f"http://{server.host}:{server.port}/dashboard#token=" + \
        urllib.parse.quote(token, safe="")


def render(test: unittest.TestCase, url: str) -> Page:
    """One headless Chromium run with a fresh profile; returns the DOM after the virtual-time
    budget. Chromium's process group is killed whatever happens."""
    if not CHROMIUM:
        test.skipTest("chromium is not installed")
    profile = tempfile.mkdtemp(prefix="credo-chromium-")
    test.addCleanup(shutil.rmtree, profile, True)
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-quic", "--disable-extensions", "--disable-dev-shm-usage",
           f"--user-data-dir={profile}", f"--virtual-time-budget={VIRTUAL_TIME_MS}",
           "--dump-dom", url]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDO")}
    env.update(HOME=profile, XDG_CONFIG_HOME=profile, XDG_CACHE_HOME=profile)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, start_new_session=True)
    started = time.monotonic()
    try:
        out, err = proc.communicate(timeout=CHROMIUM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        test.fail(f"chromium did not finish within {CHROMIUM_TIMEOUT_S} s\n"
                  f"{err.decode('utf-8', 'replace')[-2000:]}")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # renderer or zygote left behind
        except ProcessLookupError:
            pass
    elapsed = time.monotonic() - started
    text = out.decode("utf-8", "replace")
    if proc.returncode != 0 or "<body" not in text:
        test.fail(f"chromium exited {proc.returncode} after {elapsed:.1f} s without a DOM\n"
                  f"{err.decode('utf-8', 'replace')[-2000:]}")
    report(f"chromium rendered {url.split('#')[0]} in {elapsed:.1f} s")
    return Page(text)


def render_until(test: unittest.TestCase, url: str, done) -> Page:
    """Renders until `done(page)` holds, at most DUMP_ATTEMPTS times; returns the last page."""
    page = None
    for _ in range(DUMP_ATTEMPTS):
        page = render(test, url)
        if done(page):
            break
    return page


def parse_csp(value: str) -> dict[str, set[str]]:
    out = {}
    for directive in value.split(";"):
        parts = directive.split()
        if parts:
            out[parts[0].lower()] = set(parts[1:])
    return out


# --------------------------------------------------------------------------------------------
# One node, no backends
# --------------------------------------------------------------------------------------------

class DashboardTest(unittest.TestCase):
    """The page itself, from a single in-memory node."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = CredoServer()
        cls.addClassCleanup(cls.server.stop)
        cls.server.start()

    def get(self, path: str, headers: dict | None = None):
        return raw_request(self.server.host, self.server.port, "GET", path, None, headers or {})

    def test_the_page_is_served_without_authentication_under_the_csp(self):
        resp = self.get("/dashboard")
        self.assertEqual(resp.status, 200, resp.describe())
        self.assertEqual(resp.header("content-type", "").replace(" ", "").lower(),
                         "text/html;charset=utf-8", resp.describe())
        csp = resp.header("content-security-policy")
        self.assertTrue(csp, f"no Content-Security-Policy header: {resp.headers}")
        self.assertEqual(parse_csp(csp), CSP, f"Content-Security-Policy: {csp}")
        body = resp.text
        self.assertTrue(body.lstrip().lower().startswith("<!doctype html>"), body[:200])
        self.assertNotIn(self.server.admin_token, body, "the page embeds the admin token")
        for ident in ("members", "actors", "outbox-depth", "updated", "error"):
            self.assertRegex(body, rf'id="{ident}"', f"the page has #{ident}")
        # Self-contained: nothing the CSP would block is referenced.
        self.assertNotRegex(body, r'<(script|link|img|iframe)[^>]+(src|href)="(https?:)?//',
                            "the page loads nothing from elsewhere")
        # No inline script or style (the CSP allows none): they are files of the node.
        self.assertRegex(body, r'<script src="/dashboard\.js"></script>')
        self.assertRegex(body, r'<link rel="stylesheet" href="/dashboard\.css">')
        self.assertNotRegex(body, r"<script>|<script [^>]*>[^<]|<style|\sstyle=|\son[a-z]+=",
                            "inline script or style")
        for path, kind in (("/dashboard.js", "text/javascript"), ("/dashboard.css", "text/css")):
            asset = self.get(path)
            self.assertEqual(asset.status, 200, asset.describe())
            self.assertEqual(asset.header("content-type", "").replace(" ", "").lower(),
                             f"{kind};charset=utf-8", asset.describe())
            self.assertEqual(parse_csp(asset.header("content-security-policy", "")), CSP)
            self.assertEqual(asset.header("x-content-type-options"), "nosniff")
            self.assertNotIn(self.server.admin_token, asset.text)

    def test_the_page_ignores_a_query_string_and_credentials(self):
        resp = self.get("/dashboard?token=x", {"Authorization": "Bearer wrong"})
        self.assertEqual(resp.status, 200, resp.describe())
        self.assertNotIn("wrong", resp.text)
        self.assertEqual(self.get("/dashboard").body, resp.body, "the page is served verbatim")

    def test_a_single_node_renders(self):
        view = cluster_view_of(self.server)
        page = render_until(self, dashboard_url(self.server, self.server.admin_token),
                            lambda p: p.members())
        self.assertIsNone(page.error(), "no error banner")
        self.assertEqual(set(page.members()), {view["node"]}, page.source[:3000])
        self.assertEqual(page.text("node"), view["node"])
        self.assertEqual(page.text("ring-version"), str(view["ring_version"]))
        self.assertNotIn(self.server.admin_token, page.source, "the token is in the DOM")


def cluster_view_of(server: CredoServer) -> dict:
    resp = raw_request(server.host, server.port, "GET", "/admin/cluster", None,
                       {"Authorization": f"Bearer {server.admin_token}"})
    if resp.status != 200 or not isinstance(resp.json, dict):
        raise AssertionError(f"/admin/cluster: {resp.describe()}")
    return resp.json


# --------------------------------------------------------------------------------------------
# Three nodes on the backends
# --------------------------------------------------------------------------------------------

@skip_without_backends
class ClusterDashboardTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.nodes = start_cluster(cls.addClassCleanup, cluster_secret())

    def setUp(self):
        if not CHROMIUM:
            self.skipTest("chromium is not installed")
        self.views = wait_converged(self.nodes, CONVERGE_S)

    def test_the_dashboard_shows_the_cluster(self):
        node = self.nodes[1]  # a node that joined through a seed
        expected = {n.node_id: n for n in self.nodes}
        page = render_until(self, dashboard_url(node.server, node.server.admin_token),
                            lambda p: len(p.members()) == len(expected) and p.actors())
        self.assertIsNone(page.error(), "no error banner")

        members = page.members()
        self.assertEqual(len(page.rows("members", "member")), 3, page.source[:4000])
        self.assertEqual(set(members), set(expected), "one row per member")
        for node_id, cells in members.items():
            peer = expected[node_id]
            self.assertEqual(len(cells), 4, f"node, address, status, last seen: {cells}")
            self.assertEqual(cells[0], node_id)
            self.assertIn(cells[1], (peer.cluster, peer.http), f"address of {node_id}")
            self.assertEqual(cells[2], "up", f"status of {node_id}")
            self.assertTrue(cells[3] and cells[3] != "\u2014", f"last seen of {node_id}")

        # The ring version shown is /admin/cluster's (read before and after the render, in case
        # the ring moved meanwhile).
        versions = {ring_version(self.views[node.node_id]), ring_version(cluster_view(node))}
        self.assertIn(int(page.text("ring-version")), versions)
        self.assertEqual(page.text("node"), node.node_id)

        kinds = set(supervisors(node))
        actors = page.actors()
        self.assertEqual(set(actors), kinds, "one row per supervisor kind of /admin/actors")
        for kind, cells in actors.items():
            self.assertEqual(len(cells), 6, f"{kind}: {cells}")
            self.assertEqual(cells[0], kind)
            for value in cells[1:5]:
                self.assertRegex(value, INTEGER_RE, f"{kind} counters: {cells}")

        depth = page.text("outbox-depth")
        self.assertRegex(depth, INTEGER_RE, "#outbox-depth holds a number (credo_audit_outbox_depth)")
        self.assertTrue(page.text("updated"), "#updated shows when the page last refreshed")
        self.assertNotIn(node.server.admin_token, page.source, "the token is in the DOM")
        report(f"{node.node_id}: {len(members)} members, ring {page.text('ring-version')}, "
               f"actors {sorted(actors)}, outbox depth {depth}")

    def test_a_wrong_token_shows_the_error_banner(self):
        node = self.nodes[0]
        wrong = "wrong-" + cluster_secret()[:16]
        page = render_until(self, dashboard_url(node.server, wrong), lambda p: p.error())
        error = page.error()
        self.assertIsNotNone(error, f"no error banner:\n{page.source[:3000]}")
        self.assertIn("admin token rejected", error)
        self.assertEqual(page.rows("members", "member"), [], "no member rows without a token")
        self.assertEqual(page.rows("actors", "actor"), [], "no actor rows without a token")
        self.assertNotIn(wrong, page.source, "the token is in the DOM")
        self.assertNotIn(node.server.admin_token, page.source)


if __name__ == "__main__":
    unittest.main()
