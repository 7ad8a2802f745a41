-- Running on-hand stock per store×SKU (every store starts with 60 units of every SKU), with a
-- low-stock flag and the hours until a stock-out at the SKU's sales rate so far. An updating
-- result: upserted into SQLite on (store_id, sku).
CREATE TABLE stock_levels (
  store_id INT, sku STRING, on_hand INT, sold INT, alert STRING, hours_to_stockout DOUBLE,
  PRIMARY KEY (store_id, sku) NOT ENFORCED
) WITH ('connector' = 'sqlite', 'path' = '${DB}', 'table-name' = 'stock_levels');

INSERT INTO stock_levels
SELECT store_id, sku, on_hand, sold,
       CASE WHEN on_hand <= 0 THEN 'out' WHEN on_hand <= 15 THEN 'low' ELSE 'ok' END,
       CASE WHEN sold > 0 AND span_min > 0 THEN ROUND(on_hand / (sold / (span_min / 60.0)), 1) END
FROM (
  SELECT store_id, sku,
         60 + SUM(qty_delta) AS on_hand,
         SUM(CASE WHEN kind = 'sale' THEN -qty_delta ELSE 0 END) AS sold,
         TIMESTAMPDIFF(MINUTE, MIN(event_time), MAX(event_time)) AS span_min
  FROM inventory
  GROUP BY store_id, sku
);
