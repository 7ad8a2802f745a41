CREATE TABLE t (id INT, s STRING) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (id INT, a ARRAY<STRING>, b ARRAY<STRING>, j STRING, c BOOLEAN) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO sink SELECT id, SPLIT(s, ','), SPLIT(s, '::'), ARRAY_JOIN(ARRAY[s, CAST(NULL AS STRING), 'z'], '/', '?'), ARRAY_CONTAINS(ARRAY[1, 2, CAST(NULL AS INT)], CAST(NULL AS INT)) FROM t;
