#!/usr/bin/env bash
# Runs the main job: the retail demo on its embedded default — two generated retail weeks, compressed to
# about a minute, analysed by the retail pipelines into ./tillflow-demo.db (SQLite), then a summary.
#   scripts/demo.sh [--realtime] [--duration 14d] [--seed 42] [--speed N] [--db FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tillflow-target}"
scripts/setup.sh build
exec cargo run --release --quiet -p tillflow-cli -- demo "$@"
