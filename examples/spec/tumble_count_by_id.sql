-- The specification's first pipeline: count the rows per `id` in 60-second tumbling windows.
-- The source has no timestamp column, so the window runs on processing time (PROCTIME()).
-- On a bounded file every open window fires at the end of the input.
--   tillflow run examples/spec/tumble_count_by_id.sql
-- (Kafka instead of the file: see the Kafka connector once it lands.)
CREATE TABLE source_table (
  id INT,
  `value` INT,
  proc AS PROCTIME()
) WITH (
  'connector' = 'filesystem',
  'path' = 'examples/data/spec_source.ndjson',
  'format' = 'json'
);

CREATE TABLE counts (
  window_start TIMESTAMP_LTZ(3),
  window_end TIMESTAMP_LTZ(3),
  id INT,
  cnt BIGINT
) WITH ('connector' = 'print');

INSERT INTO counts
SELECT window_start, window_end, id, COUNT(*) AS cnt
FROM TABLE(TUMBLE(TABLE source_table, DESCRIPTOR(proc), INTERVAL '60' SECOND))
GROUP BY window_start, window_end, id;
