CREATE TABLE events (event_time TIMESTAMP(3), store_id INT)
WITH ('connector' = 'filesystem', 'pth' = '${INPUT}', 'format' = 'json');
