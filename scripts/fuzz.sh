#!/usr/bin/env bash
# Fuzzing that stays: runs each cargo-fuzz target in fuzz/ (JSON and CSV decoders, the SQL
# front end, checkpoint decoding) for FUZZ_SECONDS (15 by default: a minute in all, as part of
# the test command), from a corpus seeded with the repository's test inputs and the hostile
# cases of tests/golden/error_*. A crash, a panic, a timeout or an allocation over 2 GB fails
# the run; libFuzzer writes the input that did it under fuzz/artifacts/. Longer runs:
#   FUZZ_SECONDS=3600 scripts/fuzz.sh [TARGET ...]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tillflow-target}"
seconds="${FUZZ_SECONDS:-15}"
if ! cargo fuzz --version 2>/dev/null | grep -q "0.12.0"; then
  cargo install cargo-fuzz --version 0.12.0 --locked --quiet
fi
rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decode_json decode_csv sql_plan checkpoint_decode)
corpus_root="$CARGO_TARGET_DIR/fuzz-corpus"
seed() { # TARGET: the corpus of that target, seeded once from tests/
  local dir="$corpus_root/$1" n=0
  mkdir -p "$dir"
  [ -n "$(ls -A "$dir")" ] && return
  case "$1" in
    decode_json)
      for f in tests/golden/*/input.ndjson tests/flink/events20k.ndjson; do
        head -n 20 "$f" | while IFS= read -r line; do
          n=$((n + 1)); printf '%s' "$line" > "$dir/$(basename "$(dirname "$f")")-$n"
        done
      done ;;
    decode_csv)
      for f in tests/golden/*/input.csv; do
        [ -e "$f" ] || continue
        head -n 20 "$f" | while IFS= read -r line; do
          n=$((n + 1)); printf '%s' "$line" > "$dir/$(basename "$(dirname "$f")")-$n"
        done
      done
      printf '2024-03-01 10:00:00,1,"a ""quoted"" sku",2,9.5,10.25,2024-03-01,true' > "$dir/quoted" ;;
    sql_plan)
      for f in tests/golden/*/query.sql tests/flink/*/query.sql; do
        # the first 4 KB: the long hostile cases stay short enough to mutate
        head -c 4096 "$f" > "$dir/$(basename "$(dirname "$f")")"
      done ;;
    checkpoint_decode)
      printf 'TFCK' > "$dir/magic" ;;
  esac
}
for t in "${targets[@]}"; do
  seed "$t"
  echo "== fuzz $t (${seconds}s)"
  log="$corpus_root/$t.log"
  status=0
  cargo +nightly fuzz run --fuzz-dir fuzz --target-dir "$CARGO_TARGET_DIR/fuzz" \
    --sanitizer none "$t" "$corpus_root/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=8192 \
    -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E "^(stat::number_of_executed_units|stat::new_units_added|SUMMARY|thread '|error)" "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 40 "$log"
    echo "fuzz $t failed (exit $status): the input is under fuzz/artifacts/$t/"
    exit 1
  fi
done
