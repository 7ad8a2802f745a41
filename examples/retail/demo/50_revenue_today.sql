-- Today-so-far revenue per store, updated every 10 minutes (CUMULATE, 1 day).
CREATE TABLE revenue_today (
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), store_id INT, revenue DOUBLE, receipts BIGINT
) WITH ('connector' = 'sqlite', 'path' = '${DB}', 'table-name' = 'revenue_today');

INSERT INTO revenue_today
SELECT window_start, window_end, store_id, ROUND(SUM(qty * unit_price), 2), COUNT(DISTINCT receipt_id)
FROM TABLE(CUMULATE(TABLE pos_sales, DESCRIPTOR(event_time), INTERVAL '10' MINUTE, INTERVAL '1' DAY))
GROUP BY window_start, window_end, store_id;
