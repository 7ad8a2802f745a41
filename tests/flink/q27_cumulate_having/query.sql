-- q27_cumulate_having: CUMULATE (10 min steps of a 1 h window) per store with HAVING
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
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), store_id INT, units INT, customers BIGINT
) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink
SELECT window_start, window_end, store_id, SUM(qty), COUNT(DISTINCT customer_id)
FROM TABLE(CUMULATE(TABLE events, DESCRIPTOR(event_time), INTERVAL '10' MINUTE, INTERVAL '1' HOUR))
GROUP BY window_start, window_end, store_id
HAVING SUM(qty) >= 40;
