CREATE TABLE t (id INT, j STRING, p STRING) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (id INT,
  v1 STRING, v2 STRING, v3 STRING, v4 STRING, v5 STRING, v6 STRING, v7 STRING, v8 STRING, v9 STRING, v10 STRING,
  vi INT, vd DOUBLE, vb BOOLEAN, vdef STRING, vdefe STRING, vdyn STRING,
  q1 STRING, q2 STRING, q3 STRING, q4 STRING, q5 STRING, q6 STRING, q7 STRING,
  e1 BOOLEAN, e2 BOOLEAN, e3 BOOLEAN, e4 BOOLEAN,
  ij BOOLEAN, ijv BOOLEAN, ijo BOOLEAN, ija BOOLEAN, ijs BOOLEAN
) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO sink SELECT id,
  JSON_VALUE(j, '$.a.b'), JSON_VALUE(j, '$.a.n'), JSON_VALUE(j, '$.a.f'), JSON_VALUE(j, '$.a.t'), JSON_VALUE(j, '$.a.arr[2].c'),
  JSON_VALUE(j, '$.a.arr'), JSON_VALUE(j, '$.a.nul'), JSON_VALUE(j, '$[2]'), JSON_VALUE(j, '$[''k e'']'), JSON_VALUE(j, '$.u'),
  JSON_VALUE(j, '$.a.n' RETURNING INT), JSON_VALUE(j, '$.a.f' RETURNING DOUBLE), JSON_VALUE(j, '$.a.t' RETURNING BOOLEAN),
  JSON_VALUE(j, '$.missing' DEFAULT 'dflt' ON EMPTY), JSON_VALUE(j, '$.a.arr' DEFAULT 'err' ON ERROR), JSON_VALUE(j, p),
  JSON_QUERY(j, '$.a'), JSON_QUERY(j, '$.a.arr'), JSON_QUERY(j, '$.a.b'), JSON_QUERY(j, '$.a.b' WITH WRAPPER), JSON_QUERY(j, '$.a.arr' WITH CONDITIONAL WRAPPER),
  JSON_QUERY(j, '$.missing' EMPTY ARRAY ON EMPTY), JSON_QUERY(j, '$'),
  JSON_EXISTS(j, '$.a.b'), JSON_EXISTS(j, '$.a.nul'), JSON_EXISTS(j, '$.zz'), JSON_EXISTS(j, '$[1]'),
  j IS JSON, j IS JSON VALUE, j IS JSON OBJECT, j IS JSON ARRAY, j IS JSON SCALAR
FROM t;
