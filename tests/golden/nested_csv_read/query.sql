-- a ROW and an ARRAY read from csv as Flink 2.3 reads them (its output, from a PyFlink run, is expected.ndjson): fields and elements joined by ';', an empty ROW field is NULL, an empty ARRAY field is []
CREATE TABLE src (order_id BIGINT, customer ROW<id BIGINT, tier STRING>, tags ARRAY<STRING>)
WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'csv');
CREATE TABLE sink (order_id BIGINT, customer ROW<id BIGINT, tier STRING>, tags ARRAY<STRING>, n INT, cid BIGINT)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO sink SELECT order_id, customer, tags, CARDINALITY(tags), customer.id FROM src;
