-- 'automatic' would pick batch or streaming from the sources, which tillflow does not decide: refused, naming the key
SET 'execution.runtime-mode' = 'automatic';
CREATE TABLE events (event_time TIMESTAMP(3), store_id INT)
WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
SELECT store_id, COUNT(*) FROM events GROUP BY store_id;
