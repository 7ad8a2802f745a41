-- The retail demo's sources: two simulated weeks of a 20-store chain from the built-in generator,
-- and the embedded SQLite store its results go to. ${SEED}, ${DURATION}, ${PACING} and ${DB} are
-- set by `tillflow demo` (or --var), and so are the first and last instants of the data START and
-- END (START + DURATION), the receipts per store-hour RATE, the disorder knobs
-- OUT_OF_ORDER and LATE, and the story the forecasting pipelines should find: ${ANOMALIES} (a store's sales spike or drop) and a
-- SKU ${TREND_SKU} trending up from ${TREND_START}. Every stream gets the same options, so the
-- streams agree.
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
) WITH ('connector' = 'retail', 'stream' = 'pos_sales', 'seed' = '${SEED}', 'start' = '${START}', 'duration' = '${DURATION}',
        'rate' = '${RATE}', 'anomalies' = '${ANOMALIES}', 'trend.sku' = '${TREND_SKU}',
        'trend.start' = '${TREND_START}',
        'pacing' = '${PACING}', 'disorder.out-of-order' = '${OUT_OF_ORDER}', 'disorder.late' = '${LATE}');

CREATE TABLE clickstream (
  event_time TIMESTAMP(3),
  session_id STRING,
  channel    STRING,
  event_type STRING,
  sku        STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH ('connector' = 'retail', 'stream' = 'clickstream', 'seed' = '${SEED}', 'start' = '${START}', 'duration' = '${DURATION}',
        'rate' = '${RATE}', 'anomalies' = '${ANOMALIES}', 'trend.sku' = '${TREND_SKU}',
        'trend.start' = '${TREND_START}',
        'pacing' = '${PACING}');

CREATE TABLE inventory (
  event_time TIMESTAMP(3),
  store_id   INT,
  sku        STRING,
  kind       STRING,
  qty_delta  INT,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH ('connector' = 'retail', 'stream' = 'inventory', 'seed' = '${SEED}', 'start' = '${START}', 'duration' = '${DURATION}',
        'rate' = '${RATE}', 'anomalies' = '${ANOMALIES}', 'trend.sku' = '${TREND_SKU}',
        'trend.start' = '${TREND_START}',
        'pacing' = '${PACING}');

CREATE TABLE promotions (
  event_time   TIMESTAMP(3),
  promo_id     STRING,
  sku          STRING,
  category     STRING,
  discount_pct DOUBLE,
  start_time   TIMESTAMP(3),
  end_time     TIMESTAMP(3)
) WITH ('connector' = 'retail', 'stream' = 'promotions', 'seed' = '${SEED}', 'start' = '${START}', 'duration' = '${DURATION}',
        'rate' = '${RATE}', 'anomalies' = '${ANOMALIES}', 'trend.sku' = '${TREND_SKU}',
        'trend.start' = '${TREND_START}',
        'pacing' = '${PACING}');
