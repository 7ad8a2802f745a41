//! Regular (unbounded) streaming joins: INNER, LEFT, RIGHT and FULL OUTER, as Flink runs them.
//!
//! Both inputs are kept in keyed state under the encoded equi-join key (so a key group's rows of
//! both sides live together and can move together). A record is matched against the other side's
//! rows of its key, the residual condition (the non-equi part of `ON`) is checked on each joined
//! row, and results are emitted as `+I`; a retraction (`-U`/`-D`) of an input emits `-D` for the
//! rows it had produced. For an outer side, a row without matches is emitted padded with NULLs and
//! that padded row is retracted (`-D`) when its first match arrives (and re-inserted when its last
//! match goes), exactly the changelog Flink's `StreamingJoinOperator` produces. Rows with a NULL
//! key never match (SQL equality). Without a state TTL the rows of both inputs stay in memory, so
//! join a stream with a small or bounded table, or bound the inputs; with one
//! (`table.exec.state.ttl`, or per input with the `STATE_TTL` hint; [`crate::ttl`]) each stored
//! row expires that long after it was stored or last written (its count, or for a row of an outer
//! side its number of matches, changed), as Flink's join state views do: an expired row matches
//! nothing more and is dropped without a row emitted.

use crate::error::{Result, RuntimeError};
use crate::expr::Expr;
use crate::keys::{decode_key_into, encode_key, MAX_KEY_GROUPS};
use crate::operator::{Emit, OperatorMetrics, TwoInputOperator};
use crate::state::{read_u32, read_u64, KeyedState, StateValue};
use crate::ttl::{StateTtl, TtlTimer, UNKNOWN_TIME};
use tillflow_types::{Row, RowKind, Value};

/// The kind of join.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinType {
    /// Only matching pairs.
    Inner,
    /// Every left row, NULL-padded when unmatched.
    Left,
    /// Every right row, NULL-padded when unmatched.
    Right,
    /// Every row of both sides.
    Full,
}

impl JoinType {
    /// Whether rows of `side` (0 = left) are kept when unmatched.
    pub fn is_outer(self, side: usize) -> bool {
        matches!(
            (self, side),
            (JoinType::Left, 0) | (JoinType::Right, 1) | (JoinType::Full, _)
        )
    }
}

/// A row of one side, with its multiplicity, its number of matches and (with a state TTL) the
/// time of its last write.
struct Stored {
    row: Box<[u8]>,
    count: u32,
    matches: u32,
    time: i64,
}

/// Set in a side's row count in a snapshot when its rows carry their times.
const WITH_TIMES: u32 = 1 << 31;

/// Marks the sides' TTL clocks after a snapshot's rows.
const CLOCKS: u32 = 0x5454_4c31;

/// Both sides' rows for one join key.
#[derive(Default)]
pub struct JoinKeyState {
    sides: [Vec<Stored>; 2],
}

impl StateValue for JoinKeyState {
    fn write(&self, out: &mut Vec<u8>) {
        for side in &self.sides {
            // rows without a TTL keep the format they had before there was one
            let times = side.iter().any(|s| s.time != UNKNOWN_TIME);
            let flag = if times { WITH_TIMES } else { 0 };
            out.extend_from_slice(&(side.len() as u32 | flag).to_le_bytes());
            for s in side {
                out.extend_from_slice(&(s.row.len() as u32).to_le_bytes());
                out.extend_from_slice(&s.row);
                out.extend_from_slice(&s.count.to_le_bytes());
                out.extend_from_slice(&s.matches.to_le_bytes());
                if times {
                    out.extend_from_slice(&s.time.to_le_bytes());
                }
            }
        }
    }

    fn read(input: &[u8], at: &mut usize) -> Result<Self> {
        let mut st = JoinKeyState::default();
        for side in &mut st.sides {
            let n = read_u32(input, at)?;
            let times = n & WITH_TIMES != 0;
            for _ in 0..n & !WITH_TIMES {
                let len = read_u32(input, at)? as usize;
                let row = input
                    .get(*at..*at + len)
                    .ok_or_else(|| RuntimeError::State("truncated join state".into()))?;
                *at += len;
                let count = read_u32(input, at)?;
                let matches = read_u32(input, at)?;
                let time = if times {
                    read_u64(input, at)? as i64
                } else {
                    UNKNOWN_TIME
                };
                side.push(Stored {
                    row: row.into(),
                    count,
                    matches,
                    time,
                });
            }
        }
        Ok(st)
    }
}

/// A regular join of two inputs on equal keys plus an optional residual condition.
pub struct StreamingJoin {
    kind: JoinType,
    keys: [Vec<usize>; 2],
    widths: [usize; 2],
    residual: Option<Expr>,
    state: KeyedState<JoinKeyState>,
    /// Per side: its rows' time-to-live and clock.
    ttl: [Option<TtlTimer>; 2],
    key: Vec<u8>,
    encoded: Vec<u8>,
    all_cols: [Vec<usize>; 2],
    out: Row,
    padded: Row,
    scratch: Vec<u8>,
    stored: u64,
    metrics: OperatorMetrics,
}

impl StreamingJoin {
    /// Joins rows of `widths[0]` and `widths[1]` columns where `keys[0]` of the left equal
    /// `keys[1]` of the right and `residual` (over `[left..., right...]`) holds.
    pub fn new(
        kind: JoinType,
        keys: [Vec<usize>; 2],
        widths: [usize; 2],
        residual: Option<Expr>,
    ) -> Self {
        StreamingJoin {
            kind,
            keys,
            widths,
            residual,
            state: KeyedState::default(),
            ttl: [None, None],
            key: Vec::with_capacity(32),
            encoded: Vec::with_capacity(128),
            all_cols: [(0..widths[0]).collect(), (0..widths[1]).collect()],
            out: Row::with_capacity(widths[0] + widths[1]),
            padded: Row::with_capacity(widths[0] + widths[1]),
            stored: 0,
            scratch: Vec::new(),
            metrics: OperatorMetrics::default(),
        }
    }
}

impl StreamingJoin {
    /// Expires each side's rows `ttl[side]` after their last write (see the module comment).
    pub fn with_state_ttl(mut self, ttl: [Option<StateTtl>; 2]) -> Self {
        self.ttl = ttl.map(|t| t.map(TtlTimer::new));
        self
    }

    /// Moves the clocks; sweeps every key's expired rows out when a sweep is due.
    fn clock(&mut self, now: i64, watermark: bool) {
        let mut due = false;
        for t in self.ttl.iter_mut().flatten() {
            due |= if watermark {
                t.on_watermark(now)
            } else {
                t.on_processing_time(now)
            };
        }
        if !due {
            return;
        }
        let (ttl, stored) = (&mut self.ttl, &mut self.stored);
        self.state.retain(|st| {
            for (side, rows) in st.sides.iter_mut().enumerate() {
                if let Some(t) = ttl[side].as_mut() {
                    let before = rows.len();
                    rows.retain_mut(|s| {
                        t.settle(&mut s.time);
                        !t.is_expired(s.time)
                    });
                    let gone = (before - rows.len()) as u64;
                    t.expired += gone;
                    *stored -= gone;
                }
            }
            !(st.sides[0].is_empty() && st.sides[1].is_empty())
        });
    }
}

/// Drops the expired rows of `rows` (rows of a side with a TTL), counting them.
fn drop_expired(rows: &mut Vec<Stored>, ttl: &mut Option<TtlTimer>, stored: &mut u64) {
    if let Some(t) = ttl.as_mut() {
        let before = rows.len();
        rows.retain(|s| !t.is_expired(s.time));
        let gone = (before - rows.len()) as u64;
        t.expired += gone;
        *stored -= gone;
    }
}

/// Writes `[left..., right...]` into `out`; a missing side is NULL-padded to its width.
pub(crate) fn build(
    out: &mut Row,
    left: Option<&[u8]>,
    right: Option<&[u8]>,
    widths: [usize; 2],
) -> Result<()> {
    out.clear();
    for (side, w) in [left, right].into_iter().zip(widths) {
        match side {
            Some(bytes) => decode_key_into(bytes, out)
                .ok_or_else(|| RuntimeError::State("corrupt join row".into()))?,
            None => out.values.extend(std::iter::repeat_n(Value::Null, w)),
        }
    }
    Ok(())
}

impl TwoInputOperator for StreamingJoin {
    fn describe(&self) -> String {
        let mut s = format!(
            "Join(type={:?}, left_keys={:?}, right_keys={:?}",
            self.kind, self.keys[0], self.keys[1]
        );
        if let Some(r) = &self.residual {
            s.push_str(&format!(", where={r:?}"));
        }
        s.push(')');
        s
    }

    fn process(&mut self, side: usize, row: &Row, out: &mut dyn Emit) -> Result<()> {
        self.metrics.records_in += 1;
        let other = 1 - side;
        let accumulate = row.kind.is_addition();
        let self_outer = self.kind.is_outer(side);
        let other_outer = self.kind.is_outer(other);
        let widths = self.widths;
        encode_key(&mut self.encoded, row, &self.all_cols[side]);
        let null_key = self.keys[side]
            .iter()
            .any(|&c| row.values.get(c).is_none_or(|v| v.is_null()));
        if null_key {
            // never matches: an outer side passes it through padded, an inner side drops it
            if self_outer {
                let (l, r) = if side == 0 {
                    (Some(&self.encoded[..]), None)
                } else {
                    (None, Some(&self.encoded[..]))
                };
                build(&mut self.out, l, r, widths)?;
                self.out.kind = if accumulate {
                    RowKind::Insert
                } else {
                    RowKind::Delete
                };
                self.metrics.records_out += 1;
                out.emit(&self.out)?;
            }
            return Ok(());
        }
        encode_key(&mut self.key, row, &self.keys[side]);
        let StreamingJoin {
            state,
            key,
            encoded,
            out: joined,
            padded,
            stored,
            scratch,
            residual,
            metrics,
            ttl,
            ..
        } = self;
        let st = state.get_or_insert_with(key, JoinKeyState::default);
        let [lefts, rights] = &mut st.sides;
        let (own, others) = if side == 0 {
            (lefts, rights)
        } else {
            (rights, lefts)
        };
        // expired rows are never returned: they neither match nor are retracted
        drop_expired(own, &mut ttl[side], stored);
        drop_expired(others, &mut ttl[other], stored);
        let own_now = ttl[side].as_ref().map_or(UNKNOWN_TIME, TtlTimer::now);
        let other_now = ttl[other].as_ref().map_or(UNKNOWN_TIME, TtlTimer::now);
        let mut matched = 0u32;
        for o in others.iter_mut() {
            let (l, r) = if side == 0 {
                (&encoded[..], &o.row[..])
            } else {
                (&o.row[..], &encoded[..])
            };
            build(joined, Some(l), Some(r), widths)?;
            if let Some(cond) = residual.as_ref() {
                let ok = cond
                    .eval_predicate(joined, scratch)
                    .map_err(|e| RuntimeError::Eval(format!("in the join condition: {e}")))?;
                if !ok {
                    continue;
                }
            }
            matched = matched.saturating_add(o.count);
            if accumulate {
                if other_outer && o.matches == 0 {
                    // the other row loses its NULL padding
                    let (l2, r2) = if side == 0 {
                        (None, Some(&o.row[..]))
                    } else {
                        (Some(&o.row[..]), None)
                    };
                    build(padded, l2, r2, widths)?;
                    padded.kind = RowKind::Delete;
                    for _ in 0..o.count {
                        metrics.records_out += 1;
                        out.emit(padded)?;
                    }
                }
                o.matches = o.matches.saturating_add(1);
                if other_outer {
                    // its number of matches is written: a write, as in Flink's outer state view
                    o.time = other_now;
                }
                joined.kind = RowKind::Insert;
                for _ in 0..o.count {
                    metrics.records_out += 1;
                    out.emit(joined)?;
                }
            } else {
                joined.kind = RowKind::Delete;
                for _ in 0..o.count {
                    metrics.records_out += 1;
                    out.emit(joined)?;
                }
                o.matches = o.matches.saturating_sub(1);
                if other_outer {
                    o.time = other_now;
                }
                if other_outer && o.matches == 0 {
                    // the other row is unmatched again
                    let (l2, r2) = if side == 0 {
                        (None, Some(&o.row[..]))
                    } else {
                        (Some(&o.row[..]), None)
                    };
                    build(joined, l2, r2, widths)?;
                    joined.kind = RowKind::Insert;
                    for _ in 0..o.count {
                        metrics.records_out += 1;
                        out.emit(joined)?;
                    }
                }
            }
        }
        if self_outer && matched == 0 {
            let (l, r) = if side == 0 {
                (Some(&encoded[..]), None)
            } else {
                (None, Some(&encoded[..]))
            };
            build(joined, l, r, widths)?;
            joined.kind = if accumulate {
                RowKind::Insert
            } else {
                RowKind::Delete
            };
            metrics.records_out += 1;
            out.emit(joined)?;
        }
        if accumulate {
            // appended without looking for an equal row: inserts stay O(1) however many rows a
            // key holds; a retraction finds one equal row
            *stored += 1;
            own.push(Stored {
                row: encoded[..].into(),
                count: 1,
                matches: matched,
                time: own_now,
            });
        } else if let Some(i) = own.iter().position(|s| s.row[..] == encoded[..]) {
            own[i].count -= 1;
            own[i].time = own_now;
            if own[i].count == 0 {
                *stored -= 1;
                own.swap_remove(i);
            }
        }
        if st.sides[0].is_empty() && st.sides[1].is_empty() {
            state.remove(key);
        }
        Ok(())
    }

    fn metrics(&self) -> OperatorMetrics {
        let mut m = self.metrics.clone();
        m.state_entries = self.stored;
        m.state_bytes = self.state.bytes_estimate();
        m.state_expired = self.ttl.iter().flatten().map(|t| t.expired).sum();
        m
    }

    fn on_watermark(&mut self, wm: i64, out: &mut dyn Emit) -> Result<()> {
        self.clock(wm, true);
        out.watermark(wm)
    }

    fn on_processing_time(&mut self, now: i64) {
        self.clock(now, false);
    }

    /// The keys' rows by key group, then (with a state TTL) each side's clock.
    fn snapshot_state(&self, out: &mut Vec<u8>) {
        self.state.snapshot(0..MAX_KEY_GROUPS, out);
        if self.ttl.iter().any(Option::is_some) {
            out.extend_from_slice(&CLOCKS.to_le_bytes());
            for t in &self.ttl {
                let now = t.as_ref().map_or(UNKNOWN_TIME, TtlTimer::now);
                out.extend_from_slice(&now.to_le_bytes());
            }
        }
    }

    fn restore_state(&mut self, input: &[u8]) -> Result<()> {
        self.restore_parts(&[input], &crate::state::Rescale::NONE)
    }

    fn restore_parts(&mut self, parts: &[&[u8]], rescale: &crate::state::Rescale) -> Result<()> {
        self.state = KeyedState::default();
        for (j, p) in parts.iter().enumerate() {
            let at = &mut 0;
            self.state.restore_part(p, at, rescale, j)?;
            let clocks = if read_u32(p, at).ok() == Some(CLOCKS) {
                [Some(read_u64(p, at)? as i64), Some(read_u64(p, at)? as i64)]
            } else {
                [None, None]
            };
            for (t, saved) in self.ttl.iter_mut().zip(clocks) {
                if let Some(t) = t.as_mut() {
                    t.restored(saved);
                }
            }
        }
        self.stored = self
            .state
            .iter()
            .map(|(_, s)| (s.sides[0].len() + s.sides[1].len()) as u64)
            .sum();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::Emit;

    /// Collects emitted rows as `+I[a, b, ...]` strings.
    #[derive(Default)]
    struct Collect(Vec<String>);

    impl Emit for Collect {
        fn emit(&mut self, row: &Row) -> Result<()> {
            let vals: Vec<String> = row
                .values
                .iter()
                .map(|v| match v {
                    Value::Null => "null".to_owned(),
                    Value::Int(i) => i.to_string(),
                    Value::Str(s) => row.str(*s).to_owned(),
                    other => format!("{other:?}"),
                })
                .collect();
            self.0
                .push(format!("{}[{}]", row.kind.short(), vals.join(", ")));
            Ok(())
        }
        fn watermark(&mut self, _wm: i64) -> Result<()> {
            Ok(())
        }
    }

    fn row(kind: RowKind, key: Option<i64>, name: &str) -> Row {
        let mut r = Row::with_capacity(2);
        r.kind = kind;
        r.values.push(key.map_or(Value::Null, Value::Int));
        let s = r.intern(name);
        r.values.push(Value::Str(s));
        r
    }

    fn feed(j: &mut StreamingJoin, side: usize, r: Row) -> Vec<String> {
        let mut c = Collect::default();
        j.process(side, &r, &mut c).unwrap();
        c.0
    }

    fn join(kind: JoinType) -> StreamingJoin {
        StreamingJoin::new(kind, [vec![0], vec![0]], [2, 2], None)
    }

    /// Each side's rows expire their own TTL after their last write: an expired customer no
    /// longer joins, and an expired left row of a LEFT JOIN goes without a row emitted; the rows'
    /// times and the clocks survive a snapshot. (On the watermark's clock, to drive it here.)
    #[test]
    fn rows_expire_per_side_after_their_ttl() {
        use crate::ttl::TtlClock;
        let ttl = |secs: i64| {
            Some(StateTtl {
                micros: secs * 1_000_000,
                clock: TtlClock::Watermark,
            })
        };
        let tick = |j: &mut StreamingJoin, t: i64| {
            j.on_watermark(t, &mut Collect::default()).unwrap();
        };
        let mut j = join(JoinType::Left).with_state_ttl([ttl(10), ttl(100)]);
        tick(&mut j, 1_000_000);
        assert_eq!(
            feed(&mut j, 0, row(RowKind::Insert, Some(1), "l")),
            ["+I[1, l, null, null]"]
        );
        assert_eq!(
            feed(&mut j, 1, row(RowKind::Insert, Some(2), "r")),
            Vec::<String>::new()
        );
        tick(&mut j, 12_000_000);
        // the left row (10 s) has expired: a right row of its key finds nothing
        assert_eq!(
            feed(&mut j, 1, row(RowKind::Insert, Some(1), "r1")),
            Vec::<String>::new()
        );
        assert_eq!(j.metrics().state_expired, 1);
        // the right row of key 2 (100 s) still joins
        assert_eq!(
            feed(&mut j, 0, row(RowKind::Insert, Some(2), "l2")),
            ["+I[2, l2, 2, r]"]
        );
        tick(&mut j, 22_500_000);
        let mut bytes = Vec::new();
        j.snapshot_state(&mut bytes);
        let mut k = join(JoinType::Left).with_state_ttl([ttl(10), ttl(100)]);
        k.restore_state(&bytes).unwrap();
        // l2 was stored at 12 s: gone at 22.5 s with the clock restored, before any tick, so r3
        // of key 2 joins nothing; r (1 s) lives on
        assert_eq!(
            feed(&mut k, 1, row(RowKind::Insert, Some(2), "r3")),
            Vec::<String>::new()
        );
        assert_eq!(
            feed(&mut k, 0, row(RowKind::Insert, Some(2), "l3")),
            ["+I[2, l3, 2, r]", "+I[2, l3, 2, r3]"]
        );
        // a sweep leaves no empty key behind
        tick(&mut k, 200_000_000);
        assert_eq!(k.metrics().state_entries, 0);
        assert_eq!(k.state.len(), 0);
    }

    #[test]
    fn left_join_pads_then_retracts_the_padding_on_first_match() {
        let mut j = join(JoinType::Left);
        assert_eq!(
            feed(&mut j, 0, row(RowKind::Insert, Some(1), "l")),
            ["+I[1, l, null, null]"]
        );
        assert_eq!(
            feed(&mut j, 1, row(RowKind::Insert, Some(1), "r1")),
            ["-D[1, l, null, null]", "+I[1, l, 1, r1]"]
        );
        // a second match just adds
        assert_eq!(
            feed(&mut j, 1, row(RowKind::Insert, Some(1), "r2")),
            ["+I[1, l, 1, r2]"]
        );
        assert_eq!(
            feed(&mut j, 1, row(RowKind::Delete, Some(1), "r1")),
            ["-D[1, l, 1, r1]"]
        );
        // the last match goes: the padded row comes back
        assert_eq!(
            feed(&mut j, 1, row(RowKind::Delete, Some(1), "r2")),
            ["-D[1, l, 1, r2]", "+I[1, l, null, null]"]
        );
        assert_eq!(
            feed(&mut j, 0, row(RowKind::Delete, Some(1), "l")),
            ["-D[1, l, null, null]"]
        );
        assert_eq!(j.metrics().state_entries, 0);
    }

    #[test]
    fn inner_join_repeats_duplicates_and_never_matches_null_keys() {
        let mut j = join(JoinType::Inner);
        assert!(feed(&mut j, 0, row(RowKind::Insert, Some(7), "a")).is_empty());
        assert!(feed(&mut j, 0, row(RowKind::Insert, Some(7), "a")).is_empty());
        assert!(feed(&mut j, 0, row(RowKind::Insert, None, "n")).is_empty());
        assert_eq!(
            feed(&mut j, 1, row(RowKind::Insert, Some(7), "b")),
            ["+I[7, a, 7, b]", "+I[7, a, 7, b]"]
        );
        assert!(feed(&mut j, 1, row(RowKind::Insert, None, "m")).is_empty());
        // both copies of `a` and `b` are kept; NULL keys are not
        assert_eq!(j.metrics().state_entries, 3);
        // retracting one copy removes one match
        assert_eq!(
            feed(&mut j, 0, row(RowKind::Delete, Some(7), "a")),
            ["-D[7, a, 7, b]"]
        );
        assert_eq!(j.metrics().state_entries, 2);
    }

    #[test]
    fn full_join_pads_both_sides_and_null_keys() {
        let mut j = join(JoinType::Full);
        assert_eq!(
            feed(&mut j, 1, row(RowKind::Insert, Some(2), "r")),
            ["+I[null, null, 2, r]"]
        );
        assert_eq!(
            feed(&mut j, 0, row(RowKind::Insert, None, "l")),
            ["+I[null, l, null, null]"]
        );
        assert_eq!(
            feed(&mut j, 0, row(RowKind::Insert, Some(2), "l")),
            ["-D[null, null, 2, r]", "+I[2, l, 2, r]"]
        );
    }

    #[test]
    fn residual_condition_decides_what_counts_as_a_match() {
        use crate::expr::BinOp;
        use tillflow_types::DataType;
        // left.name <> right.name
        let cond = Expr::Binary {
            op: BinOp::NotEq,
            left: Box::new(Expr::col(1, DataType::String(None))),
            right: Box::new(Expr::col(3, DataType::String(None))),
            ty: DataType::Boolean,
        };
        let mut j = StreamingJoin::new(JoinType::Left, [vec![0], vec![0]], [2, 2], Some(cond));
        feed(&mut j, 1, row(RowKind::Insert, Some(1), "x"));
        assert_eq!(
            feed(&mut j, 0, row(RowKind::Insert, Some(1), "x")),
            ["+I[1, x, null, null]"]
        );
        assert_eq!(
            feed(&mut j, 0, row(RowKind::Insert, Some(1), "y")),
            ["+I[1, y, 1, x]"]
        );
    }

    #[test]
    fn state_survives_a_snapshot() {
        let mut j = join(JoinType::Left);
        feed(&mut j, 0, row(RowKind::Insert, Some(3), "l"));
        let mut bytes = Vec::new();
        j.snapshot_state(&mut bytes);
        let mut k = join(JoinType::Left);
        k.restore_state(&bytes).unwrap();
        assert_eq!(k.metrics().state_entries, 1);
        assert_eq!(
            feed(&mut k, 1, row(RowKind::Insert, Some(3), "r")),
            ["-D[3, l, null, null]", "+I[3, l, 3, r]"]
        );
    }
}
