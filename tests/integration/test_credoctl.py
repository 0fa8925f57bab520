"""credoctl, the operator CLI, against a real credod: health, cluster, actors, clients add, keys
rotate, audit queries."""

import json
import os
import subprocess
import unittest

from credo_harness import CredoTestCase, unique_id


def credoctl_path() -> str:
    path = os.environ.get("CREDOCTL")
    if not path:
        raise unittest.SkipTest("CREDOCTL is not set (ctest sets it)")
    return path


class CredoctlTest(CredoTestCase):

    def ctl(self, *args: str, token: str | None = None) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CREDO_")}
        env["CREDO_URL"] = self.server.url
        env["CREDO_ADMIN_TOKEN"] = self.server.admin_token if token is None else token
        return subprocess.run([credoctl_path(), *args], env=env, capture_output=True, text=True,
                              timeout=30, stdin=subprocess.DEVNULL)

    def test_health_prints_the_node_health(self):
        r = self.ctl("health")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["status"], "healthy")

    def test_clients_add_registers_a_usable_client(self):
        client_id = unique_id("ctl-app")  # the durable suite mode keeps clients across runs
        args = ("clients", "add", "--id", client_id, "--secret", "ctl-secret-0123456789-abcdefghijkl",
                "--scope", "read", "--grant-type", "client_credentials")
        r = self.ctl(*args)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(json.loads(r.stdout)["client_id"], client_id)
        self.assertNotIn("ctl-secret-0123456789-abcdefghijkl", r.stdout)
        token = self.api.post_form("/auth/token", {"grant_type": "client_credentials"},
                                   basic=(client_id, "ctl-secret-0123456789-abcdefghijkl"))
        self.assertStatus(token, 200, "client_credentials with the new client")
        again = self.ctl(*args)
        self.assertNotEqual(again.returncode, 0, "a duplicate client must fail")
        self.assertEqual(json.loads(again.stdout)["error"], "conflict")

    def test_keys_rotate_changes_the_active_kid(self):
        before = {k["kid"] for k in self.api.get("/.well-known/jwks.json").json["keys"]}
        r = self.ctl("keys", "rotate")
        self.assertEqual(r.returncode, 0, r.stderr)
        kid = json.loads(r.stdout)["kid"]
        after = {k["kid"] for k in self.api.get("/.well-known/jwks.json").json["keys"]}
        self.assertNotIn(kid, before)
        self.assertIn(kid, after)
        # The old keys stay. (In the durable pass other test modules share the database and may
        # rotate keys meanwhile, so more new kids than this one can appear.)
        self.assertLessEqual(before, after, "a rotation dropped a key from the JWKS")

    def test_cluster_shows_this_node(self):
        r = self.ctl("cluster")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        view = json.loads(r.stdout)
        self.assertEqual(view, self.api.admin("GET", "/admin/cluster").json)
        self.assertIn("ring_version", view)

    def test_actors_lists_every_kind(self):
        r = self.ctl("actors")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        kinds = {s["kind"] for s in json.loads(r.stdout)["supervisors"]}
        self.assertEqual(kinds, {"session", "consent", "rate_limit", "audit_publisher"})

    def test_audit_filters_by_subject_and_limit(self):
        user = self.api.register_user()
        self.api.login(user.email, user.password)
        self.api.login(user.email, user.password)
        r = self.ctl("audit", "--subject", user.id, "--limit", "2")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        events = json.loads(r.stdout)["events"]
        self.assertEqual(len(events), 2, events)
        self.assertTrue(all(e["subject"] == user.id for e in events), events)
        self.assertEqual(events, self.api.audit(subject=user.id, limit=2))
        bad = self.ctl("audit", "--limit", "0")
        self.assertNotEqual(bad.returncode, 0, "--limit 0 must be refused")

    def test_unreachable_node_exits_2(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("CREDO_")}
        r = subprocess.run([credoctl_path(), "--url", "http://127.0.0.1:1", "cluster"], env=env,
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("credoctl:", r.stderr)

    def test_wrong_admin_token_fails(self):
        r = self.ctl("keys", "rotate", token="wrong")
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(json.loads(r.stdout)["error"], "invalid_token")


if __name__ == "__main__":
    unittest.main()
