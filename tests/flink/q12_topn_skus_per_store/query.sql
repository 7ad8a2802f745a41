-- q12_topn_skus_per_store: non-windowed Top-N: the 3 best SKUs by units per store (updating: debezium-json)
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
  store_id INT, sku STRING, units INT, rn BIGINT
) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'debezium-json');

INSERT INTO sink
SELECT store_id, sku, units, rn FROM (
  SELECT store_id, sku, units,
         ROW_NUMBER() OVER (PARTITION BY store_id ORDER BY units DESC, sku ASC) AS rn
  FROM (SELECT store_id, sku, SUM(qty) AS units FROM events GROUP BY store_id, sku)
)
WHERE rn <= 3;
