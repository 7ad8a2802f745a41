#!/usr/bin/env bash
# Python function benchmark (release build): rows per CPU-second through a trivial Python scalar
# function against the same expression as a built-in, and a Python SUM (an aggregate function)
# against the built-in SUM in a GROUP BY of 1,000 groups, over the same rows of the `datagen`
# connector (a BIGINT sequence and a random 12-character STRING) into a blackhole, one pinned
# core for tillflow and its Python worker together (CPU = user + sys of both).
#   scripts/bench-python.sh [--rows N] [--bundle N]
#   TILLFLOW_BIN=path runs that binary instead of building this tree; BENCH_CPU=n pins core n (0)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tillflow-target}"
rows=2000000
bundle=100000
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rows) rows="$2"; shift 2 ;;
    --bundle) bundle="$2"; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
if [[ -n "${TILLFLOW_BIN:-}" ]]; then
  bin="$TILLFLOW_BIN"
else
  cargo build --release --quiet -p tillflow-cli
  bin="$CARGO_TARGET_DIR/release/tillflow"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/bench_udfs.py" <<'PY'
def add_one(x):
    return x + 1
add_one.result_type = 'BIGINT'

def shout(s):
    return s.upper()
shout.result_type = 'STRING'

class PySum:
    result_type = 'BIGINT'
    def create_accumulator(self):
        return [0]
    def accumulate(self, acc, x):
        acc[0] += x
    def retract(self, acc, x):
        acc[0] -= x
    def get_value(self, acc):
        return acc[0]
py_sum = PySum
PY
printf '%-46s %10s %8s %14s %8s\n' query rows cpu_s rows/cpu_s wall_s
# kind|select list|GROUP BY (empty: none)|sink columns
for q in "builtin|x + 1||v BIGINT" "python|add_one(x)||v BIGINT" \
         "builtin|UPPER(s)||v STRING" "python|shout(s)||v STRING" \
         "builtin|x % 1000, SUM(x)|x % 1000|k BIGINT, v BIGINT" \
         "python|x % 1000, py_sum(x)|x % 1000|k BIGINT, v BIGINT"; do
  IFS='|' read -r kind expr group cols <<< "$q"
  by=""; [[ -n "$group" ]] && by=" GROUP BY $group"
  cat > "$work/q.sql" <<SQL
SET 'python.files' = '$work/bench_udfs.py';
SET 'python.fn-execution.bundle.size' = '$bundle';
CREATE TEMPORARY FUNCTION add_one AS 'bench_udfs.add_one' LANGUAGE PYTHON;
CREATE TEMPORARY FUNCTION shout AS 'bench_udfs.shout' LANGUAGE PYTHON;
CREATE TEMPORARY FUNCTION py_sum AS 'bench_udfs.py_sum' LANGUAGE PYTHON;
CREATE TABLE src (x BIGINT, s STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '$rows', 'rows-per-second' = '1000000000',
  'fields.x.kind' = 'sequence', 'fields.x.start' = '1', 'fields.x.end' = '$rows',
  'fields.s.length' = '12', 'seed' = '7');
CREATE TABLE sink ($cols) WITH ('connector' = 'blackhole');
INSERT INTO sink SELECT $expr FROM src$by;
SQL
  /usr/bin/time -f "%U %S %e" -o "$work/time" taskset -c "${BENCH_CPU:-0}" "$bin" run "$work/q.sql" --no-http -p 1 --fresh \
    --job-name bench-python --store "$work/store.db" 2> "$work/err" > /dev/null || { cat "$work/err" >&2; exit 1; }
  read -r user sys wall < "$work/time"
  cpu=$(python3 -c "print(round($user + $sys, 2))")
  rate=$(python3 -c "print(round($rows / max($user + $sys, 1e-9)))")
  printf '%-46s %10s %8s %14s %8s\n' "$kind $expr$by" "$rows" "$cpu" "$rate" "$wall"
done
