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
  event_time TIMESTAMP(3), hour_start TIMESTAMP(3), hr BIGINT, sku_lower STRING, sku_num STRING, label STRING,
  size_class STRING, price_text STRING, day_text STRING, customer STRING, total DOUBLE, rounded DOUBLE,
  qty_mod INT, is_mid BOOLEAN, sku_like BOOLEAN, in_list BOOLEAN, dow BIGINT, len INT
) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink
SELECT event_time,
       FLOOR(event_time TO HOUR),
       EXTRACT(HOUR FROM event_time),
       LOWER(sku),
       SUBSTRING(sku, 5),
       CONCAT(UPPER(channel), '-', CAST(store_id AS STRING)),
       CASE WHEN qty * unit_price >= 100 THEN 'large' WHEN qty * unit_price >= 20 THEN 'medium' ELSE 'small' END,
       CAST(unit_price AS STRING),
       DATE_FORMAT(event_time, 'yyyy/MM/dd HH:mm'),
       COALESCE(customer_id, 'anonymous'),
       qty * unit_price,
       ROUND(unit_price * 1.07, 2),
       MOD(qty, 2),
       qty BETWEEN 2 AND 3,
       sku LIKE 'SKU-000%',
       channel IN ('web', 'app'),
       DAYOFWEEK(event_time),
       CHAR_LENGTH(COALESCE(customer_id, ''))
FROM events
WHERE store_id <> 3;
