CREATE TABLE t (id INT, ts TIMESTAMP(3), n INT, tz STRING, s STRING) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (id INT, c1 STRING, c2 STRING, c3 STRING, c4 STRING,
  a1 TIMESTAMP(3), a2 TIMESTAMP(3), a3 TIMESTAMP(3), a4 TIMESTAMP(3), a5 TIMESTAMP(3), a6 TIMESTAMP(3), a7 TIMESTAMP(3),
  f1 STRING, f2 STRING, f3 STRING, f4 STRING, f5 STRING, f6 STRING, f7 STRING, f8 STRING, f9 STRING
) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO sink SELECT id,
  CONVERT_TZ(s, 'America/Los_Angeles', 'UTC'), CONVERT_TZ(s, 'UTC', tz), CONVERT_TZ(s, tz, 'Asia/Tokyo'), CONVERT_TZ('2024-01-01 00:00:00', 'GMT+01:00', 'America/New_York'),
  TIMESTAMPADD(HOUR, n, ts), TIMESTAMPADD(MONTH, n, ts), TIMESTAMPADD(YEAR, 1, ts), TIMESTAMPADD(DAY, n, ts), TIMESTAMPADD(WEEK, n, ts), TIMESTAMPADD(SECOND, n, ts), TIMESTAMPADD(QUARTER, n, ts),
  DATE_FORMAT(ts, 'yyyy-ww'), DATE_FORMAT(ts, 'YYYY-ww-e u'), DATE_FORMAT(ts, 'G D DDD F W'), DATE_FORMAT(ts, 'MMMM MMM M L EEEE EEE E'),
  DATE_FORMAT(ts, 'h K k H a'), DATE_FORMAT(ts, 'yy yyy yyyyy S SS SSSS'), DATE_FORMAT(ts, 'Q QQ QQQ q'), DATE_FORMAT(ts, '''lit'' '''''),
  DATE_FORMAT(s, 'dd.MM.yyyy HH:mm')
FROM t;
