//! PostgreSQL sink: Flink's `'connector' = 'jdbc'` (with a `jdbc:postgresql://` URL and Flink's
//! option names) and the `'connector' = 'postgres'` alias taking a `postgres://` URL.
//!
//! Rows are buffered and written in transactions of `'sink.buffer-flush.max-rows'` rows (or every
//! `'sink.buffer-flush.interval'`) as multi-row statements whose every value is a bound parameter.
//! Insert-only results are appended; with a `PRIMARY KEY (...) NOT ENFORCED`, inserts and updates
//! are upserts (`INSERT ... ON CONFLICT (key) DO UPDATE`) and deletes (and a `-U` whose `+U` was
//! filtered out) delete; the buffer keeps only each key's last change, as Flink's JDBC sink does.
//! Each flush records `(sink id, batch number)` in `tillflow_sink_batches` in the same
//! transaction, so when the connection breaks during a commit, the retry after reconnecting can
//! tell whether the batch landed: a restarted server neither loses nor duplicates rows. At
//! start-up the table is checked against the declared schema (or created with
//! `'sink.create-table' = 'true'`). With checkpoints the sink is exactly-once: a checkpoint's
//! rows are written in one transaction that also records `(writer, run, checkpoint)` in
//! `tillflow_checkpoints`. Passwords are never part of a message.

use crate::{opt, req, Connector, ConnectorError, OptionSpec, TableSpec};
use postgres::types::{IsNull, ToSql, Type};
use postgres::{Client, Config, NoTls};
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tillflow_runtime::operator::{Sink, Source, TransactionalSink};
use tillflow_runtime::ops::lookup::{LookupCache, LookupTable};
use tillflow_runtime::{Result, RuntimeError};
use tillflow_types::{DataType, Row, RowKind, Value};

/// The `jdbc` connector (PostgreSQL URLs).
pub struct Jdbc;
/// The `postgres` connector: `jdbc` with a plain `postgres://` URL.
pub struct Postgres;

const OPTIONS: &[OptionSpec] = &[
    req("url"),
    req("table-name"),
    opt("username"),
    opt("password"),
    opt("driver"),
    opt("sink.buffer-flush.max-rows"),
    opt("sink.buffer-flush.interval"),
    opt("sink.max-retries"),
    opt("sink.parallelism"),
    opt("sink.create-table"),
    opt("connection.max-retry-timeout"),
    opt("lookup.cache"),
    opt("lookup.partial-cache.max-rows"),
    opt("lookup.partial-cache.expire-after-write"),
    opt("lookup.partial-cache.expire-after-access"),
    opt("lookup.partial-cache.cache-missing-key"),
    opt("lookup.max-retries"),
];

impl Connector for Jdbc {
    fn name(&self) -> &'static str {
        "jdbc"
    }
    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }
    fn uses_format(&self) -> bool {
        false
    }
    fn source(&self, table: &TableSpec) -> std::result::Result<Box<dyn Source>, ConnectorError> {
        Err(table.error("a jdbc/postgres table cannot be read as a stream; use it as a dimension table in a lookup join (`JOIN t FOR SYSTEM_TIME AS OF s.proc_time AS d ON …`)"))
    }
    fn sink(&self, table: &TableSpec) -> std::result::Result<Box<dyn Sink>, ConnectorError> {
        Ok(Box::new(PgSink::open(table)?))
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
    ) -> std::result::Result<Box<dyn LookupTable>, ConnectorError> {
        Ok(Box::new(PgLookup::new(table, keys)?))
    }
    fn lookup_source(&self) -> bool {
        true
    }
}

impl Connector for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }
    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }
    fn uses_format(&self) -> bool {
        false
    }
    fn source(&self, table: &TableSpec) -> std::result::Result<Box<dyn Source>, ConnectorError> {
        Jdbc.source(table)
    }
    fn sink(&self, table: &TableSpec) -> std::result::Result<Box<dyn Sink>, ConnectorError> {
        Jdbc.sink(table)
    }
    fn sink_accepts_changes(&self, table: &TableSpec) -> bool {
        Jdbc.sink_accepts_changes(table)
    }
    fn sink_per_worker(&self, table: &TableSpec) -> bool {
        Jdbc.sink_per_worker(table)
    }
    fn lookup(
        &self,
        table: &TableSpec,
        keys: &[usize],
    ) -> std::result::Result<Box<dyn LookupTable>, ConnectorError> {
        Jdbc.lookup(table, keys)
    }
    fn lookup_source(&self) -> bool {
        true
    }
}

/// Where to connect, and how the place is named in messages (never with the password).
pub struct Target {
    /// Connection settings.
    pub config: Config,
    /// `host:port/db as user`.
    pub display: String,
}

/// Reads `'url'` (`jdbc:postgresql://host:port/db?user=..` or `postgres://user@host:port/db`)
/// with `'username'` / `'password'`.
pub fn target(table: &TableSpec) -> std::result::Result<Target, ConnectorError> {
    let url = table.option("url").unwrap_or_default();
    let mut config = if let Some(rest) = url.strip_prefix("jdbc:postgresql://") {
        let (hostport, rest) = rest.split_once('/').unwrap_or((rest, ""));
        if hostport.contains('@') {
            // never repeated: it may hold a password
            return Err(table.error(
                "'url': a user or password before the host is not read; use 'username' and 'password' (or ?user=…&password=…)",
            ));
        }
        let (db, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| table.error(format!("'url': bad port '{p}' in the jdbc URL")))?,
            ),
            None => (hostport, 5432),
        };
        let mut c = Config::new();
        c.host(if host.is_empty() { "localhost" } else { host })
            .port(port)
            .dbname(if db.is_empty() { "postgres" } else { db });
        for kv in query.split('&').filter(|s| !s.is_empty()) {
            match kv.split_once('=') {
                Some(("user", u)) => {
                    c.user(u);
                }
                Some(("password", p)) => {
                    c.password(p);
                }
                _ => {}
            }
        }
        c
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        url.parse::<Config>().map_err(|_| {
            // the parser's message may quote the URL, password included: not repeated
            table.error("'url' is not a PostgreSQL URL (postgres://user:password@host:port/db)")
        })?
    } else {
        return Err(table.error(
            "'url' must be jdbc:postgresql://host:port/db (or postgres://host:port/db for connector 'postgres')",
        ));
    };
    if let Some(u) = table.option("username") {
        config.user(u);
    }
    if let Some(p) = table.option("password") {
        config.password(p);
    }
    if config.get_user().is_none() {
        config.user(&std::env::var("USER").unwrap_or_else(|_| "postgres".into()));
    }
    config.connect_timeout(Duration::from_secs(5));
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(s) => s.clone(),
            #[allow(unreachable_patterns)]
            _ => "socket".to_owned(),
        })
        .unwrap_or_else(|| "localhost".into());
    let display = format!(
        "{host}:{}/{} as user {}",
        config.get_ports().first().copied().unwrap_or(5432),
        config.get_dbname().unwrap_or("postgres"),
        config.get_user().unwrap_or("?")
    );
    Ok(Target { config, display })
}

/// A readable message: the server's own words for server errors (never the password).
pub(crate) fn pg_err(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        ),
        None => e.to_string(),
    }
}

/// Whether retrying after reconnecting can help: the connection broke, or the server is shutting
/// down, starting up or short of resources (SQLSTATE classes 08, 57, 53; serialization failures).
pub(crate) fn transient(e: &postgres::Error) -> bool {
    match e.as_db_error() {
        None => true,
        Some(db) => {
            let c = db.code().code();
            c.starts_with("08")
                || c.starts_with("57")
                || c.starts_with("53")
                || c == "40001"
                || c == "40P01"
        }
    }
}

/// Connects, retrying with backoff (0.5, 1, 2, 4 s) while the server refuses connections.
pub fn connect(t: &Target) -> std::result::Result<Client, String> {
    let started = Instant::now();
    let mut wait = Duration::from_millis(500);
    let mut attempt = 1;
    loop {
        match t.config.connect(NoTls) {
            Ok(c) => return Ok(c),
            Err(e) => {
                // a wrong password or database will not fix itself: fail at once
                if !transient(&e) || attempt >= 5 {
                    return Err(format!(
                        "cannot connect to PostgreSQL at {}: {} (tried {attempt} time(s) over {:.1} s)",
                        t.display,
                        pg_err(&e),
                        started.elapsed().as_secs_f64()
                    ));
                }
                std::thread::sleep(wait);
                wait *= 2;
                attempt += 1;
            }
        }
    }
}

/// A value bound as a statement parameter.
#[derive(Debug, Clone)]
enum PgVal {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Time(SystemTime),
    Bytes(Vec<u8>),
    /// JSON text, for a jsonb, json or text column.
    Json(String),
}

impl ToSql for PgVal {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            PgVal::Null => Ok(IsNull::Yes),
            PgVal::Bool(b) => b.to_sql(ty, out),
            PgVal::Int(i) => match *ty {
                Type::INT2 => (*i as i16).to_sql(ty, out),
                Type::INT4 => (*i as i32).to_sql(ty, out),
                Type::FLOAT4 => (*i as f32).to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                _ => i.to_sql(ty, out),
            },
            PgVal::Float(f) => match *ty {
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                _ => f.to_sql(ty, out),
            },
            PgVal::Text(s) => s.to_sql(ty, out),
            PgVal::Time(t) => t.to_sql(ty, out),
            PgVal::Bytes(b) => b.to_sql(ty, out),
            PgVal::Json(s) => {
                if *ty == Type::JSONB {
                    // jsonb's binary form: a version byte, then the text
                    out.extend_from_slice(&[1]);
                    out.extend_from_slice(s.as_bytes());
                    Ok(IsNull::No)
                } else if *ty == Type::JSON {
                    out.extend_from_slice(s.as_bytes());
                    Ok(IsNull::No)
                } else {
                    s.to_sql(ty, out)
                }
            }
        }
    }
    fn accepts(_ty: &Type) -> bool {
        true
    }
    postgres::types::to_sql_checked!();
}

/// The PostgreSQL types a column of `ty` may be written to (the first is used to create it).
fn pg_types(ty: DataType) -> &'static [&'static str] {
    use DataType as T;
    match ty {
        T::Boolean => &["boolean"],
        T::TinyInt | T::SmallInt => &["smallint", "integer", "bigint", "numeric"],
        T::Int => &["integer", "bigint", "numeric"],
        T::BigInt => &["bigint", "numeric"],
        T::Float => &["real", "double precision", "numeric"],
        T::Double => &["double precision", "numeric"],
        T::Decimal(..) => &["numeric", "double precision"],
        T::String(_) => &["text", "character varying", "character"],
        T::Timestamp(_) => &["timestamp without time zone", "timestamp with time zone"],
        T::TimestampLtz(_) => &["timestamp with time zone", "timestamp without time zone"],
        T::Date => &["date"],
        T::Time(_) => &["time without time zone"],
        T::Bytes => &["bytea"],
        T::Row(_) | T::Array(_) | T::Multiset(_) => &["jsonb", "json", "text"],
        _ => &["text"],
    }
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// The change buffered for one key (or one appended row).
enum Op {
    Upsert(Vec<PgVal>),
    Delete(Vec<PgVal>),
}

/// Writes rows into a PostgreSQL table.
pub struct PgSink {
    table: String,
    target: Target,
    client: Option<Client>,
    qualified: String,
    columns: Vec<String>,
    types: Vec<DataType>,
    /// Per column: the placeholder casts through text (numeric, date, time columns).
    via_text: Vec<Option<String>>,
    key_cols: Vec<usize>,
    max_rows: usize,
    interval: Option<Duration>,
    max_retries: u32,
    /// Buffered changes in arrival order; `index` maps a key to its slot.
    ops: Vec<Option<Op>>,
    index: HashMap<Vec<u8>, usize>,
    /// A -U waiting for its +U.
    pending_before: crate::upsert::PendingBefore,
    last_flush: Instant,
    sink_id: String,
    batch: i64,
    rows: u64,
    text: String,
    /// Inside [`TransactionalSink::commit_rows`]: the marker the one transaction records
    /// (writer, run, checkpoint), and no flushes at the buffer's limits.
    checkpoint: Option<(String, i64, i64)>,
}

/// Per writer (a job's sink), the last checkpoint whose rows were committed.
const CHECKPOINT_MARKERS: &str = "CREATE TABLE IF NOT EXISTS tillflow_checkpoints (writer text PRIMARY KEY, run bigint NOT NULL, checkpoint bigint NOT NULL, committed_at timestamptz NOT NULL DEFAULT now())";

/// The advisory lock under which tillflow creates its tables (any process, any job).
const DDL_LOCK: &str = "SELECT pg_advisory_xact_lock(7118062026)";

/// Runs `ddl` (`CREATE … IF NOT EXISTS` statements) in a transaction under [`DDL_LOCK`]:
/// PostgreSQL's `IF NOT EXISTS` is not safe against a concurrent create of the same name (one
/// of two fails on `pg_type`'s unique index), and the processes of a job start at once.
fn create_serialized(client: &mut postgres::Client, ddl: &str) -> Result<(), postgres::Error> {
    let mut tx = client.transaction()?;
    tx.batch_execute(DDL_LOCK)?;
    tx.batch_execute(ddl)?;
    tx.commit()
}

/// A duration option (Flink's forms: `'500 ms'`, `'1 s'`, `'2 min'`, bare milliseconds).
fn duration_option(
    table: &TableSpec,
    key: &str,
) -> std::result::Result<Option<Duration>, ConnectorError> {
    table
        .option(key)
        .map(|v| {
            tillflow_types::temporal::parse_duration_micros(v)
                .map(|us| Duration::from_micros(us.max(0) as u64))
                .ok_or_else(|| {
                    table.error(format!(
                        "'{key}' = '{v}' is not a duration (e.g. '500 ms', '1 s', '2 min')"
                    ))
                })
        })
        .transpose()
}

impl PgSink {
    /// Connects, checks (or creates) the table.
    pub fn open(table: &TableSpec) -> std::result::Result<Self, ConnectorError> {
        let target = target(table)?;
        let name = table.option("table-name").unwrap_or(&table.name).to_owned();
        let (schema, bare) = name.split_once('.').unwrap_or(("public", name.as_str()));
        let qualified = format!("{}.{}", quote(schema), quote(bare));
        let mut client = connect(&target).map_err(|e| table.error(e))?;
        let existing: Vec<(String, String)> = client
            .query(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2",
                &[&schema, &bare],
            )
            .map_err(|e| table.error(format!("reading the columns of {name}: {}", pg_err(&e))))?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let fields = &table.schema.fields;
        let mut via_text = Vec::new();
        if existing.is_empty() {
            if !table.bool_option("sink.create-table", false)? {
                return Err(table.error(format!(
                    "table {name} does not exist in PostgreSQL at {}; create it, or set 'sink.create-table' = 'true'",
                    target.display
                )));
            }
            let mut cols: Vec<String> = fields
                .iter()
                .map(|f| {
                    let ty = match f.data_type {
                        DataType::Decimal(p, s) => format!("numeric({p},{s})"),
                        t => pg_types(t)[0].to_owned(),
                    };
                    format!("{} {ty}", quote(&f.name))
                })
                .collect();
            if !table.primary_key.is_empty() {
                cols.push(format!(
                    "PRIMARY KEY ({})",
                    table
                        .primary_key
                        .iter()
                        .map(|k| quote(k))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            create_serialized(
                &mut client,
                &format!(
                    "CREATE TABLE IF NOT EXISTS {qualified} ({})",
                    cols.join(", ")
                ),
            )
            .map_err(|e| table.error(format!("creating {name}: {}", pg_err(&e))))?;
            for f in fields {
                via_text.push(text_cast(pg_types(f.data_type)[0]));
            }
        } else {
            for f in fields {
                let Some((_, pg)) = existing.iter().find(|(c, _)| c == &f.name) else {
                    return Err(table.error(format!(
                        "column `{}` is not in the PostgreSQL table {name} (it has: {})",
                        f.name,
                        existing
                            .iter()
                            .map(|(c, _)| c.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                };
                if !pg_types(f.data_type).contains(&pg.as_str()) {
                    return Err(table.error(format!(
                        "column `{}` is {} in tillflow but {pg} in the PostgreSQL table {name} (it can go to: {})",
                        f.name,
                        f.data_type,
                        pg_types(f.data_type).join(", ")
                    )));
                }
                via_text.push(text_cast(pg));
            }
        }
        create_serialized(
            &mut client,
            &format!(
                "CREATE TABLE IF NOT EXISTS tillflow_sink_batches (sink_id text PRIMARY KEY, batch bigint NOT NULL); {CHECKPOINT_MARKERS}"
            ),
        )
        .map_err(|e| {
            table.error(format!(
                "creating tillflow_sink_batches and tillflow_checkpoints: {}",
                pg_err(&e)
            ))
        })?;
        let key_cols = table
            .primary_key
            .iter()
            .filter_map(|k| table.schema.index_of(k))
            .collect();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Ok(PgSink {
            table: table.name.clone(),
            target,
            client: Some(client),
            qualified,
            columns: fields.iter().map(|f| f.name.clone()).collect(),
            types: fields.iter().map(|f| f.data_type).collect(),
            via_text,
            key_cols,
            max_rows: table.int_option("sink.buffer-flush.max-rows", 100)?.max(1) as usize,
            interval: match duration_option(table, "sink.buffer-flush.interval")? {
                None => Some(Duration::from_secs(1)),
                Some(d) => (!d.is_zero()).then_some(d),
            },
            max_retries: table.int_option("sink.max-retries", 3)?.max(0) as u32,
            ops: Vec::new(),
            index: HashMap::new(),
            pending_before: Default::default(),
            last_flush: Instant::now(),
            sink_id: format!("{name}/{}/{nanos}", std::process::id()),
            checkpoint: None,
            batch: 0,
            rows: 0,
            text: String::new(),
        })
    }

    fn value(&mut self, v: Value, ty: DataType, heap: &[u8], via_text: bool) -> PgVal {
        if via_text {
            if v.is_null() {
                return PgVal::Null;
            }
            self.text.clear();
            tillflow_runtime::cast::write_text(&mut self.text, v, ty, heap);
            return PgVal::Text(self.text.clone());
        }
        match v {
            Value::Null => PgVal::Null,
            Value::Bool(b) => PgVal::Bool(b),
            Value::Int(i) => PgVal::Int(i),
            Value::Float(f) => PgVal::Float(f),
            Value::Str(s) if ty == DataType::Bytes => {
                PgVal::Bytes(tillflow_types::value::heap_bytes(heap, s).to_vec())
            }
            // ROW, ARRAY, MULTISET as JSON (a jsonb, json or text column)
            Value::Str(s) if ty.is_nested() && !matches!(ty, DataType::Map(..)) => {
                self.text.clear();
                crate::format::json_nested::to_json_text(&mut self.text, heap, s, ty);
                PgVal::Json(self.text.clone())
            }
            Value::Str(_) if matches!(ty, DataType::Map(..)) => {
                self.text.clear();
                tillflow_runtime::cast::write_text(&mut self.text, v, ty, heap);
                PgVal::Text(self.text.clone())
            }
            Value::Str(s) => PgVal::Text(tillflow_types::value::heap_str(heap, s).to_owned()),
            Value::Timestamp(us) => PgVal::Time(if us >= 0 {
                UNIX_EPOCH + Duration::from_micros(us as u64)
            } else {
                UNIX_EPOCH - Duration::from_micros(us.unsigned_abs())
            }),
            other => {
                self.text.clear();
                tillflow_runtime::cast::write_text(&mut self.text, other, ty, heap);
                PgVal::Text(self.text.clone())
            }
        }
    }

    fn params(&mut self, row: &Row, cols: &[usize]) -> Vec<PgVal> {
        cols.iter()
            .map(|&c| {
                let v = row.values.get(c).copied().unwrap_or(Value::Null);
                let via = self.via_text[c].is_some();
                self.value(v, self.types[c], &row.heap, via)
            })
            .collect()
    }

    fn key_bytes(&self, row: &Row) -> Vec<u8> {
        let mut k = Vec::with_capacity(32);
        for &c in &self.key_cols {
            tillflow_runtime::keys::encode_value(
                &mut k,
                row.values.get(c).copied().unwrap_or(Value::Null),
                &row.heap,
            );
        }
        k
    }

    fn buffer(&mut self, row: &Row, delete: bool) {
        let op = if delete {
            let cols = self.key_cols.clone();
            Op::Delete(self.params(row, &cols))
        } else {
            let all: Vec<usize> = (0..self.columns.len()).collect();
            Op::Upsert(self.params(row, &all))
        };
        if self.key_cols.is_empty() {
            self.ops.push(Some(op));
            return;
        }
        let key = self.key_bytes(row);
        match self.index.get(&key) {
            Some(&i) => self.ops[i] = Some(op),
            None => {
                self.index.insert(key, self.ops.len());
                self.ops.push(Some(op));
            }
        }
    }

    /// Writes the buffer in one transaction, reconnecting and retrying when the connection
    /// breaks; a batch found already recorded is not written again.
    fn flush(&mut self) -> Result<()> {
        self.last_flush = Instant::now();
        if self.ops.is_empty() && self.checkpoint.is_none() {
            return Ok(());
        }
        self.batch += 1;
        let mut attempt = 0;
        loop {
            let result = self.try_flush(attempt > 0);
            match result {
                Ok(()) => break,
                Err(e) if attempt < self.max_retries && e.1 => {
                    attempt += 1;
                    eprintln!(
                        "warning: table `{}`: PostgreSQL write failed ({}); reconnecting (retry {attempt} of {})",
                        self.table, e.0, self.max_retries
                    );
                    self.client = None;
                    std::thread::sleep(Duration::from_millis(500 * attempt as u64));
                }
                Err(e) => {
                    return Err(RuntimeError::Sink(format!(
                        "table `{}`: writing to PostgreSQL at {}: {}",
                        self.table, self.target.display, e.0
                    )))
                }
            }
        }
        self.rows += self.ops.iter().flatten().count() as u64;
        self.ops.clear();
        self.index.clear();
        Ok(())
    }

    /// One attempt; the error says whether retrying can help (a broken connection).
    fn try_flush(&mut self, retry: bool) -> std::result::Result<(), (String, bool)> {
        if self.client.is_none() {
            self.client = Some(connect(&self.target).map_err(|e| (e, true))?);
        }
        let n = self.columns.len();
        let cols_sql = self
            .columns
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(", ");
        let placeholder = |k: usize, c: usize, via: &[Option<String>]| match &via[c] {
            Some(ty) => format!("CAST(${k}::text AS {ty})"),
            None => format!("${k}"),
        };
        let Some(client) = self.client.as_mut() else {
            return Err(("no connection".into(), true));
        };
        let mut tx = client
            .transaction()
            .map_err(|e| (pg_err(&e), transient(&e)))?;
        if let (true, Some((writer, run, id))) = (retry, &self.checkpoint) {
            let done = tx
                .query_opt(
                    "SELECT run, checkpoint FROM tillflow_checkpoints WHERE writer = $1",
                    &[writer],
                )
                .map_err(|e| (pg_err(&e), transient(&e)))?
                .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1)));
            if done.is_some_and(|(r, c)| r == *run && c >= *id) {
                return Ok(()); // the commit went through before the connection broke
            }
        } else if retry {
            let done: Option<i64> = tx
                .query_opt(
                    "SELECT batch FROM tillflow_sink_batches WHERE sink_id = $1",
                    &[&self.sink_id],
                )
                .map_err(|e| (pg_err(&e), transient(&e)))?
                .map(|r| r.get(0));
            if done.is_some_and(|b| b >= self.batch) {
                return Ok(()); // the commit went through before the connection broke
            }
        }
        // deletes first (one statement per key), then upserts/appends in chunks
        for op in self.ops.iter().flatten() {
            if let Op::Delete(key) = op {
                let cond = self
                    .key_cols
                    .iter()
                    .enumerate()
                    .map(|(j, &c)| {
                        format!(
                            "{} = {}",
                            quote(&self.columns[c]),
                            placeholder(j + 1, c, &self.via_text)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" AND ");
                let params: Vec<&(dyn ToSql + Sync)> =
                    key.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                tx.execute(
                    &format!("DELETE FROM {} WHERE {cond}", self.qualified),
                    &params,
                )
                .map_err(|e| (pg_err(&e), transient(&e)))?;
            }
        }
        let rows: Vec<&Vec<PgVal>> = self
            .ops
            .iter()
            .flatten()
            .filter_map(|op| match op {
                Op::Upsert(v) => Some(v),
                Op::Delete(_) => None,
            })
            .collect();
        let per_stmt = (60_000 / n.max(1)).clamp(1, 1000);
        for chunk in rows.chunks(per_stmt) {
            let mut sql = format!("INSERT INTO {} ({cols_sql}) VALUES ", self.qualified);
            let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(chunk.len() * n);
            for (r, vals) in chunk.iter().enumerate() {
                if r > 0 {
                    sql.push_str(", ");
                }
                sql.push('(');
                for (c, v) in vals.iter().enumerate() {
                    if c > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&placeholder(r * n + c + 1, c, &self.via_text));
                    params.push(v);
                }
                sql.push(')');
            }
            if !self.key_cols.is_empty() {
                let keys = self
                    .key_cols
                    .iter()
                    .map(|&c| quote(&self.columns[c]))
                    .collect::<Vec<_>>()
                    .join(", ");
                let sets: Vec<String> = (0..n)
                    .filter(|c| !self.key_cols.contains(c))
                    .map(|c| format!("{0} = EXCLUDED.{0}", quote(&self.columns[c])))
                    .collect();
                if sets.is_empty() {
                    sql.push_str(&format!(" ON CONFLICT ({keys}) DO NOTHING"));
                } else {
                    sql.push_str(&format!(
                        " ON CONFLICT ({keys}) DO UPDATE SET {}",
                        sets.join(", ")
                    ));
                }
            }
            tx.execute(&sql, &params)
                .map_err(|e| (pg_err(&e), transient(&e)))?;
        }
        match &self.checkpoint {
            Some((writer, run, id)) => tx.execute(
                "INSERT INTO tillflow_checkpoints (writer, run, checkpoint) VALUES ($1, $2, $3) ON CONFLICT (writer) DO UPDATE SET run = EXCLUDED.run, checkpoint = EXCLUDED.checkpoint, committed_at = now()",
                &[writer, run, id],
            ),
            None => tx.execute(
                "INSERT INTO tillflow_sink_batches (sink_id, batch) VALUES ($1, $2) ON CONFLICT (sink_id) DO UPDATE SET batch = EXCLUDED.batch",
                &[&self.sink_id, &self.batch],
            ),
        }
        .map_err(|e| (pg_err(&e), transient(&e)))?;
        tx.commit().map_err(|e| (pg_err(&e), transient(&e)))
    }
}

/// The cast a placeholder needs for a column of PostgreSQL type `pg` (None: bound directly).
fn text_cast(pg: &str) -> Option<String> {
    match pg {
        "numeric" | "date" | "time without time zone" => Some(pg.to_owned()),
        _ => None,
    }
}

impl Sink for PgSink {
    fn describe(&self) -> String {
        format!(
            "postgres[{}] table {} (from `{}`)",
            self.target.display, self.qualified, self.table
        )
    }

    fn write(&mut self, row: &Row) -> Result<()> {
        if !self.key_cols.is_empty() {
            let mut pending = std::mem::take(&mut self.pending_before);
            let step = pending.feed(row, |a, b| self.key_bytes(a) == self.key_bytes(b));
            self.pending_before = pending;
            if let Some(before) = step.delete_before {
                self.buffer(&before, true);
            }
            match step.own {
                Some(delete) => self.buffer(row, delete),
                None => return Ok(()),
            }
        } else {
            match row.kind {
                RowKind::Insert | RowKind::UpdateAfter => self.buffer(row, false),
                _ => {
                    return Err(RuntimeError::Sink(format!(
                        "table `{}`: an update or delete reached a PostgreSQL table without PRIMARY KEY",
                        self.table
                    )))
                }
            }
        }
        if self.checkpoint.is_none()
            && (self.ops.len() >= self.max_rows
                || self
                    .interval
                    .is_some_and(|i| self.last_flush.elapsed() >= i))
        {
            self.flush()?;
        }
        Ok(())
    }

    fn watermark(&mut self, _wm: i64) -> Result<()> {
        if self.checkpoint.is_none()
            && self
                .interval
                .is_some_and(|i| self.last_flush.elapsed() >= i)
        {
            self.flush()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        Sink::flush(self)
    }

    fn flush(&mut self) -> Result<()> {
        // a -U still waiting for its +U is applied as a delete: the +U, when it comes, re-inserts
        if let Some(before) = self.pending_before.take() {
            self.buffer(&before, true);
        }
        PgSink::flush(self)
    }

    fn rows_written(&self) -> u64 {
        self.rows
    }

    fn transactional(&mut self) -> Option<&mut dyn TransactionalSink> {
        Some(self)
    }
}

impl TransactionalSink for PgSink {
    fn committed(&mut self, writer: &str) -> Result<Option<(u64, u64)>> {
        let fail = |e: String| {
            RuntimeError::Sink(format!(
                "table `{}`: reading the checkpoint marker from PostgreSQL at {}: {e}",
                self.table, self.target.display
            ))
        };
        if self.client.is_none() {
            self.client = Some(connect(&self.target).map_err(fail)?);
        }
        let Some(client) = self.client.as_mut() else {
            return Err(fail("no connection".into()));
        };
        let row = client
            .query_opt(
                "SELECT run, checkpoint FROM tillflow_checkpoints WHERE writer = $1",
                &[&writer],
            )
            .map_err(|e| pg_err(&e));
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                self.client = None;
                return Err(fail(e));
            }
        };
        Ok(row.map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, i64>(1) as u64)))
    }

    fn commit_rows(
        &mut self,
        writer: &str,
        run: u64,
        checkpoint: u64,
        rows: &tillflow_runtime::checkpoint::RowLog,
    ) -> Result<()> {
        self.checkpoint = Some((writer.to_owned(), run as i64, checkpoint as i64));
        let result = rows
            .for_each(&mut |row| Sink::write(self, row))
            .and_then(|_| Sink::flush(self));
        self.checkpoint = None;
        if result.is_err() {
            self.ops.clear();
            self.index.clear();
        }
        result
    }
}

/// A PostgreSQL table looked up by key columns: connects on first use, one query per batch of
/// keys (`WHERE (k...) IN (SELECT * FROM unnest($1, ...))`), retried after reconnecting.
pub struct PgLookup {
    table: String,
    target: Target,
    client: Option<Client>,
    qualified: String,
    columns: Vec<String>,
    types: Vec<DataType>,
    keys: Vec<usize>,
    max_retries: u32,
    /// The query, built once the column types are known.
    sql: Option<String>,
    /// Per column: read as text (numeric, date, time and other types).
    text_cols: Vec<bool>,
    key_pg: Vec<String>,
    cache: Option<LookupCache>,
}

impl PgLookup {
    /// A lookup on `keys` (physical column positions); nothing is opened yet.
    pub fn new(table: &TableSpec, keys: &[usize]) -> std::result::Result<Self, ConnectorError> {
        let target = target(table)?;
        let name = table.option("table-name").unwrap_or(&table.name).to_owned();
        let (schema, bare) = name.split_once('.').unwrap_or(("public", name.as_str()));
        let cache = match table.option("lookup.cache").unwrap_or("NONE") {
            c if c.eq_ignore_ascii_case("NONE") => None,
            c if c.eq_ignore_ascii_case("PARTIAL") => Some(LookupCache {
                max_rows: table
                    .int_option("lookup.partial-cache.max-rows", 10_000)?
                    .max(1) as usize,
                expire_after_write: duration_option(
                    table,
                    "lookup.partial-cache.expire-after-write",
                )?,
            }),
            other => {
                return Err(table.error(format!(
                    "'lookup.cache' = '{other}' is not one of NONE, PARTIAL"
                )))
            }
        };
        Ok(PgLookup {
            cache,
            table: table.name.clone(),
            target,
            client: None,
            qualified: format!("{}.{}", quote(schema), quote(bare)),
            columns: table.schema.fields.iter().map(|f| f.name.clone()).collect(),
            types: table.schema.fields.iter().map(|f| f.data_type).collect(),
            keys: keys.to_vec(),
            max_retries: table.int_option("lookup.max-retries", 3)?.max(0) as u32,
            sql: None,
            text_cols: Vec::new(),
            key_pg: Vec::new(),
        })
    }

    fn prepare(&mut self) -> std::result::Result<(), (String, bool)> {
        if self.client.is_none() {
            self.client = Some(connect(&self.target).map_err(|e| (e, true))?);
        }
        if self.sql.is_some() {
            return Ok(());
        }
        let Some(client) = self.client.as_mut() else {
            return Err(("no connection".into(), true));
        };
        let (schema, bare) = self
            .qualified
            .split_once("\".\"")
            .map(|(a, b)| {
                (
                    a.trim_start_matches('"').to_owned(),
                    b.trim_end_matches('"').to_owned(),
                )
            })
            .unwrap_or_default();
        let cols: Vec<(String, String)> = client
            .query(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2",
                &[&schema, &bare],
            )
            .map_err(|e| (pg_err(&e), transient(&e)))?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let mut select = Vec::new();
        self.text_cols.clear();
        for (c, ty) in self.columns.iter().zip(&self.types) {
            let Some((_, pg)) = cols.iter().find(|(n, _)| n == c) else {
                return Err((
                    format!(
                        "column `{c}` is not in the PostgreSQL table {}",
                        self.qualified
                    ),
                    false,
                ));
            };
            if !pg_types(*ty).contains(&pg.as_str()) {
                return Err((
                    format!("column `{c}` is {ty} in tillflow but {pg} in PostgreSQL"),
                    false,
                ));
            }
            let direct = matches!(
                pg.as_str(),
                "smallint"
                    | "integer"
                    | "bigint"
                    | "real"
                    | "double precision"
                    | "boolean"
                    | "text"
                    | "character varying"
                    | "character"
            );
            self.text_cols.push(!direct);
            select.push(if direct {
                quote(c)
            } else {
                format!("{}::text", quote(c))
            });
        }
        self.key_pg = self
            .keys
            .iter()
            .map(|&k| {
                cols.iter()
                    .find(|(n, _)| n == &self.columns[k])
                    .map(|(_, t)| t.clone())
                    .unwrap_or_else(|| "text".into())
            })
            .collect();
        let key_cols = self
            .keys
            .iter()
            .map(|&k| quote(&self.columns[k]))
            .collect::<Vec<_>>()
            .join(", ");
        let arrays = self
            .key_pg
            .iter()
            .enumerate()
            .map(|(i, t)| format!("${}::text[]::{t}[]", i + 1))
            .collect::<Vec<_>>()
            .join(", ");
        self.sql = Some(format!(
            "SELECT {} FROM {} WHERE ({key_cols}) IN (SELECT * FROM unnest({arrays}))",
            select.join(", "),
            self.qualified
        ));
        Ok(())
    }

    fn query(&mut self, keys: &[Row]) -> std::result::Result<Vec<postgres::Row>, (String, bool)> {
        self.prepare()?;
        let mut text = String::new();
        let arrays: Vec<Vec<Option<String>>> = (0..self.keys.len())
            .map(|j| {
                keys.iter()
                    .map(|k| {
                        let v = k.values.get(j).copied().unwrap_or(Value::Null);
                        if v.is_null() {
                            return None;
                        }
                        text.clear();
                        tillflow_runtime::cast::write_text(
                            &mut text,
                            v,
                            self.types[self.keys[j]],
                            &k.heap,
                        );
                        Some(text.clone())
                    })
                    .collect()
            })
            .collect();
        let params: Vec<&(dyn ToSql + Sync)> =
            arrays.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
        let (Some(client), Some(sql)) = (self.client.as_mut(), self.sql.as_ref()) else {
            return Err(("no connection".into(), true));
        };
        client
            .query(sql.as_str(), &params)
            .map_err(|e| (pg_err(&e), transient(&e)))
    }
}

impl LookupTable for PgLookup {
    fn describe(&self) -> String {
        format!(
            "postgres[{}] {} by ({})",
            self.target.display,
            self.qualified,
            self.keys
                .iter()
                .map(|&k| self.columns[k].as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    fn cache(&self) -> Option<LookupCache> {
        self.cache
    }

    fn lookup(&mut self, keys: &[Row], out: &mut Vec<(usize, Row)>) -> Result<()> {
        let mut attempt = 0;
        let rows = loop {
            match self.query(keys) {
                Ok(r) => break r,
                Err((e, retry)) if retry && attempt < self.max_retries => {
                    attempt += 1;
                    eprintln!(
                        "warning: table `{}`: PostgreSQL lookup failed ({e}); reconnecting (retry {attempt} of {})",
                        self.table, self.max_retries
                    );
                    self.client = None;
                    std::thread::sleep(Duration::from_millis(300 * attempt as u64));
                }
                Err((e, _)) => {
                    return Err(RuntimeError::Source(format!(
                        "table `{}`: lookup in PostgreSQL at {}: {e}",
                        self.table, self.target.display
                    )))
                }
            }
        };
        // which requested key each row answers: by the encoded key values
        let mut index: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
        for (i, k) in keys.iter().enumerate() {
            let mut b = Vec::new();
            for v in &k.values {
                tillflow_runtime::keys::encode_value(&mut b, *v, &k.heap);
            }
            index.entry(b).or_default().push(i);
        }
        for pr in rows {
            let mut row = Row::with_capacity(self.columns.len());
            for (c, ty) in self.types.iter().enumerate() {
                let v = read_value(&pr, c, *ty, self.text_cols[c], &mut row.heap);
                row.values.push(v);
            }
            let mut b = Vec::new();
            for &k in &self.keys {
                tillflow_runtime::keys::encode_value(&mut b, row.values[k], &row.heap);
            }
            if let Some(is) = index.get(&b) {
                for &i in is {
                    out.push((i, row.clone()));
                }
            }
        }
        Ok(())
    }
}

/// Column `c` of a PostgreSQL row as a tillflow value of type `ty` (strings into `heap`).
fn read_value(
    r: &postgres::Row,
    c: usize,
    ty: DataType,
    as_text: bool,
    heap: &mut Vec<u8>,
) -> Value {
    use tillflow_types::value::push_str;
    if as_text {
        let s: Option<String> = r.try_get(c).ok().flatten();
        return match s {
            None => Value::Null,
            Some(s) => {
                let sv = Value::Str(push_str(heap, &s));
                tillflow_runtime::cast::cast_value(sv, DataType::String(None), ty, heap)
                    .unwrap_or(Value::Null)
            }
        };
    }
    let col_ty = r.columns().get(c).map(|col| col.type_().clone());
    let int = |v: Option<i64>| v.map_or(Value::Null, Value::Int);
    let float = |v: Option<f64>| v.map_or(Value::Null, Value::Float);
    match col_ty {
        Some(Type::INT2) => int(r.try_get::<_, Option<i16>>(c).ok().flatten().map(i64::from)),
        Some(Type::INT4) => int(r.try_get::<_, Option<i32>>(c).ok().flatten().map(i64::from)),
        Some(Type::INT8) => int(r.try_get::<_, Option<i64>>(c).ok().flatten()),
        Some(Type::FLOAT4) => float(r.try_get::<_, Option<f32>>(c).ok().flatten().map(f64::from)),
        Some(Type::FLOAT8) => float(r.try_get::<_, Option<f64>>(c).ok().flatten()),
        Some(Type::BOOL) => r
            .try_get::<_, Option<bool>>(c)
            .ok()
            .flatten()
            .map_or(Value::Null, Value::Bool),
        _ => {
            let s: Option<String> = r.try_get(c).ok().flatten();
            match (s, ty) {
                (None, _) => Value::Null,
                (Some(s), _) => Value::Str(push_str(heap, &s)),
            }
        }
    }
}
