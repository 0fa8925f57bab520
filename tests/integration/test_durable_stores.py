"""credod on the durable stores (PostgreSQL, Redis, Kafka through the outbox) that scripts/test.sh
starts: what survives a kill -9, what reaches Kafka, and how a node behaves while one backend is
cut off (a TCP proxy in front of the shared server, so other tests are not disturbed)."""

import signal
import unittest

from backend_harness import (DATABASE_URL, REDIS_URL, KafkaBroker, TcpProxy, poll,
                             private_database, psql, skip_without_backends, store_env)
from credo_harness import CredoClient, CredoServer, unique_email, unique_id


# Nodes of one deployment share the issuer (tokens name it), whatever port each listens on.
ISSUER = "http://credo.test"


def start_node(env: dict[str, str], test: unittest.TestCase,
               node_id: str = "", flags: tuple[str, ...] = ()) -> tuple[CredoServer, CredoClient]:
    node_id = node_id or unique_id("node")
    server = CredoServer(["--issuer", ISSUER, "--node-id", node_id, *flags], extra_env=env)
    server.node_id = node_id
    test.addCleanup(server.stop)
    server.start()
    return server, CredoClient(server)


def checks(api: CredoClient) -> tuple[int, dict]:
    resp = api.get("/health/ready", check=False)  # 503 here is the readiness shape, not an error
    return resp.status, (resp.json or {}).get("checks", {})


def wait_ready(api: CredoClient, timeout: float = 20.0) -> None:
    poll(lambda: checks(api)[0] == 200, timeout, what="/health/ready to answer 200")


def wait_check(api: CredoClient, name: str, state: str, timeout: float = 20.0) -> None:
    poll(lambda: checks(api)[1].get(name) == state, timeout,
         what=f"/health/ready to report {name}: {state}")


@skip_without_backends
class DurabilityTest(unittest.TestCase):
    """Everything acknowledged by a node that is then killed -9 is there for the next node."""

    def test_a_new_node_serves_what_a_killed_node_acknowledged(self):
        env = store_env()
        first, api = start_node(env, self)
        wait_ready(api)
        self.assertEqual(checks(api)[1], {"database": "ok", "redis": "ok", "kafka": "disabled",
                                          "cluster": "disabled"})
        photos = api.admin_register_client(scopes=["photos.read"], grant_types=[
            "authorization_code", "refresh_token", "client_credentials"])
        user, tokens = api.new_user_session()
        api.grant_consent(tokens["access_token"], photos.client_id, ["photos.read"])
        revoked_user, revoked_tokens = api.new_user_session()
        self.assertEqual(api.revoke(revoked_tokens["access_token"]).status, 200)

        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(timeout=10)
        first.stop()

        _, api2 = start_node(env, self)
        wait_ready(api2)
        self.assertTrue(api2.is_active(tokens["access_token"]), "old access token on the new node")
        self.assertFalse(api2.is_active(revoked_tokens["access_token"]),
                         "a token revoked on the killed node stays revoked")
        sessions = api2.get("/auth/sessions", bearer=tokens["access_token"])
        self.assertEqual(sessions.status, 200, sessions.describe())
        self.assertEqual(len(sessions.json["sessions"]), 1)
        consents = api2.get("/auth/consent", bearer=tokens["access_token"])
        self.assertEqual(consents.status, 200, consents.describe())
        self.assertEqual([(c["client_id"], c["scope"]) for c in consents.json["consents"]],
                         [(photos.client_id, "photos.read")])
        refreshed = api2.refresh_first_party(tokens["refresh_token"])
        self.assertEqual(refreshed.status, 200, refreshed.describe())
        self.assertNotEqual(refreshed.json["refresh_token"], tokens["refresh_token"])
        again = api2.login(user.email, user.password)
        self.assertIn("access_token", again)
        cc = api2.token({"grant_type": "client_credentials", "scope": "photos.read"}, photos)
        self.assertEqual(cc.status, 200, cc.describe())
        self.assertTrue(api2.is_active(cc.json["access_token"]))


@skip_without_backends
class OutboxTest(unittest.TestCase):
    """Every audit event reaches Kafka keyed by its event id, also across a broker outage."""

    def setUp(self):
        self.kafka = KafkaBroker()
        self.addCleanup(self.kafka.stop)
        # Any node may publish any outbox row: this node gets a database of its own, so that
        # its events reach its own broker and no one else's.
        self.database = private_database(self)
        self.node, self.api = start_node(
            store_env(database=self.database, kafka=self.kafka.bootstrap), self)
        wait_ready(self.api)

    def scenario(self) -> None:
        client = self.api.admin_register_client(scopes=["photos.read"])
        user, tokens = self.api.new_user_session()
        self.api.grant_consent(tokens["access_token"], client.client_id, ["photos.read"])
        resp = self.api.request("DELETE", f"/auth/consent/{client.client_id}/photos.read",
                                bearer=tokens["access_token"])
        self.assertEqual(resp.status, 204, resp.describe())
        self.assertEqual(self.api.refresh_first_party(tokens["refresh_token"]).status, 200)
        self.assertEqual(self.api.post_json("/auth/login", {"email": user.email,
                                                            "password": "wrong-password"}).status,
                         401)

    def events(self) -> dict[str, str]:
        resp = self.api.admin("GET", "/admin/audit?limit=1000")
        self.assertEqual(resp.status, 200, resp.describe())
        # The database is shared with the other tests' nodes: only this node's events count.
        return {e["event_id"]: e["type"] for e in resp.json["events"]
                if e["node"] == self.node.node_id}

    def assert_all_published(self, events: dict[str, str]) -> None:
        poll(lambda: set(events) <= set(self.kafka.keys("credo.audit.events")), 30,
             what="every audit event on credo.audit.events")
        consent = {i for i, t in events.items() if t.startswith("consent.")}
        self.assertTrue(consent, "the scenario made consent events")
        poll(lambda: consent <= set(self.kafka.keys("credo.consent.events")), 30,
             what="every consent event on credo.consent.events")
        self.assertFalse(set(self.kafka.keys("credo.consent.events")) - consent,
                         "only consent events on credo.consent.events")

    def test_events_are_published_keyed_by_event_id(self):
        self.scenario()
        events = self.events()
        self.assertTrue({"client.registered", "user.registered", "login.succeeded",
                         "login.failed", "consent.granted", "consent.revoked",
                         "token.refreshed"} <= set(events.values()), events)
        self.assert_all_published(events)

    def test_kafka_can_be_a_degraded_only_readiness_check(self):
        _, degraded = start_node(store_env(database=self.database, kafka=self.kafka.bootstrap),
                                 self, flags=("--kafka-readiness", "degraded"))
        wait_ready(degraded)
        self.kafka.down()
        wait_check(degraded, "kafka", "failed")
        wait_check(self.api, "kafka", "failed")
        status, reported = checks(degraded)
        self.assertEqual(status, 200, f"--kafka-readiness degraded: still ready, {reported}")
        self.assertEqual(checks(self.api)[0], 503, "the default keeps Kafka required")
        self.kafka.up()
        wait_check(degraded, "kafka", "ok", 30)

    def test_broker_outage_grows_the_outbox_and_loses_nothing(self):
        self.kafka.down()
        wait_check(self.api, "kafka", "failed")
        self.assertEqual(checks(self.api)[0], 503)
        unpublished = "SELECT count(*) FROM audit_outbox WHERE published_at IS NULL"
        before = int(psql(unpublished, self.database)[0])
        self.scenario()  # work goes on while Kafka is down
        grown = int(psql(unpublished, self.database)[0])
        self.assertGreater(grown, before, "the outbox grows while Kafka is down")
        events = self.events()
        self.kafka.up()
        wait_check(self.api, "kafka", "ok", 30)
        self.assert_all_published(events)
        # At-least-once: a message may repeat, but after dedup by key each event is there once.
        keys = self.kafka.keys("credo.audit.events")
        self.assertEqual(len({k for k in keys if k in events}), len(events))


@skip_without_backends
class RedisDownTest(unittest.TestCase):

    def test_tokens_still_check_while_logins_and_refreshes_fail_cleanly(self):
        proxy = TcpProxy(REDIS_URL)
        self.addCleanup(proxy.close)
        _, api = start_node(store_env(redis=proxy.url), self)
        wait_ready(api)
        user, tokens = api.new_user_session()
        _, revoked = api.new_user_session()
        self.assertEqual(api.revoke(revoked["access_token"]).status, 200)

        proxy.cut()
        wait_check(api, "redis", "failed")
        self.assertEqual(checks(api)[0], 503)
        login = api.post_json("/auth/login", {"email": user.email, "password": user.password})
        self.assertEqual(login.status, 503, login.describe())
        self.assertEqual(login.json.get("error"), "temporarily_unavailable")
        refresh = api.refresh_first_party(tokens["refresh_token"])
        self.assertEqual(refresh.status, 503, refresh.describe())
        self.assertTrue(api.is_active(tokens["access_token"]), "a valid token stays active")
        self.assertFalse(api.is_active(revoked["access_token"]), "a revoked one stays revoked")

        proxy.restore()
        wait_ready(api)
        refresh = api.refresh_first_party(tokens["refresh_token"])
        self.assertEqual(refresh.status, 200, "the refresh token refused during the outage "
                                              f"still works: {refresh.describe()}")
        self.assertIn("access_token", api.login(user.email, user.password))


@skip_without_backends
class PostgresDownTest(unittest.TestCase):

    def test_writes_fail_with_503_and_leave_nothing_behind(self):
        proxy = TcpProxy(DATABASE_URL)
        self.addCleanup(proxy.close)
        _, api = start_node(store_env(database=proxy.url), self)
        wait_ready(api)
        client = api.admin_register_client(scopes=["photos.read"])
        api.introspector  # registered now: clients are written to the database
        _, tokens = api.new_user_session()

        proxy.cut()
        wait_check(api, "database", "failed")
        self.assertEqual(checks(api)[0], 503)
        email = unique_email()
        reg = api.post_json("/users", {"email": email, "password": "long-enough-pw"})
        self.assertEqual(reg.status, 503, reg.describe())
        consent = api.post_json("/auth/consent", {"client_id": client.client_id,
                                                  "scopes": ["photos.read"]},
                                bearer=tokens["access_token"])
        self.assertEqual(consent.status, 503, consent.describe())
        self.assertTrue(api.is_active(tokens["access_token"]), "token checks need no database")

        proxy.restore()
        wait_ready(api)
        self.assertEqual(psql(f"SELECT count(*) FROM users WHERE email = '{email}'"), ["0"])
        again = api.post_json("/users", {"email": email, "password": "long-enough-pw"})
        self.assertEqual(again.status, 201, "nothing of the failed registration was kept: "
                                            f"{again.describe()}")
        listed = api.get("/auth/consent", bearer=tokens["access_token"])
        self.assertEqual(listed.json.get("consents"), [], "the failed grant left no record")

    def test_a_node_started_without_its_database_comes_up_when_it_is_back(self):
        proxy = TcpProxy(DATABASE_URL)
        self.addCleanup(proxy.close)
        proxy.cut()
        _, api = start_node(store_env(database=proxy.url), self)
        status, c = checks(api)
        self.assertEqual((status, c.get("database")), (503, "failed"))
        resp = api.post_json("/users", {"email": unique_email(), "password": "long-enough-pw"})
        self.assertEqual(resp.status, 503, resp.describe())
        proxy.restore()
        wait_ready(api)
        api.register_user()


@skip_without_backends
class WrongKeyEncryptionKeyTest(unittest.TestCase):

    def test_a_node_with_another_key_stays_unready_and_says_why(self):
        first, api = start_node(store_env(), self)
        wait_ready(api)  # the database now holds signing keys sealed with the suite's key
        first.stop()
        env = store_env()
        env["CREDO_KEY_ENCRYPTION_KEY"] = "6a" * 32
        server, api = start_node(env, self)
        status, c = checks(api)
        self.assertEqual((status, c.get("database")), (503, "failed"))
        resp = api.post_json("/users", {"email": unique_email(), "password": "long-enough-pw"})
        self.assertEqual(resp.status, 503, resp.describe())
        log = poll(lambda: [r for r in server.log_records()
                            if r.get("msg") == "cannot bootstrap yet; retrying"], 10,
                   what="the bootstrap failure in the log")
        self.assertIn("key-encryption key", log[0].get("reason", ""))
        self.assertNotIn("PRIVATE KEY", server.stdout_text() + server.stderr_text())


if __name__ == "__main__":
    unittest.main()
