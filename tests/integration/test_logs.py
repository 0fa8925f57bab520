"""What credod writes to stdout/stderr, and the process contract (exit codes, bad config)."""

import json
import subprocess
import unittest

from credo_harness import CredoServer, CredoTestCase, credod_path, server_env, unique_id


class NoSecretsInLogsTest(CredoTestCase):

    def test_logs_hold_no_secrets_and_sigterm_exits_zero(self):
        api = self.api
        secrets_seen: dict[str, str] = {"admin token": self.server.admin_token}

        user = api.register_user(password="Log-Test-Password-1")
        secrets_seen["password"] = user.password
        wrong_password = "Wrong-Log-Password-2"
        failed_login = api.post_json("/auth/login", {"email": user.email, "password": wrong_password})
        secrets_seen["wrong password"] = wrong_password

        tokens = api.login(user.email, user.password)
        secrets_seen["login access token"] = tokens["access_token"]
        secrets_seen["login refresh token"] = tokens["refresh_token"]
        refreshed = api.refresh_first_party(tokens["refresh_token"]).json
        secrets_seen["rotated access token"] = refreshed["access_token"]
        secrets_seen["rotated refresh token"] = refreshed["refresh_token"]
        api.refresh_first_party(tokens["refresh_token"])  # reuse detection path logs too

        again = api.login(user.email, user.password)
        client = api.admin_register_client(scopes=["log.read"],
                                           grant_types=["authorization_code", "refresh_token",
                                                        "client_credentials"])
        secrets_seen["client secret"] = client.secret
        api.grant_consent(again["access_token"], client.client_id, ["log.read"])
        code, verifier = api.get_code(again["access_token"], client, "log.read")
        secrets_seen["authorization code"] = code
        secrets_seen["code verifier"] = verifier
        grant = api.exchange_code(client, code, verifier).json
        secrets_seen["code-flow access token"] = grant["access_token"]
        secrets_seen["code-flow refresh token"] = grant["refresh_token"]
        api.exchange_code(client, code, verifier)  # code reuse path
        cc = api.token({"grant_type": "client_credentials"}, client).json
        secrets_seen["client_credentials token"] = cc["access_token"]
        api.introspect(grant["refresh_token"])
        api.revoke(grant["access_token"], client)
        api.post_form("/auth/token", {"grant_type": "client_credentials"},
                      basic=(client.client_id, "Wrong-Client-Secret-3"))
        secrets_seen["wrong client secret"] = "Wrong-Client-Secret-3"
        new_password = "New-Log-Password-4"
        api.request("PATCH", "/me", json_body={"password": new_password,
                                               "current_password": user.password},
                    bearer=again["access_token"])
        secrets_seen["new password"] = new_password
        secrets_seen["introspector secret"] = api.introspector.secret

        rc = self.server.stop()
        self.assertEqual(rc, 0, f"credod must exit 0 on SIGTERM\n{self.server.output_tail()}")

        out, err = self.server.stdout_text(), self.server.stderr_text()
        self.assertTrue(out.strip(), "credod wrote nothing to stdout")
        for name, value in secrets_seen.items():
            self.assertNotIn(value, out, f"the {name} appears in credod's stdout")
            self.assertNotIn(value, err, f"the {name} appears in credod's stderr")
            if value.count(".") == 2:  # a JWT: its signature alone is a leak as well
                signature = value.rsplit(".", 1)[1]
                self.assertNotIn(signature, out + err, f"the {name}'s signature is logged")

        for line in self.server.stdout_lines:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                self.fail(f"stdout line is not JSON: {line[:200]!r}")
            self.assertIsInstance(record, dict, f"stdout line is not a JSON object: {line[:200]!r}")

        # One line per answered request, with what an operator searches by.
        requests = [r for r in self.server.log_records() if r.get("msg") == "request"]
        by_id = {r.get("request_id"): r for r in requests}
        line = by_id.get(failed_login.header("x-request-id"))
        self.assertIsNotNone(line, "no request line carries the failed login's X-Request-ID")
        self.assertEqual((line.get("method"), line.get("route"), line.get("status")),
                         ("POST", "/auth/login", failed_login.status), line)
        self.assertIsInstance(line.get("latency_ms"), (int, float), line)
        self.assertEqual(line.get("level"), "info", line)
        self.assertTrue(line.get("node"), line)
        grants = [r for r in requests if r.get("route") == "/auth/token" and r.get("status") == 200
                  and r.get("client_id") == client.client_id]
        self.assertTrue(grants, "no request line names the authenticated client of a grant")


class ProcessContractTest(unittest.TestCase):

    def run_credod(self, args, extra_env=None):
        try:
            return subprocess.run([credod_path(), *args], env=server_env(unique_id("adm"),
                                                                         extra_env),
                                  stdin=subprocess.DEVNULL, capture_output=True, timeout=15)
        except subprocess.TimeoutExpired as exc:
            self.fail(f"credod {' '.join(args)} kept running instead of refusing to start: "
                      f"{(exc.stdout or b'')[-500:]!r}")

    def assertRefusesToStart(self, result, what):
        self.assertNotEqual(result.returncode, 0, f"{what}: credod exited 0")
        reason = (result.stdout + result.stderr).decode("utf-8", "replace").strip()
        self.assertTrue(reason, f"{what}: credod exited {result.returncode} without a reason")
        self.assertNotIn("Traceback", reason)

    def test_unknown_flag_is_fatal(self):
        result = self.run_credod(["--http", "127.0.0.1:0", "--no-such-flag", "1"])
        self.assertRefusesToStart(result, "unknown flag")

    def test_malformed_database_url_is_fatal(self):
        result = self.run_credod(["--http", "127.0.0.1:0"], {"DATABASE_URL": "not a url at all"})
        self.assertRefusesToStart(result, "malformed DATABASE_URL")

    def test_database_url_password_is_not_repeated(self):
        secret = "s3cr3t-" + unique_id("pw")
        result = self.run_credod(["--http", "127.0.0.1:0"],
                                 {"DATABASE_URL": f"mysql://credo:{secret}@127.0.0.1:5432/credo"})
        self.assertRefusesToStart(result, "DATABASE_URL with another scheme")
        self.assertNotIn(secret, (result.stdout + result.stderr).decode("utf-8", "replace"))

    def test_a_database_needs_a_key_encryption_key(self):
        result = self.run_credod(["--http", "127.0.0.1:0"],
                                 {"DATABASE_URL": "postgres://credo:pw@127.0.0.1:1/credo",
                                  "CREDO_KEY_ENCRYPTION_KEY": ""})
        self.assertRefusesToStart(result, "DATABASE_URL without CREDO_KEY_ENCRYPTION_KEY")
        self.assertIn(b"CREDO_KEY_ENCRYPTION_KEY", result.stderr)

    def test_kafka_needs_a_database(self):
        result = self.run_credod(["--http", "127.0.0.1:0"],
                                 {"KAFKA_BROKERS": "127.0.0.1:9092", "DATABASE_URL": ""})
        self.assertRefusesToStart(result, "KAFKA_BROKERS without DATABASE_URL")
        self.assertIn(b"DATABASE_URL", result.stderr)

    def test_port_in_use_is_fatal(self):
        server = CredoServer()
        self.addCleanup(server.stop)
        server.start()
        result = self.run_credod(["--http", f"127.0.0.1:{server.port}"])
        self.assertRefusesToStart(result, f"port {server.port} already in use")
        self.assertTrue(server.running, "the first server died when a second one tried its port")


if __name__ == "__main__":
    unittest.main()
