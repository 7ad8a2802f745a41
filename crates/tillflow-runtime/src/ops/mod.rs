//! Record-at-a-time operators that are not windows: calc (filter and projection), watermark
//! assignment, non-windowed group aggregation, deduplication and Top-N ranking, and regular joins.

pub mod calc;
pub mod group_agg;
pub mod join;
pub mod rank;
pub mod watermark;
