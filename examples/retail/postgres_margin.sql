-- Revenue and margin per category per minute: the generator's POS sales enriched with a product
-- catalogue kept in PostgreSQL (a lookup join, cached), results upserted back into PostgreSQL.
-- Set up the catalogue once (500 SKUs, as the generator's default catalogue names them):
--   psql "$PG" -c "CREATE TABLE products (sku text PRIMARY KEY, category text, unit_cost numeric(10,2));
--     INSERT INTO products SELECT 'SKU-' || lpad(g::text, 5, '0'), 'group-' || (g % 12), round((1 + g % 40) * 0.55, 2)
--     FROM generate_series(1, 500) g;"
--   tillflow run examples/retail/postgres_margin.sql --var PG_URL=jdbc:postgresql://localhost:5432/postgres \
--     --var PG_USER=postgres --var PG_PASSWORD=...
CREATE TABLE pos_sales (
  event_time TIMESTAMP(3),
  sku        STRING,
  qty        INT,
  unit_price DOUBLE,
  proc AS PROCTIME(),
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH ('connector' = 'retail', 'stream' = 'pos_sales', 'duration' = '12h', 'pacing' = 'max');

CREATE TABLE products (
  sku STRING, category STRING, unit_cost DECIMAL(10, 2),
  PRIMARY KEY (sku) NOT ENFORCED
) WITH (
  'connector' = 'jdbc', 'url' = '${PG_URL}', 'table-name' = 'products',
  'username' = '${PG_USER}', 'password' = '${PG_PASSWORD}',
  'lookup.cache' = 'PARTIAL', 'lookup.partial-cache.max-rows' = '1000',
  'lookup.partial-cache.expire-after-write' = '10 min'
);

CREATE TABLE category_margin (
  window_start TIMESTAMP(3), category STRING, revenue DOUBLE, margin DOUBLE, units INT,
  PRIMARY KEY (window_start, category) NOT ENFORCED
) WITH (
  'connector' = 'jdbc', 'url' = '${PG_URL}', 'table-name' = 'category_margin',
  'username' = '${PG_USER}', 'password' = '${PG_PASSWORD}', 'sink.create-table' = 'true'
);

-- the lookup join keeps the stream's event time, so the window runs on it
CREATE TEMPORARY VIEW enriched AS
SELECT s.event_time, s.qty, s.unit_price,
       COALESCE(p.category, 'unknown') AS category, COALESCE(p.unit_cost, 0) AS unit_cost
FROM pos_sales AS s LEFT JOIN products FOR SYSTEM_TIME AS OF s.proc AS p ON s.sku = p.sku;

INSERT INTO category_margin
SELECT window_start, category, SUM(qty * unit_price),
       SUM(qty * (unit_price - CAST(unit_cost AS DOUBLE))), SUM(qty)
FROM TABLE(TUMBLE(TABLE enriched, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, category;
