//! OVER aggregation: `agg(x) OVER (PARTITION BY k ORDER BY time [frame])`, appending the
//! aggregates to every input row, as Flink's over-aggregate functions do.
//!
//! Event time: a row is held per key until the watermark passes its timestamp, then the key's rows
//! are processed in timestamp order. Late rows are dropped (counted); as in Flink, "late" means at
//! or behind the current watermark for unbounded frames, and not after the last timestamp the key
//! processed for bounded frames (a bounded RANGE frame also has Flink's clean-up timer 1.5 frames
//! after each row, which counts as processed when it fires). RANGE frames treat rows with the same timestamp as
//! peers (they see each other and get the same values); ROWS frames take them one at a time in
//! arrival order. Unbounded frames keep one set of accumulators per key; bounded frames
//! (`N PRECEDING` rows, `INTERVAL … PRECEDING` range) keep the rows in the frame and recompute over
//! them. Processing time: each row is processed when it arrives. The output is insert-only.

use crate::agg::{update_all, Acc, AggCall};
use crate::error::{Result, RuntimeError};
use crate::keys::encode_key;
use crate::operator::{least_of, Emit, Operator, OperatorMetrics};
use crate::state::{KeyedState, StateValue};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use tillflow_types::{Row, RowKind, Value};

/// The frame of an OVER window (its end is always the current row).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverFrame {
    /// `RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW` (the default with ORDER BY).
    RangeUnbounded,
    /// `ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW`.
    RowsUnbounded,
    /// `ROWS BETWEEN n PRECEDING AND CURRENT ROW`.
    Rows(u64),
    /// `RANGE BETWEEN INTERVAL … PRECEDING AND CURRENT ROW` (microseconds).
    Range(i64),
}

/// One key's state.
struct KeyState {
    /// The last timestamp a timer of this key fired at (event time).
    last_ts: i64,
    /// Timestamps of this key's timers.
    timers: BTreeSet<i64>,
    /// The clean-up timer of a bounded RANGE frame.
    cleanup_ts: Option<i64>,
    /// Accumulators of an unbounded frame.
    accs: Vec<Acc>,
    /// Rows waiting for the watermark, by timestamp, in arrival order.
    pending: BTreeMap<i64, Vec<Row>>,
    /// Rows in a bounded frame, oldest first.
    frame: VecDeque<(i64, Row)>,
}

/// The OVER aggregate operator: output `[input..., aggregates...]`.
pub struct OverAggregate {
    partition: Vec<usize>,
    /// The ORDER BY time column (event time), or None (processing time).
    time: Option<usize>,
    state: KeyedState<KeyState>,
    ttl: Option<crate::ttl::StateTtl>,
    /// Keys with rows pending at each timestamp.
    timers: BTreeMap<i64, Vec<Box<[u8]>>>,
    watermark: i64,
    key: Vec<u8>,
    work: Work,
}

/// What processing a key's rows needs besides the key's state.
struct Work {
    frame: OverFrame,
    calls: Vec<AggCall>,
    scratch: Vec<u8>,
    out: Row,
    metrics: OperatorMetrics,
}

impl OverAggregate {
    /// Aggregates `calls` over `frame`, per `partition` key, ordered by the event-time column
    /// `time` (None: processing time).
    pub fn new(
        partition: Vec<usize>,
        time: Option<usize>,
        frame: OverFrame,
        calls: Vec<AggCall>,
    ) -> Self {
        OverAggregate {
            partition,
            time,
            state: KeyedState::default(),
            ttl: None,
            timers: BTreeMap::new(),
            watermark: i64::MIN,
            key: Vec::with_capacity(32),
            work: Work {
                frame,
                calls,
                scratch: Vec::new(),
                out: Row::with_capacity(16),
                metrics: OperatorMetrics::default(),
            },
        }
    }
}

impl OverAggregate {
    /// Forgets a partition key `ttl` after its last row (a state TTL, [`crate::ttl`]): its
    /// accumulators start over, as Flink's OVER functions clean up idle keys.
    pub fn with_state_ttl(mut self, ttl: Option<crate::ttl::StateTtl>) -> Self {
        self.ttl = ttl;
        self.state = KeyedState::with_ttl(ttl);
        self
    }
}

impl Work {
    fn new_state(calls: &[AggCall]) -> KeyState {
        KeyState {
            last_ts: i64::MIN,
            timers: BTreeSet::new(),
            cleanup_ts: None,
            accs: calls.iter().map(Acc::new).collect(),
            pending: BTreeMap::new(),
            frame: VecDeque::new(),
        }
    }

    /// Emits `row` with the accumulators' values appended.
    fn emit(&mut self, row: &Row, accs: &[Acc], out: &mut dyn Emit) -> Result<()> {
        let o = &mut self.out;
        o.clear();
        o.kind = RowKind::Insert;
        o.split = row.split;
        o.values.extend_from_slice(&row.values);
        o.heap.extend_from_slice(&row.heap);
        for (acc, call) in accs.iter().zip(&self.calls) {
            let v = acc.value(call, &mut o.heap);
            o.values.push(v);
        }
        self.metrics.records_out += 1;
        out.emit(o)
    }

    /// Processes the rows of one key that share timestamp `ts` (all of them, for event time; one,
    /// for processing time).
    fn process_rows(
        &mut self,
        key_state: &mut KeyState,
        ts: i64,
        rows: &[Row],
        out: &mut dyn Emit,
    ) -> Result<()> {
        match self.frame {
            OverFrame::RangeUnbounded => {
                for r in rows {
                    update_all(
                        &mut key_state.accs,
                        &self.calls,
                        r,
                        false,
                        &mut self.scratch,
                    )?;
                }
                for r in rows {
                    self.emit(r, &key_state.accs, out)?;
                }
            }
            OverFrame::RowsUnbounded => {
                for r in rows {
                    update_all(
                        &mut key_state.accs,
                        &self.calls,
                        r,
                        false,
                        &mut self.scratch,
                    )?;
                    self.emit(r, &key_state.accs, out)?;
                }
            }
            OverFrame::Rows(n) => {
                for r in rows {
                    key_state.frame.push_back((ts, r.clone()));
                    while key_state.frame.len() as u64 > n + 1 {
                        key_state.frame.pop_front();
                    }
                    Self::recompute(key_state, &self.calls, &mut self.scratch)?;
                    self.emit(r, &key_state.accs, out)?;
                }
            }
            OverFrame::Range(p) => {
                for r in rows {
                    key_state.frame.push_back((ts, r.clone()));
                }
                let from = ts.saturating_sub(p);
                while key_state.frame.front().is_some_and(|(t, _)| *t < from) {
                    key_state.frame.pop_front();
                }
                Self::recompute(key_state, &self.calls, &mut self.scratch)?;
                for r in rows {
                    self.emit(r, &key_state.accs, out)?;
                }
            }
        }
        Ok(())
    }

    fn recompute(key_state: &mut KeyState, calls: &[AggCall], scratch: &mut Vec<u8>) -> Result<()> {
        for (acc, call) in key_state.accs.iter_mut().zip(calls) {
            *acc = Acc::new(call);
        }
        for (_, r) in &key_state.frame {
            update_all(&mut key_state.accs, calls, r, false, scratch)?;
        }
        Ok(())
    }
}

impl StateValue for KeyState {
    fn write(&self, out: &mut Vec<u8>) {
        self.last_ts.write(out);
        let timers: Vec<i64> = self.timers.iter().copied().collect();
        timers.write(out);
        self.cleanup_ts.unwrap_or(i64::MIN).write(out);
        self.accs.write(out);
        (self.pending.len() as i64).write(out);
        for (ts, rows) in &self.pending {
            ts.write(out);
            rows.write(out);
        }
        (self.frame.len() as i64).write(out);
        for (ts, row) in &self.frame {
            ts.write(out);
            row.write(out);
        }
    }

    fn read(input: &[u8], at: &mut usize) -> Result<Self> {
        let last_ts = i64::read(input, at)?;
        let timers = Vec::<i64>::read(input, at)?.into_iter().collect();
        let cleanup_ts = Some(i64::read(input, at)?).filter(|c| *c != i64::MIN);
        let accs = Vec::<Acc>::read(input, at)?;
        let mut pending = BTreeMap::new();
        for _ in 0..i64::read(input, at)? {
            let ts = i64::read(input, at)?;
            pending.insert(ts, Vec::<Row>::read(input, at)?);
        }
        let mut frame = VecDeque::new();
        for _ in 0..i64::read(input, at)? {
            let ts = i64::read(input, at)?;
            frame.push_back((ts, Row::read(input, at)?));
        }
        Ok(KeyState {
            last_ts,
            timers,
            cleanup_ts,
            accs,
            pending,
            frame,
        })
    }
}

/// Registers a timer of `key` at `ts`, once.
fn register(timers: &mut BTreeMap<i64, Vec<Box<[u8]>>>, st: &mut KeyState, key: &[u8], ts: i64) {
    if st.timers.insert(ts) {
        timers.entry(ts).or_default().push(key.into());
    }
}

impl Operator for OverAggregate {
    fn describe(&self) -> String {
        format!(
            "OverAggregate(partition={:?}, order={}, frame={:?}, aggs={:?})",
            self.partition,
            self.time
                .map_or("proctime".to_string(), |t| format!("${t}")),
            self.work.frame,
            self.work.calls.iter().map(|c| c.kind).collect::<Vec<_>>()
        )
    }

    fn process(&mut self, row: &Row, out: &mut dyn Emit) -> Result<()> {
        self.work.metrics.records_in += 1;
        if !row.kind.is_addition() {
            return Err(RuntimeError::Eval(
                "OVER aggregation over an updating input is not supported (as in Flink)".into(),
            ));
        }
        encode_key(&mut self.key, row, &self.partition);
        let work = &mut self.work;
        let st = self
            .state
            .get_or_insert_with(&self.key, || Work::new_state(&work.calls));
        let Some(time) = self.time else {
            // processing time: now
            return work.process_rows(st, 0, std::slice::from_ref(row), out);
        };
        let ts = match row.values.get(time) {
            Some(Value::Timestamp(t)) => *t,
            _ => {
                work.metrics.late_dropped += 1; // no event time: cannot be placed
                return Ok(());
            }
        };
        // as Flink: with an unbounded frame a row at or behind the watermark is late; with a
        // bounded frame, a row not after the last timestamp its key processed
        let late = match work.frame {
            OverFrame::RangeUnbounded | OverFrame::RowsUnbounded => ts <= self.watermark,
            OverFrame::Rows(_) | OverFrame::Range(_) => ts <= st.last_ts,
        };
        if late {
            work.metrics.late_dropped += 1;
            return Ok(());
        }
        st.pending.entry(ts).or_default().push(row.clone());
        register(&mut self.timers, st, &self.key, ts);
        if let OverFrame::Range(p) = work.frame {
            // as Flink's bounded RANGE function: a clean-up timer 1.5 frames after the row; when
            // it fires with nothing newer seen, the key's state is dropped
            let p_ms = p / 1000;
            let min = ts + (p_ms + 1) * 1000;
            let max = ts + ((p_ms as f64 * 1.5) as i64 + 1) * 1000;
            if st.cleanup_ts.is_none_or(|c| c < min) {
                st.cleanup_ts = Some(max);
                register(&mut self.timers, st, &self.key, max);
            }
        }
        Ok(())
    }

    fn on_watermark(&mut self, wm: i64, out: &mut dyn Emit) -> Result<()> {
        if wm > self.watermark {
            self.watermark = wm;
            while let Some(entry) = self.timers.first_entry() {
                if *entry.key() > wm {
                    break;
                }
                let (ts, keys) = entry.remove_entry();
                for key in keys {
                    let Some(st) = self.state.get_mut(&key) else {
                        continue;
                    };
                    st.timers.remove(&ts);
                    if st.cleanup_ts.is_some_and(|c| c <= ts) {
                        st.pending.clear();
                        st.frame.clear();
                        st.cleanup_ts = None;
                        st.last_ts = i64::MIN;
                        continue;
                    }
                    if let Some(rows) = st.pending.remove(&ts) {
                        self.work.process_rows(st, ts, &rows, out)?;
                    }
                    st.last_ts = ts;
                }
            }
        }
        self.state.on_watermark(wm);
        out.watermark(wm)
    }

    fn on_processing_time(&mut self, now: i64, _out: &mut dyn Emit) -> Result<()> {
        self.state.on_processing_time(now);
        Ok(())
    }

    fn snapshot_state(&self, out: &mut Vec<u8>) {
        self.watermark.write(out);
        self.state.snapshot(0..crate::keys::MAX_KEY_GROUPS, out);
    }

    fn restore_state(&mut self, input: &[u8]) -> Result<()> {
        self.restore_parts(&[input], &crate::state::Rescale::NONE)
    }

    fn restore_parts(&mut self, parts: &[&[u8]], rescale: &crate::state::Rescale) -> Result<()> {
        self.watermark = least_of(parts, |p| i64::read(p, &mut 0))?.unwrap_or(i64::MIN);
        self.state = KeyedState::with_ttl(self.ttl);
        for (j, p) in parts.iter().enumerate() {
            self.state.restore_part(p, &mut 8, rescale, j)?;
        }
        // the timer queue is each key's timers, gathered
        self.timers.clear();
        for (key, st) in self.state.iter() {
            for ts in &st.timers {
                self.timers.entry(*ts).or_default().push((*key).into());
            }
        }
        Ok(())
    }

    fn metrics(&self) -> OperatorMetrics {
        let mut m = self.work.metrics.clone();
        m.state_entries = self.state.len() as u64;
        m.state_bytes = self.state.bytes_estimate();
        m.state_expired = self.state.expired();
        m.watermark = (self.watermark > i64::MIN).then_some(self.watermark);
        m
    }
}
