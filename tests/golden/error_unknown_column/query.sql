CREATE TABLE events (event_time TIMESTAMP(3), store_id INT)
WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (s INT) WITH ('connector' = 'blackhole');
INSERT INTO sink SELECT stor_id FROM events;
