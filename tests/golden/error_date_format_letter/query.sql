CREATE TABLE t (ts TIMESTAMP(3)) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (s STRING) WITH ('connector' = 'blackhole');
INSERT INTO sink SELECT DATE_FORMAT(ts, 'yyyy-bb') FROM t;
