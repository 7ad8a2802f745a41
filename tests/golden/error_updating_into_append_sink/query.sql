CREATE TABLE events (event_time TIMESTAMP(3), store_id INT)
WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (store_id INT, n BIGINT) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO sink SELECT store_id, COUNT(*) FROM events GROUP BY store_id;
