"""A stranger on the cluster port (docs/decisions/0013-cluster-gate.md): a CAF process without the
cluster secret (tests/infra/cluster_stranger.cpp) connects to a member's cluster listener, over
plain links (--cluster-insecure) and over mutual TLS with a certificate of the cluster's own CA,
and sends every message a member may send to every actor id from 1 to 3000 (envelopes in the
node's own name and in clear among them), then an exit message with reason `kill` to each. It
gets no answer from any actor (only the first join step answers its challenge), and nothing
changes: no session, consent, bucket or audit event appears, no token is revoked, no actor fails
or restarts, both members keep their view and ring version, the node stays ready and counts the
messages as strangers', and the members still serve each other."""

import json
import os
import subprocess
import time
import unittest

import test_cluster as tc
from backend_harness import skip_without_backends
from cluster_harness import (Node, cluster_secret, cluster_view, ready_status, start_node,
                             supervisors, wait_converged, CONVERGE_S)
from credo_harness import unique_id

# A few thousand ids; fewer under the sanitizers, which make the stranger ten times slower.
MAX_ID = 600 if "/asan/" in os.environ.get("CREDOD", "") else 3000
KINDS = ("session", "consent", "rate_limit", "audit_publisher")


def stranger_path() -> str:
    path = os.environ.get("CREDO_CLUSTER_STRANGER")
    if not path:
        raise unittest.SkipTest("CREDO_CLUSTER_STRANGER is not set (ctest sets it)")
    return path


def metric(node: Node, name: str) -> float:
    resp = node.api.get("/metrics")
    for line in resp.text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} missing from /metrics of {node.node_id}")


def run_stranger(node: Node, user_id: str, tls: list[str] = ()) -> dict:
    host, port = node.cluster.rsplit(":", 1)
    args = [stranger_path(), host, port, "--user", user_id, "--node", node.node_id,
            "--max-id", str(MAX_ID), "--wait-ms", "3000", *tls]
    result = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=300)
    if result.returncode != 0:
        raise AssertionError(f"cluster_stranger exited {result.returncode}: "
                             f"{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


class StrangerMixin:
    """The attack and its checks, for one node `self.node` that the subclass starts."""

    node: Node
    members: list

    def snapshot(self, bearer: str, user_id: str) -> dict:
        api = self.node.api
        sessions = api.request("GET", "/auth/sessions", bearer=bearer)
        consents = api.request("GET", "/auth/consent", bearer=bearer)
        self.assertEqual((sessions.status, consents.status), (200, 200),
                         f"{sessions.describe()} {consents.describe()}")
        actors = supervisors(self.node)
        views = {n.node_id: cluster_view(n) for n in self.members}
        return {
            "views": {k: (sorted(m["node"] for m in v["members"]), v["ring_version"])
                      for k, v in views.items()},
            "sessions": sorted(s["id"] for s in sessions.json["sessions"]),
            "consents": consents.json["consents"],
            "audit": sorted(e.get("event_id", json.dumps(e, sort_keys=True))
                            for e in api.audit(subject=user_id)),
            "actors": {k: {f: actors.get(k, {}).get(f) for f in ("live", "restarts", "failures")}
                       for k in KINDS},
        }

    def attack_changes_nothing(self, tls: list[str] = ()) -> None:
        api = self.node.api
        user = api.register_user()
        grant = api.login(user.email, user.password)
        bearer = grant["access_token"]
        before = self.snapshot(bearer, user.id)
        strangers_before = metric(self.node, "credo_cluster_stranger_messages_total")

        started = time.monotonic()
        outcome = run_stranger(self.node, user.id, list(tls))
        print(f"\n[stranger] {outcome['sent']} messages to {outcome['actors']} actor ids in "
              f"{time.monotonic() - started:.1f} s: {outcome['replies']} answers, "
              f"{outcome['bounced']} bounced by CAF (no such actor), {outcome['refused']} refused "
              f"by CAF's helper actor, {outcome['join_replies']} join challenge answered",
              flush=True)

        self.assertEqual(outcome["replies"], 0,
                         f"actors of the node answered a stranger: {outcome['answers']}")
        self.assertLessEqual(outcome["join_replies"], MAX_ID,
                             "join replies other than to the stranger's own challenges")
        status, checks = ready_status(api)
        self.assertEqual(status, 200, f"/health/ready after the stranger: {checks}")
        after = self.snapshot(bearer, user.id)
        self.assertEqual(after, before, "the stranger changed the node's state")
        self.assertTrue(api.is_active(bearer),
                        "the stranger's revocations reached the revocation set")
        # Only the gate is addressable (CAF itself drops messages to every other id), and it
        # counts all but the join messages it passes to the membership actor.
        self.assertGreater(metric(self.node, "credo_cluster_stranger_messages_total"),
                           strangers_before + 50,
                           "the node did not count the stranger's messages to its gate")
        # The members still serve each other: logins through each (sessions live on either).
        for n in self.members:
            n.api.login(user.email, user.password)


@skip_without_backends
class InsecureStrangerTest(StrangerMixin, unittest.TestCase):
    def setUp(self):
        stranger_path()
        self.secret = cluster_secret()
        self.node = start_node(self.addCleanup, self.secret)
        other = start_node(self.addCleanup, self.secret, seeds=[self.node.cluster])
        self.members = [self.node, other]
        wait_converged(self.members, CONVERGE_S)

    def test_a_stranger_on_a_plain_cluster_port_changes_nothing(self):
        self.attack_changes_nothing()
        # A third node still joins (the membership actor and the gate survived the exit
        # messages) and is served through the attacked one.
        third = start_node(self.addCleanup, self.secret, seeds=[self.node.cluster])
        wait_converged(self.members + [third], CONVERGE_S)
        user = third.api.register_user()
        for n in self.members + [third]:
            self.assertIn("access_token", n.api.login(user.email, user.password))


@skip_without_backends
class TlsStrangerTest(StrangerMixin, unittest.TestCase):
    def setUp(self):
        stranger_path()
        self.ca = tc.tls_material(self)
        self.secret = cluster_secret()
        self.node = tc.start_tls_node(self.addCleanup, self.secret,
                                      self.ca.issue(unique_id("node")))
        other = tc.start_tls_node(self.addCleanup, self.secret, self.ca.issue(unique_id("node")),
                                  seeds=[self.node.cluster])
        self.members = [self.node, other]
        wait_converged(self.members, CONVERGE_S)

    def test_a_stranger_with_a_certificate_of_the_cluster_ca_changes_nothing(self):
        client = self.ca.issue(unique_id("stranger"))
        self.attack_changes_nothing(["--tls-cert", client.cert, "--tls-key", client.key,
                                     "--tls-ca", self.ca.cert])


if __name__ == "__main__":
    unittest.main()
