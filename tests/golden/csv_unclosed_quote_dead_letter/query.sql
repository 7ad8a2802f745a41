-- malformed CSV to the dead-letter file, each record once at its first line: a record over two lines
-- with a bad id (line 4), and a quote that never closes, which costs its own line only (line 7): the
-- lines after it are read on
CREATE TABLE src (id INT, name STRING, tag STRING)
WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'csv', 'dead-letter.path' = '${DLQ}');
CREATE TABLE res (id INT, name STRING, tag STRING)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO res SELECT * FROM src;
