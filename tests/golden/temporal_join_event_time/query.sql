-- An event-time temporal join: each order joins the rate valid at its time — the latest version
-- of its currency at or before the order's time — of `ev`, a versioned table (PRIMARY KEY and a
-- watermark). One table holds both: an order line is also a version of the unused key '~order'
-- (the versioned side may not be filtered, as in Flink), and the orders are a filtered view; so
-- both sides share one source and one watermark (Flink reuses the scan). The input has a version
-- arriving after the order it applies to (before the watermark passes the order: o1 gets 110),
-- several versions between two watermarks, a version at exactly the order's time (o4), an order
-- behind the watermark (o7: kept and joined at the next watermark) and a late version (125 at
-- :07.5, joined by o9 and o10). Late orders whose answer depends on how Flink's network channels
-- interleave (a version cleaned or not yet) are left out: the unit test in ops/temporal_join.rs
-- covers them. expected.ndjson came from Flink 2.3 (shared/flink-oracle; the same on two runs).
CREATE TABLE ev (
  id STRING, o_cur STRING, currency STRING, rate INT, t TIMESTAMP(3),
  WATERMARK FOR t AS t - INTERVAL '2' SECOND,
  PRIMARY KEY (currency) NOT ENFORCED
) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE VIEW orders AS SELECT * FROM ev WHERE id IS NOT NULL AND currency = '~order' AND rate IS NULL;
CREATE TABLE sink (id STRING, currency STRING, order_time TIMESTAMP(3), rate INT, rate_time TIMESTAMP(3), r_id STRING, r_o_cur STRING)
  WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO sink
SELECT o.id, o.o_cur, o.t, r.rate, r.t, r.id, r.o_cur
FROM orders AS o JOIN ev FOR SYSTEM_TIME AS OF o.t AS r ON o.o_cur = r.currency;
