-- a column named where there is no input: said so, not an empty list of columns
CREATE TABLE o (a INT) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO o SELECT qty;
