CREATE TABLE sales (
  ts       TIMESTAMP(3),
  store_id INT,
  sku      STRING,
  qty      INT,
  price    DOUBLE,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');

-- one running total over the whole stream, with an expression over the aggregate
CREATE TABLE sink (ts TIMESTAMP(3), sku STRING, revenue DOUBLE, running_total DOUBLE, share DOUBLE)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink
SELECT ts, sku, qty * price, SUM(qty * price) OVER w, qty * price / SUM(qty * price) OVER w
FROM sales
WHERE store_id <> 3
WINDOW w AS (ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);
