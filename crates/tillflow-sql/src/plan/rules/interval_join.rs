//! Rule: a join whose condition bounds one side's event time by the other's runs as Flink's
//! interval join. From the residual condition's conjuncts it finds a lower and an upper bound of
//! the right side's rowtime relative to the left's (`a.t BETWEEN b.t - INTERVAL … AND b.t + …`,
//! `>`/`>=`/`<`/`<=` with constant offsets); the planner applies it to an inner join of two
//! append-only inputs on equal keys, and names the time-bounded joins it does not apply to.

use crate::plan::visit_columns;
use tillflow_runtime::expr::{BinOp, Expr};
use tillflow_types::Value;

/// The bounds of an interval join: `right time + lower <= left time <= right time + upper`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IntervalBounds {
    pub(crate) left_time: usize,
    pub(crate) right_time: usize,
    pub(crate) lower_ms: i64,
    pub(crate) upper_ms: i64,
}

/// A time column, plus a constant interval (µs): `t`, `t + INTERVAL ..`, `t - INTERVAL ..`.
pub(crate) fn time_term(e: &Expr) -> Option<(usize, i64)> {
    let interval = |x: &Expr| match x {
        Expr::Literal {
            value: Value::Interval(us),
            ..
        } => Some(*us),
        _ => None,
    };
    match e {
        Expr::Column { index, .. } => Some((*index, 0)),
        Expr::Cast { arg, .. } => time_term(arg),
        Expr::Binary {
            op: BinOp::Add,
            left,
            right,
            ..
        } => match (
            time_term(left),
            interval(right),
            interval(left),
            time_term(right),
        ) {
            (Some((c, o)), Some(i), _, _) | (_, _, Some(i), Some((c, o))) => Some((c, o + i)),
            _ => None,
        },
        Expr::Binary {
            op: BinOp::Sub,
            left,
            right,
            ..
        } => {
            let (c, o) = time_term(left)?;
            Some((c, o - interval(right)?))
        }
        _ => None,
    }
}

/// Flink's interval-join bounds in `residual`'s conjuncts: comparisons between one left and one
/// right event-time column (the same two throughout), giving both a lower and an upper bound.
pub(crate) fn interval_bounds(
    residual: &Expr,
    left: &[usize],
    right: &[usize],
) -> Option<IntervalBounds> {
    let mut parts = Vec::new();
    fn split<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
        match e {
            Expr::Binary {
                op: BinOp::And,
                left,
                right,
                ..
            } => {
                split(left, out);
                split(right, out);
            }
            other => out.push(other),
        }
    }
    split(residual, &mut parts);
    let (mut lower, mut upper, mut cols) = (None::<i64>, None::<i64>, None);
    for p in parts {
        let Expr::Binary {
            op,
            left: a,
            right: b,
            ..
        } = p
        else {
            continue;
        };
        if !matches!(op, BinOp::Lt | BinOp::LtEq | BinOp::Gt | BinOp::GtEq) {
            continue;
        }
        let (Some(ta), Some(tb)) = (time_term(a), time_term(b)) else {
            continue;
        };
        // as `left term op right term`
        let (l, r, op) = if left.contains(&ta.0) && right.contains(&tb.0) {
            (ta, tb, *op)
        } else if right.contains(&ta.0) && left.contains(&tb.0) {
            let flipped = match op {
                BinOp::Lt => BinOp::Gt,
                BinOp::LtEq => BinOp::GtEq,
                BinOp::Gt => BinOp::Lt,
                _ => BinOp::LtEq,
            };
            (tb, ta, flipped)
        } else {
            continue;
        };
        if cols.is_some_and(|c| c != (l.0, r.0)) {
            return None; // bounds on other time columns: not an interval join
        }
        cols = Some((l.0, r.0));
        // L + lo op R + ro  =>  L - R op ro - lo
        let c = (r.1 - l.1).div_euclid(1000);
        match op {
            BinOp::GtEq => lower = Some(lower.map_or(c, |x| x.max(c))),
            BinOp::Gt => lower = Some(lower.map_or(c + 1, |x| x.max(c + 1))),
            BinOp::LtEq => upper = Some(upper.map_or(c, |x| x.min(c))),
            _ => upper = Some(upper.map_or(c - 1, |x| x.min(c - 1))),
        }
    }
    let ((left_time, right_time), lower_ms, upper_ms) = (cols?, lower?, upper?);
    (lower_ms <= upper_ms).then_some(IntervalBounds {
        left_time,
        right_time,
        lower_ms,
        upper_ms,
    })
}

/// Whether `e` compares (`<`, `<=`, `>`, `>=`) an expression over a `left` column with one over
/// a `right` column: an event-time bound between the two sides of a join.
pub(crate) fn bounds_time(e: &Expr, left: &[usize], right: &[usize]) -> bool {
    let reads = |x: &Expr, cols: &[usize]| {
        let mut found = false;
        visit_columns(x, &mut |i| found |= cols.contains(&i));
        found
    };
    match e {
        Expr::Binary {
            op: BinOp::Lt | BinOp::LtEq | BinOp::Gt | BinOp::GtEq,
            left: a,
            right: b,
            ..
        } => (reads(a, left) && reads(b, right)) || (reads(a, right) && reads(b, left)),
        Expr::Binary {
            left: a, right: b, ..
        } => bounds_time(a, left, right) || bounds_time(b, left, right),
        _ => false,
    }
}
