-- a hostile MULTISET count in the input is a malformed record naming the field, not an exhausted memory
CREATE TABLE t (id INT, m MULTISET<STRING>) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (id INT, m MULTISET<STRING>) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO sink SELECT id, m FROM t;
