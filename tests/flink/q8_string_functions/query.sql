-- q8_string_functions: string functions, CASE, COALESCE, NULLIF, LIKE, IN (stateless)
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
  sku STRING, upper_ch STRING, sub STRING, cat STRING, cws STRING, len INT, padded STRING,
  rpadded STRING, repl STRING, cust STRING, nul STRING, kind STRING, is_web BOOLEAN, sku_like BOOLEAN,
  trimmed STRING, ltrimmed STRING, pos INT
) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink
SELECT sku,
       UPPER(channel),
       SUBSTRING(sku FROM 5 FOR 3),
       CONCAT(channel, '-', CAST(store_id AS STRING)),
       CONCAT_WS('/', channel, customer_id, sku),
       CHAR_LENGTH(sku),
       LPAD(CAST(store_id AS STRING), 4, '0'),
       RPAD(channel, 6, '*'),
       REPLACE(sku, 'SKU-', 'P'),
       COALESCE(customer_id, 'anon'),
       NULLIF(channel, 'store'),
       CASE WHEN qty >= 5 THEN 'bulk' WHEN qty >= 2 THEN 'multi' ELSE 'single' END,
       channel IN ('web', 'app'),
       sku LIKE 'SKU-00%',
       TRIM(BOTH '-' FROM CONCAT('--', channel, '--')),
       TRIM(LEADING 'SK' FROM sku),
       POSITION('-' IN sku)
FROM events
WHERE store_id IN (1, 2, 3) AND qty BETWEEN 1 AND 4;
