-- PARTITIONED BY is refused naming it where the connector has no partitions (the filesystem
-- connector writes a directory per partition value; print would ignore the clause)
CREATE TABLE events (event_time TIMESTAMP(3), store_id INT)
WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE daily (store_id INT, dt STRING)
PARTITIONED BY (dt)
WITH ('connector' = 'print');
INSERT INTO daily SELECT store_id, DATE_FORMAT(event_time, 'yyyy-MM-dd') FROM events;
