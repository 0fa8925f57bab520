"""Helpers for tests that run credod on the real backends scripts/test.sh starts (PostgreSQL,
Redis, a Kafka broker): the environment that selects them, a TCP proxy that can cut a backend off
without touching the shared server, a private Kafka broker that can be taken down and up, and
readers over the real clients (psql, kcat)."""

import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse
import uuid

REQUIRED = os.environ.get("CREDO_REQUIRE_BACKENDS") == "1"
DATABASE_URL = os.environ.get("CREDO_TEST_DATABASE_URL", "")
REDIS_URL = os.environ.get("CREDO_TEST_REDIS_URL", "")
KAFKA_BROKERS = os.environ.get("CREDO_TEST_KAFKA_BROKERS", "")
# One key for every node of the run: they share the database, so they must read each other's
# signing keys.
KEY_ENCRYPTION_KEY = "5f" * 32


def skip_without_backends(cls):
    return unittest.skipUnless(
        (DATABASE_URL and REDIS_URL) or REQUIRED,
        "backends not started: run through scripts/test.sh (scripts/services.sh)")(cls)


def store_env(database: str | None = DATABASE_URL, redis: str | None = REDIS_URL,
              kafka: str | None = None) -> dict[str, str]:
    """Every variable is set, empty meaning "not configured", so that nothing of the suite-wide
    CREDO_IT_STORES=durable environment leaks into a test that chose its own backends."""
    return {"CREDO_KEY_ENCRYPTION_KEY": KEY_ENCRYPTION_KEY, "DATABASE_URL": database or "",
            "REDIS_URL": redis or "", "KAFKA_BROKERS": kafka or ""}


def private_database(test: unittest.TestCase) -> str:
    """A fresh database on the shared server, dropped when the test ends: for tests whose node
    must be the only one draining its audit outbox."""
    name = "credo_" + uuid.uuid4().hex[:12]
    admin = with_user(DATABASE_URL, "postgres", "postgres")
    psql(f"CREATE DATABASE {name} OWNER credo", admin)
    test.addCleanup(psql, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", admin)
    return urllib.parse.urlunsplit(urllib.parse.urlsplit(DATABASE_URL)._replace(path="/" + name))


def with_user(url: str, user: str, database: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}@{parts.hostname}:{parts.port}",
                                                  path="/" + database))


def with_address(url: str, host: str, port: int) -> str:
    """The URL with its host:port replaced (credentials and path kept)."""
    parts = urllib.parse.urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}:{port}" if userinfo else f"{host}:{port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def poll(condition, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    """Calls `condition` until it returns a truthy value (returned) or `timeout` passes."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


class TcpProxy:
    """A loopback TCP proxy in front of one backend. cut() drops every open connection and
    refuses new ones (accepted then closed at once), as a backend crash looks to a client;
    restore() lets connections through again."""

    def __init__(self, target_url: str) -> None:
        parts = urllib.parse.urlsplit(target_url)
        self.target = (parts.hostname, parts.port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = with_address(target_url, "127.0.0.1", self.port)
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._cut = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True, name="tcp-proxy")
        self._thread.start()

    def _accept(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            with self._lock:
                if self._cut:
                    client.close()
                    continue
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select([a, b], [], [], 0.2)
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        return
                    peers[s].sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with self._lock:
                    self._open.discard(s)
                try:
                    s.close()
                except OSError:
                    pass

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            sockets = list(self._open)
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    def close(self) -> None:
        self.cut()
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()


class KafkaBroker:
    """A private 3-broker Kafka (librdkafka mock cluster, tests/infra/kafka_mock_broker) that a
    test can take down (SIGUSR1) and bring back (SIGUSR2) on the same addresses."""

    def __init__(self) -> None:
        binary = os.environ.get("CREDO_KAFKA_MOCK_BROKER", "")
        if not binary or not os.access(binary, os.X_OK):
            raise unittest.SkipTest("CREDO_KAFKA_MOCK_BROKER is not set") if not REQUIRED \
                else AssertionError("CREDO_KAFKA_MOCK_BROKER is not set")
        self._dir = tempfile.mkdtemp(prefix="credo-kafka-")
        bootstrap_file = os.path.join(self._dir, "bootstrap")
        self.proc = subprocess.Popen([binary, bootstrap_file, "3"], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        poll(lambda: os.path.exists(bootstrap_file) or self.proc.poll() is not None, 10,
             what="the Kafka mock broker's bootstrap file")
        if self.proc.poll() is not None:
            raise AssertionError("kafka_mock_broker exited at start")
        with open(bootstrap_file) as f:
            self.bootstrap = f.read().strip()

    def down(self) -> None:
        self.proc.send_signal(signal.SIGUSR1)

    def up(self) -> None:
        self.proc.send_signal(signal.SIGUSR2)

    def stop(self) -> None:
        stop_process(self.proc)
        shutil.rmtree(self._dir, ignore_errors=True)

    def keys(self, topic: str) -> list[str]:
        """Every message key on `topic`, read from the beginning with kcat (a real consumer)."""
        out = subprocess.run(["kcat", "-b", self.bootstrap, "-C", "-t", topic, "-o", "beginning",
                              "-e", "-q", "-f", "%k\n"], capture_output=True, text=True,
                             timeout=30)
        if out.returncode != 0:
            raise AssertionError(f"kcat failed: {out.stderr.strip()}")
        return [k for k in out.stdout.splitlines() if k]


def free_port() -> int:
    """A loopback port nothing listens on now (bound once, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 10 s; waits for the exit."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def psql(query: str, url: str = DATABASE_URL) -> list[str]:
    out = subprocess.run(["psql", url, "-qAt", "-c", query], capture_output=True, text=True,
                         timeout=30)
    if out.returncode != 0:
        raise AssertionError(f"psql failed: {out.stderr.strip()}")
    return out.stdout.splitlines()
