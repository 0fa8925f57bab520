"""Restore drill: scripts/backup.sh and scripts/restore.sh against a real PostgreSQL and Redis.

A node on a database of its own and a Redis of its own (so the Redis can be stopped, and its
RDB put in place, without touching the shared one) takes a user, a session, a client, a key
rotation and their audit events. The backup is taken online. restore.sh must refuse, changing
nothing, while a node is connected, without confirmation, and for a backup whose checksum does
not match. A restore over the live tables undoes a later change. Then the data is destroyed (the
database dropped and recreated, Redis stopped without persistence), the backup restored, and a
new node must serve everything that was there at backup time and nothing made after it.
docs/operations/disaster-recovery.md points here."""

import os
import secrets
import shutil
import subprocess
import tempfile
import unittest
import urllib.parse
import uuid

from backend_harness import (DATABASE_URL, REQUIRED, free_port, poll, psql, skip_without_backends,
                             stop_process, store_env, with_user)
from credo_harness import CredoClient, CredoServer, unique_id

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BACKUP = os.path.join(ROOT, "scripts", "backup.sh")
RESTORE = os.path.join(ROOT, "scripts", "restore.sh")
ISSUER = "http://credo.test"


class PrivateRedis:
    """A redis-server without persistence in `directory`: stopping it loses its data, and on
    start it loads `directory`/dump.rdb if one is there."""

    def __init__(self, directory: str) -> None:
        self.dir = directory
        self.password = secrets.token_hex(16)
        self.port = free_port()
        self.url = f"redis://:{self.password}@127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), *args],
                              env={**os.environ, "REDISCLI_AUTH": self.password},
                              capture_output=True, text=True, timeout=10)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--requirepass", self.password, "--dir", self.dir,
             # The backup's SYNC streams the RDB (no dump.rdb on disk) without the 5 s wait.
             "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
             "--dbfilename", "dump.rdb", "--logfile", os.path.join(self.dir, "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        poll(lambda: self.proc.poll() is not None or self.cli("ping").stdout.strip() == "PONG",
             10, what="redis-server to answer PING")
        if self.proc.poll() is not None:
            raise AssertionError(f"redis-server exited at start (port {self.port})")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


def run_script(script: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "REDIS_URL", "CREDO_RESTORE_CONFIRM", "PGPASSWORD",
                         "REDISCLI_AUTH")}
    return subprocess.run(["bash", script, *args], env={**base, **env}, capture_output=True,
                          text=True, timeout=300)


@skip_without_backends
class RestoreDrillTest(unittest.TestCase):

    def setUp(self):
        missing = [t for t in ("redis-server", "redis-cli", "psql") if not shutil.which(t)]
        if missing:
            if REQUIRED:
                self.fail(f"restore drill needs {', '.join(missing)}")
            self.skipTest(f"{', '.join(missing)} not installed")
        self.tmp = tempfile.mkdtemp(prefix="credo-drill-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        # A role and database of the drill's own, with a password worth hiding (percent-encoded
        # in the URL, as credod and libpq read it).
        self.admin = with_user(DATABASE_URL, "postgres", "postgres")
        suffix = uuid.uuid4().hex[:12]
        self.role, self.db_name = "drill_" + suffix, "credo_drill_" + suffix
        self.db_password = "p@ss/" + secrets.token_hex(12)
        psql(f"CREATE ROLE {self.role} LOGIN PASSWORD '{self.db_password}'", self.admin)
        self.addCleanup(psql, f"DROP ROLE IF EXISTS {self.role}", self.admin)
        self.create_database()
        self.addCleanup(psql, f"DROP DATABASE IF EXISTS {self.db_name} WITH (FORCE)", self.admin)
        parts = urllib.parse.urlsplit(DATABASE_URL)
        self.database = urllib.parse.urlunsplit(parts._replace(
            netloc=f"{self.role}:{urllib.parse.quote(self.db_password, safe='')}"
                   f"@{parts.hostname}:{parts.port}", path="/" + self.db_name))
        self.redis_dir = os.path.join(self.tmp, "redis")
        os.mkdir(self.redis_dir)
        self.redis = PrivateRedis(self.redis_dir)
        self.addCleanup(self.redis.stop)
        self.redis.start()
        self.env = {"DATABASE_URL": self.database, "REDIS_URL": self.redis.url}

    def create_database(self) -> None:
        psql(f"CREATE DATABASE {self.db_name} OWNER {self.role}", self.admin)

    def start_node(self) -> tuple[CredoServer, CredoClient]:
        server = CredoServer(["--issuer", ISSUER, "--node-id", unique_id("drill")],
                             extra_env=store_env(database=self.database, redis=self.redis.url))
        self.addCleanup(server.stop)
        server.start()
        api = CredoClient(server)
        poll(lambda: api.get("/health/ready", check=False).status == 200, 20,
             what="/health/ready to answer 200")
        return server, api

    def fingerprint(self) -> list[str]:
        """Row counts of the Credo tables, to show a refused restore changed nothing."""
        return psql("SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM oauth_clients), "
                    "(SELECT count(*) FROM signing_keys), (SELECT count(*) FROM audit_events), "
                    "(SELECT string_agg(email, ',' ORDER BY email) FROM users)", self.database)

    def assertNoSecrets(self, text: str, what: str) -> None:
        for secret in (self.redis.password, self.db_password,
                       urllib.parse.quote(self.db_password, safe="")):
            self.assertNotIn(secret, text, f"a password in {what}")

    def manifest(self, backup: str) -> dict[str, str]:
        with open(os.path.join(backup, "manifest")) as f:
            return dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)

    def test_backup_destroy_restore(self):
        # -- state at backup time
        node, api = self.start_node()
        user = api.register_user()
        tokens = api.login(user.email, user.password)
        client = api.admin_register_client(scopes=["reports.read"], redirect_uris=[],
                                           grant_types=["client_credentials"])
        self.assertEqual(api.token({"grant_type": "client_credentials"}, client).status, 200)
        rotated = api.admin("POST", "/admin/keys/rotate")
        self.assertEqual(rotated.status, 200, rotated.describe())
        kids = {k["kid"] for k in api.get("/.well-known/jwks.json").json["keys"]}
        self.assertIn(rotated.json["kid"], kids)
        self.assertGreaterEqual(len(kids), 2, "the retired key stays in the JWKS")
        events = {e["event_id"]: e["type"] for e in api.audit(limit=1000)}
        self.assertTrue({"user.registered", "login.succeeded", "client.registered",
                         "signing_key.rotated"} <= set(events.values()), events)

        # -- online backup, the node still serving
        backup = os.path.join(self.tmp, "backup-1")
        done = run_script(BACKUP, backup, env=self.env)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.strip(), backup)
        self.assertNoSecrets(done.stdout + done.stderr, "backup.sh output")
        manifest = self.manifest(backup)
        with open(os.path.join(backup, "manifest")) as f:
            self.assertNoSecrets(f.read(), "the manifest")
        live_schema = psql("SELECT max(version) FROM schema_migrations", self.database)[0]
        self.assertEqual(manifest["schema_version"], live_schema)
        self.assertEqual(sorted(os.listdir(backup)), ["manifest", "postgres.dump", "redis.rdb"])
        self.assertFalse([n for n in os.listdir(self.tmp) if ".partial." in n],
                         "the temporary directory was renamed, not left behind")
        again = run_script(BACKUP, backup, env=self.env)
        self.assertNotEqual(again.returncode, 0, "an existing backup must not be overwritten")

        # -- changes after the backup, which the restore must undo
        late = api.register_user()

        # -- refusals change nothing
        before = self.fingerprint()
        busy = run_script(RESTORE, "--yes", backup, env=self.env)
        self.assertNotEqual(busy.returncode, 0, "restore while a node is connected")
        self.assertIn("stop every credod node", busy.stderr)
        self.assertNoSecrets(busy.stderr, "restore.sh output")
        node.stop()
        unconfirmed = run_script(RESTORE, "--redis-dir", self.redis_dir, backup, env=self.env)
        self.assertNotEqual(unconfirmed.returncode, 0, "restore without confirmation")
        self.assertIn("--yes", unconfirmed.stderr)
        tampered = os.path.join(self.tmp, "tampered")
        shutil.copytree(backup, tampered)
        with open(os.path.join(tampered, "postgres.dump"), "r+b") as f:
            f.seek(os.path.getsize(f.name) // 2)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0xFF]))
        bad = run_script(RESTORE, "--yes", "--redis-dir", self.redis_dir, tampered,
                         env={**self.env, "CREDO_RESTORE_CONFIRM": "yes"})
        self.assertNotEqual(bad.returncode, 0, "restore of a tampered backup")
        self.assertIn("checksum", bad.stderr)
        running = run_script(RESTORE, "--yes", "--redis-only", "--redis-dir", self.redis_dir,
                             backup, env={"REDIS_URL": self.redis.url})
        self.assertNotEqual(running.returncode, 0, "RDB put under a running Redis")
        self.assertIn("still answers", running.stderr)
        self.assertEqual(self.fingerprint(), before, "a refused restore changed the database")
        self.assertEqual(os.listdir(self.redis_dir), ["redis.log"],
                         "the Redis directory holds only its log (no RDB from the backup's "
                         "SYNC, none from a refused restore)")
        verified = run_script(RESTORE, "--verify-only", backup, env=self.env)
        self.assertEqual(verified.returncode, 0, verified.stderr)

        # -- a restore over the live tables (pg_restore --clean) undoes the later change
        over = run_script(RESTORE, "--yes", backup, env=self.env)
        self.assertEqual(over.returncode, 0, over.stderr)
        self.assertEqual(psql(f"SELECT count(*) FROM users WHERE email = '{late.email}'",
                              self.database), ["0"])
        self.assertEqual(psql(f"SELECT count(*) FROM users WHERE email = '{user.email}'",
                              self.database), ["1"])

        # -- disaster: the database and Redis's data are gone
        psql(f"DROP DATABASE {self.db_name} WITH (FORCE)", self.admin)
        self.create_database()
        self.redis.stop()  # no persistence: everything in it is lost

        # -- restore, then start Redis and a node on what was restored
        restored = run_script(RESTORE, "--redis-dir", self.redis_dir, backup,
                              env={**self.env, "CREDO_RESTORE_CONFIRM": "yes"})
        self.assertEqual(restored.returncode, 0, restored.stderr)
        self.assertNoSecrets(restored.stdout + restored.stderr, "restore.sh output")
        self.assertTrue(os.path.exists(os.path.join(self.redis_dir, "dump.rdb")))
        self.redis.start()
        _, api2 = self.start_node()

        self.assertIn("access_token", api2.login(user.email, user.password),
                      "the user logs in with the same password")
        cc = api2.token({"grant_type": "client_credentials"}, client)
        self.assertEqual(cc.status, 200, f"the client still authenticates: {cc.describe()}")
        self.assertTrue(api2.is_active(cc.json["access_token"]))
        kids_after = {k["kid"] for k in api2.get("/.well-known/jwks.json").json["keys"]}
        self.assertLessEqual(kids, kids_after, "the JWKS has the keys of backup time")
        after = {e["event_id"] for e in api2.audit(limit=1000)}
        self.assertLessEqual(set(events), after, "audit events from before the backup are kept")
        self.assertTrue(api2.is_active(tokens["access_token"]),
                        "an access token of backup time verifies (retired key restored)")
        refreshed = api2.refresh_first_party(tokens["refresh_token"])
        self.assertEqual(refreshed.status, 200,
                         f"the session came back with redis.rdb: {refreshed.describe()}")
        gone = api2.post_json("/auth/login", {"email": late.email, "password": late.password})
        self.assertEqual(gone.status, 401, "a user registered after the backup is not restored")


if __name__ == "__main__":
    unittest.main()
