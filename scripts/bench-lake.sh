#!/usr/bin/env bash
# The data lake's figures (release build): N generated POS lines (default 5 M) from NDJSON into
# Parquet (zstd) against the same into the JSON sink, then into an Iceberg table (hadoop catalog,
# zstd Parquet data files, one snapshot) against Parquet, timed as whole processes with
# /usr/bin/time (median of 3 runs, the two commands run in turn), and the bytes each leaves on disk.
#   scripts/bench-lake.sh [ROWS]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tillflow-target}"
cargo build --release --quiet -p tillflow-cli
TF="$CARGO_TARGET_DIR/release/tillflow"
ROWS="${1:-5000000}"
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
"$TF" gen pos_sales --rows "$ROWS" --seed 42 -o "$D/pos.ndjson"
COLS="event_time TIMESTAMP(3), receipt_id STRING, store_id INT, register_id INT, sku STRING, category STRING, qty INT, unit_price DOUBLE, discount DOUBLE, customer_id STRING, channel STRING, payment STRING"
job() { # format, extra options
  cat > "$D/$1.sql" <<SQL
CREATE TABLE pos ($COLS) WITH ('connector' = 'filesystem', 'path' = '$D/pos.ndjson', 'format' = 'json');
CREATE TABLE out ($COLS) WITH ('connector' = 'filesystem', 'path' = '$D/out-$1', 'format' = '$1'$2);
INSERT INTO out SELECT * FROM pos;
SQL
}
job parquet ", 'parquet.compression' = 'ZSTD'"
job json ""
cat > "$D/iceberg.sql" <<SQL
CREATE TABLE pos ($COLS) WITH ('connector' = 'filesystem', 'path' = '$D/pos.ndjson', 'format' = 'json');
CREATE TABLE out ($COLS) WITH ('connector' = 'iceberg', 'catalog-name' = 'bench', 'catalog-type' = 'hadoop',
  'warehouse' = '$D/wh', 'write.parquet.compression-codec' = 'zstd');
INSERT INTO out SELECT * FROM pos;
SQL
# paired A B NAME_A NAME_B: runs job A and job B in turn three times (each output removed first)
# and prints, for each, the wall time, CPU time (user + system) and peak RSS of its median run
paired() {
  local a=$1 b=$2 i
  : > "$D/times-$a" && : > "$D/times-$b"
  for i in 1 2 3; do
    for j in "$a" "$b"; do
      rm -rf "$D/out-$j"
      if [ "$j" = iceberg ]; then rm -rf "$D/wh"; fi
      /usr/bin/time -f "%e %U %S %M" -a -o "$D/times-$j" "$TF" run --quiet --no-http "$D/$j.sql"
    done
  done
  for j in "$a" "$b"; do
    sort -n "$D/times-$j" | awk -v n="$j" 'NR == 2 {
      printf "%-8s median wall %.2f s, cpu %.2f s, peak %.0f MiB\n", n, $1, $2 + $3, $4 / 1024 }'
  done
}
echo "input: $ROWS POS lines, $(du -sb "$D/pos.ndjson" | cut -f1) bytes of NDJSON"
paired parquet json
echo "bytes on disk: parquet (zstd) $(du -sb "$D/out-parquet" | cut -f1), json $(du -sb "$D/out-json" | cut -f1)"
paired iceberg parquet
echo "bytes on disk: iceberg (zstd data files and metadata) $(du -sb "$D/wh" | cut -f1)"
