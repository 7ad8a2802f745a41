-- q19_session_per_customer: SESSION windows per customer (5 min gap) with COUNT, SUM, MIN/MAX of the time and COUNT DISTINCT
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
  customer_id STRING, window_start TIMESTAMP(3), window_end TIMESTAMP(3), lines BIGINT,
  units INT, first_seen TIMESTAMP(3), last_seen TIMESTAMP(3), skus BIGINT
) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink
SELECT customer_id, window_start, window_end, COUNT(*), SUM(qty), MIN(event_time),
       MAX(event_time), COUNT(DISTINCT sku)
FROM TABLE(SESSION(TABLE events PARTITION BY customer_id, DESCRIPTOR(event_time), INTERVAL '5' MINUTE))
WHERE customer_id IS NOT NULL
GROUP BY customer_id, window_start, window_end;
