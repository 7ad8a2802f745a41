//! Python aggregate functions (Flink's `AggregateFunction` / `@udaf`) inside tillflow's
//! aggregate operators.
//!
//! A Python aggregate's accumulator lives in keyed state like a built-in's, as an
//! [`crate::agg::Acc::Python`]: the accumulator pickled to bytes (as Flink's Python operators
//! keep it in state), the rows not yet given to Python (each a retract flag and its arguments in
//! the key encoding, [`crate::keys::encode_value`]), accumulators to merge into it, and the
//! value `get_value` last gave. Adding a row costs no call to Python: rows wait in the
//! accumulator until the operator needs its value (a window fires, a bundle of a group
//! aggregate ends) or holds many rows (a window operator gives them to Python every
//! `python.fn-execution.bundle.size` rows where it can), and then every group the operator
//! needs goes to the worker in one request ([`PyAggs`]), which unpickles (or creates) each
//! accumulator, merges, accumulates and retracts its rows, and answers each value and, when the
//! operator keeps the group, the accumulator pickled again. Merging two accumulators whose rows
//! have not been given to Python yet only joins their rows (sessions, HOP panes, CUMULATE
//! slices): the function's `merge` is called only for accumulators that have been pickled, and
//! operators give rows to Python early only where that cannot happen or the functions have
//! `merge`.

use super::codec::{self, Reader};
use super::{failure_error_at, CallError, PyTarget, PythonEnv, Worker};
use crate::agg::{Acc, AggCall};
use crate::error::{Result, RuntimeError};
use crate::keys::{decode_key_into, decode_value_into, decode_value_ref, encode_value};
use crate::ops::python::BundleLimits;
use crate::state::{read_u32, KeyedState, StateValue};
use tillflow_types::value::heap_bytes;
use tillflow_types::{DataType, Row, Value};

/// A Python aggregate function's call, as the aggregate operator runs it.
#[derive(Clone, Debug, PartialEq)]
pub struct PyAggSpec {
    /// The function (its result type in `target.results`).
    pub target: PyTarget,
    /// Where it runs.
    pub env: PythonEnv,
    /// The input columns of its arguments.
    pub args: Vec<usize>,
    /// Their types.
    pub arg_types: Vec<DataType>,
    /// When a group aggregate's bundle of rows goes to Python
    /// (`python.fn-execution.bundle.size` and `.time`).
    pub limits: BundleLimits,
    /// The function has a `retract` method (needed over an updating input).
    pub has_retract: bool,
    /// The function has a `merge` method (needed to merge accumulators that were pickled).
    pub has_merge: bool,
}

/// A Python aggregate's accumulator in keyed state (see the module documentation).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct PyAcc {
    /// The accumulator pickled (empty: not created yet).
    state: Vec<u8>,
    /// Pickled accumulators to merge into it.
    merges: Vec<Vec<u8>>,
    /// Rows not given to Python yet: per row a byte (1: retract) and its arguments encoded.
    pending: Vec<u8>,
    /// How many rows `pending` holds.
    rows: u32,
    /// The value `get_value` last gave, encoded (empty: none yet, NULL).
    result: Vec<u8>,
}

impl PyAcc {
    /// Keeps `row`'s arguments for `spec`, to be accumulated (or with `retract`, retracted).
    /// Fails when the rows waiting would pass [`MAX_PENDING`] bytes (their length is kept in 32
    /// bits in a checkpoint).
    #[inline]
    pub fn push(&mut self, spec: &PyAggSpec, row: &Row, retract: bool) -> Result<()> {
        let at = self.pending.len();
        self.pending.push(u8::from(retract));
        for &c in &spec.args {
            let v = row.values.get(c).copied().unwrap_or(Value::Null);
            encode_value(&mut self.pending, v, &row.heap);
        }
        match self.rows.checked_add(1) {
            Some(n) if self.pending.len() <= MAX_PENDING => {
                self.rows = n;
                Ok(())
            }
            _ => {
                self.pending.truncate(at);
                Err(too_many_rows(Some(&spec.target.name)))
            }
        }
    }

    /// Takes in `other`: its rows join these; its pickled accumulator (if any) is merged by the
    /// function's `merge` when the group next goes to Python. Fails when the rows waiting
    /// would pass [`MAX_PENDING`] bytes.
    pub fn merge(&mut self, other: PyAcc) -> Result<()> {
        let rows = self
            .rows
            .checked_add(other.rows)
            .filter(|_| self.pending.len().saturating_add(other.pending.len()) <= MAX_PENDING)
            .filter(|_| self.merges.len().saturating_add(other.merges.len()) < u32::MAX as usize)
            .ok_or_else(|| too_many_rows(None))?;
        if self.state.is_empty() && self.merges.is_empty() {
            // its accumulator becomes this one, with the value it gives
            self.state = other.state;
            self.result = other.result;
        } else if !other.state.is_empty() {
            self.merges.push(other.state);
        }
        self.merges.extend(other.merges);
        self.pending.extend_from_slice(&other.pending);
        self.rows = rows;
        Ok(())
    }

    /// The value `get_value` last gave (NULL before the first); a string's bytes go to `heap`.
    pub fn value(&self, heap: &mut Vec<u8>) -> Value {
        match decode_value_ref(&self.result, &mut 0) {
            Some(Value::Str(s)) => {
                Value::Str(crate::agg::push_bytes(heap, heap_bytes(&self.result, s)))
            }
            Some(v) => v,
            None => Value::Null,
        }
    }

    /// True when it holds nothing: no accumulator, no rows.
    pub fn is_empty(&self) -> bool {
        self.state.is_empty() && self.merges.is_empty() && self.rows == 0
    }

    /// True when rows or merges wait for Python.
    pub fn is_pending(&self) -> bool {
        self.rows > 0 || !self.merges.is_empty()
    }

    /// True when its value is not known without Python: rows or merges wait, or no
    /// accumulator was made yet (`get_value` of a fresh one).
    pub fn needs_python(&self) -> bool {
        self.is_pending() || self.state.is_empty()
    }
}

impl StateValue for PyAcc {
    fn write(&self, out: &mut Vec<u8>) {
        let bytes = |out: &mut Vec<u8>, b: &[u8]| {
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        };
        bytes(out, &self.state);
        out.extend_from_slice(&(self.merges.len() as u32).to_le_bytes());
        for m in &self.merges {
            bytes(out, m);
        }
        bytes(out, &self.pending);
        out.extend_from_slice(&self.rows.to_le_bytes());
        bytes(out, &self.result);
    }

    fn read(input: &[u8], at: &mut usize) -> Result<Self> {
        let bytes = |at: &mut usize| -> Result<Vec<u8>> {
            let len = read_u32(input, at)? as usize;
            let b = input
                .get(*at..at.saturating_add(len))
                .ok_or_else(|| RuntimeError::State("corrupt Python accumulator".into()))?;
            *at += len;
            Ok(b.to_vec())
        };
        let state = bytes(at)?;
        let n = read_u32(input, at)? as usize;
        let mut merges = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            merges.push(bytes(at)?);
        }
        Ok(PyAcc {
            state,
            merges,
            pending: bytes(at)?,
            rows: read_u32(input, at)?,
            result: bytes(at)?,
        })
    }
}

/// Bytes of rows a Python accumulator keeps waiting for Python at most: their length is kept
/// in 32 bits in a checkpoint. (Small in tests.)
#[cfg(not(test))]
pub const MAX_PENDING: usize = u32::MAX as usize;
/// Bytes of rows a Python accumulator keeps waiting for Python at most (small in tests).
#[cfg(test)]
pub const MAX_PENDING: usize = 1 << 16;

/// The error for an accumulator whose waiting rows would pass [`MAX_PENDING`] bytes.
#[cold]
fn too_many_rows(name: Option<&str>) -> RuntimeError {
    let whose = name.map_or_else(
        || "a Python aggregate function's accumulator".to_owned(),
        |n| format!("the accumulator of Python aggregate function {n}"),
    );
    RuntimeError::Eval(format!(
        "{whose} would hold more than {} of rows not given to Python yet, more than a \
         checkpoint can keep (a SESSION window kept open by steady activity, whose function \
         has no merge method to take its rows early?)",
        if MAX_PENDING >= 1 << 30 {
            format!("{} GiB", (MAX_PENDING + 1) >> 30)
        } else {
            format!("{MAX_PENDING} bytes")
        }
    ))
}

/// One Python call's part of a request being built.
#[derive(Default)]
struct Part {
    /// Per group: its accumulator, merges and row count, as the request carries them.
    groups: Vec<u8>,
    /// Per row: 1 to retract it.
    signs: Vec<u8>,
    /// The rows' arguments, one row's after another's.
    args: Row,
    /// The answer: each group's accumulator pickled, and value.
    states: Vec<Vec<u8>>,
    values: Vec<Value>,
    heap: Vec<u8>,
}

/// The Python calls of an aggregate operator and their worker: groups are gathered
/// ([`PyAggs::add`]), sent in one request ([`PyAggs::run`]) and their answers written back
/// ([`PyAggs::answer`]).
pub struct PyAggs {
    env: PythonEnv,
    targets: Vec<PyTarget>,
    /// The operator's calls that are Python's: (index among the calls, its spec).
    calls: Vec<(usize, PyAggSpec)>,
    /// The types of the group keys (for messages).
    key_types: Vec<DataType>,
    worker: Option<Worker>,
    parts: Vec<Part>,
    /// The keys of the groups gathered (for messages).
    keys: Vec<Box<[u8]>>,
    request: Vec<u8>,
    column: Vec<Value>,
    text: String,
    /// The window the groups gathered belong to (for messages).
    window: Option<(i64, i64)>,
    /// The window of each group gathered, where they differ (SESSION windows; for messages).
    windows: Vec<(i64, i64)>,
    /// Bytes of accumulators and rows gathered for the next request.
    bytes: usize,
    /// A request closes when it holds this many bytes ([`SETTLE_BYTES`]; less in tests).
    budget: usize,
    /// Requests sent so far.
    requests: u64,
}

impl PyAggs {
    /// The Python calls among `calls` (None when there are none); `key_types` are the types of
    /// the operator's group keys, to name a group in an error.
    pub fn of(calls: &[AggCall], key_types: Vec<DataType>) -> Option<PyAggs> {
        let py: Vec<(usize, PyAggSpec)> = calls
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.python.as_ref().map(|p| (i, (**p).clone())))
            .collect();
        let first = py.first()?;
        let env = first.1.env.clone();
        let targets = py.iter().map(|(_, p)| p.target.clone()).collect();
        Some(PyAggs {
            env,
            targets,
            parts: py.iter().map(|_| Part::default()).collect(),
            calls: py,
            key_types,
            worker: None,
            keys: Vec::new(),
            request: Vec::new(),
            column: Vec::new(),
            text: String::new(),
            window: None,
            windows: Vec::new(),
            bytes: 0,
            budget: SETTLE_BYTES,
            requests: 0,
        })
    }

    /// The SQL names of the functions, for `describe`.
    pub fn names(&self) -> Vec<&str> {
        self.targets.iter().map(|t| t.name.as_str()).collect()
    }

    /// Groups gathered and not sent yet.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no group is gathered.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Gathers the group `key`'s Python accumulators among `accs` for the next request,
    /// taking their waiting rows; returns the group's number in it.
    pub fn add(&mut self, key: &[u8], accs: &mut [Acc]) -> Result<usize> {
        for ((ci, spec), part) in self.calls.iter().zip(&mut self.parts) {
            let Some(Acc::Python(acc)) = accs.get_mut(*ci) else {
                return Err(RuntimeError::State(format!(
                    "the accumulator of Python function {} is missing",
                    spec.target.name
                )));
            };
            if !acc.merges.is_empty() && !spec.has_merge {
                return Err(RuntimeError::Eval(format!(
                    "Python aggregate function {} ('{}') has no merge method, which it needs here (accumulators of one group are merged)",
                    spec.target.name, spec.target.target
                )));
            }
            self.bytes = self
                .bytes
                .saturating_add(acc.state.len() + acc.pending.len())
                .saturating_add(acc.merges.iter().map(Vec::len).sum::<usize>());
            let put = |out: &mut Vec<u8>, b: &[u8]| {
                out.extend_from_slice(&(b.len() as u32).to_le_bytes());
                out.extend_from_slice(b);
            };
            put(&mut part.groups, &acc.state);
            part.groups
                .extend_from_slice(&(acc.merges.len() as u32).to_le_bytes());
            for m in &acc.merges {
                put(&mut part.groups, m);
            }
            part.groups.extend_from_slice(&acc.rows.to_le_bytes());
            let mut at = 0;
            for _ in 0..acc.rows {
                let sign = acc.pending.get(at).copied().unwrap_or(0);
                part.signs.push(sign);
                at += 1;
                for _ in &spec.args {
                    decode_value_into(&acc.pending, &mut at, &mut part.args).ok_or_else(|| {
                        RuntimeError::State(format!(
                            "corrupt rows in the accumulator of Python function {}",
                            spec.target.name
                        ))
                    })?;
                }
            }
            acc.merges.clear();
            acc.pending.clear();
            acc.rows = 0;
        }
        self.keys.push(key.into());
        Ok(self.keys.len() - 1)
    }

    /// Sends the groups gathered to the worker in one request and keeps the answers;
    /// `keep`: the accumulators are wanted back (the operator keeps the groups).
    pub fn run(&mut self, keep: bool) -> Result<()> {
        let g = self.keys.len();
        if g == 0 {
            return Ok(());
        }
        self.request.clear();
        self.request
            .extend_from_slice(&(self.calls.len() as u16).to_le_bytes());
        for (k, ((_, spec), part)) in self.calls.iter().zip(&self.parts).enumerate() {
            self.request.extend_from_slice(&(k as u16).to_le_bytes());
            self.request
                .extend_from_slice(&(spec.args.len() as u16).to_le_bytes());
            self.request.push(u8::from(keep));
            self.request.extend_from_slice(&(g as u32).to_le_bytes());
            self.request.extend_from_slice(&part.groups);
            let n = part.signs.len();
            self.request.extend_from_slice(&(n as u32).to_le_bytes());
            self.request.extend_from_slice(&part.signs);
            let width = spec.args.len();
            for (j, ty) in spec.arg_types.iter().enumerate() {
                self.column.clear();
                self.column
                    .extend(part.args.values.iter().skip(j).step_by(width.max(1)));
                codec::write_values(
                    &mut self.request,
                    *ty,
                    &self.column,
                    &part.args.heap,
                    &mut self.text,
                );
            }
        }
        if self.worker.is_none() {
            self.worker = Some(Worker::start(&self.env, &self.targets, true)?.0);
        }
        let Some(worker) = self.worker.as_mut() else {
            return Err(RuntimeError::Eval("no Python worker".into()));
        };
        self.requests += 1;
        let answer = match worker.request(b'A', &self.request) {
            Ok(a) => a,
            Err(CallError::Failed(f)) => {
                let group = usize::try_from(f.row)
                    .ok()
                    .and_then(|i| self.keys.get(i))
                    .map(|k| {
                        let mut s = show_key(k, &self.key_types);
                        let i = usize::try_from(f.row).unwrap_or(usize::MAX);
                        if let Some((start, end)) = self.windows.get(i).copied().or(self.window) {
                            s.push_str(&format!(
                                " of the window [{}, {})",
                                crate::late::ts_text(start),
                                crate::late::ts_text(end)
                            ));
                        }
                        s
                    });
                return Err(failure_error_at(
                    &f,
                    "for the group by key",
                    group.as_deref(),
                ));
            }
            Err(CallError::TooLarge(why)) => {
                self.worker = None;
                return Err(RuntimeError::Eval(format!(
                    "Python aggregate function {} failed: {why} (for {g} groups; a group's \
                     accumulator, pickled, or value is too large)",
                    self.names().join(", ")
                )));
            }
            Err(CallError::Lost(why)) => {
                return Err(RuntimeError::Eval(format!(
                    "the Python worker of {} ({}) failed: {why}",
                    self.names().join(", "),
                    super::short(&self.env.executable)
                )))
            }
        };
        let mut r = Reader::new(answer);
        for ((_, spec), part) in self.calls.iter().zip(&mut self.parts) {
            let at = |e: String| (usize::MAX, e);
            let read = (|| -> std::result::Result<(), codec::BadValue> {
                part.states.clear();
                if keep {
                    for _ in 0..g {
                        let len = r.u32().map_err(at)? as usize;
                        part.states.push(r.take(len).map_err(at)?.to_vec());
                    }
                }
                let ty = spec
                    .target
                    .results
                    .first()
                    .copied()
                    .unwrap_or(DataType::String(None));
                codec::read_column(&mut r, g, ty, &mut part.values, &mut part.heap)
            })();
            if let Err((i, why)) = read {
                let mut msg = format!("Python function {} {why}", spec.target.name);
                if let Some(k) = self.keys.get(i) {
                    msg.push_str(&format!(
                        "\n  for the group {}",
                        super::short(&show_key(k, &self.key_types))
                    ));
                }
                return Err(RuntimeError::Eval(msg));
            }
        }
        if !r.done() {
            return Err(RuntimeError::Eval(format!(
                "the Python worker of {} answered more than was asked",
                self.names().join(", ")
            )));
        }
        Ok(())
    }

    /// Writes the answers for group `i` of the last request into its accumulators `accs`.
    pub fn answer(&mut self, i: usize, accs: &mut [Acc]) {
        for ((ci, _), part) in self.calls.iter().zip(&mut self.parts) {
            if let Some(Acc::Python(acc)) = accs.get_mut(*ci) {
                if let Some(st) = part.states.get_mut(i) {
                    acc.state = std::mem::take(st);
                }
                acc.result.clear();
                let v = part.values.get(i).copied().unwrap_or(Value::Null);
                encode_value(&mut acc.result, v, &part.heap);
            }
        }
    }

    /// Forgets the last request (its groups and answers), keeping the buffers.
    pub fn clear(&mut self) {
        self.keys.clear();
        self.windows.clear();
        self.bytes = 0;
        for p in &mut self.parts {
            p.groups.clear();
            p.signs.clear();
            p.args.clear();
            p.states.clear();
        }
    }

    /// The bundle limits of the calls (a group aggregate's bundles).
    pub fn limits(&self) -> BundleLimits {
        self.calls
            .first()
            .map_or(crate::ops::python::DEFAULT_LIMITS, |(_, s)| s.limits)
    }

    /// Sets the window of the groups settled next (None: not one window), for messages.
    pub fn set_window(&mut self, window: Option<(i64, i64)>) {
        self.window = window;
    }

    /// Sets the window of the group gathered last (of groups of different windows: SESSION
    /// windows), for messages.
    pub fn set_group_window(&mut self, window: (i64, i64)) {
        self.windows
            .resize(self.keys.len().saturating_sub(1), window);
        self.windows.push(window);
    }

    /// True when the groups gathered make a request: [`SETTLE_GROUPS`] of them, or
    /// [`SETTLE_BYTES`] of accumulators and rows.
    pub fn full(&self) -> bool {
        self.keys.len() >= SETTLE_GROUPS || self.bytes >= self.budget
    }

    /// Requests sent to the worker so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Sets the bytes a request closes at (tests).
    #[cfg(test)]
    pub(crate) fn set_budget(&mut self, bytes: usize) {
        self.budget = bytes;
    }

    /// Whether rows or merges of a group's Python accumulators wait for Python.
    pub fn is_pending(&self, accs: &[Acc]) -> bool {
        self.calls.iter().any(|(ci, _)| match accs.get(*ci) {
            Some(Acc::Python(p)) => p.is_pending(),
            _ => false,
        })
    }

    /// Sets the types of the group keys (to name a group in an error).
    pub fn set_key_types(&mut self, types: Vec<DataType>) {
        self.key_types = types;
    }

    /// Whether a group's accumulators need Python for their values.
    pub fn needs_python(&self, accs: &[Acc]) -> bool {
        self.calls.iter().any(|(ci, _)| match accs.get(*ci) {
            Some(Acc::Python(p)) => p.needs_python(),
            _ => false,
        })
    }

    /// Settles the groups of `state` at `keys` (when None: every group that needs Python,
    /// found by reading the state, not writing it) that need Python, keeping their
    /// accumulators; a request closes at [`SETTLE_GROUPS`] groups or [`SETTLE_BYTES`] bytes.
    /// Only the groups settled are written.
    pub fn settle_state<S: GroupAccs>(
        &mut self,
        state: &mut S,
        keys: Option<&[Box<[u8]>]>,
    ) -> Result<()> {
        let found;
        let keys = match keys {
            Some(k) => k,
            None => {
                found = state.keys_where(&|accs| self.needs_python(accs));
                &found
            }
        };
        self.clear();
        let mut added: Vec<(&[u8], usize)> = Vec::new();
        for k in keys {
            if let Some(accs) = state.accs_mut(k) {
                if self.needs_python(accs) {
                    added.push((k, self.add(k, accs)?));
                }
            }
            if self.full() {
                self.answer_state(state, &mut added)?;
            }
        }
        self.answer_state(state, &mut added)
    }

    /// Sends the groups of `state` gathered (`added`: each key and its number in the request)
    /// and writes back their answers.
    fn answer_state<S: GroupAccs>(
        &mut self,
        state: &mut S,
        added: &mut Vec<(&[u8], usize)>,
    ) -> Result<()> {
        if added.is_empty() {
            self.clear();
            return Ok(());
        }
        self.run(true)?;
        for &(k, i) in added.iter() {
            if let Some(accs) = state.accs_mut(k) {
                self.answer(i, accs);
            }
        }
        added.clear();
        self.clear();
        Ok(())
    }

    /// Settles groups that are being emitted and then dropped (a fired window's): each Python
    /// accumulator's rows given to Python and its value computed; the accumulators are spent,
    /// only their values remain. A request closes at [`SETTLE_GROUPS`] groups or
    /// [`SETTLE_BYTES`] bytes. `bounds`: each group's window, where they differ (for messages).
    pub fn settle_all(
        &mut self,
        groups: &mut [(Box<[u8]>, Vec<Acc>)],
        bounds: Option<&[(i64, i64)]>,
    ) -> Result<()> {
        self.clear();
        let mut from = 0;
        let n = groups.len();
        for i in 0..n {
            if let Some((key, accs)) = groups.get_mut(i) {
                self.add(key, accs)?;
            }
            if let Some(&w) = bounds.and_then(|b| b.get(i)) {
                self.set_group_window(w);
            }
            if self.full() || i + 1 == n {
                self.run(false)?;
                for (j, (_, accs)) in groups[from..=i].iter_mut().enumerate() {
                    self.answer(j, accs);
                }
                self.clear();
                from = i + 1;
            }
        }
        Ok(())
    }
}

/// Bytes of accumulators and waiting rows sent to Python in one request at most (a request
/// closes at the group that reaches it), so that an answer stays well under the largest frame
/// a worker may send.
pub const SETTLE_BYTES: usize = 64 << 20;

/// Groups sent to Python in one request at most (a window of many groups goes in several).
pub const SETTLE_GROUPS: usize = 4096;

/// Keyed state whose values hold a group's accumulators.
pub trait GroupAccs {
    /// The accumulators of the group `key`.
    fn accs_mut(&mut self, key: &[u8]) -> Option<&mut [Acc]>;
    /// The keys of the groups whose accumulators `want` picks, read without writing them.
    fn keys_where(&self, want: &dyn Fn(&[Acc]) -> bool) -> Vec<Box<[u8]>>;
}

impl GroupAccs for KeyedState<Vec<Acc>> {
    fn accs_mut(&mut self, key: &[u8]) -> Option<&mut [Acc]> {
        self.get_mut(key).map(Vec::as_mut_slice)
    }
    fn keys_where(&self, want: &dyn Fn(&[Acc]) -> bool) -> Vec<Box<[u8]>> {
        self.iter()
            .filter(|(_, accs)| want(accs))
            .map(|(k, _)| Box::from(&*k))
            .collect()
    }
}

/// A group key as `(v1, v2, …)` for messages.
fn show_key(key: &[u8], types: &[DataType]) -> String {
    let mut row = Row::default();
    if decode_key_into(key, &mut row).is_none() {
        return "(?)".into();
    }
    crate::ops::python::show_row(&row, types)
}

/// Python aggregate calls for the operators' tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A call of a Python SUM (with retract) over input column `arg` (BIGINT; NULL over no values) whose
    /// module is written to `dir`; `merge`: it has a merge method; `bundle`: the bundle size.
    pub fn py_sum(dir: &std::path::Path, arg: usize, merge: bool, bundle: usize) -> AggCall {
        let mut text = String::from(
            "class S:\n\
             \x20   result_type = 'BIGINT'\n\
             \x20   def create_accumulator(self):\n        return [0, 0]\n\
             \x20   def accumulate(self, acc, x):\n\
             \x20       if x is not None:\n            acc[0] += x\n            acc[1] += 1\n\
             \x20   def retract(self, acc, x):\n\
             \x20       if x is not None:\n            acc[0] -= x\n            acc[1] -= 1\n\
             \x20   def get_value(self, acc):\n        return acc[0] if acc[1] else None\n",
        );
        if merge {
            text.push_str(
                "    def merge(self, acc, accs):\n\
                 \x20       for a in accs:\n            acc[0] += a[0]\n            acc[1] += a[1]\n",
            );
        }
        let module = if merge { "summ" } else { "sum0" };
        std::fs::write(dir.join(format!("{module}.py")), text).expect("module");
        AggCall::python(PyAggSpec {
            target: PyTarget {
                name: module.into(),
                target: format!("{module}.S"),
                kind: super::super::PyKind::Aggregate,
                results: vec![DataType::BigInt],
            },
            env: PythonEnv {
                paths: vec![dir.to_string_lossy().into_owned()],
                ..PythonEnv::default()
            },
            args: vec![arg],
            arg_types: vec![DataType::BigInt],
            limits: BundleLimits {
                size: bundle,
                time_us: 1_000_000,
            },
            has_retract: true,
            has_merge: merge,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> PyAggSpec {
        PyAggSpec {
            target: PyTarget {
                name: "wavg".into(),
                target: "m.wavg".into(),
                kind: super::super::PyKind::Aggregate,
                results: vec![DataType::Double],
            },
            env: PythonEnv::default(),
            args: vec![1, 0],
            arg_types: vec![DataType::String(None), DataType::BigInt],
            limits: crate::ops::python::DEFAULT_LIMITS,
            has_retract: true,
            has_merge: false,
        }
    }

    /// Rows kept in an accumulator survive its serialization, and merging joins rows (and
    /// keeps a pickled accumulator to merge) without losing any.
    #[test]
    fn pending_rows_round_trip_and_merge() {
        let s = spec();
        let mut a = PyAcc::default();
        let mut row = Row::default();
        let x = row.intern("süß");
        row.values = vec![Value::Int(7), Value::Str(x)];
        a.push(&s, &row, false).expect("push");
        a.push(&s, &row, true).expect("push");
        let mut bytes = Vec::new();
        a.write(&mut bytes);
        let back = PyAcc::read(&bytes, &mut 0).expect("read");
        assert_eq!(back, a);
        assert_eq!(back.rows, 2);
        let mut b = PyAcc {
            state: b"pickled".to_vec(),
            ..PyAcc::default()
        };
        b.merge(back.clone()).expect("merge");
        let mut c = PyAcc {
            state: b"other".to_vec(),
            ..PyAcc::default()
        };
        c.push(&s, &row, false).expect("push");
        b.merge(c).expect("merge");
        assert_eq!(b.state, b"pickled");
        assert_eq!(b.merges, vec![b"other".to_vec()]);
        assert_eq!(b.rows, 3);
        assert!(b.is_pending());
        // the rows decode as the request carries them: sign, then each argument
        let mut accs = vec![Acc::Python(Box::new(b))];
        // a function without merge is refused, naming it, where accumulators were merged
        let call = AggCall::python(s.clone());
        let mut py = PyAggs::of(std::slice::from_ref(&call), vec![DataType::BigInt]).expect("py");
        let err = py.add(&[], &mut accs.clone()).expect_err("no merge");
        assert!(err
            .to_string()
            .contains("wavg ('m.wavg') has no merge method"));
        let call = AggCall::python(PyAggSpec {
            has_merge: true,
            ..s
        });
        let mut py = PyAggs::of(std::slice::from_ref(&call), vec![DataType::BigInt]).expect("py");
        py.add(&[], &mut accs).expect("add");
        assert_eq!(py.parts[0].signs, [0, 1, 0]);
        let mut heap = Vec::new();
        let text = |v: Value, heap: &[u8]| match v {
            Value::Str(s) => String::from_utf8_lossy(heap_bytes(heap, s)).into_owned(),
            other => format!("{other:?}"),
        };
        assert_eq!(py.parts[0].args.values.len(), 6);
        heap.clone_from(&py.parts[0].args.heap);
        assert_eq!(text(py.parts[0].args.values[4], &heap), "süß");
        assert_eq!(py.parts[0].args.values[5], Value::Int(7));
        let Acc::Python(left) = &accs[0] else {
            panic!("not Python")
        };
        assert!(!left.is_pending(), "the rows went into the request");
    }

    /// The `A` frame through a real worker: two groups' rows (strings, NULLs, a retraction)
    /// give Python's values; the pickled accumulators come back and carry on in the next
    /// request; a failure names the group's key.
    #[test]
    fn groups_go_to_the_worker_and_their_accumulators_come_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("aggmod.py"),
            "class Joined:\n\
             \x20   result_type = 'STRING'\n\
             \x20   def create_accumulator(self):\n        return []\n\
             \x20   def accumulate(self, acc, s, n):\n\
             \x20       if n == 13:\n            raise KeyError('thirteen')\n\
             \x20       acc.append('%s*%s' % (s, n))\n\
             \x20   def retract(self, acc, s, n):\n        acc.remove('%s*%s' % (s, n))\n\
             \x20   def get_value(self, acc):\n        return '|'.join(acc)\n",
        )
        .expect("module");
        let spec = PyAggSpec {
            target: PyTarget {
                name: "joined".into(),
                target: "aggmod.Joined".into(),
                kind: super::super::PyKind::Aggregate,
                results: vec![DataType::String(None)],
            },
            env: PythonEnv {
                paths: vec![dir.path().to_string_lossy().into_owned()],
                ..PythonEnv::default()
            },
            args: vec![0, 1],
            arg_types: vec![DataType::String(None), DataType::BigInt],
            limits: crate::ops::python::DEFAULT_LIMITS,
            has_retract: true,
            has_merge: false,
        };
        let call = AggCall::python(spec.clone());
        let calls = std::slice::from_ref(&call);
        let mut py = PyAggs::of(calls, vec![DataType::BigInt]).expect("py");
        let row = |s: Option<&str>, n: i64| {
            let mut r = Row::default();
            let v = s.map_or(Value::Null, |s| Value::Str(r.intern(s)));
            r.values = vec![v, Value::Int(n)];
            r
        };
        let mut ab = [crate::agg::new_accs(calls), crate::agg::new_accs(calls)];
        let mut scratch = Vec::new();
        for (g, r, retract) in [
            (0, row(Some("süß"), 1), false),
            (0, row(None, 2), false),
            (1, row(Some("x"), 3), false),
            (0, row(Some("süß"), 1), true),
        ] {
            crate::agg::update_all(&mut ab[g], calls, &r, retract, &mut scratch).expect("update");
        }
        let [a, b] = ab;
        let (ka, kb) = (encode(1), encode(2));
        let mut groups = vec![(ka.clone(), a), (kb.clone(), b)];
        // emitted and dropped (a fired window's groups): values only
        let mut fired = groups.clone();
        py.settle_all(&mut fired, None).expect("settle");
        let value = |accs: &[Acc]| {
            let mut heap = Vec::new();
            match accs[0].value(&call, &mut heap) {
                Value::Str(s) => String::from_utf8_lossy(heap_bytes(&heap, s)).into_owned(),
                other => format!("{other:?}"),
            }
        };
        assert_eq!(value(&fired[0].1), "None*2");
        assert_eq!(value(&fired[1].1), "x*3");
        // kept: the accumulator comes back pickled and takes more rows in the next request
        let mut state: KeyedState<Vec<Acc>> = KeyedState::default();
        for (k, accs) in groups.drain(..) {
            state.insert_absent(&k, accs);
        }
        py.settle_state(&mut state, None).expect("settle");
        assert_eq!(value(state.get_mut(&ka).expect("a")), "None*2");
        if let Some(accs) = state.get_mut(&ka) {
            crate::agg::update_all(accs, calls, &row(Some("y"), 4), false, &mut scratch)
                .expect("update");
        }
        py.settle_state(&mut state, None).expect("settle");
        assert_eq!(value(state.get_mut(&ka).expect("a")), "None*2|y*4");
        py.settle_state(&mut state, None).expect("settle");
        assert_eq!(value(state.get_mut(&kb).expect("b")), "x*3");
        if let Some(accs) = state.get_mut(&kb) {
            crate::agg::update_all(accs, calls, &row(Some("z"), 13), false, &mut scratch)
                .expect("update");
        }
        let err = py.settle_state(&mut state, None).expect_err("thirteen");
        let msg = err.to_string();
        for want in [
            "Python function joined failed: accumulate(acc, 'z', 13): KeyError",
            "for the group by key (2)",
            "raise KeyError",
        ] {
            assert!(msg.contains(want), "`{want}` missing from {msg}");
        }
    }

    fn encode(k: i64) -> Box<[u8]> {
        let mut key = Vec::new();
        encode_value(&mut key, Value::Int(k), &[]);
        key.into()
    }

    /// A fresh accumulator that takes in a settled one (a CUMULATE period's first step) takes its
    /// value too: it needs no Python until rows come.
    #[test]
    fn taking_in_a_settled_accumulator_keeps_its_value() {
        let mut settled = PyAcc {
            state: b"pickled".to_vec(),
            ..PyAcc::default()
        };
        encode_value(&mut settled.result, Value::Int(139), &[]);
        let mut fresh = PyAcc::default();
        assert!(fresh.needs_python());
        fresh.merge(settled).expect("merge");
        assert!(!fresh.needs_python());
        assert_eq!(fresh.value(&mut Vec::new()), Value::Int(139));
        fresh.push(&spec(), &Row::default(), false).expect("push");
        assert!(fresh.needs_python());
    }

    /// Rows waiting past [`MAX_PENDING`] bytes (a checkpoint keeps their length in 32 bits)
    /// fail clearly, naming the function, when pushed or merged; the accumulator stays whole.
    #[test]
    fn waiting_rows_past_the_limit_fail_clearly() {
        let s = spec();
        let mut row = Row::default();
        let x = row.intern("0123456789abcdef0123456789abcdef");
        row.values = vec![Value::Int(7), Value::Str(x)];
        let mut a = PyAcc::default();
        let mut pushed = 0;
        let err = loop {
            match a.push(&s, &row, false) {
                Ok(()) => pushed += 1,
                Err(e) => break e,
            }
            assert!(pushed < 10_000, "no limit");
        };
        assert!(err
            .to_string()
            .contains("Python aggregate function wavg would hold more"));
        assert!(pushed > 10, "{pushed}");
        assert_eq!(a.rows, pushed, "the refused row is not kept");
        let mut bytes = Vec::new();
        a.write(&mut bytes);
        assert_eq!(PyAcc::read(&bytes, &mut 0).expect("read"), a);
        let mut b = PyAcc::default();
        for _ in 0..pushed / 2 + 1 {
            b.push(&s, &row, false).expect("push");
        }
        let before = b.clone();
        let mut c = PyAcc::default();
        for _ in 0..pushed / 2 + 1 {
            c.push(&s, &row, false).expect("push");
        }
        let err = b.merge(c).expect_err("too many rows");
        assert!(err.to_string().contains("would hold more than"), "{err}");
        assert_eq!(
            b, before,
            "a refused merge leaves the accumulator as it was"
        );
    }

    /// A result is kept encoded, and read back with its string in the caller's heap.
    #[test]
    fn a_result_string_is_copied_to_the_heap() {
        let mut a = PyAcc::default();
        assert_eq!(a.value(&mut Vec::new()), Value::Null);
        let mut row = Row::default();
        let s = row.intern("top: a, b");
        encode_value(&mut a.result, Value::Str(s), &row.heap);
        let mut heap = b"xx".to_vec();
        let Value::Str(r) = a.value(&mut heap) else {
            panic!("not a string")
        };
        assert_eq!(heap_bytes(&heap, r), b"top: a, b");
    }

    /// A call of `module.Class` (written to `dir` with `text`), of one BIGINT argument (input
    /// column 0) and a result of type `result`.
    fn call_of(dir: &std::path::Path, module: &str, text: &str, result: DataType) -> AggCall {
        std::fs::write(dir.join(format!("{module}.py")), text).expect("module");
        AggCall::python(PyAggSpec {
            target: PyTarget {
                name: module.into(),
                target: format!("{module}.F"),
                kind: super::super::PyKind::Aggregate,
                results: vec![result],
            },
            env: PythonEnv {
                paths: vec![dir.to_string_lossy().into_owned()],
                ..PythonEnv::default()
            },
            args: vec![0],
            arg_types: vec![DataType::BigInt],
            limits: crate::ops::python::DEFAULT_LIMITS,
            has_retract: false,
            has_merge: false,
        })
    }

    /// Groups of `rows` rows each (values 1..=rows), keyed 0..n, for `call`.
    fn groups_of(call: &AggCall, n: i64, rows: i64) -> Vec<(Box<[u8]>, Vec<Acc>)> {
        let calls = std::slice::from_ref(call);
        let mut scratch = Vec::new();
        (0..n)
            .map(|k| {
                let mut accs = crate::agg::new_accs(calls);
                for v in 1..=rows {
                    let row = Row {
                        values: vec![Value::Int(v)],
                        ..Row::default()
                    };
                    crate::agg::update_all(&mut accs, calls, &row, false, &mut scratch)
                        .expect("update");
                }
                (encode(k), accs)
            })
            .collect()
    }

    /// A request closes at the byte budget as well as at SETTLE_GROUPS groups, for groups
    /// fired (values only) and kept (accumulators back), and the values are the same.
    #[test]
    fn requests_close_at_the_byte_budget() {
        let dir = tempfile::tempdir().expect("tempdir");
        let call = testing::py_sum(dir.path(), 0, false, 1000);
        let mut py = PyAggs::of(std::slice::from_ref(&call), vec![DataType::BigInt]).expect("py");
        let sum = |accs: &[Acc]| accs[0].value(&call, &mut Vec::new());
        // 20 groups of 10 rows (about 100 bytes each): one request without a budget
        let mut fired = groups_of(&call, 20, 10);
        py.settle_all(&mut fired, None).expect("settle");
        assert_eq!(py.requests(), 1);
        assert!(fired.iter().all(|(_, a)| sum(a) == Value::Int(55)));
        // at 250 bytes a request: three groups each
        py.set_budget(250);
        let mut fired = groups_of(&call, 20, 10);
        py.settle_all(&mut fired, None).expect("settle");
        assert_eq!(py.requests(), 1 + 7);
        assert!(fired.iter().all(|(_, a)| sum(a) == Value::Int(55)));
        let mut state: KeyedState<Vec<Acc>> = KeyedState::default();
        for (k, accs) in groups_of(&call, 20, 10) {
            state.insert_absent(&k, accs);
        }
        py.settle_state(&mut state, None).expect("settle");
        assert_eq!(py.requests(), 8 + 7);
        for (_, accs) in state.iter() {
            assert_eq!(sum(&accs), Value::Int(55));
            assert!(!py.needs_python(&accs));
        }
    }

    /// An answer larger than a worker may send is the function's clear failure, not a worker
    /// lost (started again, failing the same way, and the job ending "died twice").
    #[test]
    fn an_answer_larger_than_a_frame_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let call = call_of(
            dir.path(),
            "big",
            "class F:\n\
             \x20   result_type = 'STRING'\n\
             \x20   def create_accumulator(self):\n        return [0]\n\
             \x20   def accumulate(self, acc, x):\n        acc[0] += 1\n\
             \x20   def get_value(self, acc):\n        return 'x' * (600 * 1024)\n",
            DataType::String(None),
        );
        let mut py = PyAggs::of(std::slice::from_ref(&call), vec![DataType::BigInt]).expect("py");
        // one group's value fits
        let mut one = groups_of(&call, 1, 2);
        py.settle_all(&mut one, None).expect("one fits");
        let mut fired = groups_of(&call, 3, 2);
        let err = py.settle_all(&mut fired, None).expect_err("too large");
        let msg = err.to_string();
        for want in [
            "Python function big failed",
            "is larger than a worker may send (1 MiB)",
        ] {
            assert!(msg.contains(want), "`{want}` missing from {msg}");
        }
        for not in ["once more", "exited", "worker of"] {
            assert!(!msg.contains(not), "`{not}` in {msg}");
        }
    }

    /// An accumulator that cannot be pickled fails at the first request, naming the function,
    /// even where nothing would be pickled yet (a window fired without an early hand-off).
    #[test]
    fn an_accumulator_that_cannot_be_pickled_fails_at_the_first_request() {
        let dir = tempfile::tempdir().expect("tempdir");
        let call = call_of(
            dir.path(),
            "unpicklable",
            "class F:\n\
             \x20   result_type = 'BIGINT'\n\
             \x20   def create_accumulator(self):\n        return [0, lambda: 0]\n\
             \x20   def accumulate(self, acc, x):\n        acc[0] += x\n\
             \x20   def get_value(self, acc):\n        return acc[0]\n",
            DataType::BigInt,
        );
        let mut py = PyAggs::of(std::slice::from_ref(&call), vec![DataType::BigInt]).expect("py");
        let mut fired = groups_of(&call, 2, 3);
        let err = py.settle_all(&mut fired, None).expect_err("not picklable");
        let msg = err.to_string();
        for want in [
            "Python function unpicklable could not be loaded",
            "the accumulator of unpicklable.F cannot be pickled",
            "create_accumulator() gave list",
        ] {
            assert!(msg.contains(want), "`{want}` missing from {msg}");
        }
    }
}
