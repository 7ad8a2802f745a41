-- a 1 ms slide over an hour: 3.6 million slides per window, refused when planned
CREATE TABLE t (ts TIMESTAMP(3), a INT, WATERMARK FOR ts AS ts) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE o (w TIMESTAMP(3), n BIGINT) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO o SELECT window_end, COUNT(*)
FROM TABLE(HOP(TABLE t, DESCRIPTOR(ts), INTERVAL '0.001' SECOND, INTERVAL '1' HOUR))
GROUP BY window_start, window_end;
