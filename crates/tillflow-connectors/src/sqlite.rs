//! The `sqlite` connector: the embedded default store.
//!
//! `WITH ('connector' = 'sqlite', 'path' = 'file.db', 'table-name' = 't')` writes a query's rows into a
//! SQLite table, created if absent with the sink's columns (and its primary key). Insert-only
//! results are appended; updating results need a `PRIMARY KEY (…) NOT ENFORCED` and are upserted on
//! it (`+I`/`+U` insert or update, `-D` deletes, `-U` is skipped, as Flink's JDBC sink does). Rows
//! are written in transactions of `'sink.buffer-flush.max-rows'` rows. Timestamps are stored as
//! `YYYY-MM-DD HH:MM:SS.fff` text, DECIMALs as exact text, so the `sqlite3` CLI reads them as written.

use crate::{opt, req, Connector, ConnectorError, OptionSpec, TableSpec};
use rusqlite::types::Value as Sql;
use rusqlite::Connection;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use tillflow_runtime::cast::write_text;
use tillflow_runtime::operator::{Sink, Source, TransactionalSink};
use tillflow_runtime::{Result, RuntimeError};
use tillflow_types::{DataType, Row, RowKind, Value};

/// The `sqlite` connector.
pub struct Sqlite;

const OPTIONS: &[OptionSpec] = &[
    req("path"),
    opt("table-name"),
    opt("sink.buffer-flush.max-rows"),
];

impl Connector for Sqlite {
    fn name(&self) -> &'static str {
        "sqlite"
    }
    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }
    fn uses_format(&self) -> bool {
        false
    }
    fn source(&self, table: &TableSpec) -> std::result::Result<Box<dyn Source>, ConnectorError> {
        Err(table.error(
            "the sqlite connector can only be written to (read the file with the sqlite3 CLI)",
        ))
    }
    fn sink(&self, table: &TableSpec) -> std::result::Result<Box<dyn Sink>, ConnectorError> {
        Ok(Box::new(SqliteSink::open(table)?))
    }
    fn sink_accepts_changes(&self, table: &TableSpec) -> bool {
        !table.primary_key.is_empty()
    }
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn sql_type(t: DataType) -> &'static str {
    match t {
        DataType::Boolean
        | DataType::TinyInt
        | DataType::SmallInt
        | DataType::Int
        | DataType::BigInt => "INTEGER",
        DataType::Float | DataType::Double => "REAL",
        DataType::Bytes => "BLOB",
        _ => "TEXT",
    }
}

/// One open database file, shared by every sink of the process that writes to it: SQLite admits
/// one writer at a time, so the sinks of one job share one connection and one transaction.
struct Db {
    conn: Connection,
    in_tx: bool,
    pending: usize,
}

type SharedDb = Arc<Mutex<Db>>;

/// The open connection to `path`, or a new one. The registry holds it weakly: when the last sink
/// writing to a file is dropped (the job is over) the connection closes, and SQLite folds its
/// write-ahead log back into the file and removes the `-wal` and `-shm` files.
fn open_db(path: &str) -> std::result::Result<SharedDb, rusqlite::Error> {
    static DBS: OnceLock<Mutex<HashMap<String, std::sync::Weak<Mutex<Db>>>>> = OnceLock::new();
    let map = DBS.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    map.retain(|_, db| db.strong_count() > 0);
    if let Some(db) = map.get(path).and_then(std::sync::Weak::upgrade) {
        return Ok(db);
    }
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(128);
    let db = Arc::new(Mutex::new(Db {
        conn,
        in_tx: false,
        pending: 0,
    }));
    map.insert(path.to_owned(), Arc::downgrade(&db));
    Ok(db)
}

/// Writes rows into one SQLite table.
pub struct SqliteSink {
    table: String,
    path: String,
    target: String,
    db: SharedDb,
    types: Vec<DataType>,
    insert_sql: String,
    delete_sql: Option<String>,
    key_cols: Vec<usize>,
    batch: usize,
    text: String,
    rows: u64,
    /// A `-U` waiting for the row after it.
    pending: Row,
    has_pending: bool,
    /// Inside [`TransactionalSink::commit_rows`]: no commits at the batch size.
    in_checkpoint: bool,
}

impl SqliteSink {
    /// Opens (creating) the database file and the table.
    pub fn open(table: &TableSpec) -> std::result::Result<Self, ConnectorError> {
        let path = crate::local_path(table.option("path").unwrap_or_default())
            .map_err(|m| table.error(format!("option 'path': {m}")))?
            .to_string_lossy()
            .into_owned();
        let target = table.option("table-name").unwrap_or(&table.name).to_owned();
        let batch = table.int_option("sink.buffer-flush.max-rows", 1000)?.max(1) as usize;
        if let Some(parent) = std::path::Path::new(&path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|e| ConnectorError::Io {
                path: parent.display().to_string(),
                source: e,
            })?;
        }
        let db_err = |e: rusqlite::Error| table.error(format!("sqlite '{path}': {e}"));
        let db = open_db(&path).map_err(db_err)?;
        let guard = db
            .lock()
            .map_err(|_| table.error(format!("sqlite '{path}': connection poisoned")))?;
        let conn = &guard.conn;
        let fields = &table.schema.fields;
        let mut key_cols = Vec::new();
        for k in &table.primary_key {
            let i = table
                .schema
                .index_of(k)
                .ok_or_else(|| table.error(format!("primary key column `{k}` is not a column")))?;
            key_cols.push(i);
        }
        let cols: Vec<String> = fields
            .iter()
            .map(|f| {
                format!(
                    "{} {}{}",
                    quote(&f.name),
                    sql_type(f.data_type),
                    if f.nullable { "" } else { " NOT NULL" }
                )
            })
            .collect();
        let pk = if key_cols.is_empty() {
            String::new()
        } else {
            format!(
                ", PRIMARY KEY ({})",
                key_cols
                    .iter()
                    .map(|&i| quote(&fields[i].name))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {} ({}{pk})",
            quote(&target),
            cols.join(", ")
        ))
        .map_err(db_err)?;
        // the existing table must have the sink's columns
        let mut existing = Vec::new();
        {
            let mut st = conn
                .prepare(&format!("PRAGMA table_info({})", quote(&target)))
                .map_err(db_err)?;
            let names = st
                .query_map([], |r| r.get::<_, String>(1))
                .map_err(db_err)?;
            for n in names {
                existing.push(n.map_err(db_err)?);
            }
        }
        for f in fields {
            if !existing.iter().any(|e| e.eq_ignore_ascii_case(&f.name)) {
                return Err(table.error(format!(
                    "sqlite table {target} in '{path}' exists without column `{}` (it has: {})",
                    f.name,
                    existing.join(", ")
                )));
            }
        }
        let names: Vec<String> = fields.iter().map(|f| quote(&f.name)).collect();
        let params: Vec<String> = (1..=fields.len()).map(|i| format!("?{i}")).collect();
        let mut insert_sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            quote(&target),
            names.join(", "),
            params.join(", ")
        );
        let mut delete_sql = None;
        if !key_cols.is_empty() {
            let keys: Vec<String> = key_cols.iter().map(|&i| quote(&fields[i].name)).collect();
            let sets: Vec<String> = (0..fields.len())
                .filter(|i| !key_cols.contains(i))
                .map(|i| format!("{0} = excluded.{0}", quote(&fields[i].name)))
                .collect();
            insert_sql.push_str(&format!(
                " ON CONFLICT ({}) DO {}",
                keys.join(", "),
                if sets.is_empty() {
                    "NOTHING".to_owned()
                } else {
                    format!("UPDATE SET {}", sets.join(", "))
                }
            ));
            let conds: Vec<String> = key_cols
                .iter()
                .enumerate()
                .map(|(j, &i)| format!("{} = ?{}", quote(&fields[i].name), j + 1))
                .collect();
            delete_sql = Some(format!(
                "DELETE FROM {} WHERE {}",
                quote(&target),
                conds.join(" AND ")
            ));
        }
        drop(guard);
        Ok(SqliteSink {
            table: table.name.clone(),
            path,
            target,
            db,
            types: fields.iter().map(|f| f.data_type).collect(),
            insert_sql,
            delete_sql,
            key_cols,
            batch,
            text: String::new(),
            rows: 0,
            pending: Row::default(),
            has_pending: false,
            in_checkpoint: false,
        })
    }

    fn err(&self, e: rusqlite::Error) -> RuntimeError {
        RuntimeError::Sink(format!(
            "table `{}`: sqlite '{}' table {}: {e}",
            self.table, self.path, self.target
        ))
    }

    fn sql_value(&mut self, v: Value, ty: DataType, heap: &[u8]) -> Sql {
        match v {
            Value::Null => Sql::Null,
            Value::Bool(b) => Sql::Integer(b as i64),
            Value::Int(i) => Sql::Integer(i),
            Value::Float(f) => Sql::Real(f),
            Value::Str(s) if ty == DataType::Bytes => {
                Sql::Blob(tillflow_types::value::heap_bytes(heap, s).to_vec())
            }
            // ROW, ARRAY, MULTISET as JSON text (read them with SQLite's json_extract)
            Value::Str(s) if ty.is_nested() && !matches!(ty, DataType::Map(..)) => {
                self.text.clear();
                crate::format::json_nested::to_json_text(&mut self.text, heap, s, ty);
                Sql::Text(self.text.clone())
            }
            Value::Str(s) if !matches!(ty, DataType::Map(..)) => {
                Sql::Text(tillflow_types::value::heap_str(heap, s).to_owned())
            }
            other => {
                self.text.clear();
                write_text(&mut self.text, other, ty, heap);
                Sql::Text(self.text.clone())
            }
        }
    }
}

fn commit(db: &mut Db) -> rusqlite::Result<()> {
    if db.in_tx {
        db.conn.execute_batch("COMMIT")?;
        db.in_tx = false;
        db.pending = 0;
    }
    Ok(())
}

impl Sink for SqliteSink {
    fn describe(&self) -> String {
        format!(
            "sqlite[{}] table {} (from `{}`)",
            self.path, self.target, self.table
        )
    }

    fn write(&mut self, row: &Row) -> Result<()> {
        // A -U is held until the next row: replaced by its +U (one upsert), or applied as a
        // delete when the next row is another key (its +U was filtered out above).
        if self.has_pending {
            self.has_pending = false;
            let replaced = row.kind.is_addition() && same_key(&self.pending, row, &self.key_cols);
            if !replaced {
                let mut pending = std::mem::take(&mut self.pending);
                pending.kind = RowKind::Delete;
                let r = self.write_row(&pending);
                self.pending = pending;
                r?;
            }
        }
        if row.kind == RowKind::UpdateBefore {
            if self.delete_sql.is_some() {
                self.pending.clone_from(row);
                self.has_pending = true;
            }
            return Ok(());
        }
        self.write_row(row)
    }

    fn flush(&mut self) -> Result<()> {
        self.finish()
    }

    fn finish(&mut self) -> Result<()> {
        if self.has_pending {
            self.has_pending = false;
            let mut pending = std::mem::take(&mut self.pending);
            pending.kind = RowKind::Delete;
            self.write_row(&pending)?;
        }
        let mut db = self.db.lock().map_err(|_| {
            RuntimeError::Sink(format!("sqlite '{}': connection poisoned", self.path))
        })?;
        commit(&mut db).map_err(|e| self.err(e))
    }

    fn transactional(&mut self) -> Option<&mut dyn TransactionalSink> {
        Some(self)
    }

    fn rows_written(&self) -> u64 {
        self.rows
    }
}

/// Whether rows `a` and `b` have equal values in columns `cols`.
/// The table that records, per writer (a job's sink), the last checkpoint whose rows were
/// committed: in the same transaction as the rows, so the two cannot disagree.
const MARKERS: &str = "CREATE TABLE IF NOT EXISTS tillflow_checkpoints (writer TEXT PRIMARY KEY, run INTEGER NOT NULL, checkpoint INTEGER NOT NULL, committed_at TEXT NOT NULL)";

impl TransactionalSink for SqliteSink {
    fn committed(&mut self, writer: &str) -> Result<Option<(u64, u64)>> {
        let db = self.db.lock().map_err(|_| {
            RuntimeError::Sink(format!("sqlite '{}': connection poisoned", self.path))
        })?;
        let read = || -> rusqlite::Result<Option<(u64, u64)>> {
            db.conn.execute_batch(MARKERS)?;
            let mut st = db
                .conn
                .prepare("SELECT run, checkpoint FROM tillflow_checkpoints WHERE writer = ?1")?;
            let mut rows = st.query([writer])?;
            match rows.next()? {
                Some(r) => Ok(Some((
                    r.get::<_, i64>(0)? as u64,
                    r.get::<_, i64>(1)? as u64,
                ))),
                None => Ok(None),
            }
        };
        let r = read();
        drop(db);
        r.map_err(|e| self.err(e))
    }

    fn commit_rows(
        &mut self,
        writer: &str,
        run: u64,
        checkpoint: u64,
        rows: &tillflow_runtime::checkpoint::RowLog,
    ) -> Result<()> {
        {
            let mut db = self.db.lock().map_err(|_| {
                RuntimeError::Sink(format!("sqlite '{}': connection poisoned", self.path))
            })?;
            // whatever another sink of the file left open is its own business: commit it first
            commit(&mut db).map_err(|e| self.err(e))?;
            let begin = |db: &mut Db| -> rusqlite::Result<()> {
                db.conn.execute_batch(MARKERS)?;
                db.conn.execute_batch("BEGIN")?;
                db.in_tx = true;
                Ok(())
            };
            begin(&mut db).map_err(|e| self.err(e))?;
        }
        self.in_checkpoint = true;
        // an updating result changes a key many times between checkpoints: only each key's last
        // change is written (the table ends the same; a running aggregate writes a row per key)
        let last = (!self.key_cols.is_empty()).then(|| {
            let mut last: HashMap<Vec<u8>, u64> = HashMap::new();
            let mut i = 0u64;
            let _ = rows.for_each(&mut |row| {
                last.insert(self.key_of(row), i);
                i += 1;
                Ok(())
            });
            last
        });
        let mut i = 0u64;
        let written = rows
            .for_each(&mut |row| {
                let keep = last
                    .as_ref()
                    .is_none_or(|l| l.get(&self.key_of(row)) == Some(&i));
                i += 1;
                if keep {
                    self.write(row)
                } else {
                    Ok(())
                }
            })
            .and_then(|_| {
                if self.has_pending {
                    self.has_pending = false;
                    let mut pending = std::mem::take(&mut self.pending);
                    pending.kind = RowKind::Delete;
                    let r = self.write_row(&pending);
                    self.pending = pending;
                    r?;
                }
                Ok(())
            });
        self.in_checkpoint = false;
        let mut db = self.db.lock().map_err(|_| {
            RuntimeError::Sink(format!("sqlite '{}': connection poisoned", self.path))
        })?;
        if let Err(e) = written {
            let _ = db.conn.execute_batch("ROLLBACK");
            db.in_tx = false;
            db.pending = 0;
            return Err(e);
        }
        let mark = |db: &mut Db| -> rusqlite::Result<()> {
            db.conn.execute(
                "INSERT INTO tillflow_checkpoints (writer, run, checkpoint, committed_at) VALUES (?1, ?2, ?3, datetime('now')) \
                 ON CONFLICT (writer) DO UPDATE SET run = excluded.run, checkpoint = excluded.checkpoint, committed_at = excluded.committed_at",
                rusqlite::params![writer, run as i64, checkpoint as i64],
            )?;
            commit(db)
        };
        let r = mark(&mut db);
        drop(db);
        r.map_err(|e| self.err(e))
    }
}

fn same_key(a: &Row, b: &Row, cols: &[usize]) -> bool {
    cols.iter()
        .all(|&c| match (a.values.get(c), b.values.get(c)) {
            (Some(Value::Str(x)), Some(Value::Str(y))) => a.bytes(*x) == b.bytes(*y),
            (Some(x), Some(y)) => x == y,
            _ => false,
        })
}

impl SqliteSink {
    /// The encoded primary key of `row`.
    fn key_of(&self, row: &Row) -> Vec<u8> {
        let mut k = Vec::with_capacity(16);
        for &c in &self.key_cols {
            tillflow_runtime::keys::encode_value(
                &mut k,
                row.values.get(c).copied().unwrap_or(Value::Null),
                &row.heap,
            );
        }
        k
    }

    fn write_row(&mut self, row: &Row) -> Result<()> {
        let mut params = Vec::with_capacity(self.types.len());
        let delete = match row.kind {
            RowKind::Insert | RowKind::UpdateAfter => {
                for i in 0..self.types.len() {
                    let v = self.sql_value(
                        row.values.get(i).copied().unwrap_or(Value::Null),
                        self.types[i],
                        &row.heap,
                    );
                    params.push(v);
                }
                false
            }
            RowKind::UpdateBefore => return Ok(()),
            RowKind::Delete => {
                if self.delete_sql.is_none() {
                    return Err(RuntimeError::Sink(format!(
                        "table `{}`: a delete reached a sqlite table without PRIMARY KEY",
                        self.table
                    )));
                }
                for j in 0..self.key_cols.len() {
                    let i = self.key_cols[j];
                    let v = self.sql_value(
                        row.values.get(i).copied().unwrap_or(Value::Null),
                        self.types[i],
                        &row.heap,
                    );
                    params.push(v);
                }
                true
            }
        };
        let sql = if delete {
            self.delete_sql.as_deref().unwrap_or_default()
        } else {
            &self.insert_sql
        };
        let mut db = self.db.lock().map_err(|_| {
            RuntimeError::Sink(format!("sqlite '{}': connection poisoned", self.path))
        })?;
        let run = |db: &mut Db| -> rusqlite::Result<()> {
            if !db.in_tx {
                db.conn.execute_batch("BEGIN")?;
                db.in_tx = true;
            }
            db.conn
                .prepare_cached(sql)?
                .execute(rusqlite::params_from_iter(params))?;
            db.pending += 1;
            if db.pending >= self.batch && !self.in_checkpoint {
                commit(db)?;
            }
            Ok(())
        };
        run(&mut db).map_err(|e| self.err(e))?;
        self.rows += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tillflow_types::{Field, Schema};

    fn spec(path: &str, pk: &[&str]) -> TableSpec {
        TableSpec {
            name: "totals".into(),
            schema: Schema::new(vec![
                Field::new("store_id", DataType::Int),
                Field::new("revenue", DataType::Double),
                Field::new("ts", DataType::Timestamp(3)),
            ]),
            options: [
                ("connector", "sqlite"),
                ("path", path),
                ("sink.buffer-flush.max-rows", "2"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            primary_key: pk.iter().map(|s| s.to_string()).collect(),
            metadata: vec![],
            partition_keys: vec![],
        }
    }

    fn row(kind: RowKind, store: i64, revenue: f64) -> Row {
        Row {
            kind,
            values: vec![
                Value::Int(store),
                Value::Float(revenue),
                Value::Timestamp(1_709_323_200_500_000),
            ],
            ..Row::default()
        }
    }

    #[test]
    fn upserts_on_the_primary_key_and_appends_without_one() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let db = db.to_str().unwrap();
        let mut s = SqliteSink::open(&spec(db, &["store_id"])).unwrap();
        for r in [
            row(RowKind::Insert, 1, 10.0),
            row(RowKind::Insert, 2, 5.0),
            row(RowKind::UpdateBefore, 1, 10.0),
            row(RowKind::UpdateAfter, 1, 12.5),
            row(RowKind::Delete, 2, 5.0),
            row(RowKind::Insert, 3, 1.0),
            row(RowKind::Insert, 4, 2.0),
            // a -U whose +U was filtered out upstream: the row goes
            row(RowKind::UpdateBefore, 4, 2.0),
            row(RowKind::Insert, 5, 7.0),
            row(RowKind::UpdateBefore, 5, 7.0),
        ] {
            s.write(&r).unwrap();
        }
        s.finish().unwrap();
        let conn = Connection::open(db).unwrap();
        let got: Vec<(i64, f64, String)> = conn
            .prepare("SELECT store_id, revenue, ts FROM totals ORDER BY store_id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 12.5, "2024-03-01 20:00:00.500".to_string()),
                (3, 1.0, "2024-03-01 20:00:00.500".to_string())
            ],
            "store 4 and 5 lost their rows to -U without +U (5 at the end of input)"
        );
        // append-only into another file: every insert is kept
        let db2 = dir.path().join("a.db");
        let mut a = SqliteSink::open(&spec(db2.to_str().unwrap(), &[])).unwrap();
        assert!(!Sqlite.sink_accepts_changes(&spec("x", &[])));
        for _ in 0..3 {
            a.write(&row(RowKind::Insert, 1, 1.0)).unwrap();
        }
        a.finish().unwrap();
        let n: i64 = Connection::open(db2)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM totals", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3);
    }

    #[test]
    fn an_existing_table_must_have_the_columns() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        Connection::open(&db)
            .unwrap()
            .execute_batch("CREATE TABLE totals (x INTEGER)")
            .unwrap();
        let e = SqliteSink::open(&spec(db.to_str().unwrap(), &[]))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("exists without column `store_id`"), "{e}");
    }
}
