-- A filter on the versioned side of an event-time temporal join is refused, as Flink 2.3 refuses
-- it ("Filter is not allowed for right changelog input of event time temporal join, it will
-- corrupt the versioning of data"): the condition belongs in the ON clause.
CREATE TABLE orders (
  id STRING, o_cur STRING, o_time TIMESTAMP(3),
  WATERMARK FOR o_time AS o_time - INTERVAL '2' SECOND
) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE rates (
  currency STRING, rate INT, r_time TIMESTAMP(3),
  WATERMARK FOR r_time AS r_time - INTERVAL '2' SECOND,
  PRIMARY KEY (currency) NOT ENFORCED
) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE VIEW big_rates AS SELECT * FROM rates WHERE rate > 120;
CREATE TABLE sink (id STRING, rate INT)
  WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO sink
SELECT o.id, r.rate
FROM orders AS o JOIN big_rates FOR SYSTEM_TIME AS OF o.o_time AS r ON o.o_cur = r.currency;
