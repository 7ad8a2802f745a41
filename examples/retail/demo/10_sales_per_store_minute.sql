-- Sales per store per minute: revenue, units, receipts and average basket (TUMBLE 1 min).
CREATE TABLE sales_per_store_minute (
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), store_id INT,
  revenue DOUBLE, units INT, receipts BIGINT, avg_basket DOUBLE
) WITH ('connector' = 'sqlite', 'path' = '${DB}', 'table-name' = 'sales_per_store_minute');

INSERT INTO sales_per_store_minute
SELECT window_start, window_end, store_id,
       ROUND(SUM(qty * unit_price), 2), SUM(qty), COUNT(DISTINCT receipt_id),
       ROUND(SUM(qty * unit_price) / COUNT(DISTINCT receipt_id), 2)
FROM TABLE(TUMBLE(TABLE pos_sales, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, store_id;
