-- expected rows from Flink 2.3 through the oracle: a DOUBLE infinity cast to INT saturates as
-- Java's (int) does (it gave -1 and 0), TRY_CAST likewise, NaN gives 0, and BIGINT addition
-- wraps as Java's long does (documented in docs/limits.md)
CREATE TABLE t (d STRING, b BIGINT, x DECIMAL(10,1), ts TIMESTAMP(3), n INT) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE o (c1 INT, c2 BIGINT, c3 INT, tc INT, s BIGINT) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO o SELECT CAST(CAST(d AS DOUBLE) AS INT), b + b, CAST(CAST(d AS DOUBLE) * 0 AS INT), TRY_CAST(CAST(d AS DOUBLE) AS INT), CAST(NULL AS BIGINT) FROM t;
