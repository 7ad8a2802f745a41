CREATE TABLE t (k INT, m DECIMAL(10,2)) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (k INT, a STRING, b STRING, c STRING, d STRING, e STRING, f STRING, PRIMARY KEY (k) NOT ENFORCED) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'debezium-json');
INSERT INTO sink SELECT k, CAST(STDDEV_POP(m) AS STRING), CAST(STDDEV_SAMP(m) AS STRING), CAST(VAR_POP(m) AS STRING), CAST(VAR_SAMP(m) AS STRING), CAST(AVG(m) AS STRING), CAST(VAR_POP(CAST(m AS FLOAT)) AS STRING) FROM t GROUP BY k;
