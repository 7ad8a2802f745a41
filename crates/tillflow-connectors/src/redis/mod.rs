//! Redis: `'connector' = 'redis'`, a sink that serves live values by key and a lookup table.
//!
//! This module owns the connector and its options, parsed into a [`RedisConfig`] without I/O
//! (so `validate` catches bad values); [`sink`] writes a changelog into Redis and [`lookup`]
//! reads values back for `FOR SYSTEM_TIME AS OF` joins. Each row goes to the key its
//! `'key-pattern'` builds from columns (`stock:{store_id}:{sku}`), as one of three
//! `'data-type'`s: `hash` (a field per column, the default), `string` (the row as a JSON object,
//! the `json` format's encoding) or `sorted-set` (`'member-column'` scored by `'score-column'`
//! in the set the pattern names). Values are written as Flink's `CAST(v AS STRING)` writes them.
//! Updates overwrite, deletes delete (`DEL`, or `ZREM` of the member), so applying a change twice
//! leaves the same value: batches are written as `MULTI`/`EXEC` transactions and sent again
//! after a reconnect. With checkpoints, a checkpoint's changes and a marker key
//! (`tillflow:checkpoint:<writer>`) go in one transaction: exactly once. Passwords (in the URL
//! or `'password'`) never appear in a message.

pub mod lookup;
pub mod sink;

use crate::{opt, req, Connector, ConnectorError, OptionSpec, TableSpec};
use ::redis as rs;
use std::time::Duration;
use tillflow_runtime::operator::{Sink, Source};
use tillflow_runtime::ops::lookup::{LookupCache, LookupTable};
use tillflow_types::DataType;

/// The `redis` connector.
pub struct Redis;

const OPTIONS: &[OptionSpec] = &[
    req("url"),
    opt("username"),
    opt("password"),
    opt("data-type"),
    opt("key-pattern"),
    opt("member-column"),
    opt("score-column"),
    opt("ttl"),
    opt("sink.buffer-flush.max-rows"),
    opt("sink.buffer-flush.interval"),
    opt("tls.ca-cert"),
    opt("connection.timeout"),
    opt("connection.max-retry-timeout"),
    opt("lookup.cache"),
    opt("lookup.partial-cache.max-rows"),
    opt("lookup.partial-cache.expire-after-write"),
];

impl Connector for Redis {
    fn name(&self) -> &'static str {
        "redis"
    }
    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }
    fn uses_format(&self) -> bool {
        false
    }
    fn source(&self, table: &TableSpec) -> Result<Box<dyn Source>, ConnectorError> {
        Err(table.error("a redis table cannot be read as a stream; write to it, or look values up in it (`JOIN t FOR SYSTEM_TIME AS OF s.proc_time AS d ON …`)"))
    }
    fn sink(&self, table: &TableSpec) -> Result<Box<dyn Sink>, ConnectorError> {
        Ok(Box::new(sink::RedisSink::open(RedisConfig::from_table(
            table,
        )?)?))
    }
    fn sink_accepts_changes(&self, table: &TableSpec) -> bool {
        !table.primary_key.is_empty()
    }
    /// A connection per worker (each with its own batches and checkpoint marker).
    fn sink_per_worker(&self, _table: &TableSpec) -> bool {
        true
    }
    fn lookup(
        &self,
        table: &TableSpec,
        keys: &[usize],
    ) -> Result<Box<dyn LookupTable>, ConnectorError> {
        Ok(Box::new(lookup::RedisLookup::new(
            RedisConfig::from_table(table)?,
            table,
            keys,
        )?))
    }
    fn lookup_source(&self) -> bool {
        true
    }
}

/// How rows are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreAs {
    /// A hash per key, a field per column.
    Hash,
    /// A string per key: the row as a JSON object.
    String,
    /// A member of a sorted set per row, scored by a column.
    SortedSet,
}

/// A part of a key pattern.
#[derive(Clone, Debug, PartialEq)]
pub enum Segment {
    /// Text as written.
    Text(String),
    /// The value of a column (its position).
    Column(usize),
}

/// A table's options, checked.
#[derive(Clone)]
pub struct RedisConfig {
    /// The table (for messages).
    pub table: String,
    /// Where to connect, password included (never printed).
    pub info: rs::ConnectionInfo,
    /// `host:port/db`, for messages.
    pub display: String,
    /// How rows are stored.
    pub data_type: StoreAs,
    /// The key of a row.
    pub pattern: Vec<Segment>,
    /// Sorted sets: the member's and the score's columns.
    pub member: Option<usize>,
    /// Sorted sets: the score's column.
    pub score: Option<usize>,
    /// How long a written key lives.
    pub ttl: Option<Duration>,
    /// Changes buffered before a batch is written.
    pub max_rows: usize,
    /// A batch is written at least this often.
    pub interval: Option<Duration>,
    /// TLS: the CA certificate (PEM) the server's certificate must chain to, instead of the
    /// system's trust store.
    pub ca_cert: Option<std::path::PathBuf>,
    /// Connecting gives up after this long.
    pub connect_timeout: Duration,
    /// A failed write is retried (reconnecting) for this long.
    pub retry_for: Duration,
    /// Lookup caching.
    pub cache: Option<LookupCache>,
    /// Column names and types.
    pub columns: Vec<(String, DataType)>,
}

fn duration(table: &TableSpec, key: &str) -> Result<Option<Duration>, ConnectorError> {
    table
        .option(key)
        .map(|v| {
            tillflow_types::temporal::parse_duration_micros(v)
                .filter(|us| *us >= 0)
                .map(|us| Duration::from_micros(us as u64))
                .ok_or_else(|| {
                    table.error(format!(
                        "'{key}' = '{}' is not a duration (e.g. '500 ms', '30 s', '1 h')",
                        crate::format::clip(v)
                    ))
                })
        })
        .transpose()
}

/// Parses a key pattern: text with `{column}` parts.
pub fn parse_pattern(table: &TableSpec, pattern: &str) -> Result<Vec<Segment>, ConnectorError> {
    let mut out = Vec::new();
    let mut rest = pattern;
    while !rest.is_empty() {
        match rest.find('{') {
            None => {
                if rest.contains('}') {
                    return Err(table.error(format!(
                        "'key-pattern' = '{}': a '}}' without its '{{'",
                        crate::format::clip(pattern)
                    )));
                }
                out.push(Segment::Text(rest.to_owned()));
                break;
            }
            Some(open) => {
                if open > 0 {
                    out.push(Segment::Text(rest[..open].to_owned()));
                }
                let Some(close) = rest[open..].find('}').map(|c| open + c) else {
                    return Err(table.error(format!(
                        "'key-pattern' = '{}': a '{{' without its '}}'",
                        crate::format::clip(pattern)
                    )));
                };
                let name = rest[open + 1..close].trim();
                let Some(i) = table.schema.index_of(name) else {
                    return Err(table.error(format!(
                        "'key-pattern' names column `{}`, which the table does not have (columns: {})",
                        crate::format::clip(name),
                        column_list(table)
                    )));
                };
                out.push(Segment::Column(i));
                rest = &rest[close + 1..];
            }
        }
    }
    Ok(out)
}

fn column_list(table: &TableSpec) -> String {
    table
        .schema
        .fields
        .iter()
        .map(|f| f.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The columns a pattern uses, sorted, each once.
pub fn pattern_columns(pattern: &[Segment]) -> Vec<usize> {
    let mut cols: Vec<usize> = pattern
        .iter()
        .filter_map(|s| match s {
            Segment::Column(c) => Some(*c),
            Segment::Text(_) => None,
        })
        .collect();
    cols.sort_unstable();
    cols.dedup();
    cols
}

impl RedisConfig {
    /// Reads and checks the table's options (no I/O).
    pub fn from_table(table: &TableSpec) -> Result<Self, ConnectorError> {
        let url = table.option("url").unwrap_or_default();
        let lower = url.to_ascii_lowercase();
        let tls = lower.starts_with("rediss://") || lower.starts_with("valkeys://");
        if !(tls || lower.starts_with("redis://") || lower.starts_with("valkey://")) {
            return Err(table.error(
                "'url' must be a Redis URL: redis://[user[:password]@]host[:port][/db] (rediss:// for TLS)",
            ));
        }
        let ca_cert = table.option("tls.ca-cert").map(std::path::PathBuf::from);
        if ca_cert.is_some() && !tls {
            return Err(table.error("'tls.ca-cert' is for TLS connections: use a 'rediss://' URL"));
        }
        let mut info: rs::ConnectionInfo = rs::IntoConnectionInfo::into_connection_info(url)
            .map_err(|_| {
                table.error(
                    "'url' is not a valid Redis URL (redis://[user[:password]@]host[:port][/db])",
                )
            })?;
        let mut settings = info.redis_settings().clone();
        if let Some(u) = table.option("username") {
            settings = settings.set_username(u);
        }
        if let Some(p) = table.option("password") {
            settings = settings.set_password(p);
        }
        let db = settings.db();
        info = info.set_redis_settings(settings);
        let display = match info.addr() {
            rs::ConnectionAddr::Tcp(h, p) => format!("{h}:{p}/{db}"),
            rs::ConnectionAddr::TcpTls { host, port, .. } => format!("{host}:{port}/{db} (TLS)"),
            rs::ConnectionAddr::Unix(p) => format!("{}/{db}", p.display()),
            _ => format!("?/{db}"),
        };
        let data_type = match table.option("data-type").unwrap_or("hash") {
            t if t.eq_ignore_ascii_case("hash") => StoreAs::Hash,
            t if t.eq_ignore_ascii_case("string") => StoreAs::String,
            t if t.eq_ignore_ascii_case("sorted-set") => StoreAs::SortedSet,
            other => {
                return Err(table.error(format!(
                    "'data-type' = '{}' is not one of hash, string, sorted-set",
                    crate::format::clip(other)
                )))
            }
        };
        let column = |key: &str| -> Result<Option<usize>, ConnectorError> {
            table
                .option(key)
                .map(|name| {
                    table.schema.index_of(name.trim()).ok_or_else(|| {
                        table.error(format!(
                            "'{key}' names column `{}`, which the table does not have (columns: {})",
                            crate::format::clip(name),
                            column_list(table)
                        ))
                    })
                })
                .transpose()
        };
        let (member, score) = (column("member-column")?, column("score-column")?);
        let pk: Vec<usize> = table
            .primary_key
            .iter()
            .filter_map(|k| table.schema.index_of(k))
            .collect();
        let pattern = match table.option("key-pattern") {
            Some(p) => parse_pattern(table, p)?,
            None if data_type == StoreAs::SortedSet => vec![Segment::Text(table.name.clone())],
            None if !pk.is_empty() => {
                let mut s = vec![Segment::Text(table.name.clone())];
                for &k in &pk {
                    s.push(Segment::Text(":".into()));
                    s.push(Segment::Column(k));
                }
                s
            }
            None => {
                return Err(table.error(
                    "give 'key-pattern' (e.g. 'stock:{store_id}:{sku}') or a PRIMARY KEY: the key of each row is built from columns",
                ))
            }
        };
        let mut key_cols = pattern_columns(&pattern);
        match data_type {
            StoreAs::SortedSet => {
                let (Some(m), Some(s)) = (member, score) else {
                    return Err(table.error(
                        "'data-type' = 'sorted-set' needs 'member-column' (the member) and 'score-column' (a numeric column, its score)",
                    ));
                };
                let st = table.schema.fields[s].data_type;
                if !st.is_numeric() {
                    return Err(table.error(format!(
                        "'score-column' `{}` is {st}; a score must be numeric",
                        table.schema.fields[s].name
                    )));
                }
                key_cols.push(m);
                key_cols.sort_unstable();
                key_cols.dedup();
            }
            _ => {
                if member.is_some() || score.is_some() {
                    return Err(table.error(
                        "'member-column' and 'score-column' are for 'data-type' = 'sorted-set'",
                    ));
                }
            }
        }
        if !pk.is_empty() {
            let mut sorted = pk.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if sorted != key_cols {
                let what = if data_type == StoreAs::SortedSet {
                    "the columns of 'key-pattern' and 'member-column'"
                } else {
                    "the columns of 'key-pattern'"
                };
                return Err(table.error(format!(
                    "{what} ({}) must be the PRIMARY KEY ({}): each key of the table is one Redis {}",
                    key_cols
                        .iter()
                        .map(|&c| table.schema.fields[c].name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    table.primary_key.join(", "),
                    if data_type == StoreAs::SortedSet {
                        "member"
                    } else {
                        "key"
                    }
                )));
            }
        }
        if data_type == StoreAs::Hash {
            if let Some(f) = table.schema.fields.iter().find(|f| f.data_type.is_nested()) {
                return Err(table.error(format!(
                    "column `{}` of type {} cannot be a hash field; use 'data-type' = 'string' (the row as JSON)",
                    f.name, f.data_type
                )));
            }
        }
        let cache = match table.option("lookup.cache").unwrap_or("NONE") {
            c if c.eq_ignore_ascii_case("NONE") => None,
            c if c.eq_ignore_ascii_case("PARTIAL") => Some(LookupCache {
                max_rows: table
                    .int_option("lookup.partial-cache.max-rows", 10_000)?
                    .max(1) as usize,
                expire_after_write: duration(table, "lookup.partial-cache.expire-after-write")?,
            }),
            other => {
                return Err(table.error(format!(
                    "'lookup.cache' = '{}' is not one of NONE, PARTIAL",
                    crate::format::clip(other)
                )))
            }
        };
        let max_rows = table.int_option("sink.buffer-flush.max-rows", 1000)?;
        if max_rows < 1 {
            return Err(table.error("'sink.buffer-flush.max-rows' must be at least 1"));
        }
        Ok(RedisConfig {
            table: table.name.clone(),
            info,
            display,
            data_type,
            pattern,
            member,
            score,
            ttl: duration(table, "ttl")?.filter(|d| !d.is_zero()),
            max_rows: max_rows as usize,
            interval: duration(table, "sink.buffer-flush.interval")?
                .or(Some(Duration::from_secs(1)))
                .filter(|d| !d.is_zero()),
            ca_cert,
            connect_timeout: duration(table, "connection.timeout")?
                .unwrap_or(Duration::from_secs(5))
                .max(Duration::from_millis(1)),
            retry_for: duration(table, "connection.max-retry-timeout")?
                .unwrap_or(Duration::from_secs(60)),
            cache,
            columns: table
                .schema
                .fields
                .iter()
                .map(|f| (f.name.clone(), f.data_type))
                .collect(),
        })
    }

    /// Opens a connection.
    pub fn connect(&self) -> Result<rs::Connection, String> {
        let client = match &self.ca_cert {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("reading 'tls.ca-cert' {}: {e}", path.display()))?;
                rs::Client::build_with_tls(
                    self.info.clone(),
                    rs::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem),
                    },
                )
            }
            None => rs::Client::open(self.info.clone()),
        }
        .map_err(|e| redis_err(&e))?;
        let con = client
            .get_connection_with_timeout(self.connect_timeout)
            .map_err(|e| redis_err(&e))?;
        let io = Some(self.connect_timeout.max(Duration::from_secs(30)));
        con.set_read_timeout(io).map_err(|e| redis_err(&e))?;
        con.set_write_timeout(io).map_err(|e| redis_err(&e))?;
        Ok(con)
    }
}

/// A Redis error as text (the crate's messages carry no password).
pub fn redis_err(e: &rs::RedisError) -> String {
    crate::format::clip(&e.to_string()).into_owned()
}

/// Whether reconnecting and trying again can help.
pub fn transient(e: &rs::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.code(),
            Some("LOADING" | "BUSY" | "TRYAGAIN" | "MASTERDOWN")
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tillflow_types::{Field, Schema};

    fn table(opts: &[(&str, &str)], pk: &[&str]) -> TableSpec {
        let f = |n: &str, t: DataType| Field::new(n, t);
        TableSpec {
            name: "stock".into(),
            schema: Schema::new(vec![
                f("store_id", DataType::Int),
                f("sku", DataType::String(None)),
                f("on_hand", DataType::BigInt),
                f("tags", DataType::array(DataType::String(None))),
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
        match RedisConfig::from_table(&table(opts, pk)) {
            Ok(_) => panic!("{opts:?} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn options_are_checked_without_connecting() {
        let ok = RedisConfig::from_table(&table(
            &[
                ("url", "redis://:s3cret@127.0.0.1:6390/2"),
                ("data-type", "string"),
                ("key-pattern", "stock:{store_id}:{ sku }"),
                ("ttl", "1 h"),
            ],
            &["sku", "store_id"],
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.display, "127.0.0.1:6390/2");
        assert_eq!(ok.ttl, Some(Duration::from_secs(3600)));
        assert_eq!(
            ok.pattern,
            vec![
                Segment::Text("stock:".into()),
                Segment::Column(0),
                Segment::Text(":".into()),
                Segment::Column(1)
            ]
        );
        let url = ("url", "redis://:s3cret@localhost");
        for (opts, pk, want) in [
            (
                vec![url, ("key-pattern", "s:{sku}"), ("tls.ca-cert", "/ca.pem")],
                vec![],
                "use a 'rediss://' URL",
            ),
            (vec![("url", "http://h")], vec![], "must be a Redis URL"),
            (vec![url], vec![], "give 'key-pattern'"),
            (
                vec![url, ("key-pattern", "s:{store}")],
                vec![],
                "column `store`",
            ),
            (
                vec![url, ("key-pattern", "s:{sku")],
                vec![],
                "without its '}'",
            ),
            (
                vec![url, ("key-pattern", "s:{sku}")],
                vec!["sku", "store_id"],
                "must be the PRIMARY KEY",
            ),
            (
                vec![url, ("data-type", "list"), ("key-pattern", "x")],
                vec![],
                "not one of hash, string, sorted-set",
            ),
            (
                vec![url, ("data-type", "sorted-set")],
                vec![],
                "needs 'member-column'",
            ),
            (
                vec![
                    url,
                    ("data-type", "sorted-set"),
                    ("member-column", "sku"),
                    ("score-column", "sku"),
                ],
                vec![],
                "must be numeric",
            ),
            (
                vec![
                    url,
                    ("key-pattern", "s:{sku}"),
                    ("data-type", "string"),
                    ("ttl", "soon"),
                ],
                vec![],
                "not a duration",
            ),
        ] {
            let e = err(&opts, &pk);
            assert!(e.contains(want), "{opts:?}: {e}");
            assert!(!e.contains("s3cret"), "{e}");
        }
        // a hash field holds a scalar; the JSON string holds anything
        let e = err(&[url, ("key-pattern", "s:{sku}")], &[]);
        assert!(e.contains("`tags`") && e.contains("'string'"), "{e}");
        // a sorted set's key is its set and member
        assert!(RedisConfig::from_table(&table(
            &[
                url,
                ("data-type", "sorted-set"),
                ("key-pattern", "top:{store_id}"),
                ("member-column", "sku"),
                ("score-column", "on_hand"),
            ],
            &["store_id", "sku"],
        ))
        .is_ok());
    }
}
