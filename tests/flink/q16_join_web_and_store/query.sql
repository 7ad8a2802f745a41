-- q16_join_web_and_store: inner regular join of two filtered views of one stream on two keys, residual condition
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
  customer_id STRING, sku STRING, web_time TIMESTAMP(3), store_time TIMESTAMP(3), store_id INT,
  qty_total INT
) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink
SELECT w.customer_id, w.sku, w.event_time, s.event_time, s.store_id, w.qty + s.qty
FROM (SELECT * FROM events WHERE channel = 'web') AS w
JOIN (SELECT * FROM events WHERE channel = 'store') AS s
  ON w.customer_id = s.customer_id AND w.sku = s.sku AND s.qty >= w.qty;
