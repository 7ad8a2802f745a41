//! The event-time interval join, as Flink runs `a JOIN b ON a.k = b.k AND b.t BETWEEN a.t - X
//! AND a.t + Y` (inner joins): each side's rows wait in a per-key cache only as long as a row of
//! the other side could still match them, judged by the watermark, so state stays bounded and
//! a row arriving behind that bound joins only the rows still cached.
//!
//! The bookkeeping follows Flink's time-interval join so that late rows give the same result
//! rows: times in milliseconds; the two sizes are how far a left row may precede / follow a
//! matching right row; a row is cached while the other side's operator time (the
//! watermark) is below the upper end of its window; caches are cleaned by per-key timers at
//! `time + size + (left_size + right_size) / 2 + 1` and, lazily, while a row of the other side is
//! being joined; the output watermark is held back by the larger size.

use crate::error::{Result, RuntimeError};
use crate::expr::Expr;
use crate::keys::encode_key;
use crate::keys::MAX_KEY_GROUPS;
use crate::operator::{least_of, Emit, OperatorMetrics, TwoInputOperator};
use crate::ops::join::build;
use crate::state::{read_u32, read_u64, KeyedState, StateValue};
use std::collections::{BTreeMap, BTreeSet};
use tillflow_types::{Row, Value};

/// One key's two caches (rows by time, encoded) and cleanup timers.
#[derive(Default)]
struct KeyState {
    caches: [BTreeMap<i64, Vec<Box<[u8]>>>; 2],
    /// The timer that cleans each side's cache, if registered.
    cleanup: [Option<i64>; 2],
}

impl StateValue for KeyState {
    /// Both cleanup timers (`i64::MIN` for none), then each cache: times, each with its rows.
    fn write(&self, out: &mut Vec<u8>) {
        for c in self.cleanup {
            out.extend_from_slice(&c.unwrap_or(i64::MIN).to_le_bytes());
        }
        for cache in &self.caches {
            out.extend_from_slice(&(cache.len() as u32).to_le_bytes());
            for (t, rows) in cache {
                out.extend_from_slice(&t.to_le_bytes());
                out.extend_from_slice(&(rows.len() as u32).to_le_bytes());
                for r in rows {
                    out.extend_from_slice(&(r.len() as u32).to_le_bytes());
                    out.extend_from_slice(r);
                }
            }
        }
    }

    fn read(input: &[u8], at: &mut usize) -> Result<Self> {
        let mut st = KeyState::default();
        for c in &mut st.cleanup {
            let v = read_u64(input, at)? as i64;
            *c = (v != i64::MIN).then_some(v);
        }
        for cache in &mut st.caches {
            for _ in 0..read_u32(input, at)? {
                let t = read_u64(input, at)? as i64;
                let rows = cache.entry(t).or_default();
                for _ in 0..read_u32(input, at)? {
                    let n = read_u32(input, at)? as usize;
                    let end = at
                        .checked_add(n)
                        .filter(|&e| e <= input.len())
                        .ok_or_else(|| {
                            RuntimeError::State("truncated interval join state".into())
                        })?;
                    rows.push(input[*at..end].into());
                    *at = end;
                }
            }
        }
        Ok(st)
    }
}

/// An inner interval join; see the module comment.
pub struct IntervalJoin {
    keys: [Vec<usize>; 2],
    widths: [usize; 2],
    times: [usize; 2],
    /// How far (ms) a left row's time may lie before / after a matching right row's.
    sizes: [i64; 2],
    residual: Option<Expr>,
    state: KeyedState<KeyState>,
    timers: BTreeSet<(i64, Box<[u8]>)>,
    /// Operator time: the watermark in ms (0 before the first).
    operator_time: i64,
    /// Per side: rows of that side at or before this time (ms) may be dropped.
    expiration: [i64; 2],
    key: Vec<u8>,
    encoded: Vec<u8>,
    all_cols: [Vec<usize>; 2],
    out: Row,
    scratch: Vec<u8>,
    metrics: OperatorMetrics,
}

impl IntervalJoin {
    /// Joins rows where `keys` are equal, the left time lies within
    /// `[right time - left_before, right time + left_after]` (ms; `times` are each side's time
    /// column), and `residual` (over `[left..., right...]`) holds.
    pub fn new(
        keys: [Vec<usize>; 2],
        widths: [usize; 2],
        times: [usize; 2],
        left_before: i64,
        left_after: i64,
        residual: Option<Expr>,
    ) -> Self {
        IntervalJoin {
            keys,
            widths,
            times,
            // Flink's leftRelativeSize and rightRelativeSize
            sizes: [left_before, left_after],
            residual,
            state: KeyedState::default(),
            timers: BTreeSet::new(),
            operator_time: 0,
            expiration: [0, 0],
            key: Vec::with_capacity(32),
            encoded: Vec::with_capacity(128),
            all_cols: [(0..widths[0]).collect(), (0..widths[1]).collect()],
            out: Row::with_capacity(widths[0] + widths[1]),
            scratch: Vec::new(),
            metrics: OperatorMetrics::default(),
        }
    }

    fn expiration_time(&self, size: i64) -> i64 {
        if self.operator_time == i64::MAX {
            i64::MAX
        } else {
            self.operator_time - size - 1
        }
    }

    /// Registers the timer cleaning `side`'s cache for a row of that side at `time`.
    fn register(&mut self, key: &[u8], side: usize, time: i64) {
        let at = time + self.sizes[side] + (self.sizes[0] + self.sizes[1]) / 2 + 1;
        if let Some(st) = self.state.get_mut(key) {
            st.cleanup[side] = Some(at);
        }
        self.timers.insert((at, key.into()));
    }

    /// A timer at `t` for `key`: the caches whose timer it is drop what has expired.
    fn on_timer(&mut self, t: i64, key: Box<[u8]>) {
        for side in 0..2 {
            let expiration = self.expiration_time(self.sizes[side]);
            let Some(st) = self
                .state
                .get_mut(&key)
                .filter(|st| st.cleanup[side] == Some(t))
            else {
                continue;
            };
            st.caches[side].retain(|&time, _| time > expiration);
            st.cleanup[side] = None;
            let earliest = st.caches[side].keys().next().copied();
            self.expiration[side] = expiration;
            if let Some(e) = earliest {
                self.register(&key, side, e);
            }
        }
        if self
            .state
            .get_mut(&key)
            .is_some_and(|st| st.caches.iter().all(|c| c.is_empty()) && st.cleanup == [None; 2])
        {
            self.state.remove(&key);
        }
    }
}

fn millis(v: Option<&Value>) -> Option<i64> {
    match v {
        Some(Value::Timestamp(us)) => Some(us.div_euclid(1000)),
        _ => None,
    }
}

impl TwoInputOperator for IntervalJoin {
    fn describe(&self) -> String {
        format!(
            "IntervalJoin(left_keys={:?}, right_keys={:?}, left_time=${}, right_time=${}, left up to {} ms before right, up to {} ms after)",
            self.keys[0], self.keys[1], self.times[0], self.times[1], self.sizes[0], self.sizes[1]
        )
    }

    fn process(&mut self, side: usize, row: &Row, out: &mut dyn Emit) -> Result<()> {
        self.metrics.records_in += 1;
        if !row.kind.is_addition() {
            return Err(RuntimeError::Eval(
                "an interval join needs append-only inputs".into(),
            ));
        }
        let other = 1 - side;
        let Some(time) = millis(row.values.get(self.times[side])) else {
            return Ok(()); // no time: it can match nothing
        };
        if self.keys[side]
            .iter()
            .any(|&c| row.values.get(c).is_none_or(|v| v.is_null()))
        {
            return Ok(()); // a NULL key equals nothing
        }
        encode_key(&mut self.key, row, &self.keys[side]);
        encode_key(&mut self.encoded, row, &self.all_cols[side]);
        // the other side's rows this row can match: [lower, upper]
        let (lower, upper) = if side == 0 {
            (time - self.sizes[1], time + self.sizes[0])
        } else {
            (time - self.sizes[0], time + self.sizes[1])
        };
        if self.expiration[other] < upper {
            let expiration = self.expiration_time(self.sizes[other]);
            self.expiration[other] = expiration;
            if let Some(st) = self.state.get_mut(&self.key[..]) {
                for rows in st.caches[other].range(lower..=upper).map(|(_, r)| r) {
                    for o in rows {
                        let (l, r) = if side == 0 {
                            (&self.encoded[..], &o[..])
                        } else {
                            (&o[..], &self.encoded[..])
                        };
                        build(&mut self.out, Some(l), Some(r), self.widths)?;
                        if let Some(cond) = &self.residual {
                            let ok =
                                cond.eval_predicate(&self.out, &mut self.scratch)
                                    .map_err(|e| {
                                        RuntimeError::Eval(format!("in the join condition: {e}"))
                                    })?;
                            if !ok {
                                continue;
                            }
                        }
                        out.emit(&self.out)?;
                        self.metrics.records_out += 1;
                    }
                }
                st.caches[other].retain(|&t, _| t > expiration);
            }
        }
        // cache the row while rows of the other side may still come for it
        if self.operator_time < upper {
            let st = self.state.get_or_insert_with(&self.key, KeyState::default);
            st.caches[side]
                .entry(time)
                .or_default()
                .push(self.encoded.as_slice().into());
            if st.cleanup[side].is_none() {
                let key = std::mem::take(&mut self.key);
                self.register(&key, side, time);
                self.key = key;
            }
        }
        Ok(())
    }

    fn on_watermark(&mut self, wm: i64, out: &mut dyn Emit) -> Result<()> {
        let ms = if wm == i64::MAX {
            i64::MAX
        } else {
            wm.div_euclid(1000).max(0)
        };
        if ms > self.operator_time {
            self.operator_time = ms;
            while let Some((t, _)) = self.timers.first() {
                if *t > ms {
                    break;
                }
                if let Some((t, key)) = self.timers.pop_first() {
                    self.on_timer(t, key);
                }
            }
        }
        // rows still to come may be as old as the larger window size: hold the watermark back
        let hold = self.sizes[0].max(self.sizes[1]).saturating_mul(1000);
        out.watermark(if wm == i64::MAX {
            wm
        } else {
            wm.saturating_sub(hold)
        })
    }

    /// Operator time, both expiration times, then the keys' state by key group; the timer set
    /// is rebuilt from the keys' timers on restore.
    fn snapshot_state(&self, out: &mut Vec<u8>) {
        for v in [self.operator_time, self.expiration[0], self.expiration[1]] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        self.state.snapshot(0..MAX_KEY_GROUPS, out);
    }

    fn restore_state(&mut self, input: &[u8]) -> Result<()> {
        self.restore_parts(&[input], &crate::state::Rescale::NONE)
    }

    fn restore_parts(&mut self, parts: &[&[u8]], rescale: &crate::state::Rescale) -> Result<()> {
        let time = |i: usize| {
            least_of(parts, |p| Ok(read_u64(p, &mut (8 * i))? as i64))
                .map(|t| t.unwrap_or(i64::MIN))
        };
        self.operator_time = time(0)?;
        self.expiration = [time(1)?, time(2)?];
        self.state = KeyedState::default();
        for (j, p) in parts.iter().enumerate() {
            self.state.restore_part(p, &mut 24, rescale, j)?;
        }
        self.timers.clear();
        for (key, st) in self.state.iter() {
            for t in st.cleanup.into_iter().flatten() {
                self.timers.insert((t, (*key).into()));
            }
        }
        Ok(())
    }

    fn metrics(&self) -> OperatorMetrics {
        let mut m = self.metrics.clone();
        m.state_entries = self.state.estimate_sum(|s| {
            s.caches
                .iter()
                .map(|c| c.values().map(Vec::len).sum::<usize>())
                .sum::<usize>()
        }) as u64;
        m.state_bytes = self.state.bytes_estimate();
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Out(Vec<(i64, i64)>);
    impl Emit for Out {
        fn emit(&mut self, row: &Row) -> Result<()> {
            let t = |i: usize| match row.values[i] {
                Value::Timestamp(us) => us / 1000,
                _ => -1,
            };
            self.0.push((t(1), t(3)));
            Ok(())
        }
        fn watermark(&mut self, _wm: i64) -> Result<()> {
            Ok(())
        }
    }

    /// `[key, time]` at `ms`.
    fn row(key: i64, ms: i64) -> Row {
        let mut r = Row::with_capacity(2);
        r.values
            .extend([Value::Int(key), Value::Timestamp(ms * 1000)]);
        r
    }

    /// Right time within [left, left + 10]: the left row up to 10 ms before the right, 0 after.
    fn join() -> IntervalJoin {
        IntervalJoin::new([vec![0], vec![0]], [2, 2], [1, 1], 10, 0, None)
    }

    /// Rows join within the bounds in either order; a row behind the watermark still joins the
    /// rows of the other side that are cached, as in Flink; the caches empty once the watermark
    /// has passed every window (their timers); a snapshot restores caches and timers.
    #[test]
    fn joins_within_the_bounds_and_forgets_what_the_watermark_has_passed() {
        let mut op = join();
        let mut out = Out::default();
        op.process(0, &row(1, 100), &mut out).expect("left");
        op.process(1, &row(1, 105), &mut out)
            .expect("right in bounds");
        op.process(1, &row(1, 111), &mut out)
            .expect("right out of bounds");
        op.process(1, &row(2, 104), &mut out).expect("other key");
        assert_eq!(out.0, [(100, 105)]);
        // a snapshot taken here restores the same caches
        let mut bytes = Vec::new();
        op.snapshot_state(&mut bytes);
        let mut op = join();
        op.restore_state(&bytes).expect("restore");
        op.process(0, &row(1, 103), &mut out)
            .expect("left after restore");
        assert_eq!(out.0, [(100, 105), (103, 105), (103, 111)]);
        // the watermark passes: rows whose windows have closed are forgotten
        op.on_watermark(200_000, &mut out).expect("watermark");
        assert_eq!(
            op.metrics().state_entries,
            0,
            "the timers emptied the caches"
        );
        // a late left row finds nothing to join
        op.process(0, &row(1, 101), &mut out).expect("late");
        assert_eq!(out.0.len(), 3);
    }
}
