"""A steady workload through every node of a cluster, for chaos tests.

Worker threads send, each to a random node: first-party refreshes (POST /auth/token,
grant_type=refresh_token, no client authentication), refreshes of third-party grants (the same
with the registered client's Basic authentication), logins (POST /auth/login), consent grants
(POST /auth/consent), introspections (POST /auth/introspect by a confidential client) of access
and refresh tokens, session listings, new third-party grants (authorize + code exchange), and on
purpose, now and then, the replay of an already used refresh token (which must fail with
invalid_grant and revoke the grant).

A request that is refused (connection refused: nothing was sent), answered 503, or left without
an answer (connection reset, timeout) is retried on another node, a bounded number of times within
a bounded time. Every attempt is logged (`attempts`), so that the time a key was unavailable can
be read against the faults; every operation whose attempts all failed is a failure
(`failures`).

What was acknowledged to the client is recorded: each grant (a session's login grant or a
third-party grant of a session) with its latest refresh and access token, the logins, refreshes,
code exchanges and consent grants with the request id and token id (jti) that the audit log must
show, and every refresh token that got a 200. What the service answered that it must not have
(a replay that succeeded, a refresh token handed out twice, the latest acknowledged token refused
without any doubtful request before it, an inactive latest token) is a violation, recorded with
the evidence at once.

A refresh whose outcome the client cannot know (503, or no answer) may have rotated the token.
The grant is then "in doubt" until a later answer settles it; if the retry with the same token is
refused, the grant is lost to the client but not necessarily by the service: the chaos test reads
the audit log to tell the two apart."""

from __future__ import annotations

import dataclasses
import http.client
import json
import random
import secrets
import threading
import time
import traceback
import urllib.parse
from typing import Any, Callable

from credo_harness import (FIRST_PARTY_CLIENT, to_response, OAuthClient, Response, User, basic_auth,
                           contract_violations, decode_jwt, encode_body, pkce_pair)

REQUEST_TIMEOUT_S = 4.0
MAX_ATTEMPTS = 12
RETRY_BUDGET_S = 5.0     # no new attempt after this long since the operation's first
BACKOFF_S = (0.02, 0.05, 0.1, 0.2, 0.3)

# Outcomes of one attempt.
OK = "ok"                  # an HTTP answer other than 503
REFUSED = "refused"        # no connection (refused, unreachable, timed out): nothing was sent
UNAVAILABLE = "503"        # 503 (the node or the key's owner cannot serve it now)
NO_ANSWER = "no_answer"    # sent, then reset, closed or timed out: the outcome is unknown

# Operations and their weights.
WEIGHTS = {
    "refresh": 42,          # first-party refresh of a session
    "refresh_3p": 9,        # refresh of a third-party grant
    "introspect": 20,       # access token
    "introspect_refresh": 5,
    "sessions": 5,          # GET /auth/sessions lists the session
    "consent": 7,
    "login": 5,
    "replay": 4,
    "new_grant": 3,         # authorize + code exchange: a new third-party grant
}
KEYED_OPS = {"refresh", "refresh_3p", "introspect_refresh", "consent", "replay", "new_grant"}


@dataclasses.dataclass
class Attempt:
    op: str
    key: str | None          # the entity key the request routes to ("session:<id>",
    node: str                # "consent:<user id>"), None when no entity is involved
    t0: float
    t1: float
    outcome: str
    status: int | None
    request_id: str
    error: str = ""          # the connection error, or a 503's error_description
    wall: float = 0.0        # time.time() at t0, to read against the nodes' logs


@dataclasses.dataclass
class Result:
    resp: Response | None        # the definitive answer, None if every attempt failed
    attempts: list[Attempt]

    @property
    def doubtful(self) -> list[Attempt]:
        """Attempts that were sent and may have had an effect without an answer saying so."""
        return [a for a in self.attempts if a.outcome in (UNAVAILABLE, NO_ANSWER)]

    @property
    def final(self) -> Attempt:
        return self.attempts[-1]


@dataclasses.dataclass
class Grant:
    """A refresh grant the client holds: a session's login grant ("first_party") or a
    third-party client's grant within a session."""
    kind: str
    user: User
    session_id: str
    refresh_token: str
    access_token: str
    history: list[str]               # every refresh token of the grant, oldest first
    # live | replayed | replay_unknown | lost | session_ended (its session's login grant was
    # replayed or lost: every grant of the session ended with it)
    state: str = "live"
    doubtful: list[Attempt] = dataclasses.field(default_factory=list)
    lost_evidence: str = ""
    lost_request_id: str = ""        # the refused refresh that showed the grant was lost

    @property
    def key(self) -> str:
        return f"session:{self.session_id}"


@dataclasses.dataclass
class Ack:
    """A change acknowledged to the client, and what the audit log must show for it."""
    kind: str                 # login | refresh | exchange | consent
    user_id: str
    session_id: str | None
    request_id: str
    jti: str | None = None
    client_id: str | None = None
    scope: str | None = None
    at: float = 0.0


class Workload:
    """Runs `threads` workers until stop(); `endpoints()` gives the (node_id, host, port) list to
    choose from at each attempt."""

    def __init__(self, endpoints: Callable[[], list[tuple[str, str, int]]], users: list[User],
                 app: OAuthClient, introspector: OAuthClient, threads: int = 5,
                 pace_s: float = 0.02, seed: int | None = None,
                 log: Callable[[str], None] = print) -> None:
        self.endpoints = endpoints
        self.users = users
        self.app = app
        self.introspector = introspector
        self.threads = threads
        self.pace_s = pace_s
        self.log = log
        self.rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._rid = 0
        self.run_id = secrets.token_hex(3)

        self.grants: list[Grant] = []
        self._busy_sessions: set[str] = set()   # one operation at a time per session
        self.acks: list[Ack] = []
        self.ok_refresh_tokens: dict[str, str] = {}   # token -> request id of the 200 with it
        self.ok_jtis: dict[str, str] = {}
        self.presented_ok: dict[str, str] = {}        # refresh token -> request id of its 200
        self.attempts: list[Attempt] = []
        self.failures: list[tuple[str, Result, str]] = []   # (op, result, why)
        self.violations: list[str] = []
        self.ops: dict[str, int] = {op: 0 for op in WEIGHTS}
        self.replays = {"refused": 0, "unknown": 0}
        self.errors: list[str] = []                   # exceptions in the workers

    # -- running -----------------------------------------------------------------------------

    def start(self) -> None:
        for i in range(self.threads):
            t = threading.Thread(target=self._worker, name=f"chaos-worker-{i}", daemon=True)
            t.start()
            self._workers.append(t)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout
        for t in self._workers:
            t.join(max(0.1, deadline - time.monotonic()))
        alive = [t.name for t in self._workers if t.is_alive()]
        if alive:
            raise AssertionError(f"workers still running {timeout:.0f} s after stop: {alive}")

    def _worker(self) -> None:
        ops = list(WEIGHTS)
        weights = [WEIGHTS[o] for o in ops]
        while not self._stop.is_set():
            with self._rng_lock:
                op = self.rng.choices(ops, weights)[0]
            try:
                getattr(self, f"_op_{op}")()
            except Exception:  # a bug in the workload, not a service answer
                with self._lock:
                    self.errors.append(f"{op}: {traceback.format_exc()}")
                    if len(self.errors) > 20:
                        self._stop.set()
            self._stop.wait(self.pace_s)

    # -- requests ----------------------------------------------------------------------------

    def _request_id(self) -> str:
        with self._lock:
            self._rid += 1
            return f"chaos-{self.run_id}-{self._rid}"

    def _choice(self, seq):
        with self._rng_lock:
            return self.rng.choice(seq)

    def send(self, op: str, key: str | None, method: str, path: str, *, form: dict | None = None,
             json_body: Any = None, bearer: str | None = None,
             basic: tuple[str, str] | None = None, count: bool = True,
             retry_doubtful: bool = True) -> Result:
        """One operation: attempts on random nodes (never the same one twice in a row) until an
        answer other than 503, MAX_ATTEMPTS, or RETRY_BUDGET_S. Without `retry_doubtful` only
        refused connections (nothing sent) are retried."""
        body, headers = encode_body(form, json_body)
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        if basic is not None:
            headers["Authorization"] = basic_auth(*basic)
        if method == "POST" and body is None:
            body = b""
        attempts: list[Attempt] = []
        start = time.monotonic()
        last_node = None
        resp = None
        for n in range(MAX_ATTEMPTS):
            endpoints = self.endpoints()
            choices = [e for e in endpoints if e[0] != last_node] or endpoints
            node_id, host, port = self._choice(choices)
            last_node = node_id
            rid = self._request_id()
            headers["X-Request-ID"] = rid
            wall, t0 = time.time(), time.monotonic()
            resp, outcome, error = _attempt(host, port, method, path, body, headers)
            attempt = Attempt(op, key, node_id, t0, time.monotonic(), outcome,
                              resp.status if resp else None, rid, error, wall)
            attempts.append(attempt)
            if resp is not None:
                problems = contract_violations(resp)
                if problems:
                    self._violation(f"contract: {method} {path} via {node_id} (request {rid}): "
                                    f"{'; '.join(problems)}: {resp.describe(300)}")
            if outcome == OK:
                break
            resp = None
            if outcome != REFUSED and not retry_doubtful:
                break
            if time.monotonic() - start > RETRY_BUDGET_S or self._stop.is_set() and n >= 2:
                break
            if outcome != REFUSED:
                time.sleep(BACKOFF_S[min(n, len(BACKOFF_S) - 1)])
        with self._lock:
            self.attempts.extend(attempts)
            if count:
                self.ops[op] += 1
        return Result(resp, attempts)

    def _violation(self, text: str) -> None:
        with self._lock:
            self.violations.append(text)
        self.log(f"VIOLATION {text}")

    def _failure(self, op: str, result: Result, why: str) -> None:
        with self._lock:
            self.failures.append((op, result, why))

    def _note_tokens(self, refresh_token: str | None, access_token: str | None,
                     rid: str) -> str | None:
        """Records tokens from a 200 (lock held); returns the access token's jti."""
        jti = None
        if refresh_token is not None:
            if refresh_token in self.ok_refresh_tokens:
                self.violations.append(
                    f"refresh token handed out twice: in the 200s of requests "
                    f"{self.ok_refresh_tokens[refresh_token]} and {rid}")
            self.ok_refresh_tokens[refresh_token] = rid
        if access_token is not None:
            jti = decode_jwt(access_token)[1].get("jti")
            if jti in self.ok_jtis:
                self.violations.append(f"access token jti {jti} handed out twice: requests "
                                       f"{self.ok_jtis[jti]} and {rid}")
            self.ok_jtis[jti] = rid
        return jti

    # -- grants ------------------------------------------------------------------------------

    def _take(self, predicate: Callable[[Grant], bool]) -> Grant | None:
        """A grant whose session no other worker is using; the session stays taken until
        _release (so that a replay, which may end the session, never races another grant of
        it)."""
        with self._lock:
            candidates = [g for g in self.grants
                          if g.session_id not in self._busy_sessions and predicate(g)]
            if not candidates:
                return None
            with self._rng_lock:
                g = self.rng.choice(candidates)
            self._busy_sessions.add(g.session_id)
            return g

    def _release(self, g: Grant) -> None:
        with self._lock:
            self._busy_sessions.discard(g.session_id)

    def _end_session(self, g: Grant) -> None:
        """`g`, a login grant, was revoked or lost: the other grants of its session ended
        with it (the session is taken, so none of them is in use)."""
        if g.kind != "first_party":
            return
        with self._lock:
            for other in self.grants:
                if other is not g and other.session_id == g.session_id and other.state == "live":
                    other.state = "session_ended"
                    other.lost_evidence = f"its session's login grant is {g.state}"

    def _has_third_party(self, session_id: str) -> bool:
        return any(o.kind == "third_party" and o.session_id == session_id for o in self.grants)

    def _live(self, kind: str | None = None) -> Callable[[Grant], bool]:
        return lambda g: g.state == "live" and (kind is None or g.kind == kind)

    def refresh_grant(self, g: Grant, op: str, count: bool = True) -> Result:
        """Refreshes `g` with its latest token and settles what the answer means for it.
        Caller holds the grant (busy)."""
        form = {"grant_type": "refresh_token", "refresh_token": g.refresh_token}
        basic = None
        if g.kind == "first_party":
            form["client_id"] = FIRST_PARTY_CLIENT
        else:
            basic = (self.app.client_id, self.app.secret)
        presented = g.refresh_token
        r = self.send(op, g.key, "POST", "/auth/token", form=form, basic=basic, count=count)
        doubtful = r.doubtful
        if r.resp is None:
            g.doubtful.extend(doubtful)
            self._failure(op, r, "no answer after retries")
            return r
        resp = r.resp
        if resp.status == 200 and isinstance(resp.json, dict):
            rid = r.final.request_id
            with self._lock:
                if presented in self.presented_ok:
                    self.violations.append(
                        f"refresh token of {g.key} succeeded twice: requests "
                        f"{self.presented_ok[presented]} and {rid}")
                self.presented_ok[presented] = rid
                jti = self._note_tokens(resp.json.get("refresh_token"),
                                        resp.json.get("access_token"), rid)
                self.acks.append(Ack("refresh", g.user.id, g.session_id, rid, jti=jti,
                                     client_id=None if g.kind == "first_party"
                                     else self.app.client_id, at=r.final.t1))
            g.refresh_token = resp.json["refresh_token"]
            g.access_token = resp.json["access_token"]
            g.history.append(g.refresh_token)
            g.doubtful.clear()
            return r
        error = (resp.json or {}).get("error") if isinstance(resp.json, dict) else None
        if resp.status == 400 and error == "invalid_grant":
            g.doubtful.extend(doubtful)
            g.state = "lost"
            g.lost_request_id = r.final.request_id
            self._end_session(g)
            if g.doubtful:
                g.lost_evidence = (f"refused with invalid_grant (request {r.final.request_id} "
                                   f"via {r.final.node}) after doubtful requests " +
                                   ", ".join(f"{a.request_id} via {a.node}: {a.outcome}"
                                             f"{' ' + a.error if a.error else ''}"
                                             for a in g.doubtful))
                self._failure(op, r, "grant lost after a doubtful refresh: " + g.lost_evidence)
            else:
                g.lost_evidence = (f"the latest acknowledged refresh token was refused "
                                   f"(request {r.final.request_id} via {r.final.node}) with no "
                                   f"doubtful request before: {resp.describe(300)}")
                self._failure(op, r, g.lost_evidence)
                self._violation(f"{g.kind} grant of {g.key} (user {g.user.id}) lost: "
                                f"{g.lost_evidence}")
            return r
        self._failure(op, r, f"unexpected answer {resp.describe(300)}")
        return r

    # -- operations ---------------------------------------------------------------------------

    def _op_refresh(self, kind: str = "first_party", op: str = "refresh") -> None:
        g = self._take(self._live(kind))
        if g is None:
            return
        try:
            self.refresh_grant(g, op)
        finally:
            self._release(g)

    def _op_refresh_3p(self) -> None:
        self._op_refresh("third_party", "refresh_3p")

    def _op_introspect(self, refresh: bool = False) -> None:
        op = "introspect_refresh" if refresh else "introspect"
        g = self._take(lambda g: g.state == "live" and (not refresh or not g.doubtful))
        if g is None:
            return
        try:
            token = g.refresh_token if refresh else g.access_token
            r = self.send(op, g.key if refresh else None, "POST", "/auth/introspect",
                          form={"token": token},
                          basic=(self.introspector.client_id, self.introspector.secret))
            if r.resp is None:
                return self._failure(op, r, "no answer after retries")
            if r.resp.status != 200 or not isinstance(r.resp.json, dict):
                return self._failure(op, r, f"unexpected answer {r.resp.describe(300)}")
            if r.resp.json.get("active") is not True:
                what = "refresh" if refresh else "access"
                self._failure(op, r, "latest token inactive")
                self._violation(f"the latest acknowledged {what} token (no. {len(g.history)}, "
                                f"{token[:8]}...) of the {g.kind} grant of {g.key} is inactive "
                                f"(request {r.final.request_id} via {r.final.node}, "
                                f"{len(r.attempts)} attempts): {r.resp.describe(300)}")
        finally:
            self._release(g)

    def _op_introspect_refresh(self) -> None:
        self._op_introspect(refresh=True)

    def _op_sessions(self) -> None:
        g = self._take(self._live("first_party"))
        if g is None:
            return
        try:
            r = self.send("sessions", None, "GET", "/auth/sessions", bearer=g.access_token)
            if r.resp is None:
                return self._failure("sessions", r, "no answer after retries")
            if r.resp.status != 200 or not isinstance(r.resp.json, dict):
                return self._failure("sessions", r, f"unexpected answer {r.resp.describe(300)}")
            ids = [s.get("id") for s in r.resp.json.get("sessions", [])]
            if g.session_id not in ids:
                self._failure("sessions", r, "session not listed")
                self._violation(f"live session {g.session_id} of user {g.user.id} is not in "
                                f"GET /auth/sessions (request {r.final.request_id} via "
                                f"{r.final.node}): {ids}")
        finally:
            self._release(g)

    def _op_consent(self) -> None:
        g = self._take(self._live("first_party"))
        if g is None:
            return
        try:
            scope = self._choice(self.app.scopes)
            r = self.send("consent", f"consent:{g.user.id}", "POST", "/auth/consent",
                          json_body={"client_id": self.app.client_id, "scopes": [scope]},
                          bearer=g.access_token)
            if r.resp is None:
                return self._failure("consent", r, "no answer after retries")
            if r.resp.status != 200:
                return self._failure("consent", r, f"unexpected answer {r.resp.describe(300)}")
            with self._lock:
                self.acks.append(Ack("consent", g.user.id, None, r.final.request_id,
                                     client_id=self.app.client_id, scope=scope, at=r.final.t1))
        finally:
            self._release(g)

    def _op_login(self) -> None:
        self.login(self._choice(self.users))

    def login(self, user: User) -> Grant | None:
        """A new session of `user`: its login grant, or None (a failure is recorded)."""
        r = self.send("login", None, "POST", "/auth/login",
                      json_body={"email": user.email, "password": user.password,
                                 "device": f"chaos-{secrets.token_hex(2)}"})
        if r.resp is None:
            return self._failure("login", r, "no answer after retries")
        if r.resp.status != 200 or not isinstance(r.resp.json, dict):
            return self._failure("login", r, f"unexpected answer {r.resp.describe(300)}")
        j = r.resp.json
        rid = r.final.request_id
        g = Grant("first_party", user, j["session_id"], j["refresh_token"], j["access_token"],
                  [j["refresh_token"]])
        with self._lock:
            jti = self._note_tokens(j["refresh_token"], j["access_token"], rid)
            self.acks.append(Ack("login", user.id, j["session_id"], rid, jti=jti, at=r.final.t1))
            self.grants.append(g)
        return g

    def _op_replay(self) -> None:
        """Refreshes a grant if it has no used token yet, then presents one of its used tokens:
        invalid_grant, and the grant is revoked."""
        g = self._take(lambda g: g.state == "live" and not g.doubtful and
                       (g.kind == "third_party" or not self._has_third_party(g.session_id)))
        if g is None:
            return
        try:
            if len(g.history) < 2:
                r = self.refresh_grant(g, "refresh", count=False)
                if g.state != "live" or g.doubtful or r.resp is None or r.resp.status != 200:
                    return
            used = self._choice(g.history[:-1])
            form = {"grant_type": "refresh_token", "refresh_token": used}
            basic = None
            if g.kind == "first_party":
                form["client_id"] = FIRST_PARTY_CLIENT
            else:
                basic = (self.app.client_id, self.app.secret)
            r = self.send("replay", g.key, "POST", "/auth/token", form=form, basic=basic)
            if r.resp is None:
                g.state = "replay_unknown"
                self._end_session(g)
                with self._lock:
                    self.replays["unknown"] += 1
                return self._failure("replay", r, "no answer after retries")
            error = (r.resp.json or {}).get("error") if isinstance(r.resp.json, dict) else None
            if r.resp.status == 200:
                g.state = "replay_unknown"
                self._end_session(g)
                self._failure("replay", r, "replay succeeded")
                self._violation(
                    f"a used refresh token of the {g.kind} grant of {g.key} (token "
                    f"{g.history.index(used) + 1} of {len(g.history)}) succeeded again "
                    f"(request {r.final.request_id} via {r.final.node}; it first succeeded in "
                    f"request {self.presented_ok.get(used)}): {r.resp.describe(200)}")
                return
            if (r.resp.status, error) != (400, "invalid_grant"):
                g.state = "replay_unknown"
                self._end_session(g)
                return self._failure("replay", r, f"unexpected answer {r.resp.describe(300)}")
            g.state = "replayed"
            self._end_session(g)
            with self._lock:
                self.replays["refused"] += 1
        finally:
            self._release(g)

    def _op_new_grant(self) -> None:
        """Authorize (the user's consent to the scope first) and code exchange; a failed
        exchange is never retried with the same code (that would be a code replay): the whole
        flow starts again, at most three times."""
        g = self._take(self._live("first_party"))
        if g is None:
            return
        try:
            self.new_grant(g)
        finally:
            with self._lock:
                self.ops["new_grant"] += 1
            self._release(g)

    def new_grant(self, g: Grant) -> Grant | None:
        """A third-party grant in the session of `g` (a login grant the caller holds): consent
        to a scope, authorize, code exchange. A doubtful exchange is never retried with the same
        code (that would be a code replay): the flow starts again, at most three times."""
        scope = self._choice(self.app.scopes)
        r = self.send("consent", f"consent:{g.user.id}", "POST", "/auth/consent",
                      json_body={"client_id": self.app.client_id, "scopes": [scope]},
                      bearer=g.access_token, count=False)
        if r.resp is None or r.resp.status != 200:
            self._failure("new_grant", r, "consent before the code flow failed")
            return None
        with self._lock:
            self.acks.append(Ack("consent", g.user.id, None, r.final.request_id,
                                 client_id=self.app.client_id, scope=scope, at=r.final.t1))
        for _ in range(3):
            verifier, challenge = pkce_pair()
            params = {"response_type": "code", "client_id": self.app.client_id,
                      "redirect_uri": self.app.redirect_uris[0], "scope": scope,
                      "state": secrets.token_urlsafe(6), "code_challenge": challenge,
                      "code_challenge_method": "S256"}
            r = self.send("new_grant", f"consent:{g.user.id}", "GET",
                          "/auth/authorize?" + urllib.parse.urlencode(params),
                          bearer=g.access_token, count=False)
            if r.resp is None:
                continue
            location = r.resp.header("location") or ""
            query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
            if r.resp.status not in (302, 303) or "code" not in query:
                self._failure("new_grant", r, f"authorize gave no code: {r.resp.describe(300)}")
                if query.get("error") == "consent_required":
                    self._violation(f"authorize for user {g.user.id} scope {scope} answered "
                                    f"consent_required (request {r.final.request_id} via "
                                    f"{r.final.node}) after the consent was acknowledged")
                return None
            form = {"grant_type": "authorization_code", "code": query["code"],
                    "redirect_uri": self.app.redirect_uris[0], "code_verifier": verifier}
            r = self.send("new_grant", g.key, "POST", "/auth/token", form=form,
                          basic=(self.app.client_id, self.app.secret), count=False,
                          retry_doubtful=False)
            if r.resp is None:
                continue
            if r.resp.status != 200 or not isinstance(r.resp.json, dict):
                self._failure("new_grant", r, f"code exchange: {r.resp.describe(300)}")
                return None
            j = r.resp.json
            rid = r.final.request_id
            grant = Grant("third_party", g.user, g.session_id, j["refresh_token"],
                          j["access_token"], [j["refresh_token"]])
            with self._lock:
                jti = self._note_tokens(j["refresh_token"], j["access_token"], rid)
                self.acks.append(Ack("exchange", g.user.id, g.session_id, rid, jti=jti,
                                     client_id=self.app.client_id, at=r.final.t1))
                self.grants.append(grant)
            return grant
        self._failure("new_grant", r, "no code exchange answered within three flows")
        return None

    # -- artifacts ---------------------------------------------------------------------------

    def dump(self, path: str) -> None:
        """Every attempt and grant as JSON lines, for the post-mortem of a failed run."""
        with self._lock:
            attempts = list(self.attempts)
            grants = list(self.grants)
        with open(path, "w") as f:
            for a in attempts:
                f.write(json.dumps({"attempt": dataclasses.asdict(a)}) + "\n")
            for g in grants:
                f.write(json.dumps({"grant": {
                    "kind": g.kind, "user": g.user.id, "session_id": g.session_id,
                    "state": g.state, "tokens": len(g.history),
                    "history_prefixes": [t[:8] for t in g.history],
                    "doubtful": [a.request_id for a in g.doubtful],
                    "lost_evidence": g.lost_evidence}}) + "\n")

    # -- figures -----------------------------------------------------------------------------

    def total_ops(self) -> int:
        with self._lock:
            return sum(self.ops.values())

    def error_rate(self) -> float:
        total = self.total_ops()
        return len(self.failures) / total if total else 0.0


def _attempt(host: str, port: int, method: str, path: str, body: bytes | None,
             headers: dict[str, str]) -> tuple[Response | None, str, str]:
    """One HTTP exchange on a fresh connection: (response, outcome, error text)."""
    conn = http.client.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT_S)
    try:
        try:
            conn.connect()
        except OSError as exc:
            return None, REFUSED, f"connect: {type(exc).__name__}: {exc}"
        try:
            conn.request(method, path, body=body, headers=headers)
            raw = conn.getresponse()
            data = raw.read()
        except (OSError, http.client.HTTPException) as exc:
            return None, NO_ANSWER, f"{type(exc).__name__}: {exc}"
        resp = to_response(raw, data)
        parsed = resp.json
        if raw.status == 503:
            desc = parsed.get("error_description", "") if isinstance(parsed, dict) else ""
            return resp, UNAVAILABLE, str(desc)
        return resp, OK, ""
    finally:
        conn.close()
