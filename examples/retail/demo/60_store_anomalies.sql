-- Store sales anomalies: in-store receipts per store and opening hour against a Holt-Winters
-- forecast with a daily season (14 opening hours), the error scaled by its Poisson noise and scored
-- against its own running spread; beyond ±4 it is an alert (docs/forecasting.md has the measured
-- precision and recall).
CREATE VIEW store_hourly AS
SELECT store_id, window_start, window_time, COUNT(DISTINCT receipt_id) AS receipts
FROM TABLE(TUMBLE(TABLE pos_sales, DESCRIPTOR(event_time), INTERVAL '1' HOUR))
WHERE channel = 'store'
GROUP BY store_id, window_start, window_end, window_time;

CREATE VIEW store_expected AS
SELECT store_id, window_start, window_time, receipts,
       HW_FORECAST(receipts, 0.05, 0.01, 0.2, 14, 0) OVER w AS expected,
       HW_FORECAST(receipts, 0.05, 0.01, 0.2, 14, 1) OVER w AS next_hour
FROM store_hourly
WINDOW w AS (PARTITION BY store_id ORDER BY window_time ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);

CREATE TABLE store_forecast (
  store_id INT, window_start TIMESTAMP(3), receipts BIGINT, expected DOUBLE, next_hour DOUBLE,
  score DOUBLE, alert STRING
) WITH ('connector' = 'sqlite', 'path' = '${DB}', 'table-name' = 'store_forecast');

INSERT INTO store_forecast
SELECT store_id, window_start, receipts, expected, next_hour, score,
       CASE WHEN score > 4 THEN 'spike' WHEN score < -4 THEN 'drop' END
FROM (
  SELECT store_id, window_start, receipts, expected, next_hour,
         ANOMALY_SCORE((receipts - expected) / SQRT(CASE WHEN expected > 1 THEN expected ELSE 1 END))
           OVER (PARTITION BY store_id ORDER BY window_time ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS score
  FROM store_expected
  WHERE expected IS NOT NULL
);
