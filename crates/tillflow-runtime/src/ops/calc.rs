//! Calc: an optional filter followed by a projection, the stateless core of every query.

use crate::error::{Result, RuntimeError};
use crate::expr::Expr;
use crate::operator::{Emit, Operator, OperatorMetrics};
use tillflow_types::Row;

/// Filters rows by a predicate and computes output columns from the survivors.
pub struct Calc {
    filter: Option<Expr>,
    projection: Vec<Expr>,
    /// For projections that are plain column references: the column (copied without evaluation).
    direct: Vec<Option<usize>>,
    names: Vec<String>,
    out: Row,
    scratch: Vec<u8>,
    metrics: OperatorMetrics,
}

impl Calc {
    /// A calc with an optional predicate and output expressions (named for messages).
    pub fn new(filter: Option<Expr>, projection: Vec<Expr>, names: Vec<String>) -> Self {
        let n = projection.len();
        let direct = projection
            .iter()
            .map(|e| match e {
                Expr::Column { index, .. } => Some(*index),
                _ => None,
            })
            .collect();
        Calc {
            filter,
            direct,
            projection,
            names,
            out: Row::with_capacity(n),
            scratch: Vec::with_capacity(64),
            metrics: OperatorMetrics::default(),
        }
    }
}

impl Operator for Calc {
    fn describe(&self) -> String {
        let mut s = String::from("Calc(");
        if let Some(f) = &self.filter {
            s.push_str(&format!("where={f:?}, "));
        }
        s.push_str(&format!("select=[{}])", self.names.join(", ")));
        s
    }

    #[inline]
    fn process(&mut self, row: &Row, out: &mut dyn Emit) -> Result<()> {
        self.metrics.records_in += 1;
        if let Some(f) = &self.filter {
            if !f
                .eval_predicate(row, &mut self.scratch)
                .map_err(|e| RuntimeError::Eval(format!("in WHERE: {e}")))?
            {
                return Ok(());
            }
        }
        self.out.clear();
        self.out.kind = row.kind;
        for (i, e) in self.projection.iter().enumerate() {
            if let Some(c) = self.direct[i] {
                let v = row.values.get(c).copied().unwrap_or_default();
                self.out.push_from(v, &row.heap);
                continue;
            }
            let v = e.eval(row, &mut self.out.heap).map_err(|err| {
                RuntimeError::Eval(format!(
                    "computing column `{}`: {err}",
                    self.names.get(i).map(String::as_str).unwrap_or("?")
                ))
            })?;
            self.out.values.push(v);
        }
        self.metrics.records_out += 1;
        out.emit(&self.out)
    }

    fn metrics(&self) -> OperatorMetrics {
        self.metrics.clone()
    }
}
