//! Rewrite rules of the planner, one per file: each decides, from plan data alone, which
//! physical operator a construct becomes.
//!
//! - `interval_join`: a join bounding one side's event time by the other's → `IntervalJoin`.
//! - `rank`: `ROW_NUMBER() … WHERE rn <= N` → `WindowRank`, `Rank` or `Deduplicate`.

pub mod interval_join;
pub mod rank;
