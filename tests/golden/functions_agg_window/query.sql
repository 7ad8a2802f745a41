CREATE TABLE t (ts TIMESTAMP(3), k STRING, x INT, d DOUBLE, m DECIMAL(10,2), s STRING,
  WATERMARK FOR ts AS ts) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (k STRING, ws TIMESTAMP(3),
  sp_x INT, ss_x INT, vp_x INT, vs_x INT, sd_x INT, va_x INT,
  sp_d DOUBLE, ss_d DOUBLE, vp_d DOUBLE, vs_d DOUBLE,
  sp_m DECIMAL(10,2), vs_m DECIMAL(10,2),
  fv_x INT, lv_x INT, fv_s STRING, lv_s STRING, la STRING, la2 STRING, aa ARRAY<STRING>, aax ARRAY<INT>)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO sink SELECT k, window_start,
  STDDEV_POP(x), STDDEV_SAMP(x), VAR_POP(x), VAR_SAMP(x), STDDEV(x), VARIANCE(x),
  STDDEV_POP(d), STDDEV_SAMP(d), VAR_POP(d), VAR_SAMP(d),
  STDDEV_POP(m), VAR_SAMP(m),
  FIRST_VALUE(x), LAST_VALUE(x), FIRST_VALUE(s), LAST_VALUE(s), LISTAGG(s), LISTAGG(s, '; '), ARRAY_AGG(s), ARRAY_AGG(x)
FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY k, window_start, window_end;
