-- Per-store revenue of two generated days into Iceberg tables of a JDBC catalog on SQLite (the
-- catalog Java's JdbcCatalog and pyiceberg's SqlCatalog read): each day's final figures when the
-- day closes (append), and today's running revenue per store, updated in place (a PRIMARY KEY:
-- each change is an equality delete of the key and the new row, as Flink's upsert mode writes).
-- One snapshot per checkpoint, exactly once across crashes and restarts.
--   tillflow run examples/retail/lake_store_revenue_iceberg.sql
--   python3 -c "from pyiceberg.catalog.sql import SqlCatalog; import duckdb
--   t = SqlCatalog('lake', uri='sqlite:///out/lake/catalog.db').load_table('retail.store_daily_revenue').scan().to_arrow()
--   print(duckdb.sql('SELECT day, SUM(revenue) AS revenue FROM t GROUP BY day ORDER BY day'))"
SET 'execution.checkpointing.interval' = '10 s';

CREATE TABLE pos_sales (
  event_time  TIMESTAMP(3),
  store_id    INT,
  receipt_id  STRING,
  sku         STRING,
  qty         INT,
  unit_price  DOUBLE,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH ('connector' = 'retail', 'stream' = 'pos_sales', 'duration' = '2d');

-- a day's row lands once the watermark has passed the day
CREATE TABLE store_daily_revenue (
  day       DATE,
  store_id  INT,
  receipts  BIGINT,
  units     BIGINT,
  revenue   DECIMAL(14, 2)
) WITH (
  'connector' = 'iceberg',
  'catalog-name' = 'lake',
  'catalog-impl' = 'org.apache.iceberg.jdbc.JdbcCatalog',
  'uri' = 'jdbc:sqlite:out/lake/catalog.db',
  'warehouse' = 'out/lake/warehouse',
  'catalog-database' = 'retail',
  'write.parquet.compression-codec' = 'zstd'
);

-- the running figure, replaced as sales come in
CREATE TABLE store_revenue_today (
  store_id  INT,
  day       DATE,
  units     BIGINT,
  revenue   DECIMAL(14, 2),
  PRIMARY KEY (store_id, day) NOT ENFORCED
) WITH (
  'connector' = 'iceberg',
  'catalog-name' = 'lake',
  'catalog-impl' = 'org.apache.iceberg.jdbc.JdbcCatalog',
  'uri' = 'jdbc:sqlite:out/lake/catalog.db',
  'warehouse' = 'out/lake/warehouse',
  'catalog-database' = 'retail',
  'write.upsert.enabled' = 'true'
);

EXECUTE STATEMENT SET BEGIN
INSERT INTO store_daily_revenue
SELECT CAST(window_start AS DATE), store_id, COUNT(DISTINCT receipt_id), SUM(CAST(qty AS BIGINT)),
       CAST(SUM(qty * unit_price) AS DECIMAL(14, 2))
FROM TABLE(TUMBLE(TABLE pos_sales, DESCRIPTOR(event_time), INTERVAL '1' DAY))
GROUP BY window_start, window_end, store_id;

INSERT INTO store_revenue_today
SELECT store_id, CAST(event_time AS DATE), SUM(CAST(qty AS BIGINT)),
       CAST(SUM(qty * unit_price) AS DECIMAL(14, 2))
FROM pos_sales
GROUP BY store_id, CAST(event_time AS DATE);
END;
