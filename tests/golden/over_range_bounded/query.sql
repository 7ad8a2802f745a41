CREATE TABLE sales (
  ts       TIMESTAMP(3),
  store_id INT,
  sku      STRING,
  qty      INT,
  price    DOUBLE,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');

-- the last 10 seconds per store (bounded RANGE frame), no PARTITION BY on the second query
CREATE TABLE sink (store_id INT, ts TIMESTAMP(3), qty INT, units10s INT, lines10s BIGINT)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink
SELECT store_id, ts, qty,
  SUM(qty) OVER (PARTITION BY store_id ORDER BY ts RANGE BETWEEN INTERVAL '10' SECOND PRECEDING AND CURRENT ROW),
  COUNT(*) OVER (PARTITION BY store_id ORDER BY ts RANGE BETWEEN INTERVAL '10' SECOND PRECEDING AND CURRENT ROW)
FROM sales;
