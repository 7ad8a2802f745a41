-- Retail sales from Kafka to Kafka: the generator's POS stream (tillflow gen pos_sales --kafka
-- ${BROKERS} --topic pos_sales) read with per-partition watermarks, revenue per store per minute
-- written to an append topic, and running store totals to a compacted upsert-kafka topic
-- (key = store_id, a tombstone when a key is deleted).
--   tillflow run examples/kafka/sales_to_kafka.sql --var BROKERS=localhost:9092
CREATE TABLE pos_sales (
  event_time  TIMESTAMP(3),
  receipt_id  STRING,
  store_id    INT,
  sku         STRING,
  qty         INT,
  unit_price  DOUBLE,
  channel     STRING,
  `partition` INT METADATA VIRTUAL,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = 'pos_sales',
  'properties.bootstrap.servers' = '${BROKERS}',
  'properties.group.id' = 'tillflow-sales',
  'scan.startup.mode' = 'group-offsets',
  'scan.watermark.idle-timeout' = '10 s',
  'format' = 'json',
  'json.ignore-parse-errors' = 'true'
);

CREATE TABLE revenue_per_minute (
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), store_id INT, revenue DOUBLE, lines BIGINT
) WITH (
  'connector' = 'kafka',
  'topic' = 'revenue_per_minute',
  'properties.bootstrap.servers' = '${BROKERS}',
  'key.format' = 'json',
  'key.fields' = 'store_id',
  'format' = 'json'
);

CREATE TABLE store_totals (
  store_id INT, revenue DOUBLE, lines BIGINT,
  PRIMARY KEY (store_id) NOT ENFORCED
) WITH (
  'connector' = 'upsert-kafka',
  'topic' = 'store_totals',
  'properties.bootstrap.servers' = '${BROKERS}',
  'key.format' = 'json',
  'value.format' = 'json'
);

EXECUTE STATEMENT SET BEGIN
INSERT INTO revenue_per_minute
SELECT window_start, window_end, store_id, SUM(qty * unit_price), COUNT(*)
FROM TABLE(TUMBLE(TABLE pos_sales, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, store_id;

INSERT INTO store_totals
SELECT store_id, SUM(qty * unit_price), COUNT(*) FROM pos_sales GROUP BY store_id;
END;
