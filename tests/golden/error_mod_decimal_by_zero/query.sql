-- MOD of decimals by zero fails the job, as Flink's does (ArithmeticException: Division by zero);
-- it was reported as a DECIMAL cast of NaN
CREATE TABLE t (d STRING, b BIGINT, x DECIMAL(10,1), ts TIMESTAMP(3), n INT) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE o (m DECIMAL(10,1)) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO o SELECT MOD(x, CAST(n AS DECIMAL(10,1))) FROM t;
