//! UNNEST: `CROSS JOIN UNNEST(arr) AS t(…)` and `LEFT JOIN UNNEST(arr) AS t(…) ON TRUE`, Flink's
//! `Correlate` of a row with the elements of one of its arrays (or multisets): one output row
//! per element — the input's columns, then the element's (a ROW element's fields, or the element
//! itself), then its 1-based position `WITH ORDINALITY`. A NULL element of an array of ROWs gives
//! no row (Flink 2.3 drops it; with ORDINALITY Flink fails on one, tillflow keeps the positions
//! of the other elements). An empty or NULL array gives no row, or
//! for LEFT one row with NULL element columns. Row kinds pass through, so an updating input
//! stays updating. Stateless; the output row and the array's scratch space are reused.

use crate::error::{Result, RuntimeError};
use crate::expr::Expr;
use crate::operator::{Emit, Operator, OperatorMetrics};
use tillflow_types::value::copy_value;
use tillflow_types::{nested, DataType, Row, Value};

/// Flattens an array column into rows.
pub struct Unnest {
    array: Expr,
    element: DataType,
    left_outer: bool,
    ordinality: bool,
    scratch: Vec<u8>,
    out: Row,
    metrics: OperatorMetrics,
}

impl Unnest {
    /// UNNEST of `array` (of type ARRAY or MULTISET of `element`).
    pub fn new(array: Expr, element: DataType, left_outer: bool, ordinality: bool) -> Self {
        Unnest {
            array,
            element,
            left_outer,
            ordinality,
            scratch: Vec::with_capacity(256),
            out: Row::with_capacity(16),
            metrics: OperatorMetrics::default(),
        }
    }

    /// Number of columns an element adds.
    fn width(&self) -> usize {
        match self.element {
            DataType::Row(r) => r.fields.len(),
            _ => 1,
        }
    }
}

/// Starts an output row: the input row's kind and columns.
fn start(out: &mut Row, row: &Row) {
    out.clear();
    out.kind = row.kind;
    for v in &row.values {
        out.push_from(*v, &row.heap);
    }
}

impl Operator for Unnest {
    fn describe(&self) -> String {
        format!("Correlate(UNNEST, element={})", self.element)
    }

    fn process(&mut self, row: &Row, out: &mut dyn Emit) -> Result<()> {
        self.metrics.records_in += 1;
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let arr = self
            .array
            .eval(row, &mut scratch)
            .map_err(|e| RuntimeError::Eval(format!("in UNNEST: {e}")))?;
        let n_in = row.values.len();
        let mut emitted = false;
        if let Value::Str(span) = arr {
            for (i, e) in nested::elements(&scratch, span, self.element).enumerate() {
                start(&mut self.out, row);
                match (self.element, e) {
                    (DataType::Row(r), Value::Str(s)) => {
                        for f in 0..r.fields.len() {
                            let v = nested::row_field(&scratch, s, r, f);
                            let v = copy_value(v, &scratch, &mut self.out.heap);
                            self.out.values.push(v);
                        }
                    }
                    // a NULL element of an array of ROWs gives no row, as in Flink 2.3
                    (DataType::Row(_), _) => continue,
                    (_, v) => {
                        let v = copy_value(v, &scratch, &mut self.out.heap);
                        self.out.values.push(v);
                    }
                }
                if self.ordinality {
                    self.out.values.push(Value::Int(i as i64 + 1));
                }
                emitted = true;
                self.metrics.records_out += 1;
                out.emit(&self.out)?;
            }
        }
        self.scratch = scratch;
        if !emitted && self.left_outer {
            start(&mut self.out, row);
            let pad = self.width() + self.ordinality as usize;
            self.out.values.resize(n_in + pad, Value::Null);
            self.metrics.records_out += 1;
            out.emit(&self.out)?;
        }
        Ok(())
    }

    fn metrics(&self) -> OperatorMetrics {
        self.metrics.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect(Vec<Vec<Value>>, Vec<Vec<u8>>);
    impl Emit for Collect {
        fn emit(&mut self, row: &Row) -> Result<()> {
            self.0.push(row.values.clone());
            self.1.push(row.heap.clone());
            Ok(())
        }
        fn watermark(&mut self, _wm: i64) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn one_row_per_element_and_left_pads() {
        let item = DataType::row(vec![
            ("sku".into(), DataType::String(None)),
            ("qty".into(), DataType::Int),
        ]);
        let arr_ty = DataType::array(item);
        let DataType::Row(rt) = item else { panic!() };
        let mut row = Row::with_capacity(2);
        row.values.push(Value::Int(7));
        let a = row.intern("A");
        let first = nested::push_row(&mut row.heap, &[Value::Str(a), Value::Int(2)], rt);
        let second = nested::push_row(&mut row.heap, &[Value::Null, Value::Int(5)], rt);
        let arr = nested::push_array(
            &mut row.heap,
            &[Value::Str(first), Value::Str(second)],
            item,
        );
        row.values.push(Value::Str(arr));
        let col = Expr::col(1, arr_ty);
        let mut op = Unnest::new(col.clone(), item, false, true);
        let mut got = Collect(vec![], vec![]);
        op.process(&row, &mut got).unwrap();
        assert_eq!(got.0.len(), 2);
        assert_eq!(got.0[0][0], Value::Int(7));
        assert_eq!(got.0[0][3], Value::Int(2));
        assert_eq!(got.0[0][4], Value::Int(1));
        match got.0[0][2] {
            Value::Str(s) => assert_eq!(tillflow_types::value::heap_str(&got.1[0], s), "A"),
            ref v => panic!("{v:?}"),
        }
        assert_eq!(got.0[1][2], Value::Null);
        assert_eq!(got.0[1][4], Value::Int(2));

        // an empty array: nothing for CROSS, a padded row for LEFT
        let mut empty = Row::with_capacity(2);
        empty.values.push(Value::Int(8));
        let e = nested::push_array(&mut empty.heap, &[], item);
        empty.values.push(Value::Str(e));
        let mut got = Collect(vec![], vec![]);
        op.process(&empty, &mut got).unwrap();
        assert!(got.0.is_empty());
        let mut left = Unnest::new(col, item, true, false);
        left.process(&empty, &mut got).unwrap();
        assert_eq!(got.0.len(), 1);
        assert_eq!(got.0[0].len(), 4);
        assert_eq!(got.0[0][0], Value::Int(8));
        assert_eq!(&got.0[0][2..], &[Value::Null, Value::Null]);
    }
}
