-- Nexmark q13's side input: a processing-time temporal join against a bounded 'filesystem' table.
-- Flink 2.3 refuses it ("Temporal Table Join requires primary key in versioned table, but no
-- primary key can be found"; with a PRIMARY KEY: "Processing-time temporal join is not supported
-- yet" — checked with shared/flink-oracle): a filesystem table is no lookup source there, so
-- tillflow refuses it as well, naming the table and what to do, rather than give other rows.
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT)
  WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE side_input (key BIGINT, `value` STRING)
  WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (auction BIGINT, bidder BIGINT, price BIGINT, `value` STRING)
  WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO sink
SELECT B.auction, B.bidder, B.price, S.`value`
FROM (SELECT *, PROCTIME() AS p_time FROM bid) B
JOIN side_input FOR SYSTEM_TIME AS OF B.p_time AS S
ON mod(B.auction, 10000) = S.key;
