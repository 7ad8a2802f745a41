-- Keep-last deduplication: of rows with the same time, the one that arrived last is kept (expected rows from Flink 2.3 via the oracle).
CREATE TABLE t (
  k INT,
  ts TIMESTAMP(3),
  v STRING,
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE out_t (k INT, ts TIMESTAMP(3), v STRING) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'debezium-json');
INSERT INTO out_t
SELECT k, ts, v FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts DESC) AS rn FROM t) WHERE rn <= 1;
