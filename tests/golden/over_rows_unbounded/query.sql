CREATE TABLE sales (
  ts       TIMESTAMP(3),
  store_id INT,
  sku      STRING,
  qty      INT,
  price    DOUBLE,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');

-- ROWS frame: each row sees the rows before it and itself, peers one at a time
CREATE TABLE sink (store_id INT, ts TIMESTAMP(3), qty INT, units INT, n BIGINT)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink
SELECT store_id, ts, qty,
  SUM(qty) OVER w,
  COUNT(*) OVER w
FROM sales
WINDOW w AS (PARTITION BY store_id ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);
