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
    #[inline]
    pub fn push(&mut self, spec: &PyAggSpec, row: &Row, retract: bool) {
        self.pending.push(u8::from(retract));
        for &c in &spec.args {
            let v = row.values.get(c).copied().unwrap_or(Value::Null);
            encode_value(&mut self.pending, v, &row.heap);
        }
        self.rows += 1;
    }

    /// Takes in `other`: its rows join these; its pickled accumulator (if any) is merged by the
    /// function's `merge` when the group next goes to Python.
    pub fn merge(&mut self, other: PyAcc) {
        if self.state.is_empty() && self.merges.is_empty() {
            // its accumulator becomes this one, with the value it gives
            self.state = other.state;
            self.result = other.result;
        } else if !other.state.is_empty() {
            self.merges.push(other.state);
        }
        self.merges.extend(other.merges);
        self.pending.extend_from_slice(&other.pending);
        self.rows += other.rows;
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
        let answer = match worker.request(b'A', &self.request) {
            Ok(a) => a,
            Err(CallError::Failed(f)) => {
                let group = usize::try_from(f.row)
                    .ok()
                    .and_then(|i| self.keys.get(i))
                    .map(|k| {
                        let mut s = show_key(k, &self.key_types);
                        if let Some((start, end)) = self.window {
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

    /// Settles the groups of `state` at `keys` (all of them when None) that need Python,
    /// [`SETTLE_GROUPS`] groups a request, keeping their accumulators.
    pub fn settle_state<S: GroupAccs>(
        &mut self,
        state: &mut S,
        keys: Option<&[Box<[u8]>]>,
    ) -> Result<()> {
        let all;
        let keys = match keys {
            Some(k) => k,
            None => {
                all = state.keys();
                &all
            }
        };
        let mut wanted: Vec<&[u8]> = Vec::new();
        for k in keys {
            if state.accs_mut(k).is_some_and(|a| self.needs_python(a)) {
                wanted.push(k);
            }
        }
        let mut added: Vec<(&[u8], usize)> = Vec::new();
        for chunk in wanted.chunks(SETTLE_GROUPS) {
            self.clear();
            added.clear();
            for &k in chunk {
                if let Some(accs) = state.accs_mut(k) {
                    added.push((k, self.add(k, accs)?));
                }
            }
            self.run(true)?;
            for &(k, i) in &added {
                if let Some(accs) = state.accs_mut(k) {
                    self.answer(i, accs);
                }
            }
            self.clear();
        }
        Ok(())
    }

    /// Settles `groups` (each a key and its accumulators) in one request: each Python
    /// accumulator's rows given to Python and its value computed; `keep`: accumulators are
    /// pickled back (the groups live on). Without `keep` the accumulators are spent: only their
    /// values remain, for groups emitted and dropped.
    pub fn settle<'a>(
        &mut self,
        groups: impl IntoIterator<Item = (&'a [u8], &'a mut Vec<Acc>)>,
        keep: bool,
    ) -> Result<()> {
        self.clear();
        let mut held = Vec::new();
        for (key, accs) in groups {
            self.add(key, accs)?;
            held.push(accs);
        }
        self.run(keep)?;
        for (i, accs) in held.into_iter().enumerate() {
            self.answer(i, accs);
        }
        self.clear();
        Ok(())
    }

    /// Settles groups that are being emitted and then dropped (a fired window's), at most
    /// [`SETTLE_GROUPS`] a request.
    pub fn settle_all(&mut self, groups: &mut [(Box<[u8]>, Vec<Acc>)]) -> Result<()> {
        for chunk in groups.chunks_mut(SETTLE_GROUPS) {
            self.settle(chunk.iter_mut().map(|(k, a)| (&**k, a)), false)?;
        }
        Ok(())
    }
}

/// Groups sent to Python in one request at most (a window of many groups goes in several).
pub const SETTLE_GROUPS: usize = 4096;

/// Keyed state whose values hold a group's accumulators.
pub trait GroupAccs {
    /// The accumulators of the group `key`.
    fn accs_mut(&mut self, key: &[u8]) -> Option<&mut [Acc]>;
    /// Every key.
    fn keys(&self) -> Vec<Box<[u8]>>;
}

impl GroupAccs for KeyedState<Vec<Acc>> {
    fn accs_mut(&mut self, key: &[u8]) -> Option<&mut [Acc]> {
        self.get_mut(key).map(Vec::as_mut_slice)
    }
    fn keys(&self) -> Vec<Box<[u8]>> {
        self.iter().map(|(k, _)| Box::from(&*k)).collect()
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
        a.push(&s, &row, false);
        a.push(&s, &row, true);
        let mut bytes = Vec::new();
        a.write(&mut bytes);
        let back = PyAcc::read(&bytes, &mut 0).expect("read");
        assert_eq!(back, a);
        assert_eq!(back.rows, 2);
        let mut b = PyAcc {
            state: b"pickled".to_vec(),
            ..PyAcc::default()
        };
        b.merge(back.clone());
        let mut c = PyAcc {
            state: b"other".to_vec(),
            ..PyAcc::default()
        };
        c.push(&s, &row, false);
        b.merge(c);
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
        py.settle_all(&mut fired).expect("settle");
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
        fresh.merge(settled);
        assert!(!fresh.needs_python());
        assert_eq!(fresh.value(&mut Vec::new()), Value::Int(139));
        fresh.push(&spec(), &Row::default(), false);
        assert!(fresh.needs_python());
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
}
