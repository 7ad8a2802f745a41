-- Today-so-far revenue per store, updated every 10 minutes (CUMULATE, 1 day). A bounded run fires
-- the rest of its last day's steps at its end with no more data in them: the steps ending after
-- the data ${END} are left out, so the last row of a day the run ends in says how far it got.
CREATE TABLE revenue_today (
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), store_id INT, revenue DOUBLE, receipts BIGINT
) WITH ('connector' = 'sqlite', 'path' = '${DB}', 'table-name' = 'revenue_today');

INSERT INTO revenue_today
SELECT * FROM (
  SELECT window_start, window_end, store_id, ROUND(SUM(qty * unit_price), 2) AS revenue,
         COUNT(DISTINCT receipt_id) AS receipts
  FROM TABLE(CUMULATE(TABLE pos_sales, DESCRIPTOR(event_time), INTERVAL '10' MINUTE, INTERVAL '1' DAY))
  GROUP BY window_start, window_end, store_id
)
WHERE window_end <= TIMESTAMP '${END}';
