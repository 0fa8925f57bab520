#!/usr/bin/env bash
# Sets up the machine, builds Credo and runs every test: unit tests, integration tests against a
# real credod (on the embedded default, then again on PostgreSQL + Redis + Kafka), the OAuth
# client-library conformance run, the same suite under ASan+UBSan, and a
# short smoke run of each libFuzzer harness. Starts a throwaway PostgreSQL, Redis and Kafka broker
# (scripts/services.sh) for the integration tests and stops them on exit, also on failure.
# Exits non-zero when anything fails.
#   CREDO_SKIP_ASAN=1   skip the sanitizer build (local iteration only; CI runs it)
#   CREDO_SKIP_FUZZ=1   skip the fuzz smoke runs
#   FUZZ_SECONDS=N      seconds per fuzz harness (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
export CREDO_REQUIRE_CONFORMANCE=1

echo "== conformance client (npm ci)"
(cd tests/conformance && npm ci --no-audit --no-fund --loglevel=error)

echo "== release build"
cmake --preset release >/dev/null
cmake --build --preset release
echo "== throwaway PostgreSQL, Redis, Kafka broker"
services_dir="$(mktemp -d)"
trap 'bash scripts/services.sh stop "$services_dir"' EXIT
KAFKA_MOCK_BROKER=build/release/tests/infra/kafka_mock_broker bash scripts/services.sh start "$services_dir"
# shellcheck disable=SC1091
source "$services_dir/env"
export CREDO_REQUIRE_BACKENDS=1

echo "== release tests"
ctest --preset release -j2 --timeout 900
echo "== integration tests again, every node on PostgreSQL + Redis + Kafka"
CREDO_IT_STORES=durable ctest --preset release -L integration -j2 --timeout 900

if [[ "${CREDO_SKIP_ASAN:-0}" != 1 ]]; then
  echo "== asan+ubsan build"
  cmake --preset asan >/dev/null
  cmake --build --preset asan
  echo "== asan+ubsan tests (not the chaos test: its time goals are for the release build)"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp" \
    ctest --preset asan -j2 --timeout 1800 -LE chaos
fi

if [[ "${CREDO_SKIP_FUZZ:-0}" != 1 ]]; then
  bash scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
fi
echo "== all tests passed"
