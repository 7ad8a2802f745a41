#!/usr/bin/env bash
# PostgreSQL figures (release build, a throw-away local server like the tests'):
#   append and upsert throughput into PostgreSQL at two batch sizes, and lookup-join throughput
#   with and without the partial cache. Rows come from the built-in generator (pos_sales).
#   scripts/bench-postgres.sh [ROWS]        (default 200000)
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${1:-200000}"
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
as_pg "$PGBIN/pg_ctl" -D "$D/data" -l "$D/log" -w -o "-p $PORT -k $D -c listen_addresses=127.0.0.1" start >/dev/null
trap 'as_pg "$PGBIN/pg_ctl" -D "$D/data" -m immediate stop >/dev/null 2>&1; rm -rf "$D"' EXIT
psql_() { PGOPTIONS="-c client_min_messages=warning" psql -q -h 127.0.0.1 -p "$PORT" -U bench -d postgres -c "$1" >/dev/null; }
psql_ "CREATE TABLE products (sku text PRIMARY KEY, category text, unit_cost numeric(10,2));
       INSERT INTO products SELECT 'SKU-' || lpad(g::text, 5, '0'), 'group-' || (g % 12), round((1 + g % 40) * 0.55, 2)
       FROM generate_series(1, 500) g;"
URL="jdbc:postgresql://127.0.0.1:$PORT/postgres"
SRC="CREATE TABLE pos_sales (event_time TIMESTAMP(3), receipt_id STRING, sku STRING, qty INT, unit_price DOUBLE, proc AS PROCTIME())
WITH ('connector' = 'retail', 'stream' = 'pos_sales', 'rows' = '$ROWS', 'pacing' = 'max');"

run() { # name, script
  echo "$2" > "$D/q.sql"
  local line
  line=$("$TF" run "$D/q.sql" 2>&1 | grep '^tillflow: read' || true)
  printf '%-34s %s\n' "$1" "${line#tillflow: }"
}

for batch in 100 1000; do
  psql_ "DROP TABLE IF EXISTS lines; DROP TABLE IF EXISTS sku_totals;"
  run "append, batch $batch" "$SRC
CREATE TABLE lines (event_time TIMESTAMP(3), receipt_id STRING, sku STRING, qty INT, unit_price DOUBLE)
WITH ('connector' = 'jdbc', 'url' = '$URL', 'table-name' = 'lines', 'username' = 'bench', 'sink.create-table' = 'true', 'sink.buffer-flush.max-rows' = '$batch');
INSERT INTO lines SELECT event_time, receipt_id, sku, qty, unit_price FROM pos_sales;"
  run "upsert (500 keys), batch $batch" "$SRC
CREATE TABLE sku_totals (sku STRING, lines BIGINT, revenue DOUBLE, PRIMARY KEY (sku) NOT ENFORCED)
WITH ('connector' = 'jdbc', 'url' = '$URL', 'table-name' = 'sku_totals', 'username' = 'bench', 'sink.create-table' = 'true', 'sink.buffer-flush.max-rows' = '$batch');
INSERT INTO sku_totals SELECT sku, COUNT(*), SUM(qty * unit_price) FROM pos_sales GROUP BY sku;"
done
for cache in NONE PARTIAL; do
  run "lookup join, cache $cache" "$SRC
CREATE TABLE products (sku STRING, category STRING, unit_cost DECIMAL(10, 2), PRIMARY KEY (sku) NOT ENFORCED)
WITH ('connector' = 'jdbc', 'url' = '$URL', 'table-name' = 'products', 'username' = 'bench', 'lookup.cache' = '$cache',
      'lookup.partial-cache.max-rows' = '1000', 'lookup.partial-cache.expire-after-write' = '10 min');
CREATE TABLE out (sku STRING, category STRING, unit_cost DECIMAL(10, 2)) WITH ('connector' = 'blackhole');
INSERT INTO out SELECT s.sku, p.category, p.unit_cost
FROM pos_sales AS s JOIN products FOR SYSTEM_TIME AS OF s.proc AS p ON s.sku = p.sku;"
done
