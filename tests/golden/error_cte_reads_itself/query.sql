-- a CTE does not see itself (WITH is not recursive in Flink SQL): the name is looked up as a table
CREATE TABLE t (a INT) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE o (x BIGINT) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO o WITH r AS (SELECT * FROM r) SELECT a FROM r;
