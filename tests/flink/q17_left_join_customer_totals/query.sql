-- q17_left_join_customer_totals: LEFT JOIN of app sales with each customer's running web total (updating right side: debezium-json)
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
  customer_id STRING, event_time TIMESTAMP(3), sku STRING, web_lines BIGINT, web_units INT
) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'debezium-json');

INSERT INTO sink
SELECT a.customer_id, a.event_time, a.sku, t.lines, t.units
FROM (SELECT * FROM events WHERE channel = 'app' AND store_id <= 3) AS a
LEFT JOIN (
  SELECT customer_id, COUNT(*) AS lines, SUM(qty) AS units
  FROM events WHERE channel = 'web' GROUP BY customer_id
) AS t ON a.customer_id = t.customer_id;
