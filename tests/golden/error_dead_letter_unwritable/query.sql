-- a dead-letter file that cannot be created: the error names the table and the option
CREATE TABLE t (a INT) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json',
  'dead-letter.path' = '/proc/nope/dlq.ndjson');
CREATE TABLE o (a INT) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO o SELECT a FROM t;
