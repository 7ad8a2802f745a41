CREATE TABLE events (
  event_time  TIMESTAMP(3),
  store_id    INT,
  sku         STRING,
  qty         INT,
  unit_price  DOUBLE,
  customer_id STRING,
  channel     STRING,
  proc AS PROCTIME(),
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');

CREATE TABLE sink (channel STRING, rn BIGINT, sku STRING, qty INT, event_time TIMESTAMP(3))
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'debezium-json');

INSERT INTO sink
SELECT channel, rn, sku, qty, event_time FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY channel ORDER BY qty DESC, unit_price DESC, sku) AS rn FROM events
) WHERE rn <= 3;
