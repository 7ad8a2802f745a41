-- q26_window_join: window join: web and store revenue per store in the same 5-minute TUMBLE window
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
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), store_id INT, web_revenue DOUBLE,
  store_revenue DOUBLE
) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink
SELECT l.window_start, l.window_end, l.store_id, l.revenue, r.revenue
FROM (
  SELECT window_start, window_end, store_id, SUM(qty * unit_price) AS revenue
  FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(event_time), INTERVAL '5' MINUTE))
  WHERE channel = 'web' GROUP BY window_start, window_end, store_id
) AS l
JOIN (
  SELECT window_start, window_end, store_id, SUM(qty * unit_price) AS revenue
  FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(event_time), INTERVAL '5' MINUTE))
  WHERE channel = 'store' GROUP BY window_start, window_end, store_id
) AS r
ON l.window_start = r.window_start AND l.window_end = r.window_end AND l.store_id = r.store_id;
