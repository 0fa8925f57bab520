#!/usr/bin/env bash
# Installs every Debian package that building, running and testing Credo needs.
# Idempotent: skips apt entirely when everything is already installed.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config clang libclang-rt-14-dev
  libcaf-dev libboost1.81-dev libssl-dev libpqxx-dev libhiredis-dev librdkafka-dev
  nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev libargon2-dev
  libspdlog-dev libfmt-dev libcli11-dev prometheus-cpp-dev
  postgresql-15 redis-server kcat curl wrk python3 openssl
  # test only: promtool (metrics and alert rules), docker-compose (compose file validation),
  # chromium (dashboard page), python3-yaml (manifests and openapi.yaml, via /usr/bin/python3)
  prometheus docker-compose chromium python3-yaml
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: all packages present"
