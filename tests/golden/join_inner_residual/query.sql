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

CREATE TABLE sink (ts TIMESTAMP(3), sku STRING, store_id INT, qty INT, promo_id STRING, net DOUBLE)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

-- each sale during a promotion of its SKU, with the discounted price
INSERT INTO sink
SELECT s.ts, s.sku, s.store_id, s.qty, p.promo_id, s.price * (1 - p.pct) AS net
FROM sales AS s JOIN promos AS p ON s.sku = p.sku AND s.ts >= p.start_time AND s.ts < p.end_time;
