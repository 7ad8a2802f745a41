#!/usr/bin/env bash
# Redis figures (release build, a throw-away local redis-server like the tests', append-only
# file synced every second as Redis's default durable setting):
#   per-line values and a running aggregate written at two batch sizes, and lookup-join
#   throughput with and without the partial cache. Rows come from the built-in generator.
#   scripts/bench-redis.sh [ROWS]        (default 200000)
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${1:-200000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tillflow-target}"
scripts/setup.sh test >/dev/null
cargo build --release --quiet -p tillflow-cli
TF="$CARGO_TARGET_DIR/release/tillflow"
D=$(mktemp -d)
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$PORT" --bind 127.0.0.1 --dir "$D" --save "" --appendonly yes \
  --appendfsync everysec --daemonize no >/dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$D"' EXIT
for _ in $(seq 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
# a catalogue of 500 SKUs as hashes
for g in $(seq 1 500); do
  c=$(((1 + g % 40) * 55))
  printf 'HSET product:SKU-%05d sku SKU-%05d category group-%d unit_cost %d.%02d\n' "$g" "$g" $((g % 12)) $((c / 100)) $((c % 100))
done | redis-cli -p "$PORT" >/dev/null
URL="redis://127.0.0.1:$PORT"
SRC="CREATE TABLE pos_sales (event_time TIMESTAMP(3), receipt_id STRING, sku STRING, qty INT, unit_price DOUBLE, proc AS PROCTIME())
WITH ('connector' = 'retail', 'stream' = 'pos_sales', 'rows' = '$ROWS', 'pacing' = 'max');"

run() { # name, script
  echo "$2" > "$D/q.sql"
  local line
  line=$("$TF" run "$D/q.sql" 2>&1 | grep '^tillflow: read' || true)
  printf '%-34s %s\n' "$1" "${line#tillflow: }"
}

for batch in 100 1000; do
  run "per line (hash), batch $batch" "$SRC
CREATE TABLE lines (receipt_id STRING, sku STRING, qty INT, unit_price DOUBLE, PRIMARY KEY (receipt_id, sku) NOT ENFORCED)
WITH ('connector' = 'redis', 'url' = '$URL/1', 'key-pattern' = 'line:{receipt_id}:{sku}', 'sink.buffer-flush.max-rows' = '$batch');
INSERT INTO lines SELECT receipt_id, sku, qty, unit_price FROM pos_sales;"
  run "upsert (500 keys), batch $batch" "$SRC
CREATE TABLE sku_totals (sku STRING, lines BIGINT, revenue DOUBLE, PRIMARY KEY (sku) NOT ENFORCED)
WITH ('connector' = 'redis', 'url' = '$URL/2', 'key-pattern' = 'sku:{sku}', 'sink.buffer-flush.max-rows' = '$batch');
INSERT INTO sku_totals SELECT sku, COUNT(*), SUM(qty * unit_price) FROM pos_sales GROUP BY sku;"
done
for cache in NONE PARTIAL; do
  run "lookup join, cache $cache" "$SRC
CREATE TABLE products (sku STRING, category STRING, unit_cost DECIMAL(10, 2), PRIMARY KEY (sku) NOT ENFORCED)
WITH ('connector' = 'redis', 'url' = '$URL/0', 'key-pattern' = 'product:{sku}', 'lookup.cache' = '$cache',
      'lookup.partial-cache.max-rows' = '1000', 'lookup.partial-cache.expire-after-write' = '10 min');
CREATE TABLE out (sku STRING, category STRING, unit_cost DECIMAL(10, 2)) WITH ('connector' = 'blackhole');
INSERT INTO out SELECT s.sku, p.category, p.unit_cost
FROM pos_sales AS s JOIN products FOR SYSTEM_TIME AS OF s.proc AS p ON s.sku = p.sku;"
done
echo "commands the server ran: $(redis-cli -p "$PORT" info stats | grep total_commands_processed | tr -d '\r')"
