-- A GROUP BY on a subquery's window_start/window_end, renamed, over a window aggregation stays a
-- window aggregation per the same windows (Flink's cascaded window aggregation: append-only,
-- fired by the watermark), as in Nexmark's q5. Expected rows from Flink 2.3 via the oracle.
CREATE TABLE t (
  k INT,
  ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE out_t (starttime TIMESTAMP(3), endtime TIMESTAMP(3), maxn BIGINT, keys BIGINT, total BIGINT)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO out_t
SELECT C.starttime, C.endtime, MAX(C.num), COUNT(*), SUM(C.num)
FROM (
  SELECT k, COUNT(*) AS num, window_start AS starttime, window_end AS endtime
  FROM TABLE(HOP(TABLE t, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '6' SECOND))
  GROUP BY k, window_start, window_end
) AS C
GROUP BY C.starttime, C.endtime;
