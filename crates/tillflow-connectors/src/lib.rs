//! tillflow's connectors and formats.
//!
//! A connector turns a table's `WITH (...)` options into a [`Source`] or a [`Sink`]; a format turns
//! bytes into rows and back. This crate owns the registry of both, the validation of options (an
//! unknown or missing option is an error that names it and lists the valid ones), and the handling
//! of malformed input (fail with the place of the fault, skip and count, or dead-letter).
//! One module per external system: [`filesystem`], [`kafka`], [`postgres`], [`postgres_cdc`], [`redis`], [`iceberg`], [`sqlite`], [`print`], [`blackhole`],
//! [`datagen`], and the built-in generators, [`retail`] and [`nexmark`] (the Nexmark benchmark's).

pub mod arrow_rows;
pub mod blackhole;
pub mod chunked;
pub mod collect;
pub mod datagen;
pub mod deadletter;
pub mod filesystem;
pub mod format;
#[cfg(feature = "iceberg")]
pub mod iceberg;
pub mod kafka;
pub mod late;
pub mod nexmark;
pub mod objectstore;
pub mod postgres;
pub mod postgres_cdc;
pub mod print;
pub mod recent;
pub mod redis;
pub mod retail;
pub mod sqlite;
pub mod upsert;

use std::collections::BTreeMap;
use thiserror::Error;
use tillflow_runtime::operator::{Sink, Source};
use tillflow_types::Schema;

/// An error building or running a connector.
#[derive(Debug, Error)]
pub enum ConnectorError {
    /// A `WITH` option is unknown, missing or has a bad value.
    #[error("table `{table}`: {message}")]
    Options {
        /// The table.
        table: String,
        /// What is wrong and what would be valid.
        message: String,
    },
    /// An I/O failure, with the path involved.
    #[error("{path}: {source}")]
    Io {
        /// File or directory.
        path: String,
        /// The failure.
        source: std::io::Error,
    },
    /// The table's schema has a type the format cannot handle.
    #[error("table `{table}`: {message}")]
    Schema {
        /// The table.
        table: String,
        /// What is wrong.
        message: String,
    },
}

/// A table as a connector sees it: its name, physical columns and options.
#[derive(Clone, Debug)]
pub struct TableSpec {
    /// Table name (for messages).
    pub name: String,
    /// Physical columns (computed columns excluded).
    pub schema: Schema,
    /// `WITH` options, keys as written.
    pub options: BTreeMap<String, String>,
    /// Primary key columns (`PRIMARY KEY (...) NOT ENFORCED`).
    pub primary_key: Vec<String>,
    /// Metadata columns read by the source, `(column, key)`: their values follow the physical
    /// columns in the source's rows.
    pub metadata: Vec<(String, String)>,
    /// `PARTITIONED BY` columns (the filesystem connector writes a directory per value).
    pub partition_keys: Vec<String>,
}

impl TableSpec {
    /// The value of option `key`.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str)
    }

    /// An options error for this table.
    pub fn error(&self, message: impl Into<String>) -> ConnectorError {
        ConnectorError::Options {
            table: self.name.clone(),
            message: message.into(),
        }
    }

    /// A boolean option (`'true'`/`'false'`), `default` when absent.
    pub fn bool_option(&self, key: &str, default: bool) -> Result<bool, ConnectorError> {
        match self.option(key) {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(self.error(format!(
                "option '{key}' must be 'true' or 'false', got '{v}'"
            ))),
        }
    }

    /// An integer option, `default` when absent.
    pub fn int_option(&self, key: &str, default: i64) -> Result<i64, ConnectorError> {
        match self.option(key) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| self.error(format!("option '{key}' must be an integer, got '{v}'"))),
        }
    }
}

/// One option a connector or format accepts.
#[derive(Clone, Copy, Debug)]
pub struct OptionSpec {
    /// The key.
    pub key: &'static str,
    /// Whether it must be given.
    pub required: bool,
}

const fn opt(key: &'static str) -> OptionSpec {
    OptionSpec {
        key,
        required: false,
    }
}

const fn req(key: &'static str) -> OptionSpec {
    OptionSpec {
        key,
        required: true,
    }
}

/// Options every table accepts, whatever its connector.
pub const COMMON_OPTIONS: &[OptionSpec] = &[
    req("connector"),
    opt("dead-letter.path"),
    opt("late-data.path"),
];

/// Which connector: its options and what it can be.
pub trait Connector: Sync {
    /// The `'connector'` value.
    fn name(&self) -> &'static str;
    /// Options of its own.
    fn options(&self) -> &'static [OptionSpec];
    /// Whether it reads/writes through a `'format'`.
    fn uses_format(&self) -> bool;
    /// Builds a source.
    fn source(&self, table: &TableSpec) -> Result<Box<dyn Source>, ConnectorError>;
    /// Builds the source of a job running on `workers` workers: one that can read in parallel
    /// without changing its records' order (per split) may use that many threads. The default
    /// builds [`Connector::source`].
    fn source_for_workers(
        &self,
        table: &TableSpec,
        _workers: usize,
    ) -> Result<Box<dyn Source>, ConnectorError> {
        self.source(table)
    }
    /// Builds a sink.
    fn sink(&self, table: &TableSpec) -> Result<Box<dyn Sink>, ConnectorError>;
    /// Whether its sink accepts update and delete rows (for this table's options).
    fn sink_accepts_changes(&self, table: &TableSpec) -> bool;
    /// Whether each worker of a parallel job may write a sink of its own (a part file each, as
    /// Flink's file sink does); otherwise one writer takes the rows of every worker.
    fn sink_per_worker(&self, _table: &TableSpec) -> bool {
        false
    }
    /// A table to look rows up in by the columns `keys` (lookup joins); most connectors have none.
    fn lookup(
        &self,
        table: &TableSpec,
        _keys: &[usize],
    ) -> Result<Box<dyn tillflow_runtime::ops::lookup::LookupTable>, ConnectorError> {
        Err(table.error(format!(
            "connector '{}' cannot be used in a lookup join (FOR SYSTEM_TIME AS OF): use 'jdbc', 'postgres' or 'redis'",
            self.name()
        )))
    }
    /// Whether its tables can be looked up by key (processing-time lookup joins).
    fn lookup_source(&self) -> bool {
        false
    }
    /// Whether its source produces a changelog (updates and deletes), not only inserts.
    fn source_is_changelog(&self, _table: &TableSpec) -> bool {
        false
    }
    /// The metadata keys its source can fill (`col TYPE METADATA FROM 'key'`), with their types.
    fn metadata(&self) -> &'static [(&'static str, tillflow_types::DataType)] {
        &[]
    }
}

/// A source's row schema: the table's physical columns, then its metadata columns, with each
/// metadata column's index in `available` (the keys the connector can fill). An unknown key is
/// an error naming the keys there are.
pub fn with_metadata(
    table: &TableSpec,
    available: &[(&str, tillflow_types::DataType)],
) -> Result<(Schema, Vec<usize>), ConnectorError> {
    let mut schema = table.schema.clone();
    let mut metadata = Vec::new();
    for (name, key) in &table.metadata {
        let Some(k) = available.iter().position(|(m, _)| m == key) else {
            return Err(table.error(format!(
                "metadata column `{name}`: unknown key '{key}' (available: {})",
                available
                    .iter()
                    .map(|(m, _)| *m)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        metadata.push(k);
        schema
            .fields
            .push(tillflow_types::Field::new(name.clone(), available[k].1));
    }
    Ok((schema, metadata))
}

/// Every connector this build knows.
pub fn connectors() -> &'static [&'static dyn Connector] {
    &[
        &filesystem::FileSystem,
        &print::Print,
        &collect::Collect,
        &blackhole::Blackhole,
        &datagen::DataGen,
        &sqlite::Sqlite,
        &retail::Retail,
        &nexmark::Nexmark,
        &kafka::Kafka,
        &kafka::UpsertKafka,
        &postgres::Jdbc,
        &postgres::Postgres,
        &redis::Redis,
        #[cfg(feature = "iceberg")]
        &iceberg::Iceberg,
        &postgres_cdc::PostgresCdc,
    ]
}

/// A local path from a path option as Flink writes it: a plain path, or a `file:` URI
/// (`file:///data/in`, `file://localhost/data/in`, Hadoop's `file:/data/in`; `%20`-style escapes
/// decoded). Another scheme (`s3://`, `hdfs://`, ...) is an error saying so.
pub fn local_path(value: &str) -> Result<std::path::PathBuf, String> {
    let Some(scheme_end) = value.find(':').filter(|&i| {
        i > 1 // a Windows drive letter is not a scheme
            && value[..i]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            && value[i + 1..].starts_with('/')
    }) else {
        return Ok(std::path::PathBuf::from(value));
    };
    let scheme = &value[..scheme_end];
    if !scheme.eq_ignore_ascii_case("file") {
        return Err(format!(
            "'{scheme}:' paths are not supported (tillflow reads and writes local files: a path or file:///path)"
        ));
    }
    let rest = &value[scheme_end + 1..];
    let path = match rest.strip_prefix("//") {
        // file://host/path: only the local host
        Some(after) => {
            let slash = after.find('/').unwrap_or(after.len());
            let host = &after[..slash];
            if !host.is_empty() && !host.eq_ignore_ascii_case("localhost") {
                return Err(format!(
                    "file://{host}/… names another host; tillflow reads local files (file:///path)"
                ));
            }
            &after[slash..]
        }
        None => rest,
    };
    if path.is_empty() {
        return Err("the file: URI names no path (file:///path)".into());
    }
    let mut bytes = Vec::with_capacity(path.len());
    let raw = path.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if raw[i] == b'%' && i + 2 < raw.len() {
            if let (Some(h), Some(l)) = (hex(raw[i + 1]), hex(raw[i + 2])) {
                bytes.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        bytes.push(raw[i]);
        i += 1;
    }
    String::from_utf8(bytes)
        .map(std::path::PathBuf::from)
        .map_err(|_| "the file: URI's %-escapes are not UTF-8".into())
}

/// Looks up a connector by name.
pub fn connector(name: &str) -> Option<&'static dyn Connector> {
    connectors().iter().copied().find(|c| c.name() == name)
}

/// Validates a table's options against its connector (and format) and returns the connector.
pub fn validate(table: &TableSpec) -> Result<&'static dyn Connector, ConnectorError> {
    validate_noting(table).map(|(c, _)| c)
}

/// [`validate`], also returning what the user should be told about the options (a Flink option
/// accepted without effect), naming options, never their values.
pub fn validate_noting(
    table: &TableSpec,
) -> Result<(&'static dyn Connector, Vec<String>), ConnectorError> {
    let name = table.option("connector").ok_or_else(|| {
        table.error(format!(
            "missing required option 'connector' (one of: {})",
            connectors()
                .iter()
                .map(|c| c.name())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let conn = connector(name).ok_or_else(|| {
        table.error(format!(
            "unknown connector '{name}' (available: {})",
            connectors()
                .iter()
                .map(|c| c.name())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    // paths as Flink writes them: plain or file:///…, never another scheme
    for key in ["path", "dead-letter.path", "late-data.path"] {
        if let (Some(v), true) = (
            table.option(key),
            key != "path" || matches!(conn.name(), "filesystem" | "sqlite"),
        ) {
            local_path(v).map_err(|m| table.error(format!("option '{key}': {m}")))?;
        }
    }
    let mut notices = Vec::new();
    if conn.name() == "nexmark" {
        nexmark::check(table)?;
    }
    if conn.name() == "redis" {
        redis::RedisConfig::from_table(table)?;
    }
    #[cfg(feature = "iceberg")]
    if conn.name() == "iceberg" {
        iceberg::IcebergConfig::from_table(table)?;
    }
    if conn.name() == "postgres-cdc" {
        postgres_cdc::CdcConfig::from_table(table)?;
    }
    if conn.name() == "kafka" || conn.name() == "upsert-kafka" {
        kafka::layout(table, conn.name() == "upsert-kafka")?;
        notices = kafka::properties::client_properties(table)?.notices;
    }
    let mut allowed: Vec<OptionSpec> = COMMON_OPTIONS.to_vec();
    allowed.extend_from_slice(conn.options());
    if conn.uses_format() {
        allowed.push(req("format"));
        if let Some(f) = table.option("format") {
            let fmt = format::format(f).ok_or_else(|| {
                table.error(format!(
                    "unknown format '{f}' (available: {})",
                    format::names()
                ))
            })?;
            allowed.extend_from_slice(fmt);
            if format::lookup(f).is_some_and(|x| !x.holds_records()) && conn.name() != "filesystem"
            {
                return Err(table.error(format!(
                    "format '{f}' is a file format, written and read by the filesystem connector; connector '{}' takes one of {}",
                    conn.name(),
                    format::record_format_names()
                )));
            }
        }
    }
    // Flink's json format writes a MAP as an object, whose keys are strings
    for key in ["format", "value.format", "key.format"] {
        if let Some(f @ ("json" | "debezium-json")) = table.option(key) {
            if let Some((c, m)) = table
                .schema
                .fields
                .iter()
                .find_map(|c| non_string_map_key(c.data_type).map(|m| (c, m)))
            {
                let what = if matches!(m, tillflow_types::DataType::Multiset(_)) {
                    "elements"
                } else {
                    "keys"
                };
                return Err(table.error(format!(
                    "column `{}`: the {f} format does not support {m}, whose {what} are not strings (as Flink: JSON object keys are text)",
                    c.name
                )));
            }
        }
    }
    // csv holds one level of ROW or ARRAY (joined by the element delimiter), raw none
    for key in ["format", "value.format", "key.format"] {
        if let Some(f @ ("csv" | "raw")) = table.option(key) {
            let deep = |t: tillflow_types::DataType| match t {
                tillflow_types::DataType::Row(r) => {
                    f == "raw" || r.fields.iter().any(|(_, x)| x.is_nested())
                }
                tillflow_types::DataType::Array(e) | tillflow_types::DataType::Multiset(e) => {
                    f == "raw" || e.is_nested()
                }
                _ => false,
            };
            if let Some(c) = table.schema.fields.iter().find(|c| deep(c.data_type)) {
                return Err(table.error(format!(
                    "column `{}` of type {} cannot be read or written with '{key}' = '{f}' (csv holds a ROW or ARRAY of scalars; use 'json' for deeper nesting)",
                    c.name, c.data_type
                )));
            }
        }
    }
    let list = || {
        let mut keys: Vec<&str> = allowed.iter().map(|o| o.key).collect();
        keys.sort_unstable();
        keys.join(", ")
    };
    let unknown: Vec<&str> = table
        .options
        .keys()
        .map(String::as_str)
        .filter(|k| !allowed.iter().any(|o| o.key == *k) && !is_pattern_option(conn, table, k))
        .collect();
    if !unknown.is_empty() {
        return Err(table.error(format!(
            "unsupported option{} {} for connector '{}'. Supported options: {}",
            if unknown.len() > 1 { "s" } else { "" },
            unknown
                .iter()
                .map(|k| format!("'{k}'"))
                .collect::<Vec<_>>()
                .join(", "),
            conn.name(),
            list()
        )));
    }
    if conn.uses_format() && format::is_file_format(table) {
        format::check(table)?;
    }
    if !table.partition_keys.is_empty() && !matches!(conn.name(), "filesystem" | "iceberg") {
        return Err(table.error(format!(
            "PARTITIONED BY ({}): connector '{}' has no partitions; the filesystem connector writes a directory per partition value, the iceberg connector an Iceberg partition",
            table.partition_keys.join(", "),
            conn.name()
        )));
    }
    if conn.name() == "filesystem" {
        filesystem::sink::check(table)?;
    }
    if let Some(missing) = allowed
        .iter()
        .find(|o| o.required && !table.options.contains_key(o.key))
    {
        return Err(table.error(format!(
            "missing required option '{}' for connector '{}'. Supported options: {}",
            missing.key,
            conn.name(),
            list()
        )));
    }
    Ok((conn, notices))
}

/// Options with a field name in them (`fields.qty.kind`) are checked by the connector itself.
fn is_pattern_option(conn: &dyn Connector, table: &TableSpec, key: &str) -> bool {
    (matches!(conn.name(), "kafka" | "upsert-kafka") && kafka::is_pattern_option(table, key))
        || (conn.name() == "datagen" && key.starts_with("fields."))
        || (conn.name() == "retail" && tillflow_retail::config::KEYS.contains(&key))
}

/// The first MAP type inside `t` (itself or nested) whose key is not a string, if any — or
/// MULTISET whose elements are not strings (Flink's json format writes a MULTISET as a map of
/// element → count and refuses it the same way).
fn non_string_map_key(t: tillflow_types::DataType) -> Option<tillflow_types::DataType> {
    use tillflow_types::DataType as T;
    match t {
        T::Map(k, _) if !matches!(k, T::String(_)) => Some(t),
        T::Multiset(e) if !matches!(e, T::String(_)) => Some(t),
        T::Map(_, v) => non_string_map_key(*v),
        T::Array(e) | T::Multiset(e) => non_string_map_key(*e),
        T::Row(r) => r.fields.iter().find_map(|(_, f)| non_string_map_key(*f)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(opts: &[(&str, &str)]) -> TableSpec {
        TableSpec {
            name: "events".into(),
            schema: Schema::default(),
            options: opts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            primary_key: vec![],
            metadata: vec![],
            partition_keys: vec![],
        }
    }

    #[test]
    fn unknown_and_missing_options_are_named() {
        let e = validate(&spec(&[
            ("connector", "filesystem"),
            ("pth", "x"),
            ("format", "json"),
        ]))
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("'pth'") && e.contains("path"), "{e}");
        let e = validate(&spec(&[("connector", "filesystem"), ("format", "json")]))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("missing required option 'path'"), "{e}");
        let e = validate(&spec(&[("connector", "kafkaa")]))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("unknown connector 'kafkaa'"), "{e}");
        assert!(validate(&spec(&[
            ("connector", "filesystem"),
            ("path", "/tmp/x"),
            ("format", "json"),
            ("json.ignore-parse-errors", "true")
        ]))
        .is_ok());
    }

    #[test]
    fn paths_take_file_uris() {
        use std::path::PathBuf;
        for (given, want) in [
            ("/data/in.ndjson", "/data/in.ndjson"),
            ("rel/out", "rel/out"),
            ("file:///data/in.ndjson", "/data/in.ndjson"),
            ("file://localhost/data/in", "/data/in"),
            ("file:/data/in", "/data/in"),
            ("file:///data/my%20dir/x", "/data/my dir/x"),
            ("C:/data", "C:/data"),
        ] {
            assert_eq!(local_path(given), Ok(PathBuf::from(want)), "{given}");
        }
        let e = local_path("s3://bucket/x").unwrap_err();
        assert!(e.contains("'s3:' paths are not supported"), "{e}");
        assert!(local_path("file://otherhost/x").is_err());
        let Err(e) = validate(&spec(&[
            ("connector", "filesystem"),
            ("path", "hdfs:///warehouse/t"),
            ("format", "json"),
        ])) else {
            panic!("an hdfs: path validated");
        };
        let e = e.to_string();
        assert!(
            e.contains("option 'path': 'hdfs:' paths are not supported"),
            "{e}"
        );
    }
}
