-- Top-N with the row number: each rank changes old row out (-U), new row in (+U), rank by rank,
-- as Flink 2.3 prints it (expected output from Flink itself), so an upsert sink keyed on
-- (partition, rank) keeps every rank.
CREATE TABLE t (p INT, s STRING, v INT) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE o (p INT, rn BIGINT, s STRING, v INT) WITH ('connector' = 'print');
INSERT INTO o SELECT p, rn, s, v FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY p ORDER BY v DESC) AS rn FROM t) WHERE rn <= 2;
