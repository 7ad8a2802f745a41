CREATE TABLE events (event_time TIMESTAMP(3), store_id INT)
WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');

INSERT INTO sink SELEC store_id FROM events;
