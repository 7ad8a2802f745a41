-- SHOW / DESCRIBE / SHOW CREATE / USE as Flink's SQL client prints them (tableau for result
-- tables, the text alone for SHOW CREATE); a script of only these statements runs no job.
CREATE TABLE orders (
  `user` BIGINT NOT NULL,
  product VARCHAR(32),
  amount INT,
  price DECIMAL(10, 2),
  note STRING COMMENT 'free text',
  ts TIMESTAMP(3),
  ptime AS PROCTIME(),
  PRIMARY KEY (`user`) NOT ENFORCED,
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) COMMENT 'the orders' WITH ('connector' = 'filesystem', 'path' = '/nonexistent/orders', 'format' = 'json');
CREATE VIEW big AS SELECT product, amount FROM orders WHERE amount > 10;
SHOW TABLES;
SHOW VIEWS;
SHOW CATALOGS;
SHOW CURRENT CATALOG;
SHOW DATABASES;
SHOW CURRENT DATABASE;
SHOW USER FUNCTIONS;
USE CATALOG default_catalog;
USE default_catalog.default_database;
DESCRIBE orders;
DESC default_catalog.default_database.big;
SHOW COLUMNS FROM orders;
SHOW CREATE TABLE orders;
SHOW CREATE VIEW big;
