CREATE TABLE orders (
  order_id BIGINT,
  ts TIMESTAMP(3),
  customer ROW<id BIGINT, tier STRING, address ROW<city STRING, zip STRING>>,
  items ARRAY<ROW<sku STRING, qty INT, price DOUBLE>>,
  tags ARRAY<STRING>,
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');

CREATE VIEW order_lines AS
SELECT o.order_id, o.ts, i.sku, i.qty, i.price
FROM orders AS o, UNNEST(o.items) AS i(sku, qty, price);

CREATE TABLE sink (window_start TIMESTAMP(3), window_end TIMESTAMP(3), lines BIGINT, units INT, revenue DOUBLE)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink
SELECT window_start, window_end, COUNT(*), SUM(qty), SUM(qty * price)
FROM TABLE(TUMBLE(TABLE order_lines, DESCRIPTOR(ts), INTERVAL '10' SECOND))
GROUP BY window_start, window_end;
