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

CREATE TABLE sink (customer_id STRING, sku STRING, event_time TIMESTAMP(3))
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink
SELECT customer_id, sku, event_time FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY proc ASC) AS rn FROM events
) WHERE rn = 1;
