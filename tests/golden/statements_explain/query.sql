-- EXPLAIN [PLAN FOR] prints the statement's plan as `tillflow explain` does (Flink's SQL client
-- prints EXPLAIN's text alone); nothing runs
CREATE TABLE events (
  event_time  TIMESTAMP(3),
  store_id    INT,
  qty         INT,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH ('connector' = 'filesystem', 'path' = '/nonexistent/events', 'format' = 'json');
CREATE TABLE sink (window_start TIMESTAMP(3), store_id INT, units INT)
WITH ('connector' = 'filesystem', 'path' = '/nonexistent/out', 'format' = 'json');

EXPLAIN PLAN FOR
INSERT INTO sink
SELECT window_start, store_id, SUM(qty)
FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, store_id;

EXPLAIN CHANGELOG_MODE SELECT store_id, COUNT(*) FROM events WHERE qty > 1 GROUP BY store_id;
