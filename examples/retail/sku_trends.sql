-- Trending SKUs: units per SKU over the last 7 days (a HOP window sliding by a day, so the weekly
-- pattern every SKU shares cancels out), smoothed by Holt's linear method (HW_LEVEL / HW_TREND with
-- a season of 1 and no seasonal smoothing); growth = trend ÷ level, per day. The SKUs whose level
-- rises fastest are the trends to act on (order more, extend the promotion). Windows reaching back
-- before or past the data are partial and left out.
--
--   tillflow run examples/retail/sku_trends.sql --var DB=trends.db
--   sqlite3 trends.db "SELECT sku, growth FROM sku_trends WHERE week_end = '2024-03-15 00:00:00.000' ORDER BY growth DESC LIMIT 5"
--
-- The generator makes SKU-00040 trend from 2024-03-05 (+50 % of its base demand per day).
CREATE TABLE pos_sales (
  event_time TIMESTAMP(3),
  sku        STRING,
  qty        INT,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH ('connector' = 'retail', 'stream' = 'pos_sales', 'seed' = '42', 'duration' = '14d',
        'pacing' = 'max', 'trend.sku' = '40', 'trend.start' = '2024-03-05 00:00:00',
        'trend.growth' = '0.5');

CREATE VIEW sku_weekly AS
SELECT sku, window_start, window_end, window_time, SUM(qty) AS units
FROM TABLE(HOP(TABLE pos_sales, DESCRIPTOR(event_time), INTERVAL '1' DAY, INTERVAL '7' DAY))
GROUP BY sku, window_start, window_end, window_time;

CREATE TABLE sku_trends (
  sku STRING, week_end TIMESTAMP(3), units INT, level DOUBLE, trend DOUBLE, growth DOUBLE
) WITH ('connector' = 'sqlite', 'path' = '${DB}', 'table-name' = 'sku_trends');

INSERT INTO sku_trends
SELECT sku, window_end, units, level, trend, trend / level
FROM (
  SELECT sku, window_end, units,
         HW_LEVEL(units, 0.5, 0.3, 0, 1) OVER w AS level,
         HW_TREND(units, 0.5, 0.3, 0, 1) OVER w AS trend
  FROM sku_weekly
  -- whole weeks of the 14 generated days only
  WHERE window_start >= TIMESTAMP '2024-03-01 00:00:00' AND window_end <= TIMESTAMP '2024-03-15 00:00:00'
  WINDOW w AS (PARTITION BY sku ORDER BY window_time ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
WHERE level >= 50;
