-- a query hint that only steers Flink's join strategy is accepted with a notice
CREATE TABLE events (event_time TIMESTAMP(3), store_id INT, sku STRING)
WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE stores (store_id INT, region STRING)
WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (store_id INT, sku STRING)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO sink SELECT /*+ BROADCAST(stores) */ e.store_id, e.sku
FROM events e JOIN stores s ON e.store_id = s.store_id WHERE e.store_id = 7;
