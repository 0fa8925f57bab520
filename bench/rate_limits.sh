#!/usr/bin/env bash
# Cost of the rate-limit checks (docs/decisions/0011-rate-limits.md), on loopback with wrk -t1:
#   1. one node (in-memory stores): POST /auth/introspect (JWT, Basic client auth; rules
#      introspect.client, introspect.global) and POST /auth/token client_credentials (token.ip,
#      token.client, token.global), with every rule on but too big to deny
#      (--rate-limit all=1000000000/1m: the checks run, from leases of 64 tokens) vs all=off
#   2. the same through node a of three nodes (mutual-TLS links, or plain with
#      CLUSTER_INSECURE=1) on throwaway PostgreSQL and Redis (scripts/services.sh); the buckets
#      live on whichever node rendezvous hashing picks, so some owner calls cross the cluster
#   3. memory per bucket: one node behind a trusted proxy (--trusted-proxies 127.0.0.1/32),
#      RATE_BUCKETS logins (default 100000) with an empty body, each from its own
#      X-Forwarded-For address: one live bucket entity each (live 60 s before passivating; the
#      login itself is answered 400 after the check). RSS growth / live buckets.
# In 1 and 2 both settings run side by side (one node or cluster each; the idle one costs next
# to nothing) and the runs alternate off, on, on, off (RATE_ROUNDS per setting, default 2), so
# paired runs are adjacent in time. Each run prints req/s, latency, the owner calls
# (credo_rate_limit_owner_calls_total: lease fetches; the other checks are answered from
# leases on the I/O thread), credod CPU per request, the CPU per process group and the CPU the
# hypervisor stole (this machine's neighbours: runs with steal above ~0.1 core are suspect).
#   bash bench/rate_limits.sh [SECONDS]      default 10 s per wrk run
# Environment: BENCH_NO_BUILD=1 (use the binaries in build/release as they are), RATE_CONNS
# (wrk connections, default 16), RATE_ROUNDS, RATE_BUCKETS, RATE_BUCKET_RULE (the login.ip
# rule of step 3, default 60/1m: under 200 tokens, so no lease is kept and the figure is the
# bucket's alone), RATE_SKIP (comma list of steps to skip: single,cluster,memory),
# RATE_NO_WAIT=1 (do not wait for compilers and test runs to finish), CLUSTER_INSECURE=1.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
conns="${RATE_CONNS:-16}"
rounds="${RATE_ROUNDS:-2}"
nbuckets="${RATE_BUCKETS:-100000}"
bucket_rule="${RATE_BUCKET_RULE:-60/1m}"
skip=",${RATE_SKIP:-},"

if [[ "${BENCH_NO_BUILD:-0}" != 1 ]]; then
  cmake --preset release >/dev/null
  cmake --build --preset release --target credod kafka_mock_broker
fi
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }

work="$(mktemp -d)"
# shellcheck source=bench/lib.sh
source bench/lib.sh
svc=""
stop_nodes() {
  local pids=() f p
  for f in "$work"/*.pid; do [[ -f "$f" ]] && pids+=("$(cat "$f")") && rm -f "$f"; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
}
cleanup() {
  set +e
  stop_nodes
  [[ -n "$svc" ]] && bash scripts/services.sh stop "$svc"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

CREDO_ADMIN_TOKEN="bench-admin-$(openssl rand -hex 16)"
export CREDO_ADMIN_TOKEN
bench=(python3 bench/rate_limits_bench.py)

# Waits (at most 10 min) until no compiler, linker or test run shares the two cores.
busy() { pgrep -x cc1plus || pgrep -x ld || pgrep -x ctest || pgrep -f 'python3 -m unittest'; }
quiet_machine() {
  [[ "${RATE_NO_WAIT:-0}" == 1 ]] && return 0
  local i
  for i in $(seq 120); do
    busy >/dev/null || return 0
    [[ $i == 1 ]] && echo "   (waiting for $(busy | xargs -r ps -o comm= -p | sort -u | tr '\n' ' ')to finish)"
    sleep 5
  done
  echo "   (still busy after 10 min: measuring anyway)"
}

limit_flags() { [[ "$1" == on ]] && echo "all=1000000000/1m" || echo "all=off"; }

echo "== credo $(git rev-parse --short HEAD 2>/dev/null || echo '?') (credod built $(date -r build/release/app/credod '+%F %T')): wrk -t1 -c$conns, ${secs}s per run, $rounds runs per setting"

# -- 1. one node, in-memory stores: a node per setting, side by side
if [[ "$skip" != *,single,* ]]; then
  echo "== 1. one node (in-memory stores)"
  quiet_machine
  nodes=() cpu=()
  for limits in off on; do
    read -r http _ < <(unset DATABASE_URL REDIS_URL KAFKA_BROKERS
      start "single-$limits" --rate-limit "$(limit_flags "$limits")")
    nodes+=("$http")
    cpu+=("credod=$(cat "$work/single-$limits.pid")")
  done
  "${bench[@]}" compare "$work" single "$secs" "$conns" "$rounds" "${nodes[0]}" "${cpu[0]}" "${nodes[1]}" "${cpu[1]}"
  stop_nodes
fi

# -- 2. three nodes per setting, side by side (two clusters on the same PostgreSQL and Redis)
if [[ "$skip" != *,cluster,* ]]; then
  svc="$(mktemp -d)"
  KAFKA_MOCK_BROKER=build/release/tests/infra/kafka_mock_broker bash scripts/services.sh start "$svc"
  # shellcheck disable=SC1091
  source "$svc/env"
  if [[ "${CLUSTER_INSECURE:-0}" != 1 ]]; then
    # A CA and one certificate per node (mutual TLS, as in production), as the compose stack
    # makes them: ca.pem, a.pem/a.key, ...
    CERT_DIR="$work" CREDO_NODES="a b c" CERT_DAYS=1 CERT_OWNER="$(id -u):$(id -g)" \
      sh docker/gen-certs.sh >/dev/null
  fi
  node_flags() {  # name -> link flags
    if [[ "${CLUSTER_INSECURE:-0}" == 1 ]]; then echo "--cluster-insecure"
    else echo "--cluster-tls-cert $work/$1.pem --cluster-tls-key $work/$1.key --cluster-tls-ca $work/ca.pem"; fi
  }
  cluster_env=(DATABASE_URL="$CREDO_TEST_DATABASE_URL" REDIS_URL="$CREDO_TEST_REDIS_URL"
    CREDO_KEY_ENCRYPTION_KEY="$(printf '5f%.0s' $(seq 32))" CREDO_CLUSTER_SECRET="$(openssl rand -hex 32)")
  pg_pid="$(head -1 "$svc/pg/data/postmaster.pid")"
  redis_pid="$(cat "$svc/redis/pid")"
  echo "== 2. three nodes ($([[ ${CLUSTER_INSECURE:-0} == 1 ]] && echo plain || echo TLS) links), load through node a"
  quiet_machine
  nodes=() cpu=()
  for limits in off on; do
    # Node ids a, b, c in both clusters: the bucket owners are the same (rate_limits_bench.py
    # computes them); each cluster knows only its own seed.
    lf="$(limit_flags "$limits")" seed="" urls=() groups=()
    for n in a b c; do
      # shellcheck disable=SC2046
      read -r http clus < <(export "${cluster_env[@]}"
        start "$limits-$n" --node-id "$n" --cluster 127.0.0.1:0 ${seed:+--seeds "$seed"} \
          $(node_flags "$n") --rate-limit "$lf")
      [[ -z "$seed" ]] && seed="$clus"
      urls+=("$http")
      groups+=("credod_$n=$(cat "$work/$limits-$n.pid")")
    done
    nodes+=("$(IFS=,; echo "${urls[*]}")")
    cpu+=("$(IFS=,; echo "${groups[*]}"),postgres=$pg_pid,redis=$redis_pid")
  done
  "${bench[@]}" compare "$work" cluster "$secs" "$conns" "$rounds" "${nodes[0]}" "${cpu[0]}" "${nodes[1]}" "${cpu[1]}"
  stop_nodes
  bash scripts/services.sh stop "$svc"
  svc=""
fi

# -- 3. memory per bucket
if [[ "$skip" != *,memory,* ]]; then
  echo "== 3. memory per bucket: $nbuckets logins, one X-Forwarded-For address each (login.ip=$bucket_rule)"
  quiet_machine
  read -r http _ < <(unset DATABASE_URL REDIS_URL KAFKA_BROKERS; start mem \
    --trusted-proxies 127.0.0.1/32 --rate-limit "login.ip=$bucket_rule" --rate-limit login.global=off \
    --lockout-threshold 0)
  "${bench[@]}" memory "$work" "$http" "$(cat "$work/mem.pid")" "$nbuckets" "$conns"
  stop_nodes
fi

"${bench[@]}" summary "$work"
