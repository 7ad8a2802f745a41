-- RFC 4180 CSV as Flink 2.3 reads it (expected.ndjson is its output, from a PyFlink run): a quoted field
-- holds newlines (LF and CRLF kept as they are), commas and doubled quotes; an empty quoted field is the
-- empty string; a quote that does not open a field (` "lead"`, `x"y`) is text
CREATE TABLE src (id INT, name STRING, tag STRING)
WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'csv');
CREATE TABLE res (id INT, name STRING, tag STRING, n INT)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO res SELECT id, name, tag, CHAR_LENGTH(name) FROM src;
