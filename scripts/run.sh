#!/usr/bin/env bash
# Sets up the machine, builds credod and starts one node on the embedded default (in-memory
# stores). Prints the URL and the admin token. Extra arguments go to credod, e.g.
#   bash scripts/run.sh --http 127.0.0.1:9000
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release --target credod credoctl
export CREDO_ADMIN_TOKEN="${CREDO_ADMIN_TOKEN:-$(head -c 32 /dev/urandom | base64 | tr -d '/+=' | head -c 43)}"
http="${CREDO_HTTP:-127.0.0.1:8080}"
echo "Credo: http://${http}   admin token: ${CREDO_ADMIN_TOKEN}"
echo "  try: curl http://${http}/.well-known/openid-configuration"
echo "       curl -H \"Authorization: Bearer ${CREDO_ADMIN_TOKEN}\" http://${http}/admin/actors"
exec build/release/app/credod --http "$http" "$@"
