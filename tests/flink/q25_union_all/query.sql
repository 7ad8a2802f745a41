-- q25_union_all: UNION ALL of two projections of one stream
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
  event_time TIMESTAMP(3), src STRING, store_id INT, amount DOUBLE
) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink
SELECT event_time, 'big', store_id, qty * unit_price FROM events WHERE qty >= 5
UNION ALL
SELECT event_time, 'pricey', store_id, unit_price FROM events WHERE unit_price > 90;
