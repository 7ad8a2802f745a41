-- the dead-letter file is the input: refused before anything is opened (it emptied the input, #17)
CREATE TABLE t (a INT) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json',
  'dead-letter.path' = '${INPUT}');
CREATE TABLE o (a INT) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO o SELECT a FROM t;
