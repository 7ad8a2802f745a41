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

CREATE TEMPORARY VIEW per_minute AS
SELECT window_start AS minute_start, window_time AS minute_time, store_id, SUM(qty) AS units
FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, window_time, store_id;

CREATE TABLE sink (window_start TIMESTAMP(3), window_end TIMESTAMP(3), store_id INT, units INT, minutes BIGINT)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink
SELECT window_start, window_end, store_id, SUM(units), COUNT(*)
FROM TABLE(TUMBLE(TABLE per_minute, DESCRIPTOR(minute_time), INTERVAL '5' MINUTE))
GROUP BY window_start, window_end, store_id;
