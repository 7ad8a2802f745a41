-- an unknown SET key is an error listing the close matches (Flink's keys are never ignored silently)
SET 'execution.checkpointing.intervall' = '10 s';
CREATE TABLE events (event_time TIMESTAMP(3), store_id INT)
WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
SELECT * FROM events;
