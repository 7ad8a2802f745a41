-- batch mode: keep-last deduplication and a Top-N over a running aggregate give final rows
-- oracle.mode: batch
SET 'execution.runtime-mode' = 'batch';
CREATE TABLE events (
  event_time  TIMESTAMP(3),
  store_id    INT,
  sku         STRING,
  qty         INT,
  unit_price  DOUBLE,
  customer_id STRING,
  channel     STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');

CREATE TABLE last_sale (store_id INT, event_time TIMESTAMP(3), sku STRING)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO last_sale
SELECT store_id, event_time, sku FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY store_id ORDER BY event_time DESC, sku DESC) AS rn FROM events
) WHERE rn = 1;
