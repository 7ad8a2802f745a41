//! Record-at-a-time operators that are not windows: calc (filter and projection), watermark
//! assignment, non-windowed group aggregation, deduplication and Top-N ranking, regular joins, event-time temporal joins, lookup joins,
//! OVER aggregation, and the normalization of upsert streams.

pub mod batch;
pub mod calc;
pub mod dedup;
pub mod group_agg;
pub mod interval_join;
pub mod join;
pub mod lookup;
pub mod ml;
pub mod normalize;
pub mod over;
pub mod python;
pub mod rank;
pub mod temporal_join;
pub mod union;
pub mod unnest;
pub mod values;
pub mod watermark;

/// Rows of a key and a time, and a collector of what an operator emits, for the operators' tests.
#[cfg(test)]
pub(crate) mod test_rows {
    use crate::error::Result;
    use crate::operator::Emit;
    use tillflow_types::{Row, RowKind, Value};

    /// What an operator emitted: each row's kind, its first column as text and its second as a
    /// timestamp (-1 when it is not one).
    #[derive(Default)]
    pub struct Collected(pub Vec<(RowKind, String, i64)>);

    impl Emit for Collected {
        fn emit(&mut self, row: &Row) -> Result<()> {
            let k = match row.values[0] {
                Value::Str(s) => tillflow_types::value::heap_str(&row.heap, s).to_owned(),
                _ => String::new(),
            };
            let t = match row.values[1] {
                Value::Timestamp(t) => t,
                _ => -1,
            };
            self.0.push((row.kind, k, t));
            Ok(())
        }
        fn watermark(&mut self, _wm: i64) -> Result<()> {
            Ok(())
        }
    }

    /// A row `(k, t)`: a string key and a timestamp.
    pub fn row(k: &str, t: i64) -> Row {
        let mut r = Row::with_capacity(2);
        let s = r.intern(k);
        r.values.extend([Value::Str(s), Value::Timestamp(t)]);
        r
    }
}
