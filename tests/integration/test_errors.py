"""Global HTTP conventions of API.md: error shapes, limits, content types, X-Request-ID."""

import json
import unittest
import urllib.parse

from credo_harness import REQUEST_ID_RE, CredoTestCase, unique_email


class ErrorConventionsTest(CredoTestCase):

    def test_unknown_path_is_json_404_not_found(self):
        for path in ("/no/such/path", "/auth/nope", "/users/123/extra", "/.well-known/other"):
            with self.subTest(path=path):
                resp = self.api.get(path)
                self.assertError(resp, 404, "not_found", f"GET {path}")

    def test_wrong_method_is_405_with_allow(self):
        cases = [
            ("DELETE", "/.well-known/openid-configuration", "GET"),
            ("POST", "/.well-known/jwks.json", "GET"),
            ("PUT", "/users", "POST"),
            ("GET", "/auth/token", "POST"),
            ("GET", "/auth/login", "POST"),
            ("PUT", "/me", "GET"),
            ("POST", "/health/live", "GET"),
        ]
        for method, path, expected_allowed in cases:
            with self.subTest(method=method, path=path):
                resp = self.api.request(method, path)
                self.assertError(resp, 405, "method_not_allowed", f"{method} {path}")
                allow = resp.header("allow")
                self.assertTrue(allow, f"405 for {method} {path} has no Allow header")
                allowed = {m.strip().upper() for m in allow.split(",")}
                self.assertIn(expected_allowed, allowed,
                              f"Allow for {path} should list {expected_allowed}: {allow!r}")
                self.assertNotIn(method, allowed, f"Allow for {path} lists the refused {method}")

    def test_malformed_json_is_400_invalid_request(self):
        for body in (b'{"email": ', b"{'single': 'quotes'}", b"\xff\xfe garbage", b""):
            with self.subTest(body=body):
                resp = self.api.request("POST", "/users", body=body,
                                        headers={"Content-Type": "application/json"})
                self.assertError(resp, 400, "invalid_request", f"POST /users with body {body!r}")

    def test_json_that_is_not_an_object_is_400(self):
        for payload in ([1, 2], "a string", 42, None, True):
            with self.subTest(payload=payload):
                resp = self.api.post_json("/users", payload)
                self.assertError(resp, 400, "invalid_request", f"POST /users with {payload!r}")
                resp = self.api.post_json("/auth/login", payload)
                self.assertError(resp, 400, "invalid_request", f"POST /auth/login with {payload!r}")

    def test_body_over_64_kib_is_413(self):
        pad = "x" * (64 * 1024 + 100)
        body = json.dumps({"email": unique_email(), "password": "longenough", "pad": pad})
        resp = self.api.post_large("/users", body.encode(), "application/json")
        self.assertError(resp, 413, "payload_too_large", "JSON body of ~64.1 KiB")
        form = urllib.parse.urlencode({"grant_type": "refresh_token", "refresh_token": pad})
        resp = self.api.post_large("/auth/token", form.encode(),
                                   "application/x-www-form-urlencoded")
        self.assertError(resp, 413, "payload_too_large", "form body of ~64.1 KiB")
        resp = self.api.post_large("/users", b"{" + b" " * (1024 * 1024) + b"}",
                                   "application/json")
        self.assertError(resp, 413, "payload_too_large", "JSON body of 1 MiB")

    def test_odd_paths_and_huge_headers_get_json_errors(self):
        for path in ("/..%2f..%2fetc/passwd", "/%00", "/users/%zz", "/" + "a" * 4000):
            with self.subTest(path=path[:40]):
                resp = self.api.get(path)
                self.assertIn(resp.status, (400, 404, 414), f"GET {path[:40]}: {resp.describe()}")
        resp = self.api.get("/health/live", headers={"X-Padding": "p" * (20 * 1024)})
        self.assertStatus(resp, 431, "request with 20 KiB of headers")

    def test_body_under_the_limit_is_accepted(self):
        # Unknown fields are ignored, so a 60 KiB padding field must not stop a registration.
        resp = self.api.post_json("/users", {"email": unique_email(), "password": "longenough",
                                             "pad": "x" * (60 * 1024)})
        self.assertStatus(resp, 201, "registration with a 60 KiB unknown field")

    def test_unsupported_content_type_is_415(self):
        body = json.dumps({"email": unique_email(), "password": "longenough"}).encode()
        for ctype in ("text/plain", "application/xml", "application/x-www-form-urlencoded"):
            with self.subTest(ctype=ctype):
                resp = self.api.request("POST", "/users", body=body,
                                        headers={"Content-Type": ctype})
                self.assertStatus(resp, 415, f"POST /users as {ctype}")

    def test_json_content_type_with_charset_is_accepted(self):
        body = json.dumps({"email": unique_email(), "password": "longenough"}).encode()
        resp = self.api.request("POST", "/users", body=body,
                                headers={"Content-Type": "application/json; charset=utf-8"})
        self.assertStatus(resp, 201, "POST /users as application/json; charset=utf-8")

    def test_token_endpoint_refuses_json(self):
        resp = self.api.post_json("/auth/token", {"grant_type": "client_credentials"})
        self.assertIn(resp.status, (400, 415), f"JSON to /auth/token: {resp.describe()}")
        self.assertIsInstance(resp.json, dict, "JSON to /auth/token must answer a JSON error")
        self.assertIn("error", resp.json)

    def test_token_endpoint_form_errors(self):
        resp = self.api.post_form("/auth/token", {})
        self.assertError(resp, 400, "invalid_request", "token request without grant_type")
        resp = self.api.post_form("/auth/token", {"grant_type": "password", "username": "a",
                                                  "password": "b", "client_id": "credo"})
        self.assertError(resp, 400, "unsupported_grant_type", "grant_type=password")
        resp = self.api.request("POST", "/auth/token",
                                body=b"grant_type=refresh_token&refresh_token=%ZZ&client_id=credo",
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertError(resp, 400, "invalid_request", "form with a broken percent-escape")

    def test_sane_request_id_is_echoed(self):
        rid = "itest-req.0001:abc_DEF"
        for method, path in (("GET", "/health/live"), ("GET", "/no/such/path"),
                             ("GET", "/me")):
            with self.subTest(path=path):
                resp = self.api.request(method, path, headers={"X-Request-ID": rid})
                self.assertEqual(resp.header("x-request-id"), rid,
                                 f"{method} {path} did not echo a sane X-Request-ID")
        resp = self.api.request("POST", "/users", body=b"{", headers={
            "X-Request-ID": rid, "Content-Type": "application/json"})
        self.assertEqual(resp.header("x-request-id"), rid, "400 did not echo X-Request-ID")

    def test_insane_request_id_is_replaced(self):
        for bad in ("a" * 129, "<script>alert(1)</script>", "has space", "semi;colon"):
            with self.subTest(bad=bad):
                resp = self.api.request("GET", "/health/live", headers={"X-Request-ID": bad})
                rid = resp.header("x-request-id")
                self.assertNotEqual(rid, bad, "an unsafe X-Request-ID was echoed")
                self.assertRegex(rid, REQUEST_ID_RE, "generated X-Request-ID looks unsafe")

    def test_request_id_generated_when_absent_and_unique(self):
        ids = set()
        for path in ("/health/live", "/health/live", "/no/such/path"):
            rid = self.api.get(path).header("x-request-id")
            self.assertRegex(rid, REQUEST_ID_RE, f"generated X-Request-ID on {path}")
            ids.add(rid)
        self.assertEqual(len(ids), 3, f"generated request ids are not unique: {ids}")

    def test_bearer_failures_carry_www_authenticate(self):
        for bearer in (None, "not-a-jwt", "a.b.c"):
            with self.subTest(bearer=bearer):
                resp = self.api.get("/me", bearer=bearer)
                self.assertError(resp, 401, "invalid_token", f"/me with bearer {bearer!r}")
                www = resp.header("www-authenticate", "")
                self.assertTrue(www.lower().startswith("bearer"),
                                f"401 on /me must carry WWW-Authenticate: Bearer, got {www!r}")

    def test_errors_never_echo_submitted_secrets(self):
        secret = "SuperSecretPassword-" + "Z" * 8
        resp = self.api.post_json("/auth/login", {"email": unique_email(), "password": secret})
        self.assertError(resp, 401, "invalid_credentials", "login of an unknown user")
        self.assertNotIn(secret, resp.text, "an error echoed the submitted password")
        resp = self.api.post_json("/users", {"email": "not-an-email", "password": secret})
        self.assertError(resp, 400, "invalid_request", "registration with a bad email")
        self.assertNotIn(secret, resp.text, "an error echoed the submitted password")


if __name__ == "__main__":
    unittest.main()
