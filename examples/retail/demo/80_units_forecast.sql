-- Units per store × category in the next hour, forecast four ways beside the units sold: a model
-- that learns on the stream (one per store × category: hour of day, weekday, the hour's average
-- discount and share of discounted lines; each hour predicted before it learns from it), an ONNX
-- model trained offline on the first week of another run (gradient boosting of the hour's units
-- over the store × category's level — its mean over the last 14 opening hours — from the hour,
-- weekday and discounts; models/units_ratio.onnx, scripts/train-demo-model.py makes it), additive
-- Holt-Winters with a daily season of 14 opening hours, and the same hour a day before (seasonal
-- naive). Only the models see the promotions coming: docs/ml.md has their errors.
CREATE VIEW category_hours AS
SELECT store_id, category, window_start, window_time,
       CAST(SUM(qty) AS DOUBLE) AS units,
       AVG(discount) AS avg_discount,
       AVG(CASE WHEN discount > 0 THEN 1.0 ELSE 0.0 END) AS promo_share,
       DATE_FORMAT(window_start, 'E') AS weekday,
       DATE_FORMAT(window_start, 'HH') AS hour_of_day,
       CAST(HOUR(window_start) AS DOUBLE) AS hour_no,
       CAST(DAYOFWEEK(window_start) AS DOUBLE) AS weekday_no
FROM TABLE(TUMBLE(TABLE pos_sales, DESCRIPTOR(event_time), INTERVAL '1' HOUR))
GROUP BY store_id, category, window_start, window_end, window_time;

CREATE VIEW category_history AS
SELECT store_id, category, window_start, window_time, units, avg_discount, promo_share,
       weekday, hour_of_day, hour_no, weekday_no,
       HW_FORECAST(units, 0.05, 0.01, 0.2, 14, 0) OVER w AS holt_winters,
       LAG(units, 14) OVER w AS seasonal_naive
FROM category_hours
WINDOW w AS (PARTITION BY store_id, category ORDER BY window_time ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);

-- the level: the mean of the 14 opening hours before this one
CREATE VIEW category_levels AS
SELECT *, (SUM(units) OVER w - units) / CAST(COUNT(*) OVER w - 1 AS DOUBLE) AS level
FROM category_history
WINDOW w AS (PARTITION BY store_id, category ORDER BY window_time ROWS BETWEEN 14 PRECEDING AND CURRENT ROW);

CREATE MODEL units_online
  INPUT (hour_of_day STRING, weekday STRING, avg_discount DOUBLE, promo_share DOUBLE)
  OUTPUT (online DOUBLE)
  WITH ('provider' = 'online', 'algorithm' = 'linear_regression', 'label' = 'units',
        'optimizer' = 'adagrad', 'learning-rate' = '3', 'intercept-learning-rate' = '0.1',
        'features.hash-buckets' = '1024');

CREATE MODEL units_ratio
  INPUT (hour_no DOUBLE, weekday_no DOUBLE, avg_discount DOUBLE, promo_share DOUBLE)
  OUTPUT (ratio DOUBLE)
  WITH ('provider' = 'onnx', 'path' = '${MODELS}/units_ratio.onnx');

CREATE TABLE units_forecast (
  store_id INT, category STRING, window_start TIMESTAMP(3), units DOUBLE, promo_share DOUBLE,
  online DOUBLE, onnx DOUBLE, holt_winters DOUBLE, seasonal_naive DOUBLE
) WITH ('connector' = 'sqlite', 'path' = '${DB}', 'table-name' = 'units_forecast');

INSERT INTO units_forecast
SELECT store_id, category, window_start, units, promo_share,
       ROUND(online, 3), ROUND(level * ratio, 3), ROUND(holt_winters, 3), seasonal_naive
FROM ML_PREDICT(
  (SELECT * FROM ML_PREDICT(TABLE category_levels PARTITION BY (store_id, category), MODEL units_online,
                            DESCRIPTOR(hour_of_day, weekday, avg_discount, promo_share))),
  MODEL units_ratio, DESCRIPTOR(hour_no, weekday_no, avg_discount, promo_share));
