-- Live values for the store apps, served from Redis: what `tillflow demo --redis URL` adds to
-- the demo's pipelines (it reads the demo's tables: run it yourself with
-- `cat examples/retail/demo/00_tables.sql examples/retail/redis_live_stock.sql > /tmp/live.sql`
-- and the demo's --var settings plus `--var REDIS_URL=redis://host:port/db`).
-- Stock on hand per store × SKU, as a hash per key (`HGETALL stock:3:SKU-00042` → on_hand, sold,
-- alert), updated as every movement arrives; and each store's best sellers so far as a sorted set
-- (`ZREVRANGE top-skus:3 0 9 WITHSCORES`).
CREATE TABLE live_stock (
  store_id INT, sku STRING, on_hand INT, sold INT, alert STRING,
  PRIMARY KEY (store_id, sku) NOT ENFORCED
) WITH ('connector' = 'redis', 'url' = '${REDIS_URL}', 'key-pattern' = 'stock:{store_id}:{sku}');

INSERT INTO live_stock
SELECT store_id, sku, on_hand, sold,
       CASE WHEN on_hand <= 0 THEN 'out' WHEN on_hand <= 15 THEN 'low' ELSE 'ok' END
FROM (
  SELECT store_id, sku,
         60 + SUM(qty_delta) AS on_hand,
         SUM(CASE WHEN kind = 'sale' THEN -qty_delta ELSE 0 END) AS sold
  FROM inventory
  GROUP BY store_id, sku
);

CREATE TABLE top_skus (
  store_id INT, sku STRING, units INT,
  PRIMARY KEY (store_id, sku) NOT ENFORCED
) WITH ('connector' = 'redis', 'url' = '${REDIS_URL}', 'data-type' = 'sorted-set',
        'key-pattern' = 'top-skus:{store_id}', 'member-column' = 'sku', 'score-column' = 'units');

INSERT INTO top_skus
SELECT store_id, sku, SUM(qty) FROM pos_sales GROUP BY store_id, sku;
