CREATE TABLE t (k STRING, x INT) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (k STRING, n BIGINT, sp DOUBLE, vs BIGINT, fv STRING, lv STRING, la STRING, aa ARRAY<BIGINT>, fvx BIGINT, lvx BIGINT, PRIMARY KEY (k) NOT ENFORCED)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'debezium-json');
INSERT INTO sink SELECT k, COUNT(*), STDDEV_POP(CAST(c AS DOUBLE)), VAR_SAMP(c), FIRST_VALUE(sx), LAST_VALUE(sx), LISTAGG(sx), ARRAY_AGG(c), FIRST_VALUE(c), LAST_VALUE(c)
FROM (SELECT k, x, COUNT(*) AS c, CAST(COUNT(*) AS STRING) || '-' || CAST(x AS STRING) AS sx FROM t GROUP BY k, x) GROUP BY k;
