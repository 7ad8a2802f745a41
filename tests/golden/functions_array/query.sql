CREATE TABLE t (id INT, s STRING, sep STRING, x STRING, arr ARRAY<STRING>) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (id INT, sp ARRAY<STRING>, spc ARRAY<STRING>, c1 BOOLEAN, c2 BOOLEAN, c3 BOOLEAN, j1 STRING, j2 STRING, j3 STRING, p1 INT, p2 INT, d1 ARRAY<STRING>, e1 STRING, n1 INT)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO sink SELECT id, SPLIT(s, sep), SPLIT(s, ','), ARRAY_CONTAINS(arr, x), ARRAY_CONTAINS(arr, 'x'), ARRAY_CONTAINS(SPLIT(s, sep), x),
  ARRAY_JOIN(arr, '-'), ARRAY_JOIN(arr, '-', 'N'), ARRAY_JOIN(SPLIT(s, sep), '+'),
  ARRAY_POSITION(arr, 'x'), ARRAY_POSITION(SPLIT(s, sep), x), ARRAY_DISTINCT(arr), ELEMENT(ARRAY[x]), CARDINALITY(SPLIT(s, sep))
FROM t;
