-- Projected stock-outs per store×SKU: the on-hand after every stock movement (a running sum, OVER
-- the SKU's movements in event time), the demand forecast as the units sold over the trailing
-- 24 hours (per store and SKU most hours sell nothing, so a trailing-day rate forecasts the next
-- hours better than a periodic model would), and the hours until the shelf is empty at that rate.
-- Every sale that leaves less than the 6-hour replenishment lead time of stock is an alert.
CREATE VIEW stock_moves AS
SELECT store_id, sku, event_time, kind, qty_delta,
       60 + SUM(qty_delta) OVER (PARTITION BY store_id, sku ORDER BY event_time
                                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS on_hand
FROM inventory;

CREATE TABLE stockout_alerts (
  store_id INT, sku STRING, at TIMESTAMP(3), on_hand INT, units_per_hour DOUBLE, hours_left DOUBLE
) WITH ('connector' = 'sqlite', 'path' = '${DB}', 'table-name' = 'stockout_alerts');

INSERT INTO stockout_alerts
SELECT store_id, sku, event_time, on_hand, units_24h / 24.0, on_hand / (units_24h / 24.0)
FROM (
  SELECT store_id, sku, event_time, kind, on_hand,
         SUM(CASE WHEN kind = 'sale' THEN -qty_delta ELSE 0 END)
           OVER (PARTITION BY store_id, sku ORDER BY event_time
                 RANGE BETWEEN INTERVAL '24' HOUR PRECEDING AND CURRENT ROW) AS units_24h
  FROM stock_moves
)
WHERE kind = 'sale' AND units_24h > 0 AND on_hand / (units_24h / 24.0) < 6;
