//! The aligned-window aggregate operator (TUMBLE, HOP, CUMULATE).
//!
//! Open windows are kept sorted by end; each holds the accumulators of its groups in
//! [`KeyedState`]. A record is added to every window it belongs to that has not fired yet; a record
//! whose windows have all fired is dropped and counted as late.
//!
//! CUMULATE and HOP are sliced, as Flink does it: a record updates only its slice (a CUMULATE
//! step, a HOP slide). A CUMULATE period keeps a running aggregate into which a slice is merged
//! when the window ending with it fires, and every window of the period emits it; a HOP window
//! merges copies of the panes it covers when it fires, and panes no later window covers are
//! dropped. One update per record instead of one per window (up to 144 for 10-minute steps over a
//! day). Calls that cannot merge (the forecasting functions), and HOPs whose size is not a
//! multiple of the slide, keep the per-window path.

use super::{window_max_timestamp, window_start, AlignedWindow, TimeMode};
use crate::agg::{new_accs, update_all, Acc, AggCall};
use crate::error::{Result, RuntimeError};
use crate::keys::{decode_key_into, encode_key};
use crate::late::{self, SharedLateSink};
use crate::operator::{least_of, Emit, Operator, OperatorMetrics};
use crate::python::agg::PyAggs;
use crate::state::{read_u64, KeyedState};
use std::collections::VecDeque;
use tillflow_types::{Row, Value};

struct OpenWindow {
    start: i64,
    end: i64,
    groups: KeyedState<Vec<Acc>>,
    /// With Python calls: the groups whose Python accumulators have rows waiting (those that
    /// received rows since they were last given to Python), each once.
    py_waiting: Vec<Box<[u8]>>,
}

/// A CUMULATE period's running aggregate: everything merged so far, and the end of the next window
/// of the period to fire.
struct Cumulation {
    start: i64,
    next_end: i64,
    groups: KeyedState<Vec<Acc>>,
    /// As [`OpenWindow::py_waiting`].
    py_waiting: Vec<Box<[u8]>>,
}

/// Aggregates rows per (window, key) and emits each window's groups when it fires.
pub struct WindowAggregate {
    window: AlignedWindow,
    mode: TimeMode,
    time_col: usize,
    keys: Vec<usize>,
    calls: Vec<AggCall>,
    /// Sorted by (end, start); a deque, as windows fire from the front.
    windows: VecDeque<OpenWindow>,
    /// CUMULATE, sliced: the periods' running aggregates, by start (`windows` holds the slices).
    cumulations: Option<Vec<Cumulation>>,
    /// HOP, sliced (`windows` holds the panes): the end of the next window to fire, if any pane is
    /// open.
    hop_next: Option<Option<i64>>,
    watermark: i64,
    /// The rows are a window's result: their window is in these columns (start, end).
    attached: Option<(usize, usize)>,
    assigned: Vec<(i64, i64)>,
    key: Vec<u8>,
    scratch: Vec<u8>,
    out: Row,
    metrics: OperatorMetrics,
    late: Option<SharedLateSink>,
    /// The global half of a two-phase aggregate: input rows are partials of
    /// [`super::local::LocalWindowAggregate`], their row count and accumulators in these columns.
    partials: Option<(usize, usize)>,
    /// The Python aggregate calls (Flink's `PythonGroupWindowAggregate`): their rows wait in
    /// the accumulators and go to Python when a window fires ([`crate::python::agg`]).
    py: Option<PyAggs>,
    /// Rows given to Python accumulators since they were last compacted.
    py_rows: usize,
}

/// Adds `row` to a group's accumulators: its values, or, for a partial, its accumulators merged.
#[inline]
fn absorb(
    accs: &mut [Acc],
    calls: &[AggCall],
    row: &Row,
    retract: bool,
    partials: Option<(usize, usize)>,
    scratch: &mut Vec<u8>,
) -> Result<()> {
    let Some((_, col)) = partials else {
        return update_all(accs, calls, row, retract, scratch);
    };
    let Some(Value::Str(s)) = row.values.get(col).copied() else {
        return Err(RuntimeError::State(
            "a partial aggregate without accumulators".into(),
        ));
    };
    let bytes = tillflow_types::value::heap_bytes(&row.heap, s);
    let at = &mut 0;
    for (acc, call) in accs.iter_mut().zip(calls) {
        acc.merge(
            <Acc as crate::state::StateValue>::read(bytes, at)?,
            call.kind,
        )?;
    }
    Ok(())
}

/// [`absorb`], noting in `waiting` the group `key` when its Python accumulators (`py`) had no
/// rows waiting before: `waiting` then holds every group whose rows wait, each once.
#[inline]
#[allow(clippy::too_many_arguments)]
fn absorb_noting(
    accs: &mut [Acc],
    calls: &[AggCall],
    row: &Row,
    retract: bool,
    partials: Option<(usize, usize)>,
    scratch: &mut Vec<u8>,
    py: Option<&PyAggs>,
    (key, waiting): (&[u8], &mut Vec<Box<[u8]>>),
) -> Result<()> {
    let Some(py) = py else {
        return absorb(accs, calls, row, retract, partials, scratch);
    };
    let was = py.is_pending(accs);
    absorb(accs, calls, row, retract, partials, scratch)?;
    if !was && py.is_pending(accs) {
        waiting.push(key.into());
    }
    Ok(())
}

/// The groups of `groups` whose Python accumulators have rows waiting (after a restore).
fn waiting_in(groups: &KeyedState<Vec<Acc>>, py: &PyAggs) -> Vec<Box<[u8]>> {
    crate::python::agg::GroupAccs::keys_where(groups, &|accs| py.is_pending(accs))
}

impl WindowAggregate {
    /// The global half of a two-phase aggregate (Flink's `GlobalWindowAggregate`): each input
    /// row is a partial — the rows of one slice and key, folded — whose time is the slice's last
    /// timestamp, with the number of rows in column `rows` and the accumulators in `accs`.
    pub fn global(mut self, rows: usize, accs: usize) -> Self {
        self.partials = Some((rows, accs));
        self
    }

    /// The input rows `row` stands for (a partial's count; 1 otherwise).
    fn rows_in(&self, row: &Row) -> u64 {
        match self.partials.and_then(|(n, _)| row.values.get(n).copied()) {
            Some(Value::Int(n)) => n.max(0) as u64,
            _ => 1,
        }
    }

    /// Sends dropped late records to `sink` as well as counting them.
    pub fn with_late_sink(mut self, sink: Option<SharedLateSink>) -> Self {
        self.late = sink;
        self
    }

    /// Aggregates a window's result again per window: a row belongs to the window in its columns
    /// `start` and `end` (its window_start and window_end), not to windows assigned from a time;
    /// Flink's cascaded window aggregation (window-attached strategy). The window fires as
    /// others do, when the watermark reaches its end.
    pub fn attached(mut self, start: usize, end: usize) -> Self {
        self.attached = Some((start, end));
        self.cumulations = None;
        self.hop_next = None;
        self
    }

    /// An operator for `window` over time column `time_col`, grouping by `keys`, computing `calls`.
    pub fn new(
        window: AlignedWindow,
        mode: TimeMode,
        time_col: usize,
        keys: Vec<usize>,
        calls: Vec<AggCall>,
    ) -> Self {
        let mergeable = calls.iter().all(|c| c.model.is_none());
        let sliced = matches!(window, AlignedWindow::Cumulate { .. }) && mergeable;
        let hop_sliced = matches!(window, AlignedWindow::Hop { slide, size, .. } if slide > 0 && size % slide == 0)
            && mergeable;
        WindowAggregate {
            window,
            mode,
            time_col,
            keys,
            windows: VecDeque::new(),
            cumulations: sliced.then(Vec::new),
            hop_next: hop_sliced.then_some(None),
            watermark: i64::MIN,
            attached: None,
            assigned: Vec::with_capacity(8),
            key: Vec::with_capacity(64),
            scratch: Vec::new(),
            out: Row::with_capacity(8),
            metrics: OperatorMetrics::default(),
            late: None,
            partials: None,
            py: PyAggs::of(&calls, Vec::new()),
            py_rows: 0,
            calls,
        }
    }

    /// The types of the group keys, to name a group in a Python function's error.
    pub fn with_key_types(mut self, types: Vec<tillflow_types::DataType>) -> Self {
        if let Some(py) = self.py.as_mut() {
            py.set_key_types(types);
        }
        self
    }

    /// Gives the rows waiting in the open windows' Python accumulators to Python (a request
    /// closing at [`crate::python::agg::SETTLE_GROUPS`] groups or
    /// [`crate::python::agg::SETTLE_BYTES`] bytes), so that a long window keeps pickled
    /// accumulators instead of its rows: after every `python.fn-execution.bundle.size` rows.
    /// Only the groups noted in `py_waiting` go (and are written).
    /// Not where slices are merged (HOP panes, CUMULATE steps) and a function has no `merge`:
    /// its rows then wait until their windows fire, where joining them needs no `merge`.
    fn compact(&mut self) -> Result<()> {
        self.py_rows = 0;
        let sliced = self.cumulations.is_some() || self.hop_next.is_some();
        let Some(py) = self.py.as_mut() else {
            return Ok(());
        };
        if sliced
            && self
                .calls
                .iter()
                .any(|c| c.python.as_ref().is_some_and(|p| !p.has_merge))
        {
            return Ok(());
        }
        // only the groups that received rows since the last hand-off: the others are neither
        // read nor written (an incremental checkpoint keeps them as they were)
        // (each group is noted once; sorted and deduplicated all the same, since a group
        // settled twice in one request would take the second, empty, answer)
        for w in &mut self.windows {
            w.py_waiting.sort_unstable();
            w.py_waiting.dedup();
            py.set_window(Some((w.start, w.end)));
            py.settle_state(&mut w.groups, Some(&w.py_waiting))?;
            w.py_waiting.clear();
        }
        for c in self.cumulations.iter_mut().flatten() {
            c.py_waiting.sort_unstable();
            c.py_waiting.dedup();
            py.set_window(Some((c.start, c.next_end)));
            py.settle_state(&mut c.groups, Some(&c.py_waiting))?;
            c.py_waiting.clear();
        }
        Ok(())
    }

    /// Adds `row` (or takes it back, for a retraction) to its group of window `i` (the group
    /// of `self.key`), noting a group whose rows now wait for Python.
    fn absorb_into(&mut self, i: usize, row: &Row) -> Result<()> {
        let calls = &self.calls;
        let w = &mut self.windows[i];
        let accs = w.groups.get_or_insert_with(&self.key, || new_accs(calls));
        let retract = !row.kind.is_addition();
        absorb_noting(
            accs,
            calls,
            row,
            retract,
            self.partials,
            &mut self.scratch,
            self.py.as_ref(),
            (&self.key, &mut w.py_waiting),
        )
    }

    fn window_index(&mut self, start: i64, end: i64) -> usize {
        // A record's window is nearly always the newest; out of order (partitions read at
        // different paces, late records) it is found by halving, not by walking every open
        // window, of which a stalled watermark can leave thousands.
        if self
            .windows
            .back()
            .is_some_and(|w| w.end == end && w.start == start)
        {
            return self.windows.len() - 1;
        }
        let i = match self
            .windows
            .binary_search_by(|w| (w.end, w.start).cmp(&(end, start)))
        {
            Ok(i) => return i,
            Err(i) => i,
        };
        self.windows.insert(
            i,
            OpenWindow {
                start,
                end,
                groups: KeyedState::default(),
                py_waiting: Vec::new(),
            },
        );
        i
    }

    fn fire_until(&mut self, time: i64, out: &mut dyn Emit) -> Result<()> {
        if self.cumulations.is_some() {
            return self.fire_cumulations(time, out);
        }
        if self.hop_next.is_some() {
            return self.fire_hops(time, out);
        }
        while self
            .windows
            .front()
            .is_some_and(|w| window_max_timestamp(w.end) <= time)
        {
            let Some(mut w) = self.windows.pop_front() else {
                break;
            };
            if let Some(py) = self.py.as_mut() {
                let mut groups: Vec<(Box<[u8]>, Vec<Acc>)> = w.groups.drain().collect();
                py.set_window(Some((w.start, w.end)));
                py.settle_all(&mut groups, None)?;
                for (key, accs) in &groups {
                    emit_group(&mut self.out, key, accs, &self.calls, (w.start, w.end), out)?;
                    self.metrics.records_out += 1;
                }
                continue;
            }
            for (key, accs) in w.groups.drain() {
                emit_group(
                    &mut self.out,
                    &key,
                    &accs,
                    &self.calls,
                    (w.start, w.end),
                    out,
                )?;
                self.metrics.records_out += 1;
            }
        }
        Ok(())
    }

    /// Fires HOP's windows up to `time`: each merges copies of the panes it covers.
    fn fire_hops(&mut self, time: i64, out: &mut dyn Emit) -> Result<()> {
        let AlignedWindow::Hop { slide, size, .. } = self.window else {
            return Ok(());
        };
        while let Some(Some(end)) = self.hop_next {
            if window_max_timestamp(end) > time {
                break;
            }
            let start = end - size;
            let mut merged: KeyedState<Vec<Acc>> = KeyedState::default();
            let calls = &self.calls;
            for pane in self
                .windows
                .iter()
                .filter(|p| p.start >= start && p.end <= end)
            {
                for (key, accs) in pane.groups.iter() {
                    let m = merged.get_or_insert_with(&key, || new_accs(calls));
                    for ((a, b), call) in m.iter_mut().zip(accs.iter()).zip(calls) {
                        a.merge(b.clone(), call.kind)?;
                    }
                }
            }
            if let Some(py) = self.py.as_mut() {
                let mut groups: Vec<(Box<[u8]>, Vec<Acc>)> = merged.drain().collect();
                py.set_window(Some((start, end)));
                py.settle_all(&mut groups, None)?;
                for (key, accs) in &groups {
                    emit_group(&mut self.out, key, accs, &self.calls, (start, end), out)?;
                    self.metrics.records_out += 1;
                }
            }
            for (key, accs) in merged.iter() {
                emit_group(&mut self.out, &key, &accs, &self.calls, (start, end), out)?;
                self.metrics.records_out += 1;
            }
            // the next window starts a slide later: panes before it are done
            self.windows.retain(|p| p.end > start + slide);
            self.hop_next = Some(
                self.windows
                    .iter()
                    .map(|p| p.end)
                    .min()
                    .map(|first| (end + slide).max(first)),
            );
        }
        Ok(())
    }

    /// Fires CUMULATE's windows up to `time`: each merges its slice into the period's running
    /// aggregate and emits it.
    fn fire_cumulations(&mut self, time: i64, out: &mut dyn Emit) -> Result<()> {
        let AlignedWindow::Cumulate { step, size, .. } = self.window else {
            return Ok(());
        };
        let Some(cums) = self.cumulations.as_mut() else {
            return Ok(());
        };
        while let Some(c) = cums.first_mut() {
            if window_max_timestamp(c.next_end) > time {
                break;
            }
            let (start, end) = (c.start, c.next_end);
            if let Some(mut slice) = self
                .windows
                .iter()
                .position(|w| w.start == start && w.end == end)
                .and_then(|i| self.windows.remove(i))
            {
                let py = self.py.as_ref();
                for (key, accs) in slice.groups.drain() {
                    let calls = &self.calls;
                    let running = c.groups.get_or_insert_with(&key, || new_accs(calls));
                    let was = py.is_some_and(|p| p.is_pending(running));
                    for ((r, a), call) in running.iter_mut().zip(accs).zip(calls) {
                        r.merge(a, call.kind)?;
                    }
                    if py.is_some_and(|p| !was && p.is_pending(running)) {
                        c.py_waiting.push(key);
                    }
                }
            }
            if let Some(py) = self.py.as_mut() {
                // the period's running aggregate lives on: its accumulators are kept
                py.set_window(Some((start, end)));
                c.py_waiting.sort_unstable();
                c.py_waiting.dedup();
                py.settle_state(&mut c.groups, Some(&c.py_waiting))?;
                c.py_waiting.clear();
            }
            for (key, accs) in c.groups.iter() {
                emit_group(&mut self.out, &key, &accs, &self.calls, (start, end), out)?;
                self.metrics.records_out += 1;
            }
            c.next_end += step;
            if c.next_end > c.start + size {
                cums.remove(0);
            }
        }
        Ok(())
    }

    /// The index of the running aggregate of the CUMULATE period starting at `start`, created
    /// (with its next window the first one not fired yet) when absent.
    fn cumulation(&mut self, start: i64) -> usize {
        let (AlignedWindow::Cumulate { step, size, .. }, Some(cums)) =
            (self.window, self.cumulations.as_mut())
        else {
            return 0;
        };
        let (mode, wm) = (self.mode, self.watermark);
        match cums.binary_search_by_key(&start, |c| c.start) {
            Ok(i) => i,
            Err(i) => {
                let mut next_end = start + step;
                while mode == TimeMode::Event
                    && next_end < start + size
                    && window_max_timestamp(next_end) <= wm
                {
                    next_end += step;
                }
                cums.insert(
                    i,
                    Cumulation {
                        start,
                        next_end,
                        groups: KeyedState::default(),
                        py_waiting: Vec::new(),
                    },
                );
                i
            }
        }
    }
}

/// Emits one group of a window: keys, aggregate values, window_start, window_end, window_time.
fn emit_group(
    row: &mut Row,
    key: &[u8],
    accs: &[Acc],
    calls: &[AggCall],
    (start, end): (i64, i64),
    out: &mut dyn Emit,
) -> Result<()> {
    row.clear();
    decode_key_into(key, row).ok_or_else(|| RuntimeError::State("corrupt window key".into()))?;
    for (acc, call) in accs.iter().zip(calls) {
        let v = acc.value(call, &mut row.heap);
        row.values.push(v);
    }
    row.values.push(Value::Timestamp(start));
    row.values.push(Value::Timestamp(end));
    row.values.push(Value::Timestamp(window_max_timestamp(end)));
    out.emit(row)
}

impl Operator for WindowAggregate {
    fn describe(&self) -> String {
        format!(
            "{}WindowAggregate(window={:?}, time={:?}, keys={:?}, aggs={:?}{})",
            if self.py.is_some() { "PythonGroup" } else { "" },
            self.window,
            self.mode,
            self.keys,
            self.calls.iter().map(|c| c.kind).collect::<Vec<_>>(),
            self.py
                .as_ref()
                .map(|p| format!(", python={:?}", p.names()))
                .unwrap_or_default()
        )
    }

    #[inline]
    fn process(&mut self, row: &Row, _out: &mut dyn Emit) -> Result<()> {
        self.metrics.records_in += 1;
        let Some(Value::Timestamp(ts)) = row.values.get(self.time_col).copied() else {
            // A NULL time attribute belongs to no window.
            self.metrics.late_dropped += 1;
            return late::report(&self.late, row, || "the time attribute is NULL".into());
        };
        let mut assigned = std::mem::take(&mut self.assigned);
        match self.attached {
            Some((s, e)) => {
                assigned.clear();
                if let (Some(Value::Timestamp(start)), Some(Value::Timestamp(end))) =
                    (row.values.get(s).copied(), row.values.get(e).copied())
                {
                    assigned.push((start, end));
                }
            }
            None => self.window.assign(ts, &mut assigned),
        }
        encode_key(&mut self.key, row, &self.keys);
        let mut kept = false;
        if let (Some(&(start, slice_end)), Some(&(_, last_end))) =
            (assigned.first(), assigned.last())
        {
            if self.cumulations.is_some() {
                // CUMULATE, sliced: the record's slice, or, when the slice's window has fired
                // but later windows of the period have not, the period's running aggregate
                let fired = |end: i64| {
                    self.mode == TimeMode::Event && window_max_timestamp(end) <= self.watermark
                };
                if !fired(last_end) {
                    kept = true;
                    let retract = !row.kind.is_addition();
                    let slice_fired = fired(slice_end);
                    let ci = self.cumulation(start);
                    let (groups, waiting) = match (slice_fired, self.cumulations.as_mut()) {
                        (true, Some(cums)) => {
                            let c = &mut cums[ci];
                            (&mut c.groups, &mut c.py_waiting)
                        }
                        _ => {
                            let i = self.window_index(start, slice_end);
                            let w = &mut self.windows[i];
                            (&mut w.groups, &mut w.py_waiting)
                        }
                    };
                    let calls = &self.calls;
                    let accs = groups.get_or_insert_with(&self.key, || new_accs(calls));
                    absorb_noting(
                        accs,
                        calls,
                        row,
                        retract,
                        self.partials,
                        &mut self.scratch,
                        self.py.as_ref(),
                        (&self.key, waiting),
                    )?;
                    assigned.clear();
                }
                // all the period's windows have fired: the loop below finds the record late
                // and reports the windows it missed
            }
        }
        if let (
            Some(next),
            AlignedWindow::Hop {
                slide,
                size,
                offset,
            },
        ) = (self.hop_next, self.window)
        {
            // HOP, sliced: the record's pane, unless every window covering it has fired
            let pane = window_start(ts, slide, offset);
            let (event, wm) = (self.mode == TimeMode::Event, self.watermark);
            let fired = move |end: i64| event && window_max_timestamp(end) <= wm;
            if !fired(pane + size) {
                kept = true;
                let i = self.window_index(pane, pane + slide);
                self.absorb_into(i, row)?;
                // the first window covering the pane that has not fired
                let mut first = pane + slide;
                while fired(first) {
                    first += slide;
                }
                self.hop_next = Some(Some(next.map_or(first, |n| n.min(first))));
                assigned.clear();
            }
        }
        for &(start, end) in &assigned {
            if self.mode == TimeMode::Event && window_max_timestamp(end) <= self.watermark {
                continue; // this window has fired: the record is late for it
            }
            kept = true;
            let i = self.window_index(start, end);
            self.absorb_into(i, row)?;
        }
        if !kept {
            self.metrics.late_dropped += self.rows_in(row);
            let wm = self.watermark;
            let (first, last) = (assigned.first().copied(), assigned.last().copied());
            late::report(&self.late, row, || {
                let span = match (first, last) {
                    (Some((s, e)), Some((s2, e2))) if (s, e) != (s2, e2) => format!(
                        "windows [{}, {}) .. [{}, {})",
                        late::ts_text(s2),
                        late::ts_text(e2),
                        late::ts_text(s),
                        late::ts_text(e)
                    ),
                    (Some((s, e)), _) => {
                        format!("window [{}, {})", late::ts_text(s), late::ts_text(e))
                    }
                    _ => "its window".into(),
                };
                format!(
                    "late: {span} already fired (watermark {})",
                    late::ts_text(wm)
                )
            })?;
        }
        self.assigned = assigned;
        if kept && self.py.is_some() {
            self.py_rows += 1;
            if self.py_rows >= self.py.as_ref().map_or(usize::MAX, |p| p.limits().size) {
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
        m.state_entries = self
            .windows
            .iter()
            .map(|w| w.groups.len() as u64)
            .sum::<u64>()
            + self
                .cumulations
                .iter()
                .flatten()
                .map(|c| c.groups.len() as u64)
                .sum::<u64>();
        m.state_bytes = self
            .windows
            .iter()
            .map(|w| w.groups.bytes_estimate())
            .chain(
                self.cumulations
                    .iter()
                    .flatten()
                    .map(|c| c.groups.bytes_estimate()),
            )
            .sum();
        m.watermark = (self.watermark > i64::MIN).then_some(self.watermark);
        m
    }

    fn snapshot_state(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.watermark.to_le_bytes());
        out.extend_from_slice(&(self.windows.len() as u64).to_le_bytes());
        for w in &self.windows {
            out.extend_from_slice(&w.start.to_le_bytes());
            out.extend_from_slice(&w.end.to_le_bytes());
            w.groups.snapshot(0..crate::keys::MAX_KEY_GROUPS, out);
        }
        let cums: &[Cumulation] = self.cumulations.as_deref().unwrap_or(&[]);
        out.extend_from_slice(&(cums.len() as u64).to_le_bytes());
        for c in cums {
            out.extend_from_slice(&c.start.to_le_bytes());
            out.extend_from_slice(&c.next_end.to_le_bytes());
            c.groups.snapshot(0..crate::keys::MAX_KEY_GROUPS, out);
        }
        let next = self.hop_next.flatten().unwrap_or(i64::MIN);
        out.extend_from_slice(&next.to_le_bytes());
    }

    fn restore_state(&mut self, input: &[u8]) -> Result<()> {
        self.restore_parts(&[input], &crate::state::Rescale::NONE)
    }

    /// Windows (and CUMULATE periods) of the same bounds are merged from every part; the next
    /// HOP window to fire is the earliest of the parts'.
    fn restore_parts(&mut self, parts: &[&[u8]], rescale: &crate::state::Rescale) -> Result<()> {
        self.watermark = least_of(parts, |p| Ok(read_u64(p, &mut 0)? as i64))?.unwrap_or(i64::MIN);
        self.windows.clear();
        let mut cums: Vec<Cumulation> = Vec::new();
        let mut hop_next: Option<i64> = None;
        for (j, input) in parts.iter().enumerate() {
            let at = &mut 8;
            let n = read_u64(input, at)?;
            for _ in 0..n {
                let start = read_u64(input, at)? as i64;
                let end = read_u64(input, at)? as i64;
                let i = self.window_index(start, end);
                self.windows[i].groups.restore_part(input, at, rescale, j)?;
            }
            let n = read_u64(input, at)?;
            for _ in 0..n {
                let start = read_u64(input, at)? as i64;
                let next_end = read_u64(input, at)? as i64;
                let i = match cums.binary_search_by_key(&start, |c| c.start) {
                    Ok(i) => {
                        cums[i].next_end = cums[i].next_end.min(next_end);
                        i
                    }
                    Err(i) => {
                        cums.insert(
                            i,
                            Cumulation {
                                start,
                                next_end,
                                groups: KeyedState::default(),
                                py_waiting: Vec::new(),
                            },
                        );
                        i
                    }
                };
                cums[i].groups.restore_part(input, at, rescale, j)?;
            }
            let next = read_u64(input, at)? as i64;
            if next != i64::MIN {
                hop_next = Some(hop_next.map_or(next, |h| h.min(next)));
            }
        }
        if let Some(py) = self.py.as_ref() {
            // the groups whose rows wait, as the snapshot left them
            for w in &mut self.windows {
                w.py_waiting = waiting_in(&w.groups, py);
            }
            for c in &mut cums {
                c.py_waiting = waiting_in(&c.groups, py);
            }
        }
        if let Some(c) = self.cumulations.as_mut() {
            *c = cums;
        }
        if let Some(h) = self.hop_next.as_mut() {
            *h = hop_next;
        }
        Ok(())
    }
}

impl super::Firing for WindowAggregate {
    fn fire_until(&mut self, time: i64, out: &mut dyn Emit) -> Result<()> {
        WindowAggregate::fire_until(self, time, out)
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

    struct Collect(Vec<String>);
    impl Emit for Collect {
        fn emit(&mut self, row: &Row) -> Result<()> {
            self.0.push(format!("{:?}", row.values));
            Ok(())
        }
        fn watermark(&mut self, _wm: i64) -> Result<()> {
            Ok(())
        }
    }

    /// Sliced CUMULATE and HOP give exactly the per-window path's rows, late and out-of-order
    /// records included (some land in a period's running aggregate, or a pane, after some of their
    /// windows fired).
    #[test]
    fn sliced_cumulate_and_hop_equal_per_window() {
        const S: i64 = 1_000_000;
        let calls = |kind| AggCall {
            kind,
            arg: Some(1),
            distinct: false,
            arg_type: DataType::Int,
            result_type: kind.result_type(DataType::Int),
            filter: None,
            model: None,
            separator: None,
            retracts: false,
            lag: None,
            python: None,
        };
        let run = |window: AlignedWindow, sliced: bool| {
            let mut op = WindowAggregate::new(
                window,
                TimeMode::Event,
                2,
                vec![0],
                vec![
                    calls(AggKind::Sum),
                    calls(AggKind::Max),
                    calls(AggKind::CountStar),
                ],
            );
            if !sliced {
                op.cumulations = None;
                op.hop_next = None;
            }
            let mut out = Collect(Vec::new());
            let mut seed = 11u64;
            let mut max_ts = 0;
            for i in 0..3000i64 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let r = (seed >> 33) as i64;
                // mostly in order, some 0-8 s late, a few 30-50 s late (past fired windows)
                let ts = i * S / 3
                    - match r % 20 {
                        0 => (30 + r % 20) * S,
                        1..=5 => (r % 8) * S,
                        _ => 0,
                    };
                let row = Row {
                    values: vec![Value::Int(r % 4), Value::Int(r % 100), Value::Timestamp(ts)],
                    ..Row::default()
                };
                op.process(&row, &mut out).expect("process");
                max_ts = max_ts.max(ts);
                op.on_watermark(max_ts - 5 * S, &mut out)
                    .expect("watermark");
            }
            op.on_watermark(i64::MAX, &mut out).expect("end");
            let late = op.metrics().late_dropped;
            let mut rows = out.0;
            rows.sort();
            (rows, late)
        };
        for window in [
            AlignedWindow::Cumulate {
                step: 10 * S,
                size: 60 * S,
                offset: 0,
            },
            AlignedWindow::Hop {
                slide: 10 * S,
                size: 30 * S,
                offset: 0,
            },
            AlignedWindow::Hop {
                slide: 7 * S,
                size: 21 * S,
                offset: 3 * S,
            },
        ] {
            let (sliced, late_s) = run(window, true);
            let (windows, late_w) = run(window, false);
            assert!(
                sliced.len() > 100 && late_s > 0,
                "{window:?}: {} rows, {late_s} late",
                sliced.len()
            );
            assert_eq!(late_s, late_w, "{window:?}");
            assert_eq!(sliced, windows, "{window:?}");
        }
    }

    /// Records in shuffled order over hundreds of open windows (a watermark held back, as by a
    /// partition read behind the others) land in their own windows: the rows equal those of the
    /// same records in time order, one per window and key.
    #[test]
    fn shuffled_records_over_many_open_windows_land_in_their_own() {
        const S: i64 = 1_000_000;
        let calls = vec![
            AggCall::builtin(AggKind::CountStar, None, DataType::BigInt, DataType::BigInt),
            AggCall::builtin(AggKind::Sum, Some(1), DataType::BigInt, DataType::BigInt),
        ];
        let window = AlignedWindow::Tumble {
            size: 60 * S,
            offset: 0,
        };
        let mut records = Vec::new();
        let mut groups = std::collections::BTreeSet::new();
        let mut seed = 7u64;
        for _ in 0..20_000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = (seed >> 33) as i64;
            // 500 minutes, in no order at all
            let (ts, key) = ((r % 30_000) * S, r % 3);
            groups.insert((ts / (60 * S), key));
            records.push((ts, key, r % 10));
        }
        let run = |records: &[(i64, i64, i64)]| {
            let mut op = WindowAggregate::new(window, TimeMode::Event, 2, vec![0], calls.clone());
            let mut out = Collect(Vec::new());
            for &(ts, key, v) in records {
                let row = Row {
                    values: vec![Value::Int(key), Value::Int(v), Value::Timestamp(ts)],
                    ..Row::default()
                };
                op.process(&row, &mut out).expect("process");
            }
            let open = op.windows.len();
            op.on_watermark(i64::MAX, &mut out).expect("end");
            let mut rows = out.0;
            rows.sort();
            (open, rows)
        };
        let (open, shuffled) = run(&records);
        records.sort();
        let (_, ordered) = run(&records);
        assert_eq!(open, 500);
        assert_eq!(shuffled.len(), groups.len());
        assert_eq!(shuffled, ordered);
    }

    /// Early hand-offs to Python visit only the groups that received rows since the last
    /// one: after a checkpoint, a hand-off over a window of 500 groups of which 3 got rows
    /// writes 3 entries (an incremental checkpoint then writes 3, not the window), for
    /// TUMBLE and for CUMULATE's slices and running aggregates, through a restore with rows
    /// waiting; the results are the built-in SUM's.
    #[test]
    fn early_hand_offs_write_only_the_groups_that_got_rows() {
        const S: i64 = 1_000_000;
        let dir = tempfile::tempdir().expect("tempdir");
        let calls = vec![
            AggCall::builtin(AggKind::Sum, Some(1), DataType::BigInt, DataType::BigInt),
            crate::python::agg::testing::py_sum(dir.path(), 1, true, 1000),
        ];
        for window in [
            AlignedWindow::Tumble {
                size: 3600 * S,
                offset: 0,
            },
            AlignedWindow::Cumulate {
                step: 600 * S,
                size: 3600 * S,
                offset: 0,
            },
        ] {
            crate::state::incremental::scoped_tracking(true, || {
                let make =
                    || WindowAggregate::new(window, TimeMode::Event, 2, vec![0], calls.clone());
                let mut op = make();
                let mut out = Collect(Vec::new());
                let row = |g: i64, v: i64, ts: i64| Row {
                    values: vec![Value::Int(g), Value::Int(v), Value::Timestamp(ts)],
                    ..Row::default()
                };
                let requests = |op: &WindowAggregate| op.py.as_ref().map_or(0, |p| p.requests());
                // 500 groups, two rows each: handed to Python once, at the 1000th row
                for i in 0..1000 {
                    op.process(&row(i % 500, i, S), &mut out).expect("process");
                }
                assert_eq!(requests(&op), 1, "{window:?}");
                // CUMULATE: the first step fires, its slice merged into the running aggregate
                op.on_watermark(700 * S, &mut out).expect("watermark");
                let mut bytes = Vec::new();
                crate::state::incremental::collecting(Some(1), None, || {
                    op.snapshot_state(&mut bytes)
                });
                let changed = |op: &WindowAggregate| -> u64 {
                    op.windows
                        .iter()
                        .map(|w| &w.groups)
                        .chain(op.cumulations.iter().flatten().map(|c| &c.groups))
                        .map(|g| g.changed_entries().expect("tracked"))
                        .sum()
                };
                assert_eq!(changed(&op), 0, "{window:?}");
                // 3 groups get rows (in a later slice for CUMULATE); halfway, a restore
                for i in 0..500 {
                    op.process(&row(i % 3, i, 800 * S), &mut out)
                        .expect("process");
                }
                let mut whole = Vec::new();
                op.snapshot_state(&mut whole);
                let mut op = make();
                op.restore_state(&whole).expect("restore");
                let before = requests(&op);
                crate::state::incremental::collecting(Some(2), None, || {
                    op.snapshot_state(&mut Vec::new())
                });
                // (the count of rows towards a hand-off starts again after a restore)
                for i in 500..1500 {
                    op.process(&row(i % 3, i, 800 * S), &mut out)
                        .expect("process");
                }
                assert_eq!(requests(&op), before + 1, "{window:?}");
                assert_eq!(
                    changed(&op),
                    3,
                    "{window:?}: only the 3 groups were written"
                );
                let py = op.py.as_ref().expect("py");
                for w in &op.windows {
                    for (_, accs) in w.groups.iter() {
                        assert!(!py.is_pending(&accs), "{window:?}: rows left waiting");
                    }
                }
                op.on_watermark(i64::MAX, &mut out).expect("end");
                assert!(out.0.len() >= 500, "{window:?}");
                for r in &out.0 {
                    // [key, SUM, Python SUM, start, end, time]
                    let cols: Vec<&str> = r.split(", ").collect();
                    assert_eq!(cols[1], cols[2], "{window:?}: {r}");
                }
            });
        }
    }
}
