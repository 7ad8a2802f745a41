-- Flink 2.3 fails this job ("Unexpected character ('b'): Expected column separator character"): text after a
-- closing quote is malformed, not glued to the field
CREATE TABLE src (id INT, name STRING, tag STRING)
WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'csv');
CREATE TABLE res (id INT, name STRING, tag STRING)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO res SELECT * FROM src;
