#!/usr/bin/env bash
# Load benchmarks of one credod on the durable backends (PostgreSQL 15, Redis, the Kafka mock
# cluster; throwaway instances from scripts/services.sh), wrk -t1 on loopback:
#   1. refresh-token rotations with Redis sessions (each connection follows refresh chains)
#   2. logins with PostgreSQL users (Argon2-bound), beside the machine's Argon2id limit
#   3. audit outbox publish latency: Kafka message timestamp - occurred_at, per event
#   4. outbox backlog drain rate after a Kafka outage
# Before each measurement it waits (at most 30 min) until no compiler, linker or ctest runs, and
# prints a one-second idle check; after each it prints the CPU each process group used.
#   bash bench/durable.sh [SECONDS]      default 10 s per wrk run
# Environment: DURABLE_BACKLOG (events to pile up in step 4, default 20000), DURABLE_LAT_RATE
# and DURABLE_LAT_EVENTS (step 3: grants per second and in all, default 250 and 3000),
# DURABLE_PERF=1 (perf record credod during step 1; report left in DURABLE_OUT),
# DURABLE_OUT (directory to keep wrk outputs and raw data in; default: deleted at exit),
# DURABLE_NO_WAIT=1 (do not wait for compilers: a smoke test of the script, not a measurement).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
backlog_goal="${DURABLE_BACKLOG:-20000}"
lat_rate="${DURABLE_LAT_RATE:-250}"
lat_events="${DURABLE_LAT_EVENTS:-3000}"

cmake --preset release >/dev/null
cmake --build --preset release --target credod kafka_mock_broker micro_bench

work="$(mktemp -d)"
svc="$(mktemp -d)"  # its own directory: services.sh makes it world-readable for postgres
credod_pid=""
kafka_pid=""
cleanup() {
  set +e
  [[ -n "$kafka_pid" ]] && kill -USR2 "$kafka_pid" 2>/dev/null  # never leave it down
  if [[ -n "$credod_pid" ]]; then
    kill "$credod_pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$credod_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$credod_pid" 2>/dev/null
    wait "$credod_pid" 2>/dev/null
  fi
  bash scripts/services.sh stop "$svc"
  if [[ -n "${DURABLE_OUT:-}" ]]; then mkdir -p "$DURABLE_OUT" && cp -r "$work"/. "$DURABLE_OUT"/; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits until no compiler, linker or test run is going (bounded: 30 min), then reports what
# else used the CPU during one second.
busy() { pgrep -x cc1plus || pgrep -x ctest || pgrep -x ld; }
quiet_machine() {
  local i
  [[ "${DURABLE_NO_WAIT:-}" == 1 ]] && return 0  # smoke test: figures not meant to be kept
  for i in $(seq 360); do
    busy >/dev/null || break
    [[ $i == 1 ]] && echo "   (waiting for $(busy | xargs -r ps -o comm= -p | sort -u | tr '\n' ' ')to finish)"
    sleep 5
  done
  busy >/dev/null && echo "   WARNING: a compiler or test run is still going after 30 min"
  cpu_mark
  sleep 1
  cpu_delta | sed 's/CPU (cores/idle check: CPU (cores/'
}

# CPU seconds per process group (credod, postgres, redis-server, wrk, kafka_mock_broker, other)
# and the machine's total busy seconds, from /proc; `cpu_delta NAME` prints the use since `cpu_mark`.
cpu_snapshot() {
  python3 - <<'PY'
import os
tick = os.sysconf("SC_CLK_TCK")
groups = {}
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        continue
    comm = s[s.index("(") + 1:s.rindex(")")]
    fields = s[s.rindex(")") + 2:].split()
    t = (int(fields[11]) + int(fields[12])) / tick
    g = comm if comm in ("credod", "postgres", "redis-server", "wrk", "kafka_mock_brok") else "other"
    groups[g] = groups.get(g, 0) + t
with open("/proc/stat") as f:
    v = [int(x) for x in f.readline().split()[1:]]
groups["_busy"] = (sum(v) - v[3] - v[4]) / tick
for k, t in groups.items():
    print(k, t)
PY
}
cpu_mark() { cpu_snapshot > "$work/cpu.before"; date +%s.%N > "$work/cpu.t0"; }
cpu_delta() {
  cpu_snapshot > "$work/cpu.after"
  python3 - "$work/cpu.before" "$work/cpu.after" "$(cat "$work/cpu.t0")" <<'PY'
import sys, time
def load(p):
    return {k: float(v) for k, v in (l.split() for l in open(p))}
a, b, wall = load(sys.argv[1]), load(sys.argv[2]), time.time() - float(sys.argv[3])
parts = []
for k in ("credod", "postgres", "redis-server", "wrk", "kafka_mock_brok", "other"):
    d = b.get(k, 0) - a.get(k, 0)
    if d > 0.05 * wall:
        parts.append(f"{k} {d / wall:.2f}")
print(f"   CPU (cores, over {wall:.1f} s): " + ", ".join(parts) +
      f"; machine busy {(b['_busy'] - a['_busy']) / wall:.2f} of 2")
PY
}

wrk_summary() {  # name, wrk output file
  local rps p50 p99 non2xx errs
  rps="$(awk '/Requests\/sec/ {print $2}' "$2")"
  p50="$(awk '$1=="50%" {print $2}' "$2")"
  p99="$(awk '$1=="99%" {print $2}' "$2")"
  non2xx="$(awk '/Non-2xx/ {print $4}' "$2")"
  errs="$(awk '/Socket errors/ {print $0}' "$2")"
  printf '%-30s %10s req/s   p50 %8s   p99 %8s   non-2xx %s %s\n' "$1" "$rps" "$p50" "$p99" \
    "${non2xx:-0}" "$errs"
}

outbox_pending() {
  psql "$CREDO_TEST_DATABASE_URL" -qAt -c 'SELECT count(*) FROM audit_outbox WHERE published_at IS NULL'
}
# Waits (at most $1 seconds) until the outbox is empty.
await_outbox_empty() {
  local n
  for _ in $(seq $(( $1 * 10 ))); do
    n="$(outbox_pending)"
    [[ "$n" == 0 ]] && return 0
    sleep 0.1
  done
  echo "   WARNING: outbox still holds $n rows after $1 s"
  return 1
}

# -- backends and credod
bash scripts/services.sh start "$svc"
# shellcheck disable=SC1091
source "$svc/env"
kafka_pid="$CREDO_TEST_KAFKA_PID"
port="$(free_port)"
url="http://127.0.0.1:$port"
token="bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
kek="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
DATABASE_URL="$CREDO_TEST_DATABASE_URL" REDIS_URL="$CREDO_TEST_REDIS_URL" \
  KAFKA_BROKERS="$CREDO_TEST_KAFKA_BROKERS" CREDO_KEY_ENCRYPTION_KEY="$kek" \
  CREDO_ADMIN_TOKEN="$token" build/release/app/credod --http "127.0.0.1:$port" \
  > "$work/credod.log" 2>&1 &
credod_pid=$!
ready=""
for _ in $(seq 600); do  # at most ~60 s (migrations, key generation)
  if [[ "$(curl -s -o /dev/null -w '%{http_code}' "$url/health/ready")" == 200 ]]; then ready=1; break; fi
  kill -0 "$credod_pid" 2>/dev/null || break
  sleep 0.1
done
[[ -n "$ready" ]] || { echo "credod not ready:"; curl -s "$url/health/ready"; cat "$work/credod.log"; exit 1; }
echo "credod $url ($(grep -o '"stores":"[^"]*"' "$work/credod.log" | head -1))"

admin() { curl -sf -X POST "$url$1" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d "$2" >/dev/null; }
admin /admin/clients '{"client_id":"bench","client_secret":"bench-secret-0123456789-abcdefghij","scopes":["read"],"grant_types":["client_credentials"]}'
admin /admin/clients '{"client_id":"benchlat","client_secret":"bench-secret-0123456789-abcdefghij","scopes":["read"],"grant_types":["client_credentials"]}'
curl -sf -X POST "$url/users" -H 'Content-Type: application/json' \
  -d '{"email":"bench@example.com","password":"bench-password"}' >/dev/null
basic="$(printf 'bench:bench-secret-0123456789-abcdefghij' | base64 -w0)"
basic_lat="$(printf 'benchlat:bench-secret-0123456789-abcdefghij' | base64 -w0)"

# Logins keep the refresh token of every session they open (the chains of step 1).
cat > "$work/login.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"email":"bench@example.com","password":"bench-password"}'
wrk.headers["Content-Type"] = "application/json"
local out = io.open("$work/refresh_tokens", "a")
response = function(status, headers, body)
  local t = body:match('"refresh_token"%s*:%s*"([^"]+)"')
  if status == 200 and t then out:write(t, "\n"); out:flush() end
end
LUA
# A queue of refresh tokens: request() takes the oldest, response() appends its successor, so
# every chain is followed one rotation at a time (no token is presented twice).
cat > "$work/refresh.lua" <<'LUA'
local queue, head, tail = {}, 1, 0
lost, starved = 0, 0
init = function(args)
  for line in io.lines(args[1]) do tail = tail + 1; queue[tail] = line end
end
local headers = {["Content-Type"] = "application/x-www-form-urlencoded"}
request = function()
  local t = "starved"
  if head <= tail then t = queue[head]; queue[head] = nil; head = head + 1
  else starved = starved + 1 end
  return wrk.format("POST", nil, headers,
    "grant_type=refresh_token&client_id=credo&refresh_token=" .. t)
end
response = function(status, headers, body)
  local t = body:match('"refresh_token"%s*:%s*"([^"]+)"')
  if status == 200 and t then tail = tail + 1; queue[tail] = t
  else lost = lost + 1; if lost <= 3 then io.stderr:write("refresh ", status, ": ", body, "\n") end end
end
local threads = {}
setup = function(thread) table.insert(threads, thread) end
done = function()
  for _, t in ipairs(threads) do
    io.write(string.format("chains lost: %d, requests without a token: %d\n",
                           t:get("lost"), t:get("starved")))
  end
end
LUA
cat > "$work/cc.lua" <<LUA
wrk.method = "POST"
wrk.body = "grant_type=client_credentials&scope=read"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $basic"
LUA

echo "== 2. logins, PostgreSQL users (wrk -t1 -c16, ${secs}s)"
quiet_machine
cpu_mark
wrk -t1 -c16 -d"${secs}s" --latency -s "$work/login.lua" "$url/auth/login" > "$work/login.txt"
cpu_delta
wrk_summary login_postgres "$work/login.txt"
quiet_machine
build/release/bench/micro_bench --benchmark_filter='argon2id_owasp/.*threads:2' \
  --benchmark_min_time=3 --benchmark_format=json 2>/dev/null > "$work/argon2.json"
python3 - "$work/argon2.json" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))["benchmarks"][0]
ms = b["real_time"] if b["time_unit"] == "ms" else b["real_time"] / 1e6
print(f"   Argon2id limit (micro_bench {b['name']}): {1000 / ms:.1f} hashes/s")
PY

# Top up to at least 256 chains (a short run may not have opened enough sessions).
for _ in $(seq 10); do
  [[ "$(wc -l < "$work/refresh_tokens")" -ge 256 ]] && break
  wrk -t1 -c16 -d3s -s "$work/login.lua" "$url/auth/login" > /dev/null
done
chains="$(wc -l < "$work/refresh_tokens")"
conns=$(( chains / 2 < 64 ? chains / 2 : 64 ))
await_outbox_empty 120 || true

echo "== 1. refresh rotations, Redis sessions (wrk -t1 -c$conns, $chains chains, ${secs}s)"
quiet_machine
cpu_mark
perf_pid=""
if [[ "${DURABLE_PERF:-}" == 1 ]] && command -v perf >/dev/null; then
  perf record -F 499 -g -p "$credod_pid" -o "$work/refresh.perf.data" -- sleep "$secs" \
    > /dev/null 2>&1 &
  perf_pid=$!
fi
wrk -t1 -c"$conns" -d"${secs}s" --latency -s "$work/refresh.lua" "$url/auth/token" \
  -- "$work/refresh_tokens" > "$work/refresh.txt" 2> "$work/refresh.err"
cpu_delta
[[ -n "$perf_pid" ]] && { wait "$perf_pid" || true; }
[[ -f "$work/refresh.perf.data" ]] && perf report -i "$work/refresh.perf.data" --no-children \
  --sort dso,symbol --stdio 2>/dev/null | grep -v '^#' | grep '%' | head -40 > "$work/refresh.perf.txt"
wrk_summary refresh_redis "$work/refresh.txt"
{ grep 'chains lost' "$work/refresh.txt" || true; } | sed 's/^/   /'
[[ -s "$work/refresh.err" ]] && sed 's/^/   /' "$work/refresh.err" | head -5
events="$(psql "$CREDO_TEST_DATABASE_URL" -qAt -c "SELECT count(*) FROM audit_events WHERE type LIKE 'token.refresh%'")"
echo "   refresh events written: $events"
t0="$(date +%s.%N)"
await_outbox_empty 300 && python3 -c "import time; print(f'   outbox empty {time.time() - $t0:.1f} s after the run')"

echo "== 3. outbox publish latency ($lat_events client_credentials grants at $lat_rate/s)"
quiet_machine
cpu_mark
python3 - "$url" "$basic_lat" "$lat_rate" "$lat_events" > "$work/lat_driver.txt" <<'PY'
import http.client, sys, threading, time, urllib.parse
url, basic, rate, n = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
host = urllib.parse.urlsplit(url)
samples, stop = [], threading.Event()
def sample_metrics():  # the publisher's own view, every 100 ms
    c = http.client.HTTPConnection(host.hostname, host.port, timeout=5)
    while not stop.is_set():
        c.request("GET", "/metrics")
        for line in c.getresponse().read().decode().splitlines():
            if line.startswith("credo_audit_outbox_publish_latency_seconds "):
                samples.append(round(float(line.split()[1]) * 1000))
        time.sleep(0.1)
threading.Thread(target=sample_metrics, daemon=True).start()
c = http.client.HTTPConnection(host.hostname, host.port, timeout=5)
hdr = {"Authorization": "Basic " + basic, "Content-Type": "application/x-www-form-urlencoded"}
codes, start = {}, time.monotonic()
for i in range(n):  # a steady rate: request i goes at start + i/rate
    delay = start + i / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    c.request("POST", "/auth/token", "grant_type=client_credentials&scope=read", hdr)
    r = c.getresponse(); r.read()
    codes[r.status] = codes.get(r.status, 0) + 1
took = time.monotonic() - start
time.sleep(0.5)
stop.set()
s = sorted(x for x in samples if x > 0)  # 0: no batch published yet
q = lambda p: s[min(len(s) - 1, int(p * len(s)))] if s else -1
print(f"   sent {n} in {took:.1f} s ({n / took:.0f}/s), statuses {codes}")
print(f"   /metrics credo_audit_outbox_publish_latency_seconds ({len(s)} samples, oldest event of a batch,"
      f" until marked published): p50 {q(0.5)} ms, p99 {q(0.99)} ms, max {s[-1] if s else -1} ms")
PY
cpu_delta
cat "$work/lat_driver.txt"
await_outbox_empty 60 || true
kcat -b "$CREDO_TEST_KAFKA_BROKERS" -C -t credo.audit.events -o beginning -e -q -f '%T %s\n' \
  > "$work/topic.txt"
python3 - "$work/topic.txt" <<'PY'
import datetime, json, sys
lat, total = [], 0
for line in open(sys.argv[1]):
    ts, _, value = line.partition(" ")
    total += 1
    e = json.loads(value)
    if e.get("client_id") != "benchlat" or e.get("type") != "token.issued":
        continue
    at = datetime.datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")).timestamp() * 1000
    lat.append(int(ts) - at)
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
print(f"   Kafka timestamp - occurred_at over {len(lat)} events (topic holds {total}):"
      f" p50 {q(0.5):.0f} ms, p99 {q(0.99):.0f} ms, max {lat[-1]:.0f} ms")
PY

echo "== 4. outbox drain after a Kafka outage (backlog goal $backlog_goal), twice"
# The publisher's pending() plan depends on the planner's statistics for audit_outbox: run
# "found" keeps whatever autovacuum left (on a fresh database usually no ANALYZE yet), run
# "analyzed" analyzes the tables once the backlog is there. The plan is printed, with the time
# between publish rounds (from published_at) at the start and at the end of the drain.
pending_sql="SELECT o.id, o.topic, e.event_id, e.type, e.occurred_at_ms, e.subject, e.client_id,
  e.session_id, e.ip, e.request_id, e.node, e.data::text FROM audit_outbox o JOIN audit_events e
  ON e.event_id = o.event_id WHERE o.published_at IS NULL ORDER BY o.id LIMIT 500"
for stats in found analyzed; do
  await_outbox_empty 300 || true
  kill -USR1 "$kafka_pid"
  quiet_machine
  cpu_mark
  for i in $(seq 12); do  # 5 s of grants at a time, at most 60 s
    wrk -t1 -c64 -d5s --latency -s "$work/cc.lua" "$url/auth/token" > "$work/cc_down_${stats}_$i.txt"
    wrk_summary "client_credentials (Kafka down)" "$work/cc_down_${stats}_$i.txt"
    [[ "$(outbox_pending)" -ge "$backlog_goal" ]] && break
  done
  cpu_delta
  [[ "$stats" == analyzed ]] && psql "$CREDO_TEST_DATABASE_URL" -qAt -c 'ANALYZE audit_outbox' -c 'ANALYZE audit_events'
  echo "   ($stats) audit_outbox analyzed $(psql "$CREDO_TEST_DATABASE_URL" -qAt -c \
    "SELECT analyze_count + autoanalyze_count FROM pg_stat_user_tables WHERE relname = 'audit_outbox'") times"
  psql "$CREDO_TEST_DATABASE_URL" -qAt -c "EXPLAIN $pending_sql" > "$work/plan_$stats.txt"
  echo "   ($stats) plan of pending(): $(grep -oE '(Index Scan|Bitmap Heap Scan|Seq Scan) (using [a-z_]+ )?on audit_outbox|Hash Join|Nested Loop' "$work/plan_$stats.txt" | paste -sd, -)"
  quiet_machine
  python3 - "$CREDO_TEST_DATABASE_URL" "$kafka_pid" "$stats" <<'PY'
import os, signal, subprocess, sys, time
db, kafka, stats = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def sql(q):
    return subprocess.run(["psql", db, "-qAt", "-c", q], capture_output=True, text=True,
                          check=True).stdout.split()
count = lambda: int(sql("SELECT count(*) FROM audit_outbox WHERE published_at IS NULL")[0])
n0 = count()
print(f"   ({stats}) backlog with Kafka down: {n0} events (psql)")
up_wall = time.time()
os.kill(kafka, signal.SIGUSR2)
up = time.monotonic()
first = None
n = n0
for _ in range(6000):  # every 100 ms, at most 10 min
    time.sleep(0.1)
    n = count()
    if first is None and n < n0:
        first = (time.monotonic(), n)
    if n == 0:
        break
end = time.monotonic()
if n:
    print(f"   ({stats}) WARNING: {n} events still waiting after {end - up:.0f} s")
elif first:
    t1, n1 = first
    print(f"   ({stats}) drained {n0} events in {end - up:.2f} s after the brokers came up:"
          f" {n0 / (end - up):.0f} events/s; first progress after {t1 - up:.2f} s, then"
          f" {n1 / max(end - t1, 1e-3):.0f} events/s")
    rounds = [float(x) for x in sql("SELECT extract(epoch FROM published_at) FROM audit_outbox"
        f" WHERE published_at >= to_timestamp({up_wall}) GROUP BY published_at ORDER BY 1")]
    gaps = [round((b - a) * 1000) for a, b in zip(rounds, rounds[1:])]
    if len(gaps) >= 6:
        print(f"   ({stats}) {len(rounds)} publish rounds; ms between rounds, first: {gaps[:4]},"
              f" last: {gaps[-4:]}")
PY
done
# At least once: every event in audit_events was written to the topic. librdkafka's mock keeps
# at most 5 MiB or 100,000 messages per partition and drops the oldest, so the events written
# (sum of the partitions' end offsets) are compared too.
kcat -b "$CREDO_TEST_KAFKA_BROKERS" -C -t credo.audit.events -o beginning -e -q -f '%p %o %k\n' \
  > "$work/keys.txt"
psql "$CREDO_TEST_DATABASE_URL" -qAt -c 'SELECT event_id FROM audit_events' > "$work/event_ids.txt"
python3 - "$work/keys.txt" "$work/event_ids.txt" <<'PY'
import sys
first, last, keys = {}, {}, set()
retained = 0
for line in open(sys.argv[1]):
    p, o, k = line.split()
    p, o = int(p), int(o)
    first[p] = min(first.get(p, o), o)
    last[p] = max(last.get(p, o), o)
    keys.add(k)
    retained += 1
written = sum(v + 1 for v in last.values())
dropped = sum(first.values())
events = set(open(sys.argv[2]).read().split())
missing = len(events - keys)
print(f"   topic: {written} messages written, {dropped} oldest dropped by the mock's retention,"
      f" {retained} read ({len(keys)} distinct); audit_events: {len(events)} rows,"
      f" {missing} not read back; duplicates written: {written - len(events)}")
if missing > dropped:
    print("   WARNING: more events missing than the mock's retention dropped")
PY
{ grep -c '"audit publish failed"' "$work/credod.log" || true; } | sed 's/^/   publish failures logged: /'
{ curl -s "$url/metrics" | grep -E '^credo_(outbox|audit)' || true; } | sed 's/^/   /'
echo "== credod RSS after the run: $(ps -o rss= -p "$credod_pid") KiB"
