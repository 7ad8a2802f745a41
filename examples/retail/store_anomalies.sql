-- Store sales anomalies: each store's in-store receipts per hour against a Holt-Winters forecast
-- with a daily season (the stores are open 08:00-22:00: 14 hourly values a day), scored as a
-- robust z-score of the forecast error; |score| > 4 is an alert (a spike or a drop).
--
--   tillflow run examples/retail/store_anomalies.sql --var DB=anomalies.db
--
-- The generator injects eight anomalies at known times (a store's arrivals ×3 or ×0.2 for two
-- hours) into two weeks of a 20-store chain; the test suite checks the alerts find them.
CREATE TABLE pos_sales (
  event_time TIMESTAMP(3),
  receipt_id STRING,
  store_id   INT,
  channel    STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH ('connector' = 'retail', 'stream' = 'pos_sales', 'seed' = '42', 'duration' = '14d',
        'pacing' = 'max', 'rate' = '150',
        'anomalies' = '3@2024-03-09 10:00:00+2h*3; 7@2024-03-09 14:00:00+2h*0.2; 12@2024-03-10 11:00:00+2h*3; 5@2024-03-11 15:00:00+2h*0.2; 18@2024-03-12 12:00:00+2h*3; 9@2024-03-12 16:00:00+2h*0.2; 15@2024-03-13 09:00:00+2h*0.2; 2@2024-03-13 17:00:00+2h*3');

-- receipts per store and opening hour
CREATE VIEW store_hourly AS
SELECT store_id, window_start, window_time, COUNT(DISTINCT receipt_id) AS receipts
FROM TABLE(TUMBLE(TABLE pos_sales, DESCRIPTOR(event_time), INTERVAL '1' HOUR))
WHERE channel = 'store'
GROUP BY store_id, window_start, window_end, window_time;

-- what the forecast expected for each hour before seeing it (horizon 0), and the next hour's
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

-- the forecast error in units of its Poisson noise, scored against its own running spread
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
