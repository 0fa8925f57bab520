"""The measurements of bench/cluster.sh (which starts the three nodes): routed vs local latency,
revocation propagation lag, failover after kill -9. Standard library and wrk only.
    python3 bench/cluster_bench.py WORKDIR A_HOST:PORT B_HOST:PORT C_HOST:PORT SECONDS C_PID"""

import base64
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time

from benchlib import Client, owner_of, poll

work, nodes, secs, c_pid = sys.argv[1], sys.argv[2:5], sys.argv[5], int(sys.argv[6])
names = ["a", "b", "c"]
admin = os.environ["CREDO_ADMIN_TOKEN"]


api = [Client(n) for n in nodes]
bearer_admin = {"Authorization": f"Bearer {admin}"}


def members(i):
    st, body = api[i].call("GET", "/admin/cluster", headers=bearer_admin)
    return sorted(m["node"] for m in body["members"]) if st == 200 else []


poll(lambda: all(members(i) == names for i in range(3)), 30, "the cluster to converge")


def live(i, kind):
    st, body = api[i].call("GET", "/admin/actors", headers=bearer_admin)
    return next(s["live"] for s in body["supervisors"] if s["kind"] == kind)


def owner(key):
    """Index of the node owning `key` (rendezvous hashing over a, b, c, as credod computes it)."""
    return names.index(owner_of(names, key))


# -- users and their sessions --------------------------------------------------------------------
users = []
for n in range(30):
    email = f"bench-{secrets.token_hex(6)}@example.com"
    st, u = api[0].call("POST", "/users", {"email": email, "password": "correct horse battery"})
    assert st == 201, (st, u)
    st, t = api[0].call("POST", "/auth/login", {"email": email, "password": "correct horse battery"})
    assert st == 200, (st, t)
    users.append({"id": u["id"], "access": t["access_token"], "refresh": t["refresh_token"],
                  "sid": t["session_id"]})
local = next(u for u in users if owner(u["id"]) == 0)
remote = next(u for u in users if owner(u["id"]) == 1)
# Check the hashing above against the node: a's consent entities grow only for its own users.
before = live(0, "consent")
api[0].call("GET", "/auth/consent", headers={"Authorization": f"Bearer {remote['access']}"})
assert live(0, "consent") == before, "the owner computed here differs from the node's"
api[0].call("GET", "/auth/consent", headers={"Authorization": f"Bearer {local['access']}"})
assert live(0, "consent") == before + 1, "the owner computed here differs from the node's"


def wrk(token, conns):
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{secs}s", "--latency", "-H",
                          f"Authorization: Bearer {token}", f"http://{nodes[0]}/auth/consent"],
                         capture_output=True, text=True, check=True).stdout
    p = {k: v for k, v in re.findall(r"^\s+(50|90|99)%\s+(\S+)", out, re.M)}
    rps = re.search(r"Requests/sec:\s+(\S+)", out).group(1)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return p, rps, non2xx.group(1) if non2xx else "0"


print("== 1. GET /auth/consent sent to node a: entity on a (local) vs on b (routed)")
for conns in (1, 16):
    for what, u in (("local ", local), ("routed", remote)):
        p, rps, bad = wrk(u["access"], conns)
        print(f"   -c{conns:<2} {what}: p50 {p['50']}, p90 {p['90']}, p99 {p['99']}, "
              f"{rps} req/s, non-2xx {bad}")

# -- revocation lag ------------------------------------------------------------------------------
print("== 2. revocation on a, seen inactive on b and c")
st, cl = api[0].call("POST", "/admin/clients", {
    "client_id": f"bench-rs-{secrets.token_hex(4)}", "client_secret": "bench-secret-123456-0123456789abcdef",
    "scopes": ["internal"], "grant_types": ["client_credentials"]}, headers=bearer_admin)
assert st == 201, (st, cl)
basic = {"Authorization": "Basic " + base64.b64encode(
    f"{cl['client_id']}:bench-secret-123456-0123456789abcdef".encode()).decode()}
lags = {1: [], 2: []}
u = users[-1]
for n in range(100):
    st, t = api[0].call("POST", "/auth/token", form={
        "grant_type": "refresh_token", "refresh_token": u["refresh"], "client_id": "credo"})
    assert st == 200, (st, t)
    u["refresh"] = t["refresh_token"]
    for i in (1, 2):  # warm the verified-token caches: the revocation must beat them
        api[i].call("POST", "/auth/introspect", form={"token": t["access_token"]}, headers=basic)
    st, _ = api[0].call("POST", "/auth/revoke", form={"token": t["access_token"], "client_id": "credo"})
    assert st == 200
    revoked_at = time.monotonic()
    for i in (1, 2):
        while True:
            st, r = api[i].call("POST", "/auth/introspect", form={"token": t["access_token"]},
                                headers=basic)
            if st == 200 and r["active"] is False:
                lags[i].append((time.monotonic() - revoked_at) * 1000)
                break
            if time.monotonic() - revoked_at > 5:
                raise SystemExit("a revoked token stayed active for 5 s")
for i in (1, 2):
    v = sorted(lags[i])
    print(f"   node {names[i]}: p50 {statistics.median(v):.2f} ms, p99 {v[int(len(v) * 0.99) - 1]:.2f} ms, "
          f"max {v[-1]:.2f} ms (100 revocations; each includes one HTTP round trip)")

# -- failover ------------------------------------------------------------------------------------
print("== 3. kill -9 of node c while sessions it owns are refreshed through node a")
on_c = [u for u in users[:-1] if owner(u["sid"]) == 2][:8]
print(f"   {len(on_c)} sessions owned by c")
killed_at = None
first_ok = {}
stop = threading.Event()


def hammer(u):
    cl = Client(nodes[0])
    while not stop.is_set():
        st, t = cl.call("POST", "/auth/token", form={
            "grant_type": "refresh_token", "refresh_token": u["refresh"], "client_id": "credo"})
        if st == 200:
            u["refresh"] = t["refresh_token"]
            if killed_at is not None and u["sid"] not in first_ok:
                first_ok[u["sid"]] = (time.monotonic() - killed_at) * 1000
        else:
            u["last_error"] = (st, t)
            if st != 503:
                print(f"   unexpected answer {st} {t}")
                return


threads = [threading.Thread(target=hammer, args=(u,), daemon=True) for u in on_c]
for t in threads:
    t.start()
time.sleep(1)
os.kill(c_pid, signal.SIGKILL)
killed_at = time.monotonic()
try:
    poll(lambda: len(first_ok) == len(on_c), 10, "every session of c to be served again")
finally:
    stop.set()
    for u in on_c:
        if u["sid"] not in first_ok:
            print(f"   session {u['sid']} (now owned by {names[owner(u['sid'])] if False else '?'}) "
                  f"last error {u.get('last_error')}")
stop.set()
for t in threads:
    t.join()
v = sorted(first_ok.values())
print(f"   first success after the kill: median {statistics.median(v):.1f} ms, max {v[-1]:.1f} ms")
poll(lambda: members(0) == ["a", "b"], 10, "a to drop c")
