-- q22_dedup_last_per_store: event-time keep-last deduplication: each store's latest sale (updating: debezium-json)
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
  store_id INT, event_time TIMESTAMP(3), sku STRING, qty INT
) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'debezium-json');

INSERT INTO sink
SELECT store_id, event_time, sku, qty FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY store_id ORDER BY event_time DESC) AS rn FROM events
) WHERE rn = 1;
