"""Discovery, JWKS, /admin/* (clients, keys, cluster, actors, audit), health and metrics."""

import re
import unittest

from credo_harness import DURABLE, UUID_RE, CredoTestCase, decode_jwt, unique_id


class DiscoveryAndJwksTest(CredoTestCase):

    def test_discovery_document(self):
        resp = self.api.get("/.well-known/openid-configuration")
        self.assertStatus(resp, 200, "discovery")
        self.assertTrue(resp.header("content-type", "").startswith("application/json"))
        doc = resp.json
        base = self.server.url
        self.assertEqual(doc.get("issuer"), base, "issuer must equal the server URL")
        expected_endpoints = {
            "authorization_endpoint": "/auth/authorize",
            "token_endpoint": "/auth/token",
            "introspection_endpoint": "/auth/introspect",
            "revocation_endpoint": "/auth/revoke",
            "jwks_uri": "/.well-known/jwks.json",
        }
        for field, path in expected_endpoints.items():
            self.assertEqual(doc.get(field), base + path, f"discovery {field}")
        self.assertEqual(set(doc.get("grant_types_supported", [])),
                         {"authorization_code", "refresh_token", "client_credentials"})
        self.assertEqual(doc.get("response_types_supported"), ["code"])
        self.assertEqual(doc.get("code_challenge_methods_supported"), ["S256"])
        self.assertEqual(set(doc.get("token_endpoint_auth_methods_supported", [])),
                         {"client_secret_basic", "client_secret_post", "none"})
        scopes = doc.get("scopes_supported")
        self.assertIsInstance(scopes, list, "scopes_supported must be a list")
        self.assertTrue({"openid", "profile"} <= set(scopes),
                        f"scopes_supported lacks openid/profile: {scopes}")

    def test_jwks(self):
        resp = self.api.get("/.well-known/jwks.json")
        self.assertStatus(resp, 200, "JWKS")
        keys = resp.json.get("keys")
        self.assertIsInstance(keys, list)
        self.assertTrue(keys, "JWKS has no keys")
        for key in keys:
            for field in ("kid", "kty", "alg", "use"):
                self.assertIn(field, key, f"JWK lacks {field!r}: {key}")
            self.assertEqual(key["use"], "sig")
            self.assertEqual(key["alg"], "ES256")
            self.assertEqual(key["kty"], "EC")
            self.assertEqual(key.get("crv"), "P-256")
            self.assertTrue(key.get("x") and key.get("y"), f"EC key lacks coordinates: {key}")
            self.assertNotIn("d", key, "JWKS publishes a private key!")
        kids = [k["kid"] for k in keys]
        self.assertEqual(len(kids), len(set(kids)), f"duplicate kids: {kids}")


class AdminClientsTest(CredoTestCase):

    def test_register_confidential_client(self):
        client_id, secret = unique_id("conf"), "very-secret-value-0123456789abcdef"
        payload = {"client_id": client_id, "client_secret": secret,
                   "redirect_uris": ["http://127.0.0.1:9/cb"], "scopes": ["a.read"],
                   "grant_types": ["authorization_code", "refresh_token", "client_credentials"]}
        resp = self.api.admin("POST", "/admin/clients", payload)
        self.assertStatus(resp, 201, "POST /admin/clients (confidential)")
        body = resp.json
        for field in ("client_id", "redirect_uris", "scopes", "grant_types",
                      "token_endpoint_auth_method", "created_at"):
            self.assertIn(field, body, f"client registration response lacks {field!r}: {body}")
        self.assertEqual(body["client_id"], client_id)
        self.assertEqual(body["redirect_uris"], payload["redirect_uris"])
        self.assertEqual(set(body["scopes"]), set(payload["scopes"]))
        self.assertEqual(set(body["grant_types"]), set(payload["grant_types"]))
        self.assertIn(body["token_endpoint_auth_method"],
                      ("client_secret_basic", "client_secret_post"))
        self.assertRfc3339(body["created_at"], "client created_at")
        self.assertNotIn(secret, resp.text, "client registration echoes the secret")
        self.assertNotIn("client_secret", body)

        events = [e for e in self.api.audit(limit=100)
                  if e.get("type") == "client.registered" and e.get("client_id") == client_id]
        self.assertTrue(events, "no client.registered audit event for the new client")
        self.assertNotIn(secret, str(events), "audit event contains the client secret")

    def test_a_confidential_client_without_a_secret_gets_one_generated_once(self):
        client_id = unique_id("gen")
        resp = self.api.admin("POST", "/admin/clients", {
            "client_id": client_id, "redirect_uris": [], "scopes": ["a.read"],
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "client_secret_post"})
        self.assertStatus(resp, 201, "POST /admin/clients without a secret")
        secret = resp.json.get("client_secret")
        self.assertIsInstance(secret, str)
        self.assertGreaterEqual(len(secret), 43, "256 bits, base64url")
        self.assertEqual(resp.json.get("token_endpoint_auth_method"), "client_secret_post")
        self.assertEqual(resp.header("cache-control"), "no-store")
        token = self.api.post_form("/auth/token", {"grant_type": "client_credentials",
                                                   "client_id": client_id,
                                                   "client_secret": secret})
        self.assertStatus(token, 200, "client_credentials with the generated secret")
        events = [e for e in self.api.audit(limit=100) if e.get("client_id") == client_id]
        self.assertTrue(events)
        self.assertNotIn(secret, str(events), "audit event contains the generated secret")

    def test_redirect_uris_that_are_allowed(self):
        for uri in ("https://app.example/cb", "https://app.example:8443/cb?x=1",
                    "http://127.0.0.1:9/cb", "http://127.0.0.53/cb", "http://[::1]:8080/cb",
                    "http://localhost/cb", "com.example.app:/oauth2redirect",
                    "com.example.app://callback"):
            with self.subTest(uri=uri):
                resp = self.api.admin("POST", "/admin/clients", {
                    "client_id": unique_id("uri"), "redirect_uris": [uri], "scopes": ["a"],
                    "grant_types": ["authorization_code"]})
                self.assertStatus(resp, 201, f"redirect URI {uri}")

    def test_register_public_client(self):
        resp = self.api.admin("POST", "/admin/clients", {
            "client_id": unique_id("pub"), "redirect_uris": ["http://127.0.0.1:9/cb"],
            "scopes": ["a.read"], "grant_types": ["authorization_code", "refresh_token"]})
        self.assertStatus(resp, 201, "POST /admin/clients (public)")
        self.assertEqual(resp.json.get("token_endpoint_auth_method"), "none")

    def test_registration_errors(self):
        existing = self.api.admin_register_client()
        dup = self.api.admin("POST", "/admin/clients", {
            "client_id": existing.client_id, "client_secret": "another-secret-0123456789abcdefgh",
            "redirect_uris": ["http://127.0.0.1:9/cb"], "scopes": ["a"],
            "grant_types": ["authorization_code"]})
        self.assertError(dup, 409, "conflict", "duplicate client_id")

        base = {"client_id": unique_id("bad"), "redirect_uris": ["http://127.0.0.1:9/cb"],
                "scopes": ["a"], "grant_types": ["authorization_code"]}
        cases = {
            "public client_credentials": {**base, "grant_types": ["client_credentials"]},
            "unknown grant type": {**base, "client_secret": "s3cret-" * 6,
                                   "grant_types": ["password"]},
            "implicit grant": {**base, "client_secret": "s3cret-" * 6,
                               "grant_types": ["implicit"]},
            # Secrets are stored as unsalted SHA-256: only high-entropy ones (0003).
            "secret of 31 characters": {**base, "client_secret": "x" * 31},
            "secret of 8 characters": {**base, "client_secret": "s3cret-s"},
            "secret with auth method none": {**base, "client_secret": "s3cret-" * 6,
                                             "token_endpoint_auth_method": "none"},
            "unknown auth method": {**base, "token_endpoint_auth_method": "private_key_jwt"},
            "missing client_id": {k: v for k, v in base.items() if k != "client_id"},
            # Redirect URIs (RFC 9700 2.1, RFC 8252 7): https, http only to loopback, or a
            # private-use scheme in reverse-domain form.
            "plain http to a remote host": {**base, "redirect_uris": ["http://app.example/cb"]},
            "http to a host named like loopback": {**base,
                                                   "redirect_uris": ["http://127.0.0.1.evil.example/cb"]},
            "userinfo": {**base, "redirect_uris": ["https://good.example@evil.example/cb"]},
            "javascript scheme": {**base, "redirect_uris": ["javascript:alert(1)"]},
            "data scheme": {**base, "redirect_uris": ["data:text/html,x"]},
            "scheme without a dot": {**base, "redirect_uris": ["myapp://cb"]},
            "fragment": {**base, "redirect_uris": ["https://app.example/cb#x"]},
            "scopes not a list": {**base, "scopes": "a"},
        }
        for name, payload in cases.items():
            with self.subTest(case=name):
                resp = self.api.admin("POST", "/admin/clients", payload)
                self.assertError(resp, 400, "invalid_request", f"client registration: {name}")

    def test_admin_endpoints_require_the_admin_token(self):
        _, tokens = self.api.new_user_session()
        payload = {"client_id": unique_id("x"), "redirect_uris": [], "scopes": ["a"],
                   "grant_types": ["authorization_code"]}
        for token in ("", "wrong-admin-token", tokens["access_token"]):
            for method, path, body in (("POST", "/admin/clients", payload),
                                       ("POST", "/admin/keys/rotate", None),
                                       ("GET", "/admin/audit?limit=5", None),
                                       ("GET", "/admin/cluster", None),
                                       ("GET", "/admin/actors", None)):
                with self.subTest(path=path, token=token[:12]):
                    if body is None:
                        resp = self.api.request(method, path, bearer=token or None)
                    else:
                        resp = self.api.request(method, path, json_body=body,
                                                bearer=token or None)
                    self.assertError(resp, 401, "invalid_token", f"{method} {path} with "
                                                                 f"admin token {token[:12]!r}")


class KeyRotationTest(CredoTestCase):

    def test_rotation_keeps_old_tokens_valid_and_signs_with_new_key(self):
        user, before = self.api.new_user_session()
        old_kids = {k["kid"] for k in self.api.get("/.well-known/jwks.json").json["keys"]}
        old_kid = decode_jwt(before["access_token"])[0]["kid"]
        self.assertIn(old_kid, old_kids)

        resp = self.api.admin("POST", "/admin/keys/rotate")
        self.assertStatus(resp, 200, "POST /admin/keys/rotate")
        new_kid = resp.json.get("kid")
        self.assertIsInstance(new_kid, str)
        self.assertNotIn(new_kid, old_kids, "rotation returned a kid that already existed")

        kids = {k["kid"] for k in self.api.get("/.well-known/jwks.json").json["keys"]}
        self.assertIn(new_kid, kids, "new key missing from the JWKS")
        self.assertIn(old_kid, kids, "old key left the JWKS while its tokens are alive")

        self.assertActive(before["access_token"], "token signed before rotation")
        self.assertStatus(self.api.get("/me", bearer=before["access_token"]), 200,
                          "/me with a token signed before rotation")
        after = self.api.login(user.email, user.password)
        self.assertEqual(decode_jwt(after["access_token"])[0].get("kid"), new_kid,
                         "tokens issued after rotation must use the new key")
        refreshed = self.api.refresh_first_party(before["refresh_token"]).json
        self.assertEqual(decode_jwt(refreshed["access_token"])[0].get("kid"), new_kid,
                         "refreshed tokens must use the new key")

        types = [e.get("type") for e in self.api.audit(limit=50)]
        self.assertIn("signing_key.rotated", types, "no signing_key.rotated audit event")


class AuditTest(CredoTestCase):
    FIELDS = ("event_id", "type", "occurred_at", "subject", "client_id", "session_id", "ip",
              "request_id", "node", "data")

    def test_audit_trail_of_a_user(self):
        user = self.api.register_user()
        wrong = self.api.post_json("/auth/login", {"email": user.email, "password": "bad-pass!"})
        self.assertError(wrong, 401, "invalid_credentials", "failed login")
        tokens = self.api.login(user.email, user.password)
        self.api.refresh_first_party(tokens["refresh_token"])
        rid = unique_id("audit-rq")
        patched = self.api.request("PATCH", "/me", json_body={"name": "Audited",
                                                              "current_password": user.password},
                                   bearer=tokens["access_token"], headers={"X-Request-ID": rid})
        self.assertStatus(patched, 200, "PATCH /me")
        client = self.api.admin_register_client(scopes=["aud.read"])
        self.api.grant_consent(tokens["access_token"], client.client_id, ["aud.read"])
        self.api.code_flow(tokens["access_token"], client, "aud.read")
        other = self.api.login(user.email, user.password)
        self.assertStatus(self.api.request("POST", "/auth/logout", bearer=other["access_token"]),
                          204, "logout")

        events = self.api.audit(subject=user.id, limit=100)
        types = [e.get("type") for e in events]
        for expected in ("user.registered", "login.failed", "login.succeeded", "token.refreshed",
                         "user.updated", "consent.granted", "token.issued", "session.ended"):
            self.assertIn(expected, types, f"audit trail lacks {expected}: {types}")

        node = self.api.get("/health").json.get("node")
        ids = set()
        for e in events:
            for field in self.FIELDS:
                self.assertIn(field, e, f"audit event lacks {field!r}: {e}")
            self.assertRegex(e["event_id"], UUID_RE, f"event_id is not a UUID: {e}")
            ids.add(e["event_id"])
            self.assertRfc3339(e["occurred_at"], f"occurred_at of {e['type']}")
            self.assertEqual(e["subject"], user.id)
            self.assertIsInstance(e["data"], dict, f"audit data must be an object: {e}")
            self.assertEqual(e["node"], node, f"audit event node differs from /health node: {e}")
            dump = str(e)
            for secret in (user.password, tokens["refresh_token"], tokens["access_token"]):
                self.assertNotIn(secret, dump, f"audit event {e['type']} contains a secret")
        self.assertEqual(len(ids), len(events), "duplicate event_id in /admin/audit")

        times = [e["occurred_at"] for e in events]
        parsed = [self.assertRfc3339(t, "occurred_at") for t in times]
        self.assertEqual(parsed, sorted(parsed, reverse=True), "events are not newest first")

        updated = [e for e in events if e["type"] == "user.updated"]
        self.assertEqual(updated[0]["request_id"], rid,
                         "user.updated event does not carry the request's X-Request-ID")
        self.assertEqual(updated[0]["ip"], "127.0.0.1")
        issued = [e for e in events if e["type"] == "token.issued"]
        self.assertIn(client.client_id, [e["client_id"] for e in issued],
                      "token.issued for the code exchange lacks the client_id")

    def test_limit(self):
        user = self.api.register_user()
        self.api.login(user.email, user.password)
        self.api.login(user.email, user.password)
        all_events = self.api.audit(subject=user.id, limit=100)
        self.assertGreaterEqual(len(all_events), 3)
        one = self.api.audit(subject=user.id, limit=1)
        self.assertEqual(len(one), 1, "limit=1 must return one event")
        self.assertEqual(one[0]["event_id"], all_events[0]["event_id"],
                         "limit=1 must return the newest event")
        self.assertEqual(self.api.audit(subject="no-such-subject", limit=10), [])

    def test_bad_limit_is_400(self):
        for limit in ("0", "-1", "100000", "abc", "1.5"):
            with self.subTest(limit=limit):
                resp = self.api.admin("GET", f"/admin/audit?limit={limit}")
                self.assertError(resp, 400, "invalid_request", f"/admin/audit?limit={limit}")


class HealthAndOpsTest(CredoTestCase):

    def test_live(self):
        resp = self.api.get("/health/live")
        self.assertStatus(resp, 200, "/health/live")
        self.assertEqual(resp.json.get("status"), "ok")
        self.assertRfc3339(resp.json.get("timestamp"), "/health/live timestamp")

    def test_ready(self):
        resp = self.api.get("/health/ready")
        self.assertStatus(resp, 200, "/health/ready")
        self.assertEqual(resp.json.get("status"), "ready")
        backends = "ok" if DURABLE else "disabled"
        self.assertEqual(resp.json.get("checks"), {"database": backends, "redis": backends,
                                                   "kafka": backends, "cluster": "disabled"})
        self.assertRfc3339(resp.json.get("timestamp"), "/health/ready timestamp")

    def test_health(self):
        resp = self.api.get("/health")
        self.assertStatus(resp, 200, "/health")
        body = resp.json
        self.assertEqual(body.get("status"), "healthy")
        self.assertIsInstance(body.get("version"), str)
        self.assertTrue(body["version"])
        self.assertIsInstance(body.get("uptime_seconds"), (int, float))
        self.assertGreaterEqual(body["uptime_seconds"], 0)
        self.assertIsInstance(body.get("node"), str)
        self.assertTrue(body["node"])
        self.assertIsInstance(body.get("checks"), dict)

    def test_metrics_exposition(self):
        self.api.get("/health/live")
        resp = self.api.get("/metrics")
        self.assertStatus(resp, 200, "/metrics")
        ctype = resp.header("content-type", "")
        self.assertTrue(ctype.startswith("text/plain"), f"/metrics Content-Type {ctype!r}")
        self.assertIn("version=0.0.4", ctype, f"/metrics Content-Type {ctype!r}")
        sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? '
                            r'(-?[0-9.eE+-]+|NaN|[+-]Inf)( -?\d+)?$')
        lines = [line for line in resp.text.splitlines() if line.strip()]
        self.assertTrue(any(line.startswith("# TYPE ") for line in lines), "no # TYPE lines")
        for line in lines:
            if not line.startswith("#"):
                self.assertRegex(line, sample, "malformed exposition line")

    def test_cluster_view_single_node(self):
        resp = self.api.admin("GET", "/admin/cluster")
        self.assertStatus(resp, 200, "/admin/cluster")
        body = resp.json
        for field in ("node", "members", "ring_version"):
            self.assertIn(field, body, f"/admin/cluster lacks {field!r}: {body}")
        self.assertIsInstance(body["members"], list)
        for member in body["members"]:
            for field in ("node", "address", "status", "last_seen"):
                self.assertIn(field, member, f"cluster member lacks {field!r}: {member}")

    def test_actor_supervisors(self):
        resp = self.api.admin("GET", "/admin/actors")
        self.assertStatus(resp, 200, "/admin/actors")
        body = resp.json
        self.assertIsInstance(body.get("node"), str)
        sups = body.get("supervisors")
        self.assertIsInstance(sups, list)
        kinds = {s.get("kind") for s in sups}
        self.assertTrue({"session", "rate_limit", "consent", "audit_publisher"} <= kinds,
                        f"supervisor kinds: {kinds}")
        for s in sups:
            for field in ("kind", "live", "restarts", "failures", "max_mailbox", "last_failure"):
                self.assertIn(field, s, f"supervisor entry lacks {field!r}: {s}")


if __name__ == "__main__":
    unittest.main()


class AdminTokenTest(unittest.TestCase):
    """CREDO_ADMIN_TOKEN guards /admin/*: a short or placeholder token is refused at start, and
    a generated one never reaches the log."""

    def run_credod(self, token):
        import subprocess
        from credo_harness import credod_path, server_env
        env = server_env(None)
        env.pop("CREDO_ADMIN_TOKEN", None)
        if token is not None:
            env["CREDO_ADMIN_TOKEN"] = token
        return subprocess.run([credod_path(), "--http", "127.0.0.1:0"], env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=15)

    def test_weak_admin_tokens_are_refused_at_start(self):
        for token, why in (("short-token-0123456789", "shorter than 32"),
                           ("CHANGE_ME", "shorter than 32"),
                           ("CHANGE_ME-CHANGE_ME-CHANGE_ME-CHANGE_ME", "placeholder"),
                           ("a" * 40, "distinct")):
            with self.subTest(token=token):
                result = self.run_credod(token)
                self.assertEqual(result.returncode, 2, result.stdout[-500:] + result.stderr[-500:])
                output = result.stdout + result.stderr
                self.assertIn("CREDO_ADMIN_TOKEN is refused", output)
                self.assertIn(why, output)
                self.assertNotIn(token, output, "the refusal repeats the token")

    def test_a_generated_admin_token_is_not_logged(self):
        from credo_harness import CredoServer
        server = CredoServer()
        server.admin_token = None  # CREDO_ADMIN_TOKEN unset: credod generates one
        self.addCleanup(server.stop)
        server.start()
        records = server.log_records()
        generated = [r for r in records if "generated an admin token" in r.get("msg", "")]
        self.assertTrue(generated, f"no line about the generated token: {records[:5]}")
        text = server.stdout_text() + server.stderr_text()
        self.assertNotRegex(text, r"admin_token", "a log line carries an admin token field")
        # stderr is not a terminal here, so the generated token is shown nowhere.
        self.assertNotIn("shown once): ", text)
