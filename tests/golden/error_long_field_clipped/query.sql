-- a 10 KB value in an INT field: the error quotes its first 200 bytes and its size, not all of it
CREATE TABLE t (a INT) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE o (a INT) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO o SELECT a FROM t;
