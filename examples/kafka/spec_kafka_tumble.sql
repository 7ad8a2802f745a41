-- The specification's pipeline as written there: POS events from a Kafka topic (no brokers named:
-- tillflow uses localhost:9092, or $TILLFLOW_KAFKA_BOOTSTRAP, and says so; 'startup-mode' is read as
-- Flink's 'scan.startup.mode'), counted per id in 60-second processing-time windows.
--   tillflow gen pos_sales --kafka localhost:9092 --topic test   (or any producer of {"id":..,"value":..})
--   tillflow run examples/kafka/spec_kafka_tumble.sql            (Ctrl-C stops it)
CREATE TABLE source_table (
  id INT,
  `value` INT,
  proc AS PROCTIME()
) WITH (
  'connector' = 'kafka',
  'topic' = 'test',
  'startup-mode' = 'earliest-offset',
  'format' = 'json'
);

CREATE TABLE counts (
  window_start TIMESTAMP_LTZ(3), window_end TIMESTAMP_LTZ(3), id INT, cnt BIGINT
) WITH ('connector' = 'print');

INSERT INTO counts
SELECT window_start, window_end, id, COUNT(*)
FROM TABLE(TUMBLE(TABLE source_table, DESCRIPTOR(proc), INTERVAL '60' SECOND))
GROUP BY window_start, window_end, id;
