//! Watermark assignment from a table's `WATERMARK FOR col AS expr` clause.
//!
//! As Flink with `pipeline.auto-watermark-interval = 0`: after each record is passed on, the
//! watermark expression is evaluated on it and, if it is higher than the current watermark, the
//! new watermark is emitted. So record *i* is judged by windows against the watermark produced by
//! the records before it.

use crate::error::{Result, RuntimeError};
use crate::expr::Expr;
use crate::operator::{Emit, Operator, OperatorMetrics};
use tillflow_types::{Row, Value};

/// Emits a watermark after every record that raises it.
pub struct WatermarkAssigner {
    expr: Expr,
    /// `col - INTERVAL` (or `col`): computed directly, without evaluating the expression.
    fast: Option<(usize, i64)>,
    rowtime: String,
    current: i64,
    scratch: Vec<u8>,
    metrics: OperatorMetrics,
}

impl WatermarkAssigner {
    /// An assigner evaluating `expr` (a TIMESTAMP expression over the row) for rowtime column `rowtime`.
    pub fn new(expr: Expr, rowtime: String) -> Self {
        use crate::expr::BinOp;
        let fast = match &expr {
            Expr::Column { index, .. } => Some((*index, 0)),
            Expr::Binary {
                op: BinOp::Sub,
                left,
                right,
                ..
            } => match (left.as_ref(), right.as_ref()) {
                (
                    Expr::Column { index, .. },
                    Expr::Literal {
                        value: Value::Interval(d),
                        ..
                    },
                ) => Some((*index, *d)),
                _ => None,
            },
            _ => None,
        };
        WatermarkAssigner {
            expr,
            fast,
            rowtime,
            current: i64::MIN,
            scratch: Vec::new(),
            metrics: OperatorMetrics::default(),
        }
    }

    /// The current watermark (`i64::MIN` before the first).
    pub fn current(&self) -> i64 {
        self.current
    }
}

impl Operator for WatermarkAssigner {
    fn describe(&self) -> String {
        format!(
            "WatermarkAssigner(rowtime={}, watermark={:?})",
            self.rowtime, self.expr
        )
    }

    #[inline]
    fn process(&mut self, row: &Row, out: &mut dyn Emit) -> Result<()> {
        self.metrics.records_in += 1;
        self.metrics.records_out += 1;
        out.emit(row)?;
        if let Some((col, delay)) = self.fast {
            if let Some(Value::Timestamp(t)) = row.values.get(col) {
                let wm = t.saturating_sub(delay);
                if wm > self.current {
                    self.current = wm;
                    out.watermark(wm)?;
                }
            }
            return Ok(());
        }
        self.scratch.clear();
        let wm = self
            .expr
            .eval(row, &mut self.scratch)
            .map_err(|e| RuntimeError::Eval(format!("in WATERMARK FOR {}: {e}", self.rowtime)))?;
        if let Value::Timestamp(t) = wm {
            if t > self.current {
                self.current = t;
                out.watermark(t)?;
            }
        }
        Ok(())
    }

    fn metrics(&self) -> OperatorMetrics {
        self.metrics.clone()
    }

    fn snapshot_state(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.current.to_le_bytes());
    }

    fn restore_state(&mut self, input: &[u8]) -> Result<()> {
        self.current = crate::state::read_u64(input, &mut 0)? as i64;
        Ok(())
    }
}
