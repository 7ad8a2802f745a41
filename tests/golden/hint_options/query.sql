-- /*+ OPTIONS(…) */ dynamic table options: the table is read with the hint's options merged over its WITH
-- options, and still answers to its own name (`e.store_id`, `events.sku`)
CREATE TABLE events (event_time TIMESTAMP(3), store_id INT, sku STRING)
WITH ('connector' = 'filesystem', 'path' = '/nonexistent/placeholder.ndjson', 'format' = 'json');
CREATE TABLE sink (store_id INT, sku STRING)
WITH ('connector' = 'filesystem', 'path' = '/nonexistent/placeholder-out', 'format' = 'json');
INSERT INTO sink /*+ OPTIONS('path' = '${OUTPUT}') */
SELECT e.store_id, e.sku FROM events /*+ OPTIONS('path' = '${INPUT}') */ AS e WHERE e.store_id = 6
UNION ALL
SELECT events.store_id, events.sku FROM events /*+ OPTIONS('path' = '${INPUT}') */ WHERE events.store_id = 7;
