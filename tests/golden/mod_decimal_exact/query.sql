-- MOD of decimals is exact (it went through DOUBLE)
CREATE TABLE t (d STRING, b BIGINT, x DECIMAL(10,1), ts TIMESTAMP(3), n INT) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE o (m DECIMAL(10,1), k DECIMAL(10,1)) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO o SELECT MOD(x, CAST(2 AS DECIMAL(10,1))), MOD(-x, CAST(0.7 AS DECIMAL(10,1))) FROM t;
