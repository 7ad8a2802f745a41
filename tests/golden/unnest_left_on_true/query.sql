CREATE TABLE orders (
  order_id BIGINT,
  ts TIMESTAMP(3),
  customer ROW<id BIGINT, tier STRING, address ROW<city STRING, zip STRING>>,
  items ARRAY<ROW<sku STRING, qty INT, price DOUBLE>>,
  tags ARRAY<STRING>,
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');

CREATE TABLE tagged (order_id BIGINT, tag STRING, tier STRING)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO tagged
SELECT order_id, tag, customer.tier
FROM orders LEFT JOIN UNNEST(tags) AS t(tag) ON TRUE;
