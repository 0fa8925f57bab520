"""Rate limits in cluster mode: three credod nodes on the durable stores, where every token
bucket and every account's failed-login lockout is one "rate_limit" entity owned by one node
(rendezvous hashing, as sessions), so that a limit holds whichever node a request comes in
through:

- parallel wrong passwords for one account, spread over every node, check at most
  --lockout-threshold (5) passwords; the rest, and then the right password, get 429;
- the lockout is written through to Redis: after kill -9 of the node that owned it, the survivors
  still refuse the account and count no fresh failures;
- a small bucket (users.ip=6/1m: every request asks the owner) admits exactly its capacity of
  parallel registrations spread over the nodes.

Every node trusts 127.0.0.1 as a proxy (--trusted-proxies), so that registrations can name a
fresh client address in X-Forwarded-For: bucket state outlives a cluster in Redis, which every
run and every other suite on the same Redis shares, and users.ip:127.0.0.1 would carry their
registrations into this module's exact counts. Logins come from 127.0.0.1, whose login.ip limit
is raised out of the way.
"""

import collections
import concurrent.futures
import hashlib
import re
import secrets
import socket
import threading
import time
import unittest
import urllib.parse

from backend_harness import REDIS_URL, skip_without_backends
from cluster_harness import (CONVERGE_S, RETRY_S, Node, cluster_secret, kill, live_entities,
                             owner_of, start_cluster, unavailable, wait_converged)
from credo_harness import Response, unique_email


THRESHOLD = 5                      # credod's default --lockout-threshold
USERS_IP_LIMIT = 6
CLUSTER_FLAGS = ["--rate-limit", "login.ip=100000/1m",
                 "--rate-limit", f"users.ip={USERS_IP_LIMIT}/1m",
                 "--trusted-proxies", "127.0.0.1/32"]
PARALLEL_LOGINS = 40
PARALLEL_REGISTRATIONS = 2 * USERS_IP_LIMIT
KILL_DETECTION_S = 10.0
LIMIT_HEADERS = ("Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


def report(message: str) -> None:
    print(f"[cluster-rate-limits] {message}", flush=True)


def fresh_client_address() -> str:
    """An address of its own /64 (the bucket subject of an IPv6 client) in 2001:db8::/32."""
    return f"2001:db8:{secrets.randbits(16):x}:{secrets.randbits(16):x}::{secrets.randbits(16):x}"


def lockout_key(email: str) -> str:
    """The lockout entity's key of an email (http/auth.cpp)."""
    return "lockout:" + hashlib.sha256(email.lower().encode()).hexdigest()[:32]


def register(node: Node, email: str, password: str, address: str) -> Response:
    return node.api.post_json("/users", {"email": email, "password": password},
                              headers={"X-Forwarded-For": address})


def new_user(node: Node) -> tuple[str, str, str]:
    """(email, password, user id) of a user registered through `node` from an address of its
    own."""
    email, password = unique_email("rl"), "pw-" + secrets.token_urlsafe(12)
    resp = register(node, email, password, fresh_client_address())
    if resp.status != 201:
        raise AssertionError(f"registering {email} through {node.node_id}: {resp.describe()}")
    return email, password, resp.json["id"]


def login(node: Node, email: str, password: str) -> Response:
    return node.api.post_json("/auth/login", {"email": email, "password": password})


def login_retrying(node: Node, email: str, password: str, bound: float = RETRY_S) -> Response:
    """A login through `node`, sent again after a 503 temporarily_unavailable (while ownership
    moves) until another answer or `bound` seconds."""
    deadline = time.monotonic() + bound
    while True:
        resp = login(node, email, password)
        if not unavailable(resp) or time.monotonic() > deadline:
            return resp
        time.sleep(0.05)


def audit_types(node: Node, user_id: str) -> collections.Counter:
    return collections.Counter(e.get("type") for e in node.api.audit(subject=user_id, limit=1000))


def metric(node: Node, name: str, labels: str = "") -> int:
    text = node.api.get("/metrics").text
    sample = re.escape(name + (f"{{{labels}}}" if labels else ""))
    found = re.search(rf"^{sample} (\d+)$", text, re.M)
    if not found:
        raise AssertionError(f"no sample {name}{{{labels}}} in /metrics of {node.node_id}")
    return int(found.group(1))


def metric_sum(nodes: list[Node], name: str, labels: str = "") -> int:
    return sum(metric(n, name, labels) for n in nodes)


def redis_get(key: str) -> bytes | None:
    """GET over RESP on CREDO_TEST_REDIS_URL (AUTH and SELECT as the URL says)."""
    parts = urllib.parse.urlsplit(REDIS_URL)
    commands = []
    if parts.password:
        commands.append(["AUTH", *([parts.username] if parts.username else []),
                         urllib.parse.unquote(parts.password)])
    if parts.path.strip("/"):
        commands.append(["SELECT", parts.path.strip("/")])
    commands.append(["GET", key])
    with socket.create_connection((parts.hostname, parts.port or 6379), timeout=5) as sock:
        reader = sock.makefile("rb")
        reply = None
        for command in commands:
            sock.sendall(b"*%d\r\n" % len(command) + b"".join(
                b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in command))
            line = reader.readline()
            if line.startswith(b"-"):
                raise AssertionError(f"redis {command[0]}: {line.strip().decode()}")
            if line.startswith(b"$"):
                size = int(line[1:])
                reply = None if size < 0 else reader.read(size + 2)[:-2]
        return reply


class LimitAssertions(unittest.TestCase):

    def assertLimited(self, resp: Response, limit: int, what: str) -> None:
        """429 rate_limited with Retry-After >= 1 and the three RateLimit-* headers (nothing
        remaining, the rule's limit)."""
        if resp.status != 429 or (resp.json or {}).get("error") != "rate_limited":
            self.fail(f"{what}: expected 429 rate_limited, got {resp.describe()}")
        missing = [h for h in LIMIT_HEADERS if resp.header(h) is None]
        self.assertFalse(missing, f"{what}: 429 without {missing}: {resp.describe()}")
        values = {}
        for h in LIMIT_HEADERS:
            if not re.fullmatch(r"\d+", resp.header(h)):
                self.fail(f"{what}: {h} is not a number of seconds/requests: {resp.describe()}")
            values[h] = int(resp.header(h))
        self.assertGreaterEqual(values["Retry-After"], 1, f"{what}: {resp.describe()}")
        self.assertEqual(values["RateLimit-Limit"], limit, f"{what}: {resp.describe()}")
        self.assertEqual(values["RateLimit-Remaining"], 0, f"{what}: {resp.describe()}")

    def assertAudit(self, node: Node, user_id: str, failed: int, locked: int, what: str) -> None:
        types = audit_types(node, user_id)
        self.assertEqual((types["login.failed"], types["login.locked_out"]), (failed, locked),
                         f"{what}: (login.failed, login.locked_out) events of user {user_id} "
                         f"read through {node.node_id}; all of its events: {dict(types)}")


# --------------------------------------------------------------------------------------------
# One cluster shared by tests that leave it whole
# --------------------------------------------------------------------------------------------

@skip_without_backends
class ClusterRateLimitTest(LimitAssertions):

    nodes: list[Node]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.nodes = start_cluster(cls.addClassCleanup, cluster_secret(), extra_flags=CLUSTER_FLAGS)

    def setUp(self):
        wait_converged(self.nodes, CONVERGE_S)

    def test_parallel_wrong_passwords_through_every_node_check_at_most_the_threshold(self):
        email, password, user_id = new_user(self.nodes[0])
        lockouts_before = metric_sum(self.nodes, "credo_rate_limit_lockouts_total")
        denials_before = metric_sum(self.nodes, "credo_rate_limit_denials_total",
                                    'rule="login.account"')
        contenders = [self.nodes[i % len(self.nodes)] for i in range(PARALLEL_LOGINS)]
        barrier = threading.Barrier(len(contenders))

        def attempt(node: Node) -> tuple[Node, Response]:
            barrier.wait(timeout=10)
            return node, login(node, email, "wrong-" + secrets.token_urlsafe(8))

        with concurrent.futures.ThreadPoolExecutor(len(contenders)) as pool:
            results = list(pool.map(attempt, contenders))
        by_status = collections.Counter(r.status for _, r in results)
        report(f"{PARALLEL_LOGINS} parallel wrong passwords over {len(self.nodes)} nodes: "
               f"{dict(by_status)}")
        unexpected = [f"{n.node_id}: {r.describe(200)}" for n, r in results
                      if r.status not in (401, 429)]
        self.assertFalse(unexpected, "answers other than 401 and 429: " + "; ".join(unexpected))
        failed = [r for _, r in results if r.status == 401]
        for r in failed:
            self.assertEqual((r.json or {}).get("error"), "invalid_credentials", r.describe())
        self.assertLessEqual(len(failed), THRESHOLD,
                             f"more passwords checked than --lockout-threshold: {dict(by_status)}")
        for node, r in results:
            if r.status == 429:
                self.assertLimited(r, THRESHOLD, f"parallel wrong password through {node.node_id}")

        self.assertAudit(self.nodes[1], user_id, failed=len(failed), locked=1,
                         what=f"after {len(failed)} answers 401")
        self.assertEqual(metric_sum(self.nodes, "credo_rate_limit_lockouts_total")
                         - lockouts_before, 1, "credo_rate_limit_lockouts_total over the nodes")
        self.assertEqual(metric_sum(self.nodes, "credo_rate_limit_denials_total",
                                    'rule="login.account"') - denials_before,
                         by_status[429], 'credo_rate_limit_denials_total{rule="login.account"} '
                                         "over the nodes counts every 429")

        for node in self.nodes:
            resp = login(node, email, password)
            self.assertLimited(resp, THRESHOLD,
                               f"the right password through {node.node_id} while locked")
        self.assertAudit(self.nodes[2], user_id, failed=len(failed), locked=1,
                         what="after the right password during the lockout")

    def test_a_small_bucket_admits_exactly_its_capacity_through_every_node(self):
        address = fresh_client_address()
        contenders = [self.nodes[i % len(self.nodes)] for i in range(PARALLEL_REGISTRATIONS)]
        barrier = threading.Barrier(len(contenders))

        def attempt(node: Node) -> tuple[Node, Response]:
            email = unique_email("burst")
            barrier.wait(timeout=10)
            return node, register(node, email, "pw-" + secrets.token_urlsafe(12), address)

        with concurrent.futures.ThreadPoolExecutor(len(contenders)) as pool:
            results = list(pool.map(attempt, contenders))
        by_status = collections.Counter(r.status for _, r in results)
        per_node = collections.Counter((n.node_id, r.status) for n, r in results)
        report(f"{PARALLEL_REGISTRATIONS} parallel registrations from {address} with "
               f"users.ip={USERS_IP_LIMIT}/1m: {dict(by_status)}; by node {dict(per_node)}")
        self.assertEqual(dict(by_status), {201: USERS_IP_LIMIT,
                                           429: PARALLEL_REGISTRATIONS - USERS_IP_LIMIT},
                         "answers: " + "; ".join(f"{n.node_id}: {r.describe(200)}"
                                                 for n, r in results if r.status != 201))
        for node, r in results:
            if r.status == 429:
                self.assertLimited(r, USERS_IP_LIMIT, f"registration through {node.node_id}")
        # The bucket is empty for every node, whichever answered before.
        for node in self.nodes:
            resp = register(node, unique_email("after"), "pw-" + secrets.token_urlsafe(12),
                            address)
            self.assertLimited(resp, USERS_IP_LIMIT,
                               f"registration through {node.node_id} after the burst")


# --------------------------------------------------------------------------------------------
# Destructive: a cluster of its own
# --------------------------------------------------------------------------------------------

@skip_without_backends
class ClusterLockoutFailoverTest(LimitAssertions):

    def setUp(self):
        self.nodes = start_cluster(self.addCleanup, cluster_secret(), extra_flags=CLUSTER_FLAGS)

    def test_a_lockout_survives_the_kill_of_its_owner(self):
        email, password, user_id = new_user(self.nodes[0])
        key = lockout_key(email)
        ids = [n.node_id for n in self.nodes]
        owner_id = owner_of(ids, key)
        # A failed login of another email first, so that the login's buckets (login.ip,
        # login.global) are live: the account's lockout is then the only entity the next
        # logins add, on its owner.
        warm = login(self.nodes[0], unique_email("warm"), "wrong")
        self.assertEqual(warm.status, 401, warm.describe())
        live_before = {n.node_id: live_entities(n, "rate_limit") for n in self.nodes}

        for i in range(THRESHOLD):
            node = self.nodes[i % len(self.nodes)]
            resp = login(node, email, "wrong-" + secrets.token_urlsafe(8))
            self.assertEqual((resp.status, (resp.json or {}).get("error")),
                             (401, "invalid_credentials"),
                             f"wrong password {i + 1} of {THRESHOLD} through {node.node_id}: "
                             f"{resp.describe()}")
        for node in self.nodes:
            self.assertLimited(login(node, email, password), THRESHOLD,
                               f"the right password through {node.node_id} once locked")
        self.assertAudit(self.nodes[0], user_id, failed=THRESHOLD, locked=1, what="locked")

        live_after = {n.node_id: live_entities(n, "rate_limit") for n in self.nodes}
        added = {k: live_after[k] - live_before[k] for k in ids}
        report(f"lockout key {key}: owner by rendezvous hashing {owner_id}; live rate_limit "
               f"entities {live_before} -> {live_after}")
        self.assertEqual(added, {k: int(k == owner_id) for k in ids},
                         f"the lockout entity is live on the owner computed from "
                         f"cluster/ownership.cpp ({owner_id}) and nowhere else")
        record = redis_get("credo:rl:" + key)
        self.assertIsNotNone(record, f"no Redis key credo:rl:{key} after the lock")
        self.assertIn(b"locked_until_ms", record, record)

        victim = next(n for n in self.nodes if n.node_id == owner_id)
        survivors = [n for n in self.nodes if n is not victim]
        kill(victim)
        killed_at = time.monotonic()
        wait_converged(survivors, KILL_DETECTION_S)
        report(f"kill -9 of the owner {owner_id}: survivors agree after "
               f"{(time.monotonic() - killed_at) * 1000:.0f} ms; new owner "
               f"{owner_of([n.node_id for n in survivors], key)}")

        for node in survivors:
            resp = login_retrying(node, email, password)
            self.assertLimited(resp, THRESHOLD, f"the right password through {node.node_id} "
                                                f"after the kill of the owner {owner_id}")
        for node in survivors:
            resp = login_retrying(node, email, "wrong-" + secrets.token_urlsafe(8))
            self.assertLimited(resp, THRESHOLD, f"a wrong password through {node.node_id} "
                                                f"after the kill of the owner {owner_id}")
        self.assertAudit(survivors[0], user_id, failed=THRESHOLD, locked=1,
                         what=f"after the kill of the owner {owner_id}")
        report("live rate_limit entities on the survivors after their logins: "
               + str({n.node_id: live_entities(n, "rate_limit") for n in survivors}))


if __name__ == "__main__":
    unittest.main()
