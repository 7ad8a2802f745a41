-- q13_hop_distinct_per_channel: HOP 10 min / 5 min per channel: COUNT DISTINCT, MIN, MAX, AVG, FILTER
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
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), channel STRING, customers BIGINT,
  lines BIGINT, big_lines BIGINT, min_price DOUBLE, max_price DOUBLE, avg_qty INT, avg_price DOUBLE
) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink
SELECT window_start, window_end, channel,
       COUNT(DISTINCT customer_id), COUNT(*), COUNT(*) FILTER (WHERE qty >= 3),
       MIN(unit_price), MAX(unit_price), AVG(qty), AVG(unit_price)
FROM TABLE(HOP(TABLE events, DESCRIPTOR(event_time), INTERVAL '5' MINUTE, INTERVAL '10' MINUTE))
GROUP BY window_start, window_end, channel;
