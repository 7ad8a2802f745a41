//! Lookup joins (`JOIN dim FOR SYSTEM_TIME AS OF s.proc AS d ON s.k = d.k`): each row of the
//! stream is enriched with the rows of an external table (PostgreSQL) that have its key, as they
//! are when the row passes, as Flink's lookup join.
//!
//! Rows are looked up in batches: a row whose key is not cached waits in a small buffer, and the
//! buffer's distinct keys go to the table in one query when it is full, before a watermark is
//! passed on, on a processing-time tick and at the end of the input; rows leave in arrival order.
//! With `'lookup.cache' = 'PARTIAL'` results (empty ones too) are kept for
//! `lookup.partial-cache.expire-after-write`, at most `lookup.partial-cache.max-rows` keys
//! (the oldest go first). INNER drops rows without a match; LEFT pads them with NULLs.

use crate::error::{Result, RuntimeError};
use crate::expr::Expr;
use crate::keys::encode_value;
use crate::operator::{Emit, Operator, OperatorMetrics};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use tillflow_types::{Row, Value};

/// An external table rows can be looked up in by key.
pub trait LookupTable: Send {
    /// A one-line description (system, table, key columns).
    fn describe(&self) -> String;
    /// Looks up every key of `keys` (rows of key values, in the table's key-column order) and
    /// appends `(index into keys, matching row of the table)` to `out`.
    fn lookup(&mut self, keys: &[Row], out: &mut Vec<(usize, Row)>) -> Result<()>;
    /// How the join may cache its results (the table's `lookup.cache` options); none by default.
    fn cache(&self) -> Option<LookupCache> {
        None
    }
}

/// How results are cached.
#[derive(Clone, Copy, Debug)]
pub struct LookupCache {
    /// Keys kept at most.
    pub max_rows: usize,
    /// How long a result stays valid.
    pub expire_after_write: Option<Duration>,
}

/// Enriches each row with the rows of a [`LookupTable`] that have its key.
pub struct LookupJoin {
    table: Box<dyn LookupTable>,
    /// Columns of the input giving the key, in the table's key order.
    left_keys: Vec<usize>,
    left_outer: bool,
    right_width: usize,
    residual: Option<Expr>,
    cache_cfg: Option<LookupCache>,
    cache: HashMap<Vec<u8>, (Instant, Vec<Row>)>,
    order: VecDeque<Vec<u8>>,
    buffer: Vec<Row>,
    used: usize,
    batch: usize,
    key: Vec<u8>,
    out: Row,
    scratch: Vec<u8>,
    metrics: OperatorMetrics,
    lookups: u64,
}

impl LookupJoin {
    /// A lookup join keyed by `left_keys`, with `right_width` columns from the table.
    pub fn new(
        table: Box<dyn LookupTable>,
        left_keys: Vec<usize>,
        left_outer: bool,
        right_width: usize,
        residual: Option<Expr>,
        cache: Option<LookupCache>,
    ) -> Self {
        LookupJoin {
            table,
            left_keys,
            left_outer,
            right_width,
            residual,
            cache_cfg: cache,
            cache: HashMap::new(),
            order: VecDeque::new(),
            buffer: Vec::new(),
            used: 0,
            batch: 256,
            key: Vec::with_capacity(32),
            out: Row::with_capacity(16),
            scratch: Vec::new(),
            metrics: OperatorMetrics::default(),
            lookups: 0,
        }
    }

    fn key_of(&self, row: &Row, key: &mut Vec<u8>) -> bool {
        key_of(&self.left_keys, row, key)
    }

    fn cached(&self, key: &[u8]) -> Option<&Vec<Row>> {
        cached(&self.cache, self.cache_cfg, key)
    }

    /// Looks up the buffered rows' missing keys in one call and emits the rows in order.
    fn flush(&mut self, out: &mut dyn Emit) -> Result<()> {
        if self.used == 0 {
            return Ok(());
        }
        let mut keys: Vec<Row> = Vec::new();
        let mut key_index: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut k = Vec::new();
        for i in 0..self.used {
            let row = &self.buffer[i];
            if !self.key_of(row, &mut k) || self.cached(&k).is_some() || key_index.contains_key(&k)
            {
                continue;
            }
            let mut kr = Row::with_capacity(self.left_keys.len());
            for &c in &self.left_keys {
                kr.push_from(row.values.get(c).copied().unwrap_or(Value::Null), &row.heap);
            }
            key_index.insert(k.clone(), keys.len());
            keys.push(kr);
        }
        let mut results: Vec<Vec<Row>> = vec![Vec::new(); keys.len()];
        if !keys.is_empty() {
            let mut found = Vec::new();
            self.lookups += 1;
            self.table.lookup(&keys, &mut found)?;
            for (i, r) in found {
                if let Some(slot) = results.get_mut(i) {
                    slot.push(r);
                }
            }
        }
        let mut fresh: HashMap<Vec<u8>, Vec<Row>> = HashMap::new();
        for (key, i) in key_index {
            fresh.insert(key, std::mem::take(&mut results[i]));
        }
        {
            // rows leave in arrival order, joined with borrowed results: nothing cloned per row
            let LookupJoin {
                buffer,
                used,
                left_keys,
                cache,
                cache_cfg,
                out: joined,
                scratch,
                metrics,
                residual,
                left_outer,
                right_width,
                ..
            } = self;
            let mut j = Joiner {
                out: joined,
                scratch,
                metrics,
                residual: residual.as_ref(),
                left_outer: *left_outer,
                right_width: *right_width,
            };
            for row in buffer.iter().take(*used) {
                let matches: &[Row] = if !key_of(left_keys, row, &mut k) {
                    &[]
                } else if let Some(m) = fresh.get(&k) {
                    m
                } else {
                    cached(cache, *cache_cfg, &k).map_or(&[][..], |v| v.as_slice())
                };
                j.emit(row, matches, out)?;
            }
        }
        self.used = 0;
        if let Some(cfg) = self.cache_cfg {
            for (key, rows) in fresh {
                if self
                    .cache
                    .insert(key.clone(), (Instant::now(), rows))
                    .is_none()
                {
                    self.order.push_back(key);
                }
                while self.cache.len() > cfg.max_rows.max(1) {
                    match self.order.pop_front() {
                        Some(old) => {
                            self.cache.remove(&old);
                        }
                        None => break,
                    }
                }
            }
        }
        Ok(())
    }
}

fn key_of(left_keys: &[usize], row: &Row, key: &mut Vec<u8>) -> bool {
    key.clear();
    let mut null = false;
    for &c in left_keys {
        let v = row.values.get(c).copied().unwrap_or(Value::Null);
        null |= v.is_null();
        encode_value(key, v, &row.heap);
    }
    !null
}

fn cached<'a>(
    cache: &'a HashMap<Vec<u8>, (Instant, Vec<Row>)>,
    cfg: Option<LookupCache>,
    key: &[u8],
) -> Option<&'a Vec<Row>> {
    let (at, rows) = cache.get(key)?;
    match cfg.and_then(|c| c.expire_after_write) {
        Some(ttl) if at.elapsed() > ttl => None,
        _ => Some(rows),
    }
}

/// Builds and emits joined rows (borrowing what it needs of the operator).
struct Joiner<'a> {
    out: &'a mut Row,
    scratch: &'a mut Vec<u8>,
    metrics: &'a mut OperatorMetrics,
    residual: Option<&'a Expr>,
    left_outer: bool,
    right_width: usize,
}

impl Joiner<'_> {
    /// Emits `row` joined with `matches` (or padded / dropped when none qualifies).
    fn emit(&mut self, row: &Row, matches: &[Row], out: &mut dyn Emit) -> Result<()> {
        let mut any = false;
        for m in matches {
            self.out.clear();
            self.out.kind = row.kind;
            for &v in &row.values {
                self.out.push_from(v, &row.heap);
            }
            for &v in &m.values {
                self.out.push_from(v, &m.heap);
            }
            if let Some(cond) = self.residual {
                let ok = cond.eval_predicate(self.out, self.scratch).map_err(|e| {
                    RuntimeError::Eval(format!("in the lookup join condition: {e}"))
                })?;
                if !ok {
                    continue;
                }
            }
            any = true;
            self.metrics.records_out += 1;
            out.emit(self.out)?;
        }
        if !any && self.left_outer {
            self.out.clear();
            self.out.kind = row.kind;
            for &v in &row.values {
                self.out.push_from(v, &row.heap);
            }
            self.out
                .values
                .extend(std::iter::repeat_n(Value::Null, self.right_width));
            self.metrics.records_out += 1;
            out.emit(self.out)?;
        }
        Ok(())
    }
}

impl Operator for LookupJoin {
    fn describe(&self) -> String {
        format!(
            "LookupJoin(table={}, keys={:?}, {}{})",
            self.table.describe(),
            self.left_keys,
            if self.left_outer { "LEFT" } else { "INNER" },
            if self.cache_cfg.is_some() {
                ", cache=PARTIAL"
            } else {
                ""
            }
        )
    }

    fn process(&mut self, row: &Row, out: &mut dyn Emit) -> Result<()> {
        self.metrics.records_in += 1;
        if self.used == 0 {
            // nothing waiting: a cached (or NULL) key is answered at once, from the cache
            let LookupJoin {
                left_keys,
                key,
                cache,
                cache_cfg,
                out: joined,
                scratch,
                metrics,
                residual,
                left_outer,
                right_width,
                ..
            } = self;
            let has_key = key_of(left_keys, row, key);
            let matches = if has_key {
                cached(cache, *cache_cfg, key).map(|v| v.as_slice())
            } else {
                Some(&[][..])
            };
            if let Some(m) = matches {
                let mut j = Joiner {
                    out: joined,
                    scratch,
                    metrics,
                    residual: residual.as_ref(),
                    left_outer: *left_outer,
                    right_width: *right_width,
                };
                return j.emit(row, m, out);
            }
        }
        if self.used < self.buffer.len() {
            self.buffer[self.used].clone_from(row);
        } else {
            self.buffer.push(row.clone());
        }
        self.used += 1;
        if self.used >= self.batch {
            self.flush(out)?;
        }
        Ok(())
    }

    fn on_watermark(&mut self, wm: i64, out: &mut dyn Emit) -> Result<()> {
        self.flush(out)?;
        out.watermark(wm)
    }

    fn on_processing_time(&mut self, _now: i64, out: &mut dyn Emit) -> Result<()> {
        self.flush(out)
    }

    fn on_end(&mut self, out: &mut dyn Emit) -> Result<()> {
        self.flush(out)
    }

    fn metrics(&self) -> OperatorMetrics {
        let mut m = self.metrics.clone();
        m.state_entries = self.cache.len() as u64;
        m
    }
}
