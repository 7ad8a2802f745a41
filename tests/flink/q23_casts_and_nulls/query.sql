-- q23_casts_and_nulls: casts, TRY_CAST, IS DISTINCT FROM, CASE with NULLs, string comparison, IF (stateless)
CREATE TABLE events (
  event_time  TIMESTAMP(3),
  store_id    INT,
  sku         STRING,
  qty         INT,
  unit_price  DOUBLE,
  customer_id STRING,
  channel     STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');

CREATE TABLE sink (
  sku STRING, qty_text STRING, price_text STRING, num INT, bad INT, cust_or_dash STRING,
  distinct_web BOOLEAN, bucket STRING, cheap BOOLEAN, label STRING, ts_text STRING
) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink
SELECT sku,
       CAST(qty AS STRING),
       CAST(unit_price AS STRING),
       CAST(SUBSTRING(sku FROM 5) AS INT),
       TRY_CAST(channel AS INT),
       CASE WHEN customer_id IS NULL THEN '-' ELSE customer_id END,
       customer_id IS DISTINCT FROM 'C00001',
       CASE WHEN unit_price < 10 THEN 'low' WHEN unit_price < 50 THEN 'mid' ELSE NULL END,
       sku < 'SKU-0010',
       IF(qty > 2, 'many', 'few'),
       CAST(event_time AS STRING)
FROM events
WHERE store_id = 7;
