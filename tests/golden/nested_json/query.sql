CREATE TABLE orders (
  order_id BIGINT,
  ts TIMESTAMP(3),
  customer ROW<id BIGINT, tier STRING, address ROW<city STRING, zip STRING>>,
  items ARRAY<ROW<sku STRING, qty INT, price DOUBLE>>,
  tags ARRAY<STRING>,
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');

CREATE TABLE sink (
  order_id BIGINT,
  customer_id BIGINT,
  tier STRING,
  city STRING,
  first_sku STRING,
  first_qty INT,
  n_items INT,
  second_tag STRING,
  n_tags INT,
  customer ROW<id BIGINT, tier STRING, address ROW<city STRING, zip STRING>>,
  items ARRAY<ROW<sku STRING, qty INT, price DOUBLE>>,
  pair ROW<a BIGINT, b STRING>,
  arr ARRAY<INT>
) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink
SELECT o.order_id, o.customer.id, customer.tier, o.customer.address.city,
       items[1].sku, o.items[1].qty, CARDINALITY(items), tags[2], CARDINALITY(tags),
       customer, items, ROW(order_id, customer.tier), ARRAY[1, 2, CAST(order_id AS INT)]
FROM orders AS o;
