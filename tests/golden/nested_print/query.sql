-- nested values printed as Flink 2.3 prints them (its output, from a PyFlink run, is expected_stdout.txt)
CREATE TABLE orders (
  order_id BIGINT,
  customer ROW<id BIGINT, tier STRING>,
  tags ARRAY<STRING>
) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (order_id BIGINT, customer ROW<id BIGINT, tier STRING>, tags ARRAY<STRING>)
WITH ('connector' = 'print');
INSERT INTO sink SELECT order_id, customer, tags FROM orders;
