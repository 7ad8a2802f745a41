-- The specification's second pipeline: a projection into a result table.
-- result_table has no WITH clause, so its rows go to the embedded SQLite store (tillflow.db, or
-- --store FILE); tillflow says where. Read them with: sqlite3 tillflow.db 'SELECT * FROM result_table'
--   tillflow run examples/spec/ctas_result_table.sql
CREATE TABLE source_table (
  id INT,
  `value` INT
) WITH (
  'connector' = 'filesystem',
  'path' = 'examples/data/spec_source.ndjson',
  'format' = 'json'
);

CREATE TABLE result_table AS SELECT id, `value` FROM source_table;
