-- The top 3 SKUs by revenue of every store, kept up to date (a running GROUP BY, then Top-N per
-- store), on four workers: rows are hashed on (store_id, sku) to the aggregating workers, on
-- store_id to the ranking ones, and on the sink's primary key to four writers of part files,
-- each key's changes in order (a debezium-json changelog; replayed, it is the table).
--   tillflow run examples/retail/top_skus_per_store_parallel.sql --var OUTPUT=/tmp/top_skus
--   tillflow explain … shows the exchanges; --parallelism N overrides the SET below.
SET 'parallelism.default' = '4';

CREATE TABLE events (
  event_time  TIMESTAMP(3),
  store_id    INT,
  sku         STRING,
  qty         INT,
  unit_price  DOUBLE,
  customer_id STRING,
  channel     STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH ('connector' = 'filesystem', 'path' = 'examples/data/events.ndjson', 'format' = 'json');

CREATE TABLE top_skus (
  store_id INT, rn BIGINT, sku STRING, revenue DOUBLE,
  PRIMARY KEY (store_id, rn) NOT ENFORCED
) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'debezium-json');

INSERT INTO top_skus
SELECT store_id, rn, sku, revenue FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY store_id ORDER BY revenue DESC, sku) AS rn
  FROM (
    SELECT store_id, sku, SUM(qty * unit_price) AS revenue
    FROM events
    GROUP BY store_id, sku
  )
) WHERE rn <= 3;
