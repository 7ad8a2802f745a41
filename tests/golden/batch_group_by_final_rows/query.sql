-- batch mode: a non-windowed GROUP BY writes one final row per group to an append-only sink
-- oracle.mode: batch
SET 'execution.runtime-mode' = 'batch';
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

CREATE TABLE sink (store_id INT, channel STRING, lines BIGINT, units INT, revenue DOUBLE, customers BIGINT)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink
SELECT store_id, channel, COUNT(*), SUM(qty), SUM(qty * unit_price), COUNT(DISTINCT customer_id)
FROM events GROUP BY store_id, channel;
