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

CREATE TABLE sink (sku STRING, store_id INT, promo_id STRING, promo_sku STRING)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'debezium-json');

-- both sides kept: unmatched sales, promotions on SKUs nobody bought, NULL keys never matching
INSERT INTO sink
SELECT s.sku, s.store_id, p.promo_id, p.sku
FROM (SELECT * FROM sales WHERE store_id = 2) s FULL OUTER JOIN promos p ON s.sku = p.sku;
