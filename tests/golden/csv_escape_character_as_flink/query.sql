-- 'csv.escape-character' as Flink 2.3 reads it (expected.ndjson is its output): an escaped newline,
-- delimiter or quote is itself, \t and \n are a tab and a newline, \\ is one backslash
CREATE TABLE src (id INT, name STRING, tag STRING)
WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'csv', 'csv.escape-character' = '\');
CREATE TABLE res (id INT, name STRING, tag STRING, n INT)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO res SELECT id, name, tag, CHAR_LENGTH(name) FROM src;
