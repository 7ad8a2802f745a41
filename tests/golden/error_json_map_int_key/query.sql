-- Flink's json format refuses a MAP whose keys are not strings (JSON object keys are text): so does tillflow
CREATE TABLE products (id BIGINT, names MAP<INT, STRING>)
WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (id BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO sink SELECT id FROM products;
