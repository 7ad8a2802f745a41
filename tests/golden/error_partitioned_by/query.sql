-- PARTITIONED BY is refused naming it: ignoring it would write a flat directory with dt in every row
CREATE TABLE events (event_time TIMESTAMP(3), store_id INT)
WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE daily (store_id INT, dt STRING)
PARTITIONED BY (dt)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO daily SELECT store_id, DATE_FORMAT(event_time, 'yyyy-MM-dd') FROM events;
