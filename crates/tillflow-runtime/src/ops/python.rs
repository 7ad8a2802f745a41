//! Python functions in a query: Flink's `PythonCalc` (scalar functions, whose results are
//! appended to each row as new columns for the Calc above to use) and `PythonCorrelate` (a
//! table function's rows joined with the row that made them, `LATERAL TABLE(f(…))`).
//!
//! Rows are gathered into bundles, as Flink's Python operators do: a bundle goes to the
//! operator's worker process ([`crate::python`]) when it holds `python.fn-execution.bundle.size`
//! rows, when its first row has waited `python.fn-execution.bundle.time`, before every
//! checkpoint barrier and at the end of the input. A watermark that arrives while a bundle is
//! open is held back until the bundle's rows have gone out (Flink's choice too: no row is
//! overtaken by a watermark, and bundles are not cut at every watermark). Rows leave in the
//! order they came, each with the answers for it. The bundle is empty whenever a checkpoint is
//! taken, so the operator has no state of its own.

use crate::cast::write_text;
use crate::error::{Result, RuntimeError};
use crate::expr::Expr;
use crate::operator::{Emit, Operator, OperatorMetrics};
use crate::python::codec::{self, Reader, Scratch};
use crate::python::{failure_error, CallError, PyTarget, PythonEnv, Worker};
use std::time::Instant;
use tillflow_types::{DataType, Row, Value};

/// A call of a Python function: which of the operator's functions, its arguments (over the
/// input row) and its result types (one for a scalar function).
#[derive(Clone, Debug)]
pub struct PyCall {
    /// Index into the operator's functions.
    pub function: usize,
    /// Arguments, evaluated over the input row.
    pub args: Vec<Expr>,
    /// Result types.
    pub results: Vec<DataType>,
}

/// When a bundle goes to the worker: Flink's `python.fn-execution.bundle.size` and
/// `python.fn-execution.bundle.time`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BundleLimits {
    /// Rows.
    pub size: usize,
    /// Microseconds the first row may wait.
    pub time_us: i64,
}

/// Flink's defaults: bundles of at most 100,000 rows, sent after at most 1 s.
pub const DEFAULT_LIMITS: BundleLimits = BundleLimits {
    size: 100_000,
    time_us: 1_000_000,
};

/// What the two operators share: the worker, the gathered rows and the buffers of a round
/// trip.
struct Bundles {
    env: PythonEnv,
    targets: Vec<PyTarget>,
    /// Input column types (to show a row in an error).
    input: Vec<DataType>,
    worker: Option<Worker>,
    limits: BundleLimits,
    rows: Vec<Row>,
    n: usize,
    first_at: Option<Instant>,
    /// The latest watermark that came while the bundle was open, passed on after it.
    held: Option<i64>,
    request: Vec<u8>,
    scratch: Scratch,
    metrics: OperatorMetrics,
}

impl Bundles {
    fn new(
        env: PythonEnv,
        targets: Vec<PyTarget>,
        input: Vec<DataType>,
        limits: BundleLimits,
    ) -> Self {
        Bundles {
            env,
            targets,
            input,
            worker: None,
            limits,
            rows: Vec::new(),
            n: 0,
            first_at: None,
            held: None,
            request: Vec::new(),
            scratch: Scratch::default(),
            metrics: OperatorMetrics::default(),
        }
    }

    /// Keeps a row; true when the bundle is full.
    fn add(&mut self, row: &Row) -> bool {
        self.metrics.records_in += 1;
        if self.n == self.rows.len() {
            self.rows.push(row.clone());
        } else {
            self.rows[self.n].clone_from(row);
        }
        if self.n == 0 {
            self.first_at = Some(Instant::now());
        }
        self.n += 1;
        self.n >= self.limits.size
    }

    /// A watermark: passed on at once when no bundle is open, else held until it goes out.
    /// True when it is to be passed on now.
    fn watermark(&mut self, wm: i64) -> bool {
        if self.n == 0 {
            return true;
        }
        self.held = Some(self.held.map_or(wm, |h| h.max(wm)));
        false
    }

    /// After a bundle went out: empties it and passes on the watermark held meanwhile.
    fn done(&mut self, out: &mut dyn Emit) -> Result<()> {
        self.n = 0;
        self.first_at = None;
        match self.held.take() {
            Some(wm) => out.watermark(wm),
            None => Ok(()),
        }
    }

    fn due(&self) -> bool {
        self.first_at
            .is_some_and(|t| t.elapsed().as_micros() as i64 >= self.limits.time_us)
    }

    /// Sends the bundle's rows with `calls` and returns the worker's answer.
    fn round_trip(&mut self, calls: &[PyCall]) -> Result<&[u8]> {
        let n = self.n;
        self.request.clear();
        self.request.extend_from_slice(&(n as u32).to_le_bytes());
        self.request
            .extend_from_slice(&(calls.len() as u16).to_le_bytes());
        for c in calls {
            self.request
                .extend_from_slice(&(c.function as u16).to_le_bytes());
            self.request
                .extend_from_slice(&(c.args.len() as u16).to_le_bytes());
            for a in &c.args {
                codec::write_arg(&mut self.request, &self.rows[..n], a, &mut self.scratch)
                    .map_err(|e| {
                        RuntimeError::Eval(format!(
                            "computing an argument of Python function {}: {e}",
                            self.targets[c.function].name
                        ))
                    })?;
            }
        }
        if self.worker.is_none() {
            self.worker = Some(Worker::start(&self.env, &self.targets, true)?.0);
        }
        let Some(worker) = self.worker.as_mut() else {
            return Err(RuntimeError::Eval("no Python worker".into()));
        };
        match worker.call(&self.request) {
            Ok(a) => Ok(a),
            Err(CallError::Failed(f)) => {
                let row = usize::try_from(f.row)
                    .ok()
                    .and_then(|i| self.rows[..n].get(i))
                    .map(|r| show_row(r, &self.input));
                Err(failure_error(&f, row.as_deref()))
            }
            Err(CallError::TooLarge(why)) => Err(RuntimeError::Eval(format!(
                "Python function {} failed: {why}",
                self.targets
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            Err(CallError::Lost(why)) => Err(RuntimeError::Eval(format!(
                "the Python worker of {} ({}) failed: {why}",
                self.targets
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                crate::python::short(&self.env.executable)
            ))),
        }
    }

    fn bad_value(&self, function: usize, row: usize, why: String) -> RuntimeError {
        let name = &self.targets[function].name;
        match self.rows[..self.n].get(row) {
            Some(r) => RuntimeError::Eval(format!(
                "Python function {name} {why}\n  on the row {}",
                crate::python::short(&show_row(r, &self.input))
            )),
            None => RuntimeError::Eval(format!("Python function {name}: {why}")),
        }
    }
}

/// A row as `(v1, v2, …)` for messages.
pub(crate) fn show_row(row: &Row, types: &[DataType]) -> String {
    let mut s = String::from("(");
    for (i, v) in row.values.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        if s.len() > 400 {
            s.push('…');
            break;
        }
        match (v, types.get(i)) {
            (Value::Null, _) => s.push_str("NULL"),
            (Value::Str(_), Some(DataType::String(_))) => {
                s.push('\'');
                write_text(&mut s, *v, types[i], &row.heap);
                s.push('\'');
            }
            (_, Some(t)) => write_text(&mut s, *v, *t, &row.heap),
            (_, None) => s.push('?'),
        }
    }
    s.push(')');
    s
}

/// The operator contract of the Python operators, the same for both: rows gather in the
/// bundle (`b`), and `run` sends it out (when full, due, before a checkpoint and at the end).
macro_rules! bundle_operator {
    ($t:ty) => {
        impl Operator for $t {
            fn describe(&self) -> String {
                self.label()
            }

            fn process(&mut self, row: &Row, out: &mut dyn Emit) -> Result<()> {
                if self.b.add(row) {
                    self.run(out)?;
                }
                Ok(())
            }

            fn on_watermark(&mut self, wm: i64, out: &mut dyn Emit) -> Result<()> {
                if self.b.watermark(wm) {
                    out.watermark(wm)?;
                }
                Ok(())
            }

            fn on_processing_time(&mut self, _now: i64, out: &mut dyn Emit) -> Result<()> {
                if self.b.due() {
                    self.run(out)?;
                }
                Ok(())
            }

            fn on_end(&mut self, out: &mut dyn Emit) -> Result<()> {
                self.run(out)
            }

            fn flush(&mut self, out: &mut dyn Emit) -> Result<()> {
                self.run(out)
            }

            fn metrics(&self) -> OperatorMetrics {
                self.b.metrics.clone()
            }

            fn checkpointed(&self) -> bool {
                false
            }
        }
    };
}

/// Flink's `PythonCalc`: each row with the results of its scalar Python calls appended.
pub struct PythonCalc {
    b: Bundles,
    calls: Vec<PyCall>,
    results: Vec<(Vec<Value>, Vec<u8>)>,
    out: Row,
}

impl PythonCalc {
    /// The operator for `calls` of `targets`, over rows of the `input` types.
    pub fn new(
        env: PythonEnv,
        targets: Vec<PyTarget>,
        calls: Vec<PyCall>,
        input: Vec<DataType>,
        limits: BundleLimits,
    ) -> Self {
        let results = calls.iter().map(|_| (Vec::new(), Vec::new())).collect();
        PythonCalc {
            b: Bundles::new(env, targets, input, limits),
            calls,
            results,
            out: Row::default(),
        }
    }

    fn run(&mut self, out: &mut dyn Emit) -> Result<()> {
        let n = self.b.n;
        if n == 0 {
            return Ok(());
        }
        let answer = self.b.round_trip(&self.calls)?;
        let mut r = Reader::new(answer);
        let mut bad = None;
        for (k, c) in self.calls.iter().enumerate() {
            let (vals, heap) = &mut self.results[k];
            let ty = c.results.first().copied().unwrap_or(DataType::String(None));
            if let Err((row, why)) = codec::read_column(&mut r, n, ty, vals, heap) {
                bad = Some((c.function, row, why));
                break;
            }
        }
        if let Some((f, row, why)) = bad {
            return Err(self.b.bad_value(f, row, why));
        }
        let width = self.b.input.len();
        for i in 0..n {
            self.out.clone_from(&self.b.rows[i]);
            // the results go after the declared input columns (a row may carry fewer: the
            // window columns of a window table function fused into the aggregate after it)
            self.out.values.resize(width, Value::Null);
            for (vals, heap) in &self.results {
                self.out.push_from(vals[i], heap);
            }
            out.emit(&self.out)?;
        }
        self.b.metrics.records_out += n as u64;
        self.b.done(out)
    }
}

impl PythonCalc {
    fn label(&self) -> String {
        format!(
            "PythonCalc({})",
            self.calls
                .iter()
                .map(|c| self.b.targets[c.function].name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

bundle_operator!(PythonCalc);

/// Flink's `PythonCorrelate`: each row joined with the rows its table function call gives
/// (`LEFT JOIN LATERAL TABLE(…) ON TRUE`: once with NULLs when it gives none).
pub struct PythonCorrelate {
    b: Bundles,
    call: [PyCall; 1],
    left_outer: bool,
    index: Vec<u32>,
    results: Vec<(Vec<Value>, Vec<u8>)>,
    out: Row,
}

impl PythonCorrelate {
    /// The operator for one table function call over rows of the `input` types.
    pub fn new(
        env: PythonEnv,
        target: PyTarget,
        call: PyCall,
        left_outer: bool,
        input: Vec<DataType>,
        limits: BundleLimits,
    ) -> Self {
        let results = call
            .results
            .iter()
            .map(|_| (Vec::new(), Vec::new()))
            .collect();
        PythonCorrelate {
            b: Bundles::new(env, vec![target], input, limits),
            call: [call],
            left_outer,
            index: Vec::new(),
            results,
            out: Row::default(),
        }
    }

    fn run(&mut self, out: &mut dyn Emit) -> Result<()> {
        let n = self.b.n;
        if n == 0 {
            return Ok(());
        }
        let answer = self.b.round_trip(&self.call)?;
        let mut r = Reader::new(answer);
        let parsed = (|| -> std::result::Result<(), codec::BadValue> {
            let at = |e: String| (usize::MAX, e);
            let m = r.u32().map_err(at)? as usize;
            let idx = r.take(4 * m).map_err(at)?;
            self.index.clear();
            self.index.extend(
                idx.chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            );
            if self.index.windows(2).any(|w| w[1] < w[0])
                || self.index.last().is_some_and(|&i| i as usize >= n)
            {
                return Err(at("row numbers out of order".into()));
            }
            for (k, ty) in self.call[0].results.iter().enumerate() {
                let (vals, heap) = &mut self.results[k];
                codec::read_column(&mut r, m, *ty, vals, heap).map_err(|(row, why)| {
                    let input_row = self.index.get(row).map_or(usize::MAX, |&i| i as usize);
                    (input_row, why)
                })?;
            }
            Ok(())
        })();
        if let Err((row, why)) = parsed {
            return Err(self.b.bad_value(0, row, why));
        }
        let mut j = 0;
        let width = self.b.input.len();
        for i in 0..n {
            let mut any = false;
            while j < self.index.len() && self.index[j] as usize == i {
                self.out.clone_from(&self.b.rows[i]);
                self.out.values.resize(width, Value::Null);
                for (vals, heap) in &self.results {
                    self.out.push_from(vals[j], heap);
                }
                out.emit(&self.out)?;
                self.b.metrics.records_out += 1;
                any = true;
                j += 1;
            }
            if !any && self.left_outer {
                self.out.clone_from(&self.b.rows[i]);
                self.out.values.resize(width, Value::Null);
                for _ in &self.results {
                    self.out.values.push(Value::Null);
                }
                out.emit(&self.out)?;
                self.b.metrics.records_out += 1;
            }
        }
        self.b.done(out)
    }
}

impl PythonCorrelate {
    fn label(&self) -> String {
        format!("PythonCorrelate({})", self.b.targets[0].name)
    }
}

bundle_operator!(PythonCorrelate);
