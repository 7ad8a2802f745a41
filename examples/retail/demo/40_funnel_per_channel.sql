-- Session funnel per channel and hour: sessions (SESSION windows, 30 min gap), how many put
-- something in the cart, how many bought; conversion and cart abandonment.
CREATE TEMPORARY VIEW sessions AS
SELECT window_start AS session_start, window_time AS session_time, session_id,
       MAX(channel) AS channel,
       MAX(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END) AS carted,
       MAX(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS bought
FROM TABLE(SESSION(TABLE clickstream PARTITION BY session_id, DESCRIPTOR(event_time), INTERVAL '30' MINUTE))
GROUP BY window_start, window_end, window_time, session_id;

CREATE TABLE funnel_per_channel (
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), channel STRING,
  sessions BIGINT, carted INT, bought INT, conversion DOUBLE, cart_abandonment DOUBLE
) WITH ('connector' = 'sqlite', 'path' = '${DB}', 'table-name' = 'funnel_per_channel');

INSERT INTO funnel_per_channel
SELECT window_start, window_end, channel, COUNT(*), SUM(carted), SUM(bought),
       ROUND(CAST(SUM(bought) AS DOUBLE) / COUNT(*), 4),
       ROUND(CASE WHEN SUM(carted) > 0 THEN 1 - CAST(SUM(bought) AS DOUBLE) / SUM(carted) END, 4)
FROM TABLE(TUMBLE(TABLE sessions, DESCRIPTOR(session_time), INTERVAL '1' HOUR))
GROUP BY window_start, window_end, channel;
