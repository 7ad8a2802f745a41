-- Flink 2.3: "Unsupported type 'BIGINT' for RETURNING in JSON_VALUE()"
CREATE TABLE t (j STRING) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (a BIGINT) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO sink SELECT JSON_VALUE(j, '$.n' RETURNING BIGINT) FROM t;
