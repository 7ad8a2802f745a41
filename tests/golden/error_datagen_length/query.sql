-- a generated string of a billion characters: refused naming the option and the limit
CREATE TABLE g (s STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '1', 'fields.s.length' = '1000000000');
CREATE TABLE o (s STRING) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO o SELECT s FROM g;
