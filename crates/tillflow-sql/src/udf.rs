//! User-defined functions as Flink declares them: `CREATE [TEMPORARY [SYSTEM]] FUNCTION
//! [IF NOT EXISTS] name AS 'module.function' LANGUAGE PYTHON` (a Python scalar or table
//! function, run in a worker process: `tillflow_runtime::python`), and `CREATE FUNCTION name
//! AS 'BUILTIN'` (another name for one of tillflow's built-in functions, such as the
//! forecasting aggregates, so a job that registered its own Java version under a name of its
//! choosing keeps that name). Java and Scala classes are refused by name: tillflow runs no JVM.
//!
//! The catalog holds the definitions; while a query is planned, they are installed for the
//! planning thread ([`install`]) so that expression conversion finds them by name. A Python
//! function's result type is read off the function when a query first uses it (the worker
//! loads it, as Flink does when it plans a query), then kept.

use crate::error::{plan_err, Result};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use tillflow_runtime::ops::python::BundleLimits;
use tillflow_runtime::python::{PyKind, PyTarget, PythonEnv, Resolved};
use tillflow_types::DataType;

/// Flink's defaults: bundles of at most 100,000 rows, sent after at most 1 s.
pub const DEFAULT_LIMITS: BundleLimits = tillflow_runtime::ops::python::DEFAULT_LIMITS;

/// What a function's name stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FunctionBody {
    /// `AS 'module.function' LANGUAGE PYTHON`.
    Python {
        /// `module.function`.
        target: String,
    },
    /// `AS 'BUILTIN'`: a built-in function under another name (upper case).
    Alias {
        /// The built-in's name.
        builtin: String,
    },
}

/// A function of the catalog.
#[derive(Clone, Debug)]
pub struct FunctionDef {
    /// The name as written.
    pub name: String,
    /// What it is.
    pub body: FunctionBody,
    /// `TEMPORARY`.
    pub temporary: bool,
    /// `TEMPORARY SYSTEM`.
    pub system: bool,
    /// What a worker read off the Python function, per kind of use and environment.
    resolved: Arc<Mutex<HashMap<(PyKind, PythonEnv), Resolved>>>,
}

impl FunctionDef {
    /// A definition.
    pub fn new(name: &str, body: FunctionBody, temporary: bool, system: bool) -> Self {
        FunctionDef {
            name: name.to_owned(),
            body,
            temporary,
            system,
            resolved: Arc::default(),
        }
    }

    /// The `CREATE FUNCTION` statement that makes it.
    pub fn ddl(&self) -> String {
        let kind = match (self.temporary, self.system) {
            (true, true) => "TEMPORARY SYSTEM ",
            (true, false) => "TEMPORARY ",
            _ => "",
        };
        match &self.body {
            FunctionBody::Python { target } => format!(
                "CREATE {kind}FUNCTION {} AS '{}' LANGUAGE PYTHON",
                self.name,
                target.replace('\'', "''")
            ),
            FunctionBody::Alias { builtin } => {
                format!("CREATE {kind}FUNCTION {} AS '{builtin}'", self.name)
            }
        }
    }
}

/// The functions and Python settings a query is planned with.
#[derive(Clone, Debug, Default)]
pub struct Functions {
    defs: BTreeMap<String, FunctionDef>,
    /// `python.executable`, `python.files`.
    pub env: PythonEnv,
    /// The interpreter that loads functions while planning (`python.client.executable`).
    pub client: PythonEnv,
    /// `python.fn-execution.bundle.size` and `.time`.
    pub limits: Option<BundleLimits>,
}

impl Functions {
    /// The functions of `defs` with the session's `config`.
    pub fn new(defs: &BTreeMap<String, FunctionDef>, config: &BTreeMap<String, String>) -> Self {
        let base = std::env::current_dir().unwrap_or_default();
        let mut env = PythonEnv::default();
        if let Some(x) = config.get("python.executable") {
            env.executable = x.clone();
        }
        if let Some(f) = config.get("python.files") {
            env.paths = tillflow_runtime::python::python_paths(f, &base);
        }
        let mut client = env.clone();
        if let Some(x) = config.get("python.client.executable") {
            client.executable = x.clone();
        }
        let size = config
            .get("python.fn-execution.bundle.size")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or(100_000);
        let time_us = config
            .get("python.fn-execution.bundle.time")
            .and_then(|v| {
                let v = v.trim();
                v.parse::<i64>()
                    .ok()
                    .map(|ms| ms * 1000)
                    .or_else(|| tillflow_types::temporal::parse_duration_micros(v))
            })
            .filter(|&us| us > 0)
            .unwrap_or(1_000_000);
        Functions {
            defs: defs.clone(),
            env,
            client,
            limits: Some(BundleLimits { size, time_us }),
        }
    }

    /// The function named `upper` (upper case).
    pub fn get(&self, upper: &str) -> Option<&FunctionDef> {
        self.defs.get(upper)
    }
}

thread_local! {
    static ACTIVE: RefCell<Vec<Rc<Functions>>> = const { RefCell::new(Vec::new()) };
}

/// Functions installed for this thread's planning until dropped.
pub struct Installed(());

impl Drop for Installed {
    fn drop(&mut self) {
        ACTIVE.with(|a| {
            a.borrow_mut().pop();
        });
    }
}

/// Makes `f` the functions planning on this thread sees, until the guard is dropped.
pub fn install(f: Rc<Functions>) -> Installed {
    ACTIVE.with(|a| a.borrow_mut().push(f));
    Installed(())
}

/// The functions installed for this thread, if any.
pub fn active() -> Option<Rc<Functions>> {
    ACTIVE.with(|a| a.borrow().last().cloned())
}

/// The built-in a name stands for, when it is a `CREATE FUNCTION … AS 'BUILTIN'` alias.
pub fn alias_of(upper: &str) -> Option<String> {
    let f = active()?;
    let def = f.get(upper)?;
    if !def.system && crate::statements::is_builtin(upper) {
        // a built-in goes before a catalog function of its name, as in Flink
        return None;
    }
    match &def.body {
        FunctionBody::Alias { builtin } => Some(builtin.clone()),
        FunctionBody::Python { .. } => None,
    }
}

/// A Python function by name (upper case), with the functions it was found in.
pub fn python(upper: &str) -> Option<(Rc<Functions>, FunctionDef)> {
    let f = active()?;
    let def = f.get(upper)?.clone();
    matches!(def.body, FunctionBody::Python { .. }).then_some((f, def))
}

/// A Python function ready for the plan: what the worker loads, and its result types.
#[derive(Clone, Debug)]
pub struct PyFunction {
    /// What the worker loads.
    pub target: PyTarget,
    /// Where it runs.
    pub env: PythonEnv,
    /// Result types (one per column for a table function).
    pub results: Vec<DataType>,
    /// Whether it says it is deterministic.
    pub deterministic: bool,
    /// An aggregate function with a `retract` method of its own.
    pub retract: bool,
    /// An aggregate function with a `merge` method of its own.
    pub merge: bool,
}

/// Whether the function named `upper` (upper case) is a Python aggregate function (loading it,
/// once, to see; a function that cannot be loaded is not one, and fails where it is called).
pub fn is_python_aggregate(upper: &str) -> bool {
    let Some((functions, def)) = python(upper) else {
        return false;
    };
    if !def.system && crate::statements::is_builtin(upper) {
        return false;
    }
    loaded(&functions, &def, PyKind::Scalar).is_ok_and(|r| r.aggregate)
}

/// What a worker read off `def` loaded as a `kind` function (an aggregate function is loaded
/// as a scalar one: the worker recognises it either way), once per environment.
fn loaded(functions: &Functions, def: &FunctionDef, kind: PyKind) -> Result<Resolved> {
    let FunctionBody::Python { target } = &def.body else {
        return plan_err(format!("{} is not a Python function", def.name));
    };
    let kind = if kind == PyKind::Aggregate {
        PyKind::Scalar
    } else {
        kind
    };
    let py = PyTarget {
        name: def.name.clone(),
        target: target.clone(),
        kind,
        results: Vec::new(),
    };
    let key = (kind, functions.client.clone());
    let cached = def.resolved.lock().ok().and_then(|m| m.get(&key).cloned());
    if let Some(r) = cached {
        return Ok(r);
    }
    let mut r = tillflow_runtime::python::resolve(&functions.client, std::slice::from_ref(&py))
        .map_err(|e| crate::error::SqlError::Plan(e.to_string()))?;
    let Some(r) = r.pop() else {
        return plan_err(format!("Python function {} was not loaded", def.name));
    };
    if let Ok(mut m) = def.resolved.lock() {
        m.insert(key, r.clone());
    }
    Ok(r)
}

/// Loads `def` as a `kind` function (once per environment) and reads its result types.
pub fn resolve(functions: &Functions, def: &FunctionDef, kind: PyKind) -> Result<PyFunction> {
    let FunctionBody::Python { target } = &def.body else {
        return plan_err(format!("{} is not a Python function", def.name));
    };
    let mut py = PyTarget {
        name: def.name.clone(),
        target: target.clone(),
        kind,
        results: Vec::new(),
    };
    let resolved = loaded(functions, def, kind)?;
    match (kind, resolved.aggregate) {
        (PyKind::Aggregate, false) => {
            return plan_err(format!(
                "Python function {} ('{target}') is not an aggregate function (one has create_accumulator, accumulate and get_value methods)",
                def.name
            ))
        }
        (PyKind::Scalar | PyKind::Table, true) => {
            return plan_err(format!(
                "Python function {} ('{target}') is an aggregate function: call it in the SELECT list of a GROUP BY query (or over the whole table)",
                def.name
            ))
        }
        _ => {}
    }
    let mut results = Vec::new();
    for t in &resolved.result_types {
        let ty = crate::types::parse_type_name(t).map_err(|e| {
            crate::error::SqlError::Plan(format!(
                "Python function {} ('{target}'): its result type `{}`: {e}",
                def.name,
                tillflow_runtime::python::short(t)
            ))
        })?;
        if tillflow_runtime::python::codec::wire_tag(ty).is_none() {
            return plan_err(format!(
                "Python function {} ('{target}') returns {ty}, which tillflow's Python functions cannot return yet (BOOLEAN, the integer types, FLOAT, DOUBLE, DECIMAL, STRING, BYTES, DATE, TIME and TIMESTAMP can)",
                def.name
            ));
        }
        results.push(ty);
    }
    if results.is_empty() || (kind != PyKind::Table && results.len() != 1) {
        return plan_err(format!(
            "Python function {} ('{target}') declares {} result types; a scalar or aggregate function has one",
            def.name,
            results.len()
        ));
    }
    py.results = results.clone();
    Ok(PyFunction {
        target: py,
        env: functions.env.clone(),
        results,
        deterministic: resolved.deterministic,
        retract: resolved.retract,
        merge: resolved.merge,
    })
}

/// At most 200 bytes of user text, for messages.
pub fn short_text(s: &str) -> String {
    tillflow_runtime::python::short(s)
}
