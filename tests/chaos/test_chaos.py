"""Chaos: a 3-node cluster on the durable stores (PostgreSQL, Redis) under a steady workload
through every node (workload.py), while process faults (faults.py) hit it: kill -9 of one node,
its restart under the same --node-id, then kill -9 of another and its restart. Afterwards the
invariants are checked against what was acknowledged to the clients:

1. no acknowledged session is lost: its latest refresh token still refreshes (through any node),
   or the session shows in GET /auth/sessions;
2. no refresh grant (family) is lost, first-party or third-party (the same check), and no
   acknowledged consent is lost (GET /auth/consent lists it);
3. no audit event of an acknowledged change is lost: login.succeeded and token.issued of each
   login, token.refreshed of each refresh (by the new access token's jti), token.issued of each
   code exchange, consent.granted of each consent grant (by request id);
4. no refresh token succeeds twice: deliberate replays of used tokens fail with invalid_grant
   (and their grant stays revoked), no token appears twice among the 200s;
5. every entity key is served again within 2 s of a kill: per key, the gap from the kill to the
   first success after the key's first failed request;
6. fewer than 1% of the client's operations fail, retrying on another node.

A grant the client loses because it retried a refresh whose outcome it could not know (no answer,
or a 503 while the key's owner died) and the service had in fact rotated the token is not a loss
by the service: the audit log shows the rotation (or the reuse it caused), and the loss counts
as a client error (6). A loss without such evidence fails (1)/(2).

The figures (requests, error rate, unavailability gaps, failover times) are printed with the
prefix [chaos]."""

from __future__ import annotations

import collections
import concurrent.futures
import math
import os
import statistics
import sys
import tempfile
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

from backend_harness import skip_without_backends  # noqa: E402
from cluster_harness import live_sessions, through_any, wait_converged  # noqa: E402
from credo_harness import unique_email  # noqa: E402
from faults import ChaosCluster, FaultEvent, Faults  # noqa: E402
from workload import (NO_ANSWER, OK, UNAVAILABLE, KEYED_OPS, Attempt, Grant,  # noqa: E402
                      Workload)

# The scenario (seconds). The workload runs about 32 s in all.
WARMUP_S = 5.0            # steady workload before the first fault
DOWN_S = 6.0              # a killed node stays down this long before its restart
SETTLE_S = 5.0            # after a restart, before the next fault
TAIL_S = 4.0              # after the last restart, before the workload stops

USERS = 16
SESSIONS_PER_USER = 2
THIRD_PARTY_GRANTS = 8
THREADS = 5

# The goals.
MAX_GAP_S = 2.0
MAX_ERROR_RATE = 0.01
AUDIT_LIMIT = 1000        # /admin/audit's largest page


def report(message: str) -> None:
    print(f"[chaos] {message}", flush=True)


@skip_without_backends
class ChaosTest(unittest.TestCase):

    def setUp(self):
        started = time.monotonic()
        # Every request comes from 127.0.0.1 at ~150 operations/s: rate limits far above that
        # keep the bucket actors in the run (owned, killed and failed over like the others)
        # without refusing the workload.
        self.cluster = ChaosCluster(self.addCleanup, size=3,
                                    extra_flags=["--rate-limit", "all=1000000/1m"])
        self.faults = Faults(self.cluster, log=report)
        api = self.cluster.alive()[0].api
        self.app = api.admin_register_client(
            scopes=["photos.read", "photos.write", "contacts.read"],
            grant_types=["authorization_code", "refresh_token"])
        self.introspector = api.admin_register_client(
            scopes=["internal"], redirect_uris=[], grant_types=["client_credentials"])
        nodes = self.cluster.alive()
        with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
            self.users = list(pool.map(
                lambda i: nodes[i % len(nodes)].api.register_user(unique_email("chaos")),
                range(USERS)))
        self.workload = Workload(self.cluster.endpoints, self.users, self.app, self.introspector,
                                 threads=THREADS, log=report)
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            grants = list(pool.map(self.workload.login, self.users * SESSIONS_PER_USER))
        self.assertTrue(all(grants), self.describe_failures(self.workload.failures))
        for g in grants[:THIRD_PARTY_GRANTS]:
            self.assertIsNotNone(self.workload.new_grant(g),
                                 self.describe_failures(self.workload.failures))
        self.assertEqual(self.workload.failures, [], "setup without faults")
        report(f"setup: 3 nodes, {USERS} users, {len(self.workload.grants)} grants in "
               f"{time.monotonic() - started:.1f} s")

    # -- the scenario ------------------------------------------------------------------------

    def test_kill_restart_kill_under_load(self):
        wl, faults = self.workload, self.faults
        live = {n.node_id: live_sessions(n) for n in self.cluster.alive()}
        order = sorted(live, key=lambda n: -live[n])  # most session entities first
        first, second = order[0], order[1]
        report(f"live session entities per node {live}; victims {first}, then {second}")

        self.addCleanup(self.dump_artifacts)
        wl.start()
        self.addCleanup(self.stop_quietly)
        t0 = time.monotonic()
        self.hold(WARMUP_S)
        faults.kill(first)
        self.hold(DOWN_S, since=faults.events[-1].at)
        faults.restart(first)
        self.hold(SETTLE_S, since=faults.events[-1].at)
        faults.kill(second)
        self.hold(DOWN_S, since=faults.events[-1].at)
        faults.restart(second)
        self.hold(TAIL_S, since=faults.events[-1].at)
        wl.stop()
        run_s = time.monotonic() - t0
        self.assertEqual(wl.errors, [], "exceptions in the workload")
        exits = self.cluster.unexpected_exits()
        self.assertEqual(exits, [], "nodes that died without being killed")

        run_failures = list(wl.failures)
        run_ops = wl.total_ops()
        run_attempts = list(wl.attempts)
        wait_converged(self.cluster.alive(), 15)

        problems: list[str] = []
        final = self.final_checks(problems)
        audit = self.audit_checks(problems)
        lost = self.classify_lost(audit, problems)
        gaps = self.gaps(run_attempts, faults.events, problems)
        self.report_figures(run_s, run_ops, run_attempts, run_failures, final, lost, gaps)

        # 1, 2, 4 as the workload saw them: a replay that succeeded, a token handed out twice,
        # a latest token refused or inactive without doubt, a contract violation.
        problems.extend(f"(workload) {v}" for v in wl.violations)
        # 6: the error rate.
        rate = len(run_failures) / run_ops if run_ops else 1.0
        if rate >= MAX_ERROR_RATE:
            problems.append(f"(6) client error rate {rate:.2%} >= {MAX_ERROR_RATE:.0%}: "
                            + self.describe_failures(run_failures))
        if problems:
            for p in problems:
                report(f"PROBLEM {p}")
            for node in self.cluster.all_nodes():
                report(f"log tail of {node.node_id}:\n{node.server.output_tail(15)}")
            self.fail(f"{len(problems)} chaos invariant violation(s):\n" + "\n".join(problems))

    # -- helpers of the scenario -------------------------------------------------------------

    def hold(self, seconds: float, since: float | None = None) -> None:
        """Lets the workload run until `since + seconds` (pacing of the scenario, not a
        synchronisation); stops early when the workload broke."""
        until = (since if since is not None else time.monotonic()) + seconds
        while time.monotonic() < until:
            if self.workload.errors:
                self.fail("the workload raised:\n" + "\n".join(self.workload.errors[:3]))
            time.sleep(min(0.2, max(0.0, until - time.monotonic())))

    def stop_quietly(self) -> None:
        try:
            self.workload.stop(timeout=30)
        except AssertionError as exc:
            report(f"cleanup: {exc}")

    def dump_artifacts(self) -> None:
        """The request log, the grants, the faults and every node's output, in
        $CREDO_CHAOS_ARTIFACTS (default: a new temporary directory)."""
        base = os.environ.get("CREDO_CHAOS_ARTIFACTS") or tempfile.mkdtemp(prefix="credo-chaos-")
        path = os.path.join(base, f"chaos-{self.workload.run_id}")
        os.makedirs(path, exist_ok=True)
        self.workload.dump(os.path.join(path, "requests.jsonl"))
        t0 = self.faults.events[0].at if self.faults.events else 0.0
        with open(os.path.join(path, "faults.txt"), "w") as f:
            for ev in self.faults.events:
                f.write(f"{ev.at:.3f} (+{ev.at - t0:.3f}, {ev.wall:.3f}) {ev.kind} "
                        f"{ev.node_id} converged_s={ev.converged_s} {ev.detail}\n")
        for i, node in enumerate(self.cluster.processes):
            with open(os.path.join(path, f"node{i}-{node.node_id}.log"), "w") as f:
                f.write(node.server.stdout_text() + "\n--- stderr ---\n" +
                        node.server.stderr_text())
        report(f"artifacts in {path}")

    @staticmethod
    def describe_failures(failures, limit: int = 8) -> str:
        if not failures:
            return "no failures"
        counts = collections.Counter((op, why.split(":")[0]) for op, _, why in failures)
        lines = [f"{n} x {op}: {why}" for (op, why), n in counts.most_common()]
        for op, result, why in failures[:limit]:
            steps = "; ".join(f"{a.node} {a.outcome}{' ' + str(a.status) if a.status else ''}"
                              f"{' ' + a.error if a.error else ''} ({a.request_id})"
                              for a in result.attempts)
            lines.append(f"  e.g. {op}: {why} [{steps}]")
        return "\n".join(lines)

    # -- 1, 2: grants, sessions, consents ------------------------------------------------------

    def final_checks(self, problems: list[str]) -> dict:
        """Refreshes every live grant once more; revoked grants must stay refused; every
        acknowledged consent is listed."""
        wl = self.workload
        out = collections.Counter()
        for g in list(wl.grants):
            if g.state == "live":
                r = wl.refresh_grant(g, "final", count=False)
                if r.resp is not None and r.resp.status == 200:
                    out["refreshed"] += 1
                    continue
                if r.resp is None:
                    problems.append(f"(1/2) final refresh of {g.kind} {g.key} had no answer: "
                                    + self.describe_failures([("final", r, "")]))
                    continue
                out["lost_at_final"] += 1
                if g.state == "lost" and not g.doubtful and g.kind == "first_party":
                    # The workload recorded the violation (the family is lost); whether the
                    # session at least still shows tells (1) from (2).
                    listed = self.session_listed(g)
                    report(f"final refresh of {g.key} refused; the session is "
                           f"{'still' if listed else 'not'} listed in GET /auth/sessions")
            elif g.state in ("replayed", "session_ended"):
                # Reuse detection revoked the grant (or the whole session): it stays revoked
                # whichever node serves it after the faults.
                form = {"grant_type": "refresh_token", "refresh_token": g.refresh_token}
                basic = None
                if g.kind == "first_party":
                    form["client_id"] = "credo"
                else:
                    basic = (self.app.client_id, self.app.secret)
                r = wl.send("final_revoked", g.key, "POST", "/auth/token", form=form,
                            basic=basic, count=False)
                err = (r.resp.json or {}).get("error") if r.resp is not None and \
                    isinstance(r.resp.json, dict) else None
                if r.resp is None or (r.resp.status, err) != (400, "invalid_grant"):
                    problems.append(f"(4) the {g.state} {g.kind} grant of {g.key} is not refused "
                                    f"after the faults: "
                                    f"{r.resp.describe(300) if r.resp else 'no answer'}")
                out["revoked_refused"] += 1
        # Consents, per user, with the access token of a live login grant (or a new login).
        wanted = collections.defaultdict(set)
        for a in wl.acks:
            if a.kind == "consent":
                wanted[a.user_id].add((a.client_id, a.scope))
        for user in self.users:
            if user.id not in wanted:
                continue
            g = next((g for g in wl.grants if g.user.id == user.id and g.state == "live" and
                      g.kind == "first_party"), None) or wl.login(user)
            if g is None:
                problems.append(f"(2) cannot log in {user.id} to list its consents")
                continue
            r = wl.send("final_consent", None, "GET", "/auth/consent", bearer=g.access_token,
                        count=False)
            if r.resp is None or r.resp.status != 200:
                problems.append(f"(2) GET /auth/consent of {user.id}: "
                                f"{r.resp.describe(300) if r.resp else 'no answer'}")
                continue
            listed = {(c.get("client_id"), c.get("scope")) for c in r.resp.json["consents"]
                      if c.get("revoked_at") is None}
            missing = wanted[user.id] - listed
            if missing:
                problems.append(f"(2) acknowledged consents of {user.id} missing from "
                                f"GET /auth/consent: {sorted(missing)}; listed {sorted(listed)}")
            out["consents_checked"] += len(wanted[user.id])
        return out

    def session_listed(self, g: Grant) -> bool:
        r = self.workload.send("final_sessions", None, "GET", "/auth/sessions",
                               bearer=g.access_token, count=False)
        return r.resp is not None and r.resp.status == 200 and \
            g.session_id in [s.get("id") for s in r.resp.json.get("sessions", [])]

    # -- 3: audit ------------------------------------------------------------------------------

    def audit_events(self, user_id: str) -> list[dict]:
        nodes = self.cluster.alive()
        resp = through_any(nodes, lambda n: n.api.admin(
            "GET", "/admin/audit?" + urllib.parse.urlencode(
                {"subject": user_id, "limit": AUDIT_LIMIT})))
        self.assertEqual(resp.status, 200, resp.describe())
        events = resp.json["events"]
        self.assertLess(len(events), AUDIT_LIMIT, f"user {user_id} has {len(events)} audit "
                        f"events: more than one page, the check would be incomplete")
        return events

    def audit_checks(self, problems: list[str]) -> dict[str, list[dict]]:
        """Every acknowledged change has its event: matched by the request id the client sent
        (X-Request-ID) and the session, and for issued tokens by the access token's jti."""
        wl = self.workload
        by_user = {u.id: self.audit_events(u.id) for u in self.users}
        checked = collections.Counter()
        missing = collections.defaultdict(list)   # what -> examples
        for user_id, events in by_user.items():
            by_request = collections.defaultdict(list)
            refreshed_jtis = set()
            for e in events:
                by_request[(e["type"], e.get("request_id"))].append(e)
                if e["type"] == "token.refreshed" and (e.get("data") or {}).get("jti"):
                    refreshed_jtis.add(e["data"]["jti"])
            for a in wl.acks:
                if a.user_id != user_id:
                    continue
                checked[a.kind] += 1
                where = (f"request {a.request_id}, user {user_id}, session {a.session_id}, "
                         f"jti {a.jti}")
                if a.kind == "refresh":
                    if a.jti not in refreshed_jtis:
                        missing["their token.refreshed event (refresh)"].append(where)
                    continue
                if a.kind == "consent":
                    if not by_request[("consent.granted", a.request_id)]:
                        missing["their consent.granted event"].append(where)
                    continue
                if a.kind == "login" and not any(
                        e.get("session_id") == a.session_id
                        for e in by_request[("login.succeeded", a.request_id)]):
                    missing["their login.succeeded event"].append(where)
                issued = [e for e in by_request[("token.issued", a.request_id)]
                          if e.get("session_id") == a.session_id]
                if not issued:
                    missing[f"their token.issued event ({a.kind})"].append(where)
                elif not any((e.get("data") or {}).get("jti") == a.jti for e in issued):
                    got = (issued[0].get("data") or {}).get("jti")
                    missing[f"the issued token's jti in token.issued ({a.kind}; the event "
                            f"has jti {got!r})"].append(where)
        for what, examples in missing.items():
            problems.append(f"(3) {len(examples)} acknowledged changes lack {what}, e.g. "
                            + "; ".join(examples[:3]))
        report("audit events checked: " + ", ".join(f"{k} {v}" for k, v in checked.items()))
        return by_user

    # -- lost grants: the service's fault or a doubtful retry? ---------------------------------

    def classify_lost(self, audit: dict[str, list[dict]], problems: list[str]) -> dict:
        """A grant refused after doubtful refreshes is the client's loss, not the service's, when
        a request that got no answer at all (the connection dropped) rotated the token: the
        audit log shows token.refreshed with that request's id, or the refusal was reuse
        detection (refresh_token.reuse_detected with the refusing request's id) and a request
        without answer came before. When only 503s came before, the service said "retry" for a
        refresh it had carried out, and the retry it asked for lost the grant: a failure of (1)
        or (2), like a loss without any such evidence."""
        out = collections.Counter()
        for g in self.workload.grants:
            if g.state != "lost" or not g.doubtful:
                continue
            events = audit[g.user.id]
            doubtful = {a.request_id: a for a in g.doubtful}
            rotated_by = [doubtful[e["request_id"]] for e in events
                          if e["type"] == "token.refreshed" and e.get("request_id") in doubtful]
            reuse = [e for e in events if e["type"] == "refresh_token.reuse_detected" and
                     e.get("request_id") == g.lost_request_id]
            unanswered = [a for a in g.doubtful if a.outcome == NO_ANSWER]
            what = f"{g.kind} grant of {g.key} (user {g.user.id})"
            steps = "; ".join(f"{a.request_id} via {a.node} at {a.wall:.3f}: {a.outcome} "
                              f"{a.error}" for a in g.doubtful)
            if rotated_by and rotated_by[0].outcome == NO_ANSWER:
                out["rotated by a request left without answer"] += 1
                report(f"{what} lost to a retry: request {rotated_by[0].request_id} rotated "
                       f"the token but its connection dropped ({rotated_by[0].error})")
            elif not rotated_by and reuse and unanswered:
                out["reuse after a request left without answer"] += 1
                report(f"{what} lost to a retry: {g.lost_evidence}")
            elif rotated_by or reuse:
                out["503 for a refresh that was carried out"] += 1
                evidence = (f"token.refreshed of request {rotated_by[0].request_id}"
                            if rotated_by else
                            f"reuse detected on request {g.lost_request_id} "
                            f"(on {reuse[0].get('node')}), no token.refreshed for the 503s")
                problems.append(f"(1/2) {what} lost: a refresh answered 503 had rotated the "
                                f"token ({evidence}); the retry the 503 asked for was refused "
                                f"and revoked the grant. Requests: {steps}; refused by "
                                f"{g.lost_request_id}")
            else:
                out["unexplained"] += 1
                problems.append(f"(1/2) {what} lost without evidence of a rotation by the "
                                f"client's doubtful requests: {g.lost_evidence}")
        return out

    # -- 5: unavailability gaps ----------------------------------------------------------------

    def gaps(self, attempts: list[Attempt], events: list[FaultEvent],
             problems: list[str]) -> list[tuple[FaultEvent, float, str | None, int]]:
        """Per fault: for every key with a failed request (503 or no answer) between this fault
        and the next, the time from the fault to the key's first success after that failure.
        Returns (event, max gap, its key, number of keys that failed)."""
        by_key = collections.defaultdict(list)
        for a in attempts:
            if a.key is not None and a.op in KEYED_OPS:
                by_key[a.key].append(a)
        for atts in by_key.values():
            atts.sort(key=lambda a: a.t1)
        out = []
        for i, ev in enumerate(events):
            end = events[i + 1].at if i + 1 < len(events) else math.inf
            worst, worst_key, failing = 0.0, None, 0
            for key, atts in by_key.items():
                fail = next((a for a in atts if ev.at <= a.t1 < end and
                             a.outcome in (UNAVAILABLE, NO_ANSWER)), None)
                if fail is None:
                    continue
                failing += 1
                ok = next((a for a in atts if a.t1 > fail.t1 and a.outcome == OK), None)
                gap = (ok.t1 - ev.at) if ok else math.inf
                if gap > worst:
                    worst, worst_key = gap, key
            out.append((ev, worst, worst_key, failing))
            if ev.kind == "kill" and worst > MAX_GAP_S:
                problems.append(f"(5) key {worst_key} was not served until {worst:.2f} s after "
                                f"the kill of {ev.node_id} (goal {MAX_GAP_S:.0f} s): "
                                + self.key_timeline(by_key[worst_key], ev.at))
        return out

    @staticmethod
    def key_timeline(atts: list[Attempt], since: float, limit: int = 12) -> str:
        rows = [a for a in atts if a.t1 >= since][:limit]
        return "; ".join(f"+{a.t1 - since:.2f}s {a.op} via {a.node}: {a.outcome}"
                         f"{' ' + str(a.status) if a.status else ''} ({a.request_id})"
                         for a in rows)

    # -- figures -------------------------------------------------------------------------------

    def report_figures(self, run_s, ops, attempts, failures, final, lost, gaps) -> None:
        wl = self.workload
        outcomes = collections.Counter(a.outcome for a in attempts)
        latencies = sorted(a.t1 - a.t0 for a in attempts if a.outcome == OK)
        report(f"run {run_s:.1f} s: {ops} operations ({ops / run_s:.0f}/s), {len(attempts)} "
               f"requests: " + ", ".join(f"{k} {v}" for k, v in outcomes.most_common()))
        report("operations: " + ", ".join(f"{k} {v}" for k, v in wl.ops.items()))
        if latencies:
            report(f"answered request latency: median {statistics.median(latencies) * 1000:.0f}"
                   f" ms, p99 {latencies[int(len(latencies) * 0.99)] * 1000:.0f} ms, max "
                   f"{latencies[-1] * 1000:.0f} ms")
        rate = len(failures) / ops if ops else 0.0
        report(f"client errors after retries: {len(failures)} of {ops} = {rate:.3%}"
               + ("" if not failures else "\n" + self.describe_failures(failures)))
        report(f"replays refused {wl.replays['refused']}, unanswered {wl.replays['unknown']}; "
               f"distinct refresh tokens in 200s {len(wl.ok_refresh_tokens)}")
        states = collections.Counter(g.state for g in wl.grants)
        report("grants by state: " + ", ".join(f"{k} {v}" for k, v in states.items())
               + "; final checks: " + ", ".join(f"{k} {v}" for k, v in final.items()))
        if lost:
            report("grants lost to retries of doubtful refreshes: "
                   + ", ".join(f"{k} {v}" for k, v in lost.items()))
        for ev, worst, key, failing in gaps:
            conv = f"{ev.converged_s * 1000:.0f} ms" if ev.converged_s is not None else "?"
            report(f"{ev.kind} {ev.node_id}: members agree after {conv}; {failing} keys "
                   f"failed, max unavailability gap {worst * 1000:.0f} ms"
                   + (f" ({key})" if key else ""))
        kills = [(ev, worst) for ev, worst, _, _ in gaps if ev.kind == "kill"]
        report(f"SUMMARY requests {len(attempts)}, operations {ops}, client error rate "
               f"{rate:.3%} ({len(failures)}), max unavailability gap after a kill "
               f"{max((w for _, w in kills), default=0.0) * 1000:.0f} ms, failover (survivors "
               f"agree) " + "/".join(f"{ev.converged_s * 1000:.0f}" for ev, _ in kills) + " ms")


if __name__ == "__main__":
    unittest.main()
