-- STATE_TTL would expire state Flink-side: refused naming the hint
CREATE TABLE events (event_time TIMESTAMP(3), store_id INT, sku STRING)
WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
SELECT /*+ STATE_TTL('events' = '1d') */ store_id, COUNT(*) FROM events GROUP BY store_id;
