//! `python_calc` (Flink's `PythonCalcSplitRule`): a Calc whose expressions call Python
//! functions becomes
//! 1. a Calc with the conjuncts of its condition that call no Python (so rows it drops are
//!    never sent to Python), when there are such conjuncts;
//! 2. one `PythonCalc` per level of nesting (`f(g(x))`: `g` first), each appending the results
//!    of the calls whose arguments it can compute to the row as new columns (a call written
//!    twice is made once);
//! 3. the Calc itself, reading those columns where it called the functions.
//!
//! A Python call anywhere else a plan holds an expression (a join's condition, a lookup's,
//! UNNEST's array, a table function's arguments) is refused with the place named: compute it
//! in a subquery first.

use crate::error::{plan_err, Result};
use crate::plan::{PlanNode, PlanOp, PyPlanCall, TwoInputOp};
use crate::planner::{Rel, RelInput};
use tillflow_runtime::expr::Expr;
use tillflow_runtime::ops::python::BundleLimits;
use tillflow_types::{Field, Schema};

/// Applies the rule to every chain of `rel` (its joins' inputs too).
pub fn apply(rel: &mut Rel, limits: BundleLimits) -> Result<()> {
    if let RelInput::Join(j) = &mut rel.input {
        apply(&mut j.left, limits)?;
        apply(&mut j.right, limits)?;
        let residual = match &j.op.op {
            TwoInputOp::Join { residual, .. }
            | TwoInputOp::IntervalJoin { residual, .. }
            | TwoInputOp::TemporalJoin { residual, .. } => residual.as_ref(),
            TwoInputOp::Union => None,
        };
        if let Some(name) = residual.and_then(first_python) {
            return plan_err(format!(
                "Python function {name} is called in a join condition, which is not supported yet: compute it in a subquery of the join's input, then join on that column"
            ));
        }
    }
    let ops = std::mem::take(&mut rel.ops);
    let mut out = Vec::with_capacity(ops.len());
    for node in ops {
        let place = match &node.op {
            PlanOp::Calc { filter, exprs, .. } => {
                if filter
                    .iter()
                    .chain(exprs)
                    .any(|e| first_python(e).is_some())
                {
                    split(node, limits, &mut out);
                    continue;
                }
                None
            }
            PlanOp::Correlate { array, .. } => first_python(array).map(|n| (n, "UNNEST's array")),
            PlanOp::LookupJoin {
                residual: Some(r), ..
            } => first_python(r).map(|n| (n, "a lookup join's condition")),
            PlanOp::PythonCorrelate { call, .. } => call
                .args
                .iter()
                .find_map(first_python)
                .map(|n| (n, "the arguments of a table function")),
            PlanOp::WatermarkAssigner { expr, .. } => {
                first_python(expr).map(|n| (n, "a WATERMARK"))
            }
            _ => None,
        };
        if let Some((name, place)) = place {
            return plan_err(format!(
                "Python function {name} is called in {place}, which is not supported yet: compute it as a column of a subquery first"
            ));
        }
        out.push(node);
    }
    rel.ops = out;
    Ok(())
}

/// The name of the first Python function `e` calls.
fn first_python(e: &Expr) -> Option<String> {
    let mut found = None;
    crate::plan::walk_expr(e, &mut |x| {
        if let Expr::Python(c) = x {
            found.get_or_insert_with(|| c.target.name.clone());
        }
    });
    found
}

/// Replaces, bottom-up, each Python call of `e` whose arguments call no Python by the column
/// of its result, collecting the calls (once each) in `calls`; `base` is the first new column.
fn take_innermost(e: &mut Expr, base: usize, calls: &mut Vec<Expr>) {
    match e {
        Expr::Column { .. } | Expr::Literal { .. } | Expr::StrLiteral(_) => {}
        Expr::Unary { arg, .. } | Expr::Cast { arg, .. } => take_innermost(arg, base, calls),
        Expr::Binary { left, right, .. } => {
            take_innermost(left, base, calls);
            take_innermost(right, base, calls);
        }
        Expr::Case {
            operand,
            whens,
            otherwise,
            ..
        } => {
            if let Some(o) = operand {
                take_innermost(o, base, calls);
            }
            for (a, b) in whens {
                take_innermost(a, base, calls);
                take_innermost(b, base, calls);
            }
            if let Some(o) = otherwise {
                take_innermost(o, base, calls);
            }
        }
        Expr::Call { args, .. } | Expr::Prepared { args, .. } => {
            args.iter_mut().for_each(|a| take_innermost(a, base, calls))
        }
        Expr::InList { arg, list, .. } => {
            take_innermost(arg, base, calls);
            list.iter_mut().for_each(|a| take_innermost(a, base, calls));
        }
        Expr::Like { arg, pattern, .. } => {
            take_innermost(arg, base, calls);
            take_innermost(pattern, base, calls);
        }
        Expr::Python(c) => {
            if c.args.iter().any(|a| first_python(a).is_some()) {
                c.args
                    .iter_mut()
                    .for_each(|a| take_innermost(a, base, calls));
                return;
            }
            let ty = c.ty;
            // a call written twice is made once, unless the function says it is not
            // deterministic (then each call has a value of its own)
            let same = if c.deterministic {
                calls.iter().position(|x| x == &*e)
            } else {
                None
            };
            let k = match same {
                Some(k) => k,
                None => {
                    calls.push(e.clone());
                    calls.len() - 1
                }
            };
            *e = Expr::col(base + k, ty);
        }
    }
}

/// The conjuncts of a condition.
fn conjuncts(e: Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::Binary {
            op: tillflow_runtime::expr::BinOp::And,
            left,
            right,
            ..
        } => {
            conjuncts(*left, out);
            conjuncts(*right, out);
        }
        other => out.push(other),
    }
}

fn and(parts: Vec<Expr>) -> Option<Expr> {
    parts.into_iter().reduce(|a, b| Expr::Binary {
        op: tillflow_runtime::expr::BinOp::And,
        left: Box::new(a),
        right: Box::new(b),
        ty: tillflow_types::DataType::Boolean,
    })
}

/// Splits a Calc calling Python into the nodes the module comment lists, appended to `out`.
fn split(node: PlanNode, limits: BundleLimits, out: &mut Vec<PlanNode>) {
    let PlanNode {
        op: PlanOp::Calc {
            filter,
            mut exprs,
            names,
        },
        input,
        changelog,
        upsert_key,
        ..
    } = node
    else {
        return;
    };
    // the nodes before the last keep the input's columns where they are, and its upsert key
    let input_key = out.last().and_then(|n| n.upsert_key.clone());
    let mut schema = input;
    // 1. what the condition can drop before Python runs
    let mut before = Vec::new();
    let mut after = Vec::new();
    if let Some(f) = filter {
        let mut parts = Vec::new();
        conjuncts(f, &mut parts);
        for p in parts {
            if first_python(&p).is_some() {
                after.push(p);
            } else {
                before.push(p);
            }
        }
    }
    if let Some(pre) = and(before) {
        let width = schema.len();
        let mut n = PlanNode::new(
            PlanOp::Calc {
                filter: Some(pre),
                exprs: (0..width)
                    .map(|i| Expr::col(i, schema.fields[i].data_type))
                    .collect(),
                names: schema.fields.iter().map(|f| f.name.clone()).collect(),
            },
            &schema,
            changelog,
        );
        n.upsert_key = input_key.clone();
        out.push(n);
    }
    let mut filter = and(after);
    // 2. the Python calls, innermost first
    loop {
        let base = schema.len();
        let mut calls = Vec::new();
        if let Some(f) = filter.as_mut() {
            take_innermost(f, base, &mut calls);
        }
        for e in exprs.iter_mut() {
            take_innermost(e, base, &mut calls);
        }
        if calls.is_empty() {
            break;
        }
        let plan_calls: Vec<PyPlanCall> = calls
            .into_iter()
            .filter_map(|c| match c {
                Expr::Python(c) => Some(PyPlanCall {
                    function: crate::udf::PyFunction {
                        target: c.target,
                        env: c.env,
                        results: vec![c.ty],
                        deterministic: c.deterministic,
                        retract: false,
                        merge: false,
                    },
                    args: c.args,
                }),
                _ => None,
            })
            .collect();
        let mut n = PlanNode::new(
            PlanOp::PythonCalc {
                calls: plan_calls.clone(),
                limits,
            },
            &schema,
            changelog,
        );
        n.upsert_key = input_key.clone();
        out.push(n);
        let mut fields = schema.fields.clone();
        for (k, c) in plan_calls.iter().enumerate() {
            fields.push(Field::new(format!("f{}", base + k), c.function.results[0]));
        }
        schema = Schema::new(fields);
    }
    // 3. the Calc over the appended columns
    let mut n = PlanNode::new(
        PlanOp::Calc {
            filter,
            exprs,
            names,
        },
        &schema,
        changelog,
    );
    n.upsert_key = upsert_key;
    out.push(n);
}
