-- Flink 2.3: "LEAD Function is not supported in stream mode"
CREATE TABLE t (ts TIMESTAMP(3), k STRING, x INT, s STRING, WATERMARK FOR ts AS ts) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (k STRING, ts TIMESTAMP(3), x INT, l1 INT)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO sink SELECT k, ts, x, LEAD(x) OVER (PARTITION BY k ORDER BY ts) FROM t;
