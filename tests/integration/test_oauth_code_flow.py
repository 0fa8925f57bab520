"""GET /auth/authorize and the authorization_code grant at /auth/token (PKCE, client auth)."""

import secrets
import urllib.parse
import unittest

from credo_harness import CredoTestCase, decode_jwt, parse_redirect, pkce_pair


class CodeFlowTest(CredoTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        api = cls.api
        cls.webapp = api.admin_register_client(
            redirect_uris=["http://127.0.0.1:9/webapp/callback"],
            scopes=["api.read", "api.write", "api.admin"])
        cls.spa = api.admin_register_client(
            confidential=False, redirect_uris=["http://127.0.0.1:9/spa/callback"],
            scopes=["api.read"])
        cls.user, tokens = api.new_user_session()
        cls.bearer = tokens["access_token"]
        # api.admin stays registered but not consented, for the consent_required case.
        api.grant_consent(cls.bearer, cls.webapp.client_id, ["api.read", "api.write"])
        api.grant_consent(cls.bearer, cls.spa.client_id, ["api.read"])

    # -- happy paths -----------------------------------------------------------------------

    def test_confidential_client_with_basic_auth(self):
        verifier, challenge = pkce_pair()
        state = "st-" + secrets.token_urlsafe(8)
        params = self.api.authorize_params(self.webapp, "api.read api.write", challenge, state)
        resp = self.api.authorize(self.bearer, params)
        redirect = parse_redirect(resp)
        self.assertEqual(redirect.base, self.webapp.redirect_uris[0],
                         "authorize redirected somewhere other than the registered redirect_uri")
        self.assertIn("code", redirect.params, f"no code in {resp.header('location')}")
        self.assertNotIn("error", redirect.params)
        self.assertEqual(redirect.params.get("state"), state, "state not echoed")

        token = self.api.exchange_code(self.webapp, redirect.params["code"], verifier)
        self.assertStatus(token, 200, "code exchange with client_secret_basic")
        self.assertNoStore(token, "code exchange")
        body = token.json
        self.assertEqual(body.get("token_type", "").lower(), "bearer")
        self.assertIsInstance(body.get("expires_in"), int)
        self.assertTrue(body.get("refresh_token"), "code exchange gave no refresh_token")
        self.assertEqual(set(body.get("scope", "").split()), {"api.read", "api.write"})

        header, claims = decode_jwt(body["access_token"])
        self.assertEqual(header.get("alg"), "ES256")
        self.assertEqual(claims.get("iss"), self.server.url)
        self.assertEqual(claims.get("sub"), self.user.id)
        self.assertEqual(claims.get("client_id"), self.webapp.client_id)
        self.assertEqual(set(claims.get("scope", "").split()), {"api.read", "api.write"})
        for name in ("aud", "exp", "iat", "jti", "sid"):
            self.assertIn(name, claims, f"code-flow access token lacks {name!r}: {claims}")

        info = self.api.introspect_json(body["access_token"])
        self.assertIs(info.get("active"), True)
        self.assertEqual(info.get("client_id"), self.webapp.client_id)
        self.assertEqual(info.get("sub"), self.user.id)

    def test_confidential_client_with_post_auth(self):
        body = self.api.code_flow(self.bearer, self.webapp, "api.read", auth="post")
        self.assertEqual(set(body["scope"].split()), {"api.read"})

    def test_public_client_with_pkce_and_refresh(self):
        body = self.api.code_flow(self.bearer, self.spa, "api.read", auth="none")
        _, claims = decode_jwt(body["access_token"])
        self.assertEqual(claims.get("client_id"), self.spa.client_id)
        self.assertTrue(body.get("refresh_token"), "public client got no refresh token")
        refreshed = self.api.refresh(self.spa, body["refresh_token"], auth="none")
        self.assertStatus(refreshed, 200, "refresh by a public client with client_id only")
        self.assertNotEqual(refreshed.json["refresh_token"], body["refresh_token"],
                            "refresh token was not rotated")

    def test_state_is_returned_verbatim(self):
        _, challenge = pkce_pair()
        state = "a b/c+d=e&f%g"
        resp = self.api.authorize(self.bearer, self.api.authorize_params(
            self.webapp, "api.read", challenge, state))
        self.assertEqual(parse_redirect(resp).params.get("state"), state,
                         "state with reserved characters did not round-trip")

    # -- /auth/authorize errors before the redirect is trusted ------------------------------

    def test_authorize_without_bearer_is_401_json(self):
        _, challenge = pkce_pair()
        params = self.api.authorize_params(self.webapp, "api.read", challenge)
        for bearer in (None, "garbage"):
            with self.subTest(bearer=bearer):
                resp = self.api.authorize(bearer, params)
                self.assertError(resp, 401, "invalid_token", f"authorize with bearer {bearer!r}")
                self.assertIsNone(resp.header("location"), "401 must not redirect")

    def test_unknown_client_or_redirect_uri_is_400_json_without_redirect(self):
        _, challenge = pkce_pair()
        registered = self.webapp.redirect_uris[0]
        cases = {
            "unknown client": {"client_id": "no-such-client"},
            "unregistered redirect": {"redirect_uri": "http://127.0.0.1:9/evil"},
            "redirect with extra path": {"redirect_uri": registered + "/x"},
            "redirect with extra query": {"redirect_uri": registered + "?x=1"},
            "redirect with other port": {"redirect_uri": registered.replace(":9/", ":10/")},
            "redirect of another client": {"redirect_uri": self.spa.redirect_uris[0]},
        }
        for name, override in cases.items():
            with self.subTest(case=name):
                params = self.api.authorize_params(self.webapp, "api.read", challenge, **override)
                resp = self.api.authorize(self.bearer, params)
                self.assertError(resp, 400, "invalid_request", f"authorize with {name}")
                self.assertIsNone(resp.header("location"), f"{name}: must not redirect")

    def test_repeated_parameters_make_the_request_invalid(self):
        """RFC 6749 3.1: no parameter may appear twice. A repeated client_id or redirect_uri
        cannot be redirected to (400 JSON); any other repeated parameter is reported to the
        client's registered redirect URI."""
        _, challenge = pkce_pair()
        params = self.api.authorize_params(self.webapp, "api.read", challenge, state="dup-1")
        base = urllib.parse.urlencode(params)
        for name in ("client_id", "redirect_uri"):
            with self.subTest(parameter=name):
                resp = self.api.get(f"/auth/authorize?{base}&{name}={urllib.parse.quote(params[name])}",
                                    bearer=self.bearer)
                self.assertError(resp, 400, "invalid_request", f"repeated {name}")
                self.assertIsNone(resp.header("location"))
        for name, value in (("scope", "api.admin"), ("code_challenge", "x" * 43),
                            ("code_challenge_method", "plain"), ("state", "other"),
                            ("response_type", "code")):
            with self.subTest(parameter=name):
                resp = self.api.get(f"/auth/authorize?{base}&{name}={value}", bearer=self.bearer)
                redirect = parse_redirect(resp)
                self.assertEqual(redirect.base, self.webapp.redirect_uris[0])
                self.assertEqual(redirect.params.get("error"), "invalid_request", redirect)
                self.assertNotIn("code", redirect.params)

    # -- /auth/authorize errors reported to the client by redirect --------------------------

    def _authorize_error(self, client, scope, challenge, **overrides):
        state = "err-" + secrets.token_urlsafe(6)
        params = self.api.authorize_params(client, scope, challenge, state, **overrides)
        redirect = parse_redirect(self.api.authorize(self.bearer, params))
        self.assertEqual(redirect.base, client.redirect_uris[0])
        self.assertNotIn("code", redirect.params, f"error redirect carries a code: {redirect}")
        self.assertEqual(redirect.params.get("state"), state, f"error redirect lost state: "
                                                              f"{redirect}")
        return redirect.params.get("error")

    def test_unsupported_response_type(self):
        _, challenge = pkce_pair()
        self.assertEqual(self._authorize_error(self.webapp, "api.read", challenge,
                                               response_type="token"),
                         "unsupported_response_type")

    def test_pkce_is_required_and_must_be_s256(self):
        _, challenge = pkce_pair()
        for client in (self.webapp, self.spa):
            with self.subTest(client=client.client_id, case="no challenge"):
                self.assertEqual(self._authorize_error(client, "api.read", None),
                                 "invalid_request")
            with self.subTest(client=client.client_id, case="plain"):
                self.assertEqual(self._authorize_error(client, "api.read", challenge,
                                                       code_challenge_method="plain"),
                                 "invalid_request")
            with self.subTest(client=client.client_id, case="method missing"):
                self.assertEqual(self._authorize_error(client, "api.read", challenge,
                                                       code_challenge_method=None),
                                 "invalid_request")

    def test_scope_without_consent_is_consent_required(self):
        _, challenge = pkce_pair()
        self.assertEqual(self._authorize_error(self.webapp, "api.read api.admin", challenge),
                         "consent_required")

    def test_unregistered_scope_is_invalid_scope(self):
        _, challenge = pkce_pair()
        self.assertEqual(self._authorize_error(self.webapp, "api.read not.registered", challenge),
                         "invalid_scope")
        self.assertEqual(self._authorize_error(self.spa, "api.write", challenge), "invalid_scope")

    # -- token endpoint: code binding -------------------------------------------------------

    def test_code_is_single_use_and_reuse_revokes_first_tokens(self):
        code, verifier = self.api.get_code(self.bearer, self.webapp, "api.read")
        first = self.api.exchange_code(self.webapp, code, verifier)
        self.assertStatus(first, 200, "first use of a code")
        second = self.api.exchange_code(self.webapp, code, verifier)
        self.assertError(second, 400, "invalid_grant", "second use of a code")
        self.assertInactive(first.json["access_token"],
                            "access token from a code that was used twice (RFC 6749 4.1.2)")
        self.assertRefreshFails(self.api.refresh(self.webapp, first.json["refresh_token"]),
                                "refresh token from a code that was used twice")

    def test_wrong_verifier_is_invalid_grant(self):
        code, _ = self.api.get_code(self.bearer, self.webapp, "api.read")
        other_verifier, _ = pkce_pair()
        resp = self.api.exchange_code(self.webapp, code, other_verifier)
        self.assertError(resp, 400, "invalid_grant", "code exchange with the wrong verifier")

    def test_missing_verifier_is_refused(self):
        code, _ = self.api.get_code(self.bearer, self.webapp, "api.read")
        resp = self.api.token({"grant_type": "authorization_code", "code": code,
                               "redirect_uri": self.webapp.redirect_uris[0]}, self.webapp)
        self.assertError(resp, 400, ("invalid_grant", "invalid_request"),
                         "code exchange without code_verifier")

    def test_wrong_redirect_uri_is_invalid_grant(self):
        code, verifier = self.api.get_code(self.bearer, self.webapp, "api.read")
        resp = self.api.exchange_code(self.webapp, code, verifier,
                                      redirect_uri="http://127.0.0.1:9/elsewhere")
        self.assertError(resp, 400, "invalid_grant", "code exchange with another redirect_uri")

    def test_code_is_bound_to_its_client(self):
        code, verifier = self.api.get_code(self.bearer, self.webapp, "api.read")
        resp = self.api.exchange_code(self.spa, code, verifier,
                                      redirect_uri=self.webapp.redirect_uris[0], auth="none")
        self.assertError(resp, 400, "invalid_grant", "another client redeeming the code")

    def test_garbage_code_is_invalid_grant(self):
        verifier, _ = pkce_pair()
        resp = self.api.exchange_code(self.webapp, "not-a-real-code", verifier)
        self.assertError(resp, 400, "invalid_grant", "code exchange with a made-up code")

    # -- token endpoint: client authentication ---------------------------------------------

    def test_basic_and_post_at_once_is_invalid_request(self):
        code, verifier = self.api.get_code(self.bearer, self.webapp, "api.read")
        resp = self.api.post_form("/auth/token", {
            "grant_type": "authorization_code", "code": code, "code_verifier": verifier,
            "redirect_uri": self.webapp.redirect_uris[0], "client_id": self.webapp.client_id,
            "client_secret": self.webapp.secret},
            basic=(self.webapp.client_id, self.webapp.secret))
        self.assertError(resp, 400, "invalid_request", "client_secret_basic and _post together")

    def test_wrong_secret_is_401_invalid_client(self):
        code, verifier = self.api.get_code(self.bearer, self.webapp, "api.read")
        form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                "redirect_uri": self.webapp.redirect_uris[0]}
        resp = self.api.post_form("/auth/token", form, basic=(self.webapp.client_id, "wrong"))
        self.assertError(resp, 401, "invalid_client", "Basic auth with a wrong secret")
        self.assertTrue(resp.header("www-authenticate", "").lower().startswith("basic"),
                        f"401 after Basic auth must carry WWW-Authenticate: Basic: "
                        f"{resp.describe(200)}")
        resp = self.api.post_form("/auth/token", {**form, "client_id": self.webapp.client_id,
                                                  "client_secret": "wrong"})
        self.assertError(resp, 401, "invalid_client", "client_secret_post with a wrong secret")
        resp = self.api.post_form("/auth/token", form, basic=("no-such-client", "x"))
        self.assertError(resp, 401, "invalid_client", "Basic auth for an unknown client")

    def test_confidential_client_without_auth_is_invalid_client(self):
        code, verifier = self.api.get_code(self.bearer, self.webapp, "api.read")
        resp = self.api.exchange_code(self.webapp, code, verifier, auth="none")
        self.assertError(resp, (400, 401), "invalid_client",
                         "confidential client presenting only client_id")

    def test_client_credentials_not_registered_is_unauthorized_client(self):
        resp = self.api.token({"grant_type": "client_credentials", "scope": "api.read"},
                              self.webapp)
        self.assertError(resp, 400, "unauthorized_client",
                         "client_credentials for a client registered without it")


if __name__ == "__main__":
    unittest.main()
