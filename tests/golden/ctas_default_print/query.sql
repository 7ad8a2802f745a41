-- CREATE TABLE ... AS SELECT with no WITH clause: the rows go to the default output (printed,
-- in Flink's print format, prefixed by the table name).
CREATE TABLE source_table (id INT, `value` INT)
WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');

CREATE TABLE result_table AS SELECT id, `value` * 2 AS doubled FROM source_table;
