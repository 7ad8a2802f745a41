-- Every POS line of two generated days into the lake: hourly Hive partitions of Parquet files
-- (zstd), each hour committed with a _SUCCESS file once the watermark has passed its end, so a
-- scheduled batch job (Spark, Trino, a DuckDB script) reads only complete hours.
--   tillflow run examples/retail/lake_pos_lines.sql
--   duckdb -c "SELECT dt, hr, COUNT(*) AS lines, SUM(revenue) AS revenue
--              FROM read_parquet('out/lake/pos_lines/*/*/part-*', hive_partitioning = true)
--              GROUP BY ALL ORDER BY ALL"
-- The same directory is a table tillflow reads back, partition columns from the paths:
--   CREATE TABLE pos_lines (...) PARTITIONED BY (dt, hr) WITH ('connector' = 'filesystem',
--     'path' = 'out/lake/pos_lines', 'format' = 'parquet');
SET 'execution.checkpointing.interval' = '10 s';

CREATE TABLE pos_sales (
  event_time  TIMESTAMP(3),
  store_id    INT,
  receipt_id  STRING,
  sku         STRING,
  qty         INT,
  unit_price  DOUBLE,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH ('connector' = 'retail', 'stream' = 'pos_sales', 'duration' = '2d');

CREATE TABLE pos_lines (
  event_time  TIMESTAMP(3),
  store_id    INT,
  receipt_id  STRING,
  sku         STRING,
  qty         INT,
  revenue     DECIMAL(12, 2),
  dt          STRING,
  hr          STRING
) PARTITIONED BY (dt, hr) WITH (
  'connector' = 'filesystem',
  'path' = 'out/lake/pos_lines',
  'format' = 'parquet',
  'parquet.compression' = 'ZSTD',
  'sink.partition-commit.trigger' = 'partition-time',
  'partition.time-extractor.timestamp-pattern' = '$dt $hr:00:00',
  'sink.partition-commit.delay' = '1 h',
  'sink.partition-commit.policy.kind' = 'success-file'
);

INSERT INTO pos_lines
SELECT event_time, store_id, receipt_id, sku, qty, CAST(qty * unit_price AS DECIMAL(12, 2)),
       DATE_FORMAT(event_time, 'yyyy-MM-dd'), DATE_FORMAT(event_time, 'HH')
FROM pos_sales;
