//! Applying a changelog to a store keyed by the table's primary key (the PostgreSQL and Redis
//! sinks): one policy for both. `+I` and `+U` write the key's value, `-D` deletes the key. A `-U`
//! waits for the row after it: the `+U` of the same key replaces the value (the `-U` is dropped);
//! anything else — another key, a delete, a flush — applies the `-U` as a delete, so an update
//! whose new row was filtered out still removes the old one.

use tillflow_types::{Row, RowKind};

/// What one changelog row asks of the store.
pub struct Step {
    /// A waiting `-U` to apply as a delete first.
    pub delete_before: Option<Row>,
    /// The row's own change: `Some(true)` delete, `Some(false)` write, `None` (a `-U`) wait.
    pub own: Option<bool>,
}

/// The `-U` waiting for its `+U`.
#[derive(Default)]
pub struct PendingBefore(Option<Row>);

impl PendingBefore {
    /// Feeds one changelog row; `same_key(before, row)` tells whether a waiting `-U` and this
    /// row have the same key (asked only when it matters).
    pub fn feed(&mut self, row: &Row, mut same_key: impl FnMut(&Row, &Row) -> bool) -> Step {
        let delete_before = self
            .0
            .take()
            .filter(|before| !(row.kind.is_addition() && same_key(before, row)));
        let own = match row.kind {
            RowKind::UpdateBefore => {
                self.0 = Some(row.clone());
                None
            }
            RowKind::Delete => Some(true),
            RowKind::Insert | RowKind::UpdateAfter => Some(false),
        };
        Step { delete_before, own }
    }

    /// A waiting `-U`, to apply as a delete (at a flush).
    pub fn take(&mut self) -> Option<Row> {
        self.0.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tillflow_types::Value;

    fn row(kind: RowKind, key: i64) -> Row {
        let mut r = Row::with_capacity(1);
        r.kind = kind;
        r.values.push(Value::Int(key));
        r
    }

    #[test]
    fn an_update_before_waits_for_its_update_after() {
        let same = |a: &Row, b: &Row| a.values == b.values;
        let mut p = PendingBefore::default();
        let s = p.feed(&row(RowKind::UpdateBefore, 1), same);
        assert!(s.delete_before.is_none() && s.own.is_none());
        // its +U: the -U is dropped
        let s = p.feed(&row(RowKind::UpdateAfter, 1), same);
        assert!(s.delete_before.is_none() && s.own == Some(false));
        // a -U followed by another key's row: applied as a delete first
        p.feed(&row(RowKind::UpdateBefore, 2), same);
        let s = p.feed(&row(RowKind::Insert, 3), same);
        assert_eq!(s.delete_before.map(|r| r.values), Some(vec![Value::Int(2)]));
        assert_eq!(s.own, Some(false));
        // and at a flush
        p.feed(&row(RowKind::UpdateBefore, 4), same);
        assert_eq!(p.take().map(|r| r.values), Some(vec![Value::Int(4)]));
        assert_eq!(p.feed(&row(RowKind::Delete, 5), same).own, Some(true));
    }
}
