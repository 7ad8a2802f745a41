-- batch mode would give Flink's final rows where tillflow gives a changelog: refused, naming the key
SET 'execution.runtime-mode' = 'batch';
CREATE TABLE events (event_time TIMESTAMP(3), store_id INT)
WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
SELECT store_id, COUNT(*) FROM events GROUP BY store_id;
