-- a filesystem table read and written by the same job
CREATE TABLE t (a INT) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
INSERT INTO t SELECT a + 1 FROM t;
