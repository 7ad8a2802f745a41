//! The `postgres-cdc` source: the table's rows, then its changes from a logical replication slot.
//!
//! At start the source checks `wal_level`, the table's columns, the publication and the slot
//! (creating what is missing, or saying which privilege it lacks). The initial read is a
//! `SELECT` of the table through a cursor, after the slot exists, so no change is missed: a change
//! both in the read and in the slot is applied twice with the same result, since rows are
//! upserts on the key. Changes are fetched with `pg_logical_slot_peek_binary_changes` (the slot
//! is not moved by reading) in commit order, whole transactions at a time. The read position is
//! the commit LSN of the last transaction handed out whole and the rows handed out of the next
//! one, so a restore resumes at the row after the checkpoint's; the slot is advanced to a
//! position only when the rows before it are safe in the sinks ([`Source::commit`],
//! [`Source::commit_checkpoint`]).

use super::pgoutput::{self, Datum, Message};
use super::{CdcConfig, Startup, METADATA};
use crate::postgres::{pg_err, transient};
use crate::{ConnectorError, TableSpec};
use postgres::{Client, NoTls};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use tillflow_runtime::operator::{Poll, Source, SourceMetrics};
use tillflow_runtime::{Result, RuntimeError};
use tillflow_types::{DataType, Row, RowKind, Schema, Value};

/// Rows fetched per round trip of the initial read.
const SNAPSHOT_BATCH: i32 = 2000;
/// Changes asked for per fetch, beyond those already handed out and not yet confirmed.
const FETCH_CHANGES: i64 = 10_000;
/// Microseconds between 1970-01-01 and PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_US: i64 = 946_684_800_000_000;

/// One item of the queue the source hands out.
enum Item {
    /// A row of the initial read.
    Snapshot(Row),
    /// A row a change produced.
    Change(Row),
    /// The end of a transaction: its commit LSN.
    Commit(u64),
}

/// How a relation's columns map to the table's.
struct Relation {
    /// Per relation column: the table column it fills.
    to_table: Vec<Option<usize>>,
}

/// Reads a PostgreSQL table and its changes.
pub struct CdcSource {
    cfg: CdcConfig,
    schema: Schema,
    /// Physical columns.
    width: usize,
    types: Vec<DataType>,
    names: Vec<String>,
    key: Vec<usize>,
    /// Per metadata column: its key in [`METADATA`].
    metadata: Vec<usize>,
    client: Option<Client>,
    /// The initial read still to do (or under way: rows read so far).
    snapshot: Option<u64>,
    queue: VecDeque<Item>,
    relations: HashMap<u32, Relation>,
    /// The last transaction handed out whole, and the rows handed out of the next.
    position: (u64, u64),
    /// Rows to skip of the first transaction after `position.0` (after a restore).
    skip: u64,
    /// Where the slot stands (confirmed).
    confirmed: u64,
    /// Messages the last fetch returned (all still in the slot until it is advanced past them).
    unconfirmed: i64,
    /// Commit time of the transaction being decoded (µs since 1970).
    commit_time: i64,
    last_fetch: Option<Instant>,
    records: u64,
}

impl CdcSource {
    /// Checks the table's options and metadata columns, and connects (so a wrong address,
    /// password or privilege fails at start-up).
    pub fn open(cfg: CdcConfig, table: &TableSpec) -> std::result::Result<Self, ConnectorError> {
        let (schema, metadata) = crate::with_metadata(table, METADATA)?;
        let key = table
            .primary_key
            .iter()
            .filter_map(|k| table.schema.index_of(k))
            .collect();
        let mut s = CdcSource {
            width: table.schema.fields.len(),
            types: table.schema.fields.iter().map(|f| f.data_type).collect(),
            names: table.schema.fields.iter().map(|f| f.name.clone()).collect(),
            key,
            metadata,
            schema,
            client: None,
            snapshot: (cfg.startup == Startup::Initial).then_some(0),
            queue: VecDeque::new(),
            relations: HashMap::new(),
            position: (0, 0),
            skip: 0,
            confirmed: 0,
            unconfirmed: 0,
            commit_time: 0,
            last_fetch: None,
            records: 0,
            cfg,
        };
        s.setup().map_err(|m| table.error(m))?;
        Ok(s)
    }

    fn fail(&self, what: &str, e: &postgres::Error) -> String {
        let hint = match e.as_db_error().map(|d| d.code().code()) {
            Some("42501") => match what {
                w if w.contains("slot") => " — the user needs the REPLICATION attribute (ALTER ROLE … REPLICATION) or superuser to use replication slots",
                w if w.contains("publication") => " — creating a publication needs CREATE on the database and ownership of the table (or a superuser to create it: CREATE PUBLICATION … FOR TABLE …)",
                _ => " — the user needs SELECT on the table",
            },
            Some("55000") if what.contains("slot") => " — set wal_level = logical in postgresql.conf and restart PostgreSQL",
            _ => "",
        };
        format!(
            "PostgreSQL at {}: {what}: {}{hint}",
            self.cfg.display,
            pg_err(e)
        )
    }

    fn connect(&mut self) -> std::result::Result<&mut Client, String> {
        if self.client.is_none() {
            let mut c = self.cfg.config.connect(NoTls).map_err(|e| {
                format!(
                    "cannot connect to PostgreSQL at {}: {}",
                    self.cfg.display,
                    pg_err(&e)
                )
            })?;
            // timestamptz values are decoded as text in this session's zone
            c.batch_execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET bytea_output = 'hex'; SET extra_float_digits = 3")
                .map_err(|e| self.fail("setting up the session", &e))?;
            self.client = Some(c);
        }
        self.client
            .as_mut()
            .ok_or_else(|| "no connection".to_string())
    }

    /// The connection, opened if needed (a runtime error naming the table if it cannot be).
    fn client_or_error(&mut self) -> Result<&mut Client> {
        let table = self.cfg.table.clone();
        self.connect()
            .map_err(|e| RuntimeError::Source(format!("table `{table}`: {e}")))
    }

    fn qualified(&self) -> String {
        format!(
            "\"{}\".\"{}\"",
            self.cfg.schema.replace('"', "\"\""),
            self.cfg.relation.replace('"', "\"\"")
        )
    }

    /// Checks the server, the table and the publication, and creates the slot if missing.
    fn setup(&mut self) -> std::result::Result<(), String> {
        let (schema, relation) = (self.cfg.schema.clone(), self.cfg.relation.clone());
        let (slot, publication) = (self.cfg.slot.clone(), self.cfg.publication.clone());
        let qualified = self.qualified();
        self.connect()?;
        let mut c = self.client.take().ok_or("no connection")?;
        let r = (|| -> std::result::Result<u64, String> {
            let level: String = c
                .query_one("SHOW wal_level", &[])
                .map_err(|e| self.fail("reading wal_level", &e))?
                .get(0);
            if level != "logical" {
                return Err(format!(
                    "PostgreSQL at {}: wal_level is '{level}', and change data capture needs 'logical': set wal_level = logical in postgresql.conf and restart PostgreSQL",
                    self.cfg.display
                ));
            }
            let cols: Vec<String> = c
                .query(
                    "SELECT column_name::text FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2",
                    &[&schema, &relation],
                )
                .map_err(|e| self.fail("reading the table's columns", &e))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if cols.is_empty() {
                return Err(format!(
                    "PostgreSQL at {}: table {schema}.{relation} does not exist (or the user cannot see it)",
                    self.cfg.display
                ));
            }
            if let Some(missing) = self
                .names
                .iter()
                .find(|n| !cols.iter().any(|c| c.eq_ignore_ascii_case(n)))
            {
                return Err(format!(
                    "PostgreSQL at {}: table {schema}.{relation} has no column `{missing}` (it has: {})",
                    self.cfg.display,
                    cols.join(", ")
                ));
            }
            let exists = c
                .query_opt(
                    "SELECT 1 FROM pg_publication WHERE pubname = $1",
                    &[&publication],
                )
                .map_err(|e| self.fail("reading publications", &e))?
                .is_some();
            if !exists {
                c.batch_execute(&format!(
                    "CREATE PUBLICATION \"{publication}\" FOR TABLE {qualified}"
                ))
                .map_err(|e| self.fail(&format!("creating publication {publication}"), &e))?;
            } else {
                let has = c
                    .query_opt(
                        "SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3",
                        &[&publication, &schema, &relation],
                    )
                    .map_err(|e| self.fail("reading publications", &e))?
                    .is_some();
                if !has {
                    c.batch_execute(&format!(
                        "ALTER PUBLICATION \"{publication}\" ADD TABLE {qualified}"
                    ))
                    .map_err(|e| {
                        self.fail(
                            &format!("adding the table to publication {publication}"),
                            &e,
                        )
                    })?;
                }
            }
            let found = c
                .query_opt(
                    "SELECT confirmed_flush_lsn::text, plugin::text FROM pg_replication_slots WHERE slot_name = $1",
                    &[&slot],
                )
                .map_err(|e| self.fail("reading replication slots", &e))?;
            match found {
                Some(r) => {
                    let plugin: Option<String> = r.get(1);
                    if plugin.as_deref() != Some("pgoutput") {
                        return Err(format!(
                            "PostgreSQL at {}: replication slot {slot} decodes with '{}', not 'pgoutput': name another 'slot.name'",
                            self.cfg.display,
                            plugin.unwrap_or_default()
                        ));
                    }
                    let lsn: Option<String> = r.get(0);
                    Ok(lsn.as_deref().and_then(pgoutput::parse_lsn).unwrap_or(0))
                }
                None => {
                    let r = c
                        .query_one(
                            "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')",
                            &[&slot],
                        )
                        .map_err(|e| self.fail(&format!("creating replication slot {slot}"), &e))?;
                    let lsn: String = r.get(0);
                    Ok(pgoutput::parse_lsn(&lsn).unwrap_or(0))
                }
            }
        })();
        self.client = Some(c);
        self.confirmed = r?;
        if self.position.0 == 0 {
            self.position = (self.confirmed, 0);
        }
        Ok(())
    }

    fn error(&self, what: String) -> RuntimeError {
        RuntimeError::Source(format!("table `{}`: {what}", self.cfg.table))
    }

    /// A column's value from its text form.
    fn value(&self, col: usize, text: &[u8], heap: &mut Vec<u8>) -> Result<Value> {
        let ty = self.types[col];
        let bad = |why: String| {
            self.error(format!(
                "column `{}`: '{}' {why}",
                self.names[col],
                crate::format::clip(&String::from_utf8_lossy(text))
            ))
        };
        let push = |heap: &mut Vec<u8>, b: &[u8]| {
            let off = heap.len() as u32;
            heap.extend_from_slice(b);
            Value::Str(tillflow_types::StrRef {
                off,
                len: b.len() as u32,
            })
        };
        match ty {
            DataType::Boolean => match text {
                b"t" | b"true" => Ok(Value::Bool(true)),
                b"f" | b"false" => Ok(Value::Bool(false)),
                _ => Err(bad("is not a boolean".into())),
            },
            DataType::Bytes => {
                let hex = text.strip_prefix(b"\\x").unwrap_or(text);
                let mut out = Vec::with_capacity(hex.len() / 2);
                for pair in hex.chunks(2) {
                    let s = std::str::from_utf8(pair).map_err(|_| bad("is not hex".into()))?;
                    out.push(u8::from_str_radix(s, 16).map_err(|_| bad("is not hex".into()))?);
                }
                Ok(push(heap, &out))
            }
            t if t.is_string() => Ok(push(heap, text)),
            _ => {
                let s = std::str::from_utf8(text).map_err(|_| bad("is not UTF-8".into()))?;
                // timestamptz in a UTC session: '2024-03-09 10:00:00+00'
                let s = if ty.is_timestamp() {
                    s.strip_suffix("+00").unwrap_or(s)
                } else {
                    s
                };
                let v = push(heap, s.as_bytes());
                tillflow_runtime::cast::cast_value(v, DataType::String(None), ty, heap)
                    .map_err(|e| bad(format!("does not read as {ty}: {e}")))
            }
        }
    }

    /// Appends the metadata columns.
    fn push_metadata(&self, row: &mut Row, op_ts: i64) {
        for &k in &self.metadata {
            let v = match METADATA[k].0 {
                "table_name" => Value::Str(row.intern(&self.cfg.relation)),
                "schema_name" => Value::Str(row.intern(&self.cfg.schema)),
                "database_name" => Value::Str(row.intern(&self.cfg.database)),
                _ => Value::Timestamp(op_ts),
            };
            row.values.push(v);
        }
    }

    /// The next batch of the initial read (false when it is done): a cursor in one
    /// repeatable-read transaction, so the read is one consistent view of the table.
    fn read_snapshot(&mut self) -> Result<bool> {
        let Some(done) = self.snapshot else {
            return Ok(false);
        };
        let cols = self
            .names
            .iter()
            .map(|n| format!("\"{}\"::text", n.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(", ");
        let open = format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; DECLARE tillflow_snapshot NO SCROLL CURSOR FOR SELECT {cols} FROM {}",
            self.qualified()
        );
        let first = done == 0;
        let rows = {
            let c = self.client_or_error()?;
            let opened = if first {
                c.batch_execute(&open)
            } else {
                Ok(())
            };
            opened.and_then(|_| {
                c.query(
                    format!("FETCH {SNAPSHOT_BATCH} FROM tillflow_snapshot").as_str(),
                    &[],
                )
            })
        };
        let rows = match rows {
            Ok(r) => r,
            Err(e) => {
                let m = self.fail("reading the table", &e);
                // the read starts again on a new connection
                self.client = None;
                self.snapshot = Some(0);
                if transient(&e) {
                    eprintln!(
                        "warning: table `{}`: {m}; reading the table again",
                        self.cfg.table
                    );
                    std::thread::sleep(Duration::from_millis(500));
                    return Ok(true);
                }
                return Err(self.error(m));
            }
        };
        let n = rows.len() as u64;
        for r in rows {
            let mut row = Row::with_capacity(self.schema.fields.len());
            row.kind = RowKind::Insert;
            for c in 0..self.width {
                let text: Option<&str> = r.get(c);
                let v = match text {
                    None => Value::Null,
                    Some(t) => self.value(c, t.as_bytes(), &mut row.heap)?,
                };
                row.values.push(v);
            }
            self.push_metadata(&mut row, 0);
            self.queue.push_back(Item::Snapshot(row));
        }
        if n < SNAPSHOT_BATCH as u64 {
            self.snapshot = None;
            let end = self
                .client_or_error()?
                .batch_execute("CLOSE tillflow_snapshot; COMMIT");
            if let Err(e) = end {
                return Err(self.error(self.fail("ending the read of the table", &e)));
            }
        } else {
            self.snapshot = Some(done + n);
        }
        Ok(true)
    }

    /// A row of the table from a tuple of relation `oid` (`fallback`: the old tuple, for
    /// unchanged TOASTed values).
    fn row_of(
        &self,
        oid: u32,
        tuple: &[Datum],
        fallback: Option<&[Datum]>,
        kind: RowKind,
    ) -> Result<Row> {
        let Some(rel) = self.relations.get(&oid) else {
            return Err(self.error(format!(
                "a change of relation {oid} came before its description"
            )));
        };
        let mut row = Row::with_capacity(self.schema.fields.len());
        row.kind = kind;
        row.values.resize(self.width, Value::Null);
        for (i, d) in tuple.iter().enumerate() {
            let Some(Some(col)) = rel.to_table.get(i) else {
                continue;
            };
            let d = match d {
                Datum::Unchanged => match fallback.and_then(|f| f.get(i)) {
                    Some(Datum::Unchanged) | None => {
                        return Err(self.error(format!(
                            "column `{}`: an update left a large (TOASTed) value unchanged and PostgreSQL did not send it; run ALTER TABLE {} REPLICA IDENTITY FULL so it does",
                            self.names[*col],
                            self.qualified()
                        )))
                    }
                    Some(f) => f,
                },
                d => d,
            };
            if let Datum::Text(t) = d {
                let v = self.value(*col, t, &mut row.heap)?;
                row.values[*col] = v;
            }
        }
        self.push_metadata(&mut row, self.commit_time);
        Ok(row)
    }

    /// Fetches the changes after our position (whole transactions).
    fn fetch(&mut self) -> Result<()> {
        self.last_fetch = Some(Instant::now());
        let upto = self.unconfirmed + FETCH_CHANGES;
        let (slot, publication) = (self.cfg.slot.clone(), self.cfg.publication.clone());
        let result = {
            let c = self.client_or_error()?;
            // every commit before this point is in the changes read next
            c.query_one("SELECT pg_current_wal_lsn()::text", &[])
                .and_then(|now| {
                    let now: String = now.get(0);
                    c.query(
                        "SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2::int, 'proto_version', '1', 'publication_names', $3)",
                        &[&slot, &(upto as i32), &publication],
                    )
                    .map(|rows| (pgoutput::parse_lsn(&now).unwrap_or(0), rows))
                })
        };
        let (now, rows) = match result {
            Ok(r) => r,
            Err(e) => {
                let m = self.fail(&format!("reading replication slot {slot}"), &e);
                if transient(&e) {
                    // the server restarts: try again at the next fetch
                    eprintln!("warning: table `{}`: {m}; reconnecting", self.cfg.table);
                    self.client = None;
                    return Ok(());
                }
                return Err(self.error(m));
            }
        };
        let after = self.position.0;
        let complete = (rows.len() as i64) < upto;
        self.unconfirmed = rows.len() as i64;
        let mut take = false;
        for r in rows {
            let data: Vec<u8> = r.get(0);
            let msg = pgoutput::decode(&data)
                .map_err(|e| self.error(format!("replication slot {slot}: {e}")))?;
            match msg {
                Message::Begin {
                    final_lsn,
                    timestamp,
                } => {
                    take = final_lsn > after;
                    self.commit_time = (timestamp + PG_EPOCH_US) / 1000 * 1000;
                }
                Message::Commit { lsn, .. } => {
                    if take {
                        self.queue.push_back(Item::Commit(lsn));
                    }
                    take = false;
                }
                Message::Relation {
                    oid,
                    namespace,
                    name,
                    columns,
                } => {
                    let ours = namespace == self.cfg.schema && name == self.cfg.relation;
                    let to_table = columns
                        .iter()
                        .map(|c| {
                            ours.then(|| {
                                self.names.iter().position(|n| n == &c.name).or_else(|| {
                                    self.names
                                        .iter()
                                        .position(|n| n.eq_ignore_ascii_case(&c.name))
                                })
                            })
                            .flatten()
                        })
                        .collect();
                    if ours {
                        self.relations.insert(oid, Relation { to_table });
                    } else {
                        self.relations.remove(&oid);
                    }
                }
                Message::Insert { oid, new } if take && self.relations.contains_key(&oid) => {
                    let row = self.row_of(oid, &new, None, RowKind::Insert)?;
                    self.queue.push_back(Item::Change(row));
                }
                Message::Update { oid, old, new } if take && self.relations.contains_key(&oid) => {
                    let new_row = self.row_of(oid, &new, old.as_deref(), RowKind::UpdateAfter)?;
                    if let Some(old) = &old {
                        // the key changed (or REPLICA IDENTITY FULL): the old key goes
                        let old_row = self.row_of(oid, old, None, RowKind::Delete)?;
                        if self.key.iter().any(|&k| !same(&old_row, &new_row, k)) {
                            self.queue.push_back(Item::Change(old_row));
                        }
                    }
                    self.queue.push_back(Item::Change(new_row));
                }
                Message::Delete { oid, old } if take && self.relations.contains_key(&oid) => {
                    let row = self.row_of(oid, &old, None, RowKind::Delete)?;
                    self.queue.push_back(Item::Change(row));
                }
                Message::Truncate { oids }
                    if take && oids.iter().any(|o| self.relations.contains_key(o)) =>
                {
                    eprintln!(
                        "warning: table `{}`: {} was truncated; a TRUNCATE is not a change per key and is not applied (Flink CDC skips it too): the rows downstream keep their values",
                        self.cfg.table,
                        self.qualified()
                    );
                }
                _ => {}
            }
        }
        // nothing of ours committed up to `now`: the position moves there, so the slot can
        // let go of the WAL other tables wrote meanwhile (as Debezium's heartbeats do)
        if complete && self.queue.is_empty() && now > self.position.0 {
            self.position = (now, 0);
        }
        Ok(())
    }

    /// Moves the slot to `lsn` (the rows before it are safe in the sinks).
    fn confirm(&mut self, lsn: u64) -> Result<()> {
        if lsn <= self.confirmed {
            return Ok(());
        }
        let slot = self.cfg.slot.clone();
        let text = pgoutput::format_lsn(lsn);
        let r = {
            let c = self.client_or_error()?;
            c.query(
                "SELECT pg_replication_slot_advance($1, $2::text::pg_lsn)",
                &[&slot, &text],
            )
        };
        match r {
            Ok(_) => {
                self.confirmed = lsn;
                Ok(())
            }
            Err(e) if transient(&e) => {
                // confirmed at the next commit instead
                self.client = None;
                Ok(())
            }
            Err(e) => Err(self.error(self.fail(&format!("advancing replication slot {slot}"), &e))),
        }
    }
}

fn same(a: &Row, b: &Row, col: usize) -> bool {
    let (x, y) = (a.values.get(col), b.values.get(col));
    match (x, y) {
        (Some(Value::Str(p)), Some(Value::Str(q))) => a.bytes(*p) == b.bytes(*q),
        (Some(p), Some(q)) => p == q,
        _ => false,
    }
}

impl Source for CdcSource {
    fn describe(&self) -> String {
        format!(
            "postgres-cdc[{}] {}.{} (slot {})",
            self.cfg.display, self.cfg.schema, self.cfg.relation, self.cfg.slot
        )
    }

    fn checkpoint_identity(&self) -> String {
        format!(
            "postgres-cdc {}/{}.{} slot {}",
            self.cfg.database, self.cfg.schema, self.cfg.relation, self.cfg.slot
        )
    }

    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn poll(&mut self, row: &mut Row) -> Result<Poll> {
        loop {
            match self.queue.pop_front() {
                Some(Item::Snapshot(r)) => {
                    *row = r;
                    self.records += 1;
                    return Ok(Poll::Record);
                }
                Some(Item::Change(r)) => {
                    self.position.1 += 1;
                    if self.skip > 0 {
                        // handed out before the restore
                        self.skip -= 1;
                        continue;
                    }
                    *row = r;
                    self.records += 1;
                    return Ok(Poll::Record);
                }
                Some(Item::Commit(lsn)) => {
                    self.position = (lsn, 0);
                    self.skip = 0;
                    continue;
                }
                None => {}
            }
            if self.snapshot.is_some() {
                self.read_snapshot()?;
                continue;
            }
            if self
                .last_fetch
                .is_some_and(|t| t.elapsed() < self.cfg.poll_interval)
            {
                return Ok(Poll::Idle);
            }
            self.fetch()?;
            if self.queue.is_empty() {
                return Ok(Poll::Idle);
            }
        }
    }

    fn metrics(&self) -> SourceMetrics {
        SourceMetrics {
            records: self.records,
            ..SourceMetrics::default()
        }
    }

    fn bounded(&self) -> bool {
        false
    }

    fn resumable(&self) -> bool {
        true
    }

    fn snapshot_position(&mut self, out: &mut Vec<u8>) -> Result<()> {
        // version, the initial read's progress (u64::MAX: done), our position
        out.push(1);
        // rows of the read still queued are not handed out: the read is not done for a restore
        let reading =
            self.snapshot.is_some() || self.queue.iter().any(|i| matches!(i, Item::Snapshot(_)));
        out.extend_from_slice(&(if reading { 0 } else { u64::MAX }).to_le_bytes());
        out.extend_from_slice(&self.position.0.to_le_bytes());
        out.extend_from_slice(&self.position.1.to_le_bytes());
        Ok(())
    }

    fn restore_position(&mut self, input: &[u8]) -> Result<()> {
        let word = |i: usize| -> Option<u64> {
            let b = input.get(1 + 8 * i..9 + 8 * i)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            Some(u64::from_le_bytes(a))
        };
        let (Some(1), Some(snap), Some(lsn), Some(rows)) =
            (input.first().copied(), word(0), word(1), word(2))
        else {
            return Err(self.error(
                "the checkpoint's position of this table is damaged or of another version".into(),
            ));
        };
        self.queue.clear();
        // a read interrupted is read again from its start: rows already passed on are
        // upserts of the same values
        self.snapshot = (snap != u64::MAX).then_some(0);
        self.position = (
            lsn.max(self.confirmed),
            if lsn >= self.confirmed { rows } else { 0 },
        );
        self.skip = self.position.1;
        self.position.1 = 0;
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        if self.snapshot.is_none() {
            self.confirm(self.position.0)?;
        }
        Ok(())
    }

    fn commit_checkpoint(&mut self, position: &[u8]) -> Result<()> {
        let lsn = position
            .get(9..17)
            .map(|b| {
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                u64::from_le_bytes(a)
            })
            .unwrap_or(0);
        let done = position
            .get(1..9)
            .is_some_and(|b| b.iter().all(|x| *x == 0xFF));
        if done {
            self.confirm(lsn)?;
        }
        Ok(())
    }
}
