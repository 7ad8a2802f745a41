-- LPAD to 2^31 - 1 characters: refused per row naming the limit, not gigabytes allocated (#17)
CREATE TABLE t (a INT) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE o (s STRING) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO o SELECT LPAD('x', 2147483647, 'ab') FROM t;
