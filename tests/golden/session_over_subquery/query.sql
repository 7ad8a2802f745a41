-- SESSION over a subquery with PARTITION BY after it, and a named DATA argument
CREATE TABLE events (
  event_time  TIMESTAMP(3),
  store_id    INT,
  sku         STRING,
  qty         INT,
  unit_price  DOUBLE,
  customer_id STRING,
  channel     STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');

CREATE TABLE sink (window_start TIMESTAMP(3), window_end TIMESTAMP(3), channel STRING, units INT)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink
SELECT window_start, window_end, channel, SUM(qty)
FROM TABLE(SESSION(DATA => (SELECT * FROM events WHERE qty > 1) PARTITION BY channel,
                   TIMECOL => DESCRIPTOR(event_time), GAP => INTERVAL '20' SECOND))
GROUP BY window_start, window_end, channel;
