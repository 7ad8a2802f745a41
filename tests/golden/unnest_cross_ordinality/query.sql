CREATE TABLE orders (
  order_id BIGINT,
  ts TIMESTAMP(3),
  customer ROW<id BIGINT, tier STRING, address ROW<city STRING, zip STRING>>,
  items ARRAY<ROW<sku STRING, qty INT, price DOUBLE>>,
  tags ARRAY<STRING>,
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');

CREATE TABLE lines (order_id BIGINT, sku STRING, qty INT, amount DOUBLE, pos BIGINT)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO lines
SELECT o.order_id, i.sku, i.qty, i.qty * i.price, i.pos
FROM orders AS o CROSS JOIN UNNEST(o.items) WITH ORDINALITY AS i(sku, qty, price, pos)
WHERE i.sku IS NOT NULL;
