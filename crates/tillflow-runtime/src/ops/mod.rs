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
pub mod normalize;
pub mod over;
pub mod python;
pub mod rank;
pub mod temporal_join;
pub mod union;
pub mod unnest;
pub mod values;
pub mod watermark;
