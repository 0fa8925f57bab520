"""POST /users, GET/PATCH/DELETE /me, GET /me/data-export."""

import json
import secrets
import unittest

from credo_harness import CredoTestCase, unique_email


class RegistrationTest(CredoTestCase):

    def test_register_returns_201_with_public_fields_only(self):
        email, password = unique_email(), "correct horse battery"
        resp = self.api.post_json("/users", {"email": email, "password": password, "name": "Ada"})
        self.assertStatus(resp, 201, "registration")
        body = resp.json
        for field in ("id", "email", "name", "created_at"):
            self.assertIn(field, body, f"registration response lacks {field!r}: {body}")
        self.assertIsInstance(body["id"], str)
        self.assertTrue(body["id"], "user id is empty")
        self.assertEqual(body["email"].lower(), email.lower())
        self.assertEqual(body["name"], "Ada")
        self.assertRfc3339(body["created_at"], "created_at")
        self.assertNotIn(password, resp.text, "registration response echoes the password")
        for leaked in ("password", "password_hash", "hash"):
            self.assertNotIn(leaked, body, f"registration response exposes {leaked!r}")

    def test_name_is_optional_and_unknown_fields_ignored(self):
        resp = self.api.post_json("/users", {"email": unique_email(), "password": "longenough",
                                             "is_admin": True, "role": "root"})
        self.assertStatus(resp, 201, "registration without name, with unknown fields")
        self.assertIn("name", resp.json)
        self.assertNotIn("is_admin", resp.json)

    def test_duplicate_email_is_409_case_insensitively(self):
        local = unique_email().split("@")[0]
        first = self.api.post_json("/users", {"email": f"{local}@Example.COM",
                                              "password": "longenough"})
        self.assertStatus(first, 201, "first registration")
        for variant in (f"{local}@Example.COM", f"{local.upper()}@example.com"):
            with self.subTest(variant=variant):
                resp = self.api.post_json("/users", {"email": variant, "password": "longenough"})
                self.assertError(resp, 409, "email_taken", f"re-registering as {variant}")

    def test_bad_emails_are_400(self):
        too_long = "a" * 243 + "@example.com"  # 255 characters
        self.assertEqual(len(too_long), 255)
        for email in ("", "no-at-sign", "a@b", "@example.com", "user@", "two@@example.com",
                      "sp ace@example.com", too_long, 12345, None, ["a@example.com"]):
            with self.subTest(email=email):
                resp = self.api.post_json("/users", {"email": email, "password": "longenough"})
                self.assertError(resp, 400, "invalid_request", f"registration with email {email!r}")

    def test_longest_email_is_accepted(self):
        local = secrets.token_hex(8)  # unique: the durable suite mode keeps users across runs
        email = local + "a" * (242 - len(local)) + "@example.com"  # 254 characters
        self.assertEqual(len(email), 254)
        resp = self.api.post_json("/users", {"email": email, "password": "longenough"})
        self.assertStatus(resp, 201, "registration with a 254-character email")

    def test_password_length_bounds(self):
        for password, expected in (("1234567", 400), ("12345678", 201), ("p" * 1024, 201),
                                   ("p" * 1025, 400), ("", 400)):
            with self.subTest(length=len(password)):
                resp = self.api.post_json("/users", {"email": unique_email(), "password": password})
                if expected == 201:
                    self.assertStatus(resp, 201, f"password of {len(password)} characters")
                else:
                    self.assertError(resp, 400, "invalid_request",
                                     f"password of {len(password)} characters")

    def test_missing_or_mistyped_fields_are_400(self):
        for payload in ({"password": "longenough"}, {"email": unique_email()},
                        {"email": unique_email(), "password": 12345678},
                        {"email": unique_email(), "password": "longenough", "name": 7}):
            with self.subTest(payload=payload):
                resp = self.api.post_json("/users", payload)
                self.assertError(resp, 400, "invalid_request", f"registration with {payload}")

    def test_name_length_bound(self):
        resp = self.api.post_json("/users", {"email": unique_email(), "password": "longenough",
                                             "name": "n" * 200})
        self.assertStatus(resp, 201, "name of 200 characters")
        resp = self.api.post_json("/users", {"email": unique_email(), "password": "longenough",
                                             "name": "n" * 201})
        self.assertError(resp, 400, "invalid_request", "name of 201 characters")


class MeTest(CredoTestCase):

    def test_get_me_returns_the_user(self):
        user, tokens = self.api.new_user_session()
        resp = self.api.get("/me", bearer=tokens["access_token"])
        self.assertStatus(resp, 200, "GET /me")
        self.assertEqual(resp.json.get("id"), user.id)
        self.assertEqual(resp.json.get("email", "").lower(), user.email.lower())
        self.assertEqual(resp.json.get("name"), user.name)
        self.assertNotIn(user.password, resp.text)

    def test_get_me_rejects_tampered_token(self):
        _, tokens = self.api.new_user_session()
        header, payload, sig = tokens["access_token"].split(".")
        flipped = sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB")
        resp = self.api.get("/me", bearer=f"{header}.{payload}.{flipped}")
        self.assertError(resp, 401, "invalid_token", "/me with a tampered signature")
        self.assertTrue(resp.header("www-authenticate", "").lower().startswith("bearer"))

    def test_patch_name(self):
        user, tokens = self.api.new_user_session()
        at = tokens["access_token"]
        resp = self.api.request("PATCH", "/me", json_body={"name": "Renamed",
                                                           "current_password": user.password},
                                bearer=at)
        self.assertStatus(resp, 200, "PATCH /me name")
        self.assertEqual(resp.json.get("name"), "Renamed")
        self.assertEqual(self.api.get("/me", bearer=at).json.get("name"), "Renamed",
                         "GET /me does not show the new name")

    def test_patch_with_wrong_current_password_is_401(self):
        user, tokens = self.api.new_user_session()
        resp = self.api.request("PATCH", "/me", json_body={"name": "X",
                                                           "current_password": "wrong-password"},
                                bearer=tokens["access_token"])
        self.assertError(resp, 401, "invalid_credentials", "PATCH /me with wrong current_password")
        self.assertEqual(self.api.get("/me", bearer=tokens["access_token"]).json.get("name"),
                         user.name, "a refused PATCH changed the name")

    def test_patch_rejects_short_new_password(self):
        user, tokens = self.api.new_user_session()
        resp = self.api.request("PATCH", "/me", json_body={"password": "short",
                                                           "current_password": user.password},
                                bearer=tokens["access_token"])
        self.assertError(resp, 400, "invalid_request", "PATCH /me with a 5-character password")

    def test_patch_without_bearer_is_401(self):
        resp = self.api.request("PATCH", "/me", json_body={"name": "X", "current_password": "y"})
        self.assertError(resp, 401, "invalid_token", "PATCH /me without bearer")

    def test_password_change_ends_other_sessions_only(self):
        user, current = self.api.new_user_session()
        other = self.api.login(user.email, user.password)
        new_password = "a brand new password"
        resp = self.api.request("PATCH", "/me", json_body={"password": new_password,
                                                           "current_password": user.password},
                                bearer=current["access_token"])
        self.assertStatus(resp, 200, "PATCH /me password")
        self.assertNotIn(new_password, resp.text)

        self.assertRefreshFails(self.api.refresh_first_party(other["refresh_token"]),
                                "refresh of another session after a password change")
        self.assertInactive(other["access_token"], "access token of another session after a "
                                                   "password change")
        self.assertStatus(self.api.get("/me", bearer=current["access_token"]), 200,
                          "/me with the session that changed the password")
        self.assertActive(current["access_token"], "access token of the session that changed "
                                                   "the password")
        self.assertStatus(self.api.refresh_first_party(current["refresh_token"]), 200,
                          "refresh of the session that changed the password")

        old = self.api.post_json("/auth/login", {"email": user.email, "password": user.password})
        self.assertError(old, 401, "invalid_credentials", "login with the old password")
        self.assertStatus(self.api.post_json("/auth/login", {"email": user.email,
                                                             "password": new_password}),
                          200, "login with the new password")


class EraseTest(CredoTestCase):

    def test_delete_me_erases_personal_data(self):
        user, tokens = self.api.new_user_session()
        at = tokens["access_token"]

        wrong = self.api.request("DELETE", "/me", json_body={"password": "not-the-password"},
                                 bearer=at)
        self.assertError(wrong, 401, "invalid_credentials", "DELETE /me with a wrong password")
        self.assertStatus(self.api.get("/me", bearer=at), 200, "/me after a refused DELETE")

        resp = self.api.request("DELETE", "/me", json_body={"password": user.password}, bearer=at)
        self.assertStatus(resp, 204, "DELETE /me")
        self.assertEqual(resp.body, b"", "204 must have no body")

        login = self.api.post_json("/auth/login", {"email": user.email, "password": user.password})
        self.assertError(login, 401, "invalid_credentials", "login after erasure")
        self.assertInactive(at, "access token after erasure")
        self.assertError(self.api.get("/me", bearer=at), 401, "invalid_token", "/me after erasure")
        self.assertRefreshFails(self.api.refresh_first_party(tokens["refresh_token"]),
                                "refresh after erasure")

        events = self.api.audit(subject=user.id)
        self.assertTrue(events, "audit events about the erased user are gone")
        types = {e.get("type") for e in events}
        self.assertIn("user.erased", types, f"no user.erased event; types: {types}")
        dump = json.dumps(events).lower()
        self.assertNotIn(user.email.lower(), dump, "audit events still contain the email")
        self.assertNotIn(user.email.split("@")[0].lower(), dump,
                         "audit events still contain the email's local part")

    def test_email_can_be_registered_again_after_erasure(self):
        user, tokens = self.api.new_user_session()
        resp = self.api.request("DELETE", "/me", json_body={"password": user.password},
                                bearer=tokens["access_token"])
        self.assertStatus(resp, 204, "DELETE /me")
        again = self.api.post_json("/users", {"email": user.email, "password": "longenough"})
        self.assertStatus(again, 201, "registration with the email of an erased user")
        self.assertNotEqual(again.json["id"], user.id, "a new account reused the erased user id")

    def test_delete_me_without_bearer_is_401(self):
        resp = self.api.request("DELETE", "/me", json_body={"password": "whatever1"})
        self.assertError(resp, 401, "invalid_token", "DELETE /me without bearer")


class DataExportTest(CredoTestCase):

    def test_data_export_shape(self):
        user, tokens = self.api.new_user_session(device="export-laptop")
        client = self.api.admin_register_client(scopes=["export.read"])
        self.api.grant_consent(tokens["access_token"], client.client_id, ["export.read"])

        resp = self.api.get("/me/data-export", bearer=tokens["access_token"])
        self.assertStatus(resp, 200, "GET /me/data-export")
        body = resp.json
        for key, kind in (("user", dict), ("sessions", list), ("consents", list),
                          ("audit_events", list)):
            self.assertIsInstance(body.get(key), kind, f"data export field {key!r}: {body}")
        self.assertEqual(body["user"].get("id"), user.id)
        self.assertEqual(body["user"].get("email", "").lower(), user.email.lower())
        self.assertNotIn(user.password, resp.text, "data export contains the password")
        self.assertNotIn(tokens["refresh_token"], resp.text, "data export contains a refresh token")
        self.assertIn(tokens["session_id"], [s.get("id") for s in body["sessions"]],
                      "data export lacks the current session")
        self.assertIn((client.client_id, "export.read"),
                      [(c.get("client_id"), c.get("scope")) for c in body["consents"]],
                      "data export lacks the granted consent")
        types = {e.get("type") for e in body["audit_events"]}
        for expected in ("user.registered", "login.succeeded", "consent.granted"):
            self.assertIn(expected, types, f"data export audit events lack {expected}: {types}")
        for event in body["audit_events"]:
            self.assertEqual(event.get("subject"), user.id,
                             f"data export contains an event about someone else: {event}")

    def test_data_export_without_bearer_is_401(self):
        self.assertError(self.api.get("/me/data-export"), 401, "invalid_token",
                         "data export without bearer")


if __name__ == "__main__":
    unittest.main()
