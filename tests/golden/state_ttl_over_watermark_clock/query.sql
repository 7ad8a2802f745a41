-- an OVER aggregate forgets a partition idle for the state TTL (here a minute of watermark): A's
-- running total starts again at 10:02:10, as Flink's OVER functions clean up idle keys
SET 'table.exec.state.ttl' = '1 min';
SET 'tillflow.state.ttl.clock' = 'watermark';
CREATE TABLE events (event_time TIMESTAMP(3), customer_id STRING, qty INT,
  WATERMARK FOR event_time AS event_time)
WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (customer_id STRING, qty INT, running BIGINT) WITH ('connector' = 'print');
INSERT INTO sink SELECT customer_id, qty,
  SUM(qty) OVER (PARTITION BY customer_id ORDER BY event_time ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
FROM events;
