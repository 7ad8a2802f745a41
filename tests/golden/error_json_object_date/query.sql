-- Flink 2.3 refuses it too: "Type 'DATE' is not scalar or cannot be converted into JSON"
CREATE TABLE t (id INT, d DATE) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (id INT, o STRING) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO sink SELECT id, JSON_OBJECT('d' VALUE d) FROM t;
