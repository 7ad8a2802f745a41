-- Python functions in a pipeline: revenue per price band (a Python scalar function) per 10
-- minutes, the qty-weighted average price per store and 10 minutes (a Python aggregate
-- function), and each SKU split into parts by a Python table function (LATERAL TABLE); printed.
--   tillflow run examples/python/basket_margin.sql
SET 'python.files' = 'examples/python/retail_udfs.py';
CREATE TEMPORARY FUNCTION price_band AS 'retail_udfs.price_band' LANGUAGE PYTHON;
CREATE TEMPORARY FUNCTION sku_parts AS 'retail_udfs.sku_parts' LANGUAGE PYTHON;
CREATE TEMPORARY FUNCTION weighted_price AS 'retail_udfs.weighted_price' LANGUAGE PYTHON;

CREATE TABLE events (
  event_time  TIMESTAMP(3),
  store_id    INT,
  sku         STRING,
  qty         INT,
  unit_price  DOUBLE,
  customer_id STRING,
  channel     STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH ('connector' = 'filesystem', 'path' = 'examples/data/events.ndjson', 'format' = 'json');

SELECT window_start, price_band(unit_price) AS band, COUNT(*) AS lines,
       ROUND(SUM(qty * unit_price), 2) AS revenue
FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(event_time), INTERVAL '10' MINUTE))
GROUP BY window_start, window_end, price_band(unit_price);

SELECT window_start, store_id, weighted_price(unit_price, qty) AS avg_price, COUNT(*) AS lines
FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(event_time), INTERVAL '10' MINUTE))
GROUP BY window_start, window_end, store_id;

SELECT event_time, sku, part, v
FROM events, LATERAL TABLE(sku_parts(sku)) AS T(part, v)
WHERE store_id = 1 AND qty >= 4;
