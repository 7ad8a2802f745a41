CREATE TABLE sales (
  ts       TIMESTAMP(3),
  store_id INT,
  sku      STRING,
  qty      INT,
  price    DOUBLE,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');

-- the last three rows per SKU (bounded ROWS frame)
CREATE TABLE sink (sku STRING, ts TIMESTAMP(3), qty INT, units3 INT, max3 INT, min_price DOUBLE)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink
SELECT sku, ts, qty,
  SUM(qty) OVER w,
  MAX(qty) OVER w,
  MIN(price) OVER w
FROM sales
WINDOW w AS (PARTITION BY sku ORDER BY ts ROWS BETWEEN 2 PRECEDING AND CURRENT ROW);
