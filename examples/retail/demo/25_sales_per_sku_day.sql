-- Sales per SKU per day (TUMBLE 1 day): revenue and units with the SKU's category. The run's best
-- sellers and its category mix are sums of these rows (the top-10 windows of 20_top_skus_10min
-- only hold a SKU while it is in a window's top 10). `whole_day` is false for the day a run ends
-- in before midnight (its data stops at ${END}).
CREATE TABLE sales_per_sku_day (
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), sku STRING, category STRING,
  revenue DOUBLE, units INT, whole_day BOOLEAN
) WITH ('connector' = 'sqlite', 'path' = '${DB}', 'table-name' = 'sales_per_sku_day');

INSERT INTO sales_per_sku_day
SELECT window_start, window_end, sku, category, ROUND(SUM(qty * unit_price), 2), SUM(qty),
       window_end <= TIMESTAMP '${END}'
FROM TABLE(TUMBLE(TABLE pos_sales, DESCRIPTOR(event_time), INTERVAL '1' DAY))
GROUP BY window_start, window_end, sku, category;
