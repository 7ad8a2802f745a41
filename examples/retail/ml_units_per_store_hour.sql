-- Forecast each store's units per hour with a model that learns on the stream (docs/ml.md): one
-- linear model for the chain, AdaGrad, fed the store, the store's hour of day, the hour of day and
-- the weekday (hashed strings), and the hour's average discount and share of discounted lines.
-- Each store-hour is predicted before the model learns from it, so `units_hat` is a forecast
-- made without that hour's units. The printed mean absolute error per day falls from 42 units on
-- the first day to 36-37 (a mean of 145-210 units per store-hour); the last row per day is the
-- day's.
--   tillflow run examples/retail/ml_units_per_store_hour.sql
CREATE TABLE pos_sales (
  event_time  TIMESTAMP(3),
  receipt_id  STRING,
  store_id    INT,
  sku         STRING,
  category    STRING,
  qty         INT,
  unit_price  DOUBLE,
  discount    DOUBLE,
  customer_id STRING,
  channel     STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH ('connector' = 'retail', 'stream' = 'pos_sales', 'seed' = '7',
        'start' = '2026-03-02 00:00:00', 'duration' = '7d');

CREATE TEMPORARY VIEW store_hours AS
SELECT store_id, window_start, window_end,
       CAST(store_id AS STRING) AS store, CONCAT(CAST(store_id AS STRING), '@', DATE_FORMAT(window_start, 'HH')) AS store_hour,
       CAST(SUM(qty) AS DOUBLE) AS units,
       DATE_FORMAT(window_start, 'HH') AS hour_of_day,
       DATE_FORMAT(window_start, 'E') AS weekday,
       AVG(discount) AS avg_discount,
       AVG(CASE WHEN discount > 0 THEN 1.0 ELSE 0.0 END) AS promo_share
FROM TABLE(TUMBLE(TABLE pos_sales, DESCRIPTOR(event_time), INTERVAL '1' HOUR))
GROUP BY store_id, window_start, window_end;

CREATE MODEL units_per_hour
  INPUT (store STRING, store_hour STRING, hour_of_day STRING, weekday STRING, avg_discount DOUBLE, promo_share DOUBLE)
  OUTPUT (units_hat DOUBLE)
  WITH ('provider' = 'online', 'algorithm' = 'linear_regression', 'label' = 'units',
        'optimizer' = 'adagrad', 'learning-rate' = '20', 'intercept-learning-rate' = '0.02',
        'features.hash-buckets' = '4096');

CREATE TABLE daily_error (day STRING, store_hours BIGINT, mae DOUBLE, mean_units DOUBLE)
WITH ('connector' = 'print', 'print-identifier' = 'forecast');

INSERT INTO daily_error
SELECT DATE_FORMAT(window_start, 'yyyy-MM-dd'), COUNT(*),
       ROUND(AVG(ABS(units - units_hat)), 2), ROUND(AVG(units), 2)
FROM ML_PREDICT(TABLE store_hours, MODEL units_per_hour,
                DESCRIPTOR(store, store_hour, hour_of_day, weekday, avg_discount, promo_share))
GROUP BY DATE_FORMAT(window_start, 'yyyy-MM-dd');
