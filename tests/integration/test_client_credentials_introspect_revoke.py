"""client_credentials grant, /auth/introspect (RFC 7662) and /auth/revoke (RFC 7009)."""

import time
import unittest

from credo_harness import FIRST_PARTY_CLIENT, CredoTestCase, OAuthClient, decode_jwt

INTROSPECTION_FIELDS = ("active", "sub", "client_id", "scope", "exp", "iat", "sid", "token_type",
                        "jti")


class ClientCredentialsTest(CredoTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.svc = cls.api.admin_register_client(
            scopes=["svc.read", "svc.write"], redirect_uris=[], grant_types=["client_credentials"])

    def cc(self, client=None, auth="basic", **form):
        return self.api.token({"grant_type": "client_credentials", **form}, client or self.svc,
                              auth=auth)

    def test_client_credentials_token(self):
        before = int(time.time())
        resp = self.cc(scope="svc.read svc.write")
        self.assertStatus(resp, 200, "client_credentials with client_secret_basic")
        self.assertNoStore(resp, "client_credentials")
        body = resp.json
        self.assertEqual(body.get("token_type", "").lower(), "bearer")
        self.assertEqual(body.get("expires_in"), 900)
        self.assertNotIn("refresh_token", body, "client_credentials must not issue a refresh token")
        self.assertEqual(set(body.get("scope", "").split()), {"svc.read", "svc.write"})

        header, claims = decode_jwt(body["access_token"])
        self.assertEqual(header.get("alg"), "ES256")
        self.assertEqual(claims.get("iss"), self.server.url)
        self.assertEqual(claims.get("sub"), self.svc.client_id, "client_credentials sub")
        self.assertEqual(claims.get("client_id"), self.svc.client_id)
        self.assertFalse(claims.get("sid"), f"client_credentials token must carry no sid: {claims}")
        self.assertGreaterEqual(claims.get("iat", 0), before - 5)
        for name in ("aud", "exp", "jti"):
            self.assertIn(name, claims)

    def test_client_secret_post_and_scope_subset(self):
        resp = self.cc(auth="post", scope="svc.read")
        self.assertStatus(resp, 200, "client_credentials with client_secret_post")
        self.assertEqual(resp.json.get("scope"), "svc.read")

    def test_default_scope_is_within_registration(self):
        resp = self.cc()
        self.assertStatus(resp, 200, "client_credentials without scope")
        granted = set(resp.json.get("scope", "").split())
        self.assertLessEqual(granted, {"svc.read", "svc.write"},
                             f"default scope exceeds the registration: {granted}")

    def test_unregistered_scope_is_invalid_scope(self):
        resp = self.cc(scope="svc.read svc.admin")
        self.assertError(resp, 400, "invalid_scope", "client_credentials with an extra scope")

    def test_bad_client_authentication(self):
        wrong = OAuthClient(self.svc.client_id, "wrong-secret", [], [], [])
        resp = self.cc(client=wrong)
        self.assertError(resp, 401, "invalid_client", "client_credentials with a wrong secret")
        self.assertTrue(resp.header("www-authenticate", "").lower().startswith("basic"),
                        "401 after Basic auth must carry WWW-Authenticate: Basic")
        unknown = OAuthClient("no-such-client", "x", [], [], [])
        self.assertError(self.cc(client=unknown), 401, "invalid_client",
                         "client_credentials for an unknown client")
        self.assertError(self.cc(client=wrong, auth="post"), 401, "invalid_client",
                         "client_credentials with a wrong secret (post)")

    def test_public_client_cannot_use_client_credentials(self):
        pub = self.api.admin_register_client(confidential=False, scopes=["svc.read"])
        resp = self.cc(client=pub, auth="none", scope="svc.read")
        self.assertError(resp, (400, 401), ("unauthorized_client", "invalid_client"),
                         "client_credentials by a public client")


class IntrospectionTest(CredoTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.svc = cls.api.admin_register_client(
            scopes=["svc.read"], redirect_uris=[], grant_types=["client_credentials"])
        cls.user, cls.tokens = cls.api.new_user_session()

    def test_access_token_of_another_client(self):
        resp = self.api.introspect(self.tokens["access_token"])
        self.assertStatus(resp, 200, "introspection")
        info = resp.json
        for field in INTROSPECTION_FIELDS:
            self.assertIn(field, info, f"active introspection lacks {field!r}: {info}")
        claims = decode_jwt(self.tokens["access_token"])[1]
        self.assertIs(info["active"], True)
        self.assertEqual(info["token_type"], "access_token")
        self.assertEqual(info["sub"], self.user.id)
        self.assertEqual(info["client_id"], FIRST_PARTY_CLIENT)
        self.assertEqual(info["sid"], self.tokens["session_id"])
        self.assertEqual(info["jti"], claims["jti"])
        self.assertEqual(info["exp"], claims["exp"])
        self.assertEqual(info["iat"], claims["iat"])
        self.assertEqual(set(info["scope"].split()), {"openid", "profile"})

    def test_refresh_token_introspects(self):
        info = self.api.introspect_json(self.tokens["refresh_token"])
        self.assertIs(info.get("active"), True, f"refresh token introspection: {info}")
        self.assertEqual(info.get("token_type"), "refresh_token")
        self.assertEqual(info.get("sub"), self.user.id)
        self.assertEqual(info.get("client_id"), FIRST_PARTY_CLIENT)
        self.assertEqual(info.get("sid"), self.tokens["session_id"])
        self.assertNotIn(self.tokens["refresh_token"], str(info), "introspection echoes the token")

    def test_token_type_hint_is_only_a_hint(self):
        resp = self.api.introspect(self.tokens["access_token"], token_type_hint="refresh_token")
        self.assertStatus(resp, 200, "introspection with a wrong token_type_hint")
        info = resp.json
        self.assertIs(info.get("active"), True, "a wrong token_type_hint must not hide the token")

    def test_client_credentials_token_introspects_without_sid(self):
        cc = self.api.token({"grant_type": "client_credentials"}, self.svc).json
        info = self.api.introspect_json(cc["access_token"])
        self.assertIs(info.get("active"), True)
        self.assertEqual(info.get("sub"), self.svc.client_id)
        self.assertEqual(info.get("client_id"), self.svc.client_id)
        self.assertFalse(info.get("sid"), f"client_credentials introspection has a sid: {info}")

    def test_garbage_token_is_inactive(self):
        for token in ("garbage", "a.b.c", self.tokens["access_token"][:-4] + "AAAA"):
            with self.subTest(token=token[:20]):
                resp = self.api.introspect(token)
                self.assertStatus(resp, 200, "introspection of garbage")
                self.assertEqual(resp.json, {"active": False},
                                 "an inactive token must introspect as exactly {active: false}")

    def test_missing_token_is_invalid_request(self):
        c = self.api.introspector
        resp = self.api.post_form("/auth/introspect", {}, basic=(c.client_id, c.secret))
        self.assertError(resp, 400, "invalid_request", "introspection without token")

    def test_introspection_requires_confidential_client(self):
        token = self.tokens["access_token"]
        resp = self.api.post_form("/auth/introspect", {"token": token})
        self.assertError(resp, 401, "invalid_client", "introspection without client auth")
        resp = self.api.post_form("/auth/introspect", {"token": token,
                                                       "client_id": FIRST_PARTY_CLIENT})
        self.assertError(resp, 401, "invalid_client", "introspection by the public client credo")
        pub = self.api.admin_register_client(confidential=False, scopes=["p.read"])
        resp = self.api.post_form("/auth/introspect", {"token": token,
                                                       "client_id": pub.client_id})
        self.assertError(resp, 401, "invalid_client", "introspection by a public client")
        resp = self.api.post_form("/auth/introspect", {"token": token},
                                  basic=(self.svc.client_id, "wrong"))
        self.assertError(resp, 401, "invalid_client", "introspection with a wrong secret")
        resp = self.api.post_form("/auth/introspect", {"token": token}, bearer=token)
        self.assertError(resp, 401, "invalid_client", "introspection with a user bearer")


class RevocationTest(CredoTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.svc = cls.api.admin_register_client(
            scopes=["svc.read"], redirect_uris=[], grant_types=["client_credentials"])

    def test_revoke_own_access_token(self):
        token = self.api.token({"grant_type": "client_credentials"}, self.svc).json["access_token"]
        self.assertActive(token, "fresh client_credentials token")
        resp = self.api.revoke(token, self.svc)
        self.assertStatus(resp, 200, "revocation of an access token")
        self.assertInactive(token, "revoked access token")

    def test_first_party_client_revokes_with_client_id_only(self):
        user, tokens = self.api.new_user_session()
        resp = self.api.revoke(tokens["access_token"], token_type_hint="access_token")
        self.assertStatus(resp, 200, "credo revoking its access token with client_id only")
        self.assertInactive(tokens["access_token"], "access token revoked by credo")
        self.assertError(self.api.get("/me", bearer=tokens["access_token"]), 401, "invalid_token",
                         "/me with a revoked access token")
        types = [e.get("type") for e in self.api.audit(subject=user.id)]
        self.assertIn("token.revoked", types, f"no token.revoked audit event: {types}")

    def test_revoking_a_refresh_token_revokes_its_family(self):
        _, tokens = self.api.new_user_session()
        rotated = self.api.refresh_first_party(tokens["refresh_token"]).json
        resp = self.api.revoke(rotated["refresh_token"], token_type_hint="refresh_token")
        self.assertStatus(resp, 200, "revocation of a refresh token")
        self.assertRefreshFails(self.api.refresh_first_party(rotated["refresh_token"]),
                                "refresh with a revoked refresh token")
        self.assertInactive(rotated["access_token"], "access token of a revoked family")
        self.assertInactive(rotated["refresh_token"], "revoked refresh token at introspection")

    def test_unknown_token_still_200(self):
        for token in ("never-issued", ""):
            with self.subTest(token=token):
                resp = self.api.revoke(token, self.svc)
                if token:
                    self.assertStatus(resp, 200, "revocation of an unknown token")
                else:
                    self.assertIn(resp.status, (200, 400), f"empty token: {resp.describe()}")

    def test_revocation_requires_client_authentication(self):
        _, tokens = self.api.new_user_session()
        resp = self.api.post_form("/auth/revoke", {"token": tokens["access_token"]},
                                  basic=(self.svc.client_id, "wrong"))
        self.assertError(resp, 401, "invalid_client", "revocation with a wrong secret")
        resp = self.api.post_form("/auth/revoke", {"token": tokens["access_token"]})
        self.assertError(resp, (400, 401), ("invalid_client", "invalid_request"),
                         "revocation without any client identification")
        self.assertActive(tokens["access_token"], "token after refused revocations")


if __name__ == "__main__":
    unittest.main()
