#!/usr/bin/env bash
# PostgreSQL change data capture figures (release build, a throw-away local server with
# wal_level = logical, like the tests'): a job reads a table's changes (postgres-cdc) and writes
# them to another table of the same server (jdbc, exactly-once, checkpoints every second), whose
# `seen` column the server stamps as each row lands.
#   lag: 20 s of single-row transactions, 100 a second; commit → row in the sink (p50 / p99)
#   throughput: 200 transactions of 1000 inserted rows each, as fast as the server takes them
#   scripts/bench-cdc.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tillflow-target}"
scripts/setup.sh test >/dev/null
cargo build --release --quiet -p tillflow-cli
TF="$CARGO_TARGET_DIR/release/tillflow"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
D=$(mktemp -d)
chmod 777 "$D"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
as_pg "$PGBIN/initdb" -D "$D/data" -U bench --auth=trust -E UTF8 --no-sync >/dev/null
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg "$PGBIN/pg_ctl" -D "$D/data" -l "$D/log" -w -o "-p $PORT -k $D -c listen_addresses=127.0.0.1 -c wal_level=logical" start >/dev/null
JOB=""
trap '[ -n "$JOB" ] && kill $JOB 2>/dev/null; as_pg "$PGBIN/pg_ctl" -D "$D/data" -m immediate stop >/dev/null 2>&1; rm -rf "$D"' EXIT
q() { PGOPTIONS="-c client_min_messages=warning" psql -qAt -h 127.0.0.1 -p "$PORT" -U bench -d postgres -c "$1"; }
q "CREATE TABLE src (id bigint PRIMARY KEY, qty int, at timestamptz NOT NULL DEFAULT clock_timestamp());
   CREATE TABLE dst (id bigint PRIMARY KEY, qty int, at timestamptz, seen timestamptz NOT NULL DEFAULT clock_timestamp());
   CREATE PROCEDURE load(first bigint, txs int, per_tx int, pause float8) LANGUAGE plpgsql AS \$\$
   BEGIN
     FOR t IN 0 .. txs - 1 LOOP
       INSERT INTO src (id, qty) SELECT first + t * per_tx + g, g % 7 FROM generate_series(0, per_tx - 1) g;
       COMMIT;
       IF pause > 0 THEN PERFORM pg_sleep(pause); END IF;
     END LOOP;
   END \$\$;" >/dev/null
cat > "$D/cdc.sql" <<SQL
SET 'execution.checkpointing.interval' = '1 s';
SET 'state.checkpoints.dir' = '$D/checkpoints';
CREATE TABLE src (id BIGINT, qty INT, at TIMESTAMP_LTZ(6), PRIMARY KEY (id) NOT ENFORCED)
WITH ('connector' = 'postgres-cdc', 'hostname' = '127.0.0.1', 'port' = '$PORT', 'username' = 'bench',
      'database-name' = 'postgres', 'table-name' = 'src', 'slot.name' = 'bench_slot');
CREATE TABLE dst (id BIGINT, qty INT, at TIMESTAMP_LTZ(6), PRIMARY KEY (id) NOT ENFORCED)
WITH ('connector' = 'jdbc', 'url' = 'jdbc:postgresql://127.0.0.1:$PORT/postgres', 'table-name' = 'dst',
      'username' = 'bench', 'sink.buffer-flush.max-rows' = '1000');
INSERT INTO dst SELECT * FROM src;
SQL
"$TF" run --quiet --no-http "$D/cdc.sql" >"$D/job.log" 2>&1 &
JOB=$!
sleep 3
wait_for() { # rows expected in dst
  for _ in $(seq 600); do
    [ "$(q "SELECT count(*) FROM dst")" -ge "$1" ] && return 0
    sleep 0.1
  done
  echo "the sink did not get $1 rows:"; cat "$D/job.log"; exit 1
}
q "CALL load(0, 2000, 1, 0.01)" >/dev/null
wait_for 2000
echo "lag, commit -> row in the sink (2000 single-row transactions, ~100/s; checkpoints every 1 s):"
q "SELECT 'p50 ' || round(extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY seen - at)) * 1000) || ' ms, p99 ' ||
          round(extract(epoch FROM percentile_cont(0.99) WITHIN GROUP (ORDER BY seen - at)) * 1000) || ' ms' FROM dst"
q "CALL load(1000000, 200, 1000, 0)" >/dev/null
wait_for 202000
echo "throughput (200 transactions of 1000 inserts, as fast as PostgreSQL takes them):"
q "SELECT round(200000 / extract(epoch FROM max(d.seen) - min(s.at))) || ' changes/s end to end ('
          || round(extract(epoch FROM max(s.at) - min(s.at)), 2) || ' s to write them, '
          || round(extract(epoch FROM max(d.seen) - min(s.at)), 2) || ' s until the last was in the sink)'
   FROM src s JOIN dst d USING (id) WHERE s.id >= 1000000"
