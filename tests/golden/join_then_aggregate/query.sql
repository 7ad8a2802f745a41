CREATE TABLE ev (
  kind       STRING,
  ts         TIMESTAMP(3),
  sku        STRING,
  store_id   INT,
  qty        INT,
  price      DOUBLE,
  promo_id   STRING,
  pct        DOUBLE,
  start_time TIMESTAMP(3),
  end_time   TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');

-- sales and promotions arrive in one file; two views split them, so the join reads one source twice
CREATE VIEW sales AS SELECT ts, sku, store_id, qty, price FROM ev WHERE kind = 'sale';
CREATE VIEW promos AS SELECT promo_id, sku, pct, start_time, end_time FROM ev WHERE kind = 'promo';

CREATE TABLE sink (promo_id STRING, lines BIGINT, units INT, promo_units INT, revenue DOUBLE)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'debezium-json');

-- per promotion: units of its SKU in total and during the promotion (comma join, key in WHERE)
INSERT INTO sink
SELECT p.promo_id, COUNT(*) AS lines, SUM(s.qty) AS units,
       SUM(CASE WHEN s.ts >= p.start_time AND s.ts < p.end_time THEN s.qty ELSE 0 END) AS promo_units,
       SUM(s.qty * s.price) AS revenue
FROM sales s, promos p
WHERE s.sku = p.sku
GROUP BY p.promo_id;
