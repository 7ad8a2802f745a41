-- a single output file (tillflow's 'sink.single-file'), STRING to INT with TRY_CAST, CAST of a DOUBLE to BIGINT
CREATE TABLE events (
  event_time  TIMESTAMP(3),
  store_id    INT,
  sku         STRING,
  qty         STRING,
  unit_price  DOUBLE,
  customer_id STRING,
  channel     STRING
) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json', 'json.ignore-parse-errors' = 'true');

CREATE TABLE sink (sku STRING, qty INT, price_cents BIGINT)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'sink.single-file' = 'true', 'format' = 'json');

INSERT INTO sink
SELECT sku, TRY_CAST(qty AS INT), CAST(unit_price * 100 AS BIGINT) FROM events WHERE store_id IN (5, 6, 7);
