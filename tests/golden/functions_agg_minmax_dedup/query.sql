-- MIN/MAX over a keep-last deduplication (the latest price of each product): an updating input
CREATE TABLE prices (id INT, cat STRING, price DECIMAL(10, 2), ts TIMESTAMP(3), WATERMARK FOR ts AS ts) WITH ('connector' = 'filesystem', 'path' = '${INPUT}', 'format' = 'json');
CREATE TABLE sink (cat STRING, n BIGINT, lo DECIMAL(10, 2), hi DECIMAL(10, 2), PRIMARY KEY (cat) NOT ENFORCED) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT}', 'format' = 'debezium-json');
INSERT INTO sink SELECT cat, COUNT(*), MIN(price), MAX(price)
FROM (SELECT id, cat, price, ROW_NUMBER() OVER (PARTITION BY id ORDER BY ts DESC) AS rn FROM prices) WHERE rn = 1 GROUP BY cat;
