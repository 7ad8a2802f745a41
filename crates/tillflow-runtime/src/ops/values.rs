//! Flink's `Values`: a bounded source of literal rows (`VALUES (…), (…)`, or the one empty row
//! a `SELECT` without FROM reads). Each row's expressions are evaluated when it is read, into
//! the row the job loop hands in.

use crate::error::{Result, RuntimeError};
use crate::expr::Expr;
use crate::operator::{Poll, Source, SourceMetrics};
use tillflow_types::{Row, Schema};

/// The rows of a `VALUES` clause, read once.
pub struct ValuesSource {
    rows: Vec<Vec<Expr>>,
    schema: Schema,
    next: usize,
    empty: Row,
}

impl ValuesSource {
    /// A source of `rows` (one expression per column of `schema`).
    pub fn new(rows: Vec<Vec<Expr>>, schema: Schema) -> Self {
        ValuesSource {
            rows,
            schema,
            next: 0,
            empty: Row::default(),
        }
    }
}

impl Source for ValuesSource {
    fn describe(&self) -> String {
        format!("Values({} rows)", self.rows.len())
    }

    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn poll(&mut self, row: &mut Row) -> Result<Poll> {
        let Some(exprs) = self.rows.get(self.next) else {
            return Ok(Poll::End);
        };
        self.next += 1;
        for (i, e) in exprs.iter().enumerate() {
            let v = e.eval(&self.empty, &mut row.heap).map_err(|err| {
                RuntimeError::Eval(format!("VALUES row {}, column {}: {err}", self.next, i + 1))
            })?;
            row.values.push(v);
        }
        Ok(Poll::Record)
    }

    fn metrics(&self) -> SourceMetrics {
        SourceMetrics {
            records: self.next as u64,
            ..SourceMetrics::default()
        }
    }

    fn progress(&self) -> Option<f64> {
        Some(if self.rows.is_empty() {
            1.0
        } else {
            self.next as f64 / self.rows.len() as f64
        })
    }
}
