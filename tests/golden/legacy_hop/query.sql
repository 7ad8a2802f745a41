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
  ws TIMESTAMP(3), we TIMESTAMP(3), store_id INT, cnt BIGINT, qty INT
) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink
SELECT HOP_START(event_time, INTERVAL '2' MINUTE, INTERVAL '6' MINUTE), HOP_END(event_time, INTERVAL '2' MINUTE, INTERVAL '6' MINUTE),
       store_id, COUNT(*), SUM(qty)
FROM events
GROUP BY HOP(event_time, INTERVAL '2' MINUTE, INTERVAL '6' MINUTE), store_id;
