-- the STATE_TTL hint sets each join input's TTL by its alias, as Flink's does: orders live a minute
-- (order 1 has expired when Ann arrives at 10:02, so it never joins), customers a day (Ann still
-- joins order 3 seven minutes later); explain shows both
SET 'tillflow.state.ttl.clock' = 'watermark';
CREATE TABLE events (kind STRING, event_time TIMESTAMP(3), id STRING, name STRING, order_id INT,
  WATERMARK FOR event_time AS event_time)
WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE VIEW customers AS SELECT id, name FROM events WHERE kind = 'c';
CREATE VIEW orders AS SELECT order_id, id FROM events WHERE kind = 'o';
CREATE TABLE sink (order_id INT, id STRING, name STRING) WITH ('connector' = 'print');
INSERT INTO sink SELECT /*+ STATE_TTL('o' = '1 min', 'c' = '1 d') */ o.order_id, o.id, c.name
FROM orders o JOIN customers c ON o.id = c.id;
