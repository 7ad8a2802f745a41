-- tillflow's COUNT_WINDOW: every 5 sales of a store, in arrival order (no Flink equivalent;
-- expected.ndjson was computed independently from the input by a short script).
CREATE TABLE events (
  event_time  TIMESTAMP(3),
  store_id    INT,
  sku         STRING,
  qty         INT,
  unit_price  DOUBLE,
  customer_id STRING,
  channel     STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');

CREATE TABLE sink (first_ts TIMESTAMP(3), last_ts TIMESTAMP(3), store_id INT, n BIGINT, units INT)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink
SELECT window_start, window_end, store_id, COUNT(*), SUM(qty)
FROM TABLE(COUNT_WINDOW(TABLE events PARTITION BY store_id, DESCRIPTOR(event_time), 5))
GROUP BY window_start, window_end, store_id;
