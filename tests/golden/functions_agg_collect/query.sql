CREATE TABLE t (k STRING, u STRING, s STRING) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (k STRING, n BIGINT, cs MULTISET<STRING>, cu MULTISET<STRING>, PRIMARY KEY (k) NOT ENFORCED) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'debezium-json');
INSERT INTO sink SELECT k, SUM(c), COLLECT(ls), COLLECT(CAST(c AS STRING))
FROM (SELECT k, u, COUNT(*) AS c, LAST_VALUE(s) AS ls FROM t GROUP BY k, u) GROUP BY k;
