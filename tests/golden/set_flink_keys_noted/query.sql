-- Flink keys that cannot change results are accepted with a notice; legacy unquoted SET and RESET work
SET 'parallelism.default' = '4';
SET table.exec.mini-batch.enabled = true;
SET 'execution.runtime-mode' = 'streaming';
SET 'table.exec.source.idle-timeout' = '5 s';
RESET 'table.exec.source.idle-timeout';
CREATE TABLE events (event_time TIMESTAMP(3), store_id INT, sku STRING)
WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (store_id INT, sku STRING)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO sink SELECT store_id, sku FROM events WHERE store_id = 6;
