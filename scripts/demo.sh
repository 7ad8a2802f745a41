#!/usr/bin/env bash
# Runs the main job: the retail demo on the embedded default (bundled sample events, printed results).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tillflow-target}"
exec cargo run --release --quiet -p tillflow-cli -- run examples/retail/demo.sql "$@"
