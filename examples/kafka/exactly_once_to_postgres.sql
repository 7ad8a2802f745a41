-- Exactly-once from Kafka to PostgreSQL and Kafka, restartable after a crash (docs/checkpoints.md).
--   tillflow run examples/kafka/exactly_once_to_postgres.sql --var BROKERS=localhost:9092 \
--     --var PG_URL=jdbc:postgresql://localhost:5432/postgres --var PG_USER=tillflow --var PG_PASSWORD=...
-- Kill it (kill -9) and run the same command: it resumes from its last checkpoint, and the
-- PostgreSQL tables and the `store_minutes` topic (read with isolation.level=read_committed) hold
-- every row exactly once. Fill the input with: tillflow gen pos_sales --kafka localhost:9092
SET 'execution.checkpointing.interval' = '10s';
SET 'state.checkpoints.dir' = 'file:///tmp/tillflow-checkpoints';

CREATE TABLE pos_sales (
  event_time TIMESTAMP(3),
  receipt_id STRING,
  store_id   INT,
  sku        STRING,
  qty        INT,
  unit_price DOUBLE,
  origin     MAP<STRING, BYTES> METADATA FROM 'headers' VIRTUAL,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = 'pos_sales',
  'properties.bootstrap.servers' = '${BROKERS}',
  'properties.group.id' = 'tillflow-exactly-once',
  'scan.startup.mode' = 'group-offsets',
  'properties.auto.offset.reset' = 'earliest',
  'format' = 'json'
);

-- revenue per store per minute, appended
CREATE TABLE store_minute (window_start TIMESTAMP(3), store_id INT, lines BIGINT, revenue DOUBLE)
WITH ('connector' = 'jdbc', 'url' = '${PG_URL}', 'table-name' = 'store_minute',
      'username' = '${PG_USER}', 'password' = '${PG_PASSWORD}', 'sink.create-table' = 'true');

-- running totals per store, upserted on the key
CREATE TABLE store_totals (store_id INT, lines BIGINT, units BIGINT, PRIMARY KEY (store_id) NOT ENFORCED)
WITH ('connector' = 'jdbc', 'url' = '${PG_URL}', 'table-name' = 'store_totals',
      'username' = '${PG_USER}', 'password' = '${PG_PASSWORD}', 'sink.create-table' = 'true');

-- the same minutes as a Kafka topic, in transactions committed with each checkpoint
CREATE TABLE store_minutes_topic (window_start TIMESTAMP(3), store_id INT, revenue DOUBLE)
WITH ('connector' = 'kafka', 'topic' = 'store_minutes', 'properties.bootstrap.servers' = '${BROKERS}',
      'format' = 'json', 'sink.delivery-guarantee' = 'exactly-once',
      'sink.transactional-id-prefix' = 'tillflow-store-minutes');

EXECUTE STATEMENT SET BEGIN
INSERT INTO store_minute
SELECT window_start, store_id, COUNT(*), SUM(qty * unit_price)
FROM TABLE(TUMBLE(TABLE pos_sales, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, store_id;
INSERT INTO store_totals SELECT store_id, COUNT(*), SUM(qty) FROM pos_sales GROUP BY store_id;
INSERT INTO store_minutes_topic
SELECT window_start, store_id, SUM(qty * unit_price)
FROM TABLE(TUMBLE(TABLE pos_sales, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, store_id;
END;
