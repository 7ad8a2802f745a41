-- a timestamp moved past what 64-bit microseconds hold: refused, not wrapped to year -290253
CREATE TABLE t (d STRING, b BIGINT, x DECIMAL(10,1), ts TIMESTAMP(3), n INT) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE o (t2 TIMESTAMP(3)) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO o SELECT ts + INTERVAL '9223372036853' SECOND(13) FROM t;
