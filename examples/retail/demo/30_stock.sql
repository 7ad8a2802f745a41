-- Stock per store×SKU, and its alerts, from one state: the on-hand after every stock movement (a
-- running sum OVER the SKU's movements in event time, from the opening stocktake on), the demand
-- as the units sold over the trailing 24 hours (per store and SKU most hours sell nothing, so a
-- trailing-day rate forecasts the next hours better than a periodic model would), and the hours
-- of cover left at that rate. A store×SKU is 'out' at 0 on hand and 'low' with less cover than
-- the 6-hour replenishment lead time: an order placed now would arrive too late.
--   stock_levels    each store×SKU's latest state (a keep-last deduplication), upserted into
--                   SQLite on (store_id, sku): the stock view a store manager reads;
--   stockout_alerts every sale that leaves less than the lead time of cover, as it happens.
CREATE VIEW stock_moves AS
SELECT store_id, sku, event_time, kind, qty_delta,
       SUM(qty_delta) OVER (PARTITION BY store_id, sku ORDER BY event_time
                            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS on_hand
FROM inventory;

CREATE VIEW stock_cover AS
SELECT store_id, sku, event_time, kind, on_hand, units_24h,
       CASE WHEN units_24h > 0 THEN ROUND(CAST(on_hand AS DOUBLE) * 24 / units_24h, 1) END AS hours_left
FROM (
  SELECT store_id, sku, event_time, kind, on_hand,
         SUM(CASE WHEN kind = 'sale' THEN -qty_delta ELSE 0 END)
           OVER (PARTITION BY store_id, sku ORDER BY event_time
                 RANGE BETWEEN INTERVAL '24' HOUR PRECEDING AND CURRENT ROW) AS units_24h
  FROM stock_moves
);

CREATE VIEW stock_now AS
SELECT store_id, sku, event_time AS as_of, on_hand, units_24h, hours_left,
       CASE WHEN on_hand <= 0 THEN 'out' WHEN hours_left < 6 THEN 'low' ELSE 'ok' END AS alert
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY store_id, sku ORDER BY event_time DESC) AS rn
  FROM stock_cover
)
WHERE rn = 1;

CREATE TABLE stock_levels (
  store_id INT, sku STRING, as_of TIMESTAMP(3), on_hand INT, units_24h INT, hours_left DOUBLE,
  alert STRING,
  PRIMARY KEY (store_id, sku) NOT ENFORCED
) WITH ('connector' = 'sqlite', 'path' = '${DB}', 'table-name' = 'stock_levels');

INSERT INTO stock_levels SELECT * FROM stock_now;

CREATE TABLE stockout_alerts (
  store_id INT, sku STRING, at TIMESTAMP(3), on_hand INT, units_per_hour DOUBLE, hours_left DOUBLE
) WITH ('connector' = 'sqlite', 'path' = '${DB}', 'table-name' = 'stockout_alerts');

INSERT INTO stockout_alerts
SELECT store_id, sku, event_time, on_hand, ROUND(units_24h / 24.0, 2), hours_left
FROM stock_cover
WHERE kind = 'sale' AND hours_left < 6;
