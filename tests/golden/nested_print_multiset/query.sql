-- a MULTISET printed as Flink 2.3 prints it, {element=count} (expected_stdout.txt from the oracle's PyFlink run)
CREATE TABLE t (k STRING, s STRING) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (k STRING, m MULTISET<STRING>) WITH ('connector' = 'print');
INSERT INTO sink SELECT k, COLLECT(s) FROM t GROUP BY k;
