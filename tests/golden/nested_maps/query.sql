CREATE TABLE products (
  id BIGINT,
  stock MAP<STRING, INT>,
  names MAP<STRING, STRING>,
  attrs MAP<STRING, STRING>
) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');

CREATE TABLE sink (
  id BIGINT, s2 INT, s9 INT, name1 STRING, color STRING, n_stock INT, stock MAP<STRING, INT>, names MAP<STRING, STRING>, txt STRING
) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink
SELECT id, stock['S2'], stock['S9'], names['1'], attrs['color'], CARDINALITY(stock), stock, names, CAST(names AS STRING)
FROM products;
