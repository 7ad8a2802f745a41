-- The retail demo on the bundled sample (2,000 POS events, 20:00-20:50, some late and out of order):
-- the top 3 SKUs by revenue in every 10-minute window, printed as Flink's print connector would.
--   tillflow run examples/retail/demo.sql
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
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), rn BIGINT, sku STRING, revenue DOUBLE
) WITH ('connector' = 'print', 'print-identifier' = 'top-skus');

INSERT INTO top_skus
SELECT window_start, window_end, rn, sku, ROUND(revenue, 2) FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY revenue DESC, sku) AS rn
  FROM (
    SELECT window_start, window_end, sku, SUM(qty * unit_price) AS revenue
    FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(event_time), INTERVAL '10' MINUTE))
    GROUP BY window_start, window_end, sku
  )
) WHERE rn <= 3;
