//! Python user-defined functions (Flink's `CREATE FUNCTION … LANGUAGE PYTHON`): the worker
//! process that runs them and the framing between it and the job.
//!
//! As in Flink, Python code never runs inside the job's process. Each operator instance that
//! calls Python functions starts one worker, `python.executable -c <worker.py>` (the script is
//! built into tillflow and needs only Python's standard library), and talks to it over the
//! worker's stdin and stdout; what a function prints goes to the worker's stderr, which is the
//! job's. Every message is a frame: a little-endian `u32` length, then one kind byte and a body.
//! - `I` (job → worker), JSON: the functions (`name`, `target` = `module.attr`, `kind` =
//!   `scalar`/`table`/`aggregate`) and the `paths` put in front of `sys.path` (`python.files`).
//!   The worker imports each, reads its result type(s) from the `result_type` attribute
//!   (`result_types` for table functions; PyFlink's `@udf`/`@udtf`/`@udaf` wrappers keep them
//!   as `_result_type(s)`; an aggregate function may have `get_result_type()` instead) and
//!   answers `I` with `{"functions": [{"result_types": […], "deterministic": …, "aggregate":
//!   …, "retract": …, "merge": …}]}` (the last three for aggregate functions, which are
//!   recognised by their methods whatever kind was asked for).
//! - `B` (job → worker): a bundle of `n` rows, as `u32 n`, `u16` calls, and per call
//!   `u16 function`, `u16 arguments` and each argument as a column ([`codec`]).
//! - `R` (worker → job): per call, a scalar function's result column, or a table function's
//!   `u32 m`, `m` × `u32` input row numbers, and its result columns of `m` values.
//! - `A` (job → worker): aggregate groups ([`agg`]): `u16` calls, and per call `u16
//!   function`, `u16 arguments`, `u8` 1 when the accumulators are wanted back, `u32 g` groups,
//!   each as its pickled accumulator (`u32` length and bytes; empty: create one), `u32 m`
//!   accumulators to merge into it (each `u32` length and bytes) and `u32` rows, then `u32 n`
//!   rows in all, `n` bytes (1: retract the row, 0: accumulate it) and the argument columns of
//!   the `n` rows, group after group ([`codec`]). The answer, `R`: per call, each group's
//!   accumulator pickled again (`u32` length and bytes, when wanted) and the column of the `g`
//!   values of `get_value`.
//! - `E` (worker → job), JSON: `function`, `row` (in the bundle; −1 while importing),
//!   `message` and Python's `traceback`. The job fails with them.
//! - `Q` (job → worker): the end; the worker calls each function's `close()` and exits.
//!
//! A worker that dies (killed, out of memory, a crash in a C extension) is started again and
//! given the bundle once more; a second death fails the job with the worker's exit status.

pub mod agg;
pub mod codec;

use crate::error::{Result, RuntimeError};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// The worker's script, run with `python -c`.
const WORKER_PY: &str = include_str!("worker.py");

/// Largest frame a worker may send (a bundle's results), so a confused worker cannot make the
/// job allocate without bound. The worker is told it, and reports a larger answer as a
/// function's failure. (Small in tests.)
#[cfg(not(test))]
const MAX_FRAME: usize = 1 << 30;
/// Largest frame a worker may send (small in tests).
#[cfg(test)]
const MAX_FRAME: usize = 1 << 20;

/// A scalar function (one value per row) or a table function (rows per row).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PyKind {
    /// `ScalarFunction` / `@udf`.
    Scalar,
    /// `TableFunction` / `@udtf`, used as `LATERAL TABLE(f(…))`.
    Table,
    /// `AggregateFunction` / `@udaf`, used in a GROUP BY query ([`agg`]).
    Aggregate,
}

impl PyKind {
    fn wire(self) -> &'static str {
        match self {
            PyKind::Scalar => "scalar",
            PyKind::Table => "table",
            PyKind::Aggregate => "aggregate",
        }
    }
}

/// Where and how Python runs: Flink's `python.executable` and `python.files`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PythonEnv {
    /// The interpreter (`python.executable`; tillflow's default `python3`).
    pub executable: String,
    /// Directories and archives put in front of `sys.path` (absolute).
    pub paths: Vec<String>,
}

impl Default for PythonEnv {
    fn default() -> Self {
        PythonEnv {
            executable: "python3".into(),
            paths: Vec::new(),
        }
    }
}

/// One function as the worker loads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PyTarget {
    /// The SQL name (for messages).
    pub name: String,
    /// `module.attr`.
    pub target: String,
    /// Scalar or table function.
    pub kind: PyKind,
    /// The result types the job declared (empty while planning, when the worker reads them
    /// off the function).
    pub results: Vec<tillflow_types::DataType>,
}

/// A Python function's call inside an expression, before the planner moves it into a
/// `PythonCalc` ([`crate::expr::Expr::Python`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PyCallExpr {
    /// The function.
    pub target: PyTarget,
    /// Where it runs.
    pub env: PythonEnv,
    /// Arguments.
    pub args: Vec<crate::expr::Expr>,
    /// Result type.
    pub ty: tillflow_types::DataType,
    /// Whether the function says it is deterministic (two equal calls are then made once).
    pub deterministic: bool,
}

/// What the worker read off a function when it loaded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The result type(s) as SQL text (one for a scalar function, one per column for a table
    /// function).
    pub result_types: Vec<String>,
    /// False when the function says it is not deterministic.
    pub deterministic: bool,
    /// An aggregate function (`create_accumulator`, `accumulate`, `get_value`), whatever kind
    /// was asked for.
    pub aggregate: bool,
    /// An aggregate function with a `retract` method of its own.
    pub retract: bool,
    /// An aggregate function with a `merge` method of its own.
    pub merge: bool,
}

/// A failure the worker reported: the function, the row of the bundle, Python's message and
/// traceback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PyFailure {
    /// The SQL name of the function.
    pub function: String,
    /// The row of the bundle (−1: while loading the function; −2: not at one row).
    pub row: i64,
    /// `ExceptionType: message`.
    pub message: String,
    /// Python's traceback (empty when the value, not the code, was wrong).
    pub traceback: String,
}

/// A running worker.
pub struct Worker {
    env: PythonEnv,
    targets: Vec<PyTarget>,
    child: Child,
    input: BufWriter<ChildStdin>,
    output: BufReader<ChildStdout>,
    /// The last frame received.
    frame: Vec<u8>,
}

/// What a call to the worker can end in besides its answer.
#[derive(Debug)]
pub enum CallError {
    /// A function raised (or returned a value of the wrong type).
    Failed(PyFailure),
    /// The worker could not be talked to (it died, or wrote something that is not a frame).
    Lost(String),
    /// A request or its answer is larger than a frame may be: sending it again would not
    /// help (the worker is stopped: the pipe is out of step).
    TooLarge(String),
}

impl Worker {
    /// Starts a worker for `targets` and loads them, returning what it read off each; `open`:
    /// the functions' `open()` is called (running, not planning).
    pub fn start(
        env: &PythonEnv,
        targets: &[PyTarget],
        open: bool,
    ) -> Result<(Worker, Vec<Resolved>)> {
        let mut child = Command::new(&env.executable)
            .arg("-c")
            .arg(WORKER_PY)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                RuntimeError::Eval(format!(
                    "cannot start the Python worker `{}`: {e} (set 'python.executable' to a Python 3 interpreter)",
                    crate::python::short(&env.executable)
                ))
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(RuntimeError::Eval(
                "the Python worker's pipes could not be opened".into(),
            ));
        };
        let mut w = Worker {
            env: env.clone(),
            targets: targets.to_vec(),
            child,
            input: BufWriter::with_capacity(1 << 16, stdin),
            output: BufReader::with_capacity(1 << 16, stdout),
            frame: Vec::new(),
        };
        let init = serde_json::json!({
            "paths": env.paths,
            "open": open,
            "max_frame": MAX_FRAME,
            "functions": targets.iter().map(|t| serde_json::json!({
                "name": t.name, "target": t.target, "kind": t.kind.wire(),
                // each result as (wire type, SQL type, decimal scale)
                "results": t.results.iter().map(|ty| serde_json::json!([
                    codec::wire_tag(*ty).unwrap_or(codec::T_STRING),
                    ty.to_string(),
                    match ty { tillflow_types::DataType::Decimal(_, s) => Some(*s), _ => None },
                ])).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        let body = init.to_string();
        let answer = match w.exchange(b'I', &[body.as_bytes()]) {
            Ok(a) => a,
            Err(CallError::Failed(f)) => return Err(failure_error(&f, None)),
            Err(CallError::Lost(why) | CallError::TooLarge(why)) => {
                return Err(RuntimeError::Eval(format!(
                    "the Python worker ({}) failed while loading {}: {why}",
                    short(&env.executable),
                    names(targets)
                )))
            }
        };
        let parsed: serde_json::Value = serde_json::from_slice(answer).map_err(|e| {
            RuntimeError::Eval(format!("the Python worker's answer is not JSON: {e}"))
        })?;
        let mut resolved = Vec::new();
        for f in parsed["functions"].as_array().into_iter().flatten() {
            let types = f["result_types"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect();
            resolved.push(Resolved {
                result_types: types,
                deterministic: f["deterministic"].as_bool().unwrap_or(true),
                aggregate: f["aggregate"].as_bool().unwrap_or(false),
                retract: f["retract"].as_bool().unwrap_or(false),
                merge: f["merge"].as_bool().unwrap_or(false),
            });
        }
        if resolved.len() != targets.len() {
            return Err(RuntimeError::Eval(format!(
                "the Python worker loaded {} of {} functions",
                resolved.len(),
                targets.len()
            )));
        }
        Ok((w, resolved))
    }

    /// Sends a bundle (`B` frame body) and returns the results (`R` frame body). A worker that
    /// died is started once more and given the bundle again.
    pub fn call(&mut self, bundle: &[u8]) -> std::result::Result<&[u8], CallError> {
        self.request(b'B', bundle)
    }

    /// Sends a request of `kind` (`B`: a bundle, `A`: aggregate groups) and returns the
    /// results (`R` frame body). A worker that died is started once more and given the
    /// request again (a request carries everything it needs: the worker keeps no state).
    pub fn request(&mut self, kind: u8, body: &[u8]) -> std::result::Result<&[u8], CallError> {
        let bundle = body;
        let first = match self.exchange(kind, &[bundle]) {
            Err(CallError::Lost(first)) => first,
            Err(failed) => return Err(failed),
            Ok(_) => return Ok(&self.frame[1..]),
        };
        let status = self.reap();
        let (fresh, _) = Worker::start(&self.env, &self.targets, true)
            .map_err(|e| CallError::Lost(format!("{first}{status}; starting it again: {e}")))?;
        *self = fresh;
        match self.exchange(kind, &[bundle]) {
            Err(CallError::Lost(second)) => {
                let status = self.reap();
                Err(CallError::Lost(format!(
                    "{first}{status}; started again, it failed once more: {second}"
                )))
            }
            Err(failed) => Err(failed),
            Ok(_) => Ok(&self.frame[1..]),
        }
    }

    /// One request and its answer: `E` frames become [`CallError::Failed`].
    fn exchange(&mut self, kind: u8, parts: &[&[u8]]) -> std::result::Result<&[u8], CallError> {
        let lost = |e: std::io::Error| CallError::Lost(e.to_string());
        let len: usize = parts.iter().map(|p| p.len()).sum::<usize>() + 1;
        let len = u32::try_from(len).map_err(|_| {
            CallError::TooLarge(format!(
                "a request of {len} bytes is larger than a frame can carry (4 GiB)"
            ))
        })?;
        self.input.write_all(&len.to_le_bytes()).map_err(lost)?;
        self.input.write_all(&[kind]).map_err(lost)?;
        for p in parts {
            self.input.write_all(p).map_err(lost)?;
        }
        self.input.flush().map_err(lost)?;
        let mut head = [0u8; 4];
        self.output.read_exact(&mut head).map_err(|e| {
            CallError::Lost(if e.kind() == std::io::ErrorKind::UnexpectedEof {
                "the worker exited".into()
            } else {
                e.to_string()
            })
        })?;
        let n = u32::from_le_bytes(head) as usize;
        if n == 0 {
            return Err(CallError::Lost("the worker sent an empty frame".into()));
        }
        if n > MAX_FRAME {
            // the rest of the frame is still in the pipe: this worker is done
            let _ = self.reap();
            return Err(CallError::TooLarge(format!(
                "its answer of {n} bytes is larger than a worker may send ({} MiB)",
                MAX_FRAME >> 20
            )));
        }
        self.frame.resize(n, 0);
        self.output.read_exact(&mut self.frame).map_err(lost)?;
        match self.frame[0] {
            b'E' => {
                let v: serde_json::Value = serde_json::from_slice(&self.frame[1..])
                    .map_err(|e| CallError::Lost(format!("an unreadable error report: {e}")))?;
                let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
                Err(CallError::Failed(PyFailure {
                    function: text("function"),
                    row: v["row"].as_i64().unwrap_or(-1),
                    message: text("message"),
                    traceback: text("traceback"),
                }))
            }
            k if k == kind || (matches!(kind, b'B' | b'A') && k == b'R') => Ok(&self.frame[1..]),
            k => Err(CallError::Lost(format!(
                "the worker answered with a frame of kind {k}"
            ))),
        }
    }

    /// Waits briefly for a worker that lost its pipes and says how it ended.
    fn reap(&mut self) -> String {
        let _ = self.child.kill();
        match self.child.wait() {
            Ok(s) => format!(" ({s})"),
            Err(_) => String::new(),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // the end: the worker closes the functions and exits; one that hangs is killed
        let _ = self.input.write_all(&1u32.to_le_bytes());
        let _ = self.input.write_all(b"Q");
        let _ = self.input.flush();
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Loads `targets` in a short-lived worker and returns what it read off each (planning: the
/// result types).
pub fn resolve(env: &PythonEnv, targets: &[PyTarget]) -> Result<Vec<Resolved>> {
    Worker::start(env, targets, false).map(|(_, r)| r)
}

/// The job's error for a function's failure; `row` describes the row it failed on.
pub fn failure_error(f: &PyFailure, row: Option<&str>) -> RuntimeError {
    failure_error_at(f, "on the row", row)
}

/// The job's error for a function's failure; `place` (`on the row`) and `what` say where it
/// failed.
pub fn failure_error_at(f: &PyFailure, place: &str, what: Option<&str>) -> RuntimeError {
    let row = what;
    let mut msg = if f.row == -1 {
        format!(
            "Python function {} could not be loaded: {}",
            f.function,
            short(&f.message)
        )
    } else {
        format!(
            "Python function {} failed: {}",
            f.function,
            short(&f.message)
        )
    };
    if let Some(r) = row {
        msg.push_str(&format!("\n  {place} {}", short(r)));
    }
    let tb = f.traceback.trim_end();
    if !tb.is_empty() {
        // the end of a long traceback is where the fault is
        let keep = tb.len().saturating_sub(4000);
        let start = (keep..tb.len())
            .find(|&i| tb.is_char_boundary(i))
            .unwrap_or(tb.len());
        msg.push_str("\n  Python traceback");
        if start > 0 {
            msg.push_str(" (its end)");
        }
        msg.push_str(":\n");
        msg.push_str(&tb[start..]);
    }
    RuntimeError::Eval(msg)
}

/// At most 300 bytes of `s`, for messages.
pub fn short(s: &str) -> String {
    if s.len() <= 300 {
        return s.to_owned();
    }
    let mut end = 300;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn names(targets: &[PyTarget]) -> String {
    targets
        .iter()
        .map(|t| format!("{} ('{}')", t.name, t.target))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `python.files` as paths for `sys.path`: a directory or archive as it is, a `.py` file's
/// directory (its module is then importable by its name, as Flink makes it), each absolute.
pub fn python_paths(files: &str, base: &Path) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for f in files.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let p = base.join(f);
        let p = if p.extension().is_some_and(|e| e == "py") {
            p.parent().map(Path::to_path_buf).unwrap_or(p)
        } else {
            p
        };
        let s = p.to_string_lossy().into_owned();
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}
