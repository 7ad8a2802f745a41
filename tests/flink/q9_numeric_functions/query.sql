-- q9_numeric_functions: arithmetic, ROUND, FLOOR, CEIL, ABS, MOD, POWER, casts to DECIMAL and INT (stateless)
CREATE TABLE events (
  event_time  TIMESTAMP(3),
  store_id    INT,
  sku         STRING,
  qty         INT,
  unit_price  DOUBLE,
  customer_id STRING,
  channel     STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');

CREATE TABLE sink (
  sku STRING, total DOUBLE, r2 DOUBLE, r0 DOUBLE, fl DOUBLE, ce DOUBLE, neg DOUBLE, m INT,
  pw DOUBLE, dec_price DECIMAL(10, 2), int_price INT, ratio DOUBLE, big BIGINT, half DOUBLE
) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink
SELECT sku,
       qty * unit_price,
       ROUND(qty * unit_price, 2),
       ROUND(unit_price, 0),
       FLOOR(unit_price),
       CEIL(unit_price),
       ABS(unit_price - 50),
       MOD(store_id * 7, 5),
       POWER(qty, 2),
       CAST(unit_price AS DECIMAL(10, 2)),
       CAST(unit_price AS INT),
       unit_price / qty,
       CAST(qty AS BIGINT) * 1000000000,
       qty / 2.0
FROM events
WHERE store_id = 4;
