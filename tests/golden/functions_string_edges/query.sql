CREATE TABLE t (id INT, s STRING, n INT) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (id INT, m MAP<STRING,STRING>, m3 MAP<STRING,STRING>, si0 STRING, si2 STRING, si3 STRING, sisp STRING, sisp2 STRING,
  w STRING, d STRING, sp STRING, bnd STRING, ci BOOLEAN, uc STRING, ov STRING, ov0 STRING, ovn STRING, lneg STRING, rep0 STRING, dott STRING, doll STRING, rrs STRING, rrd STRING
) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO sink SELECT id, STR_TO_MAP(s), STR_TO_MAP(s, ',+', '='), SPLIT_INDEX(s, ',', 0), SPLIT_INDEX(s, ',', 2), SPLIT_INDEX(s, ',', 3),
  SPLIT_INDEX(s, '  ', 1), SPLIT_INDEX(s, '', 2),
  REGEXP_EXTRACT(s, '\w+', 0), REGEXP_EXTRACT(s, '\d', 0), REGEXP_REPLACE(s, '\s', '_'), REGEXP_REPLACE(s, '\b', '|'), REGEXP(s, '(?i)ab'),
  REGEXP_EXTRACT(s, '\p{Lu}+', 0), OVERLAY(s PLACING 'Z' FROM n FOR 2), OVERLAY(s PLACING 'Z' FROM 1 FOR 0), OVERLAY(s PLACING 'ZZ' FROM 3 FOR n),
  LEFT(s, -1), REPEAT(s, -2), REGEXP_REPLACE(s, '.', '*'), REGEXP_EXTRACT(s, 'x$', 0), REGEXP_REPLACE(s, '^', '>'), REGEXP_REPLACE(s, '', '.')
FROM t;
