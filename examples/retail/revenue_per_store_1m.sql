-- Revenue and basket lines per store per minute (TUMBLE), written as Flink's filesystem sink does.
--   tillflow run examples/retail/revenue_per_store_1m.sql --var OUTPUT=/tmp/revenue
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

CREATE TABLE revenue (
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), store_id INT, lines BIGINT,
  customers BIGINT, revenue DOUBLE
) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO revenue
SELECT window_start, window_end, store_id, COUNT(*), COUNT(DISTINCT customer_id), SUM(qty * unit_price)
FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, store_id;
