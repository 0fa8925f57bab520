"""Black-box test harness for credod.

Starts the server binary named by $CREDOD on a free loopback port, talks to it over real
sockets with http.client, and stops it with SIGTERM (SIGKILL after 10 s). Python stdlib only.

The HTTP contract under test is /work/shared/design/API.md; the decisions the server makes where
the contract is silent are asserted by the test modules beside this file.
"""

from __future__ import annotations

import atexit
import base64
import dataclasses
import datetime as dt
import hashlib
import http.client
import json
import os
import re
import secrets
import select
import signal
import socket
import subprocess
import threading
import time
import unittest
import urllib.parse
from typing import Any, Iterable, NamedTuple

STARTUP_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 15.0

# Backends and flags that would change what the suite expects (all checks "disabled", in-memory
# stores, default TTLs) are removed from the server's environment.
_SCRUBBED_ENV = ("DATABASE_URL", "REDIS_URL", "KAFKA_BROKERS")

FIRST_PARTY_CLIENT = "credo"

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
RFC3339_UTC_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


# --------------------------------------------------------------------------------------------
# Server process
# --------------------------------------------------------------------------------------------

def credod_path() -> str:
    path = os.environ.get("CREDOD")
    if not path:
        raise RuntimeError(
            "CREDOD is not set: export CREDOD=/path/to/credod (the built server binary) "
            "before running the integration tests")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise RuntimeError(f"CREDOD={path!r} is not an executable file")
    return path


# CREDO_IT_STORES=durable runs every server of the suite on the throwaway PostgreSQL, Redis and
# Kafka that scripts/test.sh starts (CREDO_TEST_*), so the whole API contract is checked on the
# durable stores too; unset, servers use the embedded default.
DURABLE = os.environ.get("CREDO_IT_STORES") == "durable"


def durable_env() -> dict[str, str]:
    env = {"CREDO_KEY_ENCRYPTION_KEY": "5f" * 32}
    for var in _SCRUBBED_ENV:
        value = os.environ.get(f"CREDO_TEST_{var}")
        if not value:
            raise RuntimeError(f"CREDO_IT_STORES=durable needs CREDO_TEST_{var}")
        env[var] = value
    return env


def server_env(admin_token: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in _SCRUBBED_ENV and not k.startswith("CREDO_") and k != "CREDOD"}
    if DURABLE:
        env.update(durable_env())
    if admin_token is not None:
        env["CREDO_ADMIN_TOKEN"] = admin_token
    env.update(extra or {})
    return env


_live_servers: set["CredoServer"] = set()
_live_lock = threading.Lock()


@atexit.register
def _kill_leftovers() -> None:
    with _live_lock:
        leftovers = list(_live_servers)
    for server in leftovers:
        server.stop()


class ServerStartError(RuntimeError):
    pass


class CredoServer:
    """One credod process on 127.0.0.1:<free port>.

    stdout is read line by line on a thread for the whole life of the process (so the pipe never
    fills); every line is kept in `stdout_lines`, and the first `{"msg": "listening", "url": ...}`
    line gives `url`. stderr is drained the same way into `stderr_lines`.
    """

    def __init__(self, extra_flags: Iterable[str] = (), admin_token: str | None = None,
                 extra_env: dict[str, str] | None = None) -> None:
        self.extra_flags = list(extra_flags)
        self.admin_token = admin_token or ("adm-" + secrets.token_urlsafe(24))
        self.extra_env = dict(extra_env or {})
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None
        self.host = ""
        self.port = 0
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self.returncode: int | None = None
        self._lock = threading.Lock()
        self._startup_done = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "CredoServer":
        # Servers on a shared Redis (the durable pass, clusters) share its rate-limit buckets:
        # the whole suite's requests from 127.0.0.1 would count against one address. They get
        # limits far above any test's load; a test's own --rate-limit flags come later and win.
        shared = bool(self.extra_env.get("REDIS_URL", "redis" if DURABLE else ""))
        cmd = [credod_path(), "--http", "127.0.0.1:0",
               *(["--rate-limit", "all=1000000/1m"] if shared else []), *self.extra_flags]
        self.proc = subprocess.Popen(
            cmd, env=server_env(self.admin_token, self.extra_env), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        with _live_lock:
            _live_servers.add(self)
        for stream, sink, is_stdout in ((self.proc.stdout, self.stdout_lines, True),
                                        (self.proc.stderr, self.stderr_lines, False)):
            t = threading.Thread(target=self._pump, args=(stream, sink, is_stdout),
                                 name=f"credod-{'out' if is_stdout else 'err'}", daemon=True)
            t.start()
            self._threads.append(t)

        if not self._startup_done.wait(STARTUP_TIMEOUT_S):
            self.stop()
            raise ServerStartError(
                f"credod did not log a 'listening' line within {STARTUP_TIMEOUT_S:.0f} s "
                f"(cmd: {' '.join(cmd)})\n{self.output_tail()}")
        if self.url is None:
            rc = self.stop()
            raise ServerStartError(
                f"credod exited (code {rc}) before logging a 'listening' line "
                f"(cmd: {' '.join(cmd)})\n{self.output_tail()}")
        parsed = urllib.parse.urlsplit(self.url)
        if parsed.scheme != "http" or not parsed.hostname or not parsed.port:
            self.stop()
            raise ServerStartError(f"'listening' line carries an unusable url {self.url!r}")
        self.host, self.port = parsed.hostname, parsed.port
        if DURABLE and "DATABASE_URL" not in self.extra_env:
            self._await_ready()
        return self

    def _await_ready(self) -> None:
        """On the durable stores the node is up before every backend check has passed (Kafka is
        probed by the audit publisher): wait for /health/ready, bounded."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            resp = raw_request(self.host, self.port, "GET", "/health/ready", None, {}, 5)
            if resp.status == 200:
                return
            time.sleep(0.05)
        self.stop()
        raise ServerStartError(f"credod did not become ready on the durable stores\n"
                               f"{self.output_tail()}")

    def _pump(self, stream, sink: list[str], is_stdout: bool) -> None:
        try:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                with self._lock:
                    sink.append(line)
                if is_stdout and self.url is None:
                    url = _listening_url(line)
                    if url:
                        self.url = url.rstrip("/")
                        self._startup_done.set()
        finally:
            stream.close()
            if is_stdout:
                self._startup_done.set()  # wakes start() if the process died before listening

    def stop(self) -> int | None:
        """SIGTERM, wait up to 10 s, then SIGKILL. Idempotent; returns the exit code."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.returncode = proc.returncode
        for t in self._threads:
            t.join(timeout=5)
        with _live_lock:
            _live_servers.discard(self)
        return self.returncode

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- output ------------------------------------------------------------------------------

    def stdout_text(self) -> str:
        with self._lock:
            return "\n".join(self.stdout_lines)

    def stderr_text(self) -> str:
        with self._lock:
            return "\n".join(self.stderr_lines)

    def log_records(self) -> list[dict]:
        """Every stdout line that parses as a JSON object."""
        out = []
        with self._lock:
            lines = list(self.stdout_lines)
        for line in lines:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out

    def output_tail(self, n: int = 40) -> str:
        with self._lock:
            out, err = self.stdout_lines[-n:], self.stderr_lines[-n:]
        return ("--- credod stdout (tail) ---\n" + "\n".join(out) +
                "\n--- credod stderr (tail) ---\n" + "\n".join(err))


def _listening_url(line: str) -> str | None:
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if isinstance(obj, dict) and obj.get("msg") == "listening" and isinstance(obj.get("url"), str):
        return obj["url"]
    return None


# --------------------------------------------------------------------------------------------
# HTTP client
# --------------------------------------------------------------------------------------------

class Response(NamedTuple):
    status: int
    headers: dict[str, str]   # lower-cased names; repeated headers joined with ", "
    body: bytes
    json: Any                 # parsed body when the content type says JSON, else None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def describe(self, limit: int = 600) -> str:
        body = self.text
        if len(body) > limit:
            body = body[:limit] + f"... ({len(self.body)} bytes)"
        return f"HTTP {self.status} headers={self.headers} body={body!r}"


_UNSET = object()


def basic_auth(client_id: str, secret: str) -> str:
    # RFC 6749 section 2.3.1: both parts form-urlencoded before base64.
    raw = f"{urllib.parse.quote(client_id, safe='')}:{urllib.parse.quote(secret, safe='')}"
    return "Basic " + base64.b64encode(raw.encode()).decode()


def raw_request(host: str, port: int, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None,
                timeout: float = REQUEST_TIMEOUT_S) -> Response:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    return to_response(resp, data)


def encode_body(form: dict | None = None,
                json_body: Any = None) -> tuple[bytes | None, dict[str, str]]:
    """A form (urlencoded) or JSON request body and its Content-Type header; form wins."""
    if form is not None:
        return urllib.parse.urlencode(form).encode(), {
            "Content-Type": "application/x-www-form-urlencoded"}
    if json_body is not None:
        return json.dumps(json_body).encode(), {"Content-Type": "application/json"}
    return None, {}


def to_response(resp: http.client.HTTPResponse, data: bytes) -> Response:
    """A read http.client response as a Response: repeated headers joined, JSON parsed."""
    hdrs: dict[str, str] = {}
    for name, value in resp.getheaders():
        key = name.lower()
        hdrs[key] = f"{hdrs[key]}, {value}" if key in hdrs else value
    parsed = None
    if "json" in hdrs.get("content-type", "").lower() and data:
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = None
    return Response(resp.status, hdrs, data, parsed)


def post_large_body(host: str, port: int, path: str, body: bytes, content_type: str,
                    timeout: float = REQUEST_TIMEOUT_S) -> Response:
    """POSTs a body that the server may refuse before reading it all (413). The body goes out in
    chunks and sending stops as soon as the server answers, so its early close does not turn into
    a connection reset that swallows the response."""
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n").encode()
        sock.sendall(head)
        try:
            for offset in range(0, len(body), 8192):
                if select.select([sock], [], [], 0)[0]:
                    break  # the server already answered
                sock.sendall(body[offset:offset + 8192])
        except (BrokenPipeError, ConnectionResetError):
            pass
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        data = resp.read()
        hdrs: dict[str, str] = {}
        for name, value in resp.getheaders():
            key = name.lower()
            hdrs[key] = f"{hdrs[key]}, {value}" if key in hdrs else value
    finally:
        sock.close()
    parsed = None
    if "json" in hdrs.get("content-type", "").lower() and data:
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = None
    return Response(resp.status, hdrs, data, parsed)


class CredoClient:
    """A tiny client for one server. Every response is checked against the contract's global
    invariants (X-Request-ID present, no HTML, JSON errors, no-store on token bodies) unless
    `check=False` is passed."""

    def __init__(self, server: CredoServer) -> None:
        self.server = server
        self._introspector: OAuthClient | None = None
        self._introspector_lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.server.url

    def request(self, method: str, path: str, *, body: bytes | None = None, json_body: Any = _UNSET,
                form: Any = None, headers: dict[str, str] | None = None, bearer: str | None = None,
                basic: tuple[str, str] | None = None, check: bool = True,
                timeout: float = REQUEST_TIMEOUT_S) -> Response:
        hdrs: dict[str, str] = {}
        if json_body is not _UNSET:
            body = json.dumps(json_body).encode()
            hdrs["Content-Type"] = "application/json"
        elif form is not None:
            body = urllib.parse.urlencode(form).encode()
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        if bearer is not None:
            hdrs["Authorization"] = f"Bearer {bearer}"
        if basic is not None:
            hdrs["Authorization"] = basic_auth(*basic)
        hdrs.update(headers or {})
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""
        resp = raw_request(self.server.host, self.server.port, method, path, body, hdrs, timeout)
        if check:
            problems = contract_violations(resp)
            if problems:
                raise AssertionError(f"{method} {path}: " + "; ".join(problems) +
                                     f"\n  {resp.describe()}")
        return resp

    def post_large(self, path: str, body: bytes, content_type: str) -> Response:
        resp = post_large_body(self.server.host, self.server.port, path, body, content_type)
        problems = contract_violations(resp)
        if problems:
            raise AssertionError(f"POST {path} ({len(body)} bytes): " + "; ".join(problems) +
                                 f"\n  {resp.describe()}")
        return resp

    # -- convenience verbs ---------------------------------------------------------------------

    def get(self, path: str, **kw) -> Response:
        return self.request("GET", path, **kw)

    def post_json(self, path: str, payload: Any, **kw) -> Response:
        return self.request("POST", path, json_body=payload, **kw)

    def post_form(self, path: str, form: Any, **kw) -> Response:
        return self.request("POST", path, form=form, **kw)

    def admin(self, method: str, path: str, payload: Any = _UNSET, token: str | None = None,
              **kw) -> Response:
        return self.request(method, path, json_body=payload,
                            bearer=self.server.admin_token if token is None else token, **kw)

    # -- users and login -----------------------------------------------------------------------

    def register_user(self, email: str | None = None, password: str | None = None,
                      name: str | None = "Test User") -> "User":
        email = email or unique_email()
        password = password or ("pw-" + secrets.token_urlsafe(12))
        payload = {"email": email, "password": password}
        if name is not None:
            payload["name"] = name
        resp = self.post_json("/users", payload)
        if resp.status != 201:
            raise AssertionError(f"registering {email} failed: {resp.describe()}")
        return User(email=email, password=password, id=resp.json["id"], name=name)

    def login(self, email: str, password: str, **extra) -> dict:
        resp = self.post_json("/auth/login", {"email": email, "password": password, **extra})
        if resp.status != 200:
            raise AssertionError(f"login of {email} failed: {resp.describe()}")
        return resp.json

    def new_user_session(self, **login_extra) -> tuple["User", dict]:
        user = self.register_user()
        return user, self.login(user.email, user.password, **login_extra)

    # -- clients ---------------------------------------------------------------------------

    def admin_register_client(self, client_id: str | None = None, *, confidential: bool = True,
                              secret: str | None = None, redirect_uris: list[str] | None = None,
                              scopes: list[str] | None = None,
                              grant_types: list[str] | None = None) -> "OAuthClient":
        client_id = client_id or unique_id("client")
        if confidential and secret is None:
            secret = "sec-" + secrets.token_urlsafe(24)
        if not confidential:
            secret = None
        redirect_uris = redirect_uris if redirect_uris is not None else [
            f"http://127.0.0.1:9/cb/{client_id}"]
        scopes = scopes if scopes is not None else ["api.read", "api.write"]
        grant_types = grant_types if grant_types is not None else [
            "authorization_code", "refresh_token"]
        payload: dict[str, Any] = {"client_id": client_id, "redirect_uris": redirect_uris,
                                   "scopes": scopes, "grant_types": grant_types}
        if secret is not None:
            payload["client_secret"] = secret
        resp = self.admin("POST", "/admin/clients", payload)
        if resp.status != 201:
            raise AssertionError(f"registering client {client_id} failed: {resp.describe()}")
        return OAuthClient(client_id=client_id, secret=secret, redirect_uris=redirect_uris,
                           scopes=scopes, grant_types=grant_types)

    @property
    def introspector(self) -> "OAuthClient":
        """A confidential client used only to call /auth/introspect."""
        with self._introspector_lock:
            if self._introspector is None:
                self._introspector = self.admin_register_client(
                    unique_id("introspector"), scopes=["internal"], redirect_uris=[],
                    grant_types=["client_credentials"])
            return self._introspector

    # -- OAuth endpoints -------------------------------------------------------------------

    def token(self, form: dict, client: "OAuthClient | None" = None, *, auth: str = "basic",
              **kw) -> Response:
        """POST /auth/token. auth: "basic" (client_secret_basic), "post" (client_secret_post),
        "none" (client_id only, for public clients)."""
        form = dict(form)
        basic = None
        if client is not None:
            if auth == "basic" and client.secret is not None:
                basic = (client.client_id, client.secret)
            elif auth == "post" and client.secret is not None:
                form.update(client_id=client.client_id, client_secret=client.secret)
            else:
                form["client_id"] = client.client_id
        return self.post_form("/auth/token", form, basic=basic, **kw)

    def refresh_first_party(self, refresh_token: str, **kw) -> Response:
        return self.post_form("/auth/token", {"grant_type": "refresh_token",
                                              "refresh_token": refresh_token,
                                              "client_id": FIRST_PARTY_CLIENT}, **kw)

    def introspect(self, token: str, client: "OAuthClient | None" = None, **form) -> Response:
        client = client or self.introspector
        return self.post_form("/auth/introspect", {"token": token, **form},
                              basic=(client.client_id, client.secret))

    def introspect_json(self, token: str) -> dict:
        resp = self.introspect(token)
        if resp.status != 200 or not isinstance(resp.json, dict):
            raise AssertionError(f"introspection failed: {resp.describe()}")
        return resp.json

    def is_active(self, token: str) -> bool:
        active = self.introspect_json(token).get("active")
        if not isinstance(active, bool):
            raise AssertionError(f"introspection 'active' is not a boolean: {active!r}")
        return active

    def revoke(self, token: str, client: "OAuthClient | None" = None, **form) -> Response:
        if client is None or client.secret is None:
            cid = client.client_id if client else FIRST_PARTY_CLIENT
            return self.post_form("/auth/revoke", {"token": token, "client_id": cid, **form})
        return self.post_form("/auth/revoke", {"token": token, **form},
                              basic=(client.client_id, client.secret))

    def grant_consent(self, bearer: str, client_id: str, scopes: list[str],
                      expires_in: int | None = None) -> Response:
        payload: dict[str, Any] = {"client_id": client_id, "scopes": scopes}
        if expires_in is not None:
            payload["expires_in"] = expires_in
        resp = self.post_json("/auth/consent", payload, bearer=bearer)
        if resp.status != 200:
            raise AssertionError(f"consent to {client_id} {scopes} failed: {resp.describe()}")
        return resp

    def authorize(self, bearer: str | None, params: dict, **kw) -> Response:
        return self.get("/auth/authorize?" + urllib.parse.urlencode(params), bearer=bearer, **kw)

    def authorize_params(self, client: "OAuthClient", scope: str, challenge: str | None,
                         state: str | None = None, **overrides) -> dict:
        params = {"response_type": "code", "client_id": client.client_id,
                  "redirect_uri": client.redirect_uris[0], "scope": scope,
                  "state": state or secrets.token_urlsafe(8)}
        if challenge is not None:
            params.update(code_challenge=challenge, code_challenge_method="S256")
        params.update(overrides)
        return {k: v for k, v in params.items() if v is not None}

    def get_code(self, bearer: str, client: "OAuthClient", scope: str) -> tuple[str, str]:
        """Runs /auth/authorize and returns (code, code_verifier)."""
        verifier, challenge = pkce_pair()
        params = self.authorize_params(client, scope, challenge)
        resp = self.authorize(bearer, params)
        redirect = parse_redirect(resp)
        if "code" not in redirect.params:
            raise AssertionError(f"authorize for {client.client_id} scope={scope!r} gave no code: "
                                 f"{resp.describe()}")
        if redirect.params.get("state") != params["state"]:
            raise AssertionError(f"authorize did not echo state: {resp.describe()}")
        return redirect.params["code"], verifier

    def exchange_code(self, client: "OAuthClient", code: str, verifier: str,
                      redirect_uri: str | None = None, auth: str = "basic") -> Response:
        return self.token({"grant_type": "authorization_code", "code": code,
                           "redirect_uri": redirect_uri or client.redirect_uris[0],
                           "code_verifier": verifier}, client, auth=auth)

    def code_flow(self, bearer: str, client: "OAuthClient", scope: str,
                  auth: str = "basic") -> dict:
        code, verifier = self.get_code(bearer, client, scope)
        resp = self.exchange_code(client, code, verifier, auth=auth)
        if resp.status != 200:
            raise AssertionError(f"code exchange for {client.client_id} failed: {resp.describe()}")
        return resp.json

    def refresh(self, client: "OAuthClient", refresh_token: str, auth: str = "basic") -> Response:
        return self.token({"grant_type": "refresh_token", "refresh_token": refresh_token},
                          client, auth=auth)

    def audit(self, subject: str | None = None, limit: int | None = 100) -> list[dict]:
        query = {}
        if subject is not None:
            query["subject"] = subject
        if limit is not None:
            query["limit"] = str(limit)
        resp = self.admin("GET", "/admin/audit?" + urllib.parse.urlencode(query))
        if resp.status != 200 or not isinstance(resp.json, dict) or \
                not isinstance(resp.json.get("events"), list):
            raise AssertionError(f"/admin/audit failed: {resp.describe()}")
        return resp.json["events"]


def contract_violations(resp: Response) -> list[str]:
    """The invariants API.md puts on every response."""
    problems = []
    rid = resp.header("x-request-id")
    if not rid:
        problems.append("no X-Request-ID header")
    lowered = resp.body[:4096].lower()
    if b"<html" in lowered or b"<!doctype" in lowered:
        problems.append("HTML in the body")
    ctype = resp.header("content-type", "")
    if resp.status >= 400:
        if not ctype.lower().startswith("application/json"):
            problems.append(f"error response has Content-Type {ctype!r}, not application/json")
        err = resp.json
        if not isinstance(err, dict) or not isinstance(err.get("error"), str) or not err["error"]:
            problems.append("error response is not JSON with an 'error' string")
        elif not isinstance(err.get("error_description"), str):
            problems.append("error response has no 'error_description' string")
    if isinstance(resp.json, dict) and ("access_token" in resp.json or "refresh_token" in resp.json):
        if "no-store" not in resp.header("cache-control", "").lower():
            problems.append("token-bearing response without Cache-Control: no-store")
    return problems


# --------------------------------------------------------------------------------------------
# Values and small helpers
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class User:
    email: str
    password: str
    id: str
    name: str | None = None


@dataclasses.dataclass
class OAuthClient:
    client_id: str
    secret: str | None
    redirect_uris: list[str]
    scopes: list[str]
    grant_types: list[str]

    @property
    def public(self) -> bool:
        return self.secret is None


class Redirect(NamedTuple):
    base: str                 # scheme://host:port/path of the Location
    params: dict[str, str]    # query parameters (last value wins)


def parse_redirect(resp: Response) -> Redirect:
    if resp.status not in (302, 303):
        raise AssertionError(f"expected a 302 redirect, got {resp.describe()}")
    location = resp.header("location")
    if not location:
        raise AssertionError(f"redirect without Location: {resp.describe()}")
    parts = urllib.parse.urlsplit(location)
    base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return Redirect(base, dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True)))


def unique_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(5)}"


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}.{secrets.token_hex(6)}@example.com"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) per RFC 7636."""
    verifier = b64url(secrets.token_bytes(32))
    return verifier, b64url(hashlib.sha256(verifier.encode()).digest())


def decode_jwt(token: str) -> tuple[dict, dict]:
    """(header, payload) of a compact JWS; the signature is not verified here."""
    parts = token.split(".")
    if len(parts) != 3:
        raise AssertionError(f"not a compact JWS (expected 3 parts, got {len(parts)})")
    return json.loads(b64url_decode(parts[0])), json.loads(b64url_decode(parts[1]))


def parse_rfc3339(value: str) -> dt.datetime:
    if not isinstance(value, str) or not RFC3339_UTC_RE.match(value):
        raise AssertionError(f"{value!r} is not an RFC 3339 UTC timestamp ending in Z")
    return dt.datetime.fromisoformat(value[:-1] + "+00:00")


def wait_for_next_second(margin: float = 0.05) -> None:
    """Waits until just past the next whole-second boundary of the wall clock (the server records
    revocation cut-offs with one-second resolution)."""
    now = time.time()
    time.sleep(max(0.0, int(now) + 1 + margin - now))


def wait_until(epoch_seconds: float) -> None:
    remaining = epoch_seconds - time.time()
    if remaining > 0:
        time.sleep(remaining)


# --------------------------------------------------------------------------------------------
# unittest base class
# --------------------------------------------------------------------------------------------

class CredoTestCase(unittest.TestCase):
    """One credod per test class. Subclasses may set `server_flags`."""

    server_flags: tuple[str, ...] = ()
    server: CredoServer
    api: CredoClient

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.server = CredoServer(cls.server_flags)
        cls.addClassCleanup(cls.server.stop)
        cls.server.start()
        cls.api = CredoClient(cls.server)

    # -- assertions --------------------------------------------------------------------------

    def assertStatus(self, resp: Response, status: int, what: str = "") -> None:
        if resp.status != status:
            self.fail(f"{what or 'request'}: expected HTTP {status}, got {resp.describe()}")

    def assertError(self, resp: Response, status: int | tuple[int, ...], code: str | tuple[str, ...],
                    what: str = "") -> None:
        statuses = status if isinstance(status, tuple) else (status,)
        codes = code if isinstance(code, tuple) else (code,)
        err = resp.json.get("error") if isinstance(resp.json, dict) else None
        if resp.status not in statuses or err not in codes:
            self.fail(f"{what or 'request'}: expected HTTP {'/'.join(map(str, statuses))} "
                      f"error {'/'.join(codes)}, got {resp.describe()}")
        if not resp.header("content-type", "").lower().startswith("application/json"):
            self.fail(f"{what}: error is not application/json: {resp.describe()}")

    def assertNoStore(self, resp: Response, what: str = "") -> None:
        self.assertIn("no-store", resp.header("cache-control", "").lower(),
                      f"{what}: token-bearing response lacks Cache-Control: no-store "
                      f"({resp.describe(200)})")

    def assertRfc3339(self, value: Any, what: str) -> dt.datetime:
        try:
            return parse_rfc3339(value)
        except (AssertionError, ValueError) as exc:
            self.fail(f"{what}: {exc}")

    def assertActive(self, token: str, what: str) -> None:
        self.assertTrue(self.api.is_active(token), f"{what}: expected introspection active:true")

    def assertInactive(self, token: str, what: str) -> None:
        self.assertFalse(self.api.is_active(token), f"{what}: expected introspection active:false")

    def assertRefreshFails(self, resp: Response, what: str) -> None:
        self.assertError(resp, 400, "invalid_grant", what)
