-- Sales per store per hour (TUMBLE 1 h): revenue, units and receipts — the dashboard's revenue
-- chart (an hour per point over days; the per-minute table above is for the last hours).
CREATE TABLE sales_per_store_hour (
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), store_id INT,
  revenue DOUBLE, units INT, receipts BIGINT
) WITH ('connector' = 'sqlite', 'path' = '${DB}', 'table-name' = 'sales_per_store_hour');

INSERT INTO sales_per_store_hour
SELECT window_start, window_end, store_id,
       ROUND(SUM(qty * unit_price), 2), SUM(qty), COUNT(DISTINCT receipt_id)
FROM TABLE(TUMBLE(TABLE pos_sales, DESCRIPTOR(event_time), INTERVAL '1' HOUR))
GROUP BY window_start, window_end, store_id;
