"""POST/GET/DELETE /auth/consent and consent enforcement on tokens."""

import datetime as dt
import unittest

from credo_harness import CredoTestCase, parse_redirect, pkce_pair, wait_for_next_second, \
    wait_until


class ConsentTest(CredoTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.photos = cls.api.admin_register_client(scopes=["photos.read", "photos.write"])

    def active_consents(self, bearer, client_id):
        resp = self.api.get("/auth/consent", bearer=bearer)
        self.assertStatus(resp, 200, "GET /auth/consent")
        consents = resp.json.get("consents")
        self.assertIsInstance(consents, list, f"GET /auth/consent: {resp.json}")
        return {c["scope"] for c in consents
                if c.get("client_id") == client_id and c.get("revoked_at") is None}

    def authorize_error(self, bearer, scope):
        _, challenge = pkce_pair()
        resp = self.api.authorize(bearer, self.api.authorize_params(self.photos, scope, challenge))
        return parse_redirect(resp).params.get("error")

    def test_grant_and_list(self):
        user, tokens = self.api.new_user_session()
        before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)
        resp = self.api.grant_consent(tokens["access_token"], self.photos.client_id,
                                      ["photos.read", "photos.write"])
        records = resp.json.get("consents")
        self.assertIsInstance(records, list, f"POST /auth/consent: {resp.json}")
        self.assertEqual({r.get("scope") for r in records}, {"photos.read", "photos.write"},
                         "one consent record per granted scope")
        for r in records:
            for field in ("client_id", "scope", "granted_at", "expires_at", "revoked_at"):
                self.assertIn(field, r, f"consent record lacks {field!r}: {r}")
            self.assertEqual(r["client_id"], self.photos.client_id)
            self.assertGreaterEqual(self.assertRfc3339(r["granted_at"], "granted_at"), before)
            self.assertIsNone(r["revoked_at"])

        self.assertEqual(self.active_consents(tokens["access_token"], self.photos.client_id),
                         {"photos.read", "photos.write"})
        types = [e.get("type") for e in self.api.audit(subject=user.id)]
        self.assertIn("consent.granted", types, f"no consent.granted audit event: {types}")

    def test_expires_in_sets_expires_at(self):
        _, tokens = self.api.new_user_session()
        resp = self.api.grant_consent(tokens["access_token"], self.photos.client_id,
                                      ["photos.read"], expires_in=3600)
        record = resp.json["consents"][0]
        granted = self.assertRfc3339(record["granted_at"], "granted_at")
        expires = self.assertRfc3339(record["expires_at"], "expires_at")
        self.assertAlmostEqual((expires - granted).total_seconds(), 3600, delta=5,
                               msg="expires_at must be granted_at + expires_in")

    def test_consent_errors(self):
        _, tokens = self.api.new_user_session()
        bearer = tokens["access_token"]
        resp = self.api.post_json("/auth/consent", {"client_id": "no-such-client",
                                                    "scopes": ["photos.read"]}, bearer=bearer)
        self.assertError(resp, 400, "invalid_request", "consent to an unknown client")
        resp = self.api.post_json("/auth/consent", {"client_id": self.photos.client_id,
                                                    "scopes": ["photos.delete"]}, bearer=bearer)
        self.assertError(resp, 400, "invalid_scope", "consent to an unregistered scope")
        for payload in ({"scopes": ["photos.read"]}, {"client_id": self.photos.client_id},
                        {"client_id": self.photos.client_id, "scopes": "photos.read"}):
            with self.subTest(payload=payload):
                resp = self.api.post_json("/auth/consent", payload, bearer=bearer)
                self.assertError(resp, 400, "invalid_request", f"consent with {payload}")
        resp = self.api.post_json("/auth/consent", {"client_id": self.photos.client_id,
                                                    "scopes": ["photos.read"]})
        self.assertError(resp, 401, "invalid_token", "consent without bearer")
        self.assertError(self.api.get("/auth/consent"), 401, "invalid_token",
                         "GET /auth/consent without bearer")
        self.assertEqual(self.active_consents(bearer, self.photos.client_id), set(),
                         "a refused consent request left a consent behind")

    def test_revoke_consent(self):
        user, tokens = self.api.new_user_session()
        bearer = tokens["access_token"]
        self.api.grant_consent(bearer, self.photos.client_id, ["photos.read", "photos.write"])
        path = f"/auth/consent/{self.photos.client_id}/photos.write"
        resp = self.api.request("DELETE", path, bearer=bearer)
        self.assertStatus(resp, 204, f"DELETE {path}")
        self.assertEqual(self.active_consents(bearer, self.photos.client_id), {"photos.read"},
                         "revoked scope still active, or the other scope was revoked too")
        self.assertError(self.api.request("DELETE", path, bearer=bearer), 404, "not_found",
                         "revoking an already revoked consent")
        self.assertError(self.api.request("DELETE", f"/auth/consent/{self.photos.client_id}/nope",
                                          bearer=bearer), 404, "not_found",
                         "revoking a consent never granted")
        self.assertError(self.api.request("DELETE", path), 401, "invalid_token",
                         "DELETE consent without bearer")
        types = [e.get("type") for e in self.api.audit(subject=user.id)]
        self.assertIn("consent.revoked", types, f"no consent.revoked audit event: {types}")

    def test_other_users_consent_is_untouched(self):
        _, a = self.api.new_user_session()
        _, b = self.api.new_user_session()
        self.api.grant_consent(b["access_token"], self.photos.client_id, ["photos.read"])
        resp = self.api.request("DELETE", f"/auth/consent/{self.photos.client_id}/photos.read",
                                bearer=a["access_token"])
        self.assertError(resp, 404, "not_found", "revoking a consent that only another user has")
        self.assertEqual(self.active_consents(b["access_token"], self.photos.client_id),
                         {"photos.read"})

    def test_enforcement_revocation_and_regrant(self):
        _, tokens = self.api.new_user_session()
        bearer = tokens["access_token"]
        self.assertEqual(self.authorize_error(bearer, "photos.read"), "consent_required",
                         "authorize before any consent")
        self.api.grant_consent(bearer, self.photos.client_id, ["photos.read", "photos.write"])
        both = self.api.code_flow(bearer, self.photos, "photos.read photos.write")
        read_only = self.api.code_flow(bearer, self.photos, "photos.read")
        self.assertActive(both["access_token"], "token before consent revocation")

        resp = self.api.request("DELETE", f"/auth/consent/{self.photos.client_id}/photos.write",
                                bearer=bearer)
        self.assertStatus(resp, 204, "consent revocation")
        self.assertInactive(both["access_token"],
                            "access token carrying a scope whose consent was revoked")
        self.assertRefreshFails(self.api.refresh(self.photos, both["refresh_token"]),
                                "refresh of a grant carrying a revoked scope")
        self.assertActive(read_only["access_token"],
                          "access token without the revoked scope must stay active")
        self.assertStatus(self.api.refresh(self.photos, read_only["refresh_token"]), 200,
                          "refresh of a grant without the revoked scope")
        self.assertEqual(self.authorize_error(bearer, "photos.write"), "consent_required",
                         "authorize for a revoked scope")
        self.assertActive(bearer, "the user's own login token after consent revocation")

        self.api.grant_consent(bearer, self.photos.client_id, ["photos.write"])
        # Revocation cut-offs have one-second resolution: ask for new tokens in a later second.
        wait_for_next_second()
        again = self.api.code_flow(bearer, self.photos, "photos.read photos.write")
        self.assertActive(again["access_token"], "token issued after re-granting consent")
        self.assertStatus(self.api.refresh(self.photos, again["refresh_token"]), 200,
                          "refresh after re-granting consent")

    def test_expired_consent_is_not_honoured(self):
        user, tokens = self.api.new_user_session()
        bearer = tokens["access_token"]
        resp = self.api.grant_consent(bearer, self.photos.client_id, ["photos.read"],
                                      expires_in=2)
        expires = self.assertRfc3339(resp.json["consents"][0]["expires_at"], "expires_at")
        self.assertIsNone(self.authorize_error(bearer, "photos.read"),
                          "authorize inside the consent's lifetime")
        wait_until(expires.timestamp() + 1.1)
        self.assertEqual(self.authorize_error(bearer, "photos.read"), "consent_required",
                         "authorize after the consent expired")
        uid = self.api.get("/me", bearer=bearer).json["id"]
        expired = [e for e in self.api.audit(subject=uid) if e["type"] == "consent.expired"]
        self.assertEqual(len(expired), 1, "one consent.expired audit event")
        self.assertEqual(expired[0]["data"].get("scope"), "photos.read")
        self.assertEqual(expired[0]["client_id"], self.photos.client_id)

    def test_regrant_with_shorter_expiry_stops_refresh_when_it_expires(self):
        _, tokens = self.api.new_user_session()
        bearer = tokens["access_token"]
        self.api.grant_consent(bearer, self.photos.client_id, ["photos.read"])
        grant = self.api.code_flow(bearer, self.photos, "photos.read")
        resp = self.api.grant_consent(bearer, self.photos.client_id, ["photos.read"],
                                      expires_in=1)
        expires = self.assertRfc3339(resp.json["consents"][0]["expires_at"], "expires_at")
        wait_until(expires.timestamp() + 1.1)
        self.assertRefreshFails(self.api.refresh(self.photos, grant["refresh_token"]),
                                "refresh after the re-granted (shorter) consent expired")

    def test_third_party_tokens_cannot_manage_the_account(self):
        _, tokens = self.api.new_user_session()
        bearer = tokens["access_token"]
        self.api.grant_consent(bearer, self.photos.client_id, ["photos.read"])
        third = self.api.code_flow(bearer, self.photos, "photos.read")["access_token"]
        self.assertActive(third, "the third-party token itself is live")
        _, challenge = pkce_pair()
        for method, path in (("GET", "/me"), ("GET", "/me/data-export"), ("GET", "/auth/sessions"),
                             ("GET", "/auth/consent"), ("POST", "/auth/logout")):
            resp = self.api.request(method, path, bearer=third)
            self.assertError(resp, 403, "forbidden", f"{method} {path} with a third-party token")
        resp = self.api.authorize(third, self.api.authorize_params(self.photos, "photos.read",
                                                                   challenge))
        self.assertError(resp, 403, "forbidden", "authorize with a third-party token")
        resp = self.api.post_json("/auth/consent", {"client_id": self.photos.client_id,
                                                    "scopes": ["photos.write"]}, bearer=third)
        self.assertError(resp, 403, "forbidden", "a client granting itself consent")
        self.assertActive(bearer, "the user's own session is untouched")


if __name__ == "__main__":
    unittest.main()
