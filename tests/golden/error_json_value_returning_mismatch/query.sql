-- Flink 2.3 fails the job (ClassCastException: String cannot be cast to Integer), ON ERROR notwithstanding
CREATE TABLE t (j STRING) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (a INT) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO sink SELECT JSON_VALUE(j, '$.s' RETURNING INT DEFAULT 0 ON ERROR) FROM t;
