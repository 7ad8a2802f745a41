#!/usr/bin/env bash
# Single-threaded throughput benchmark (release build): TUMBLE 1 min GROUP BY store_id, sku and the
# q6-style filter/projection over generated NDJSON retail events into a blackhole sink.
#   scripts/bench.sh [--events N] [--queries window,filter] [--runs R]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tillflow-target}"
cargo build --release --quiet -p tillflow-bench
exec taskset -c 0 "$CARGO_TARGET_DIR/release/tillflow-bench" "$@"
