#!/usr/bin/env bash
# Builds the libFuzzer harnesses with clang (ASan+UBSan) and runs each for a short smoke period.
#   bash scripts/fuzz.sh [SECONDS]     default 20 s per harness
# Longer runs: bash scripts/fuzz.sh 600. Corpora are kept in build/fuzz/corpus/<harness>.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
harnesses=(jwt_fuzz http_request_fuzz form_fuzz json_fuzz)

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --target "${harnesses[@]}"
for h in "${harnesses[@]}"; do
  corpus="build/fuzz/corpus/$h"
  mkdir -p "$corpus"
  echo "== fuzz $h for ${seconds}s"
  "build/fuzz/tests/$h" -max_total_time="$seconds" -max_len=8192 -print_final_stats=1 \
    -artifact_prefix="build/fuzz/" "$corpus" 2>&1 | tail -n 12
done
echo "== fuzz smoke passed"
