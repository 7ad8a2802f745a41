CREATE TABLE events (
  event_time  TIMESTAMP(3),
  store_id    INT,
  sku         STRING,
  qty         INT,
  unit_price  DOUBLE,
  customer_id STRING,
  channel     STRING
) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json', 'dead-letter.path' = '${DLQ}');

CREATE TABLE sink (event_time TIMESTAMP(3), sku STRING, qty INT)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink SELECT event_time, sku, qty FROM events;
