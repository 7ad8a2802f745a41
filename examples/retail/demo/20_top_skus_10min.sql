-- Top-10 SKUs by revenue per 10 minutes (window Top-N).
CREATE TABLE top_skus_10min (
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), rn BIGINT, sku STRING, revenue DOUBLE, units INT
) WITH ('connector' = 'sqlite', 'path' = '${DB}', 'table-name' = 'top_skus_10min');

INSERT INTO top_skus_10min
SELECT window_start, window_end, rn, sku, ROUND(revenue, 2), units FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY revenue DESC, sku) AS rn
  FROM (
    SELECT window_start, window_end, sku, SUM(qty * unit_price) AS revenue, SUM(qty) AS units
    FROM TABLE(TUMBLE(TABLE pos_sales, DESCRIPTOR(event_time), INTERVAL '10' MINUTE))
    GROUP BY window_start, window_end, sku
  )
) WHERE rn <= 10;
