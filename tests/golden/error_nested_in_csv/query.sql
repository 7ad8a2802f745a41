CREATE TABLE orders (
  order_id BIGINT,
  items ARRAY<ROW<sku STRING, qty INT>>
) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'csv');

CREATE TABLE sink (order_id BIGINT) WITH ('connector' = 'blackhole');

INSERT INTO sink SELECT order_id FROM orders;
