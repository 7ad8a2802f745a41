//! A Redis table looked up by key (`FOR SYSTEM_TIME AS OF` joins): the join's keys must be the
//! columns of the table's `'key-pattern'`, which builds the one Redis key each lookup reads —
//! `HGETALL` of a hash (each field read back as its column's type, as `CAST(s AS type)` reads
//! it; a missing field is NULL) or `GET` of a string (the row as JSON). A batch of keys is one
//! round trip; a broken connection is reopened and the batch sent again.

use super::{pattern_columns, redis_err, transient, RedisConfig, StoreAs};
use crate::format::Decoder;
use crate::{ConnectorError, TableSpec};
use ::redis as rs;
use std::time::{Duration, Instant};
use tillflow_runtime::ops::lookup::{LookupCache, LookupTable};
use tillflow_runtime::{Result, RuntimeError};
use tillflow_types::{DataType, Row, Value};

/// Looks rows up in Redis.
pub struct RedisLookup {
    cfg: RedisConfig,
    con: Option<rs::Connection>,
    /// Per pattern column: its place among the join's keys.
    key_of: Vec<(usize, usize)>,
    json: Option<crate::format::json::JsonDecoder>,
    text: String,
    probe: Row,
}

impl RedisLookup {
    /// A lookup by the columns `keys` (their positions in the table); nothing is opened yet.
    pub fn new(
        cfg: RedisConfig,
        table: &TableSpec,
        keys: &[usize],
    ) -> std::result::Result<Self, ConnectorError> {
        if cfg.data_type == StoreAs::SortedSet {
            return Err(table.error(
                "a 'sorted-set' table cannot be looked up by key; use 'data-type' = 'hash' or 'string'",
            ));
        }
        let mut want = keys.to_vec();
        want.sort_unstable();
        want.dedup();
        let have = pattern_columns(&cfg.pattern);
        if want != have {
            let names = |cols: &[usize]| {
                cols.iter()
                    .map(|&c| table.schema.fields[c].name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(table.error(format!(
                "a lookup in Redis reads the key of 'key-pattern', so the join must be on exactly its columns ({}), not on ({})",
                names(&have),
                names(&want)
            )));
        }
        let key_of = have
            .iter()
            .filter_map(|c| keys.iter().position(|k| k == c).map(|p| (*c, p)))
            .collect();
        let json = match cfg.data_type {
            StoreAs::String => Some(crate::format::json::JsonDecoder::new(&TableSpec {
                options: Default::default(),
                ..table.clone()
            })?),
            _ => None,
        };
        Ok(RedisLookup {
            cfg,
            con: None,
            key_of,
            json,
            text: String::new(),
            probe: Row::with_capacity(8),
        })
    }

    /// The Redis key of a row of join keys.
    fn key(&mut self, keys: &Row) -> String {
        // the pattern reads table columns: place the key values there
        let n = self.cfg.columns.len();
        self.probe.clear();
        self.probe.values.resize(n, Value::Null);
        for &(col, at) in &self.key_of {
            if let Some(v) = keys.values.get(at) {
                let v = tillflow_types::value::copy_value(*v, &keys.heap, &mut self.probe.heap);
                self.probe.values[col] = v;
            }
        }
        super::sink::build_key(
            &self.cfg.pattern,
            &self.cfg.columns,
            &self.probe,
            &mut self.text,
        )
    }

    fn query(&mut self, keys: &[String]) -> std::result::Result<Vec<rs::Value>, (String, bool)> {
        if self.con.is_none() {
            self.con = Some(self.cfg.connect().map_err(|e| (e, true))?);
        }
        let Some(con) = self.con.as_mut() else {
            return Err(("no connection".into(), true));
        };
        let mut p = rs::pipe();
        for k in keys {
            match self.cfg.data_type {
                StoreAs::String => p.cmd("GET").arg(k),
                _ => p.cmd("HGETALL").arg(k),
            };
        }
        p.query(con).map_err(|e| (redis_err(&e), transient(&e)))
    }

    /// A value of column `c` read from its text.
    fn read(&self, c: usize, bytes: &[u8], row: &mut Row) -> Result<Value> {
        let ty = self.cfg.columns[c].1;
        let at = row.heap.len() as u32;
        row.heap.extend_from_slice(bytes);
        let s = Value::Str(tillflow_types::StrRef {
            off: at,
            len: bytes.len() as u32,
        });
        if ty.is_string() || ty == DataType::Bytes {
            return Ok(s);
        }
        if std::str::from_utf8(bytes).is_err() {
            return Err(RuntimeError::Source(format!(
                "field `{}` is not UTF-8 text",
                self.cfg.columns[c].0
            )));
        }
        tillflow_runtime::cast::cast_value(s, DataType::String(None), ty, &mut row.heap)
    }

    /// The row a reply holds, if the key exists.
    fn row_of(&mut self, key: &str, reply: rs::Value) -> Result<Option<Row>> {
        let bad = |what: String| {
            RuntimeError::Source(format!(
                "table `{}`: Redis key {}: {what}",
                self.cfg.table,
                crate::format::clip(key)
            ))
        };
        let n = self.cfg.columns.len();
        match (self.cfg.data_type, reply) {
            (_, rs::Value::Nil) => Ok(None),
            (StoreAs::String, v) => {
                let bytes: Vec<u8> = rs::from_redis_value(v).map_err(|e| bad(e.to_string()))?;
                let mut row = Row::with_capacity(n);
                let Some(d) = self.json.as_mut() else {
                    return Ok(None);
                };
                d.decode(&bytes, &mut row)
                    .map_err(|e| bad(format!("not a row of the table as JSON: {e}")))?;
                Ok(Some(row))
            }
            (_, v) => {
                let fields: Vec<(Vec<u8>, Vec<u8>)> =
                    rs::from_redis_value(v).map_err(|e| bad(e.to_string()))?;
                if fields.is_empty() {
                    return Ok(None);
                }
                let mut row = Row::with_capacity(n);
                row.values.resize(n, Value::Null);
                for (name, value) in fields {
                    let Some(c) = self
                        .cfg
                        .columns
                        .iter()
                        .position(|(col, _)| col.as_bytes() == name.as_slice())
                    else {
                        continue;
                    };
                    let v = self
                        .read(c, &value, &mut row)
                        .map_err(|e| bad(format!("field `{}`: {e}", self.cfg.columns[c].0)))?;
                    row.values[c] = v;
                }
                Ok(Some(row))
            }
        }
    }
}

impl LookupTable for RedisLookup {
    fn describe(&self) -> String {
        format!(
            "redis[{}] {} by ({})",
            self.cfg.display,
            self.cfg
                .pattern
                .iter()
                .map(|s| match s {
                    super::Segment::Text(t) => t.clone(),
                    super::Segment::Column(c) => format!("{{{}}}", self.cfg.columns[*c].0),
                })
                .collect::<String>(),
            self.key_of
                .iter()
                .map(|&(c, _)| self.cfg.columns[c].0.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    fn cache(&self) -> Option<LookupCache> {
        self.cfg.cache
    }

    fn lookup(&mut self, keys: &[Row], out: &mut Vec<(usize, Row)>) -> Result<()> {
        let redis_keys: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        let started = Instant::now();
        let mut attempt = 0u32;
        let replies = loop {
            match self.query(&redis_keys) {
                Ok(r) => break r,
                Err((e, true)) if started.elapsed() < self.cfg.retry_for => {
                    attempt += 1;
                    if attempt == 1 || attempt.is_power_of_two() {
                        eprintln!(
                            "warning: table `{}`: Redis lookup failed ({e}); reconnecting to {} (attempt {attempt})",
                            self.cfg.table, self.cfg.display
                        );
                    }
                    self.con = None;
                    std::thread::sleep(Duration::from_millis((100 * attempt as u64).min(1000)));
                }
                Err((e, _)) => {
                    self.con = None;
                    return Err(RuntimeError::Source(format!(
                        "table `{}`: lookup in Redis at {}: {e}",
                        self.cfg.table, self.cfg.display
                    )));
                }
            }
        };
        for (i, (reply, key)) in replies.into_iter().zip(&redis_keys).enumerate() {
            if let Some(row) = self.row_of(key, reply)? {
                out.push((i, row));
            }
        }
        Ok(())
    }
}
