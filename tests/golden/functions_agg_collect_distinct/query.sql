CREATE TABLE t (k STRING, u STRING, s STRING) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (k STRING, cs MULTISET<STRING>, cd MULTISET<STRING>, PRIMARY KEY (k) NOT ENFORCED) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'debezium-json');
INSERT INTO sink SELECT k, COLLECT(s), COLLECT(DISTINCT s) FROM t GROUP BY k;
