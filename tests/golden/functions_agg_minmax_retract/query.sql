CREATE TABLE t (k STRING, u STRING, x INT, p DOUBLE, ts TIMESTAMP(3)) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (k STRING, n BIGINT, mn INT, mx INT, mnu STRING, mxu STRING, mnp DOUBLE, mxp DOUBLE, mnt TIMESTAMP(3), mxt TIMESTAMP(3), mnd INT, PRIMARY KEY (k) NOT ENFORCED)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'debezium-json');
INSERT INTO sink SELECT k, COUNT(*), MIN(sx), MAX(sx), MIN(su), MAX(su), MIN(lp), MAX(lp), MIN(lt), MAX(lt), MIN(DISTINCT sx)
FROM (SELECT k, u, SUM(x) AS sx, u || '#' || CAST(COUNT(*) AS STRING) AS su, LAST_VALUE(p) AS lp, MAX(ts) AS lt FROM t GROUP BY k, u) GROUP BY k;
