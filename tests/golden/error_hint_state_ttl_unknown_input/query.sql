-- a STATE_TTL hint whose key names no input of its SELECT is refused, as Flink refuses it, naming the inputs
CREATE TABLE events (event_time TIMESTAMP(3), store_id INT, sku STRING)
WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
SELECT /*+ STATE_TTL('orders' = '1d') */ store_id, COUNT(*) FROM events GROUP BY store_id;
