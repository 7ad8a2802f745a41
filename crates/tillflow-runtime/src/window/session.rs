//! SESSION windows: per partition key, a record at `t` opens `[t, t + gap)` and merges with every
//! open session it touches (inclusively: records exactly `gap` apart share a session).
//!
//! A session fires when the watermark reaches its `end - 1 ms`, and is then gone: a later record
//! can open a new session overlapping the emitted one. A record is dropped as late only when the
//! session it would form has already fired. Inside a session, rows are aggregated per group key
//! (the GROUP BY keys that are not partition keys; usually none).

use super::{window_max_timestamp, TimeMode};
use crate::agg::{new_accs, update_all, Acc, AggCall};
use crate::error::{Result, RuntimeError};
use crate::keys::{decode_key_into, encode_key};
use crate::late::{self, SharedLateSink};
use crate::operator::{least_of, Emit, Operator, OperatorMetrics};
use crate::python::agg::PyAggs;
use crate::state::{read_u32, read_u64, KeyedState, StateValue};
use std::collections::{BTreeSet, HashMap};
use tillflow_types::{Row, Value};

struct Session {
    start: i64,
    end: i64,
    groups: Vec<(Box<[u8]>, Vec<Acc>)>,
}

struct KeySessions {
    id: u64,
    sessions: Vec<Session>,
}

impl StateValue for Session {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.start.to_le_bytes());
        out.extend_from_slice(&self.end.to_le_bytes());
        out.extend_from_slice(&(self.groups.len() as u32).to_le_bytes());
        for (k, accs) in &self.groups {
            out.extend_from_slice(&(k.len() as u32).to_le_bytes());
            out.extend_from_slice(k);
            accs.write(out);
        }
    }
    fn read(input: &[u8], at: &mut usize) -> Result<Self> {
        let start = read_u64(input, at)? as i64;
        let end = read_u64(input, at)? as i64;
        let n = read_u32(input, at)?;
        let mut groups = Vec::with_capacity((n as usize).min(input.len()));
        for _ in 0..n {
            let len = read_u32(input, at)? as usize;
            let k = input
                .get(*at..*at + len)
                .ok_or_else(|| RuntimeError::State("truncated session key".into()))?;
            *at += len;
            groups.push((k.into(), Vec::<Acc>::read(input, at)?));
        }
        Ok(Session { start, end, groups })
    }
}

impl StateValue for KeySessions {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.to_le_bytes());
        self.sessions.write(out);
    }
    fn read(input: &[u8], at: &mut usize) -> Result<Self> {
        Ok(KeySessions {
            id: read_u64(input, at)?,
            sessions: Vec::<Session>::read(input, at)?,
        })
    }
}

/// Session-window aggregation.
pub struct SessionWindowAggregate {
    gap: i64,
    mode: TimeMode,
    time_col: usize,
    partition: Vec<usize>,
    group: Vec<usize>,
    calls: Vec<AggCall>,
    state: KeyedState<KeySessions>,
    keys_by_id: HashMap<u64, Box<[u8]>>,
    timers: BTreeSet<(i64, u64)>,
    next_id: u64,
    watermark: i64,
    pkey: Vec<u8>,
    gkey: Vec<u8>,
    scratch: Vec<u8>,
    out: Row,
    metrics: OperatorMetrics,
    late: Option<SharedLateSink>,
    /// The Python aggregate calls: their rows wait in the accumulators (merged sessions join
    /// them) and go to Python, all the sessions a watermark fires in one request.
    py: Option<PyAggs>,
    /// Rows given to Python accumulators since they were last compacted.
    py_rows: usize,
    /// With Python calls that all have `merge` (rows go to Python early): the partition keys
    /// (by id) where rows or merges may wait for Python since they were last compacted (an id
    /// may repeat).
    py_waiting: Vec<u64>,
    /// There are Python calls and all have `merge`: rows go to Python before their sessions
    /// fire.
    py_early: bool,
}

impl SessionWindowAggregate {
    /// Sends dropped late records to `sink` as well as counting them.
    pub fn with_late_sink(mut self, sink: Option<SharedLateSink>) -> Self {
        self.late = sink;
        self
    }

    /// Sessions of `gap` over `time_col`, per `partition` key, aggregated per `group` key.
    pub fn new(
        gap: i64,
        mode: TimeMode,
        time_col: usize,
        partition: Vec<usize>,
        group: Vec<usize>,
        calls: Vec<AggCall>,
    ) -> Self {
        SessionWindowAggregate {
            py: PyAggs::of(&calls, Vec::new()),
            py_rows: 0,
            py_waiting: Vec::new(),
            py_early: calls.iter().any(|c| c.python.is_some())
                && calls
                    .iter()
                    .all(|c| c.python.as_ref().is_none_or(|p| p.has_merge)),
            gap,
            mode,
            time_col,
            partition,
            group,
            calls,
            state: KeyedState::default(),
            keys_by_id: HashMap::new(),
            timers: BTreeSet::new(),
            next_id: 0,
            watermark: i64::MIN,
            pkey: Vec::with_capacity(64),
            gkey: Vec::with_capacity(16),
            scratch: Vec::new(),
            out: Row::with_capacity(8),
            metrics: OperatorMetrics::default(),
            late: None,
        }
    }

    /// The types of the partition keys then the group keys, to name a group in a Python
    /// function's error.
    pub fn with_key_types(mut self, types: Vec<tillflow_types::DataType>) -> Self {
        if let Some(py) = self.py.as_mut() {
            py.set_key_types(types);
        }
        self
    }

    /// Whether rows go to Python before their sessions fire: there are Python calls, and all
    /// have `merge`.
    fn compacts(&self) -> bool {
        self.py_early
    }

    /// Gives the rows waiting in open sessions' Python accumulators to Python, after every
    /// `python.fn-execution.bundle.size` rows, when every Python function has `merge` (sessions
    /// that merge later merge the accumulators); without it, rows wait until their session
    /// fires.
    fn compact(&mut self) -> Result<()> {
        self.py_rows = 0;
        if !self.compacts() {
            return Ok(());
        }
        let Some(py) = self.py.as_mut() else {
            return Ok(());
        };
        py.set_window(None);
        // only the partition keys where rows came or sessions merged since the last hand-off:
        // the others are neither read nor written
        let mut ids = std::mem::take(&mut self.py_waiting);
        ids.sort_unstable();
        ids.dedup();
        // (partition key, session, group) of each group gathered, in request order
        let mut at: Vec<(usize, usize, usize)> = Vec::new();
        let mut keys: Vec<&[u8]> = Vec::new();
        let mut full = Vec::new();
        py.clear();
        for id in &ids {
            let Some(key) = self.keys_by_id.get(id) else {
                continue;
            };
            let Some(entry) = self.state.get_mut(key) else {
                continue;
            };
            let ki = keys.len();
            keys.push(key);
            for (si, session) in entry.sessions.iter_mut().enumerate() {
                for (gi, (gkey, accs)) in session.groups.iter_mut().enumerate() {
                    if py.needs_python(accs) {
                        full.clear();
                        full.extend_from_slice(key);
                        full.extend_from_slice(gkey);
                        py.add(&full, accs)?;
                        py.set_group_window((session.start, session.end));
                        at.push((ki, si, gi));
                    }
                }
            }
            // a partition key's groups go in one request, which closes after them
            if py.full() {
                Self::answer_groups(py, &mut self.state, &keys, &mut at)?;
                keys.clear();
            }
        }
        Self::answer_groups(py, &mut self.state, &keys, &mut at)
    }

    /// Sends the groups gathered (`at`: each one's partition key among `keys`, session and
    /// group) to Python and writes back their answers.
    fn answer_groups(
        py: &mut PyAggs,
        state: &mut KeyedState<KeySessions>,
        keys: &[&[u8]],
        at: &mut Vec<(usize, usize, usize)>,
    ) -> Result<()> {
        if at.is_empty() {
            py.clear();
            return Ok(());
        }
        py.run(true)?;
        for (i, &(ki, si, gi)) in at.iter().enumerate() {
            let accs = keys
                .get(ki)
                .and_then(|k| state.get_mut(k))
                .and_then(|e| e.sessions.get_mut(si))
                .and_then(|s| s.groups.get_mut(gi));
            if let Some((_, accs)) = accs {
                py.answer(i, accs);
            }
        }
        at.clear();
        py.clear();
        Ok(())
    }

    fn fire_until(&mut self, time: i64, out: &mut dyn Emit) -> Result<()> {
        // with Python calls: the groups of every session fired, keyed by partition and group
        // key, settled together before they are emitted
        let mut fired: Vec<(Box<[u8]>, Vec<Acc>)> = Vec::new();
        let mut bounds: Vec<(i64, i64)> = Vec::new();
        while let Some(&(end, id)) = self.timers.first() {
            if window_max_timestamp(end) > time {
                break;
            }
            self.timers.pop_first();
            let Some(key) = self.keys_by_id.get(&id) else {
                continue;
            };
            let Some(entry) = self.state.get_mut(key) else {
                continue;
            };
            let Some(pos) = entry.sessions.iter().position(|s| s.end == end) else {
                continue;
            };
            let session = entry.sessions.swap_remove(pos);
            let now_empty = entry.sessions.is_empty();
            if self.py.is_some() {
                for (gkey, accs) in session.groups {
                    let mut k = key.to_vec();
                    k.extend_from_slice(&gkey);
                    fired.push((k.into(), accs));
                    bounds.push((session.start, session.end));
                }
                if now_empty {
                    if let Some(k) = self.keys_by_id.remove(&id) {
                        self.state.remove(&k);
                    }
                }
                continue;
            }
            for (gkey, accs) in &session.groups {
                self.out.clear();
                decode_key_into(key, &mut self.out)
                    .and_then(|_| decode_key_into(gkey, &mut self.out))
                    .ok_or_else(|| RuntimeError::State("corrupt session key".into()))?;
                for (acc, call) in accs.iter().zip(&self.calls) {
                    let v = acc.value(call, &mut self.out.heap);
                    self.out.values.push(v);
                }
                self.out.values.push(Value::Timestamp(session.start));
                self.out.values.push(Value::Timestamp(session.end));
                self.out
                    .values
                    .push(Value::Timestamp(window_max_timestamp(session.end)));
                self.metrics.records_out += 1;
                out.emit(&self.out)?;
            }
            if now_empty {
                if let Some(k) = self.keys_by_id.remove(&id) {
                    self.state.remove(&k);
                }
            }
        }
        if let Some(py) = self.py.as_mut() {
            py.set_window(None);
            py.settle_all(&mut fired, Some(&bounds))?;
            for ((key, accs), (start, end)) in fired.iter().zip(bounds) {
                self.out.clear();
                decode_key_into(key, &mut self.out)
                    .ok_or_else(|| RuntimeError::State("corrupt session key".into()))?;
                for (acc, call) in accs.iter().zip(&self.calls) {
                    let v = acc.value(call, &mut self.out.heap);
                    self.out.values.push(v);
                }
                self.out.values.push(Value::Timestamp(start));
                self.out.values.push(Value::Timestamp(end));
                self.out
                    .values
                    .push(Value::Timestamp(window_max_timestamp(end)));
                self.metrics.records_out += 1;
                out.emit(&self.out)?;
            }
        }
        Ok(())
    }
}

impl Operator for SessionWindowAggregate {
    fn describe(&self) -> String {
        format!(
            "SessionWindowAggregate(gap={}us, time={:?}, partition={:?}, group={:?}, aggs={:?})",
            self.gap,
            self.mode,
            self.partition,
            self.group,
            self.calls.iter().map(|c| c.kind).collect::<Vec<_>>()
        )
    }

    fn process(&mut self, row: &Row, _out: &mut dyn Emit) -> Result<()> {
        self.metrics.records_in += 1;
        let Some(Value::Timestamp(ts)) = row.values.get(self.time_col).copied() else {
            self.metrics.late_dropped += 1;
            return late::report(&self.late, row, || "the time attribute is NULL".into());
        };
        encode_key(&mut self.pkey, row, &self.partition);
        encode_key(&mut self.gkey, row, &self.group);
        let (mut start, mut end) = (ts, ts + self.gap);
        let next_id = &mut self.next_id;
        let mut created = None;
        let entry = self.state.get_or_insert_with(&self.pkey, || {
            let id = *next_id;
            *next_id += 1;
            created = Some(id);
            KeySessions {
                id,
                sessions: Vec::new(),
            }
        });
        if let Some(id) = created {
            self.keys_by_id.insert(id, self.pkey.as_slice().into());
        }
        let id = entry.id;
        // Merge every session the new window touches.
        let mut merged: Option<Session> = None;
        let mut merges = 0;
        let mut i = 0;
        while i < entry.sessions.len() {
            let s = &entry.sessions[i];
            if s.start <= end && start <= s.end {
                let s = entry.sessions.swap_remove(i);
                merges += 1;
                self.timers.remove(&(s.end, id));
                start = start.min(s.start);
                end = end.max(s.end);
                merged = Some(match merged {
                    None => s,
                    Some(mut m) => {
                        for (g, accs) in s.groups {
                            match m.groups.iter_mut().find(|(k, _)| *k == g) {
                                Some((_, mine)) => {
                                    for ((a, b), call) in mine.iter_mut().zip(accs).zip(&self.calls)
                                    {
                                        a.merge(b, call.kind)?;
                                    }
                                }
                                None => m.groups.push((g, accs)),
                            }
                        }
                        m
                    }
                });
            } else {
                i += 1;
            }
        }
        if merged.is_none()
            && self.mode == TimeMode::Event
            && window_max_timestamp(end) <= self.watermark
        {
            self.metrics.late_dropped += 1;
            if entry.sessions.is_empty() {
                self.keys_by_id.remove(&id);
                self.state.remove(&self.pkey);
            }
            let wm = self.watermark;
            return late::report(&self.late, row, || {
                format!(
                    "late: its session [{}, {}) would already have fired (watermark {})",
                    late::ts_text(start),
                    late::ts_text(end),
                    late::ts_text(wm)
                )
            });
        }
        let mut session = merged.unwrap_or(Session {
            start,
            end,
            groups: Vec::with_capacity(1),
        });
        session.start = start;
        session.end = end;
        let calls = &self.calls;
        let accs = match session.groups.iter().position(|(k, _)| **k == *self.gkey) {
            Some(p) => &mut session.groups[p].1,
            None => {
                session
                    .groups
                    .push((self.gkey.as_slice().into(), new_accs(calls)));
                let last = session.groups.len() - 1;
                &mut session.groups[last].1
            }
        };
        let was = self.py.as_ref().is_some_and(|py| py.is_pending(accs));
        update_all(accs, calls, row, !row.kind.is_addition(), &mut self.scratch)?;
        self.timers.insert((end, id));
        entry.sessions.push(session);
        if let Some(py) = &self.py {
            // rows now wait where they did not, or sessions merged (their accumulators to be
            // merged): the key is visited at the next hand-off
            if (!was || merges > 1) && self.compacts() {
                self.py_waiting.push(id);
            }
            self.py_rows += 1;
            if self.py_rows >= py.limits().size {
                self.compact()?;
            }
        }
        Ok(())
    }

    fn on_watermark(&mut self, wm: i64, out: &mut dyn Emit) -> Result<()> {
        super::on_watermark(self, wm, out)
    }

    fn on_processing_time(&mut self, now: i64, out: &mut dyn Emit) -> Result<()> {
        super::on_processing_time(self, now, out)
    }

    fn on_end(&mut self, out: &mut dyn Emit) -> Result<()> {
        super::on_end(self, out)
    }

    fn metrics(&self) -> OperatorMetrics {
        let mut m = self.metrics.clone();
        m.state_entries = self.timers.len() as u64;
        m.state_bytes = self.state.bytes_estimate();
        m.watermark = (self.watermark > i64::MIN).then_some(self.watermark);
        m
    }

    fn snapshot_state(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.watermark.to_le_bytes());
        out.extend_from_slice(&self.next_id.to_le_bytes());
        self.state.snapshot(0..crate::keys::MAX_KEY_GROUPS, out);
    }

    fn restore_state(&mut self, input: &[u8]) -> Result<()> {
        self.restore_parts(&[input], &crate::state::Rescale::NONE)
    }

    /// Keys merged from several instances are numbered afresh (each instance numbered its own).
    fn restore_parts(&mut self, parts: &[&[u8]], rescale: &crate::state::Rescale) -> Result<()> {
        self.watermark = least_of(parts, |p| Ok(read_u64(p, &mut 0)? as i64))?.unwrap_or(i64::MIN);
        self.state = KeyedState::default();
        match parts {
            [one] if rescale.keeps_all() => {
                self.next_id = read_u64(one, &mut 8)?;
                self.state.restore(one, &mut 16)?;
            }
            _ => {
                self.next_id = 0;
                for (j, p) in parts.iter().enumerate() {
                    let mut part: KeyedState<KeySessions> = KeyedState::default();
                    part.restore_part(p, &mut 16, rescale, j)?;
                    for (key, mut entry) in part.drain() {
                        entry.id = self.next_id;
                        self.next_id += 1;
                        let slot = self.state.get_or_insert_with(&key, || KeySessions {
                            id: 0,
                            sessions: Vec::new(),
                        });
                        *slot = entry;
                    }
                }
            }
        }
        self.keys_by_id.clear();
        self.timers.clear();
        self.py_waiting.clear();
        let compacts = self.compacts();
        for (key, entry) in self.state.iter() {
            self.keys_by_id.insert(entry.id, key.into());
            if let Some(py) = self.py.as_ref().filter(|_| compacts) {
                // the keys whose rows wait, as the snapshot left them
                if entry
                    .sessions
                    .iter()
                    .any(|s| s.groups.iter().any(|(_, accs)| py.is_pending(accs)))
                {
                    self.py_waiting.push(entry.id);
                }
            }
            for s in &entry.sessions {
                self.timers.insert((s.end, entry.id));
            }
        }
        Ok(())
    }
}

impl super::Firing for SessionWindowAggregate {
    fn fire_until(&mut self, time: i64, out: &mut dyn Emit) -> Result<()> {
        SessionWindowAggregate::fire_until(self, time, out)
    }
    fn mode(&self) -> TimeMode {
        self.mode
    }
    fn watermark_mut(&mut self) -> &mut i64 {
        &mut self.watermark
    }
    fn emitted(&self) -> u64 {
        self.metrics.records_out
    }
    fn late_sink(&self) -> &Option<SharedLateSink> {
        &self.late
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agg::AggKind;
    use tillflow_types::DataType;

    struct Collect(Vec<Vec<Value>>);
    impl Emit for Collect {
        fn emit(&mut self, row: &Row) -> Result<()> {
            self.0.push(row.values.clone());
            Ok(())
        }
        fn watermark(&mut self, _wm: i64) -> Result<()> {
            Ok(())
        }
    }

    /// Sessions that merge (out-of-order rows bridge them) give Python SUMs what the built-in
    /// SUM gives: with `merge` (rows given to Python every 5 rows, pickled accumulators merged)
    /// and without (rows wait until the session fires).
    #[test]
    fn merging_sessions_give_python_sums_the_builtins_rows() {
        const S: i64 = 1_000_000;
        let dir = tempfile::tempdir().expect("tempdir");
        let sum = AggCall::builtin(AggKind::Sum, Some(1), DataType::BigInt, DataType::BigInt);
        let calls = vec![
            sum,
            crate::python::agg::testing::py_sum(dir.path(), 1, true, 5),
        ];
        let mut op = SessionWindowAggregate::new(
            10 * S,
            TimeMode::Event,
            2,
            vec![0],
            Vec::new(),
            calls.clone(),
        );
        // the same 600 rows for each run: gaps of 0-24 s (sessions end), some rows 0-30 s early
        // (bridging sessions), the watermark 40 s behind
        let feed = |op: &mut SessionWindowAggregate| {
            let mut out = Collect(Vec::new());
            let mut seed = 5u64;
            let mut max_ts = 0;
            for i in 0..600i64 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let r = (seed >> 33) as i64;
                let ts = i * 8 * S - if r % 5 == 0 { (r % 30) * S } else { 0 };
                let row = Row {
                    values: vec![Value::Int(r % 3), Value::Int(r % 50), Value::Timestamp(ts)],
                    ..Row::default()
                };
                op.process(&row, &mut out).expect("process");
                max_ts = max_ts.max(ts);
                op.on_watermark(max_ts - 40 * S, &mut out)
                    .expect("watermark");
            }
            op.on_end(&mut out).expect("end");
            out
        };
        let out = feed(&mut op);
        assert!(out.0.len() > 20, "{} sessions", out.0.len());
        for row in &out.0 {
            assert_eq!(row[1], row[2], "{row:?}");
        }
        // without merge: the rows wait in the sessions; the same sums
        let mut calls = calls;
        calls[1] = crate::python::agg::testing::py_sum(dir.path(), 1, false, 5);
        let mut op =
            SessionWindowAggregate::new(10 * S, TimeMode::Event, 2, vec![0], Vec::new(), calls);
        let again = feed(&mut op);
        assert_eq!(again.0, out.0);
    }

    /// An early hand-off visits only the partition keys whose sessions got rows (or merged)
    /// since the last one: after a checkpoint, a hand-off over 200 open sessions of which 3
    /// got rows writes 3 entries; after a restore, rows left waiting go at the next one; the
    /// sums are the built-in's.
    #[test]
    fn early_hand_offs_write_only_the_keys_that_got_rows() {
        const S: i64 = 1_000_000;
        let dir = tempfile::tempdir().expect("tempdir");
        let sum = AggCall::builtin(AggKind::Sum, Some(1), DataType::BigInt, DataType::BigInt);
        let calls = vec![
            sum,
            crate::python::agg::testing::py_sum(dir.path(), 1, true, 400),
        ];
        crate::state::incremental::scoped_tracking(true, || {
            let make = || {
                SessionWindowAggregate::new(
                    3600 * S,
                    TimeMode::Event,
                    2,
                    vec![0],
                    Vec::new(),
                    calls.clone(),
                )
            };
            let mut op = make();
            let mut out = Collect(Vec::new());
            let row = |k: i64, v: i64, ts: i64| Row {
                values: vec![Value::Int(k), Value::Int(v), Value::Timestamp(ts)],
                ..Row::default()
            };
            let requests = |op: &SessionWindowAggregate| op.py.as_ref().map_or(0, |p| p.requests());
            for i in 0..400 {
                op.process(&row(i % 200, i, i * S), &mut out)
                    .expect("process");
            }
            assert_eq!(requests(&op), 1);
            crate::state::incremental::collecting(Some(1), None, || {
                op.snapshot_state(&mut Vec::new())
            });
            assert_eq!(op.state.changed_entries(), Some(0));
            for i in 400..600 {
                op.process(&row(i % 3, i, i * S), &mut out)
                    .expect("process");
            }
            let mut whole = Vec::new();
            op.snapshot_state(&mut whole);
            let mut op = make();
            op.restore_state(&whole).expect("restore");
            crate::state::incremental::collecting(Some(2), None, || {
                op.snapshot_state(&mut Vec::new())
            });
            for i in 600..1000 {
                op.process(&row(i % 3, i, i * S), &mut out)
                    .expect("process");
            }
            assert_eq!(requests(&op), 1);
            assert_eq!(
                op.state.changed_entries(),
                Some(3),
                "only the 3 keys were written"
            );
            let py = op.py.as_ref().expect("py");
            for (_, entry) in op.state.iter() {
                for s in &entry.sessions {
                    for (_, accs) in &s.groups {
                        assert!(!py.is_pending(accs), "rows left waiting");
                    }
                }
            }
            op.on_end(&mut out).expect("end");
            assert_eq!(out.0.len(), 200);
            for r in &out.0 {
                assert_eq!(r[1], r[2], "{r:?}");
            }
        });
    }
}
