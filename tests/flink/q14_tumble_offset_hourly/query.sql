-- q14_tumble_offset_hourly: TUMBLE 1 h with a 15 min offset per store
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

CREATE TABLE sink (
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), store_id INT, lines BIGINT, revenue DOUBLE
) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink
SELECT window_start, window_end, store_id, COUNT(*), SUM(qty * unit_price)
FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(event_time), INTERVAL '1' HOUR, INTERVAL '15' MINUTE))
GROUP BY window_start, window_end, store_id;
