-- INSERT INTO t VALUES …: literal rows cast to the sink's columns
CREATE TABLE sink (id BIGINT, name STRING, price DOUBLE)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink VALUES (1, 'tea', 2.5), (2, 'coffee', 3), (3, CAST(NULL AS STRING), CAST(NULL AS DOUBLE));
