//! Iceberg: `'connector' = 'iceberg'`, a sink that lands results in an Apache Iceberg table.
//!
//! This module owns the connector and its options (Flink's Iceberg connector's names), parsed
//! into an [`IcebergConfig`] without I/O so `validate` catches bad values. Two catalogs need no
//! server: Flink's `'catalog-type' = 'hadoop'` (a warehouse directory: each table's metadata
//! files `vN.metadata.json` and `version-hint.text` under `<warehouse>/<db>/<table>/metadata`)
//! and Iceberg's JDBC catalog (`'catalog-impl' = 'org.apache.iceberg.jdbc.JdbcCatalog'`, or
//! `'catalog-type' = 'jdbc'`, with a `jdbc:sqlite:` or `jdbc:postgresql:` `'uri'`: the
//! `iceberg_tables` table that Java's JdbcCatalog and pyiceberg's SqlCatalog share), both in
//! [`catalog`]. The table is created on first use from the Flink table (columns, PRIMARY KEY
//! as identifier fields, PARTITIONED BY as identity partitions, `write.*` options as table
//! properties). [`sink`] writes Parquet data files through the `iceberg` crate's writers and
//! commits one snapshot per checkpoint, exactly once: each snapshot's summary names the writer,
//! run and checkpoint, so a commit repeated after a crash is recognised and skipped. Updating
//! results (a PRIMARY KEY) are written as equality deletes on the key plus the rows' new
//! versions, as Flink's upsert mode does. [`arrow`] maps Flink types to Iceberg's and rows to
//! arrow batches.

pub mod arrow;
pub mod catalog;
pub mod sink;

use crate::format::clip;
use crate::{opt, req, Connector, ConnectorError, OptionSpec, TableSpec};
use std::path::PathBuf;
use tillflow_runtime::operator::{Sink, Source};

/// The `iceberg` connector.
pub struct Iceberg;

const OPTIONS: &[OptionSpec] = &[
    req("catalog-name"),
    opt("catalog-type"),
    opt("catalog-impl"),
    opt("catalog-database"),
    opt("catalog-table"),
    opt("warehouse"),
    opt("uri"),
    opt("jdbc.user"),
    opt("jdbc.password"),
    opt("property-version"),
    opt("cache-enabled"),
    opt("format-version"),
    opt("write.format.default"),
    opt("write-format"),
    opt("write.upsert.enabled"),
    opt("upsert-enabled"),
    opt("write.target-file-size-bytes"),
    opt("target-file-size-bytes"),
    opt("write.parquet.compression-codec"),
    opt("compression-codec"),
    opt("write.parquet.compression-level"),
    opt("compression-level"),
    opt("write.parquet.row-group-size-bytes"),
    opt("write.parquet.page-size-bytes"),
];

/// Where the table's catalog keeps the pointer to its current metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CatalogKind {
    /// A warehouse directory (Flink's `hadoop` catalog type).
    Hadoop,
    /// A SQLite database file (Iceberg's JDBC catalog over `jdbc:sqlite:`).
    Sqlite(PathBuf),
    /// A PostgreSQL database (Iceberg's JDBC catalog over `jdbc:postgresql:`): the URL, user and
    /// password as the `jdbc` connector takes them.
    Postgres {
        /// `jdbc:postgresql://host:port/db`.
        url: String,
        /// `'jdbc.user'`.
        user: Option<String>,
        /// `'jdbc.password'` (never shown).
        password: Option<String>,
    },
}

/// Parquet compression of the data files (`write.parquet.compression-codec`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// `zstd`, Iceberg's default.
    Zstd(i32),
    /// `snappy`.
    Snappy,
    /// `gzip`.
    Gzip(u32),
    /// `lz4`.
    Lz4,
    /// `uncompressed` / `none`.
    None,
}

/// A table's Iceberg options, checked without I/O.
#[derive(Clone, Debug)]
pub struct IcebergConfig {
    /// The Flink table's name (for messages).
    pub table: String,
    /// `'catalog-name'` (the JDBC catalog's `catalog_name` column).
    pub catalog_name: String,
    /// Which catalog.
    pub kind: CatalogKind,
    /// `'warehouse'`: where new tables' files go (required for `hadoop`, and for a JDBC catalog
    /// that must create the table).
    pub warehouse: Option<PathBuf>,
    /// `'catalog-database'` (default `default_database`, Flink's current database).
    pub database: String,
    /// `'catalog-table'` (default: the Flink table's name).
    pub table_name: String,
    /// `'format-version'` of a table created here (default 2).
    pub format_version: u8,
    /// `'write.upsert.enabled'`: every insert or update first deletes its key.
    pub upsert: bool,
    /// `'write.target-file-size-bytes'` (default 512 MiB).
    pub target_file_size: usize,
    /// `'write.parquet.compression-codec'` (default zstd).
    pub codec: Codec,
    /// `'write.parquet.row-group-size-bytes'` (default 128 MiB).
    pub row_group_bytes: usize,
    /// `'write.parquet.page-size-bytes'` (default 1 MiB).
    pub page_bytes: usize,
    /// Options stored as table properties when the table is created.
    pub properties: Vec<(String, String)>,
    /// PRIMARY KEY columns (identifier fields; the key of equality deletes).
    pub primary_key: Vec<String>,
    /// PARTITIONED BY columns (identity partitions).
    pub partition_keys: Vec<String>,
}

const HADOOP_IMPL: &str = "org.apache.iceberg.hadoop.HadoopCatalog";
const JDBC_IMPL: &str = "org.apache.iceberg.jdbc.JdbcCatalog";

impl IcebergConfig {
    /// Reads and checks the options (no I/O).
    pub fn from_table(t: &TableSpec) -> Result<Self, ConnectorError> {
        let either = |a: &str, b: &str| t.option(a).or_else(|| t.option(b));
        let catalog_name = t.option("catalog-name").unwrap_or_default().to_owned();
        if catalog_name.trim().is_empty() {
            return Err(t.error("'catalog-name' must name the catalog (any name of yours)"));
        }
        let kind_name = match (t.option("catalog-type"), t.option("catalog-impl")) {
            (Some(_), Some(_)) => {
                return Err(t.error(
                    "set either 'catalog-type' or 'catalog-impl', not both (as Flink's Iceberg connector requires)",
                ))
            }
            (Some(ty), None) => ty.trim().to_ascii_lowercase(),
            (None, Some(im)) if im.trim() == HADOOP_IMPL => "hadoop".into(),
            (None, Some(im)) if im.trim() == JDBC_IMPL => "jdbc".into(),
            (None, Some(im)) => {
                return Err(t.error(format!(
                    "'catalog-impl' = '{}' is not a catalog tillflow has: use '{HADOOP_IMPL}' or '{JDBC_IMPL}'",
                    clip(im)
                )))
            }
            (None, None) => {
                return Err(t.error(
                    "'catalog-type' is not set, and Flink's default, 'hive', needs a Hive metastore tillflow does not speak: set 'catalog-type' = 'hadoop' (a warehouse directory) or 'jdbc' (with a jdbc:sqlite: or jdbc:postgresql: 'uri')",
                ))
            }
        };
        let warehouse = match t.option("warehouse") {
            None => None,
            // absolute, as the table's metadata records its location for every reader
            Some(w) => Some(
                crate::local_path(w)
                    .and_then(|p| std::path::absolute(&p).map_err(|e| e.to_string()))
                    .map_err(|m| t.error(format!("'warehouse': {m}")))?,
            ),
        };
        let kind = match kind_name.as_str() {
            "hadoop" => {
                if warehouse.is_none() {
                    return Err(t.error("'catalog-type' = 'hadoop' needs 'warehouse' (the directory that holds the tables)"));
                }
                if t.option("uri").is_some() {
                    return Err(t.error("'uri' is for a 'jdbc' catalog; a 'hadoop' catalog is its 'warehouse' directory"));
                }
                CatalogKind::Hadoop
            }
            "jdbc" => {
                let uri = t.option("uri").unwrap_or_default().trim();
                if let Some(rest) = uri.strip_prefix("jdbc:sqlite:") {
                    let path = rest.strip_prefix("file:").map_or(rest, |p| p);
                    let path = path.split('?').next().unwrap_or_default();
                    if path.is_empty() || path == ":memory:" {
                        return Err(t.error("'uri' = 'jdbc:sqlite:…' must name a database file (a catalog in memory would be lost when the job stops)"));
                    }
                    CatalogKind::Sqlite(PathBuf::from(path))
                } else if let Some(rest) = uri.strip_prefix("jdbc:postgresql://") {
                    if rest.split(['/', '?']).next().is_some_and(|h| h.contains('@')) {
                        // never repeated: it may hold a password
                        return Err(t.error("'uri': a user or password before the host is not read; set 'jdbc.user' and 'jdbc.password'"));
                    }
                    CatalogKind::Postgres {
                        url: uri.to_owned(),
                        user: t.option("jdbc.user").map(str::to_owned),
                        password: t.option("jdbc.password").map(str::to_owned),
                    }
                } else if uri.is_empty() {
                    return Err(t.error("a 'jdbc' catalog needs 'uri' = 'jdbc:sqlite:/path/catalog.db' or 'jdbc:postgresql://host:port/db'"));
                } else {
                    // only the scheme is quoted: the rest may hold a password
                    let scheme = uri.split("//").next().unwrap_or_default();
                    return Err(t.error(format!(
                        "'uri' starting '{}': the JDBC catalog runs on SQLite (jdbc:sqlite:/path/catalog.db) or PostgreSQL (jdbc:postgresql://host:port/db)",
                        clip(scheme)
                    )));
                }
            }
            "hive" | "rest" | "glue" | "nessie" => {
                return Err(t.error(format!(
                    "'catalog-type' = '{kind_name}' needs a catalog server tillflow does not speak: use 'hadoop' (a warehouse directory) or 'jdbc' (SQLite or PostgreSQL)"
                )))
            }
            other => {
                return Err(t.error(format!(
                    "'catalog-type' must be 'hadoop' or 'jdbc', got '{}'",
                    clip(other)
                )))
            }
        };
        let format = either("write-format", "write.format.default").unwrap_or("parquet");
        if !format.eq_ignore_ascii_case("parquet") {
            return Err(t.error(format!(
                "data files in '{}' are not supported: tillflow writes Iceberg data files in 'parquet'",
                clip(format)
            )));
        }
        let format_version = match t.option("format-version").map(str::trim) {
            None | Some("2") => 2,
            Some("1") => 1,
            Some(v) => {
                return Err(t.error(format!(
                    "'format-version' must be 1 or 2, got '{}'",
                    clip(v)
                )))
            }
        };
        let upsert = match either("upsert-enabled", "write.upsert.enabled") {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => {
                return Err(t.error(format!(
                    "'write.upsert.enabled' must be 'true' or 'false', got '{}'",
                    clip(v)
                )))
            }
        };
        if upsert && t.primary_key.is_empty() {
            return Err(t.error("'write.upsert.enabled' = 'true' needs a PRIMARY KEY (… NOT ENFORCED): the key whose old row each new one replaces"));
        }
        if !t.primary_key.is_empty() && format_version < 2 {
            return Err(t.error("a table with a PRIMARY KEY takes updates as equality deletes, which need 'format-version' = '2'"));
        }
        for k in &t.primary_key {
            let ty = t
                .schema
                .fields
                .iter()
                .find(|f| &f.name == k)
                .map(|f| f.data_type);
            if matches!(
                ty,
                Some(tillflow_types::DataType::Float) | Some(tillflow_types::DataType::Double)
            ) {
                return Err(t.error(format!(
                    "PRIMARY KEY column `{k}` is FLOAT/DOUBLE, which Iceberg does not allow as an identifier field"
                )));
            }
        }
        let size = |a: &str, b: Option<&str>, default: usize| -> Result<usize, ConnectorError> {
            match t.option(a).or_else(|| b.and_then(|b| t.option(b))) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| {
                        t.error(format!(
                            "'{a}' must be a positive number of bytes, got '{}'",
                            clip(v)
                        ))
                    }),
            }
        };
        let target_file_size = size(
            "write.target-file-size-bytes",
            Some("target-file-size-bytes"),
            512 << 20,
        )?;
        let row_group_bytes = size("write.parquet.row-group-size-bytes", None, 128 << 20)?;
        let page_bytes = size("write.parquet.page-size-bytes", None, 1 << 20)?;
        let level = match either("compression-level", "write.parquet.compression-level") {
            None => None,
            Some(v) => Some(v.trim().parse::<i32>().map_err(|_| {
                t.error(format!(
                    "'write.parquet.compression-level' must be an integer, got '{}'",
                    clip(v)
                ))
            })?),
        };
        let codec_name = either("compression-codec", "write.parquet.compression-codec")
            .unwrap_or("zstd")
            .trim()
            .to_ascii_lowercase();
        let codec = match codec_name.as_str() {
            "zstd" => {
                let l = level.unwrap_or(1);
                if !(1..=22).contains(&l) {
                    return Err(t.error(format!("zstd's compression level is 1 to 22, got {l}")));
                }
                Codec::Zstd(l)
            }
            "snappy" => Codec::Snappy,
            "gzip" => {
                let l = level.unwrap_or(6);
                if !(0..=9).contains(&l) {
                    return Err(t.error(format!("gzip's compression level is 0 to 9, got {l}")));
                }
                Codec::Gzip(l as u32)
            }
            "lz4" => Codec::Lz4,
            "uncompressed" | "none" => Codec::None,
            other => {
                return Err(t.error(format!(
                    "'write.parquet.compression-codec' must be zstd, snappy, gzip, lz4 or uncompressed, got '{}'",
                    clip(other)
                )))
            }
        };
        for p in &t.partition_keys {
            let Some(i) = t.schema.fields.iter().position(|f| &f.name == p) else {
                return Err(t.error(format!(
                    "PARTITIONED BY column `{p}` is not a column of the table"
                )));
            };
            let ty = t.schema.fields[i].data_type;
            if arrow::partition_literal(&tillflow_types::Row::default(), i, ty).is_err() {
                return Err(t.error(format!(
                    "PARTITIONED BY column `{p}` is {ty}: identity partitions take INT, BIGINT, STRING, DATE or BOOLEAN columns"
                )));
            }
            if !t.primary_key.is_empty() && !t.primary_key.contains(p) {
                return Err(t.error(format!(
                    "PARTITIONED BY column `{p}` must be part of the PRIMARY KEY: a key's delete must land in the partition of its rows (as Flink requires)"
                )));
            }
        }
        arrow::iceberg_schema(&t.schema, &t.primary_key).map_err(|m| ConnectorError::Schema {
            table: t.name.clone(),
            message: m,
        })?;
        let properties = t
            .options
            .iter()
            .filter(|(k, _)| k.starts_with("write."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(IcebergConfig {
            table: t.name.clone(),
            catalog_name,
            kind,
            warehouse,
            database: t
                .option("catalog-database")
                .unwrap_or("default_database")
                .to_owned(),
            table_name: t.option("catalog-table").unwrap_or(&t.name).to_owned(),
            format_version,
            upsert,
            target_file_size,
            codec,
            row_group_bytes,
            page_bytes,
            properties,
            primary_key: t.primary_key.clone(),
            partition_keys: t.partition_keys.clone(),
        })
    }

    /// `catalog.database.table`, for messages.
    pub fn display(&self) -> String {
        format!(
            "{}.{}.{}",
            self.catalog_name, self.database, self.table_name
        )
    }
}

impl Connector for Iceberg {
    fn name(&self) -> &'static str {
        "iceberg"
    }
    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }
    fn uses_format(&self) -> bool {
        false
    }
    fn source(&self, table: &TableSpec) -> Result<Box<dyn Source>, ConnectorError> {
        Err(table.error("reading an Iceberg table as a stream is not supported yet: tillflow writes Iceberg tables (read them with DuckDB, Spark, Trino or pyiceberg)"))
    }
    fn sink(&self, table: &TableSpec) -> Result<Box<dyn Sink>, ConnectorError> {
        Ok(Box::new(sink::IcebergSink::open(
            IcebergConfig::from_table(table)?,
            table.schema.clone(),
        )?))
    }
    fn sink_accepts_changes(&self, table: &TableSpec) -> bool {
        !table.primary_key.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tillflow_types::{DataType, Field, Schema};

    fn spec(opts: &[(&str, &str)], pk: &[&str]) -> TableSpec {
        TableSpec {
            name: "t".into(),
            schema: Schema::new(vec![
                Field::new("id", DataType::BigInt),
                Field::new("v", DataType::Double),
            ]),
            options: opts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            primary_key: pk.iter().map(|s| s.to_string()).collect(),
            metadata: vec![],
            partition_keys: vec![],
        }
    }

    fn err(opts: &[(&str, &str)], pk: &[&str]) -> String {
        match IcebergConfig::from_table(&spec(opts, pk)) {
            Ok(_) => panic!("accepted {opts:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn hadoop_and_jdbc_catalogs_parse() {
        let c = IcebergConfig::from_table(&spec(
            &[
                ("catalog-name", "lake"),
                ("catalog-type", "hadoop"),
                ("warehouse", "file:///tmp/wh"),
            ],
            &[],
        ))
        .unwrap();
        assert_eq!(c.kind, CatalogKind::Hadoop);
        assert_eq!(c.warehouse, Some(PathBuf::from("/tmp/wh")));
        assert_eq!(c.display(), "lake.default_database.t");
        assert_eq!(c.codec, Codec::Zstd(1));
        let c = IcebergConfig::from_table(&spec(
            &[
                ("catalog-name", "lake"),
                ("catalog-impl", "org.apache.iceberg.jdbc.JdbcCatalog"),
                ("uri", "jdbc:sqlite:file:/tmp/cat.db"),
                ("catalog-database", "retail"),
                ("catalog-table", "revenue"),
            ],
            &["id"],
        ))
        .unwrap();
        assert_eq!(c.kind, CatalogKind::Sqlite(PathBuf::from("/tmp/cat.db")));
        assert_eq!(c.display(), "lake.retail.revenue");
    }

    #[test]
    fn bad_options_are_named() {
        assert!(err(&[("catalog-name", "c")], &[]).contains("'hive', needs a Hive metastore"));
        assert!(
            err(&[("catalog-name", "c"), ("catalog-type", "hadoop")], &[])
                .contains("needs 'warehouse'")
        );
        assert!(err(
            &[
                ("catalog-name", "c"),
                ("catalog-type", "rest"),
                ("uri", "http://x")
            ],
            &[]
        )
        .contains("'rest' needs a catalog server"));
        let base = [
            ("catalog-name", "c"),
            ("catalog-type", "hadoop"),
            ("warehouse", "/tmp/w"),
        ];
        let with = |k: &'static str, v: &'static str| {
            let mut o = base.to_vec();
            o.push((k, v));
            o
        };
        assert!(err(&with("write.format.default", "orc"), &[]).contains("'orc' are not supported"));
        assert!(err(&with("format-version", "3"), &[]).contains("must be 1 or 2"));
        assert!(err(&with("write.upsert.enabled", "true"), &[]).contains("needs a PRIMARY KEY"));
        assert!(err(&with("format-version", "1"), &["id"]).contains("'format-version' = '2'"));
        assert!(err(&base, &["v"]).contains("FLOAT/DOUBLE"));
        assert!(err(&with("write.parquet.compression-codec", "brotli"), &[])
            .contains("zstd, snappy, gzip, lz4 or uncompressed"));
        assert!(err(&with("write.target-file-size-bytes", "-1"), &[])
            .contains("positive number of bytes"));
        assert!(err(
            &[
                ("catalog-name", "c"),
                ("catalog-type", "jdbc"),
                ("uri", "jdbc:mysql://h/db")
            ],
            &[]
        )
        .contains("SQLite"));
        // a password in a URI is never repeated
        for uri in [
            "jdbc:postgres://h/db?user=u&password=s3cret",
            "jdbc:postgresql://alice:s3cret@db/lake",
            "jdbc:postgresql://alice:s3cret@db:5432/lake",
        ] {
            let e = err(
                &[
                    ("catalog-name", "c"),
                    ("catalog-type", "jdbc"),
                    ("uri", uri),
                ],
                &[],
            );
            assert!(!e.contains("s3cret"), "{e}");
        }
    }
}
