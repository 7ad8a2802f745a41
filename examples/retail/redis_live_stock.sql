-- Live values for the store apps, served from Redis: what `tillflow demo --redis URL` adds to
-- the demo's pipelines (it reads the demo's tables and its stock view: run it yourself with
-- `cat examples/retail/demo/00_tables.sql examples/retail/demo/30_stock.sql examples/retail/redis_live_stock.sql > /tmp/live.sql`
-- and the demo's --var settings plus `--var REDIS_URL=redis://host:port/db`).
-- Stock per store × SKU, the same state as the demo's stock_levels table, as a hash per key
-- (`HGETALL stock:3:SKU-00042` → on_hand, units_24h, hours_left, alert), updated as every
-- movement arrives; and each store's best sellers so far as a sorted set
-- (`ZREVRANGE top-skus:3 0 9 WITHSCORES`).
CREATE TABLE live_stock (
  store_id INT, sku STRING, on_hand INT, units_24h INT, hours_left DOUBLE, alert STRING,
  PRIMARY KEY (store_id, sku) NOT ENFORCED
) WITH ('connector' = 'redis', 'url' = '${REDIS_URL}', 'key-pattern' = 'stock:{store_id}:{sku}');

INSERT INTO live_stock
SELECT store_id, sku, on_hand, units_24h, hours_left, alert FROM stock_now;

CREATE TABLE top_skus (
  store_id INT, sku STRING, units INT,
  PRIMARY KEY (store_id, sku) NOT ENFORCED
) WITH ('connector' = 'redis', 'url' = '${REDIS_URL}', 'data-type' = 'sorted-set',
        'key-pattern' = 'top-skus:{store_id}', 'member-column' = 'sku', 'score-column' = 'units');

INSERT INTO top_skus
SELECT store_id, sku, SUM(qty) FROM pos_sales GROUP BY store_id, sku;
