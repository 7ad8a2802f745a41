-- Margin per category that follows the product catalogue as it changes in PostgreSQL: the
-- catalogue is read by change data capture (no Debezium, no Kafka Connect), joined with the
-- generator's POS sales, and when a cost changes in PostgreSQL every category's margin is
-- recomputed from it (a regular join retracts what the old cost gave).
-- PostgreSQL needs wal_level = logical (postgresql.conf, then restart) and a user with REPLICATION.
-- Set up the catalogue once (500 SKUs, as the generator's default catalogue names them):
--   psql "$PG" -c "CREATE TABLE products (sku text PRIMARY KEY, category text, unit_cost numeric(10,2));
--     INSERT INTO products SELECT 'SKU-' || lpad(g::text, 5, '0'), 'group-' || (g % 12), round((1 + g % 40) * 0.55, 2)
--     FROM generate_series(1, 500) g;"
--   tillflow run examples/retail/cdc_margin.sql --var PG_HOST=localhost --var PG_PORT=5432 \
--     --var PG_DB=postgres --var PG_USER=postgres --var PG_PASSWORD=...
-- then, while it runs:  psql "$PG" -c "UPDATE products SET unit_cost = unit_cost * 1.2 WHERE category = 'group-3'"
-- and watch group-3's margin fall. When the job is retired for good, drop its replication slot:
--   psql "$PG" -c "SELECT pg_drop_replication_slot('margin_products')"
CREATE TABLE pos_sales (
  event_time TIMESTAMP(3),
  sku        STRING,
  qty        INT,
  unit_price DOUBLE
) WITH ('connector' = 'retail', 'stream' = 'pos_sales', 'pacing' = '600x');

CREATE TABLE products (
  sku STRING, category STRING, unit_cost DECIMAL(10, 2),
  PRIMARY KEY (sku) NOT ENFORCED
) WITH (
  'connector' = 'postgres-cdc',
  'hostname' = '${PG_HOST}', 'port' = '${PG_PORT}', 'database-name' = '${PG_DB}',
  'username' = '${PG_USER}', 'password' = '${PG_PASSWORD}',
  'schema-name' = 'public', 'table-name' = 'products', 'slot.name' = 'margin_products'
);

CREATE TABLE margin_per_category (
  category STRING, units BIGINT, revenue DOUBLE, cost DOUBLE, margin DOUBLE,
  PRIMARY KEY (category) NOT ENFORCED
) WITH ('connector' = 'print');

INSERT INTO margin_per_category
SELECT p.category, SUM(s.qty), SUM(s.qty * s.unit_price), SUM(s.qty * p.unit_cost),
       SUM(s.qty * s.unit_price) - SUM(s.qty * p.unit_cost)
FROM pos_sales AS s JOIN products AS p ON s.sku = p.sku
GROUP BY p.category;
