"""POST /auth/login, access-token shape, /auth/sessions, /auth/logout."""

import secrets
import statistics
import time
import unittest

from credo_harness import FIRST_PARTY_CLIENT, CredoTestCase, decode_jwt, unique_email, unique_id


class LoginTest(CredoTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.user = cls.api.register_user()

    def test_login_response_shape(self):
        resp = self.api.post_json("/auth/login", {"email": self.user.email,
                                                  "password": self.user.password})
        self.assertStatus(resp, 200, "login")
        self.assertNoStore(resp, "login")
        body = resp.json
        for field in ("access_token", "token_type", "expires_in", "refresh_token", "session_id",
                      "scope"):
            self.assertIn(field, body, f"login response lacks {field!r}")
        self.assertEqual(body["token_type"], "Bearer")
        self.assertEqual(body["expires_in"], 900, "default access-token lifetime is 900 s")
        self.assertEqual(set(body["scope"].split()), {"openid", "profile"})
        self.assertNotEqual(body["access_token"], body["refresh_token"])
        self.assertNotIn(self.user.password, resp.text)

    def test_login_email_is_case_insensitive(self):
        resp = self.api.post_json("/auth/login", {"email": self.user.email.upper(),
                                                  "password": self.user.password})
        self.assertStatus(resp, 200, "login with the email in upper case")

    def test_access_token_claims(self):
        before = int(time.time())
        tokens = self.api.login(self.user.email, self.user.password)
        after = int(time.time())
        header, claims = decode_jwt(tokens["access_token"])

        self.assertEqual(header.get("alg"), "ES256", f"JWT header: {header}")
        self.assertIn(str(header.get("typ", "")).lower(), ("at+jwt", "application/at+jwt"),
                      f"JWT typ must be at+jwt (RFC 9068): {header}")
        jwks = self.api.get("/.well-known/jwks.json").json
        kids = [k.get("kid") for k in jwks.get("keys", [])]
        self.assertIn(header.get("kid"), kids, "JWT kid is not in the JWKS")

        self.assertEqual(claims.get("iss"), self.server.url, "iss must equal the issuer")
        self.assertEqual(claims.get("sub"), self.user.id, "sub must be the user id")
        self.assertEqual(claims.get("client_id"), FIRST_PARTY_CLIENT)
        self.assertEqual(set(str(claims.get("scope", "")).split()), {"openid", "profile"})
        self.assertEqual(claims.get("sid"), tokens["session_id"], "sid must be the session id")
        aud = claims.get("aud")
        self.assertTrue(aud and (isinstance(aud, str) or
                                 (isinstance(aud, list) and all(isinstance(a, str) for a in aud))),
                        f"aud must be a non-empty string or list of strings: {aud!r}")
        for name in ("exp", "iat"):
            self.assertIsInstance(claims.get(name), int, f"{name} must be an integer: {claims}")
        self.assertLessEqual(before - 5, claims["iat"])
        self.assertLessEqual(claims["iat"], after + 5)
        self.assertEqual(claims["exp"] - claims["iat"], 900, "exp - iat must be the 900 s default")
        self.assertIsInstance(claims.get("jti"), str)
        self.assertTrue(claims["jti"], "jti is empty")

        again = decode_jwt(self.api.login(self.user.email, self.user.password)["access_token"])[1]
        self.assertNotEqual(again["jti"], claims["jti"], "two logins produced the same jti")
        self.assertNotEqual(again["sid"], claims["sid"], "two logins produced the same session")

    def test_unknown_email_and_wrong_password_answer_identically(self):
        wrong = self.api.post_json("/auth/login", {"email": self.user.email,
                                                   "password": "definitely-wrong"})
        unknown = self.api.post_json("/auth/login", {"email": unique_email("nobody"),
                                                     "password": "definitely-wrong"})
        self.assertError(wrong, 401, "invalid_credentials", "login with wrong password")
        self.assertError(unknown, 401, "invalid_credentials", "login with unknown email")
        self.assertEqual(wrong.body, unknown.body,
                         "unknown email and wrong password must produce identical bodies")
        for resp in (wrong, unknown):
            self.assertNotIn("access_token", resp.json)

    def test_unknown_email_costs_about_as_much_as_wrong_password(self):
        # The contract asks for "similar time": an unknown email must still pay for a password
        # hash. Generous bound (a quarter), since the machine is shared and small.
        other = self.api.register_user()

        def timed(email):
            t0 = time.perf_counter()
            resp = self.api.post_json("/auth/login", {"email": email, "password": "wrong-pass"})
            self.assertError(resp, 401, "invalid_credentials", "timed failed login")
            return time.perf_counter() - t0

        wrong = [timed(other.email) for _ in range(2)]
        unknown = [timed(unique_email("ghost")) for _ in range(3)]
        self.assertGreaterEqual(
            statistics.median(unknown), 0.25 * min(wrong),
            f"unknown-email login ({unknown}) is much faster than wrong-password ({wrong}): "
            "user enumeration by timing")

    def test_login_missing_fields_is_400(self):
        for payload in ({"email": self.user.email}, {"password": "x" * 10}, {}):
            with self.subTest(payload=payload):
                resp = self.api.post_json("/auth/login", payload)
                self.assertError(resp, 400, "invalid_request", f"login with {payload}")


class SessionsTest(CredoTestCase):

    def test_sessions_list_marks_only_the_callers_session_current(self):
        user, a = self.api.new_user_session(device="laptop-itest")
        b = self.api.login(user.email, user.password, device="phone-itest")

        resp = self.api.get("/auth/sessions", bearer=a["access_token"])
        self.assertStatus(resp, 200, "GET /auth/sessions")
        sessions = resp.json.get("sessions")
        self.assertIsInstance(sessions, list)
        by_id = {s.get("id"): s for s in sessions}
        self.assertEqual(set(by_id), {a["session_id"], b["session_id"]},
                         f"sessions list should hold exactly the user's two sessions: {sessions}")
        for s in sessions:
            for field in ("id", "device", "ip", "created_at", "last_seen_at", "current"):
                self.assertIn(field, s, f"session entry lacks {field!r}: {s}")
            self.assertRfc3339(s["created_at"], "session created_at")
            self.assertRfc3339(s["last_seen_at"], "session last_seen_at")
            self.assertEqual(s["ip"], "127.0.0.1", f"session ip: {s}")
            self.assertNotIn("refresh_token", s)
        self.assertIs(by_id[a["session_id"]]["current"], True, "caller's session not current")
        self.assertIs(by_id[b["session_id"]]["current"], False, "other session marked current")
        self.assertEqual(by_id[a["session_id"]]["device"], "laptop-itest")
        self.assertEqual(by_id[b["session_id"]]["device"], "phone-itest")

        from_b = self.api.get("/auth/sessions", bearer=b["access_token"]).json["sessions"]
        self.assertEqual([s["id"] for s in from_b if s["current"]], [b["session_id"]],
                         "seen from session B, only B must be current")

    def test_sessions_requires_bearer(self):
        self.assertError(self.api.get("/auth/sessions"), 401, "invalid_token",
                         "GET /auth/sessions without bearer")

    def test_delete_own_other_session(self):
        user, a = self.api.new_user_session()
        b = self.api.login(user.email, user.password)
        resp = self.api.request("DELETE", f"/auth/sessions/{b['session_id']}",
                                bearer=a["access_token"])
        self.assertStatus(resp, 204, "DELETE /auth/sessions/{other own session}")
        self.assertRefreshFails(self.api.refresh_first_party(b["refresh_token"]),
                                "refresh of a deleted session")
        self.assertInactive(b["access_token"], "access token of a deleted session")
        ids = [s["id"] for s in self.api.get("/auth/sessions", bearer=a["access_token"])
               .json["sessions"]]
        self.assertNotIn(b["session_id"], ids, "deleted session still listed")
        self.assertActive(a["access_token"], "the caller's own session after deleting another")

    def test_delete_someone_elses_session_is_404(self):
        _, mine = self.api.new_user_session()
        _, theirs = self.api.new_user_session()
        resp = self.api.request("DELETE", f"/auth/sessions/{theirs['session_id']}",
                                bearer=mine["access_token"])
        self.assertError(resp, 404, "not_found", "DELETE of another user's session")
        self.assertActive(theirs["access_token"], "victim's session after a refused DELETE")
        self.assertStatus(self.api.refresh_first_party(theirs["refresh_token"]), 200,
                          "victim's refresh after a refused DELETE")

    def test_delete_unknown_session_is_404(self):
        _, mine = self.api.new_user_session()
        resp = self.api.request("DELETE", "/auth/sessions/00000000-0000-4000-8000-000000000000",
                                bearer=mine["access_token"])
        self.assertError(resp, 404, "not_found", "DELETE of an unknown session id")


class LogoutTest(CredoTestCase):

    def test_logout_ends_the_session(self):
        user, tokens = self.api.new_user_session()
        other = self.api.login(user.email, user.password)
        resp = self.api.request("POST", "/auth/logout", bearer=tokens["access_token"])
        self.assertStatus(resp, 204, "POST /auth/logout")
        self.assertEqual(resp.body, b"")
        self.assertInactive(tokens["access_token"], "access token after logout")
        self.assertError(self.api.get("/me", bearer=tokens["access_token"]), 401, "invalid_token",
                         "/me after logout")
        self.assertRefreshFails(self.api.refresh_first_party(tokens["refresh_token"]),
                                "refresh after logout")
        self.assertActive(other["access_token"], "another session of the same user after logout")

    def test_logout_requires_bearer(self):
        self.assertError(self.api.request("POST", "/auth/logout"), 401, "invalid_token",
                         "logout without bearer")


class LoginClientsTest(CredoTestCase):
    """/auth/login is a password grant: only the built-in `credo` client and clients registered
    as first party may use it (RFC 9700 2.4), and a confidential one must authenticate."""

    def register(self, first_party: bool, confidential: bool) -> dict:
        client_id = unique_id("login")
        payload = {"client_id": client_id, "redirect_uris": ["https://app.example/cb"],
                   "scopes": ["openid", "profile"], "grant_types": ["authorization_code"],
                   "first_party": first_party}
        secret = None
        if confidential:
            secret = "first-party-" + secrets.token_hex(16)
            payload["client_secret"] = secret
        resp = self.api.admin("POST", "/admin/clients", payload)
        self.assertStatus(resp, 201, "client registration")
        self.assertEqual(resp.json.get("first_party"), first_party)
        return {"id": client_id, "secret": secret}

    def test_only_first_party_clients_get_tokens_from_a_password(self):
        user = self.api.register_user()
        login = {"email": user.email, "password": user.password}
        third = self.register(first_party=False, confidential=False)
        resp = self.api.post_json("/auth/login", {**login, "client_id": third["id"]})
        self.assertError(resp, 400, "unauthorized_client", "third-party client at /auth/login")
        self.assertNotIn("access_token", resp.text)
        third_conf = self.register(first_party=False, confidential=True)
        resp = self.api.post_json("/auth/login", {**login, "client_id": third_conf["id"],
                                                  "client_secret": third_conf["secret"]})
        self.assertError(resp, 400, "unauthorized_client", "confidential third-party client")

        public = self.register(first_party=True, confidential=False)
        resp = self.api.post_json("/auth/login", {**login, "client_id": public["id"]})
        self.assertStatus(resp, 200, "first-party public client")
        self.assertEqual(decode_jwt(resp.json["access_token"])[1]["client_id"], public["id"])

        conf = self.register(first_party=True, confidential=True)
        for name, extra, kw in (
                ("no secret", {}, {}),
                ("wrong secret", {"client_secret": "x" * 40}, {}),
                ("wrong basic", {}, {"basic": (conf["id"], "y" * 40)})):
            with self.subTest(case=name):
                resp = self.api.request("POST", "/auth/login",
                                        json_body={**login, "client_id": conf["id"], **extra},
                                        **kw)
                self.assertError(resp, 401, "invalid_client", f"first-party confidential, {name}")
        resp = self.api.post_json("/auth/login", {**login, "client_id": conf["id"],
                                                  "client_secret": conf["secret"]})
        self.assertStatus(resp, 200, "first-party confidential client with its secret")
        resp = self.api.request("POST", "/auth/login", json_body={**login, "client_id": conf["id"]},
                                basic=(conf["id"], conf["secret"]))
        self.assertStatus(resp, 200, "first-party confidential client with Basic")
        resp = self.api.post_json("/auth/login", {**login, "client_id": "no-such-client"})
        self.assertError(resp, 401, "invalid_client", "unknown client_id")
        self.assertStatus(self.api.post_json("/auth/login", login), 200, "the built-in client")


if __name__ == "__main__":
    unittest.main()
