"""The throwaway backends that scripts/test.sh starts (scripts/services.sh) are real and reachable:
PostgreSQL, Redis and the Kafka broker, each over TCP. The durable-store integration tests build
on these; this module proves the infrastructure itself, with the standard clients."""

import os
import shutil
import subprocess
import unittest
import urllib.parse
import uuid

_REQUIRED = os.environ.get("CREDO_REQUIRE_BACKENDS") == "1"
_URLS = {name: os.environ.get(f"CREDO_TEST_{name}") for name in
         ("DATABASE_URL", "REDIS_URL", "KAFKA_BROKERS")}


def run(*cmd: str, stdin: str | None = None, timeout: float = 30) -> str:
    result = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd[:2])} failed ({result.returncode}): {result.stderr}")
    return result.stdout


@unittest.skipUnless(all(_URLS.values()) or _REQUIRED,
                     "backends not started: run through scripts/test.sh (scripts/services.sh)")
class BackendsTest(unittest.TestCase):

    def test_postgres_accepts_the_credo_role(self):
        self.assertTrue(_URLS["DATABASE_URL"], "CREDO_TEST_DATABASE_URL is not set")
        out = run("psql", _URLS["DATABASE_URL"], "-qAt", "-c",
                  "CREATE TABLE IF NOT EXISTS probe (id int); INSERT INTO probe VALUES (1);"
                  "SELECT count(*) >= 1 FROM probe; DROP TABLE probe;")
        self.assertIn("t", out.split())

    def test_redis_requires_its_password_and_stores_keys(self):
        self.assertTrue(_URLS["REDIS_URL"], "CREDO_TEST_REDIS_URL is not set")
        url = urllib.parse.urlparse(_URLS["REDIS_URL"])
        key = f"probe:{uuid.uuid4()}"
        env_cli = ("redis-cli", "-h", url.hostname, "-p", str(url.port))
        self.assertIn("NOAUTH", subprocess.run([*env_cli, "get", key], capture_output=True,
                                               text=True, timeout=10).stdout)
        authed = (*env_cli, "--no-auth-warning", "-a", url.password)
        run(*authed, "set", key, "v", "EX", "60")
        self.assertEqual(run(*authed, "get", key).strip(), "v")

    @unittest.skipIf(shutil.which("kcat") is None, "kcat is not installed")
    def test_kafka_round_trip_of_a_keyed_message(self):
        brokers = _URLS["KAFKA_BROKERS"]
        self.assertTrue(brokers, "CREDO_TEST_KAFKA_BROKERS is not set")
        metadata = run("kcat", "-b", brokers, "-L", "-t", "credo.audit.events")
        self.assertIn("credo.audit.events", metadata)
        self.assertIn("3 brokers", metadata)
        key, value = str(uuid.uuid4()), '{"probe": true}'
        run("kcat", "-b", brokers, "-P", "-t", "credo.consent.events", "-K", "|",
            "-X", "acks=all", "-X", "enable.idempotence=true", stdin=f"{key}|{value}\n")
        out = run("kcat", "-b", brokers, "-C", "-t", "credo.consent.events", "-o", "beginning",
                  "-e", "-f", "%k|%s\n", "-q")
        self.assertIn(f"{key}|{value}", out.splitlines())


if __name__ == "__main__":
    unittest.main()
