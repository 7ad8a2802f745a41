-- A running (non-windowed) total per store: an updating result, written as a debezium-json
-- changelog that a consumer replays (+I/+U as "c", -U/-D as "d").
--   tillflow run examples/retail/store_totals_changelog.sql --var OUTPUT=/tmp/totals
CREATE TABLE events (
  event_time  TIMESTAMP(3),
  store_id    INT,
  sku         STRING,
  qty         INT,
  unit_price  DOUBLE,
  customer_id STRING,
  channel     STRING
) WITH ('connector' = 'filesystem', 'path' = 'examples/data/events.ndjson', 'format' = 'json');

CREATE TABLE totals (store_id INT, lines BIGINT, units INT, revenue DOUBLE)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'debezium-json');

INSERT INTO totals
SELECT store_id, COUNT(*), SUM(qty), SUM(qty * unit_price) FROM events GROUP BY store_id;
