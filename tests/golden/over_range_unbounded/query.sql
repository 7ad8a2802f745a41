CREATE TABLE sales (
  ts       TIMESTAMP(3),
  store_id INT,
  sku      STRING,
  qty      INT,
  price    DOUBLE,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');

-- running totals per store in event-time order; rows with the same timestamp are peers
-- (RANGE): they see each other and get the same values; late rows are dropped
CREATE TABLE sink (store_id INT, ts TIMESTAMP(3), sku STRING, qty INT, units INT, n BIGINT, max_price DOUBLE, avg_price DOUBLE)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink
SELECT store_id, ts, sku, qty,
  SUM(qty) OVER (PARTITION BY store_id ORDER BY ts),
  COUNT(*) OVER (PARTITION BY store_id ORDER BY ts),
  MAX(price) OVER (PARTITION BY store_id ORDER BY ts),
  AVG(price) OVER (PARTITION BY store_id ORDER BY ts)
FROM sales;
