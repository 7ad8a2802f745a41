//! How deep a script may nest: the limits that keep hostile or generated SQL from exhausting the
//! stack.
//!
//! Converting an expression and planning a query recurse over the syntax tree, so a chain of
//! 100,000 `a + a + …` terms or of views over views would otherwise end the process with a stack
//! overflow. Each recursive step takes a [`Depth`] guard of its kind; past the limit planning
//! stops with an error that names the limit and what to do. The limits are far above anything a
//! hand-written Flink job needs (docs/limits.md lists them), and the CLI plans on a thread whose
//! stack holds them.

use crate::error::{plan_err, Result};
use std::cell::Cell;

/// Expressions nest at most this deep: operators in a chain (`a + b + …`), nested calls, CASEs.
pub const MAX_EXPRESSION_DEPTH: u32 = 1_000;

/// Queries nest at most this deep: views over views, CTEs, subqueries and UNION ALL branches.
pub const MAX_QUERY_DEPTH: u32 = 1_000;

/// A HOP window spans at most this many slides, a CUMULATE window this many steps: each slide
/// (or step) is a slice every record is added to once, and a window fires by merging its
/// slices, so a 1 ms slide over an hour (3.6 million) would cost millions of merges per window.
pub const MAX_SLICES_PER_WINDOW: i64 = 100_000;

/// Refuses a `kind` window of `slices` slides or steps past [`MAX_SLICES_PER_WINDOW`].
pub fn windows_per_slice(kind: &str, slices: i64, call: impl std::fmt::Display) -> Result<()> {
    if slices > MAX_SLICES_PER_WINDOW {
        let unit = if kind == "HOP" { "slides" } else { "steps" };
        return plan_err(format!(
            "{kind} window spans {slices} {unit}, more than the {MAX_SLICES_PER_WINDOW} tillflow allows (docs/limits.md): use a longer {} or a shorter size: `{call}`",
            if kind == "HOP" { "slide" } else { "step" }
        ));
    }
    Ok(())
}

thread_local! {
    static EXPRESSIONS: Cell<u32> = const { Cell::new(0) };
    static QUERIES: Cell<u32> = const { Cell::new(0) };
}

/// What nests.
#[derive(Clone, Copy)]
pub enum Nesting {
    /// An expression inside an expression.
    Expression,
    /// A query inside a query (a view, a CTE, a subquery, a UNION ALL branch).
    Query,
}

/// One level of nesting, given back when dropped.
pub struct Depth(Nesting);

impl Depth {
    /// Enters one more level of `kind`, or refuses past its limit.
    pub fn enter(kind: Nesting) -> Result<Depth> {
        let (cell, limit, what) = match kind {
            Nesting::Expression => (
                &EXPRESSIONS,
                MAX_EXPRESSION_DEPTH,
                "an expression nests deeper than 1000 levels (a chain of 1000 operators, or calls and CASEs inside each other); compute parts of it in a view or a subquery",
            ),
            Nesting::Query => (
                &QUERIES,
                MAX_QUERY_DEPTH,
                "queries nest deeper than 1000 levels (views over views, CTEs, subqueries and UNION ALL branches each count one); combine the branches in fewer statements or views",
            ),
        };
        let n = cell.with(|c| c.get()) + 1;
        if n > limit {
            return plan_err(what);
        }
        cell.with(|c| c.set(n));
        Ok(Depth(kind))
    }
}

impl Drop for Depth {
    fn drop(&mut self) {
        let cell = match self.0 {
            Nesting::Expression => &EXPRESSIONS,
            Nesting::Query => &QUERIES,
        };
        cell.with(|c| c.set(c.get().saturating_sub(1)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_given_back_and_the_limit_is_named() {
        let mut held = Vec::new();
        for _ in 0..MAX_QUERY_DEPTH {
            held.push(Depth::enter(Nesting::Query).expect("within the limit"));
        }
        let e = Depth::enter(Nesting::Query).err().expect("past the limit");
        assert!(e.to_string().contains("1000 levels"), "{e}");
        held.pop();
        assert!(Depth::enter(Nesting::Query).is_ok(), "a level given back");
        drop(held);
        assert!(Depth::enter(Nesting::Expression).is_ok());
    }
}
