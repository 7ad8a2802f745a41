-- a function with the wrong number of arguments, named as in SQL
CREATE TABLE t (a INT) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE o (s STRING) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO o SELECT LEFT('abc') FROM t;
