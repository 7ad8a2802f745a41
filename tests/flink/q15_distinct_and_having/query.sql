-- q15_distinct_and_having: SELECT DISTINCT and GROUP BY ... HAVING (updating: debezium-json)
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
  channel STRING, store_id INT, customers BIGINT, units INT
) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'debezium-json');

INSERT INTO sink
SELECT channel, store_id, COUNT(DISTINCT customer_id), SUM(qty)
FROM events
GROUP BY channel, store_id
HAVING SUM(qty) > 100;
