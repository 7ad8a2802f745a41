//! Rule: `ROW_NUMBER() OVER (PARTITION BY … ORDER BY …)` filtered by `rn <= N` becomes one of
//! Flink's ranking operators, chosen as Flink 2.3 chooses them (checked against its output):
//!
//! - partitioned by `window_start, window_end` of a window's result: `WindowRank`, append-only;
//! - over an updating input (a running aggregate's rows): `Rank` keeping every row, so a
//!   retraction moves the next row up (`RetractStrategy`);
//! - `rn = 1`, row number not selected, ordered ascending by the rowtime: `Deduplicate` keeping
//!   each key's first row, held until the watermark passes it — append-only;
//! - the same on processing time: `Rank` that only ever inserts;
//! - `rn = 1`, row number not selected, ordered descending by a time attribute (keep-last):
//!   `Deduplicate` keeping each key's last row, updating; of rows with the same time the one
//!   that arrived last wins, as in Flink's `RowTimeDeduplicateFunction` (a row replaces the kept
//!   one when its time is at or after the kept one's: found with the oracle on crafted ties,
//!   golden case dedup_last_ties; Nexmark q18);
//! - anything else: `Rank`, whose rows also leave the top N (deletes).

use crate::plan::{Changelog, PlanOp};
use tillflow_runtime::ops::rank::SortKey;
use tillflow_runtime::ttl::StateTtl;
use tillflow_types::TimeAttribute;

/// A ranking as the query states it.
pub struct Ranking {
    /// PARTITION BY columns.
    pub partition: Vec<usize>,
    /// ORDER BY.
    pub order: Vec<SortKey>,
    /// The time attribute of the single ORDER BY column, if it is one.
    pub order_time: Option<TimeAttribute>,
    /// The window_end column, when the partition includes a window's start and end.
    pub window_end: Option<usize>,
    /// That window is on processing time.
    pub window_proctime: bool,
    /// N of `rn <= N`.
    pub limit: usize,
    /// Whether the outer query reads the row number.
    pub emits_row_number: bool,
    /// The ranked rows' changelog.
    pub input: Changelog,
    /// The state TTL of a non-windowed ranking (`table.exec.state.ttl`).
    pub ttl: Option<StateTtl>,
}

/// The operator a ranking runs as, and the changelog it writes.
pub fn ranking(r: Ranking) -> (PlanOp, Changelog) {
    let Ranking {
        partition,
        order,
        order_time,
        window_end,
        window_proctime,
        limit,
        emits_row_number,
        input,
        ttl,
    } = r;
    if let Some(window_end) = window_end {
        let op = PlanOp::WindowRank {
            window_end,
            proctime: window_proctime,
            partition,
            order,
            limit,
            emit_row_number: true,
        };
        return (op, input);
    }
    if input.is_updating() {
        let op = PlanOp::Rank {
            partition,
            order,
            limit,
            emit_row_number: emits_row_number,
            over_updates: true,
            ttl,
        };
        return (op, Changelog::All);
    }
    let keep_first = limit == 1 && !emits_row_number && order.len() == 1 && !order[0].descending;
    if keep_first && order_time == Some(TimeAttribute::Rowtime) {
        let op = PlanOp::Deduplicate {
            time_col: order[0].col,
            partition,
            keep_last: false,
            rowtime: true,
            ttl,
        };
        return (op, Changelog::Insert);
    }
    let keep_last = limit == 1 && !emits_row_number && order.len() == 1 && order[0].descending;
    if let (true, Some(time)) = (keep_last, order_time) {
        let op = PlanOp::Deduplicate {
            time_col: order[0].col,
            partition,
            keep_last: true,
            rowtime: time == TimeAttribute::Rowtime,
            ttl,
        };
        // Flink 2.3's event-time keep-last is a Rank whose changelog also deletes
        // ([I,UB,UA,D] in its EXPLAIN); on processing time it only updates
        let changelog = if time == TimeAttribute::Rowtime {
            Changelog::All
        } else {
            Changelog::Updates
        };
        return (op, changelog);
    }
    let changelog = if keep_first && order_time == Some(TimeAttribute::Proctime) {
        Changelog::Insert
    } else {
        Changelog::All
    };
    let op = PlanOp::Rank {
        partition,
        order,
        limit,
        emit_row_number: emits_row_number,
        over_updates: false,
        ttl,
    };
    (op, changelog)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by(col: usize, descending: bool) -> Vec<SortKey> {
        vec![SortKey {
            col,
            descending,
            nulls_first: !descending,
        }]
    }

    fn rank(order: Vec<SortKey>, time: Option<TimeAttribute>, limit: usize) -> Ranking {
        Ranking {
            partition: vec![0],
            order,
            order_time: time,
            window_end: None,
            window_proctime: false,
            limit,
            emits_row_number: false,
            input: Changelog::Insert,
            ttl: None,
        }
    }

    #[test]
    fn chooses_flinks_ranking_operators() {
        let (op, c) = ranking(rank(by(1, false), Some(TimeAttribute::Rowtime), 1));
        assert!(matches!(op, PlanOp::Deduplicate { time_col: 1, .. }));
        assert_eq!(c, Changelog::Insert);

        let (op, c) = ranking(rank(by(1, false), Some(TimeAttribute::Proctime), 1));
        assert!(matches!(op, PlanOp::Rank { .. }));
        assert_eq!(c, Changelog::Insert);

        let (op, c) = ranking(rank(by(1, true), Some(TimeAttribute::Rowtime), 1));
        assert!(matches!(
            op,
            PlanOp::Deduplicate {
                keep_last: true,
                rowtime: true,
                ..
            }
        ));
        assert_eq!(
            c,
            Changelog::All,
            "event-time keep-last is Flink 2.3's Rank: [I,UB,UA,D]"
        );

        let (op, c) = ranking(rank(by(1, true), Some(TimeAttribute::Proctime), 1));
        assert_eq!(
            c,
            Changelog::Updates,
            "processing-time keep-last only updates"
        );
        assert!(matches!(
            op,
            PlanOp::Deduplicate {
                keep_last: true,
                rowtime: false,
                ..
            }
        ));

        let (_, c) = ranking(rank(by(2, true), None, 3));
        assert_eq!(c, Changelog::All, "a top 3 also deletes");

        let mut windowed = rank(by(2, true), None, 3);
        windowed.window_end = Some(5);
        let (op, c) = ranking(windowed);
        assert!(matches!(op, PlanOp::WindowRank { window_end: 5, .. }));
        assert_eq!(c, Changelog::Insert);

        let mut updating = rank(by(2, true), None, 3);
        updating.input = Changelog::Updates;
        let (op, c) = ranking(updating);
        assert!(matches!(
            op,
            PlanOp::Rank {
                over_updates: true,
                ..
            }
        ));
        assert_eq!(c, Changelog::All);
    }
}
