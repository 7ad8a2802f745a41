//! Operators of batch execution (`SET 'execution.runtime-mode' = 'batch'`), where a query
//! writes only its final result once every input has ended, as Flink's batch mode does.
//!
//! - [`Materialize`] turns a changelog into its final rows: it applies each change to a
//!   multiset of rows (`+I`/`+U` add one, `-U`/`-D` remove one) and, at the end of the input,
//!   emits what is left as inserts, in the order the rows first appeared — so a GROUP BY gives
//!   one row per group and an append-only sink can take it.
//! - [`Sort`] is Flink's `Sort` / `SortLimit` / `Limit`: it keeps every row (or, with a limit,
//!   the first `offset + limit` in order), and at the end emits them sorted, skipping `offset`.
//!
//! Both hold their rows until the end of the input, which batch mode guarantees is reached.

use crate::error::Result;
use crate::keys::encode_key;
use crate::operator::{Emit, Operator, OperatorMetrics};
use crate::ops::rank::{compare_rows, SortKey};
use std::collections::HashMap;
use tillflow_types::{Row, RowKind};

/// A changelog's final rows, emitted at the end of the input.
#[derive(Default)]
pub struct Materialize {
    /// Each distinct row and how many times it is present.
    rows: Vec<(Row, i64)>,
    index: HashMap<Vec<u8>, usize>,
    key: Vec<u8>,
    all: Vec<usize>,
    metrics: OperatorMetrics,
}

impl Operator for Materialize {
    fn describe(&self) -> String {
        "Materialize".into()
    }

    fn process(&mut self, row: &Row, _out: &mut dyn Emit) -> Result<()> {
        self.metrics.records_in += 1;
        if self.all.len() != row.values.len() {
            self.all = (0..row.values.len()).collect();
        }
        encode_key(&mut self.key, row, &self.all);
        let delta = if row.kind.is_addition() { 1 } else { -1 };
        match self.index.get(&self.key) {
            Some(&i) => self.rows[i].1 += delta,
            None => {
                let mut kept = row.detached();
                kept.kind = RowKind::Insert;
                self.index.insert(self.key.clone(), self.rows.len());
                self.rows.push((kept, delta));
            }
        }
        self.metrics.state_entries = self.rows.len() as u64;
        Ok(())
    }

    fn on_end(&mut self, out: &mut dyn Emit) -> Result<()> {
        for (row, n) in &self.rows {
            for _ in 0..(*n).max(0) {
                self.metrics.records_out += 1;
                out.emit(row)?;
            }
        }
        self.rows.clear();
        self.index.clear();
        Ok(())
    }

    fn metrics(&self) -> OperatorMetrics {
        self.metrics.clone()
    }
}

/// ORDER BY … [LIMIT n] [OFFSET m] over a bounded input.
pub struct Sort {
    keys: Vec<SortKey>,
    offset: usize,
    limit: Option<usize>,
    rows: Vec<Row>,
    metrics: OperatorMetrics,
}

impl Sort {
    /// Sorts by `keys` (none: arrival order), then skips `offset` rows and keeps `limit`.
    pub fn new(keys: Vec<SortKey>, offset: usize, limit: Option<usize>) -> Self {
        Sort {
            keys,
            offset,
            limit,
            rows: Vec::new(),
            metrics: OperatorMetrics::default(),
        }
    }
}

impl Operator for Sort {
    fn describe(&self) -> String {
        "Sort".into()
    }

    fn process(&mut self, row: &Row, _out: &mut dyn Emit) -> Result<()> {
        self.metrics.records_in += 1;
        let keep = self.limit.map(|l| l.saturating_add(self.offset));
        if keep == Some(0) {
            return Ok(());
        }
        // the position after every row that sorts before or with it: ties keep arrival order
        let pos = self
            .rows
            .partition_point(|r| compare_rows(r, row, &self.keys) != std::cmp::Ordering::Greater);
        if let Some(k) = keep {
            if pos >= k {
                return Ok(());
            }
        }
        let mut kept = row.detached();
        kept.kind = RowKind::Insert;
        self.rows.insert(pos, kept);
        if let Some(k) = keep {
            self.rows.truncate(k);
        }
        self.metrics.state_entries = self.rows.len() as u64;
        Ok(())
    }

    fn on_end(&mut self, out: &mut dyn Emit) -> Result<()> {
        for row in self.rows.iter().skip(self.offset) {
            self.metrics.records_out += 1;
            out.emit(row)?;
        }
        self.rows.clear();
        Ok(())
    }

    fn metrics(&self) -> OperatorMetrics {
        self.metrics.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tillflow_types::Value;

    struct Collect(Vec<Vec<Value>>);
    impl Emit for Collect {
        fn emit(&mut self, row: &Row) -> Result<()> {
            assert_eq!(row.kind, RowKind::Insert);
            self.0.push(row.values.clone());
            Ok(())
        }
        fn watermark(&mut self, _wm: i64) -> Result<()> {
            Ok(())
        }
    }

    fn row(kind: RowKind, vals: &[i64]) -> Row {
        let mut r = Row::with_capacity(vals.len());
        r.kind = kind;
        r.values.extend(vals.iter().map(|v| Value::Int(*v)));
        r
    }

    #[test]
    fn materialize_keeps_the_final_rows() {
        let mut m = Materialize::default();
        let mut out = Collect(vec![]);
        for r in [
            row(RowKind::Insert, &[1, 10]),
            row(RowKind::Insert, &[2, 5]),
            row(RowKind::UpdateBefore, &[1, 10]),
            row(RowKind::UpdateAfter, &[1, 12]),
            row(RowKind::Insert, &[3, 1]),
            row(RowKind::Delete, &[3, 1]),
        ] {
            m.process(&r, &mut out).unwrap();
        }
        assert!(out.0.is_empty(), "nothing before the end");
        m.on_end(&mut out).unwrap();
        let want: Vec<Vec<Value>> = vec![
            vec![Value::Int(2), Value::Int(5)],
            vec![Value::Int(1), Value::Int(12)],
        ];
        assert_eq!(out.0, want);
    }

    #[test]
    fn sort_limit_offset() {
        let keys = vec![SortKey {
            col: 1,
            descending: true,
            nulls_first: false,
        }];
        let mut s = Sort::new(keys, 1, Some(2));
        let mut out = Collect(vec![]);
        for (i, v) in [5, 9, 1, 7, 9].iter().enumerate() {
            s.process(&row(RowKind::Insert, &[i as i64, *v]), &mut out)
                .unwrap();
        }
        s.on_end(&mut out).unwrap();
        // sorted 9 (id 1), 9 (id 4), 7, 5, 1: skip one, keep two
        assert_eq!(
            out.0,
            vec![
                vec![Value::Int(4), Value::Int(9)],
                vec![Value::Int(3), Value::Int(7)]
            ]
        );
    }
}
