-- a hint's options are validated like the table's WITH options; the error names the user's table
CREATE TABLE events (event_time TIMESTAMP(3), store_id INT, sku STRING)
WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
SELECT store_id FROM events /*+ OPTIONS('pth' = 'x') */;
