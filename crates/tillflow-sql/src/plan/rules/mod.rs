//! Rewrite rules of the planner, one per file: each decides, from plan data alone, which
//! physical operator a construct becomes.
//!
//! - `interval_join`: a join bounding one side's event time by the other's → `IntervalJoin`.
//! - `temporal_join`: `FOR SYSTEM_TIME AS OF` an event-time attribute against a versioned
//!   table → `TemporalJoin`.
//! - `rank`: `ROW_NUMBER() … WHERE rn <= N` → `WindowRank`, `Rank` or `Deduplicate`.
//! - `python_calc`: a Calc calling Python functions → `PythonCalc` nodes computing the calls
//!   for bundles of rows, then the Calc over their results.
//! - `two_phase`: on several workers, a window aggregate → `LocalWindowAggregate` before the
//!   exchange and the aggregate merging partials after it (`table.optimizer.agg-phase-strategy`).

pub mod interval_join;
pub mod python_calc;
pub mod rank;
pub mod temporal_join;
pub mod two_phase;
