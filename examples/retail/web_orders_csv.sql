-- Windowless processing and format conversion: web orders of more than one unit, with computed
-- columns, from JSON to CSV; two INSERTs from one source run as one job (a statement set).
--   tillflow run examples/retail/web_orders_csv.sql --var OUTPUT=/tmp/web
CREATE TABLE events (
  event_time  TIMESTAMP(3),
  store_id    INT,
  sku         STRING,
  qty         INT,
  unit_price  DOUBLE,
  customer_id STRING,
  channel     STRING,
  line_total AS qty * unit_price
) WITH ('connector' = 'filesystem', 'path' = 'examples/data/events.ndjson', 'format' = 'json');

CREATE TABLE web_orders (
  event_hour TIMESTAMP(3), store_id INT, sku STRING, qty INT, line_total DOUBLE, customer STRING, size STRING
) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}/web', 'format' = 'csv');

CREATE TABLE app_orders (event_time TIMESTAMP(3), sku STRING, qty INT)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}/app', 'format' = 'json');

EXECUTE STATEMENT SET
BEGIN
  INSERT INTO web_orders
  SELECT FLOOR(event_time TO HOUR), store_id, UPPER(sku), qty, line_total,
         COALESCE(customer_id, 'anonymous'),
         CASE WHEN line_total >= 100 THEN 'large' WHEN line_total >= 20 THEN 'medium' ELSE 'small' END
  FROM events WHERE channel = 'web' AND qty > 1;
  INSERT INTO app_orders SELECT event_time, sku, qty FROM events WHERE channel = 'app';
END;
