-- q10_temporal_functions: DATE_FORMAT, EXTRACT, HOUR, FLOOR TO HOUR, CAST to DATE, TIMESTAMPDIFF, intervals (stateless)
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
  event_time TIMESTAMP(3), day_text STRING, hh BIGINT, mi BIGINT, dow BIGINT, hour_start TIMESTAMP(3),
  d DATE, later TIMESTAMP(3), secs_to_midnight INT, ceil_min TIMESTAMP(3), yr BIGINT, doy BIGINT
) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink
SELECT event_time,
       DATE_FORMAT(event_time, 'yyyy-MM-dd HH:mm'),
       HOUR(event_time),
       MINUTE(event_time),
       EXTRACT(DOW FROM event_time),
       FLOOR(event_time TO HOUR),
       CAST(event_time AS DATE),
       event_time + INTERVAL '90' MINUTE,
       TIMESTAMPDIFF(SECOND, event_time, TIMESTAMP '2024-03-02 00:00:00'),
       CEIL(event_time TO MINUTE),
       EXTRACT(YEAR FROM event_time),
       EXTRACT(DOY FROM event_time)
FROM events
WHERE store_id = 5;
