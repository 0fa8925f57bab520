#!/usr/bin/env bash
# Cluster benchmarks: three credod nodes on loopback (mutual-TLS links, or plain with
# CLUSTER_INSECURE=1) on throwaway PostgreSQL and Redis (scripts/services.sh):
#   1. added latency of a routed entity request: GET /auth/consent (answered by the consent
#      entity of the caller, from memory once active) sent to node A, for a user whose entity
#      lives on A (local) and for one whose entity lives on B (one CAF hop each way);
#      wrk -t1 -c1 (one request at a time: latency) and -c16 (throughput)
#   2. revocation propagation: POST /auth/revoke on A, then introspection on B and C until the
#      token is inactive (the lag includes one HTTP round trip per poll)
#   3. failover: kill -9 of node C while a client refreshes sessions owned by C through A; the
#      gap from the kill to the first success of each session
#   bash bench/cluster.sh [SECONDS]      default 10 s per wrk run
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"

cmake --preset release >/dev/null
cmake --build --preset release --target credod kafka_mock_broker

work="$(mktemp -d)"
svc="$(mktemp -d)"
cleanup() {
  set +e
  local pids=()
  for f in "$work"/*.pid; do [[ -f "$f" ]] && pids+=("$(cat "$f")"); done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
  done
  bash scripts/services.sh stop "$svc"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

KAFKA_MOCK_BROKER=build/release/tests/infra/kafka_mock_broker bash scripts/services.sh start "$svc"
# shellcheck disable=SC1091
source "$svc/env"

links=(--cluster-insecure)
if [[ "${CLUSTER_INSECURE:-0}" != 1 ]]; then
  # A CA and one certificate per node (mutual TLS, as in production), as the compose stack
  # makes them: ca.pem, a.pem/a.key, ...
  CERT_DIR="$work" CREDO_NODES="a b c" CERT_DAYS=1 CERT_OWNER="$(id -u):$(id -g)" \
    sh docker/gen-certs.sh >/dev/null
fi

export DATABASE_URL="$CREDO_TEST_DATABASE_URL" REDIS_URL="$CREDO_TEST_REDIS_URL"
export CREDO_KEY_ENCRYPTION_KEY="$(printf '5f%.0s' $(seq 32))"
export CREDO_CLUSTER_SECRET="$(openssl rand -hex 32)"
export CREDO_ADMIN_TOKEN="bench-admin-$(openssl rand -hex 16)"
# shellcheck source=bench/lib.sh
source bench/lib.sh
node() {  # name seeds -> prints "http cluster"
  local n="$1" seeds="$2" flags=("${links[@]}")
  [[ "${CLUSTER_INSECURE:-0}" != 1 ]] && flags=(--cluster-tls-cert "$work/$n.pem"
    --cluster-tls-key "$work/$n.key" --cluster-tls-ca "$work/ca.pem")
  [[ -n "$seeds" ]] && flags+=(--seeds "$seeds")
  start "$n" --node-id "$n" --rate-limit all=off --lockout-threshold 0 \
    --cluster 127.0.0.1:0 "${flags[@]}"
}
read -r a_http a_cluster < <(node a "")
read -r b_http b_cluster < <(node b "$a_cluster")
read -r c_http c_cluster < <(node c "$a_cluster")
echo "== nodes: a $a_http, b $b_http, c $c_http ($([[ ${CLUSTER_INSECURE:-0} == 1 ]] && echo plain || echo TLS) links)"

python3 bench/cluster_bench.py "$work" "$a_http" "$b_http" "$c_http" "$secs" "$(cat "$work/c.pid")"
