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

CREATE TABLE sink (store_id INT, channel STRING)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'debezium-json');

INSERT INTO sink SELECT DISTINCT store_id, channel FROM events WHERE qty > 2;
