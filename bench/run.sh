#!/usr/bin/env bash
# Load benchmarks on loopback with wrk -t1 (the machine has 2 cores; more wrk threads distort
# p99), beside nginx `return 200` measured in the same run:
#   nginx baseline, JWT introspection, client_credentials grants, logins (Argon2-bound).
# Then the Google Benchmark micro benchmarks and the memory per live session entity.
#   bash bench/run.sh [SECONDS]      default 10 s per wrk run
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
bash scripts/setup.sh
command -v nginx >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
cmake --preset release >/dev/null
cmake --build --preset release --target credod micro_bench session_memory

work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [[ -f "$work/nginx.pid" ]] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# -- nginx baseline
nport="$(free_port)"
cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  server { listen 127.0.0.1:$nport; location / { return 200 '{"status":"ok"}'; } }
}
NGINX
nginx -c "$work/nginx.conf" -p "$work"

# -- credod
token="bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
# Rate limits off: one wrk client on one address is a flood by the defaults' measure; their
# cost is measured by bench/rate_limits.sh.
CREDO_ADMIN_TOKEN="$token" build/release/app/credod --http 127.0.0.1:0 --rate-limit all=off \
  --lockout-threshold 0 > "$work/credod.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q '"listening"' "$work/credod.log" && break; sleep 0.05; done
url="$(grep -o '"url":"[^"]*"' "$work/credod.log" | head -1 | cut -d'"' -f4)"
[[ -n "$url" ]] || { cat "$work/credod.log"; exit 1; }

curl -sf -X POST "$url/admin/clients" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d '{"client_id":"bench","client_secret":"bench-secret-0123456789-abcdefghij","scopes":["read"],"grant_types":["client_credentials"]}' >/dev/null
curl -sf -X POST "$url/users" -H 'Content-Type: application/json' \
  -d '{"email":"bench@example.com","password":"bench-password"}' >/dev/null
access="$(curl -sf -X POST "$url/auth/login" -H 'Content-Type: application/json' \
  -d '{"email":"bench@example.com","password":"bench-password"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
basic="$(printf 'bench:bench-secret-0123456789-abcdefghij' | base64 -w0)"

cat > "$work/introspect.lua" <<LUA
wrk.method = "POST"
wrk.body = "token=$access"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $basic"
LUA
cat > "$work/cc.lua" <<LUA
wrk.method = "POST"
wrk.body = "grant_type=client_credentials&scope=read"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $basic"
LUA
cat > "$work/login.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"email":"bench@example.com","password":"bench-password"}'
wrk.headers["Content-Type"] = "application/json"
LUA

summary() {  # name, wrk output file
  local rps p99 non2xx
  rps="$(awk '/Requests\/sec/ {print $2}' "$2")"
  p99="$(awk '$1=="99%" {print $2}' "$2")"
  non2xx="$(awk '/Non-2xx/ {print $4}' "$2")"
  printf '%-28s %12s req/s   p99 %8s   non-2xx %s\n' "$1" "$rps" "$p99" "${non2xx:-0}"
}
run() {  # name, connections, url, [script]
  local out="$work/$1.txt"
  if [[ -n "${4:-}" ]]; then wrk -t1 -c"$2" -d"${secs}s" --latency -s "$4" "$3" > "$out"
  else wrk -t1 -c"$2" -d"${secs}s" --latency "$3" > "$out"; fi
  summary "$1" "$out" | tee -a "$work/summary"
}

echo "== wrk -t1, ${secs}s each"
run nginx_return_200 64 "http://127.0.0.1:$nport/"
run introspect_jwt 64 "$url/auth/introspect" "$work/introspect.lua"
run client_credentials 64 "$url/auth/token" "$work/cc.lua"
run login_argon2 16 "$url/auth/login" "$work/login.lua"
echo "== micro benchmarks"
build/release/bench/micro_bench --benchmark_min_time=0.5 2>/dev/null
echo "== memory per live session entity"
build/release/bench/session_memory 100000
echo "== credod RSS after the run: $(ps -o rss= -p "${pids[0]}") KiB"
