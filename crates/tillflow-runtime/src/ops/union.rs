//! `UNION ALL`: the rows of two inputs, one stream. The planner has cast both inputs to the same
//! column types; the two-input node this runs in forwards the smaller of the two watermarks, so
//! windows after a union see event time as both inputs have reached it (as in Flink).

use crate::error::Result;
use crate::operator::{Emit, OperatorMetrics, TwoInputOperator};
use tillflow_types::Row;

/// Passes every row of either input on unchanged (change kinds included).
#[derive(Default)]
pub struct UnionAll {
    metrics: OperatorMetrics,
}

impl TwoInputOperator for UnionAll {
    fn describe(&self) -> String {
        "UnionAll".into()
    }

    fn process(&mut self, _side: usize, row: &Row, out: &mut dyn Emit) -> Result<()> {
        self.metrics.records_in += 1;
        self.metrics.records_out += 1;
        out.emit(row)
    }

    fn metrics(&self) -> OperatorMetrics {
        self.metrics.clone()
    }
}
