-- a single-file sink over the input file: refused naming both tables
CREATE TABLE t (a INT) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE o (a INT) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json',
  'sink.single-file' = 'true');
INSERT INTO o SELECT a FROM t;
