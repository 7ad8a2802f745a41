CREATE TABLE t (ts TIMESTAMP(3), k STRING, x INT, s STRING, WATERMARK FOR ts AS ts) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (k STRING, ts TIMESTAMP(3), x INT, l1 INT, l2 INT, l3 INT, ls STRING, lsd STRING, c BIGINT)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO sink SELECT k, ts, x, LAG(x) OVER w, LAG(x, 2) OVER w, LAG(x, 1, -1) OVER w, LAG(s) OVER w, LAG(s, 1, 'none') OVER w, COUNT(*) OVER w
FROM t WINDOW w AS (PARTITION BY k ORDER BY ts);
