//! The event-time temporal join, as Flink runs `o JOIN r FOR SYSTEM_TIME AS OF o.t AS r ON
//! o.k = r.k` against a versioned table (Flink's `TemporalRowTimeJoinOperator`): each left row is
//! joined with the version of the right row that was valid at the left row's time.
//!
//! Per key, left rows wait in arrival order and right versions are kept by their version time
//! (a later version of the same time replaces the earlier; a delete is kept as a version that
//! matches nothing; update-before rows are dropped, as Flink's planner drops them before a
//! temporal join). Each key has at most one timer, at the smallest time that needs it. When the
//! watermark (the smaller of both inputs') passes it, every waiting left row at or before the
//! watermark is joined — in arrival order — with the latest version at or before its own time
//! (INNER drops a row without one, LEFT pads it with NULLs), and every version older than the
//! latest one at or before the watermark is forgotten. A left row already behind the watermark
//! is not dropped: its timer fires at the next advance of the watermark, and it joins what the
//! state still holds then, exactly as in Flink.

use crate::error::{Result, RuntimeError};
use crate::expr::Expr;
use crate::keys::{encode_key, MAX_KEY_GROUPS};
use crate::operator::{least_of, Emit, OperatorMetrics, TwoInputOperator};
use crate::ops::join::build;
use crate::state::{read_u32, read_u64, KeyedState, StateValue};
use std::collections::{BTreeMap, BTreeSet};
use tillflow_types::{Row, RowKind, Value};

/// One key's waiting left rows, its versions and its timer.
#[derive(Default)]
struct KeyState {
    /// Left rows waiting for the watermark, in arrival order: (time in ms, encoded row).
    left: Vec<(i64, Box<[u8]>)>,
    /// Versions by version time (ms): (whether it is a live row, not a delete; encoded row).
    right: BTreeMap<i64, (bool, Box<[u8]>)>,
    /// The key's registered timer (ms), if any.
    timer: Option<i64>,
}

fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

fn read_bytes(input: &[u8], at: &mut usize) -> Result<Box<[u8]>> {
    let n = read_u32(input, at)? as usize;
    let end = at
        .checked_add(n)
        .filter(|&e| e <= input.len())
        .ok_or_else(|| RuntimeError::State("truncated temporal join state".into()))?;
    let b = input[*at..end].into();
    *at = end;
    Ok(b)
}

impl StateValue for KeyState {
    /// The timer (`i64::MIN` for none), the left rows (time, row), the versions (time, live,
    /// row).
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timer.unwrap_or(i64::MIN).to_le_bytes());
        out.extend_from_slice(&(self.left.len() as u32).to_le_bytes());
        for (t, r) in &self.left {
            out.extend_from_slice(&t.to_le_bytes());
            write_bytes(out, r);
        }
        out.extend_from_slice(&(self.right.len() as u32).to_le_bytes());
        for (t, (live, r)) in &self.right {
            out.extend_from_slice(&t.to_le_bytes());
            out.push(*live as u8);
            write_bytes(out, r);
        }
    }

    fn read(input: &[u8], at: &mut usize) -> Result<Self> {
        let mut st = KeyState::default();
        let timer = read_u64(input, at)? as i64;
        st.timer = (timer != i64::MIN).then_some(timer);
        for _ in 0..read_u32(input, at)? {
            let t = read_u64(input, at)? as i64;
            st.left.push((t, read_bytes(input, at)?));
        }
        for _ in 0..read_u32(input, at)? {
            let t = read_u64(input, at)? as i64;
            let live = *input
                .get(*at)
                .ok_or_else(|| RuntimeError::State("truncated temporal join state".into()))?;
            *at += 1;
            st.right.insert(t, (live != 0, read_bytes(input, at)?));
        }
        Ok(st)
    }
}

/// An event-time temporal join (INNER or LEFT); see the module comment.
pub struct TemporalJoin {
    keys: [Vec<usize>; 2],
    widths: [usize; 2],
    /// The left row's time attribute and the right row's version time.
    times: [usize; 2],
    left_outer: bool,
    residual: Option<Expr>,
    /// Whether a retraction of the right input deletes a version (false: it only means a
    /// newer version replaced it, as a keep-last deduplication of an append-only input emits).
    deletes: bool,
    state: KeyedState<KeyState>,
    ttl: Option<crate::ttl::StateTtl>,
    timers: BTreeSet<(i64, Box<[u8]>)>,
    /// The watermark in ms (`i64::MIN` before the first).
    watermark: i64,
    key: Vec<u8>,
    encoded: Vec<u8>,
    all_cols: [Vec<usize>; 2],
    out: Row,
    scratch: Vec<u8>,
    metrics: OperatorMetrics,
}

/// A time value in ms.
fn millis(v: Option<&Value>) -> Option<i64> {
    match v {
        Some(Value::Timestamp(us)) => Some(us.div_euclid(1000)),
        _ => None,
    }
}

impl TemporalJoin {
    /// Joins each left row with the version of the right row (equal `keys`; `residual` over
    /// `[left..., right...]` holding) valid at the left row's time: `times` are the left row's
    /// time column and the right row's version-time column; `left_outer` pads left rows without
    /// a version with NULLs.
    pub fn new(
        keys: [Vec<usize>; 2],
        widths: [usize; 2],
        times: [usize; 2],
        left_outer: bool,
        residual: Option<Expr>,
    ) -> Self {
        TemporalJoin {
            keys,
            widths,
            times,
            left_outer,
            residual,
            deletes: true,
            state: KeyedState::default(),
            ttl: None,
            timers: BTreeSet::new(),
            watermark: i64::MIN,
            key: Vec::with_capacity(32),
            encoded: Vec::with_capacity(128),
            all_cols: [(0..widths[0]).collect(), (0..widths[1]).collect()],
            out: Row::with_capacity(widths[0] + widths[1]),
            scratch: Vec::new(),
            metrics: OperatorMetrics::default(),
        }
    }

    /// Forgets a key (its versions and waiting rows) `ttl` after its last write (a state TTL,
    /// [`crate::ttl`]), as Flink's temporal join cleans up idle keys.
    pub fn with_state_ttl(mut self, ttl: Option<crate::ttl::StateTtl>) -> Self {
        self.ttl = ttl;
        self.state = KeyedState::with_ttl(ttl);
        self
    }

    /// The same join over a right input whose retractions only withdraw a replaced version (a
    /// keep-last deduplication of an append-only input): they are ignored, as Flink's
    /// deduplication then only ever adds versions.
    pub fn ignoring_retractions(mut self) -> Self {
        self.deletes = false;
        self
    }

    /// Flink's `registerSmallestTimer`: the key's timer moves to `time` if that is earlier.
    fn register_smallest(&mut self, time: i64) {
        let Some(st) = self.state.get_mut(&self.key) else {
            return;
        };
        match st.timer {
            Some(t) if t <= time => {}
            old => {
                if let Some(t) = old {
                    self.timers.remove(&(t, self.key.as_slice().into()));
                }
                st.timer = Some(time);
                self.timers.insert((time, self.key.as_slice().into()));
            }
        }
    }

    /// The key's timer fired at watermark `wm` (ms): joins the left rows the watermark has
    /// passed, forgets the versions no row can need any more, and registers the next timer.
    fn fire(&mut self, key: Box<[u8]>, wm: i64, out: &mut dyn Emit) -> Result<()> {
        let Some(st) = self.state.get_mut(&key) else {
            return Ok(());
        };
        st.timer = None;
        let mut next = i64::MAX;
        for (t, l) in &st.left {
            if *t > wm {
                next = next.min(*t);
                continue;
            }
            let version = st.right.range(..=*t).next_back().map(|(_, v)| v);
            let mut joined = false;
            if let Some((true, r)) = version {
                build(&mut self.out, Some(l), Some(r), self.widths)?;
                joined = match &self.residual {
                    None => true,
                    Some(cond) => cond
                        .eval_predicate(&self.out, &mut self.scratch)
                        .map_err(|e| RuntimeError::Eval(format!("in the join condition: {e}")))?,
                };
            }
            if !joined {
                if !self.left_outer {
                    continue;
                }
                build(&mut self.out, Some(l), None, self.widths)?;
            }
            out.emit(&self.out)?;
            self.metrics.records_out += 1;
        }
        st.left.retain(|(t, _)| *t > wm);
        // keep the latest version at or before the watermark and every later one
        if let Some(&latest) = st.right.range(..=wm).next_back().map(|(t, _)| t) {
            while st.right.first_key_value().is_some_and(|(t, _)| *t < latest) {
                st.right.pop_first();
            }
        }
        if next < i64::MAX {
            st.timer = Some(next);
            self.timers.insert((next, key));
        } else if st.left.is_empty() && st.right.is_empty() {
            self.state.remove(&key);
        }
        Ok(())
    }
}

impl TwoInputOperator for TemporalJoin {
    fn describe(&self) -> String {
        format!(
            "TemporalJoin(type={}, left_keys={:?}, right_keys={:?}, left_time=${}, version_time=${})",
            if self.left_outer { "LEFT" } else { "INNER" },
            self.keys[0],
            self.keys[1],
            self.times[0],
            self.times[1]
        )
    }

    fn process(&mut self, side: usize, row: &Row, out: &mut dyn Emit) -> Result<()> {
        let _ = out;
        self.metrics.records_in += 1;
        let Some(time) = millis(row.values.get(self.times[side])) else {
            return Err(RuntimeError::Eval(format!(
                "a temporal join needs a time on every row, but a {} row has NULL in its time column (column {}); filter such rows out before the join",
                if side == 0 { "left" } else { "versioned table's" },
                self.times[side]
            )));
        };
        encode_key(&mut self.key, row, &self.keys[side]);
        encode_key(&mut self.encoded, row, &self.all_cols[side]);
        if side == 0 {
            if !row.kind.is_addition() {
                return Err(RuntimeError::Eval(
                    "the left input of a temporal join must be append-only".into(),
                ));
            }
            let st = self.state.get_or_insert_with(&self.key, KeyState::default);
            st.left.push((time, self.encoded.as_slice().into()));
        } else {
            if row.kind == RowKind::UpdateBefore || (!self.deletes && !row.kind.is_addition()) {
                return Ok(()); // Flink drops update-before rows ahead of a temporal join
            }
            if self.keys[1]
                .iter()
                .any(|&c| row.values.get(c).is_none_or(|v| v.is_null()))
            {
                return Ok(()); // a NULL key equals nothing
            }
            let st = self.state.get_or_insert_with(&self.key, KeyState::default);
            st.right.insert(
                time,
                (row.kind.is_addition(), self.encoded.as_slice().into()),
            );
        }
        self.register_smallest(time);
        Ok(())
    }

    fn on_watermark(&mut self, wm: i64, out: &mut dyn Emit) -> Result<()> {
        let ms = if wm == i64::MAX {
            i64::MAX
        } else {
            wm.div_euclid(1000)
        };
        if ms > self.watermark {
            self.watermark = ms;
            while self.timers.first().is_some_and(|(t, _)| *t <= ms) {
                if let Some((_, key)) = self.timers.pop_first() {
                    self.fire(key, ms, out)?;
                }
            }
        }
        self.state.on_watermark(wm);
        out.watermark(wm)
    }

    fn on_processing_time(&mut self, now: i64) {
        self.state.on_processing_time(now);
    }

    fn state_version(&self) -> u32 {
        1
    }

    /// The watermark, then the keys' state by key group; the timer set is rebuilt from the
    /// keys' timers on restore.
    fn snapshot_state(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.watermark.to_le_bytes());
        self.state.snapshot(0..MAX_KEY_GROUPS, out);
    }

    fn restore_state(&mut self, input: &[u8]) -> Result<()> {
        self.restore_parts(&[input], &crate::state::Rescale::NONE)
    }

    fn restore_parts(&mut self, parts: &[&[u8]], rescale: &crate::state::Rescale) -> Result<()> {
        self.watermark = least_of(parts, |p| Ok(read_u64(p, &mut 0)? as i64))?.unwrap_or(i64::MIN);
        self.state = KeyedState::with_ttl(self.ttl);
        for (j, p) in parts.iter().enumerate() {
            self.state.restore_part(p, &mut 8, rescale, j)?;
        }
        self.timers.clear();
        for (key, st) in self.state.iter() {
            if let Some(t) = st.timer {
                self.timers.insert((t, key.into()));
            }
        }
        Ok(())
    }

    fn metrics(&self) -> OperatorMetrics {
        let mut m = self.metrics.clone();
        m.state_entries = self.state.estimate_sum(|s| s.left.len() + s.right.len()) as u64;
        m.state_bytes = self.state.bytes_estimate();
        m.state_expired = self.state.expired();
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Joined rows as (left id, left time, right value or -1 for NULL).
    #[derive(Default)]
    struct Out(Vec<(i64, i64, i64)>);
    impl Emit for Out {
        fn emit(&mut self, row: &Row) -> Result<()> {
            let int = |i: usize| match row.values[i] {
                Value::Int(v) => v,
                Value::Timestamp(us) => us / 1000,
                _ => -1,
            };
            self.0.push((int(0), int(2), int(5)));
            Ok(())
        }
        fn watermark(&mut self, _wm: i64) -> Result<()> {
            Ok(())
        }
    }

    /// A left row `[id, key, time]`.
    fn order(id: i64, key: i64, ms: i64) -> Row {
        let mut r = Row::with_capacity(3);
        r.values
            .extend([Value::Int(id), Value::Int(key), Value::Timestamp(ms * 1000)]);
        r
    }

    /// A version `[key, time, value]`.
    fn version(key: i64, ms: i64, value: i64, kind: RowKind) -> Row {
        let mut r = Row::with_capacity(3);
        r.values.extend([
            Value::Int(key),
            Value::Timestamp(ms * 1000),
            Value::Int(value),
        ]);
        r.kind = kind;
        r
    }

    fn join(left_outer: bool) -> TemporalJoin {
        TemporalJoin::new([vec![1], vec![0]], [3, 3], [2, 1], left_outer, None)
    }

    enum Ev {
        L(i64, i64, i64),
        R(i64, i64, i64, RowKind),
        W(i64),
    }

    fn script() -> Vec<Ev> {
        use Ev::*;
        use RowKind::*;
        vec![
            R(1, 0, 100, Insert),
            L(1, 1, 30),
            R(1, 20, 110, UpdateAfter), // a version out of order, before the watermark passes
            L(2, 2, 40),                // no version of key 2 yet
            W(25),
            R(1, 50, 120, UpdateAfter),
            R(1, 60, 130, UpdateAfter), // two versions between watermarks
            L(3, 1, 60),
            L(4, 1, 55),
            R(1, 50, 0, UpdateBefore), // dropped
            W(100),
            L(5, 1, 52), // late: the versions before 60 are gone
            L(6, 1, 65), // late, joins the kept version
            R(2, 70, 7, Insert),
            R(2, 80, 7, Delete), // key 2 deleted from 80
            L(7, 2, 75),
            L(8, 2, 90),
            W(200),
            L(9, 1, 300),
            W(i64::MAX),
        ]
    }

    fn run(op: &mut TemporalJoin, evs: &[Ev], out: &mut Out) {
        for e in evs {
            match *e {
                Ev::L(id, k, t) => op.process(0, &order(id, k, t), out),
                Ev::R(k, t, v, kind) => op.process(1, &version(k, t, v, kind), out),
                Ev::W(ms) => op.on_watermark(if ms == i64::MAX { ms } else { ms * 1000 }, out),
            }
            .expect("event");
        }
    }

    /// The version valid at each left row's time, held until the watermark; late rows join
    /// what the state still holds; deletes end a version; LEFT pads.
    #[test]
    fn joins_the_version_valid_at_the_left_time() {
        let mut inner = join(false);
        let mut out = Out::default();
        run(&mut inner, &script(), &mut out);
        out.0.sort();
        assert_eq!(
            out.0,
            [
                (1, 30, 110),
                (3, 60, 130),
                (4, 55, 120),
                (6, 65, 130),
                (7, 75, 7),
                (9, 300, 130)
            ]
        );
        let mut left = join(true);
        let mut out = Out::default();
        run(&mut left, &script(), &mut out);
        out.0.sort();
        assert_eq!(
            out.0,
            [
                (1, 30, 110),
                (2, 40, -1),
                (3, 60, 130),
                (4, 55, 120),
                (5, 52, -1),
                (6, 65, 130),
                (7, 75, 7),
                (8, 90, -1),
                (9, 300, 130)
            ]
        );
        assert_eq!(
            left.metrics().state_entries,
            2,
            "one version per key is kept"
        );
    }

    /// A snapshot taken anywhere and restored into a fresh operator gives the uninterrupted
    /// output.
    #[test]
    fn restores_mid_stream() {
        let evs = script();
        let mut whole = join(true);
        let mut expected = Out::default();
        run(&mut whole, &evs, &mut expected);
        for cut in 0..evs.len() {
            let mut op = join(true);
            let mut out = Out::default();
            run(&mut op, &evs[..cut], &mut out);
            let mut bytes = Vec::new();
            op.snapshot_state(&mut bytes);
            let mut restored = join(true);
            restored.restore_state(&bytes).expect("restore");
            run(&mut restored, &evs[cut..], &mut out);
            assert_eq!(out.0, expected.0, "restored after event {cut}");
        }
    }
}
