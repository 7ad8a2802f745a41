-- VALUES as a bounded source, with column aliases; each column of the rows' common type
-- (INT with DECIMAL, strings of several lengths, a NULL); UNION ALL with a SELECT without FROM
CREATE TABLE sink (id INT, name STRING, name_len INT, amount_text STRING)
WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'json');

INSERT INTO sink
SELECT id, name, CHAR_LENGTH(name), CAST(amount AS STRING)
FROM (VALUES (1, 'a', 1.5), (2, 'bbb', 2), (3, CAST(NULL AS STRING), 10.25)) AS t(id, name, amount)
WHERE id > 0
UNION ALL
SELECT 4, 'dd', 2, CAST(7 AS STRING);
