"""GET /metrics: every family of the contract on every node, valid for promtool, and the event
counters moving when their events happen (request latencies, reuse, revocations, consent)."""

import os
import re
import shutil
import subprocess
import unittest

from credo_harness import CredoTestCase, pkce_pair, raw_request
from metrics_contract import HTTP_BUCKETS, METRICS

FAMILIES = {name: kind for name, (kind, _) in METRICS.items()}
ACTOR_KINDS = {"session", "consent", "rate_limit", "audit_publisher"}


def families(text: str) -> dict[str, str]:
    """name -> type from the # TYPE lines of an exposition."""
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample named exactly `name`."""
    out = []
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        m = re.match(r"^(\S+?)(\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out.append((labels, float(m.group(4))))
    return out


def value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    return sum(v for l, v in samples(text, name) if all(l.get(k) == x for k, x in labels.items()))


def check_exposition(test: unittest.TestCase, text: str, where: str) -> None:
    """The families of the contract with their types, and promtool's verdict."""
    found = families(text)
    missing = {n: t for n, t in FAMILIES.items() if found.get(n) != t}
    test.assertFalse(missing, f"{where}: families missing or of another type: {missing}")
    extra = sorted(n for n in found if n.startswith("credo_") and n not in FAMILIES)
    test.assertFalse(extra, f"{where}: families not in the contract (add them to FAMILIES, "
                            f"the dashboard and docs): {extra}")
    for name, (kind, labels) in METRICS.items():
        suffixes = ("_bucket", "_count", "_sum") if kind == "histogram" else ("",)
        for suffix in suffixes:
            allowed = set(labels) | ({"le"} if suffix == "_bucket" else set())
            for got, _ in samples(text, name + suffix):
                test.assertLessEqual(set(got), allowed, f"{where}: labels of {name}{suffix}")
    bounds = {l["le"] for l, _ in samples(text, "credo_http_request_duration_seconds_bucket")}
    if bounds:  # the alert rules' latency SLI reads le="0.25" and le="1"
        test.assertEqual(bounds, {f"{b:g}" for b in HTTP_BUCKETS} | {"+Inf"},
                         f"{where}: bucket bounds")
    kinds = {l.get("kind") for l, _ in samples(text, "credo_actor_restarts_total")}
    test.assertEqual(kinds, ACTOR_KINDS, f"{where}: credo_actor_restarts_total kinds")
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CREDO_REQUIRE_BACKENDS") == "1":
            test.fail("promtool is not installed (scripts/setup.sh installs package prometheus)")
        return
    r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=60)
    test.assertEqual(r.returncode, 0, f"{where}: promtool check metrics:\n{r.stdout}{r.stderr}")


class MetricsTest(CredoTestCase):

    def metrics(self) -> str:
        resp = self.api.get("/metrics")
        self.assertStatus(resp, 200, "GET /metrics")
        return resp.text

    def test_every_family_is_exported_and_promtool_accepts_it(self):
        self.api.get("/health/live")
        text = self.metrics()
        check_exposition(self, text, "single node")
        self.assertEqual(value(text, "credo_cluster_members"), 1)
        checks = self.api.get("/health").json["checks"]  # "disabled": not configured
        for backend, check in (("postgres", "database"), ("redis", "redis"), ("kafka", "kafka")):
            configured = 0 if checks[check] == "disabled" else 1
            self.assertEqual(value(text, "credo_backend_configured", backend=backend), configured,
                             f"{backend}: /health says {checks[check]}")
        build = samples(text, "credo_build_info")
        self.assertEqual(len(build), 1, build)
        self.assertTrue(build[0][0].get("node") and build[0][0].get("version"), build)
        self.assertEqual(build[0][1], 1)

    def test_request_durations_per_route_status_and_client(self):
        client = self.api.admin_register_client(scopes=["m.read"],
                                                grant_types=["client_credentials"])
        before = self.metrics()
        ok = self.api.token({"grant_type": "client_credentials", "scope": "m.read"}, client)
        self.assertStatus(ok, 200, "client_credentials")
        raw_request(self.server.host, self.server.port, "BREW", "/no/such/route")
        after = self.metrics()
        count = "credo_http_request_duration_seconds_count"
        labels = dict(route="/auth/token", method="POST", status="200", client=client.client_id)
        self.assertEqual(value(after, count, **labels) - value(before, count, **labels), 1,
                         "one client_credentials grant observed under its client")
        self.assertGreaterEqual(value(after, count, route="unmatched", method="other"), 1,
                                "an unknown method on an unknown path is labelled unmatched/other")
        self.assertFalse([l for l, _ in samples(after, count) if l.get("method") == "BREW"],
                         "a client-chosen method must not become a label value")

    def test_security_counters_move_with_their_events(self):
        before = self.metrics()
        user, tokens = self.api.new_user_session()
        first = self.api.refresh_first_party(tokens["refresh_token"])
        self.assertStatus(first, 200, "rotation")
        reuse = self.api.refresh_first_party(tokens["refresh_token"])
        self.assertError(reuse, 400, "invalid_grant", "replay of a rotated refresh token")

        client = self.api.admin_register_client(scopes=["m.write"])
        again = self.api.login(user.email, user.password)
        _, challenge = pkce_pair()
        refused = self.api.authorize(again["access_token"],
                                     self.api.authorize_params(client, "m.write", challenge))
        self.assertIn("consent_required", refused.header("location", ""), refused.describe())

        revoked = self.api.revoke(first.json["access_token"])
        self.assertStatus(revoked, 200, "revocation")
        after = self.metrics()

        def delta(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        self.assertEqual(delta("credo_refresh_token_reuse_total"), 1)
        self.assertEqual(delta("credo_consent_gating_failures_total", stage="authorize",
                               reason="denied"), 1)
        self.assertEqual(delta("credo_consent_gating_failures_total", reason="error"), 0)
        self.assertGreaterEqual(delta("credo_revocation_writes_total"), 1)
        self.assertEqual(delta("credo_revocation_write_failures_total"), 0)


if __name__ == "__main__":
    unittest.main()
