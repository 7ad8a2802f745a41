-- q21_window_topn_per_channel: window Top-N partitioned by channel: the 3 best SKUs by revenue per 30-minute HOP window (15 min slide)
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

CREATE TABLE sink (
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), channel STRING, sku STRING, revenue DOUBLE,
  rn BIGINT
) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink
SELECT window_start, window_end, channel, sku, revenue, rn FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end, channel
                               ORDER BY revenue DESC, sku ASC) AS rn
  FROM (
    SELECT window_start, window_end, channel, sku, SUM(qty * unit_price) AS revenue
    FROM TABLE(HOP(TABLE events, DESCRIPTOR(event_time), INTERVAL '15' MINUTE, INTERVAL '30' MINUTE))
    GROUP BY window_start, window_end, channel, sku
  )
) WHERE rn <= 3;
