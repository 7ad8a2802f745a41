-- paths as Flink writes them: file:///… for the source, the sink and the dead-letter file
CREATE TABLE events (
  event_time  TIMESTAMP(3),
  store_id    INT,
  sku         STRING,
  qty         INT,
  unit_price  DOUBLE,
  customer_id STRING,
  channel     STRING
) WITH ('connector' = 'filesystem', 'path' = 'file://${INPUT}', 'format' = 'json', 'dead-letter.path' = 'file://${DLQ}');

CREATE TABLE sink (event_time TIMESTAMP(3), sku STRING, qty INT)
WITH ('connector' = 'filesystem', 'path' = 'file://${OUTPUT}', 'format' = 'json');

INSERT INTO sink SELECT event_time, sku, qty FROM events;
