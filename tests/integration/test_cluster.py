"""Cluster mode: three credod nodes joined over plain (--cluster-insecure) links on the durable
stores that scripts/test.sh starts. Membership and the ring version every node agrees on, requests
for an entity served through any node, session entities spread over the owners, revocations
broadcast to every node, a node killed -9 or frozen with SIGSTOP (its keys go to the survivors and
it rejoins), a node with another cluster secret kept out, and the configuration that cluster mode
refuses.

Timing goals (revocation seen everywhere within 100 ms, a frozen node dropped within about 2 s) are
not asserted: the tests poll with generous bounds and print what they observed."""

import concurrent.futures
import secrets
import signal
import subprocess
import threading
import time
import unittest

from backend_harness import free_port, skip_without_backends
from cluster_harness import (ADDRESS_RE, CONVERGE_S, RETRY_S, Node, cluster_address,
                             cluster_env, cluster_flags, cluster_secret, cluster_view,
                             kill, live_sessions, member_names, ready_status, resume,
                             ring_version, start_cluster, start_node, supervisors, through_any,
                             wait_converged)
from credo_harness import (CredoServer, Response, credod_path, parse_redirect, parse_rfc3339,
                           pkce_pair, server_env, unique_id)
from test_metrics import check_exposition


SUPERVISOR_KINDS = {"session", "consent", "rate_limit", "audit_publisher"}
# Syntactically valid stores that refuse connections: enough for configuration checks, which must
# not depend on the backends (an unreachable store at start is not fatal).
UNREACHABLE_DATABASE = "postgres://credo:pw@127.0.0.1:1/credo"
UNREACHABLE_REDIS = "redis://127.0.0.1:1"

# Bounds of the polls. They are limits on waiting, not the goals (see the module docstring);
# CONVERGE_S and RETRY_S come from cluster_harness.
REVOCATION_S = 2.0       # goal 100 ms
KILL_DETECTION_S = 5.0   # connection loss
PAUSE_DETECTION_S = 8.0  # heartbeat timeout, goal ~1-2 s
REJOIN_S = 10.0


def report(message: str) -> None:
    print(f"[cluster] {message}", flush=True)


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
    """Cluster mode refuses to start without the shared stores, a real secret, or usable TLS
    files for its links (or --cluster-insecure)."""

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

    # -- Cluster links over mutual TLS (helpers in the "Mutual TLS" section at the end) ------

    def test_cluster_links_need_tls_files_or_cluster_insecure(self):
        env = cluster_env(cluster_secret(), database=UNREACHABLE_DATABASE,
                          redis=UNREACHABLE_REDIS)
        node = tls_material(self).issue(unique_id("node"))
        for label, flags in (
                ("neither TLS files nor --cluster-insecure", []),
                ("--cluster-tls-cert only", ["--cluster-tls-cert", node.cert]),
                ("no --cluster-tls-ca", ["--cluster-tls-cert", node.cert,
                                         "--cluster-tls-key", node.key])):
            with self.subTest(label):
                err = self.assertRefused(run_tls_credod(self, flags, env),
                                         f"--cluster with {label}")
                lowered = err.lower()
                self.assertTrue("tls" in lowered or "insecure" in lowered,
                                f"the reason names the TLS files or --cluster-insecure: {err!r}")

    def test_an_unreadable_cluster_tls_file_is_refused(self):
        env = cluster_env(cluster_secret(), database=UNREACHABLE_DATABASE,
                          redis=UNREACHABLE_REDIS)
        ca = tls_material(self)
        node = ca.issue(unique_id("node"))
        for which in ("cert", "key", "ca"):
            with self.subTest(which):
                missing = os.path.join(ca.directory, f"missing-{which}.pem")
                files = dict(cert=node.cert, key=node.key, ca=node.ca)
                files[which] = missing
                flags = [arg for name in ("cert", "key", "ca")
                         for arg in (f"--cluster-tls-{name}", files[name])]
                err = self.assertRefused(run_tls_credod(self, flags, env),
                                         f"--cluster-tls-{which} {missing} (no such file)")
                self.assertIn(missing, err, f"the reason names the file: {err!r}")

    def test_a_cluster_tls_file_that_is_not_usable_is_refused_at_start(self):
        """Readable files that caf::openssl cannot use. CAF reads them only when a cluster
        connection opens (and throws from its I/O thread), so a check at start is credod's."""
        env = cluster_env(cluster_secret(), database=UNREACHABLE_DATABASE,
                          redis=UNREACHABLE_REDIS)
        ca = tls_material(self)
        node, other = ca.issue(unique_id("node")), ca.issue(unique_id("node"))
        junk = os.path.join(ca.directory, "junk.pem")
        with open(junk, "w") as f:
            f.write("not a PEM file\n")
        for label, cert, key, trust in (("a certificate that is not PEM", junk, node.key, node.ca),
                                        ("a key that is not PEM", node.cert, junk, node.ca),
                                        ("the key of another certificate", node.cert, other.key,
                                         node.ca),
                                        ("a CA file that is not PEM", node.cert, node.key, junk)):
            with self.subTest(label):
                self.assertRefusedAtStart(
                    ["--cluster-tls-cert", cert, "--cluster-tls-key", key,
                     "--cluster-tls-ca", trust], env, label, probe=node)

    def assertRefusedAtStart(self, tls_flags: list[str], env: dict[str, str], what: str,
                             probe: "NodeCertificate") -> None:
        """Exit 2 with a one-line reason before the 'listening' line. If credod starts instead,
        one TLS connection to its cluster listener shows what the bad file does later."""
        server = CredoServer(tls_cluster_flags(unique_id("node"), tls_flags), extra_env=env)
        self.addCleanup(server.stop)
        try:
            server.start()
        except ServerStartError:
            err = server.stderr_text().strip()
            self.assertEqual(server.returncode, 2, f"{what}: exit code\n{server.output_tail()}")
            self.assertTrue(err, f"{what}: exit 2 without a reason on stderr")
            self.assertEqual(len(err.splitlines()), 1, f"{what}: the reason is one line: {err!r}")
            return
        address = cluster_address(server)
        try:
            outcome = tls_probe(address, probe.ca, probe)
        except (AssertionError, OSError) as exc:
            outcome = ("error", str(exc))
        try:
            server.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            pass
        later = (f"it then exited with code {server.proc.returncode}" if not server.running else
                 "it kept running")
        self.fail(f"credod started with {what} (logged 'listening', cluster {address}); after "
                  f"one TLS connection to its cluster listener ({outcome[0]}: {outcome[1]}) "
                  f"{later}\n{server.output_tail(5)}")


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
            metrics = node.api.get("/metrics").text
            check_exposition(self, metrics, f"/metrics of {node.node_id}")  # every family
            self.assertIn("\ncredo_cluster_members 3\n", metrics, f"/metrics of {node.node_id}")
            self.assertRegex(metrics, r"\ncredo_cluster_ring_version [1-9][0-9]*\n",
                             f"/metrics of {node.node_id}")

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


@skip_without_backends
class ClusterStartTest(unittest.TestCase):

    def test_a_node_whose_seeds_are_all_down_starts_alone(self):
        dead = [f"127.0.0.1:{free_port()}" for _ in range(2)]  # nothing listens there
        node = start_node(self.addCleanup, cluster_secret(), seeds=dead)  # polls /health/ready
        self.assertEqual(member_names(cluster_view(node)), {node.node_id})
        user, tokens = node.api.new_user_session()
        self.assertTrue(node.api.is_active(tokens["access_token"]), "a lone node serves")


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


# --------------------------------------------------------------------------------------------
# Mutual TLS on the cluster links
# --------------------------------------------------------------------------------------------
# Kept together at the end of the file (imports included) so that this section moves as one
# piece; the nodes come up without --cluster-insecure, with certificates from a test CA.

import dataclasses  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import ssl  # noqa: E402
import tempfile  # noqa: E402
from typing import Callable, Iterable  # noqa: E402

from backend_harness import poll  # noqa: E402
from cluster_harness import ISSUER  # noqa: E402
from credo_harness import CredoClient, ServerStartError  # noqa: E402

REFUSED_NODE_WINDOW_S = 2.0  # how long a refused node is watched staying out
TLS_PROBE_TIMEOUT_S = 3.0

_OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[node_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def require_openssl() -> str:
    path = shutil.which("openssl")
    if not path:
        raise unittest.SkipTest("the openssl command-line tool is not installed")
    return path


@dataclasses.dataclass(frozen=True)
class NodeCertificate:
    node_id: str  # the certificate's CN
    cert: str     # PEM files
    key: str
    ca: str       # the CA certificate the node trusts

    def trusting(self, ca_file: str) -> "NodeCertificate":
        return dataclasses.replace(self, ca=ca_file)

    def flags(self) -> list[str]:
        return ["--cluster-tls-cert", self.cert, "--cluster-tls-key", self.key,
                "--cluster-tls-ca", self.ca]


class ClusterCa:
    """A certificate authority made with the openssl CLI in `directory`: an EC P-256 key and a
    self-signed certificate, which signs node certificates (EC P-256, CN = node id,
    subjectAltName IP:127.0.0.1 and DNS:localhost, for TLS servers and clients alike)."""

    def __init__(self, directory: str, name: str) -> None:
        self.openssl = require_openssl()
        self.directory = directory
        self.name = name
        self.config = self._path("openssl.cnf")
        with open(self.config, "w") as f:
            f.write(_OPENSSL_CONFIG)
        self.key = self._path("ca.key")
        self.cert = self._path("ca.pem")
        self._run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                  "-out", self.key)
        self._run("req", "-new", "-x509", "-config", self.config, "-extensions", "ca_ext",
                  "-key", self.key, "-subj", f"/CN={name}", "-days", "2", "-out", self.cert)

    def _path(self, leaf: str) -> str:
        return os.path.join(self.directory, f"{self.name}-{leaf}")

    def _run(self, *args: str) -> str:
        result = subprocess.run([self.openssl, *args], stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise AssertionError(f"openssl {' '.join(args)} failed ({result.returncode}): "
                                 f"{result.stderr.strip()}")
        return result.stdout

    def issue(self, node_id: str) -> NodeCertificate:
        key, csr, cert = (self._path(f"{node_id}.{ext}") for ext in ("key", "csr", "pem"))
        self._run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                  "-out", key)
        self._run("req", "-new", "-config", self.config, "-key", key, "-subj", f"/CN={node_id}",
                  "-out", csr)
        self._run("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
                  "-set_serial", str(secrets.randbits(62) + 1), "-days", "2",
                  "-extfile", self.config, "-extensions", "node_ext", "-out", cert)
        self._run("verify", "-CAfile", self.cert, cert)
        return NodeCertificate(node_id, cert, key, self.cert)


def tls_material(test: unittest.TestCase) -> ClusterCa:
    """A CA in a temporary directory removed when `test` ends."""
    directory = tempfile.TemporaryDirectory(prefix="credo-tls-")
    test.addCleanup(directory.cleanup)
    return ClusterCa(directory.name, "cluster-ca")


def tls_cluster_flags(node_id: str, tls_flags: Iterable[str],
                      seeds: Iterable[str] = ()) -> list[str]:
    flags = ["--issuer", ISSUER, "--node-id", node_id, "--cluster", "127.0.0.1:0",
             *tls_flags]
    seeds = list(seeds)
    if seeds:
        flags += ["--seeds", ",".join(seeds)]
    return flags


def run_tls_credod(test: unittest.TestCase, tls_flags: list[str],
                   env: dict[str, str]) -> subprocess.CompletedProcess:
    """credod in cluster mode with `tls_flags` instead of --cluster-insecure, expected to exit."""
    args = ["--http", "127.0.0.1:0", *tls_cluster_flags(unique_id("node"), tls_flags)]
    try:
        return subprocess.run([credod_path(), *args], env=server_env(unique_id("adm"), env),
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=15)
    except subprocess.TimeoutExpired as exc:
        test.fail(f"credod {' '.join(args)} kept running instead of refusing to start: "
                  f"{(exc.stdout or b'')[-500:]!r}")


def start_tls_node(add_cleanup: Callable, secret: str, cert: NodeCertificate,
                   seeds: Iterable[str] = (), ready: bool = True) -> Node:
    """start_node with `cert` (its node id is the certificate's CN) instead of
    --cluster-insecure."""
    server = CredoServer(tls_cluster_flags(cert.node_id, cert.flags(), seeds),
                         extra_env=cluster_env(secret))
    add_cleanup(server.stop)
    server.start()
    node = Node(cert.node_id, server, CredoClient(server), cluster_address(server))
    if ready:
        poll(lambda: ready_status(node.api)[0] == 200, 20,
             what=f"/health/ready of {node.node_id} to answer 200")
    return node


def start_tls_cluster(add_cleanup: Callable, secret: str, ca: ClusterCa,
                      size: int = 3) -> list[Node]:
    """The first node has no seeds; the others join through it."""
    first = start_tls_node(add_cleanup, secret, ca.issue(unique_id("tls")))
    nodes = [first] + [start_tls_node(add_cleanup, secret, ca.issue(unique_id("tls")),
                                      seeds=[first.cluster])
                       for _ in range(size - 1)]
    wait_converged(nodes, CONVERGE_S)
    return nodes


def tls_probe(address: str, ca_file: str, cert: NodeCertificate | None = None) -> tuple[str, str]:
    """A TLS client on a cluster listener: it trusts `ca_file`, checks the listener's chain and
    its subjectAltName 127.0.0.1, and presents `cert` if given. Returns ("accepted", the
    listener's CN) when application data (CAF's BASP greeting) follows the handshake, then
    closes with close_notify; ("refused", why) when the handshake or the first read fails with
    a TLS alert or the listener closes; ("no answer", why) on a timeout. A listener certificate
    the client rejects is an AssertionError."""
    host, port = address.rsplit(":", 1)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(ca_file)
    if cert is not None:
        context.load_cert_chain(cert.cert, cert.key)
    with socket.create_connection((host, int(port)), timeout=TLS_PROBE_TIMEOUT_S) as raw:
        try:
            tls = context.wrap_socket(raw, server_hostname=host)
        except ssl.SSLCertVerificationError as exc:
            raise AssertionError(f"the cluster listener {address} presents a certificate the "
                                 f"cluster CA does not verify: {exc}") from exc
        except TimeoutError as exc:
            return "no answer", f"handshake: {exc!r}"
        except (ssl.SSLError, ConnectionError) as exc:
            return "refused", f"handshake: {exc}"
        with tls:
            subject = dict(item[0] for item in tls.getpeercert()["subject"])
            version = tls.version()
            try:
                data = tls.recv(4096)
            except TimeoutError as exc:
                return "no answer", f"{version}, first read: {exc!r}"
            except (ssl.SSLError, ConnectionError) as exc:
                return "refused", f"{version}: {exc}"
            if not data:
                return "refused", f"{version}: closed without an alert"
            try:
                tls.unwrap()
            except (ssl.SSLError, OSError):
                pass  # the listener may close first
            return "accepted", f"{version}, CN {subject.get('commonName')}"


@dataclasses.dataclass(frozen=True)
class Sample:
    at: float  # seconds into the observation
    node: str
    members: frozenset
    ring_version: int


def observe(nodes: list[Node], seconds: float,
            each_round: Callable[[], None] | None = None) -> list[Sample]:
    """Samples every node's /admin/cluster about every 100 ms for `seconds` (an observation
    window, not a synchronisation), calling `each_round` before each round."""
    samples: list[Sample] = []
    start = time.monotonic()
    while True:
        if each_round is not None:
            each_round()
        for node in nodes:
            view = cluster_view(node)
            samples.append(Sample(time.monotonic() - start, node.node_id,
                                  frozenset(member_names(view)), ring_version(view)))
        if time.monotonic() - start > seconds:
            return samples
        time.sleep(0.1)


def disturbed(samples: list[Sample], members: set, version: int) -> list[Sample]:
    return [s for s in samples if s.members != members or s.ring_version != version]


def describe_samples(samples: list[Sample], limit: int = 6) -> str:
    shown = [f"{s.at:.2f}s {s.node}: {sorted(s.members)} ring {s.ring_version}"
             for s in samples[:limit]]
    more = f"; ... {len(samples) - limit} more" if len(samples) > limit else ""
    return "; ".join(shown) + more


def membership_events(nodes: list[Node], marks: dict[str, int] | None = None) -> list[str]:
    """"cluster member joined/left" log records of `nodes`, after `marks` (record counts)."""
    out = []
    for node in nodes:
        records = node.server.log_records()[(marks or {}).get(node.node_id, 0):]
        out += [f"{r.get('ts')} {node.node_id}: {r.get('msg')} {r.get('member')}"
                + (f" ({r['reason']})" if r.get("reason") else "")
                for r in records if str(r.get("msg", "")).startswith("cluster member")]
    return sorted(out)


def log_marks(nodes: list[Node]) -> dict[str, int]:
    return {n.node_id: len(n.server.log_records()) for n in nodes}


@skip_without_backends
class ClusterTlsTest(unittest.TestCase):
    """Three nodes linked over mutual TLS (caf::openssl), each with a certificate of one test CA
    and no --cluster-insecure: they converge and serve requests through one another; a node
    whose certificate another CA signed (right secret, trusting the cluster's CA, so that only
    the members' check of its certificate can keep it out), a node without TLS, and TLS
    clients without the right certificate are refused."""

    nodes: list[Node]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        require_openssl()
        directory = tempfile.TemporaryDirectory(prefix="credo-tls-")
        cls.addClassCleanup(directory.cleanup)  # after the nodes stop (cleanups are LIFO)
        cls.ca = ClusterCa(directory.name, "cluster-ca")
        cls.other_ca = ClusterCa(directory.name, "other-ca")
        cls.secret = cluster_secret()
        started = time.monotonic()
        cls.nodes = start_tls_cluster(cls.addClassCleanup, cls.secret, cls.ca)
        cls.formation_s = time.monotonic() - started
        cls.formation_left = [e for e in membership_events(cls.nodes) if "member left" in e]
        report(f"3 TLS nodes started and converged in {cls.formation_s:.2f} s "
               f"({len(cls.formation_left)} 'cluster member left' records meanwhile)")

    def setUp(self):
        # Every test starts from the whole cluster (a failed test may have left it otherwise).
        self.views = wait_converged(self.nodes, CONVERGE_S)
        self.members = {n.node_id for n in self.nodes}
        self.version = ring_version(next(iter(self.views.values())))

    def test_nodes_with_certificates_of_the_cluster_ca_converge(self):
        by_name = {n.node_id: n for n in self.nodes}
        self.assertEqual(len({ring_version(v) for v in self.views.values()}), 1, self.views)
        for node in self.nodes:
            view = self.views[node.node_id]
            self.assertEqual(view.get("node"), node.node_id, f"/admin/cluster names itself: {view}")
            self.assertEqual(sorted(m["node"] for m in view["members"]), sorted(by_name))
            for member in view["members"]:
                peer = by_name[member["node"]]
                self.assertIn(member.get("address"), (peer.cluster, peer.http),
                              f"{node.node_id} lists {peer.node_id} at the wrong address: {member}")
            status, checks = ready_status(node.api)
            self.assertEqual((status, checks.get("cluster")), (200, "ok"),
                             f"/health/ready of {node.node_id}: {checks}")
        # The listeners speak TLS, with the node's own certificate (CN = node id, SAN
        # 127.0.0.1), to a client holding a certificate of the cluster CA.
        client = self.ca.issue(unique_id("probe"))
        for node in self.nodes:
            outcome, detail = tls_probe(node.cluster, self.ca.cert, client)
            self.assertEqual(outcome, "accepted", f"TLS client with a certificate of the cluster "
                                                  f"CA on {node.node_id}: {detail}")
            self.assertTrue(detail.endswith(f"CN {node.node_id}"),
                            f"{node.node_id}'s listener presents another certificate: {detail}")

    def test_no_member_drops_another_while_the_cluster_forms(self):
        # Every node stays up from its start to the convergence: none has a reason to leave.
        if self.formation_left:
            self.fail(f"members dropped one another {len(self.formation_left)} times while the "
                      f"TLS cluster formed (converged after {self.formation_s:.2f} s): "
                      + "; ".join(self.formation_left[:6]))

    def test_an_endpoint_works_through_any_node(self):
        a, b, c = self.nodes
        user = c.api.register_user()
        first = a.api.login(user.email, user.password, device="laptop")
        me = b.api.get("/me", bearer=first["access_token"])
        self.assertEqual((me.status, (me.json or {}).get("id")), (200, user.id), me.describe())
        rotated = b.api.refresh_first_party(first["refresh_token"])
        self.assertEqual(rotated.status, 200, f"refresh through {b.node_id} of a session logged "
                                              f"in through {a.node_id}: {rotated.describe()}")
        self.assertNotEqual(rotated.json["refresh_token"], first["refresh_token"])
        self.assertEqual(session_ids(c, rotated.json["access_token"]), [first["session_id"]])
        spent = c.api.refresh_first_party(first["refresh_token"])
        self.assertEqual((spent.status, (spent.json or {}).get("error")), (400, "invalid_grant"),
                         f"the spent refresh token through {c.node_id}: {spent.describe()}")
        # A revocation on one node reaches the others over the TLS links.
        _, tokens = a.api.new_user_session()
        for node in (b, c):
            self.assertTrue(node.api.is_active(tokens["access_token"]), node.node_id)
        resp = a.api.revoke(tokens["access_token"])
        self.assertEqual(resp.status, 200, resp.describe())
        lags = wait_inactive_everywhere([b, c], tokens["access_token"], time.monotonic())
        report("revocation over TLS links: inactive after "
               + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in lags.items()))

    def assertKeptOut(self, intruder: Node, what: str) -> list[Sample]:
        """For REFUSED_NODE_WINDOW_S the members never list `intruder`, whose own view lists
        only itself; returns the members' samples."""
        samples = observe(self.nodes, REFUSED_NODE_WINDOW_S)
        admitted = [s for s in samples if intruder.node_id in s.members]
        self.assertFalse(admitted, f"{what} was admitted: {describe_samples(admitted)}")
        own = cluster_view(intruder)
        self.assertEqual(own.get("node"), intruder.node_id)
        self.assertEqual(member_names(own), {intruder.node_id},
                         f"{what}: its own view lists only itself: {own}")
        self.assertTrue(intruder.server.running, f"{what}: a refused join is not a reason to exit"
                                                 f"\n{intruder.server.output_tail(5)}")
        self.assertEqual(membership_events([intruder]), [], f"{what} logged a join")
        churn = disturbed(samples, self.members, self.version)
        report(f"{what} kept out for {REFUSED_NODE_WINDOW_S:.0f} s; members' views disturbed in "
               f"{len(churn)} of {len(samples)} samples"
               + (f" (ring {self.version} -> {max(s.ring_version for s in samples)})"
                  if churn else ""))
        return samples

    def test_a_node_with_a_certificate_of_another_ca_is_not_admitted(self):
        cert = self.other_ca.issue(unique_id("rogue")).trusting(self.ca.cert)
        intruder = start_tls_node(self.addCleanup, self.secret, cert,
                                  seeds=[n.cluster for n in self.nodes], ready=False)
        self.assertKeptOut(intruder, "a node with a certificate of another CA")

    def test_a_node_without_tls_is_not_admitted(self):
        intruder = start_node(self.addCleanup, self.secret, seeds=[n.cluster for n in self.nodes],
                              ready=False)  # --cluster-insecure: plain links
        self.assertKeptOut(intruder, "a node without TLS (--cluster-insecure)")

    def test_refused_tls_clients_leave_the_cluster_links_alone(self):
        """TLS clients without a certificate, or with one of another CA, are refused by every
        listener, and the links between the members stay up meanwhile: a refused handshake is
        something anyone who reaches a cluster port can cause."""
        clients = [("no certificate", None),
                   ("a certificate of another CA", self.other_ca.issue(unique_id("stranger")))]
        outcomes: list[tuple[str, str, str, str]] = []
        round_no = 0

        def probe_one():
            nonlocal round_no
            node = self.nodes[round_no % len(self.nodes)]
            label, cert = clients[round_no % len(clients)]
            round_no += 1
            outcomes.append((node.node_id, label, *tls_probe(node.cluster, self.ca.cert, cert)))

        marks = log_marks(self.nodes)
        samples = observe(self.nodes, REFUSED_NODE_WINDOW_S, each_round=probe_one)
        not_refused = [o for o in outcomes if o[2] != "refused"]
        self.assertFalse(not_refused, f"TLS clients without the right certificate not refused: "
                                      f"{not_refused}")
        churn = disturbed(samples, self.members, self.version)
        report(f"{len(outcomes)} refused TLS clients in {REFUSED_NODE_WINDOW_S:.0f} s "
               f"(e.g. {outcomes[0][1]}: {outcomes[0][3]}); members' views disturbed in "
               f"{len(churn)} of {len(samples)} samples")
        if churn:
            self.fail(f"{len(outcomes)} refused TLS handshakes broke links between members "
                      f"(ring version was {self.version}; views disturbed in {len(churn)} of "
                      f"{len(samples)} samples): {describe_samples(churn)}\nmembership events: "
                      + "; ".join(membership_events(self.nodes, marks)[:8]))


if __name__ == "__main__":
    unittest.main()
