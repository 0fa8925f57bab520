"""Cluster mode: three credod nodes joined over plain (--cluster-insecure) links on the durable
stores that scripts/test.sh starts. Membership and the ring version every node agrees on, requests
for an entity served through any node, session entities spread over the owners, revocations
broadcast to every node, a node killed -9 or frozen with SIGSTOP (its keys go to the survivors and
it rejoins), a node with another cluster secret kept out, and the configuration that cluster mode
refuses.

Timing goals (revocation seen everywhere within 100 ms, a frozen node dropped within about 2 s) are
not asserted: the tests poll with generous bounds and print what they observed."""

import concurrent.futures
import dataclasses
import re
import secrets
import signal
import subprocess
import threading
import time
import unittest
from typing import Callable, Iterable

from backend_harness import poll, skip_without_backends, store_env
from credo_harness import (CredoClient, CredoServer, Response, credod_path, parse_redirect,
                           parse_rfc3339, pkce_pair, server_env, unique_id)


# Nodes of one deployment share the issuer (tokens name it), whatever port each listens on.
ISSUER = "http://credo.test"
SUPERVISOR_KINDS = {"session", "consent", "rate_limit", "audit_publisher"}
ADDRESS_RE = re.compile(r"^127\.0\.0\.1:([1-9][0-9]*)$")
# Syntactically valid stores that refuse connections: enough for configuration checks, which must
# not depend on the backends (an unreachable store at start is not fatal).
UNREACHABLE_DATABASE = "postgres://credo:pw@127.0.0.1:1/credo"
UNREACHABLE_REDIS = "redis://127.0.0.1:1"

# Bounds of the polls. They are limits on waiting, not the goals (see the module docstring).
CONVERGE_S = 15.0        # a fresh node joins and every member agrees
REVOCATION_S = 2.0       # goal 100 ms
KILL_DETECTION_S = 5.0   # connection loss
PAUSE_DETECTION_S = 8.0  # heartbeat timeout, goal ~1-2 s
REJOIN_S = 10.0
RETRY_S = 5.0            # 503 temporarily_unavailable while ownership moves


def cluster_secret() -> str:
    return secrets.token_hex(32)


def report(message: str) -> None:
    print(f"[cluster] {message}", flush=True)


# --------------------------------------------------------------------------------------------
# Nodes
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Node:
    node_id: str
    server: CredoServer
    api: CredoClient
    cluster: str  # HOST:PORT of the cluster listener, from the "listening" log line

    @property
    def http(self) -> str:
        return f"{self.server.host}:{self.server.port}"


def listening_record(server: CredoServer) -> dict:
    for record in server.log_records():
        if record.get("msg") == "listening":
            return record
    raise AssertionError(f"no 'listening' line in credod's log\n{server.output_tail()}")


def cluster_address(server: CredoServer) -> str:
    record = listening_record(server)
    address = record.get("cluster")
    if not isinstance(address, str) or not ADDRESS_RE.match(address):
        raise AssertionError(f"the 'listening' line carries no usable cluster address "
                             f"(want 127.0.0.1:PORT with the port actually bound): {record}")
    return address


def cluster_flags(node_id: str, seeds: Iterable[str] = ()) -> list[str]:
    flags = ["--issuer", ISSUER, "--node-id", node_id, "--cluster", "127.0.0.1:0",
             "--cluster-insecure"]
    seeds = list(seeds)
    if seeds:
        flags += ["--seeds", ",".join(seeds)]
    return flags


def cluster_env(secret: str | None, **stores) -> dict[str, str]:
    env = store_env(**stores)
    if secret is not None:
        env["CREDO_CLUSTER_SECRET"] = secret
    return env


def ready_status(api: CredoClient) -> tuple[int, dict]:
    resp = api.get("/health/ready", check=False)  # 503 here is the readiness shape, not an error
    return resp.status, (resp.json or {}).get("checks", {})


def start_node(add_cleanup: Callable, secret: str, node_id: str | None = None,
               seeds: Iterable[str] = (), ready: bool = True) -> Node:
    """Starts one cluster node; `add_cleanup` (a test's addCleanup or a class's addClassCleanup)
    stops it."""
    node_id = node_id or unique_id("node")
    server = CredoServer(cluster_flags(node_id, seeds), extra_env=cluster_env(secret))
    add_cleanup(server.stop)
    server.start()
    node = Node(node_id, server, CredoClient(server), cluster_address(server))
    if ready:
        poll(lambda: ready_status(node.api)[0] == 200, 20,
             what=f"/health/ready of {node_id} to answer 200")
    return node


def start_cluster(add_cleanup: Callable, secret: str, size: int = 3) -> list[Node]:
    """The first node has no seeds; the others join through it."""
    first = start_node(add_cleanup, secret)
    nodes = [first] + [start_node(add_cleanup, secret, seeds=[first.cluster])
                       for _ in range(size - 1)]
    wait_converged(nodes, CONVERGE_S)
    return nodes


def resume(server: CredoServer) -> None:
    """SIGCONT for a node a test froze; harmless when it runs or has exited."""
    if server.running:
        server.proc.send_signal(signal.SIGCONT)


def kill(node: Node) -> None:
    node.server.proc.send_signal(signal.SIGKILL)
    node.server.proc.wait(timeout=10)
    node.server.stop()  # reaps the output threads


# --------------------------------------------------------------------------------------------
# Views: /admin/cluster and /admin/actors
# --------------------------------------------------------------------------------------------

def cluster_view(node: Node) -> dict:
    resp = node.api.admin("GET", "/admin/cluster")
    if resp.status != 200 or not isinstance(resp.json, dict) or \
            not isinstance(resp.json.get("members"), list):
        raise AssertionError(f"/admin/cluster of {node.node_id}: {resp.describe()}")
    return resp.json


def member_names(view: dict) -> set:
    return {m.get("node") for m in view["members"] if isinstance(m, dict)}


def ring_version(view: dict) -> int:
    version = view.get("ring_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise AssertionError(f"ring_version is not an integer: {view}")
    return version


def wait_converged(nodes: list[Node], timeout: float) -> dict[str, dict]:
    """Polls until every node lists exactly `nodes` as members, all "up", at one ring_version.
    Returns the views by node id."""
    expected = {n.node_id for n in nodes}
    deadline = time.monotonic() + timeout
    while True:
        views = {n.node_id: cluster_view(n) for n in nodes}
        if all(member_names(v) == expected and len(v["members"]) == len(expected) and
               all(m.get("status") == "up" for m in v["members"]) for v in views.values()) and \
                len({ring_version(v) for v in views.values()}) == 1:
            return views
        if time.monotonic() > deadline:
            raise AssertionError(f"the members did not agree on {sorted(expected)} within "
                                 f"{timeout:.0f} s; last views: {views}")
        time.sleep(0.05)


def supervisors(node: Node) -> dict[str, dict]:
    resp = node.api.admin("GET", "/admin/actors")
    if resp.status != 200 or not isinstance(resp.json, dict) or \
            not isinstance(resp.json.get("supervisors"), list):
        raise AssertionError(f"/admin/actors of {node.node_id}: {resp.describe()}")
    if resp.json.get("node") != node.node_id:
        raise AssertionError(f"/admin/actors of {node.node_id} names node "
                             f"{resp.json.get('node')!r}")
    return {s.get("kind"): s for s in resp.json["supervisors"]}


def live_sessions(node: Node) -> int:
    live = supervisors(node).get("session", {}).get("live")
    if not isinstance(live, int) or isinstance(live, bool):
        raise AssertionError(f"session supervisor of {node.node_id} has no integer 'live'")
    return live


# --------------------------------------------------------------------------------------------
# Requests through several nodes
# --------------------------------------------------------------------------------------------

def unavailable(resp: Response) -> bool:
    return resp.status == 503 and isinstance(resp.json, dict) and \
        resp.json.get("error") == "temporarily_unavailable"


def through_any(nodes: list[Node], call: Callable[[Node], Response],
                bound: float = RETRY_S) -> Response:
    """call(node), moving on to the next node after a 503 temporarily_unavailable (what a request
    may get while ownership moves), until another answer or `bound` seconds."""
    deadline = time.monotonic() + bound
    attempt = 0
    while True:
        resp = call(nodes[attempt % len(nodes)])
        attempt += 1
        if not unavailable(resp) or time.monotonic() > deadline:
            return resp
        time.sleep(0.05)


def wait_inactive_everywhere(nodes: list[Node], token: str, since: float,
                             bound: float = REVOCATION_S) -> dict[str, float]:
    """Polls introspection of `token` round-robin on `nodes` until each answers active:false;
    returns each node's lag in seconds after `since` (a time.monotonic() value)."""
    pending = {n.node_id: n for n in nodes}
    lags: dict[str, float] = {}
    while pending:
        for node_id, node in list(pending.items()):
            if not node.api.is_active(token):
                lags[node_id] = time.monotonic() - since
                del pending[node_id]
        if pending and time.monotonic() - since > bound:
            raise AssertionError(f"token still active on {sorted(pending)} {bound:.0f} s after "
                                 f"its revocation (inactive elsewhere after {lags})")
        time.sleep(0.005)
    return lags


def session_ids(node: Node, bearer: str) -> list[str]:
    resp = node.api.get("/auth/sessions", bearer=bearer)
    if resp.status != 200:
        raise AssertionError(f"GET /auth/sessions through {node.node_id}: {resp.describe()}")
    return [s["id"] for s in resp.json["sessions"]]


def login_spread(nodes: list[Node], count: int) -> list[dict]:
    """`count` logins of new users, round-robin over the nodes. Each entry is the login response
    plus "user" and "history" (every refresh token of the session, oldest first)."""
    out = []
    for i in range(count):
        user, tokens = nodes[i % len(nodes)].api.new_user_session()
        out.append({**tokens, "user": user, "history": [tokens["refresh_token"]]})
    return out


# --------------------------------------------------------------------------------------------
# Configuration (no backends needed)
# --------------------------------------------------------------------------------------------

class ClusterConfigurationTest(unittest.TestCase):
    """Cluster mode refuses to start without the shared stores or a real secret."""

    def run_credod(self, env: dict[str, str]) -> subprocess.CompletedProcess:
        args = ["--http", "127.0.0.1:0", *cluster_flags(unique_id("node"))]
        try:
            return subprocess.run([credod_path(), *args],
                                  env=server_env(unique_id("adm"), env),
                                  stdin=subprocess.DEVNULL, capture_output=True, timeout=15)
        except subprocess.TimeoutExpired as exc:
            self.fail(f"credod {' '.join(args)} kept running instead of refusing to start: "
                      f"{(exc.stdout or b'')[-500:]!r}")

    def assertRefused(self, result: subprocess.CompletedProcess, what: str) -> str:
        err = result.stderr.decode("utf-8", "replace").strip()
        self.assertEqual(result.returncode, 2, f"{what}: exit code\n{err}")
        self.assertTrue(err, f"{what}: exit 2 without a reason on stderr")
        self.assertEqual(len(err.splitlines()), 1, f"{what}: the reason is one line: {err!r}")
        return err

    def test_cluster_mode_needs_postgresql_and_redis(self):
        secret = cluster_secret()
        for label, stores in (("no stores", dict(database="", redis="")),
                              ("PostgreSQL only", dict(database=UNREACHABLE_DATABASE, redis="")),
                              ("Redis only", dict(database="", redis=UNREACHABLE_REDIS))):
            with self.subTest(label):
                err = self.assertRefused(self.run_credod(cluster_env(secret, **stores)),
                                         f"--cluster with {label}")
                lowered = err.lower()
                self.assertTrue("postgres" in lowered or "redis" in lowered or
                                "shared stores" in lowered,
                                f"the reason names the stores cluster mode needs: {err!r}")
                self.assertNotIn(secret, err)

    def test_cluster_mode_needs_a_secret_of_32_characters(self):
        stores = dict(database=UNREACHABLE_DATABASE, redis=UNREACHABLE_REDIS)
        short = secrets.token_hex(16)[:31]
        for label, secret in (("no CREDO_CLUSTER_SECRET", None), ("an empty secret", ""),
                              ("a 31-character secret", short)):
            with self.subTest(label):
                result = self.run_credod(cluster_env(secret, **stores))
                err = self.assertRefused(result, f"--cluster with {label}")
                self.assertIn("secret", err.lower(), f"the reason names the secret: {err!r}")
                if secret:
                    self.assertNotIn(secret, err + result.stdout.decode("utf-8", "replace"),
                                     "the refused secret is echoed")

    def test_a_32_character_secret_is_enough(self):
        secret = secrets.token_hex(16)
        self.assertEqual(len(secret), 32)
        node_id = unique_id("node")
        server = CredoServer(cluster_flags(node_id), extra_env=cluster_env(
            secret, database=UNREACHABLE_DATABASE, redis=UNREACHABLE_REDIS))
        self.addCleanup(server.stop)
        server.start()
        port = int(ADDRESS_RE.match(cluster_address(server)).group(1))
        self.assertNotEqual(port, server.port, "the cluster listener is not the HTTP listener")
        self.assertNotIn(secret, server.stdout_text() + server.stderr_text())
        self.assertEqual(server.stop(), 0, f"SIGTERM exit code\n{server.output_tail()}")


# --------------------------------------------------------------------------------------------
# One 3-node cluster shared by tests that leave it whole
# --------------------------------------------------------------------------------------------

@skip_without_backends
class ClusterTest(unittest.TestCase):

    nodes: list[Node]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.secret = cluster_secret()
        cls.nodes = start_cluster(cls.addClassCleanup, cls.secret)

    def setUp(self):
        # Every test starts from the whole cluster (a failed test may have left it otherwise).
        self.views = wait_converged(self.nodes, CONVERGE_S)

    def test_every_node_lists_the_same_members(self):
        by_name = {n.node_id: n for n in self.nodes}
        versions = {ring_version(v) for v in self.views.values()}
        self.assertEqual(len(versions), 1, f"ring versions differ: {self.views}")
        for node in self.nodes:
            view = self.views[node.node_id]
            self.assertEqual(view.get("node"), node.node_id, f"/admin/cluster names itself: {view}")
            self.assertEqual(sorted(m["node"] for m in view["members"]), sorted(by_name),
                             "each member is listed once")
            for member in view["members"]:
                peer = by_name[member["node"]]
                # The cluster address from the peer's "listening" line (or its HTTP address).
                self.assertIn(member.get("address"), (peer.cluster, peer.http),
                              f"{node.node_id} lists {peer.node_id} at the wrong address: {member}")
                self.assertEqual(member.get("status"), "up")
                try:
                    parse_rfc3339(member.get("last_seen"))
                except (AssertionError, ValueError) as exc:
                    self.fail(f"last_seen of {member} on {node.node_id}: {exc}")
            health = node.api.get("/health")
            self.assertEqual(health.json.get("node"), node.node_id, health.describe())
            status, checks = ready_status(node.api)
            self.assertEqual((status, checks.get("cluster")), (200, "ok"),
                             f"/health/ready of {node.node_id}: {checks}")

    def test_any_endpoint_works_through_any_node(self):
        a, b, c = self.nodes
        user = c.api.register_user()
        first = a.api.login(user.email, user.password, device="laptop")
        me = b.api.get("/me", bearer=first["access_token"])
        self.assertEqual((me.status, me.json.get("id")), (200, user.id), me.describe())

        rotated = b.api.refresh_first_party(first["refresh_token"])
        self.assertEqual(rotated.status, 200, f"refresh through {b.node_id}: {rotated.describe()}")
        self.assertNotEqual(rotated.json["refresh_token"], first["refresh_token"])
        listed = c.api.get("/auth/sessions", bearer=rotated.json["access_token"])
        self.assertEqual(listed.status, 200, listed.describe())
        self.assertEqual([(s["id"], s["device"], s["current"]) for s in listed.json["sessions"]],
                         [(first["session_id"], "laptop", True)])

        second = c.api.login(user.email, user.password, device="phone")
        self.assertEqual(sorted(session_ids(a, second["access_token"])),
                         sorted([first["session_id"], second["session_id"]]))
        resp = b.api.request("DELETE", f"/auth/sessions/{first['session_id']}",
                             bearer=second["access_token"])
        self.assertEqual(resp.status, 204, f"ending a session through {b.node_id}: "
                                           f"{resp.describe()}")
        self.assertEqual(session_ids(c, second["access_token"]), [second["session_id"]])
        gone = a.api.refresh_first_party(rotated.json["refresh_token"])
        self.assertEqual((gone.status, (gone.json or {}).get("error")), (400, "invalid_grant"),
                         f"refresh of the ended session through {a.node_id}: {gone.describe()}")

        again = b.api.refresh_first_party(second["refresh_token"])
        self.assertEqual(again.status, 200, again.describe())
        out = a.api.request("POST", "/auth/logout", bearer=again.json["access_token"])
        self.assertEqual(out.status, 204, f"logout through {a.node_id}: {out.describe()}")
        after = b.api.get("/auth/sessions", bearer=again.json["access_token"])
        self.assertEqual(after.status, 401, f"sessions after logout: {after.describe()}")
        dead = c.api.refresh_first_party(again.json["refresh_token"])
        self.assertEqual((dead.status, (dead.json or {}).get("error")), (400, "invalid_grant"),
                         f"refresh after logout: {dead.describe()}")

    def test_consent_granted_on_one_node_holds_on_the_others(self):
        a, b, c = self.nodes
        client = a.api.admin_register_client(scopes=["photos.read"])
        _, tokens = b.api.new_user_session()
        bearer = tokens["access_token"]
        b.api.grant_consent(bearer, client.client_id, ["photos.read"])
        listed = c.api.get("/auth/consent", bearer=bearer)
        self.assertEqual(listed.status, 200, listed.describe())
        self.assertEqual([(x["client_id"], x["scope"]) for x in listed.json["consents"]
                          if x.get("revoked_at") is None], [(client.client_id, "photos.read")])

        issued = c.api.code_flow(bearer, client, "photos.read")
        self.assertTrue(a.api.is_active(issued["access_token"]))
        resp = a.api.request("DELETE", f"/auth/consent/{client.client_id}/photos.read",
                             bearer=bearer)
        self.assertEqual(resp.status, 204, resp.describe())
        revoked_at = time.monotonic()
        lags = wait_inactive_everywhere([b, c], issued["access_token"], revoked_at)
        report(f"consent revocation on {a.node_id}: the client's token inactive after "
               + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in lags.items()))
        _, challenge = pkce_pair()
        redirect = parse_redirect(b.api.authorize(
            bearer, b.api.authorize_params(client, "photos.read", challenge)))
        self.assertEqual(redirect.params.get("error"), "consent_required",
                         f"authorize through {b.node_id} after the revocation on {a.node_id}")

    def test_concurrent_refreshes_through_every_node_have_one_winner(self):
        _, tokens = self.nodes[0].api.new_user_session()
        contenders = [node for node in self.nodes for _ in range(3)]
        barrier = threading.Barrier(len(contenders))

        def attempt(node: Node) -> Response:
            barrier.wait(timeout=10)
            return node.api.refresh_first_party(tokens["refresh_token"])

        with concurrent.futures.ThreadPoolExecutor(len(contenders)) as pool:
            results = list(pool.map(attempt, contenders))
        winners = [r for r in results if r.status == 200]
        self.assertEqual(len(winners), 1, "exactly one of the concurrent refreshes (spread over "
                         "every node) wins: " + "; ".join(r.describe(120) for r in results))
        for r in results:
            if r.status != 200:
                self.assertEqual((r.status, (r.json or {}).get("error")), (400, "invalid_grant"),
                                 r.describe())
        # The losers were reuse of a spent token: the family, winner included, is revoked.
        late = self.nodes[2].api.refresh_first_party(winners[0].json["refresh_token"])
        self.assertEqual((late.status, (late.json or {}).get("error")), (400, "invalid_grant"),
                         late.describe())

    def test_session_entities_spread_over_the_nodes(self):
        for node in self.nodes:
            sups = supervisors(node)
            self.assertEqual(set(sups), SUPERVISOR_KINDS, f"supervisors of {node.node_id}")
            for kind, sup in sups.items():
                for field in ("live", "restarts", "failures", "max_mailbox"):
                    value = sup.get(field)
                    self.assertTrue(isinstance(value, int) and not isinstance(value, bool)
                                    and value >= 0, f"{node.node_id} {kind}.{field} = {value!r}")
                self.assertIn("last_failure", sup)
        login_spread(self.nodes, 8)
        live = {node.node_id: live_sessions(node) for node in self.nodes}
        report(f"live session entities after 8 logins: {live}")
        # Owners are chosen by rendezvous hashing of random session ids: 8 sessions all on one
        # of 3 nodes has probability 3^-7.
        self.assertGreaterEqual(sum(1 for v in live.values() if v > 0), 2,
                                f"session entities live on one node only: {live}")

    def test_revocation_reaches_every_node(self):
        for i, how in enumerate(("revoke", "logout")):
            origin = self.nodes[i]
            others = [n for n in self.nodes if n is not origin]
            with self.subTest(how=how, origin=origin.node_id):
                _, tokens = origin.api.new_user_session()
                access = tokens["access_token"]
                for node in others:  # fills any verified-token cache the broadcast must clear
                    self.assertTrue(node.api.is_active(access), f"fresh token on {node.node_id}")
                if how == "revoke":
                    resp = origin.api.revoke(access)
                    self.assertEqual(resp.status, 200, resp.describe())
                else:
                    resp = origin.api.request("POST", "/auth/logout", bearer=access)
                    self.assertEqual(resp.status, 204, resp.describe())
                lags = wait_inactive_everywhere(others, access, time.monotonic())
                report(f"{how} on {origin.node_id}: inactive after "
                       + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in lags.items()))
                for node in others:
                    me = node.api.get("/me", bearer=access)
                    self.assertEqual(me.status, 401, f"/me on {node.node_id} after {how} on "
                                                     f"{origin.node_id}: {me.describe()}")
                if how == "logout":
                    dead = others[0].api.refresh_first_party(tokens["refresh_token"])
                    self.assertEqual((dead.status, (dead.json or {}).get("error")),
                                     (400, "invalid_grant"), dead.describe())

    def test_a_node_with_another_secret_is_not_admitted(self):
        expected = {n.node_id for n in self.nodes}
        version = ring_version(next(iter(self.views.values())))
        intruder = start_node(self.addCleanup, cluster_secret(),
                              seeds=[n.cluster for n in self.nodes], ready=False)
        # Observation window, not synchronisation: the intruder must stay out the whole time.
        deadline = time.monotonic() + 2.0
        while True:
            for node in self.nodes:
                view = cluster_view(node)
                self.assertEqual(member_names(view), expected,
                                 f"{node.node_id} admitted a node with another secret: {view}")
                self.assertEqual(ring_version(view), version,
                                 f"a refused join changed the ring on {node.node_id}: {view}")
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        own = cluster_view(intruder)
        self.assertEqual(own.get("node"), intruder.node_id)
        self.assertEqual(member_names(own), {intruder.node_id},
                         f"the intruder's own view lists only itself: {own}")
        self.assertTrue(intruder.server.running, "a refused join is not a reason to exit")


# --------------------------------------------------------------------------------------------
# Destructive: each test has a cluster of its own
# --------------------------------------------------------------------------------------------

@skip_without_backends
class ClusterFailureTest(unittest.TestCase):

    def setUp(self):
        self.secret = cluster_secret()
        self.nodes = start_cluster(self.addCleanup, self.secret)
        self.sessions = login_spread(self.nodes, 6)
        live = {node.node_id: live_sessions(node) for node in self.nodes}
        # The victim is the node that owns the most sessions, so that some sessions lose their
        # owner.
        self.victim = max(self.nodes, key=lambda n: live[n.node_id])
        self.assertGreater(live[self.victim.node_id], 0, f"no node reports live sessions: {live}")
        self.survivors = [n for n in self.nodes if n is not self.victim]
        self.ring_before = ring_version(cluster_view(self.survivors[0]))
        report(f"live sessions {live}; victim {self.victim.node_id}")

    def refresh_all(self, nodes: list[Node], what: str, bound: float = RETRY_S) -> None:
        """Refreshes every session through `nodes` (retrying a 503 on the next one), then lists
        the sessions with the new access token through another node."""
        for i, session in enumerate(self.sessions):
            order = nodes[i % len(nodes):] + nodes[:i % len(nodes)]
            resp = through_any(order, lambda n: n.api.refresh_first_party(
                session["refresh_token"]), bound)
            self.assertEqual(resp.status, 200, f"{what}: refresh of session "
                                               f"{session['session_id']}: {resp.describe()}")
            session.update(access_token=resp.json["access_token"],
                           refresh_token=resp.json["refresh_token"])
            session["history"].append(resp.json["refresh_token"])
            listed = through_any(order[1:] + order[:1], lambda n: n.api.get(
                "/auth/sessions", bearer=session["access_token"]), bound)
            self.assertEqual(listed.status, 200, f"{what}: {listed.describe()}")
            self.assertIn(session["session_id"], [s["id"] for s in listed.json["sessions"]],
                          f"{what}: the session is listed")

    def test_a_killed_nodes_sessions_live_on_and_it_rejoins(self):
        victim, survivors = self.victim, self.survivors
        kill(victim)
        killed_at = time.monotonic()
        views = wait_converged(survivors, KILL_DETECTION_S)
        report(f"kill -9 of {victim.node_id}: survivors agree after "
               f"{(time.monotonic() - killed_at) * 1000:.0f} ms")
        ring_after_kill = ring_version(next(iter(views.values())))
        self.assertGreater(ring_after_kill, self.ring_before, "the ring version moves on")

        first = self.sessions[0]["access_token"]
        for node in survivors:
            self.assertTrue(node.api.is_active(first), "a token issued before the kill")
        self.refresh_all(survivors, f"after the kill of {victim.node_id}")

        restarted = start_node(self.addCleanup, self.secret, node_id=victim.node_id,
                               seeds=[n.cluster for n in survivors])
        nodes = survivors + [restarted]
        restarted_at = time.monotonic()
        views = wait_converged(nodes, REJOIN_S)
        report(f"{victim.node_id} restarted: members agree after "
               f"{(time.monotonic() - restarted_at) * 1000:.0f} ms")
        self.assertGreater(ring_version(views[restarted.node_id]), ring_after_kill)
        for view in views.values():
            listed = [m for m in view["members"] if m["node"] == restarted.node_id]
            self.assertIn(listed[0].get("address"), (restarted.cluster, restarted.http),
                          f"the rejoined node is listed at its new address: {view}")
        # Keys that hash to the restarted node come back to it, re-activated from the stores.
        self.refresh_all([restarted], f"through the restarted {victim.node_id}")

    def test_a_paused_node_is_dropped_and_rejoins_after_it_resumes(self):
        victim, survivors = self.victim, self.survivors
        self.addCleanup(resume, victim.server)  # runs before the node's stop (cleanups are LIFO)
        victim.server.proc.send_signal(signal.SIGSTOP)
        paused_at = time.monotonic()
        views = wait_converged(survivors, PAUSE_DETECTION_S)
        report(f"SIGSTOP of {victim.node_id}: dropped after "
               f"{(time.monotonic() - paused_at) * 1000:.0f} ms")
        self.assertGreater(ring_version(next(iter(views.values()))), self.ring_before)
        self.refresh_all(survivors, f"while {victim.node_id} is paused")
        _, tokens = survivors[0].api.new_user_session()
        self.assertIn(tokens["session_id"], session_ids(survivors[1], tokens["access_token"]))

        victim.server.proc.send_signal(signal.SIGCONT)
        resumed_at = time.monotonic()
        views = wait_converged(self.nodes, REJOIN_S)
        report(f"SIGCONT of {victim.node_id}: members agree after "
               f"{(time.monotonic() - resumed_at) * 1000:.0f} ms")
        self.assertTrue(victim.server.running)
        # The resumed node must not answer from the state it held before the pause: the tokens
        # the survivors issued meanwhile work through it ...
        self.refresh_all([victim], f"through {victim.node_id} after it resumed")
        # ... and the refresh token it last knew is spent: presenting it again is reuse, which
        # revokes the family wherever it is asked next.
        session = self.sessions[0]
        replay = through_any([victim], lambda n: n.api.refresh_first_party(
            session["history"][0]))
        self.assertEqual((replay.status, (replay.json or {}).get("error")), (400, "invalid_grant"),
                         f"replay of a pre-pause refresh token through {victim.node_id}: "
                         f"{replay.describe()}")
        late = through_any(survivors, lambda n: n.api.refresh_first_party(
            session["refresh_token"]))
        self.assertEqual((late.status, (late.json or {}).get("error")), (400, "invalid_grant"),
                         f"the family after the replay: {late.describe()}")


if __name__ == "__main__":
    unittest.main()
