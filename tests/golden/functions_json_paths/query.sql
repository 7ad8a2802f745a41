CREATE TABLE t (id INT, j STRING, p STRING) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (id INT, p1 STRING, p2 STRING, p3 STRING, p4 STRING, p5 STRING, p6 STRING, p8 STRING, p9 STRING, p10 STRING,
  n1 STRING, n2 STRING, n3 STRING, n4 STRING, n5 STRING, n6 STRING, n7 STRING, n8 STRING, n9 STRING, w1 STRING, w2 STRING, w3 STRING, w4 STRING, x1 BOOLEAN, x2 BOOLEAN, x3 BOOLEAN)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO sink SELECT id,
  JSON_VALUE(j, '$.missing' DEFAULT 'd' ON ERROR), JSON_VALUE(j, '$.a.nul' DEFAULT 'd' ON EMPTY), JSON_VALUE(j, '$.a.nul' DEFAULT 'd' ON ERROR),
  JSON_VALUE(j, '$.missing' NULL ON EMPTY DEFAULT 'd' ON ERROR), JSON_VALUE(j, 'strict $.missing' DEFAULT 'e' ON EMPTY DEFAULT 'd' ON ERROR), JSON_VALUE(j, '$.a.arr' DEFAULT 'd' ON EMPTY),
  JSON_QUERY(j, '$.missing' EMPTY ARRAY ON ERROR), JSON_QUERY(j, '$.a.nul'), JSON_QUERY(j, '$.a.nul' EMPTY OBJECT ON EMPTY),
  JSON_VALUE(j, '$.f'), JSON_VALUE(j, '$.e'), JSON_VALUE(j, '$.neg'), JSON_VALUE(j, '$.big'), JSON_VALUE(j, '$.z'), JSON_VALUE(j, '$.s'), JSON_QUERY(j, '$.s'), JSON_QUERY(j, '$'), JSON_VALUE(j, 'lax $.f'),
  JSON_QUERY(j, '$.nested[*]'), JSON_QUERY(j, '$.nested[*]' WITH WRAPPER), JSON_QUERY(j, '$.a.*' WITH WRAPPER), JSON_QUERY(j, '$.nested[0][1]' WITH CONDITIONAL ARRAY WRAPPER),
  JSON_EXISTS(j, '$.missing'), JSON_EXISTS(j, 'strict $.missing' FALSE ON ERROR), JSON_EXISTS(j, '$.a.arr[5]')
FROM t;
