#!/usr/bin/env bash
# State backend benchmark (release build): Flink's Nexmark queries (tests/nexmark/qN/query.sql,
# their source switched to the in-process `nexmark` connector, their sink to a blackhole) on the
# heap backend and on the on-disk backend, one pinned core each. Prints, per query, backend and
# event count: CPU seconds (user + sys), events per CPU-second, peak RSS of the whole process,
# wall time, the on-disk backend's counters and, with checkpoints, the last one's size and the
# pauses. A backend is `hashmap` or `disk`, with `+incremental` or `+full` for checkpoints of
# that kind (else the default: incremental).
#   scripts/bench-state.sh [--events N[,N…]] [--queries q20,q4] [--backends hashmap,disk]
#                          [--memory 256mb] [--checkpoint-interval 10s]
#   TILLFLOW_BIN=path runs that binary (another state engine, say) instead of building this tree
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tillflow-target}"
events=2000000
queries=q20,q4
backends=hashmap,disk
memory=256mb
interval=
while [[ $# -gt 0 ]]; do
  case "$1" in
    --events) events="$2"; shift 2 ;;
    --queries) queries="$2"; shift 2 ;;
    --backends) backends="$2"; shift 2 ;;
    --memory) memory="$2"; shift 2 ;;
    --checkpoint-interval) interval="$2"; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
# TILLFLOW_BIN: a tillflow binary built elsewhere (another state engine, say) instead of this tree's
if [[ -n "${TILLFLOW_BIN:-}" ]]; then
  bin="$TILLFLOW_BIN"
else
  cargo build --release --quiet -p tillflow-cli
  bin="$CARGO_TARGET_DIR/release/tillflow"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '%-5s %-20s %10s %8s %12s %9s %8s  %s\n' query backend events cpu_s events/cpu_s peak_rss wall_s "disk backend"
for q in ${queries//,/ }; do
  for n in ${events//,/ }; do
    # the source: the nexmark connector making n events at once; the sink: a blackhole
    python3 scripts/nexmark-job.py "tests/nexmark/$q/query.sql" "$n" blackhole > "$work/$q.sql"
    for b in ${backends//,/ }; do
      kind="${b#*+}"; [[ "$kind" == "$b" ]] && kind=""
      args=(run "$work/$q.sql" --no-http -p 1 --fresh --job-name "bench-$q" --store "$work/store.db"
            --set "state.backend.type=${b%%+*}" --set "state.backend.rocksdb.memory.fixed-per-slot=$memory")
      if [[ -n "$kind" ]]; then
        args+=(--set "execution.checkpointing.incremental=$([[ $kind == incremental ]] && echo true || echo false)")
      fi
      if [[ -n "$interval" ]]; then
        args+=(--set "execution.checkpointing.interval=$interval" --set "state.checkpoints.dir=$work/chk")
      fi
      /usr/bin/time -f '%U %S %M %e' -o "$work/time" taskset -c 0 "$bin" "${args[@]}" 2> "$work/err" > /dev/null || {
        cat "$work/err" >&2; exit 1; }
      read -r user sys rss wall < "$work/time"
      cpu=$(python3 -c "print(round($user + $sys, 2))")
      rate=$(python3 -c "print(round($n / max($user + $sys, 1e-9)))")
      disk=$(grep -o 'state on disk: [^;]*' "$work/err" | head -1 || true)
      disk+=$(grep -o '; keyed state at the end: .*' "$work/err" | head -1 || true)
      disk+=$(grep -o ' [0-9]* checkpoint(s).*' "$work/err" | head -1 || true)
      all=$(grep -o 'of all [0-9]* checkpoints.*' "$work/err" | head -1 || true)
      [[ -n "$all" ]] && disk+="; $all"
      printf '%-5s %-20s %10s %8s %12s %8sM %8s  %s\n' "$q" "$b" "$n" "$cpu" "$rate" "$((rss / 1024))" "$wall" "$disk"
      rm -rf "$work/chk"
    done
  done
done
