"""The measurements of bench/rate_limits.sh (which starts and stops the nodes). Standard library
and wrk only.
    rate_limits_bench.py compare WORK TOPOLOGY SECS CONNS ROUNDS OFF_NODES OFF_CPU ON_NODES ON_CPU
        TOPOLOGY single|cluster; *_NODES host:port[,host:port...]: the nodes started with
        --rate-limit all=off and all=1000000000/1m (the load goes to the first of each);
        *_CPU name=pid[+pid...][,name=...]: process trees whose CPU is reported.
        Sets up a confidential client, a user and its access token on each, then runs wrk
        against POST /auth/introspect and POST /auth/token (client_credentials), ROUNDS runs per
        setting in the order off, on, on, off, ...; one JSON line per run to WORK/results.jsonl.
    rate_limits_bench.py memory WORK NODE PID COUNT CONNS
        COUNT logins, each from its own X-Forwarded-For address (one bucket each); RSS and the
        live rate-limit entities before and after, into WORK/memory.json.
    rate_limits_bench.py summary WORK"""

import base64
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time

from benchlib import Client, owner_of, poll

ADMIN = os.environ.get("CREDO_ADMIN_TOKEN", "")
CLIENT_ID = "bench"  # its buckets: introspect.client:bench on c, token.client:bench on b
CLIENT_SECRET = "bench-secret-0123456789-abcdefghij"
EMAIL, PASSWORD = "bench-rl@example.com", "bench-password"
NAMES = ["a", "b", "c"]  # node ids bench/rate_limits.sh gives the cluster
HZ = os.sysconf("SC_CLK_TCK")


def metrics(node):
    """The samples of GET /metrics as {"name{labels}": value}."""
    st, text = Client(node).call("GET", "/metrics", raw=True)
    assert st == 200, st
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


OWNER_CALLS = "credo_rate_limit_owner_calls_total"
LIVE_BUCKETS = 'credo_actor_live{kind="rate_limit"}'

# -- key ownership (cluster/ownership.cpp: rendezvous hashing over the node names) ---------------
def owner(key):
    return owner_of(NAMES, key)


# The buckets of each endpoint's checks under --rate-limit all=1000000000/1m (bench/rate_limits.sh),
# keyed "RULE@CAPACITY/PERIOD_MS:SUBJECT" as http/rate_limits.cpp names them.
ON_RULE = "@1000000000/60000"
ENDPOINT_KEYS = {
    "introspect": [f"introspect.client{ON_RULE}:{CLIENT_ID}", f"introspect.global{ON_RULE}"],
    "token": [f"token.ip{ON_RULE}:127.0.0.1", f"token.client{ON_RULE}:{CLIENT_ID}",
              f"token.global{ON_RULE}"],
}

# -- CPU accounting ------------------------------------------------------------------------------


def machine_busy():
    """Busy, stolen (by the hypervisor's other guests) and total jiffies of the machine."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v[:7]) - idle, v[7], sum(v[:8])


def proc_table():
    """{pid: (ppid, cpu jiffies incl. reaped children)} for every process."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        f = s[s.rindex(")") + 2:].split()
        out[int(d)] = (int(f[1]), sum(int(x) for x in f[11:15]))
    return out


def group_cpu(groups):
    """Jiffies per group: each root pid and its descendants."""
    table = proc_table()
    children = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out = {}
    for name, roots in groups.items():
        seen, stack = set(), list(roots)
        while stack:
            p = stack.pop()
            if p in seen or p not in table:
                continue
            seen.add(p)
            stack.extend(children.get(p, []))
        out[name] = sum(table[p][1] for p in seen)
    return out


def parse_groups(text):
    groups = {}
    for part in filter(None, text.split(",")):
        name, pids = part.split("=")
        groups[name] = [int(p) for p in pids.split("+") if p]
    return groups


# -- wrk -----------------------------------------------------------------------------------------


def to_ms(v):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", v)
    n, unit = float(m.group(1)), m.group(2)
    return n * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]


def wrk(url, script, secs, conns):
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{secs}s", "--latency", "-s", script, url],
                         capture_output=True, text=True, check=True).stdout
    p = {k: to_ms(v) for k, v in re.findall(r"^\s+(50|90|99)%\s+(\S+)", out, re.M)}
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+(\S+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "requests": reqs, "p50_ms": p["50"], "p90_ms": p["90"], "p99_ms": p["99"],
            "non2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": errors.group(1) if errors else ""}


def lua(path, body, basic):
    with open(path, "w") as f:
        f.write(f'wrk.method = "POST"\nwrk.body = "{body}"\n'
                'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
                f'wrk.headers["Authorization"] = "Basic {basic}"\n')


def setup(node):
    """The client, the user (both may exist from an earlier round: shared stores) and a token."""
    api = Client(node)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    st, body = api.call("POST", "/admin/clients", {
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "scopes": ["read"],
        "grant_types": ["client_credentials"]}, headers=admin)
    assert st in (201, 409), (st, body)
    st, body = api.call("POST", "/users", {"email": EMAIL, "password": PASSWORD})
    assert st in (201, 409), (st, body)
    st, t = api.call("POST", "/auth/login", {"email": EMAIL, "password": PASSWORD})
    assert st == 200, (st, t)
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    return t["access_token"], basic


def converged(nodes):
    for n in nodes:
        try:
            st, body = Client(n).call("GET", "/admin/cluster", headers={"Authorization": f"Bearer {ADMIN}"})
        except OSError:
            return False
        if st != 200 or sorted(m["node"] for m in body["members"]) != NAMES:
            return False
    return True


def measure(work, topology, limits, rnd, ep, secs, conns, nodes, groups):
    """One wrk run (after a 1 s warm-up) against the first of `nodes`; appends its record."""
    path = {"introspect": "/auth/introspect", "token": "/auth/token"}[ep]
    script = f"{work}/{limits}-{ep}.lua"
    live0 = [metrics(n).get(LIVE_BUCKETS, 0) for n in nodes]
    warm = wrk(f"http://{nodes[0]}{path}", script, 1, conns)  # caches, leases, links, workers
    assert warm["non2xx"] == 0 and warm["requests"] > 0, warm
    new_buckets = [metrics(n).get(LIVE_BUCKETS, 0) - b for n, b in zip(nodes, live0)]
    before = [metrics(n) for n in nodes]
    busy0, steal0, total0 = machine_busy()
    cpu0 = group_cpu(groups)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = wrk(f"http://{nodes[0]}{path}", script, secs, conns)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu1 = group_cpu(groups)
    busy1, steal1, total1 = machine_busy()
    after = [metrics(n) for n in nodes]
    wall = (total1 - total0) / HZ / os.cpu_count()  # seconds, from the same clock
    cpu = {k: (cpu1[k] - cpu0[k]) / HZ / wall for k in groups}  # cores used on average
    cpu["wrk"] = (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) / wall
    machine = (busy1 - busy0) / HZ / wall
    cpu["other"] = max(0.0, machine - sum(cpu.values()))
    steal = (steal1 - steal0) / HZ / wall
    r.update(topology=topology, limits=limits, round=rnd, endpoint=ep, conns=conns,
             owner_calls=[a.get(OWNER_CALLS, 0) - b.get(OWNER_CALLS, 0) for a, b in zip(after, before)],
             live_buckets=[a.get(LIVE_BUCKETS, 0) for a in after],
             cpu_cores={k: round(v, 2) for k, v in cpu.items()}, machine_cores=round(machine, 2),
             steal_cores=round(steal, 2),
             credod_us_per_request=sum(v for k, v in cpu.items() if k.startswith("credod"))
             * wall / max(r["requests"], 1) * 1e6)
    calls = r["owner_calls"][0]
    print(f"   {ep:10} limits {limits:3} {r['rps']:>8,.0f} req/s  p50 {r['p50_ms']:.2f} ms  "
          f"p99 {r['p99_ms']:5.2f} ms  non-2xx {r['non2xx']}  owner calls {calls:,.0f} "
          f"({calls / max(r['requests'], 1) * 100:.2f} %)"
          f"  credod {r['credod_us_per_request']:5.1f} us CPU/request  cores: "
          f"{' '.join(f'{k} {v:.2f}' for k, v in r['cpu_cores'].items())} steal {steal:.2f}", flush=True)
    if r["socket_errors"]:
        print(f"      socket errors: {r['socket_errors']}")
    if limits == "on" and rnd == 1:  # the first run created the buckets: where hashing says?
        expect = [sum(1 for k in ENDPOINT_KEYS[ep] if owner(k) == NAMES[i]) for i in range(len(nodes))]
        if len(nodes) == 1:
            expect = [len(ENDPOINT_KEYS[ep])]
        ok = new_buckets == expect
        if len(nodes) > 1:
            print(f"      bucket owners: {', '.join(f'{k} -> {owner(k)}' for k in ENDPOINT_KEYS[ep])}"
                  f" ({'as created' if ok else f'NOT as created: new buckets a/b/c {new_buckets}'})")
        elif not ok:
            print(f"      expected {expect} new buckets, saw {new_buckets}")
    with open(f"{work}/results.jsonl", "a") as f:
        f.write(json.dumps(r) + "\n")


def cmd_compare(work, topology, secs, conns, rounds, off_nodes, off_groups, on_nodes, on_groups):
    """Both settings run side by side (the idle one costs next to nothing); per endpoint, runs
    alternate off, on, on, off, off, on, ... so that the paired runs are adjacent in time."""
    setting = {"off": (off_nodes.split(","), parse_groups(off_groups)),
               "on": (on_nodes.split(","), parse_groups(on_groups))}
    for limits, (nodes, _) in setting.items():
        if topology == "cluster":
            poll(lambda: converged(nodes), 30, "the cluster to converge")
        access, basic = setup(nodes[0])
        lua(f"{work}/{limits}-introspect.lua", f"token={access}", basic)
        lua(f"{work}/{limits}-token.lua", "grant_type=client_credentials&scope=read", basic)
    for ep in ("introspect", "token"):
        for rnd in range(1, rounds + 1):
            for limits in (("off", "on") if rnd % 2 else ("on", "off")):
                nodes, groups = setting[limits]
                measure(work, topology, limits, rnd, ep, secs, conns, nodes, groups)


# -- memory per bucket ---------------------------------------------------------------------------

XFF_LUA = """
-- One X-Forwarded-For address per request (10.0.0.0/8 from 10.0.0.1 up), COUNT in all. At the
-- COUNT-th response it writes MARKER and stops (wrk's main thread then waits for SIGINT).
-- Addresses of requests sent beyond COUNT (in flight at the stop) wrap.
local count, marker = %d, "%s"
local sent, done = 0, 0
request = function()
  local i = sent %% count + 1
  sent = sent + 1
  local ip = string.format("10.%%d.%%d.%%d", math.floor(i / 65536) %% 256, math.floor(i / 256) %% 256, i %% 256)
  return wrk.format("POST", "/auth/login", {["X-Forwarded-For"] = ip, ["Content-Type"] = "application/json"}, "")
end
response = function(status, headers, body)
  done = done + 1
  if done == count then
    local f = io.open(marker, "w")
    f:write("done")
    f:close()
    wrk.thread:stop()
  end
end
"""


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def cmd_memory(work, node, pid, count, conns):
    pid, count = int(pid), int(count)
    script, marker = f"{work}/xff.lua", f"{work}/xff.done"
    with open(script, "w") as f:
        f.write(XFF_LUA % (count, marker))
    api = Client(node)
    # Warm-up, 1000 buckets of their own (198.18.0.0/15): allocator arenas, the front actors,
    # the registry's tables past their first growth steps.
    for i in range(1000):
        st, _ = api.call("POST", "/auth/login", body=None, headers={
            "X-Forwarded-For": f"198.18.{i // 256}.{i % 256}", "Content-Type": "application/json"})
        assert st == 400, st
    time.sleep(0.5)
    m0 = metrics(node)
    rss0 = rss_kib(pid)
    t0 = time.monotonic()
    proc = subprocess.Popen(["wrk", "-t1", f"-c{conns}", "-d600s", "-s", script, f"http://{node}/"],
                            stdout=subprocess.PIPE, text=True)
    try:
        poll(lambda: os.path.exists(marker) or proc.poll() is not None, 600, "the logins")
        elapsed = time.monotonic() - t0
        proc.send_signal(signal.SIGINT)  # wrk prints its summary
        out = proc.communicate(timeout=30)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    time.sleep(1)  # let the last flushes (written behind) and replies settle
    m1 = metrics(node)
    rss1 = rss_kib(pid)
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    live = m1.get(LIVE_BUCKETS, 0) - m0.get(LIVE_BUCKETS, 0)
    denied = sum(v - m0.get(k, 0) for k, v in m1.items() if k.startswith("credo_rate_limit_denials_total"))
    res = {"count": count, "requests": reqs, "seconds": round(elapsed, 1),
           "non2xx": int(bad.group(1)) if bad else 0, "denied": denied,
           "owner_calls": m1.get(OWNER_CALLS, 0) - m0.get(OWNER_CALLS, 0),
           "live_before": m0.get(LIVE_BUCKETS, 0), "live_after": m1.get(LIVE_BUCKETS, 0),
           "rss_before_kib": rss0, "rss_after_kib": rss1}
    res["bytes_per_bucket"] = (rss1 - rss0) * 1024 / live if live > 0 else None
    res["buckets_per_gb"] = 1e9 / res["bytes_per_bucket"] if res["bytes_per_bucket"] else None
    with open(f"{work}/memory.json", "w") as f:
        json.dump(res, f)
    print(f"   {reqs:,} logins in {elapsed:.1f} s ({reqs / elapsed:,.0f}/s; all answered "
          f"{'400' if res['non2xx'] == reqs else 'NOT all 400'}), denied {denied:.0f}, owner calls "
          f"{res['owner_calls']:,.0f}")
    print(f"   live rate_limit entities {res['live_before']:.0f} -> {res['live_after']:.0f}; "
          f"RSS {rss0 / 1024:.1f} -> {rss1 / 1024:.1f} MiB")
    if res["bytes_per_bucket"]:
        print(f"   {res['bytes_per_bucket']:,.0f} bytes per bucket, {res['buckets_per_gb']:,.0f} "
              f"buckets per GB (10^9 bytes)")


# -- summary -------------------------------------------------------------------------------------


def cmd_summary(work):
    path = f"{work}/results.jsonl"
    rows = [json.loads(line) for line in open(path)] if os.path.exists(path) else []
    print("== summary")
    if rows:
        print("   means over the runs; cost = 1 - on/off (req/s); CPU = credod CPU per request (all"
              " nodes);\n   steal = most CPU the hypervisor took from this machine in any of the runs"
              " (cores; above ~0.1 the figures are suspect)")
        print(f"   {'':19} {'off req/s':>9} {'on req/s':>9} {'cost':>6}  {'p50 off':>7} {'p50 on':>7}"
              f"  {'CPU off':>7} {'CPU on':>7}  {'owner calls':>11}  steal  cost per pair of runs")
    for topo in ("single", "cluster"):
        for ep in ("introspect", "token"):
            sel = [r for r in rows if r["topology"] == topo and r["endpoint"] == ep]
            off = [r for r in sel if r["limits"] == "off"]
            on = [r for r in sel if r["limits"] == "on"]
            if not off or not on:
                continue
            mean = lambda rs, k: sum(r[k] for r in rs) / len(rs)
            cost = (1 - mean(on, "rps") / mean(off, "rps")) * 100
            calls = sum(r["owner_calls"][0] for r in on) / sum(r["requests"] for r in on)
            steal = max(r["steal_cores"] for r in sel)
            pairs = [1 - a["rps"] / b["rps"] for a in on for b in off if a["round"] == b["round"]]
            runs = " ".join(f"{p * 100:.0f}%" for p in pairs)
            print(f"   {(topo + ' ' + ep):19} {mean(off, 'rps'):>9,.0f} {mean(on, 'rps'):>9,.0f} "
                  f"{cost:>5.1f}%  {mean(off, 'p50_ms'):>5.2f}ms {mean(on, 'p50_ms'):>5.2f}ms"
                  f"  {mean(off, 'credod_us_per_request'):>5.1f}us {mean(on, 'credod_us_per_request'):>5.1f}us"
                  f"  {calls * 100:>10.2f}%  {steal:.2f}   {runs}")
    if os.path.exists(f"{work}/memory.json"):
        m = json.load(open(f"{work}/memory.json"))
        if m["bytes_per_bucket"]:
            print(f"   buckets: {m['bytes_per_bucket']:,.0f} bytes each, {m['buckets_per_gb']:,.0f} per GB "
                  f"({m['live_after'] - m['live_before']:,.0f} live, RSS +"
                  f"{(m['rss_after_kib'] - m['rss_before_kib']) / 1024:.1f} MiB)")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"compare": lambda: cmd_compare(args[0], args[1], int(args[2]), int(args[3]), int(args[4]),
                                    *args[5:9]),
     "memory": lambda: cmd_memory(*args),
     "summary": lambda: cmd_summary(*args)}[cmd]()
