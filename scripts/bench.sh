#!/usr/bin/env bash
# Throughput benchmark (release build): TUMBLE 1 min GROUP BY store_id, sku and the q6-style
# filter/projection over generated NDJSON retail events into a blackhole sink, on as many pinned
# cores as workers (one by default).
#   scripts/bench.sh [--events N] [--queries window,filter] [--runs R] [--parallelism P]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tillflow-target}"
cargo build --release --quiet -p tillflow-bench
workers=1
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --parallelism|-p) workers="${args[$((i + 1))]:-1}" ;;
    --parallelism=*) workers="${args[$i]#*=}" ;;
  esac
done
exec taskset -c "0-$((workers - 1))" "$CARGO_TARGET_DIR/release/tillflow-bench" "$@"
