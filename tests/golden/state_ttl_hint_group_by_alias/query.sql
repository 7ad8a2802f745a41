-- the STATE_TTL hint names a GROUP BY's input by its alias, as Flink's does (the rows of
-- state_ttl_group_by_watermark_clock, where the TTL came from table.exec.state.ttl)
SET 'tillflow.state.ttl.clock' = 'watermark';
CREATE TABLE events (event_time TIMESTAMP(3), customer_id STRING,
  WATERMARK FOR event_time AS event_time)
WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (customer_id STRING, n BIGINT) WITH ('connector' = 'print');
INSERT INTO sink SELECT /*+ STATE_TTL('e' = '1 min') */ customer_id, COUNT(*) FROM events e GROUP BY customer_id;
