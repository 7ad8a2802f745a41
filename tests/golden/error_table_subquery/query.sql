-- Flink 2.3 does not parse `TABLE (SELECT …)` as a window TVF's table argument; tillflow refuses it naming the form Flink takes
CREATE TABLE events (event_time TIMESTAMP(3), qty INT, WATERMARK FOR event_time AS event_time)
WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');

SELECT window_start, SUM(qty)
FROM TABLE(TUMBLE(TABLE (SELECT * FROM events), DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end;
