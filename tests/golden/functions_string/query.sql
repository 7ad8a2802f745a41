CREATE TABLE t (id INT, s STRING, n INT, p STRING) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (id INT,
  l2 STRING, lft STRING, r2 STRING, rn STRING, rev STRING, rep STRING, repn STRING,
  ov STRING, ov2 STRING, si0 STRING, si1 STRING, sin STRING, sie STRING,
  mdh STRING, sh1 STRING, sh256 STRING, sh2_224 STRING, sh2_512 STRING,
  b64 STRING, unb64 STRING, uu INT,
  rx BOOLEAN, rxc BOOLEAN, rxbad BOOLEAN, re0 STRING, re1 STRING, re2 STRING, rec STRING, reneg STRING,
  rr STRING, rr1 STRING, rrc STRING, rrdollar STRING,
  m MAP<STRING,STRING>, m2 MAP<STRING,STRING>
) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');
INSERT INTO sink SELECT id,
  LEFT(s, 2), LEFT(s, n), RIGHT(s, 2), RIGHT(s, n), REVERSE(s), REPEAT(s, 2), REPEAT(s, n),
  OVERLAY(s PLACING 'XY' FROM 2 FOR 3), OVERLAY(s PLACING '#' FROM 3),
  SPLIT_INDEX(s, '|', 0), SPLIT_INDEX(s, ',', 1), SPLIT_INDEX(s, ',', n), SPLIT_INDEX(s, '', 0),
  MD5(s), SHA1(s), SHA256(s), SHA2(s, 224), SHA2(s, 512),
  TO_BASE64(s), FROM_BASE64(TO_BASE64(s)), CHAR_LENGTH(UUID()),
  REGEXP(s, '[0-9]+'), REGEXP(s, p), REGEXP(s, '('), REGEXP_EXTRACT(s, '([a-z]+)(\d*)'), REGEXP_EXTRACT(s, '([a-z]+)(\d*)', 1),
  REGEXP_EXTRACT(s, '([a-z]+)(\d*)', 2), REGEXP_EXTRACT(s, p, 1), REGEXP_EXTRACT(s, '([a-z]+)', -1),
  REGEXP_REPLACE(s, '[0-9]', '#'), REGEXP_REPLACE(s, '([a-z])([0-9])', '$2$1'), REGEXP_REPLACE(s, p, '<>'), REGEXP_REPLACE(s, 'o', '\$'),
  STR_TO_MAP(s), STR_TO_MAP(s, '\|', '-')
FROM t;
