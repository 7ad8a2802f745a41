-- batch mode: windows see every row (no late drops), and the top 5 by revenue are kept, sorted
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

CREATE TABLE sink (window_start TIMESTAMP(3), store_id INT, cnt BIGINT, revenue DOUBLE)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink
SELECT window_start, store_id, COUNT(*) AS cnt, SUM(qty * unit_price) AS revenue
FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, store_id
ORDER BY revenue DESC, window_start, store_id
LIMIT 5;
