-- Flink's json format writes a MULTISET as a JSON object of element → count and refuses non-string
-- elements ("JSON format doesn't support non-string as key type of map. The type is: MULTISET<INT>"): so does tillflow
CREATE TABLE t (id BIGINT, m MULTISET<INT>)
WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (id BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO sink SELECT id FROM t;
