-- A LEFT event-time temporal join against a versioned *view*: the last row per currency by event
-- time (ROW_NUMBER() … ORDER BY t DESC … = 1), which Flink treats as a versioned table (its key
-- the PARTITION BY, its version time t); a replaced row is no delete (o2 still gets 200 at :04).
-- Same input as temporal_join_event_time. expected.ndjson came from Flink 2.3 (shared/flink-oracle).
CREATE TABLE ev (
  id STRING, o_cur STRING, currency STRING, rate INT, t TIMESTAMP(3),
  WATERMARK FOR t AS t - INTERVAL '2' SECOND
) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE VIEW orders AS SELECT * FROM ev WHERE id IS NOT NULL AND currency = '~order' AND rate IS NULL;
CREATE VIEW rates AS SELECT id, o_cur, currency, rate, t FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY currency ORDER BY t DESC) AS rn FROM ev
) WHERE rn = 1;
CREATE TABLE sink (id STRING, currency STRING, order_time TIMESTAMP(3), rate INT, rate_time TIMESTAMP(3), r_id STRING, r_o_cur STRING)
  WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO sink
SELECT o.id, o.o_cur, o.t, r.rate, r.t, r.id, r.o_cur
FROM orders AS o LEFT JOIN rates FOR SYSTEM_TIME AS OF o.t AS r ON o.o_cur = r.currency;
