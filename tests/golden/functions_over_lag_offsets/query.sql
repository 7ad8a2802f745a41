CREATE TABLE t (ts TIMESTAMP(3), k STRING, x INT, s STRING, WATERMARK FOR ts AS ts) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (k STRING, ts TIMESTAMP(3), x INT, l1 INT, l2 INT, l0 INT, ls STRING, lk STRING, lenk INT, c BIGINT)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO sink SELECT k, ts, x, LAG(x) OVER w, LAG(x, 2) OVER w, LAG(x, 0) OVER w, LAG(s) OVER w, LAG(k, 1, 'none') OVER w, LAG(CHAR_LENGTH(k), 2, -1) OVER w, COUNT(*) OVER w
FROM t WINDOW w AS (PARTITION BY k ORDER BY ts);
