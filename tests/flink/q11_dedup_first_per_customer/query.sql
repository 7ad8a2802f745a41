-- q11_dedup_first_per_customer: rowtime deduplication: each customer's first purchase (updating: debezium-json)
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
  customer_id STRING, event_time TIMESTAMP(3), store_id INT, sku STRING
) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'debezium-json');

INSERT INTO sink
SELECT customer_id, event_time, store_id, sku
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY event_time ASC) AS rn
  FROM events
  WHERE customer_id IS NOT NULL
)
WHERE rn = 1;
