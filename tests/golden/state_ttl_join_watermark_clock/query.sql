-- a regular join with table.exec.state.ttl on the watermark's clock: customer A, stored at 10:00,
-- has expired when order 2 comes at 10:02 (a minute of event time later), so order 2 joins nothing,
-- as in Flink once a row's TTL has passed; orders 1 and 3 join
SET 'table.exec.state.ttl' = '1 min';
SET 'tillflow.state.ttl.clock' = 'watermark';
CREATE TABLE events (kind STRING, event_time TIMESTAMP(3), id STRING, name STRING, order_id INT,
  WATERMARK FOR event_time AS event_time)
WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE VIEW customers AS SELECT id, name FROM events WHERE kind = 'c';
CREATE VIEW orders AS SELECT order_id, id FROM events WHERE kind = 'o';
CREATE TABLE sink (order_id INT, id STRING, name STRING) WITH ('connector' = 'print');
INSERT INTO sink SELECT o.order_id, o.id, c.name FROM orders o JOIN customers c ON o.id = c.id;
