-- a path of another file system is refused naming the scheme (not reported as a missing file)
CREATE TABLE events (event_time TIMESTAMP(3), store_id INT)
WITH ('connector' = 'filesystem', 'path' = 'hdfs://namenode:8020/warehouse/events', 'format' = 'json');
