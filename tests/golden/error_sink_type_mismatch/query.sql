CREATE TABLE events (event_time TIMESTAMP(3), store_id INT, sku STRING)
WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (store_id INT, sku INT) WITH ('connector' = 'blackhole');
INSERT INTO sink SELECT store_id, sku FROM events;
