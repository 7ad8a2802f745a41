-- table.exec.state.ttl on the watermark's clock: a customer not seen for a minute of event time is
-- forgotten without a row, as Flink forgets idle state, and counts from 1 again with +I (B and A at
-- 10:02); A's rows 20 s apart keep it alive. Each entry's time is the clock when it was written.
SET 'table.exec.state.ttl' = '1 min';
SET 'tillflow.state.ttl.clock' = 'watermark';
CREATE TABLE events (event_time TIMESTAMP(3), customer_id STRING,
  WATERMARK FOR event_time AS event_time)
WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (customer_id STRING, n BIGINT) WITH ('connector' = 'print');
INSERT INTO sink SELECT customer_id, COUNT(*) FROM events GROUP BY customer_id;
