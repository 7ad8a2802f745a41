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
  ws TIMESTAMP(3), we TIMESTAMP(3), channel STRING, cnt BIGINT, avg_qty INT, min_price DOUBLE, max_sku STRING
) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink
SELECT TUMBLE_START(event_time, INTERVAL '5' MINUTE), TUMBLE_END(event_time, INTERVAL '5' MINUTE), channel,
       COUNT(*), AVG(qty), MIN(unit_price), MAX(sku)
FROM events
GROUP BY TUMBLE(event_time, INTERVAL '5' MINUTE), channel;
