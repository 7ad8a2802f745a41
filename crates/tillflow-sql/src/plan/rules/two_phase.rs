//! Two-phase window aggregation: Flink's `table.optimizer.agg-phase-strategy`.
//!
//! On several workers, a window aggregate that follows the source's own chain is split in two:
//! a [`PlanOp::LocalWindowAggregate`] that folds rows into partials per slice and key where the
//! rows are read (in the decoding threads, or on the job loop's thread), and the aggregate
//! itself, which merges the partials on the worker owning the key. A hot key (a flagship store
//! with half the sales) then reaches its worker as one row per slice and chunk, not one per
//! sale, and the exchange carries a fraction of the rows.
//!
//! - `ONE_PHASE`: never split.
//! - `AUTO` (the default): split when the results are the same as in one phase — every call
//!   merges exactly (COUNT, SUM and AVG of integers and decimals, MIN, MAX, FIRST_VALUE,
//!   LAST_VALUE, LISTAGG, DISTINCT aggregates), the input is append-only, the windows are event
//!   time and no late-data output wants the late rows themselves.
//! - `TWO_PHASE`: also split sums and averages of FLOAT/DOUBLE and variances, whose last digits
//!   may then differ from one phase's (the additions happen in another order), as in Flink.
//!
//! Forecasting and anomaly functions never merge, and processing-time windows, cascaded windows
//! (a window's result aggregated again) and HOPs whose size is not a multiple of the slide stay
//! in one phase under every strategy.

use crate::plan::{PlanNode, PlanOp};
use std::collections::BTreeMap;
use tillflow_runtime::window::local::{merges, merges_exactly, LocalWindowAggregate};
use tillflow_runtime::window::TimeMode;
use tillflow_types::{DataType, Field, Schema};

/// Which window aggregates are split in two phases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Split when the results stay exactly those of one phase.
    Auto,
    /// Never split.
    OnePhase,
    /// Split whenever the calls merge.
    TwoPhase,
}

impl Strategy {
    /// The strategy a script's `SET 'table.optimizer.agg-phase-strategy'` chose (AUTO unless
    /// set; the value was checked when it was set).
    pub fn from_config(config: &BTreeMap<String, String>) -> Strategy {
        match config.get("table.optimizer.agg-phase-strategy") {
            Some(v) if v.trim().eq_ignore_ascii_case("ONE_PHASE") => Strategy::OnePhase,
            Some(v) if v.trim().eq_ignore_ascii_case("TWO_PHASE") => Strategy::TwoPhase,
            _ => Strategy::Auto,
        }
    }
}

/// Splits `node` into its local and global halves when it is a window aggregate `strategy`
/// splits (see the module documentation), the global keeping `node`'s id and identity.
pub fn split(node: &PlanNode, strategy: Strategy) -> Option<(PlanNode, PlanNode)> {
    let PlanOp::WindowAggregate {
        window,
        mode: TimeMode::Event,
        time_col,
        keys,
        calls,
        late: None,
        attached: None,
        two_phase: false,
    } = &node.op
    else {
        return None;
    };
    let merge = match strategy {
        Strategy::OnePhase => false,
        Strategy::Auto => merges_exactly(calls),
        Strategy::TwoPhase => merges(calls),
    };
    if !merge || !LocalWindowAggregate::supports(window) || node.input.fields.len() <= *keys {
        return None;
    }
    let local = PlanNode {
        id: node.id,
        op: PlanOp::LocalWindowAggregate {
            window: *window,
            time_col: *time_col,
            keys: *keys,
            calls: calls.clone(),
        },
        input: node.input.clone(),
        changelog: node.changelog,
        upsert_key: None,
    };
    // the partials: the keys, the slice's time, the rows folded and their accumulators
    let mut fields: Vec<Field> = node.input.fields[..*keys].to_vec();
    for (name, data_type) in [
        ("$slice_time", DataType::Timestamp(3)),
        ("$rows", DataType::BigInt),
        ("$accumulators", DataType::Bytes),
    ] {
        fields.push(Field::new(name, data_type));
    }
    let mut global = node.clone();
    global.input = Schema::new(fields);
    if let PlanOp::WindowAggregate { two_phase, .. } = &mut global.op {
        *two_phase = true;
    }
    Some((local, global))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Session;

    /// The window aggregate of `query`'s plan (after `sets`), split as the script's strategy
    /// says.
    fn split_of(sets: &str, query: &str) -> Option<(PlanNode, PlanNode)> {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("in.ndjson");
        std::fs::write(&input, "{}\n").expect("input");
        let sql = format!(
            "CREATE TABLE t (k INT, x INT, d DOUBLE, ts TIMESTAMP(3),
               WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
             WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
             CREATE TABLE o (k INT, a BIGINT, b DOUBLE) WITH ('connector' = 'blackhole');
             {sets}
             {query};",
            input.display()
        );
        let plan = Session::new()
            .execute_script(&sql, &BTreeMap::new())
            .expect("script");
        let strategy = Strategy::from_config(&plan.config);
        plan.tasks
            .iter()
            .flat_map(|t| {
                t.scan
                    .iter()
                    .chain(t.branches.iter().flat_map(|b| b.ops.iter()))
            })
            .find(|n| matches!(n.op, PlanOp::WindowAggregate { .. }))
            .and_then(|n| split(n, strategy))
    }

    const EXACT: &str = "INSERT INTO o SELECT k, COUNT(*), CAST(SUM(x) AS DOUBLE)
        FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY k, window_start, window_end";
    const FLOAT: &str = "INSERT INTO o SELECT k, COUNT(*), SUM(d)
        FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY k, window_start, window_end";

    #[test]
    fn auto_splits_what_merges_exactly_and_two_phase_floats_too() {
        let (local, global) = split_of("", EXACT).expect("AUTO splits COUNT and an integer SUM");
        assert_eq!(local.op.name(), "LocalWindowAggregate");
        assert_eq!(local.id, global.id);
        assert_eq!(
            global.identity().label,
            format!("WindowAggregate[{}]", global.id)
        );
        assert_eq!(
            global.input.fields.len(),
            1 + 3,
            "keys, slice time, rows, accumulators"
        );
        assert!(
            split_of("", FLOAT).is_none(),
            "AUTO keeps a DOUBLE sum in one phase"
        );
        let two = "SET 'table.optimizer.agg-phase-strategy' = 'TWO_PHASE';";
        assert!(split_of(two, FLOAT).is_some());
        let one = "SET 'table.optimizer.agg-phase-strategy' = 'ONE_PHASE';";
        assert!(split_of(one, EXACT).is_none());
    }
}
