"""Rate limits (token buckets per address, per OAuth client and per endpoint), the client address
behind trusted proxies, the failed-login lockout, and the flags that configure them.

Every class starts its own server with the rules it needs (`--rate-limit NAME=N/PERIOD`), so a
test's budget is not spent by another class. Lockout servers switch `login.ip` off, so every 429
they give comes from the account's lockout.
"""

import random
import re
import subprocess
import threading
import time
import unittest

from credo_harness import (DURABLE, CredoClient, CredoServer, CredoTestCase, Response,
                           credod_path, server_env, unique_email, unique_id)

RATE_HEADERS = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset")
WRONG = "definitely-not-the-password"


def period(default: str) -> str:
    """A rule's period. On the shared Redis of the durable pass, buckets outlive a server and
    are keyed by rule and parameters, so 127.0.0.1's bucket would carry over from an earlier
    class or run: there every run gets a period of its own (and so fresh buckets)."""
    return f"{random.randint(120, 3600)}s" if DURABLE else default


def header_int(resp: Response, name: str) -> int:
    value = resp.header(name)
    if value is None or not re.fullmatch(r"\d+", value.strip()):
        raise AssertionError(f"{name} is not a whole number of seconds/tokens: {resp.describe()}")
    return int(value)


def metric_value(text: str, name: str, labels: str = "") -> float:
    """The value of one sample of a Prometheus text exposition (0 when absent)."""
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, _, value = line.rpartition(" ")
        if key.strip() == wanted:
            return float(value)
    return 0.0


def start_server(flags, cleanup) -> CredoServer:
    server = CredoServer(flags)
    cleanup(server.stop)
    return server.start()


class RateLimitTestCase(CredoTestCase):

    @classmethod
    def setUpClass(cls):
        unittest.TestCase.setUpClass()
        cls.server = start_server(cls.server_flags, cls.addClassCleanup)
        cls.api = CredoClient(cls.server)

    def assertRateLimited(self, resp: Response, what: str) -> int:
        """429 rate_limited with Retry-After >= 1 and the three RateLimit-* headers; returns
        Retry-After."""
        self.assertError(resp, 429, "rate_limited", what)
        for name in RATE_HEADERS:
            self.assertIsNotNone(resp.header(name), f"{what}: 429 without {name}: "
                                                    f"{resp.describe()}")
            header_int(resp, name)
        retry = header_int(resp, "retry-after")
        self.assertGreaterEqual(retry, 1, f"{what}: Retry-After must be at least 1 s")
        self.assertEqual(header_int(resp, "ratelimit-remaining"), 0,
                         f"{what}: a refusal must say nothing remains: {resp.describe()}")
        return retry

    def assertHasRateHeaders(self, resp: Response, what: str) -> None:
        for name in RATE_HEADERS:
            self.assertIsNotNone(resp.header(name), f"{what}: no {name} header: "
                                                    f"{resp.describe()}")
            header_int(resp, name)
        self.assertGreaterEqual(header_int(resp, "ratelimit-limit"), 1, what)
        self.assertLessEqual(header_int(resp, "ratelimit-remaining"),
                             header_int(resp, "ratelimit-limit"),
                             f"{what}: more remaining than the limit: {resp.describe()}")
        self.assertIsNone(resp.header("retry-after"),
                          f"{what}: an allowed answer carries Retry-After: {resp.describe()}")

    def assertNoRateHeaders(self, resp: Response, what: str) -> None:
        for name in (*RATE_HEADERS, "retry-after"):
            self.assertIsNone(resp.header(name), f"{what}: unexpected {name}: {resp.describe()}")

    def login_resp(self, email: str, password: str, xff: str | None = None) -> Response:
        headers = {"X-Forwarded-For": xff} if xff is not None else None
        return self.api.post_json("/auth/login", {"email": email, "password": password},
                                  headers=headers)

    def metrics(self) -> str:
        resp = self.api.get("/metrics")
        self.assertStatus(resp, 200, "GET /metrics")
        return resp.text


# --------------------------------------------------------------------------------------------
# 1. Registration flood from one address
# --------------------------------------------------------------------------------------------

class RegistrationFloodTest(RateLimitTestCase):
    server_flags = ("--rate-limit", f"users.ip=5/{period('1m')}")

    def test_sixth_registration_from_one_address_is_refused_and_changes_nothing(self):
        remaining, ids = [], []
        for i in range(5):
            resp = self.api.post_json("/users", {"email": unique_email("flood"),
                                                 "password": "pw-flood-123456"})
            self.assertStatus(resp, 201, f"registration {i + 1} of 5")
            ids.append(resp.json["id"])
            self.assertHasRateHeaders(resp, f"registration {i + 1}")
            self.assertEqual(header_int(resp, "ratelimit-limit"), 5,
                             f"registration {i + 1}: RateLimit-Limit is the users.ip capacity")
            remaining.append(header_int(resp, "ratelimit-remaining"))
        self.assertEqual(remaining, sorted(remaining, reverse=True),
                         f"RateLimit-Remaining must decrease: {remaining}")
        self.assertEqual(len(set(remaining)), 5, f"RateLimit-Remaining repeats: {remaining}")
        self.assertEqual(remaining[-1], 0, f"the fifth registration leaves 0: {remaining}")

        refused, refused_ids = [], set()
        for i in range(3):
            email = unique_email("refused")
            rid = unique_id("refused-rq")
            resp = self.api.post_json("/users", {"email": email, "password": "pw-refused-1234"},
                                      headers={"X-Request-ID": rid})
            self.assertRateLimited(resp, f"registration {6 + i}")
            self.assertEqual(header_int(resp, "ratelimit-limit"), 5)
            self.assertNotIn(email, resp.text, "the refusal echoes the email")
            refused.append(email)
            refused_ids.add(rid)

        # Bad input changes nothing: the refused accounts do not exist.
        for email in refused:
            resp = self.login_resp(email, "pw-refused-1234")
            self.assertError(resp, 401, "invalid_credentials",
                             f"login as {email}, whose registration was refused")
        for user_id in ids:
            types = [e.get("type") for e in self.api.audit(subject=user_id)]
            self.assertIn("user.registered", types, f"allowed registration {user_id} not audited")
        leaked = [e for e in self.api.audit(limit=100) if e.get("request_id") in refused_ids]
        self.assertEqual(leaked, [], "a refused registration left audit events")
        self.assertGreaterEqual(
            metric_value(self.metrics(), "credo_rate_limit_denials_total", 'rule="users.ip"'), 3,
            "the refusals are counted under rule users.ip")


# --------------------------------------------------------------------------------------------
# 2. Which responses carry RateLimit-* headers
# --------------------------------------------------------------------------------------------

class RateLimitHeadersTest(RateLimitTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.user = cls.api.register_user()
        cls.client = cls.api.admin_register_client(
            unique_id("svc"), scopes=["api.read"], redirect_uris=[],
            grant_types=["client_credentials"])

    def test_limited_endpoints_carry_ratelimit_headers(self):
        login = self.login_resp(self.user.email, self.user.password)
        self.assertStatus(login, 200, "login")
        self.assertHasRateHeaders(login, "allowed login")

        failed = self.login_resp(self.user.email, WRONG)
        self.assertError(failed, 401, "invalid_credentials", "wrong password")
        self.assertHasRateHeaders(failed, "login refused for a wrong password (not a 429)")

        token = self.api.token({"grant_type": "client_credentials", "scope": "api.read"},
                               self.client)
        self.assertStatus(token, 200, "client_credentials")
        self.assertHasRateHeaders(token, "token endpoint")

        intro = self.api.introspect(login.json["access_token"], self.client)
        self.assertStatus(intro, 200, "introspection")
        self.assertTrue(intro.json.get("active"), f"login token inactive: {intro.describe()}")
        self.assertHasRateHeaders(intro, "introspection")

    def test_unlimited_endpoints_carry_no_ratelimit_headers(self):
        live = self.api.get("/health/live")
        self.assertStatus(live, 200, "GET /health/live")
        self.assertNoRateHeaders(live, "GET /health/live")
        bearer = self.api.login(self.user.email, self.user.password)["access_token"]
        me = self.api.get("/me", bearer=bearer)
        self.assertStatus(me, 200, "GET /me")
        self.assertNoRateHeaders(me, "GET /me")


# --------------------------------------------------------------------------------------------
# 3. The client address: trusted proxies and X-Forwarded-For
# --------------------------------------------------------------------------------------------

class TrustedProxyTest(RateLimitTestCase):
    server_flags = ("--trusted-proxies", "127.0.0.1/32",
                    "--rate-limit", f"login.ip=3/{period('1m')}")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.user = cls.api.register_user()

    def session_ip(self, access_token: str, session_id: str) -> str:
        resp = self.api.get("/auth/sessions", bearer=access_token)
        self.assertStatus(resp, 200, "GET /auth/sessions")
        sessions = resp.json.get("sessions") if isinstance(resp.json, dict) else resp.json
        match = [s for s in sessions or [] if s.get("id", s.get("session_id")) == session_id]
        self.assertEqual(len(match), 1, f"session {session_id} not listed: {resp.describe()}")
        return match[0].get("ip")

    def test_forwarded_address_has_its_own_budget(self):
        client, other = "203.0.113.7", "203.0.113.8"
        first = None
        for i in range(3):
            resp = self.login_resp(self.user.email, self.user.password, xff=client)
            self.assertStatus(resp, 200, f"login {i + 1} of 3 from {client}")
            self.assertEqual(header_int(resp, "ratelimit-limit"), 3)
            self.assertEqual(header_int(resp, "ratelimit-remaining"), 2 - i,
                             f"login {i + 1} from {client}: {resp.describe()}")
            first = first or resp.json
        denied = self.login_resp(self.user.email, self.user.password, xff=client)
        self.assertRateLimited(denied, f"4th login from {client}")
        self.assertEqual(header_int(denied, "ratelimit-limit"), 3)

        resp = self.login_resp(self.user.email, self.user.password, xff=other)
        self.assertStatus(resp, 200, f"login from {other}: another address's budget is untouched")
        self.assertEqual(header_int(resp, "ratelimit-remaining"), 2)

        self.assertEqual(self.session_ip(first["access_token"], first["session_id"]), client,
                         "the session records the forwarded client address, not the proxy's")

    def test_right_most_untrusted_hop_is_the_client(self):
        # The proxy (127.0.0.1, trusted) appends to what the client sent: the spoofable left
        # entry is not the client; a trusted hop on the right is skipped.
        for xff in ("198.51.100.66, 203.0.113.20", "198.51.100.66, 203.0.113.20, 127.0.0.1"):
            resp = self.login_resp(self.user.email, self.user.password, xff=xff)
            self.assertStatus(resp, 200, f"login with X-Forwarded-For {xff!r}")
            self.assertEqual(self.session_ip(resp.json["access_token"], resp.json["session_id"]),
                             "203.0.113.20", f"client address for X-Forwarded-For {xff!r}")
        # Both counted for 203.0.113.20: one left.
        self.assertEqual(header_int(resp, "ratelimit-remaining"), 1, resp.describe())

    def test_several_forwarded_for_headers_are_one_list(self):
        # http.client cannot repeat a header through a dict, so send the request by hand.
        import http.client
        import json
        conn = http.client.HTTPConnection(self.server.host, self.server.port, timeout=15)
        try:
            conn.putrequest("POST", "/auth/login")
            body = json.dumps({"email": self.user.email, "password": self.user.password}).encode()
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(len(body)))
            conn.putheader("X-Forwarded-For", "198.51.100.67")
            conn.putheader("X-Forwarded-For", "203.0.113.21")
            conn.endheaders(body)
            raw = conn.getresponse()
            data = raw.read()
        finally:
            conn.close()
        self.assertEqual(raw.status, 200, data)
        tokens = json.loads(data)
        self.assertEqual(self.session_ip(tokens["access_token"], tokens["session_id"]),
                         "203.0.113.21", "the last X-Forwarded-For header holds the nearest hop")

    def test_malformed_forwarded_for_is_harmless(self):
        values = ["not-an-ip", "999.1.1.1", "", ",,,", " , ", "[::1", "203.0.113.5:8080",
                  "unknown, ", "\t", "1.2.3.4.5", "x" * 3000, "::ffff:zzzz",
                  ", ".join(["203.0.113.9"] * 200)]
        for xff in values:
            resp = self.api.get("/health/live", headers={"X-Forwarded-For": xff})
            self.assertStatus(resp, 200, f"GET /health/live with X-Forwarded-For {xff[:40]!r}")
        # An entry that does not parse ends the walk: the trusted peer itself is the client.
        resp = self.login_resp(self.user.email, self.user.password, xff="203.0.113.30, garbage")
        self.assertStatus(resp, 200, "login with a malformed right-most X-Forwarded-For entry")
        self.assertEqual(self.session_ip(resp.json["access_token"], resp.json["session_id"]),
                         "127.0.0.1", "a malformed nearest hop must not let the client pick an "
                                      "address further left")
        for xff in ("not-an-ip", "999.1.1.1"):
            resp = self.login_resp(self.user.email, WRONG, xff=xff)
            self.assertIn(resp.status, (401, 429), resp.describe())
        self.assertTrue(self.server.running, "credod died on a malformed X-Forwarded-For")


class UntrustedProxyTest(RateLimitTestCase):
    server_flags = ("--rate-limit", f"login.ip=3/{period('1m')}")

    def test_forwarded_for_is_ignored_without_trusted_proxies(self):
        user = self.api.register_user()
        tokens = None
        for i, xff in enumerate(("203.0.113.7", "203.0.113.8", "198.51.100.1")):
            resp = self.login_resp(user.email, user.password, xff=xff)
            self.assertStatus(resp, 200, f"login {i + 1} of 3")
            self.assertEqual(header_int(resp, "ratelimit-remaining"), 2 - i,
                             f"login {i + 1} with XFF {xff}: all count for 127.0.0.1 "
                             f"({resp.describe()})")
            tokens = tokens or resp.json
        for xff in ("203.0.113.99", "10.9.8.7", None):
            resp = self.login_resp(user.email, user.password, xff=xff)
            self.assertRateLimited(resp, f"4th login from 127.0.0.1 with XFF {xff!r}")
        sessions = self.api.get("/auth/sessions", bearer=tokens["access_token"])
        self.assertStatus(sessions, 200, "GET /auth/sessions")
        listed = sessions.json.get("sessions") if isinstance(sessions.json, dict) \
            else sessions.json
        self.assertTrue(listed, sessions.describe())
        for s in listed:
            self.assertEqual(s.get("ip"), "127.0.0.1",
                             f"an untrusted X-Forwarded-For must not be recorded: {s}")


# --------------------------------------------------------------------------------------------
# 4 + 5. Failed-login lockout
# --------------------------------------------------------------------------------------------

class LockoutTest(RateLimitTestCase):
    """Default lockout policy (5 failures, 1 minute first lock)."""
    server_flags = ("--rate-limit", "login.ip=off")

    def lockout_sequence(self, email: str, what: str) -> list[Response]:
        """5 wrong passwords (401 each) then a 6th (429); returns the six answers."""
        answers = []
        for i in range(5):
            resp = self.login_resp(email, WRONG)
            self.assertError(resp, 401, "invalid_credentials", f"{what}: wrong password {i + 1}")
            answers.append(resp)
        sixth = self.login_resp(email, WRONG)
        retry = self.assertRateLimited(sixth, f"{what}: 6th wrong password")
        self.assertEqual(header_int(sixth, "ratelimit-limit"), 5,
                         f"{what}: RateLimit-Limit is the lockout threshold")
        self.assertGreater(retry, 30, f"{what}: the default first lock lasts about a minute")
        self.assertLessEqual(retry, 60, f"{what}: the default first lock lasts about a minute")
        answers.append(sixth)
        return answers

    def test_five_failures_lock_the_account_even_for_the_right_password(self):
        before = self.metrics()
        user = self.api.register_user()
        known = self.lockout_sequence(user.email, "known account")
        correct = self.login_resp(user.email, user.password)
        self.assertRateLimited(correct, "the right password during the lockout")
        self.assertNotIn("access_token", correct.text)
        self.assertEqual(header_int(correct, "ratelimit-limit"), 5)

        events = self.api.audit(subject=user.id)
        locked = [e for e in events if e.get("type") == "login.locked_out"]
        self.assertEqual(len(locked), 1, f"exactly one login.locked_out event: {events}")
        self.assertEqual(locked[0].get("subject"), user.id)
        failed = [e for e in events if e.get("type") == "login.failed"]
        self.assertEqual(len(failed), 5, "the refused attempts checked no password, so they are "
                                         f"not login failures: {failed}")
        self.assertFalse([e for e in events if e.get("type") == "login.succeeded"],
                         "the right password during the lockout must not log in")

        after = self.metrics()
        delta = lambda name, labels="": (metric_value(after, name, labels) -
                                         metric_value(before, name, labels))
        self.assertEqual(delta("credo_rate_limit_lockouts_total"), 1, "one lockout counted")
        self.assertEqual(delta("credo_rate_limit_denials_total", 'rule="login.account"'), 2,
                         "the 6th wrong and the right password are login.account denials")

        # An unknown email: the very same sequence and refusal, so the answers tell nothing.
        unknown = self.lockout_sequence(unique_email("ghost"), "unknown email")
        self.assertEqual(known[0].body, unknown[0].body, "401 bodies differ")
        self.assertEqual(known[-1].body, unknown[-1].body, "429 bodies differ")
        self.assertEqual(header_int(known[-1], "ratelimit-limit"),
                         header_int(unknown[-1], "ratelimit-limit"))
        self.assertEqual(metric_value(self.metrics(), "credo_rate_limit_lockouts_total") -
                         metric_value(after, "credo_rate_limit_lockouts_total"), 1,
                         "an unknown email's lockout is counted like a known one's")

    def test_lockout_is_per_email(self):
        victim, bystander = self.api.register_user(), self.api.register_user()
        self.lockout_sequence(victim.email, "victim")
        resp = self.login_resp(bystander.email, bystander.password)
        self.assertStatus(resp, 200, "another account is not locked")
        resp = self.login_resp(victim.email.upper(), victim.password)
        self.assertRateLimited(resp, "the same email in another case is the same account")

    def test_parallel_wrong_passwords_check_at_most_threshold_passwords(self):
        user = self.api.register_user()
        barrier = threading.Barrier(20)
        results: list[Response | BaseException] = []
        lock = threading.Lock()

        def attempt():
            try:
                barrier.wait(timeout=10)
                resp = self.login_resp(user.email, WRONG)
            except BaseException as exc:  # reported below
                resp = exc
            with lock:
                results.append(resp)

        threads = [threading.Thread(target=attempt) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        errors = [r for r in results if isinstance(r, BaseException)]
        self.assertFalse(errors, f"requests failed: {errors}")
        self.assertEqual(len(results), 20)
        statuses = sorted(r.status for r in results)
        n401 = statuses.count(401)
        n429 = statuses.count(429)
        self.assertEqual(n401 + n429, 20, f"only 401 and 429 expected: {statuses}")
        self.assertGreaterEqual(n401, 1, f"some attempt must be checked: {statuses}")
        self.assertLessEqual(n401, 5, f"more passwords checked than the threshold: {statuses}")
        for r in results:
            if r.status == 429:
                self.assertRateLimited(r, "parallel attempt refused")
        failed = [e for e in self.api.audit(subject=user.id)
                  if e.get("type") == "login.failed"]
        self.assertLessEqual(len(failed), 5, f"{len(failed)} login.failed events for one account")
        self.assertEqual(len(failed), n401, "one login.failed event per 401")
        resp = self.login_resp(user.email, user.password)
        self.assertEqual(resp.status, 429 if n401 == 5 else 200, resp.describe())


class LockoutBackoffTest(RateLimitTestCase):
    """Short locks (2 s, doubling to at most 4 s) to watch them end and grow."""
    server_flags = ("--rate-limit", "login.ip=off", "--lockout-window", "1m",
                    "--lockout-backoff", "2s", "--lockout-max", "4s")

    def fail_until_locked(self, email: str, what: str) -> int:
        """Wrong passwords (401) until the lock: the 5th is the last 401; returns the 6th's
        Retry-After."""
        for i in range(5):
            resp = self.login_resp(email, WRONG)
            self.assertError(resp, 401, "invalid_credentials", f"{what}: wrong password {i + 1}")
        return self.assertRateLimited(self.login_resp(email, WRONG), f"{what}: 6th wrong")

    def poll(self, email: str, password: str, until: int, what: str,
             timeout: float = 12.0) -> Response:
        """Logs in every 100 ms until the status is `until` (a refused attempt changes
        nothing); every other answer must be 429."""
        deadline = time.monotonic() + timeout
        while True:
            resp = self.login_resp(email, password)
            if resp.status == until:
                return resp
            self.assertRateLimited(resp, f"{what}: while locked")
            if time.monotonic() > deadline:
                self.fail(f"{what}: still locked after {timeout} s: {resp.describe()}")
            time.sleep(0.1)

    def test_lock_ends_and_grows(self):
        user = self.api.register_user()
        first = self.fail_until_locked(user.email, "first lock")
        self.assertLessEqual(first, 2, "first lock lasts --lockout-backoff 2s")
        started = time.monotonic()

        # A wrong password is refused while locked; once the lock ends it is checked (401) and
        # counts as the first failure of the next round.
        self.poll(user.email, WRONG, 401, "first lock")
        self.assertLess(time.monotonic() - started, 2 + 3, "the first lock outlasted 2 s")
        for i in range(4):
            resp = self.login_resp(user.email, WRONG)
            self.assertError(resp, 401, "invalid_credentials", f"second round, wrong {i + 2}")
        second = self.assertRateLimited(self.login_resp(user.email, WRONG), "second lock")
        self.assertGreater(second, first, "the second lock must last longer than the first")
        self.assertLessEqual(second, 4, "--lockout-max 4s caps the lock")
        locked = [e for e in self.api.audit(subject=user.id)
                  if e.get("type") == "login.locked_out"]
        self.assertEqual(len(locked), 2, f"two lockouts, two events: {locked}")

        # After the lock the right password logs in.
        resp = self.poll(user.email, user.password, 200, "second lock")
        self.assertIn("access_token", resp.json)

    def test_success_resets_the_failure_count(self):
        user = self.api.register_user()
        for i in range(3):
            self.assertError(self.login_resp(user.email, WRONG), 401, "invalid_credentials",
                             f"wrong {i + 1}")
        self.assertStatus(self.login_resp(user.email, user.password), 200, "right password")
        # Were the 3 failures still counted, the 2nd of these would lock.
        for i in range(5):
            self.assertError(self.login_resp(user.email, WRONG), 401, "invalid_credentials",
                             f"wrong {i + 1} after a successful login")
        retry = self.assertRateLimited(self.login_resp(user.email, WRONG), "locked again")
        self.assertLessEqual(retry, 2, "a success also resets the backoff to --lockout-backoff")
        self.poll(user.email, user.password, 200, "lock after the reset")


# --------------------------------------------------------------------------------------------
# 6. Per-client rule
# --------------------------------------------------------------------------------------------

class PerClientRuleTest(RateLimitTestCase):
    server_flags = ("--rate-limit", "introspect.client=3/1m")

    def register(self):
        return self.api.admin_register_client(unique_id("rs"), scopes=["internal"],
                                              redirect_uris=[],
                                              grant_types=["client_credentials"])

    def test_introspection_budget_is_per_authenticated_client(self):
        first, second = self.register(), self.register()
        token = "not-a-token-" + unique_id("t")

        # A stranger naming the first client (wrong secret) does not spend its budget.
        for i in range(3):
            resp = self.api.post_form("/auth/introspect", {"token": token},
                                      basic=(first.client_id, "wrong-" + unique_id("s")))
            self.assertError(resp, 401, "invalid_client", f"wrong secret {i + 1}")

        for i in range(3):
            resp = self.api.introspect(token, first)
            self.assertStatus(resp, 200, f"introspection {i + 1} of 3 by {first.client_id}")
            self.assertEqual(resp.json, {"active": False})
            self.assertEqual(header_int(resp, "ratelimit-limit"), 3, resp.describe())
            self.assertEqual(header_int(resp, "ratelimit-remaining"), 2 - i, resp.describe())
        denied = self.api.introspect(token, first)
        self.assertRateLimited(denied, "4th introspection by the same client")
        self.assertEqual(header_int(denied, "ratelimit-limit"), 3)

        resp = self.api.introspect(token, second)
        self.assertStatus(resp, 200, "another client has its own budget")
        self.assertEqual(header_int(resp, "ratelimit-remaining"), 2, resp.describe())
        self.assertGreaterEqual(
            metric_value(self.metrics(), "credo_rate_limit_denials_total",
                         'rule="introspect.client"'), 1)


# --------------------------------------------------------------------------------------------
# 7. Bad flags
# --------------------------------------------------------------------------------------------

class BadFlagsTest(unittest.TestCase):

    CASES = [
        (["--rate-limit", "nope=1/1m"], "--rate-limit"),
        (["--rate-limit", "login.ip=0/1m"], "--rate-limit"),
        (["--rate-limit", "login.ip=5/1x"], "--rate-limit"),
        (["--rate-limit", "login.ip"], "--rate-limit"),
        (["--rate-limit", "login.ip=-1/1m"], "--rate-limit"),
        (["--trusted-proxies", "not-a-cidr"], "--trusted-proxies"),
        (["--trusted-proxies", "10.0.0.0/33"], "--trusted-proxies"),
        (["--lockout-window", "0"], "--lockout-window"),
        (["--lockout-backoff", "5x"], "--lockout-backoff"),
        (["--lockout-backoff", "10s", "--lockout-max", "5s"], "--lockout-max"),
    ]

    def run_credod(self, args):
        cmd = [credod_path(), "--http", "127.0.0.1:0", *args]
        try:
            return subprocess.run(cmd, env=server_env(unique_id("adm")),
                                  stdin=subprocess.DEVNULL, capture_output=True, timeout=15)
        except subprocess.TimeoutExpired:
            self.fail(f"credod {' '.join(args)} kept running instead of refusing to start")

    def test_bad_values_are_fatal_with_a_one_line_reason(self):
        for args, flag in self.CASES:
            with self.subTest(args=args):
                result = self.run_credod(args)
                out = result.stdout.decode("utf-8", "replace")
                err = result.stderr.decode("utf-8", "replace")
                self.assertEqual(result.returncode, 2,
                                 f"credod {' '.join(args)}: exit {result.returncode}\n{out}{err}")
                self.assertNotIn('"listening"', out, f"credod {' '.join(args)} started")
                lines = [l for l in err.splitlines() if l.strip()]
                self.assertEqual(len(lines), 1, f"credod {' '.join(args)}: expected one line "
                                                f"of reason on stderr, got {err!r}")
                self.assertIn(flag, lines[0], f"the reason must name {flag}: {lines[0]!r}")

    def test_good_values_start(self):
        server = start_server(["--rate-limit", "all=100/10s", "--rate-limit", "login.ip=off",
                               "--trusted-proxies", "10.0.0.0/8,::1,192.168.0.1",
                               "--lockout-window", "90", "--lockout-backoff", "30s",
                               "--lockout-max", "2h"], self.addCleanup)
        self.assertTrue(server.running)


# --------------------------------------------------------------------------------------------
# 8. Everything off
# --------------------------------------------------------------------------------------------

class LimitsOffTest(RateLimitTestCase):
    server_flags = ("--rate-limit", "all=off", "--lockout-threshold", "0")

    def test_no_limit_and_no_lockout(self):
        user = self.api.register_user()
        for i in range(10):
            resp = self.login_resp(user.email, WRONG)
            self.assertError(resp, 401, "invalid_credentials", f"wrong password {i + 1}")
            self.assertNoRateHeaders(resp, f"wrong password {i + 1} with every rule off")
        self.assertStatus(self.login_resp(user.email, user.password), 200,
                          "the right password after 10 failures without a lockout")
        for i in range(12):
            resp = self.api.post_json("/users", {"email": unique_email("free"),
                                                 "password": "pw-free-1234567"})
            self.assertStatus(resp, 201, f"registration {i + 1} with users.ip off")
        text = self.metrics()
        self.assertEqual(metric_value(text, "credo_rate_limit_lockouts_total"), 0)
        denials = sum(float(line.rpartition(" ")[2]) for line in text.splitlines()
                      if line.startswith("credo_rate_limit_denials_total{"))
        self.assertEqual(denials, 0, "no request was refused")


if __name__ == "__main__":
    unittest.main()
