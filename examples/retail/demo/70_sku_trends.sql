-- Trending SKUs: units per SKU over the last 7 days (HOP by a day, so the weekly pattern all SKUs
-- share cancels out), Holt's level and trend per SKU, growth = trend ÷ level. Only whole weeks
-- count: windows reaching back before the first day ${START}, or past the end of the data ${END}
-- (a bounded run fires every window that holds data, the last ones with less than a week in them),
-- are partial and left out.
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
  WHERE window_start >= TIMESTAMP '${START}' AND window_end <= TIMESTAMP '${END}'
  WINDOW w AS (PARTITION BY sku ORDER BY window_time ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
WHERE level >= 50;
