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

CREATE TEMPORARY VIEW web AS SELECT event_time, store_id, qty * unit_price AS amount FROM events WHERE channel = 'web';

CREATE TABLE sink (window_start TIMESTAMP(3), window_end TIMESTAMP(3), store_id INT, amount DOUBLE, n BIGINT)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink
WITH big AS (SELECT * FROM web WHERE amount > 10)
SELECT window_start, window_end, store_id, SUM(amount), COUNT(*)
FROM TABLE(TUMBLE(TABLE big, DESCRIPTOR(event_time), INTERVAL '2' MINUTE))
GROUP BY window_start, window_end, store_id;
