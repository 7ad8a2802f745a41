CREATE TABLE t (s STRING) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (s STRING) WITH ('connector' = 'blackhole');
INSERT INTO sink SELECT REGEXP_EXTRACT(s, '(a)\1', 0) FROM t;
