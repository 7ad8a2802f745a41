//! PostgreSQL change data capture: `'connector' = 'postgres-cdc'`, with Flink CDC's option names.
//!
//! This module owns the connector and its options ([`CdcConfig`], checked without I/O); the
//! source is [`source`], the `pgoutput` messages it reads are [`pgoutput`]. The table is read
//! whole first (`'scan.startup.mode'` = `initial`, the default; `latest-offset` skips it), then
//! its changes follow from a logical replication slot (`'slot.name'`, created with the
//! `pgoutput` plugin if missing) through a publication of the table (`'debezium.publication.name'`,
//! created or extended if missing), read with `pg_logical_slot_peek_binary_changes` and
//! confirmed with `pg_replication_slot_advance` only once the rows they produced are safe in the
//! sinks (after a completed checkpoint, or every second's flush without checkpoints). The rows
//! are an upsert stream on the table's `PRIMARY KEY` (a new row per insert and update, the key
//! per delete), which the plan normalizes into a full changelog, as Flink CDC's tables are.

pub mod pgoutput;
pub mod source;

use crate::{opt, req, Connector, ConnectorError, OptionSpec, TableSpec};
use tillflow_runtime::operator::{Sink, Source};
use tillflow_types::DataType;

/// The `postgres-cdc` connector.
pub struct PostgresCdc;

const OPTIONS: &[OptionSpec] = &[
    req("hostname"),
    opt("port"),
    req("username"),
    opt("password"),
    req("database-name"),
    opt("schema-name"),
    req("table-name"),
    req("slot.name"),
    opt("decoding.plugin.name"),
    opt("debezium.publication.name"),
    opt("scan.startup.mode"),
    opt("scan.poll.interval"),
];

/// Metadata a CDC table's columns can read (`op_ts` is 0 for rows of the initial read, as in
/// Flink CDC).
pub const METADATA: &[(&str, DataType)] = &[
    ("table_name", DataType::String(None)),
    ("schema_name", DataType::String(None)),
    ("database_name", DataType::String(None)),
    ("op_ts", DataType::TimestampLtz(3)),
];

impl Connector for PostgresCdc {
    fn name(&self) -> &'static str {
        "postgres-cdc"
    }
    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }
    fn uses_format(&self) -> bool {
        false
    }
    fn source(&self, table: &TableSpec) -> Result<Box<dyn Source>, ConnectorError> {
        Ok(Box::new(source::CdcSource::open(
            CdcConfig::from_table(table)?,
            table,
        )?))
    }
    fn sink(&self, table: &TableSpec) -> Result<Box<dyn Sink>, ConnectorError> {
        Err(table.error(
            "a postgres-cdc table is read only; write to PostgreSQL with 'connector' = 'jdbc' or 'postgres'",
        ))
    }
    fn sink_accepts_changes(&self, _table: &TableSpec) -> bool {
        false
    }
    fn source_is_changelog(&self, _table: &TableSpec) -> bool {
        true
    }
    fn metadata(&self) -> &'static [(&'static str, DataType)] {
        METADATA
    }
}

/// Where the initial read starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Startup {
    /// The whole table, then its changes.
    Initial,
    /// Only changes from now on.
    LatestOffset,
}

/// A CDC table's options, checked.
#[derive(Clone)]
pub struct CdcConfig {
    /// The table (for messages).
    pub table: String,
    /// Connection settings (the password never printed).
    pub config: postgres::Config,
    /// `host:port/db as user`.
    pub display: String,
    /// Database, schema and table read.
    pub database: String,
    /// Schema.
    pub schema: String,
    /// Table.
    pub relation: String,
    /// Replication slot.
    pub slot: String,
    /// Publication.
    pub publication: String,
    /// Where to start.
    pub startup: Startup,
    /// How often changes are fetched when there are none.
    pub poll_interval: std::time::Duration,
}

fn identifier(table: &TableSpec, key: &str, v: &str) -> Result<String, ConnectorError> {
    if v.is_empty()
        || v.len() > 63
        || !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
    {
        return Err(table.error(format!(
            "'{key}' = '{}' must be a PostgreSQL name of letters, digits and '_' (at most 63)",
            crate::format::clip(v)
        )));
    }
    Ok(v.to_owned())
}

impl CdcConfig {
    /// Reads and checks the table's options (no I/O).
    pub fn from_table(table: &TableSpec) -> Result<Self, ConnectorError> {
        if table.primary_key.is_empty() {
            return Err(table.error(
                "a postgres-cdc table needs a PRIMARY KEY (...) NOT ENFORCED: its changes are applied per key",
            ));
        }
        if let Some(p) = table.option("decoding.plugin.name") {
            if !p.eq_ignore_ascii_case("pgoutput") {
                return Err(table.error(format!(
                    "'decoding.plugin.name' = '{}': tillflow reads 'pgoutput' (PostgreSQL's own, built in since 10)",
                    crate::format::clip(p)
                )));
            }
        }
        let startup = match table.option("scan.startup.mode").unwrap_or("initial") {
            m if m.eq_ignore_ascii_case("initial") => Startup::Initial,
            m if m.eq_ignore_ascii_case("latest-offset") => Startup::LatestOffset,
            other => {
                return Err(table.error(format!(
                    "'scan.startup.mode' = '{}' is not one of initial, latest-offset",
                    crate::format::clip(other)
                )))
            }
        };
        let port = table.int_option("port", 5432)?;
        let port = u16::try_from(port)
            .map_err(|_| table.error(format!("'port' = '{port}' is not a TCP port")))?;
        let host = table.option("hostname").unwrap_or_default();
        let user = table.option("username").unwrap_or_default();
        let database = table.option("database-name").unwrap_or_default().to_owned();
        let mut config = postgres::Config::new();
        config
            .host(host)
            .port(port)
            .user(user)
            .dbname(&database)
            .application_name("tillflow-cdc")
            .connect_timeout(std::time::Duration::from_secs(10));
        if let Some(p) = table.option("password") {
            config.password(p);
        }
        let poll_interval = match table.option("scan.poll.interval") {
            None => std::time::Duration::from_millis(200),
            Some(v) => tillflow_types::temporal::parse_duration_micros(v)
                .filter(|us| *us > 0)
                .map(|us| std::time::Duration::from_micros(us as u64))
                .ok_or_else(|| {
                    table.error(format!(
                        "'scan.poll.interval' = '{}' is not a duration (e.g. '200 ms')",
                        crate::format::clip(v)
                    ))
                })?,
        };
        Ok(CdcConfig {
            table: table.name.clone(),
            display: format!("{host}:{port}/{database} as {user}"),
            config,
            schema: table.option("schema-name").unwrap_or("public").to_owned(),
            relation: table.option("table-name").unwrap_or_default().to_owned(),
            slot: identifier(
                table,
                "slot.name",
                table.option("slot.name").unwrap_or_default(),
            )?,
            publication: identifier(
                table,
                "debezium.publication.name",
                table
                    .option("debezium.publication.name")
                    .unwrap_or("dbz_publication"),
            )?,
            database,
            startup,
            poll_interval,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tillflow_types::{Field, Schema};

    fn table(opts: &[(&str, &str)], pk: &[&str]) -> TableSpec {
        TableSpec {
            name: "prices".into(),
            schema: Schema::new(vec![
                Field::new("sku", DataType::String(None)),
                Field::new("price", DataType::Decimal(10, 2)),
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

    #[test]
    fn options_are_checked_without_connecting() {
        let base = [
            ("connector", "postgres-cdc"),
            ("hostname", "db.internal"),
            ("username", "cdc"),
            ("password", "pw-secret-1"),
            ("database-name", "shop"),
            ("table-name", "prices"),
            ("slot.name", "prices_slot"),
        ];
        let c = CdcConfig::from_table(&table(&base, &["sku"])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.display, "db.internal:5432/shop as cdc");
        assert_eq!(c.publication, "dbz_publication");
        assert_eq!(c.startup, Startup::Initial);
        for (extra, pk, want) in [
            (vec![], vec![], "needs a PRIMARY KEY"),
            (
                vec![("decoding.plugin.name", "wal2json")],
                vec!["sku"],
                "reads 'pgoutput'",
            ),
            (
                vec![("scan.startup.mode", "earliest")],
                vec!["sku"],
                "not one of initial, latest-offset",
            ),
            (vec![("port", "70000")], vec!["sku"], "not a TCP port"),
            (
                vec![("slot.name", "bad-slot; drop")],
                vec!["sku"],
                "'slot.name'",
            ),
        ] {
            let mut opts: Vec<(&str, &str)> = base.to_vec();
            opts.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
            opts.extend(extra.iter().copied());
            let e = match CdcConfig::from_table(&table(&opts, &pk)) {
                Ok(_) => panic!("{extra:?} accepted"),
                Err(e) => e.to_string(),
            };
            assert!(e.contains(want), "{extra:?}: {e}");
            assert!(!e.contains("pw-secret-1"));
        }
    }
}
