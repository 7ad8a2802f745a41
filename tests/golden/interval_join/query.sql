-- An event-time interval join (a web sale and an app sale of the same customer within the next
-- 10 minutes), planned as Flink's interval join: bounded state, late rows by Flink's rules. The
-- input is in event-time order, so no row is late and Flink's output does not depend on how its
-- two inputs interleave; expected.ndjson came from Flink 2.3 (shared/flink-oracle).
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
  customer_id STRING, web_time TIMESTAMP(3), app_time TIMESTAMP(3), web_sku STRING, app_sku STRING
) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink
SELECT w.customer_id, CAST(w.event_time AS TIMESTAMP(3)), CAST(a.event_time AS TIMESTAMP(3)), w.sku, a.sku
FROM events AS w JOIN events AS a
  ON w.customer_id = a.customer_id
  AND a.event_time BETWEEN w.event_time - INTERVAL '1' MINUTE AND w.event_time + INTERVAL '10' MINUTE
WHERE w.channel = 'web' AND a.channel = 'app';
