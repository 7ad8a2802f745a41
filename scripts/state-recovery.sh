#!/usr/bin/env bash
# Crash recovery of a large state on the on-disk backend (release build, one pinned core):
# Nexmark q20 (tests/nexmark/q20/query.sql, the in-process `nexmark` source, an exactly-once
# directory sink) over N events, run once on the heap without checkpoints, then on the on-disk
# backend with a checkpoint every 5 s, killed with SIGKILL after each of the given numbers of
# seconds and resumed, to its end. Prints each run's CPU, peak RSS and wall time, and whether
# the rows equal the uninterrupted run's (exit status 1 when they do not).
#   scripts/state-recovery.sh [--events 20000000] [--kills 25,50] [--query q20]
#                             [--backend disk] [--interval 5s]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tillflow-target}"
events=20000000
kills=25,50
query=q20
backend=disk
interval=5s
while [[ $# -gt 0 ]]; do
  case "$1" in
    --events) events="$2"; shift 2 ;;
    --kills) kills="$2"; shift 2 ;;
    --query) query="$2"; shift 2 ;;
    --backend) backend="$2"; shift 2 ;;
    --interval) interval="$2"; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
cargo build --release --quiet -p tillflow-cli
bin="$CARGO_TARGET_DIR/release/tillflow"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 scripts/nexmark-job.py "tests/nexmark/$query/query.sql" "$events" files > "$work/job.sql"
run() { # name, extra args...: runs the job, appends "name cpu_s peak_rss_mib wall_s status"
  local name="$1"; shift
  local status=0
  /usr/bin/time -f '%U %S %M %e' -o "$work/time" taskset -c 0 "$bin" run "$work/job.sql" \
    --no-http -p 1 "$@" 2> "$work/err-$name" > /dev/null || status=$?
  # a killed command's line comes after time's note of the signal
  read -r user sys rss wall < <(tail -1 "$work/time")
  printf '%-12s %8s %10s %8s %s\n' "$name" "$(python3 -c "print(round($user + $sys, 1))")" \
    "$((rss / 1024))M" "$wall" "$([[ $status == 0 ]] && echo finished || echo "killed ($status)")"
}
printf '%-12s %8s %10s %8s %s\n' run cpu_s peak_rss wall_s end
run reference --fresh --job-name reference --var "OUT=$work/reference" \
  --set state.backend.type=hashmap
common=(--job-name recovered --var "OUT=$work/recovered" --set "state.backend.type=$backend"
        --set "execution.checkpointing.interval=$interval" --set "state.checkpoints.dir=$work/chk")
k=0
for after in ${kills//,/ }; do
  k=$((k + 1))
  fresh=(); [[ $k == 1 ]] && fresh=(--fresh)
  ( run "killed-$k" "${fresh[@]}" "${common[@]}" ) &
  sleep "$after"
  pkill -KILL -f "^$bin run $work/job.sql" || true
  wait || true
  ls "$work/chk/recovered" > "$work/chk-$k" 2>/dev/null || true
  echo "             checkpoints after kill $k: $(tr '\n' ' ' < "$work/chk-$k")"
done
run resumed "${common[@]}"
grep -h "resumed from" "$work"/err-* | sed 's/^/             /' || true
cat "$work"/reference/part-* | sort > "$work/want"
cat "$work"/recovered/part-* | sort > "$work/got"
rows=$(wc -l < "$work/want")
if cmp -s "$work/want" "$work/got"; then
  echo "rows: $rows, the same as the uninterrupted run's"
else
  echo "rows: $(wc -l < "$work/got") recovered, $rows uninterrupted: DIFFERENT" >&2
  diff "$work/want" "$work/got" | head -5 >&2
  exit 1
fi
