//! The Redis sink: a changelog applied per key, in `MULTI`/`EXEC` batches.
//!
//! Changes are buffered by their Redis key (a sorted set's by key and member), keeping each
//! key's last change, as the PostgreSQL sink does: a `-U` is applied as a delete unless its
//! `+U` for the same key follows. A batch goes out when `'sink.buffer-flush.max-rows'` keys
//! are buffered or `'sink.buffer-flush.interval'` has passed, as one transaction; every
//! command in it sets or removes a whole value, so a batch whose reply was lost is sent again
//! after reconnecting with the same result, and the next batch is not sent before it landed
//! (a key's updates are never reordered). With checkpoints, a checkpoint's changes and the
//! writer's marker key are one transaction ([`TransactionalSink`]).

use super::{redis_err, transient, RedisConfig, Segment, StoreAs};
use ::redis as rs;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tillflow_runtime::operator::{Sink, TransactionalSink};
use tillflow_runtime::{Result, RuntimeError};
use tillflow_types::{DataType, Row, Value};

/// One buffered change.
enum Op {
    /// A hash: fields to set, fields to remove (NULL values).
    Hash {
        key: String,
        set: Vec<(usize, Vec<u8>)>,
        unset: Vec<usize>,
    },
    /// A string value.
    Text { key: String, value: String },
    /// A sorted-set member and its score.
    Member {
        key: String,
        member: Vec<u8>,
        score: f64,
    },
    /// The key removed.
    Delete { key: String },
    /// The member removed from its set.
    Remove { key: String, member: Vec<u8> },
}

/// The key of a change's last-write-wins slot.
fn slot(op: &Op) -> Vec<u8> {
    match op {
        Op::Hash { key, .. } | Op::Text { key, .. } | Op::Delete { key } => key.as_bytes().into(),
        Op::Member { key, member, .. } | Op::Remove { key, member } => {
            let mut s = key.as_bytes().to_vec();
            s.push(0);
            s.extend_from_slice(member);
            s
        }
    }
}

/// The marker key recording the last checkpoint a writer committed.
pub fn marker_key(writer: &str) -> String {
    format!("tillflow:checkpoint:{writer}")
}

/// Writes rows into Redis.
pub struct RedisSink {
    cfg: RedisConfig,
    con: Option<rs::Connection>,
    json: crate::format::json::JsonEncoder,
    ops: Vec<Op>,
    index: HashMap<Vec<u8>, usize>,
    /// A -U waiting for its +U.
    pending_before: crate::upsert::PendingBefore,
    last_flush: Instant,
    rows: u64,
    text: String,
    /// Inside [`TransactionalSink::commit_rows`]: the marker written with the batch, and no
    /// flushes at the buffer's limits.
    checkpoint: Option<(String, String)>,
}

/// Appends a value's text (Flink's `CAST(v AS STRING)`; BYTES as they are).
pub fn write_value(out: &mut Vec<u8>, text: &mut String, v: Value, ty: DataType, heap: &[u8]) {
    match (v, ty) {
        (Value::Str(r), DataType::Bytes) => {
            out.extend_from_slice(tillflow_types::value::heap_bytes(heap, r))
        }
        (Value::Str(r), t) if t.is_string() => {
            out.extend_from_slice(tillflow_types::value::heap_bytes(heap, r))
        }
        (Value::Null, _) => out.extend_from_slice(b"null"),
        (v, ty) => {
            text.clear();
            tillflow_runtime::cast::write_text(text, v, ty, heap);
            out.extend_from_slice(text.as_bytes());
        }
    }
}

/// The key a pattern builds from a row.
pub fn build_key(
    pattern: &[Segment],
    columns: &[(String, DataType)],
    row: &Row,
    text: &mut String,
) -> String {
    let mut key = Vec::with_capacity(32);
    for s in pattern {
        match s {
            Segment::Text(t) => key.extend_from_slice(t.as_bytes()),
            Segment::Column(c) => write_value(
                &mut key,
                text,
                row.values.get(*c).copied().unwrap_or(Value::Null),
                columns.get(*c).map_or(DataType::Null, |c| c.1),
                &row.heap,
            ),
        }
    }
    String::from_utf8(key).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

impl RedisSink {
    /// Connects (so a wrong address or password fails at start-up).
    pub fn open(cfg: RedisConfig) -> std::result::Result<Self, crate::ConnectorError> {
        let con = cfg.connect().map_err(|e| crate::ConnectorError::Options {
            table: cfg.table.clone(),
            message: format!("connecting to Redis at {}: {e}", cfg.display),
        })?;
        let spec = crate::TableSpec {
            name: cfg.table.clone(),
            schema: tillflow_types::Schema::new(
                cfg.columns
                    .iter()
                    .map(|(n, t)| tillflow_types::Field::new(n.clone(), *t))
                    .collect(),
            ),
            options: Default::default(),
            primary_key: vec![],
            metadata: vec![],
            partition_keys: vec![],
        };
        Ok(RedisSink {
            json: crate::format::json::JsonEncoder::new(&spec, "json")?,
            cfg,
            con: Some(con),
            ops: Vec::new(),
            index: HashMap::new(),
            pending_before: Default::default(),
            last_flush: Instant::now(),
            rows: 0,
            text: String::new(),
            checkpoint: None,
        })
    }

    fn key(&mut self, row: &Row) -> String {
        build_key(&self.cfg.pattern, &self.cfg.columns, row, &mut self.text)
    }

    fn member(&mut self, row: &Row) -> Vec<u8> {
        let mut m = Vec::new();
        if let Some(c) = self.cfg.member {
            write_value(
                &mut m,
                &mut self.text,
                row.values.get(c).copied().unwrap_or(Value::Null),
                self.cfg.columns[c].1,
                &row.heap,
            );
        }
        m
    }

    fn op(&mut self, row: &Row, delete: bool) -> Op {
        let key = self.key(row);
        match (self.cfg.data_type, delete) {
            (StoreAs::SortedSet, true) => Op::Remove {
                member: self.member(row),
                key,
            },
            (StoreAs::SortedSet, false) => {
                let score = match self.cfg.score.and_then(|c| row.values.get(c)) {
                    Some(Value::Int(i)) => *i as f64,
                    Some(Value::Float(f)) => *f,
                    Some(Value::Decimal(d)) => {
                        let scale = match self.cfg.score.map(|c| self.cfg.columns[c].1) {
                            Some(DataType::Decimal(_, s)) => s,
                            _ => 0,
                        };
                        *d as f64 / 10f64.powi(scale as i32)
                    }
                    // a NULL score takes the member out of its set
                    _ => {
                        return Op::Remove {
                            member: self.member(row),
                            key,
                        }
                    }
                };
                Op::Member {
                    member: self.member(row),
                    key,
                    score,
                }
            }
            (_, true) => Op::Delete { key },
            (StoreAs::String, false) => {
                let mut value = String::with_capacity(128);
                self.json.write_object(row, &mut value);
                Op::Text { key, value }
            }
            (StoreAs::Hash, false) => {
                let (mut set, mut unset) = (Vec::new(), Vec::new());
                for (c, (_, ty)) in self.cfg.columns.iter().enumerate() {
                    let v = row.values.get(c).copied().unwrap_or(Value::Null);
                    if v.is_null() {
                        unset.push(c);
                    } else {
                        let mut b = Vec::new();
                        write_value(&mut b, &mut self.text, v, *ty, &row.heap);
                        set.push((c, b));
                    }
                }
                Op::Hash { key, set, unset }
            }
        }
    }

    fn buffer(&mut self, row: &Row, delete: bool) {
        let op = self.op(row, delete);
        let slot = slot(&op);
        match self.index.get(&slot) {
            Some(&i) => self.ops[i] = op,
            None => {
                self.index.insert(slot, self.ops.len());
                self.ops.push(op);
            }
        }
    }

    /// The buffered changes (and the checkpoint marker) as one transaction.
    fn pipeline(&self) -> rs::Pipeline {
        let mut p = rs::pipe();
        p.atomic();
        let ttl = self.cfg.ttl.map(|t| t.as_millis().max(1) as u64);
        for op in &self.ops {
            match op {
                Op::Hash { key, set, unset } => {
                    if !set.is_empty() {
                        let c = p.cmd("HSET").arg(key);
                        for (col, v) in set {
                            c.arg(&self.cfg.columns[*col].0).arg(v.as_slice());
                        }
                        c.ignore();
                    }
                    if !unset.is_empty() {
                        let c = p.cmd("HDEL").arg(key);
                        for col in unset {
                            c.arg(&self.cfg.columns[*col].0);
                        }
                        c.ignore();
                    }
                    if let Some(ms) = ttl {
                        p.cmd("PEXPIRE").arg(key).arg(ms).ignore();
                    }
                }
                Op::Text { key, value } => {
                    let c = p.cmd("SET").arg(key).arg(value.as_str());
                    if let Some(ms) = ttl {
                        c.arg("PX").arg(ms);
                    }
                    c.ignore();
                }
                Op::Member { key, member, score } => {
                    p.cmd("ZADD")
                        .arg(key)
                        .arg(*score)
                        .arg(member.as_slice())
                        .ignore();
                    if let Some(ms) = ttl {
                        p.cmd("PEXPIRE").arg(key).arg(ms).ignore();
                    }
                }
                Op::Delete { key } => {
                    p.cmd("DEL").arg(key).ignore();
                }
                Op::Remove { key, member } => {
                    p.cmd("ZREM").arg(key).arg(member.as_slice()).ignore();
                }
            }
        }
        if let Some((key, value)) = &self.checkpoint {
            p.cmd("SET").arg(key).arg(value).ignore();
        }
        p
    }

    /// Writes the buffer in one transaction, reconnecting and sending it again while the
    /// server cannot be reached (for `'connection.max-retry-timeout'`).
    fn flush(&mut self) -> Result<()> {
        self.last_flush = Instant::now();
        if self.ops.is_empty() && self.checkpoint.is_none() {
            return Ok(());
        }
        let pipe = self.pipeline();
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            let result = match self.con.as_mut() {
                Some(con) => pipe
                    .query::<()>(con)
                    .map_err(|e| (redis_err(&e), transient(&e))),
                None => match self.cfg.connect() {
                    Ok(c) => {
                        self.con = Some(c);
                        continue;
                    }
                    Err(e) => Err((e, true)),
                },
            };
            match result {
                Ok(()) => break,
                Err((e, true)) if started.elapsed() < self.cfg.retry_for => {
                    attempt += 1;
                    if attempt == 1 || attempt.is_power_of_two() {
                        eprintln!(
                            "warning: table `{}`: Redis write failed ({e}); reconnecting to {} and sending the batch again (attempt {attempt})",
                            self.cfg.table, self.cfg.display
                        );
                    }
                    self.con = None;
                    std::thread::sleep(Duration::from_millis((100 * attempt as u64).min(1000)));
                }
                Err((e, _)) => {
                    self.con = None;
                    let hint = if e.contains("WRONGTYPE") {
                        " (a key the 'key-pattern' builds already holds another type of value: another table's keys?)"
                    } else {
                        ""
                    };
                    return Err(RuntimeError::Sink(format!(
                        "table `{}`: writing to Redis at {}: {e}{hint}",
                        self.cfg.table, self.cfg.display
                    )));
                }
            }
        }
        self.rows += self.ops.len() as u64;
        self.ops.clear();
        self.index.clear();
        Ok(())
    }

    fn due(&self) -> bool {
        self.checkpoint.is_none()
            && (self.ops.len() >= self.cfg.max_rows
                || self
                    .cfg
                    .interval
                    .is_some_and(|i| self.last_flush.elapsed() >= i))
    }
}

impl Sink for RedisSink {
    fn describe(&self) -> String {
        format!(
            "redis[{}] {} (from `{}`)",
            self.cfg.display,
            match self.cfg.data_type {
                StoreAs::Hash => "hashes",
                StoreAs::String => "strings",
                StoreAs::SortedSet => "sorted sets",
            },
            self.cfg.table
        )
    }

    fn write(&mut self, row: &Row) -> Result<()> {
        let mut pending = std::mem::take(&mut self.pending_before);
        let step = pending.feed(row, |a, b| {
            let (a, b) = (self.op(a, true), self.op(b, true));
            slot(&a) == slot(&b)
        });
        self.pending_before = pending;
        if let Some(before) = step.delete_before {
            self.buffer(&before, true);
        }
        match step.own {
            Some(delete) => self.buffer(row, delete),
            None => return Ok(()),
        }
        if self.due() {
            self.flush()?;
        }
        Ok(())
    }

    fn watermark(&mut self, _wm: i64) -> Result<()> {
        if self.due() {
            self.flush()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        Sink::flush(self)
    }

    fn flush(&mut self) -> Result<()> {
        // a -U still waiting for its +U is applied as a delete: the +U, when it comes, re-adds
        if let Some(before) = self.pending_before.take() {
            self.buffer(&before, true);
        }
        RedisSink::flush(self)
    }

    fn rows_written(&self) -> u64 {
        self.rows
    }

    fn transactional(&mut self) -> Option<&mut dyn TransactionalSink> {
        Some(self)
    }
}

impl TransactionalSink for RedisSink {
    fn committed(&mut self, writer: &str) -> Result<Option<(u64, u64)>> {
        let fail = |e: String| {
            RuntimeError::Sink(format!(
                "table `{}`: reading the checkpoint marker from Redis at {}: {e}",
                self.cfg.table, self.cfg.display
            ))
        };
        if self.con.is_none() {
            self.con = Some(self.cfg.connect().map_err(fail)?);
        }
        let Some(con) = self.con.as_mut() else {
            return Err(fail("no connection".into()));
        };
        let value: Option<String> = match rs::cmd("GET").arg(marker_key(writer)).query(con) {
            Ok(v) => v,
            Err(e) => {
                self.con = None;
                return Err(fail(redis_err(&e)));
            }
        };
        let Some(value) = value else {
            return Ok(None);
        };
        let parsed = value
            .split_once(':')
            .and_then(|(r, c)| Some((r.parse().ok()?, c.parse().ok()?)));
        match parsed {
            Some(p) => Ok(Some(p)),
            None => Err(fail(format!(
                "the marker key {} holds '{}', not RUN:CHECKPOINT (was it written by something else?)",
                marker_key(writer),
                crate::format::clip(&value)
            ))),
        }
    }

    fn commit_rows(
        &mut self,
        writer: &str,
        run: u64,
        checkpoint: u64,
        rows: &tillflow_runtime::checkpoint::RowLog,
    ) -> Result<()> {
        self.checkpoint = Some((marker_key(writer), format!("{run}:{checkpoint}")));
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
