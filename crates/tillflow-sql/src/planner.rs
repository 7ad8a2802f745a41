//! Queries to streaming operators.
//!
//! A query plans into a [`Rel`]: the table its records come from and the chain of operators that
//! turns that table's rows into the query's rows. Planning rules, one per construct:
//! projection and WHERE become a [`Calc`]; a window table function (TUMBLE, HOP, CUMULATE, SESSION)
//! followed by `GROUP BY window_start, window_end, ...` becomes a window aggregate (the legacy
//! `GROUP BY TUMBLE(...)` form plans to the same operators); any other GROUP BY becomes an updating
//! [`GroupAggregate`]; `ROW_NUMBER() OVER (PARTITION BY window_start, window_end ...)` with an outer
//! `rn <= N` becomes a window Top-N; `SELECT DISTINCT` a group aggregate without aggregates;
//! `JOIN ... ON` (and `FROM a, b WHERE`) a regular [`StreamingJoin`] of two planned inputs.

use crate::catalog::Catalog;
use crate::error::{plan_err, Result, SqlError};
use crate::expr::{
    collect_aggregates, collect_over_aggregates, derive_name, eval_const, function_args,
    function_name, AggScope, Converter, Scope,
};
use crate::plan::{Changelog, LateTarget, LookupTarget, PlanNode, PlanOp, TwoInputOp};
use crate::script::PARTITION_BY_FN;
use sqlparser::ast::{
    self as sql, DuplicateTreatment, FunctionArguments, GroupByExpr, SelectItem, SetExpr,
    TableFactor,
};
use std::collections::BTreeMap;
use tillflow_runtime::agg::{AggCall, AggKind};
use tillflow_runtime::expr::{BinOp, Expr};
use tillflow_runtime::forecast::ModelSpec;
use tillflow_runtime::ops::join::JoinType;
use tillflow_runtime::ops::over::OverFrame;
use tillflow_runtime::ops::rank::SortKey;
use tillflow_runtime::window::{AlignedWindow, TimeMode};
use tillflow_types::{DataType, Field, Schema, TimeAttribute, Value};

/// A window table function not yet turned into an operator (it fuses with the aggregation above it).
#[derive(Clone, Debug)]
pub struct PendingWindow {
    kind: WindowKind,
    time_col: usize,
    mode: TimeMode,
    partition: Vec<Expr>,
    /// Number of input columns: window_start, window_end, window_time are at n, n+1, n+2.
    base: usize,
}

#[derive(Clone, Copy, Debug)]
enum WindowKind {
    Aligned(AlignedWindow),
    Session { gap: i64 },
    Count { size: u64 },
}

/// A ROW_NUMBER() projection waiting for the outer query's `rn <= N`.
pub struct PendingRank {
    partition: Vec<usize>,
    order: Vec<SortKey>,
    /// Time attribute of the single ORDER BY column, if it is one.
    order_time: Option<TimeAttribute>,
    /// The ranked rows' columns (the ranking operator's input).
    input: Schema,
    window_end: Option<usize>,
    /// Projection over `[input columns..., rn]`.
    post: Vec<(Expr, String, TimeAttribute)>,
    /// Position of rn in the projection.
    rn_col: usize,
}

/// Where a [`Rel`]'s records come from.
pub enum RelInput {
    /// A table's rows (after its scan: computed columns and watermark).
    Table(String),
    /// Two planned queries meeting in a two-input operator: a join, or their UNION ALL.
    Join(Box<JoinInput>),
}

/// A join's two inputs and the operator that joins them.
pub struct JoinInput {
    /// The left input.
    pub left: Rel,
    /// The right input.
    pub right: Rel,
    /// The join (or union).
    pub op: PlanNode<TwoInputOp>,
}

/// A planned query.
pub struct Rel {
    /// Where the records come from.
    pub input: RelInput,
    /// Operators after the table scan.
    pub ops: Vec<PlanNode>,
    /// Output columns.
    pub scope: Scope,
    /// What the output carries: inserts only, or updates and deletes too.
    pub changelog: Changelog,
    /// Output columns that identify a row of an updating output, if known.
    pub upsert_key: Option<Vec<usize>>,
    /// Output positions of window_start and window_end, when the rows are a window's result.
    pub window_cols: Option<(usize, usize)>,
    pending_window: Option<PendingWindow>,
    pending_rank: Option<PendingRank>,
}

impl Rel {
    fn schema(&self) -> &Schema {
        &self.scope.schema
    }

    /// Two queries meeting in `op` (a join or a union), giving rows of `scope`.
    fn two_input(left: Rel, right: Rel, op: TwoInputOp, scope: Scope, changelog: Changelog) -> Rel {
        let op = PlanNode::new(op, &scope.schema, changelog);
        Rel {
            input: RelInput::Join(Box::new(JoinInput { left, right, op })),
            ops: Vec::new(),
            scope,
            changelog,
            upsert_key: None,
            window_cols: None,
            pending_window: None,
            pending_rank: None,
        }
    }

    /// Whether the output carries updates or deletes.
    pub fn updating(&self) -> bool {
        self.changelog.is_updating()
    }

    /// Appends `op`, reading the current output, writing `changelog` whose rows `upsert_key`
    /// identifies (columns of `op`'s output).
    fn push(&mut self, op: PlanOp, changelog: Changelog, upsert_key: Option<Vec<usize>>) {
        let mut node = PlanNode::new(op, self.schema(), changelog);
        node.upsert_key = upsert_key.clone();
        self.ops.push(node);
        self.changelog = changelog;
        self.upsert_key = upsert_key;
    }

    /// The first table the records come from (whose late-data output a window uses).
    pub fn source_table(&self) -> &str {
        match &self.input {
            RelInput::Table(t) => t,
            RelInput::Join(j) => j.left.source_table(),
        }
    }

    /// Fails if a window TVF or ROW_NUMBER is left without the construct that completes it.
    pub fn finish(&self) -> Result<()> {
        if self.pending_window.is_some() {
            return plan_err(
                "SESSION and COUNT_WINDOW table functions must be followed by GROUP BY window_start, window_end (a window aggregation)",
            );
        }
        if self.pending_rank.is_some() {
            return plan_err(
                "ROW_NUMBER() OVER (...) needs an outer query filtering on it (WHERE rn <= N)",
            );
        }
        Ok(())
    }
}

type Item = (Expr, String, TimeAttribute);

fn push_calc(rel: &mut Rel, filter: Option<Expr>, items: Vec<Item>) {
    let identity = filter.is_none()
        && items.len() == rel.schema().len()
        && items.iter().enumerate().all(|(i, (e, n, _))| {
            matches!(e, Expr::Column { index, .. } if *index == i)
                && *n == rel.schema().fields[i].name
        });
    let window_cols = rel.window_cols.and_then(|(ws, we)| {
        let pos = |c: usize| {
            items
                .iter()
                .position(|(e, _, _)| matches!(e, Expr::Column { index, .. } if *index == c))
        };
        Some((pos(ws)?, pos(we)?))
    });
    let fields: Vec<Field> = items
        .iter()
        .map(|(e, n, t)| Field {
            name: n.clone(),
            data_type: e.data_type(),
            nullable: true,
            time: *t,
        })
        .collect();
    // an upsert key survives a projection that keeps each of its columns as they are
    let upsert_key = rel.upsert_key.as_ref().and_then(|key| {
        key.iter()
            .map(|&k| {
                items
                    .iter()
                    .position(|(e, _, _)| matches!(e, Expr::Column { index, .. } if *index == k))
            })
            .collect::<Option<Vec<usize>>>()
    });
    if !identity {
        let names = items.iter().map(|(_, n, _)| n.clone()).collect();
        let exprs = items.into_iter().map(|(e, _, _)| e).collect();
        let changelog = rel.changelog;
        let mut node = PlanNode::new(
            PlanOp::Calc {
                filter,
                exprs,
                names,
            },
            rel.schema(),
            changelog,
        );
        node.upsert_key = upsert_key.clone().filter(|_| changelog.is_updating());
        rel.ops.push(node);
    }
    rel.upsert_key = upsert_key;
    let qualifiers = vec![None; fields.len()];
    rel.scope = Scope {
        schema: Schema::new(fields),
        qualifiers,
    };
    rel.window_cols = window_cols;
}

/// Plans one aggregate call (of a GROUP BY or an OVER aggregation): the function, DISTINCT, and its
/// argument, which is appended to the pre-aggregation projection `pre` under the name `arg_name`
/// gives it (from the argument and its position). FILTER is left to the caller.
fn agg_call(
    conv: &Converter<'_>,
    f: &sql::Function,
    pre: &mut Vec<Item>,
    arg_name: fn(&sql::Expr, usize) -> String,
) -> Result<AggCall> {
    let name = function_name(f);
    let Some(mut kind) = AggKind::by_name(&name) else {
        return plan_err(format!("unknown aggregate {name}"));
    };
    let distinct = matches!(&f.args, FunctionArguments::List(l) if l.duplicate_treatment == Some(DuplicateTreatment::Distinct));
    let args = function_args(f)?;
    let mut model = None;
    let (arg, arg_type) = match args.as_slice() {
        [Some(a), params @ ..] if kind.is_model() => {
            let (x, spec) = model_call(conv, kind, f, a, params)?;
            if distinct {
                return plan_err(format!("{name} does not take DISTINCT: `{f}`"));
            }
            model = Some(spec);
            let t = x.data_type();
            pre.push((x, arg_name(a, pre.len()), TimeAttribute::None));
            (Some(pre.len() - 1), t)
        }
        [] | [None] if kind == AggKind::Count => {
            kind = AggKind::CountStar;
            (None, DataType::BigInt)
        }
        [Some(a)] => {
            let x = conv.convert(a)?;
            let t = x.data_type();
            if matches!(kind, AggKind::Sum | AggKind::Avg) && !t.is_numeric() {
                return plan_err(format!("{name} needs a numeric argument, got {t}: `{f}`"));
            }
            pre.push((x, arg_name(a, pre.len()), TimeAttribute::None));
            (Some(pre.len() - 1), t)
        }
        _ => return plan_err(format!("{name} takes one argument: `{f}`")),
    };
    Ok(AggCall {
        kind,
        arg,
        distinct,
        arg_type,
        result_type: kind.result_type(arg_type),
        filter: None,
        model,
    })
}

/// Plans a forecasting or anomaly call: its value argument (numeric) and its constant
/// parameters, validated into a model.
fn model_call(
    conv: &Converter<'_>,
    kind: AggKind,
    f: &sql::Function,
    value: &sql::Expr,
    params: &[Option<&sql::Expr>],
) -> Result<(Expr, ModelSpec)> {
    let name = function_name(f).to_ascii_uppercase();
    let x = conv.convert(value)?;
    if !x.data_type().is_numeric() {
        return plan_err(format!(
            "{name} needs a numeric value, got {}: `{f}`",
            x.data_type()
        ));
    }
    let mut ps = Vec::with_capacity(params.len());
    for p in params {
        let Some(p) = p else {
            return plan_err(format!("{name}: `*` is not a parameter: `{f}`"));
        };
        let e = conv.convert(p)?;
        if !e.is_constant() {
            return plan_err(format!(
                "{name}: parameter `{p}` must be a constant (a number): `{f}`"
            ));
        }
        let v = match eval_const(&e)? {
            Value::Int(i) => i as f64,
            Value::Float(x) => x,
            Value::Decimal(d) => {
                d as f64 / 10f64.powi(tillflow_runtime::expr::scale_of(e.data_type()) as i32)
            }
            _ => return plan_err(format!("{name}: parameter `{p}` must be a number: `{f}`")),
        };
        ps.push(v);
    }
    let spec = ModelSpec::from_call(kind, &ps).or_else(|m| plan_err(format!("{m}: `{f}`")))?;
    Ok((x, spec))
}

/// Splits a join's `ON` condition over `[left (nl columns)..., right...]` into the equalities
/// between a left and a right column (the key: left columns, right columns counted from 0) and
/// the rest, ANDed (checked per joined row).
fn split_join_condition(
    on: Option<&sql::Expr>,
    scope: &Scope,
    nl: usize,
) -> Result<(Vec<usize>, Vec<usize>, Option<Expr>)> {
    let (mut left, mut right, mut residual) = (Vec::new(), Vec::new(), None);
    let Some(on) = on else {
        return Ok((left, right, residual));
    };
    let mut parts = Vec::new();
    conjuncts(on, &mut parts);
    let conv = Converter::new(scope);
    for p in parts {
        let e = conv.convert(&p)?;
        if e.data_type() != DataType::Boolean && e.data_type() != DataType::Null {
            return plan_err(format!("the join condition `{p}` is not a boolean"));
        }
        if let Some((a, b)) = equi_columns(&e, nl) {
            left.push(a);
            right.push(b - nl);
            continue;
        }
        residual = Some(match residual.take() {
            None => e,
            Some(r) => Expr::Binary {
                op: tillflow_runtime::expr::BinOp::And,
                left: Box::new(r),
                right: Box::new(e),
                ty: DataType::Boolean,
            },
        });
    }
    Ok((left, right, residual))
}

/// `a = b` between a column of the left input (`< nl`) and one of the right, of types whose
/// values encode alike (so equal values give equal keys).
fn equi_columns(e: &Expr, nl: usize) -> Option<(usize, usize)> {
    let Expr::Binary {
        op, left, right, ..
    } = e
    else {
        return None;
    };
    if *op != tillflow_runtime::expr::BinOp::Eq {
        return None;
    }
    let (Expr::Column { index: a, ty: ta }, Expr::Column { index: b, ty: tb }) =
        (left.as_ref(), right.as_ref())
    else {
        return None;
    };
    let same =
        ta == tb || (ta.is_integer() && tb.is_integer()) || (ta.is_string() && tb.is_string());
    if !same {
        return None;
    }
    match (*a < nl, *b < nl) {
        (true, false) => Some((*a, *b)),
        (false, true) => Some((*b, *a)),
        _ => None,
    }
}

fn conjuncts(e: &sql::Expr, out: &mut Vec<sql::Expr>) {
    match e {
        sql::Expr::BinaryOp {
            left,
            op: sql::BinaryOperator::And,
            right,
        } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        sql::Expr::Nested(inner) => conjuncts(inner, out),
        other => out.push(other.clone()),
    }
}

fn reads_column(e: &Expr, c: usize) -> bool {
    let mut found = false;
    visit_columns(e, &mut |i| found |= i == c);
    found
}

fn visit_columns(e: &Expr, f: &mut dyn FnMut(usize)) {
    match e {
        Expr::Column { index, .. } => f(*index),
        Expr::Literal { .. } | Expr::StrLiteral(_) => {}
        Expr::Unary { arg, .. } | Expr::Cast { arg, .. } => visit_columns(arg, f),
        Expr::Binary { left, right, .. } => {
            visit_columns(left, f);
            visit_columns(right, f);
        }
        Expr::Case {
            operand,
            whens,
            otherwise,
            ..
        } => {
            if let Some(o) = operand {
                visit_columns(o, f);
            }
            for (a, b) in whens {
                visit_columns(a, f);
                visit_columns(b, f);
            }
            if let Some(o) = otherwise {
                visit_columns(o, f);
            }
        }
        Expr::Call { args, .. } => args.iter().for_each(|a| visit_columns(a, f)),
        Expr::InList { arg, list, .. } => {
            visit_columns(arg, f);
            list.iter().for_each(|a| visit_columns(a, f));
        }
        Expr::Like { arg, pattern, .. } => {
            visit_columns(arg, f);
            visit_columns(pattern, f);
        }
    }
}

/// The bounds of an interval join: `right time + lower <= left time <= right time + upper`.
#[derive(Clone, Copy, Debug)]
struct IntervalBounds {
    left_time: usize,
    right_time: usize,
    lower_ms: i64,
    upper_ms: i64,
}

/// A time column, plus a constant interval (µs): `t`, `t + INTERVAL ..`, `t - INTERVAL ..`.
fn time_term(e: &Expr) -> Option<(usize, i64)> {
    let interval = |x: &Expr| match x {
        Expr::Literal {
            value: Value::Interval(us),
            ..
        } => Some(*us),
        _ => None,
    };
    match e {
        Expr::Column { index, .. } => Some((*index, 0)),
        Expr::Cast { arg, .. } => time_term(arg),
        Expr::Binary {
            op: BinOp::Add,
            left,
            right,
            ..
        } => match (
            time_term(left),
            interval(right),
            interval(left),
            time_term(right),
        ) {
            (Some((c, o)), Some(i), _, _) | (_, _, Some(i), Some((c, o))) => Some((c, o + i)),
            _ => None,
        },
        Expr::Binary {
            op: BinOp::Sub,
            left,
            right,
            ..
        } => {
            let (c, o) = time_term(left)?;
            Some((c, o - interval(right)?))
        }
        _ => None,
    }
}

/// Flink's interval-join bounds in `residual`'s conjuncts: comparisons between one left and one
/// right event-time column (the same two throughout), giving both a lower and an upper bound.
fn interval_bounds(residual: &Expr, left: &[usize], right: &[usize]) -> Option<IntervalBounds> {
    let mut parts = Vec::new();
    fn split<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
        match e {
            Expr::Binary {
                op: BinOp::And,
                left,
                right,
                ..
            } => {
                split(left, out);
                split(right, out);
            }
            other => out.push(other),
        }
    }
    split(residual, &mut parts);
    let (mut lower, mut upper, mut cols) = (None::<i64>, None::<i64>, None);
    for p in parts {
        let Expr::Binary {
            op,
            left: a,
            right: b,
            ..
        } = p
        else {
            continue;
        };
        if !matches!(op, BinOp::Lt | BinOp::LtEq | BinOp::Gt | BinOp::GtEq) {
            continue;
        }
        let (Some(ta), Some(tb)) = (time_term(a), time_term(b)) else {
            continue;
        };
        // as `left term op right term`
        let (l, r, op) = if left.contains(&ta.0) && right.contains(&tb.0) {
            (ta, tb, *op)
        } else if right.contains(&ta.0) && left.contains(&tb.0) {
            let flipped = match op {
                BinOp::Lt => BinOp::Gt,
                BinOp::LtEq => BinOp::GtEq,
                BinOp::Gt => BinOp::Lt,
                _ => BinOp::LtEq,
            };
            (tb, ta, flipped)
        } else {
            continue;
        };
        if cols.is_some_and(|c| c != (l.0, r.0)) {
            return None; // bounds on other time columns: not an interval join
        }
        cols = Some((l.0, r.0));
        // L + lo op R + ro  =>  L - R op ro - lo
        let c = (r.1 - l.1).div_euclid(1000);
        match op {
            BinOp::GtEq => lower = Some(lower.map_or(c, |x| x.max(c))),
            BinOp::Gt => lower = Some(lower.map_or(c + 1, |x| x.max(c + 1))),
            BinOp::LtEq => upper = Some(upper.map_or(c, |x| x.min(c))),
            _ => upper = Some(upper.map_or(c - 1, |x| x.min(c - 1))),
        }
    }
    let ((left_time, right_time), lower_ms, upper_ms) = (cols?, lower?, upper?);
    (lower_ms <= upper_ms).then_some(IntervalBounds {
        left_time,
        right_time,
        lower_ms,
        upper_ms,
    })
}

/// Whether `e` compares (`<`, `<=`, `>`, `>=`) an expression over a `left` column with one over
/// a `right` column: an event-time bound between the two sides of a join.
fn bounds_time(e: &Expr, left: &[usize], right: &[usize]) -> bool {
    let reads = |x: &Expr, cols: &[usize]| {
        let mut found = false;
        visit_columns(x, &mut |i| found |= cols.contains(&i));
        found
    };
    match e {
        Expr::Binary {
            op: BinOp::Lt | BinOp::LtEq | BinOp::Gt | BinOp::GtEq,
            left: a,
            right: b,
            ..
        } => (reads(a, left) && reads(b, right)) || (reads(a, right) && reads(b, left)),
        Expr::Binary {
            left: a, right: b, ..
        } => bounds_time(a, left, right) || bounds_time(b, left, right),
        _ => false,
    }
}

fn reads_column_at_or_above(e: &Expr, n: usize) -> bool {
    let mut found = false;
    visit_columns(e, &mut |i| found |= i >= n);
    found
}

/// Plans queries against a catalog.
pub struct Planner<'a> {
    catalog: &'a Catalog,
    ctes: BTreeMap<String, sql::Query>,
    /// What the user should know about how a query runs (printed before the job starts).
    pub notices: Vec<String>,
}

impl Planner<'_> {
    /// Where the window operators over `rel` write late rows: its source table's
    /// `'late-data.path'`, if it names one.
    fn late_target(&self, rel: &Rel) -> Option<LateTarget> {
        let table = rel.source_table();
        let path = self.catalog.table(table)?.spec.option("late-data.path")?;
        Some(LateTarget {
            table: table.to_owned(),
            path: path.to_owned(),
            schema: rel.schema().clone(),
        })
    }
}

fn interval_arg(e: &sql::Expr, what: &str) -> Result<i64> {
    let scope = Scope::default();
    let x = Converter::new(&scope).convert(e)?;
    match eval_const(&x)? {
        Value::Interval(us) if us > 0 => Ok(us),
        Value::Interval(_) => plan_err(format!("{what} must be positive: `{e}`")),
        _ => plan_err(format!(
            "{what} must be a day-time INTERVAL such as INTERVAL '1' MINUTE: `{e}`"
        )),
    }
}

fn offset_arg(e: Option<&sql::Expr>) -> Result<i64> {
    match e {
        None => Ok(0),
        Some(e) => {
            let scope = Scope::default();
            match eval_const(&Converter::new(&scope).convert(e)?)? {
                Value::Interval(us) => Ok(us),
                _ => plan_err(format!("window offset must be an INTERVAL: `{e}`")),
            }
        }
    }
}

impl<'a> Planner<'a> {
    /// A planner over `catalog`.
    pub fn new(catalog: &'a Catalog) -> Self {
        Planner {
            catalog,
            ctes: BTreeMap::new(),
            notices: Vec::new(),
        }
    }

    /// Plans a query.
    pub fn plan_query(&mut self, q: &sql::Query) -> Result<Rel> {
        let saved = self.ctes.clone();
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                self.ctes
                    .insert(cte.alias.name.value.clone(), (*cte.query).clone());
            }
        }
        if q.order_by.is_some() {
            return plan_err(format!("ORDER BY on a stream is not supported (Flink allows it only on a time attribute ascending): `{q}`"));
        }
        if q.limit_clause.is_some() || q.fetch.is_some() {
            return plan_err(format!("LIMIT on a stream is not supported yet: `{q}`"));
        }
        let rel = self.plan_set(q.body.as_ref());
        self.ctes = saved;
        rel
    }

    /// A query body: a SELECT, a nested query, or a `UNION ALL` of two bodies.
    fn plan_set(&mut self, body: &SetExpr) -> Result<Rel> {
        match body {
            SetExpr::Select(s) => self.plan_select(s),
            SetExpr::Query(inner) => self.plan_query(inner),
            SetExpr::SetOperation {
                op: sql::SetOperator::Union,
                set_quantifier,
                left,
                right,
            } => {
                if *set_quantifier != sql::SetQuantifier::All {
                    return plan_err(format!(
                        "UNION without ALL is not supported yet; write UNION ALL (and SELECT DISTINCT over it): `{body}`"
                    ));
                }
                let left = self.plan_set(left)?;
                let right = self.plan_set(right)?;
                self.union_all(left, right, body)
            }
            other => plan_err(format!(
                "{} is not supported yet (SELECT and UNION ALL are)",
                other
                    .to_string()
                    .split_whitespace()
                    .next()
                    .unwrap_or("this query")
            )),
        }
    }

    /// `left UNION ALL right`: the columns are matched by position, named as the left side's and
    /// cast to their common types; a column is a time attribute when it is one on both sides.
    fn union_all(&mut self, mut left: Rel, mut right: Rel, body: &SetExpr) -> Result<Rel> {
        left.finish()?;
        right.finish()?;
        let (nl, nr) = (left.schema().len(), right.schema().len());
        if nl != nr {
            return plan_err(format!(
                "UNION ALL of {nl} and {nr} columns: both sides need the same number: `{body}`"
            ));
        }
        let mut fields = Vec::with_capacity(nl);
        for (i, (l, r)) in left
            .schema()
            .fields
            .iter()
            .zip(&right.schema().fields)
            .enumerate()
        {
            let Some(ty) = DataType::common(l.data_type, r.data_type) else {
                return plan_err(format!(
                    "UNION ALL column {} (`{}`): {} and {} have no common type: `{body}`",
                    i + 1,
                    l.name,
                    l.data_type,
                    r.data_type
                ));
            };
            let time = if l.time == r.time {
                l.time
            } else {
                TimeAttribute::None
            };
            fields.push(Field {
                name: l.name.clone(),
                data_type: ty,
                nullable: true,
                time,
            });
        }
        for side in [&mut left, &mut right] {
            let cast = side
                .schema()
                .fields
                .iter()
                .zip(&fields)
                .any(|(f, u)| f.data_type != u.data_type);
            if cast {
                let items = side
                    .schema()
                    .fields
                    .iter()
                    .zip(&fields)
                    .enumerate()
                    .map(|(i, (f, u))| {
                        (
                            crate::expr::cast_to(Expr::col(i, f.data_type), u.data_type),
                            u.name.clone(),
                            f.time,
                        )
                    })
                    .collect();
                push_calc(side, None, items);
            }
        }
        let changelog = left.changelog.union(right.changelog);
        let scope = Scope::new(Schema::new(fields), None);
        Ok(Rel::two_input(
            left,
            right,
            TwoInputOp::Union,
            scope,
            changelog,
        ))
    }

    fn named_relation(&mut self, name: &str, alias: Option<&sql::TableAlias>) -> Result<Rel> {
        let qualifier = alias
            .map(|a| a.name.value.clone())
            .unwrap_or_else(|| name.rsplit('.').next().unwrap_or(name).to_owned());
        let mut rel = if let Some(q) = self.ctes.get(name).cloned() {
            self.plan_query(&q)?
        } else if let Some(v) = self.catalog.view(name) {
            let v = v.clone();
            let mut inner = Planner::new(self.catalog);
            let mut rel = inner.plan_query(&v.query)?;
            self.notices.append(&mut inner.notices);
            if !v.columns.is_empty() {
                if v.columns.len() != rel.schema().len() {
                    return plan_err(format!(
                        "view `{name}` names {} columns but its query has {}",
                        v.columns.len(),
                        rel.schema().len()
                    ));
                }
                for (f, n) in rel.scope.schema.fields.iter_mut().zip(&v.columns) {
                    f.name = n.clone();
                }
            }
            rel
        } else if let Some(t) = self.catalog.table(name) {
            Rel {
                input: RelInput::Table(t.name.clone()),
                ops: Vec::new(),
                scope: Scope::new(t.schema.clone(), None),
                changelog: if t.connector.source_is_changelog(&t.spec) {
                    Changelog::All
                } else {
                    Changelog::Insert
                },
                upsert_key: None,
                window_cols: None,
                pending_window: None,
                pending_rank: None,
            }
        } else {
            return plan_err(format!(
                "table or view `{name}` not found (known: {})",
                self.catalog.names()
            ));
        };
        rel.scope.qualifiers = vec![Some(qualifier); rel.schema().len()];
        if let Some(a) = alias {
            if !a.columns.is_empty() {
                if a.columns.len() != rel.schema().len() {
                    return plan_err(format!(
                        "alias `{}` names {} columns but `{name}` has {}",
                        a.name,
                        a.columns.len(),
                        rel.schema().len()
                    ));
                }
                for (f, c) in rel.scope.schema.fields.iter_mut().zip(&a.columns) {
                    f.name = c.name.value.clone();
                }
            }
        }
        Ok(rel)
    }

    fn plan_from(
        &mut self,
        from: &[sql::TableWithJoins],
        selection: &mut Option<sql::Expr>,
    ) -> Result<Rel> {
        let Some((first, more)) = from.split_first() else {
            return plan_err("SELECT without FROM is not supported yet");
        };
        let mut rel = self.plan_table_with_joins(first)?;
        // `FROM a, b WHERE ...` is an inner join on the WHERE condition
        for twj in more {
            let right = self.plan_table_with_joins(twj)?;
            let on = selection.take();
            rel = self.join(rel, right, JoinType::Inner, on.as_ref())?;
        }
        Ok(rel)
    }

    fn plan_table_with_joins(&mut self, twj: &sql::TableWithJoins) -> Result<Rel> {
        let mut rel = self.plan_factor(&twj.relation)?;
        for j in &twj.joins {
            use sql::{JoinConstraint as C, JoinOperator as J};
            let (kind, constraint) = match &j.join_operator {
                J::Join(c) | J::Inner(c) => (JoinType::Inner, Some(c)),
                J::Left(c) | J::LeftOuter(c) => (JoinType::Left, Some(c)),
                J::Right(c) | J::RightOuter(c) => (JoinType::Right, Some(c)),
                J::FullOuter(c) => (JoinType::Full, Some(c)),
                J::CrossJoin(_) => (JoinType::Inner, None),
                other => {
                    return plan_err(format!(
                        "this kind of join is not supported yet: `{j}` ({})",
                        format!("{other:?}").split('(').next().unwrap_or("?")
                    ))
                }
            };
            let on = match constraint {
                None | Some(C::None) => None,
                Some(C::On(e)) => Some(e.clone()),
                Some(_) => {
                    return plan_err(format!(
                        "JOIN ... USING and NATURAL JOIN are not supported yet; write ON a.col = b.col: `{j}`"
                    ))
                }
            };
            if let TableFactor::Table {
                name,
                alias,
                version: Some(version),
                ..
            } = &j.relation
            {
                rel = self.lookup_join(rel, name, alias.as_ref(), version, kind, on.as_ref())?;
                continue;
            }
            let right = self.plan_factor(&j.relation)?;
            rel = self.join(rel, right, kind, on.as_ref())?;
        }
        Ok(rel)
    }

    /// A regular join of `left` and `right`: the equalities of `on` between a column of each side
    /// become the join key, the rest is checked on each joined row.
    fn join(
        &mut self,
        left: Rel,
        right: Rel,
        kind: JoinType,
        on: Option<&sql::Expr>,
    ) -> Result<Rel> {
        left.finish()?;
        right.finish()?;
        let nl = left.schema().len();
        let mut fields = left.scope.schema.fields.clone();
        fields.extend(right.scope.schema.fields.iter().cloned());
        // a regular join's output has no time attributes (as in Flink): no windows after it
        for f in &mut fields {
            f.time = TimeAttribute::None;
        }
        let mut qualifiers = left.scope.qualifiers.clone();
        qualifiers.extend(right.scope.qualifiers.iter().cloned());
        let scope = Scope {
            schema: Schema::new(fields),
            qualifiers,
        };
        let (left_keys, right_keys, residual) = split_join_condition(on, &scope, nl)?;
        let rowtime = |rel: &Rel, offset: usize| -> Vec<usize> {
            (0..rel.schema().len())
                .filter(|&i| rel.schema().fields[i].time == TimeAttribute::Rowtime)
                .map(|i| i + offset)
                .collect()
        };
        let (left_times, right_times) = (rowtime(&left, 0), rowtime(&right, nl));
        let bounds = residual
            .as_ref()
            .and_then(|r| interval_bounds(r, &left_times, &right_times));
        let keys = [left_keys, right_keys];
        let widths = [nl, right.schema().len()];
        let interval = bounds.filter(|_| {
            kind == JoinType::Inner && !left.updating() && !right.updating() && !keys[0].is_empty()
        });
        let changelog = if left.updating() || right.updating() || kind != JoinType::Inner {
            Changelog::All
        } else {
            Changelog::Insert
        };
        let op = match interval {
            Some(b) => TwoInputOp::IntervalJoin {
                keys,
                widths,
                times: [b.left_time, b.right_time - nl],
                // how far a left row may precede / follow a matching right row (ms)
                left_before: -b.lower_ms,
                left_after: b.upper_ms,
                residual,
            },
            None => {
                if bounds.is_some()
                    || residual
                        .as_ref()
                        .is_some_and(|r| bounds_time(r, &left_times, &right_times))
                {
                    self.notices.push(format!(
                        "the join condition `{}` bounds one side's event time by the other's, but only an inner join of append-only inputs on equal keys with a lower and an upper bound runs as an interval join; this one runs as a regular join: both sides stay in state for good, and a row that arrives behind the watermark still joins",
                        on.map(|e| e.to_string()).unwrap_or_default()
                    ));
                }
                TwoInputOp::Join {
                    kind,
                    keys,
                    widths,
                    residual,
                }
            }
        };
        Ok(Rel::two_input(left, right, op, scope, changelog))
    }

    /// `JOIN dim FOR SYSTEM_TIME AS OF left.proc [AS d] ON left.k = d.k ...`: the left rows
    /// enriched by looking `dim` up (a jdbc/postgres table), as Flink's lookup join.
    fn lookup_join(
        &mut self,
        mut left: Rel,
        name: &sql::ObjectName,
        alias: Option<&sql::TableAlias>,
        version: &sql::TableVersion,
        kind: JoinType,
        on: Option<&sql::Expr>,
    ) -> Result<Rel> {
        let table_name = name.to_string().replace(['`', '"'], "");
        let Some(dim) = self.catalog.table(&table_name) else {
            return plan_err(format!(
                "lookup join: table `{table_name}` not found (known: {})",
                self.catalog.names()
            ));
        };
        let dim = dim.clone();
        let sql::TableVersion::ForSystemTimeAsOf(at) = version else {
            return plan_err(format!(
                "lookup join on `{table_name}`: use FOR SYSTEM_TIME AS OF"
            ));
        };
        left.finish()?;
        // FOR SYSTEM_TIME AS OF must name the left side's processing-time attribute
        let at = Converter::new(&left.scope).convert(at)?;
        let proctime = matches!(&at, Expr::Column { index, .. } if left.scope.schema.fields[*index].time == TimeAttribute::Proctime);
        if !proctime {
            return plan_err(format!(
                "lookup join on `{table_name}`: FOR SYSTEM_TIME AS OF must name a processing-time column of the stream (e.g. `proc AS PROCTIME()`); event-time temporal joins are not supported yet"
            ));
        }
        let left_outer = match kind {
            JoinType::Inner => false,
            JoinType::Left => true,
            other => {
                return plan_err(format!(
                    "lookup join on `{table_name}`: only INNER and LEFT joins, not {other:?}"
                ))
            }
        };
        let nl = left.schema().len();
        let qualifier = alias.map(|a| a.name.value.clone()).unwrap_or_else(|| {
            table_name
                .rsplit('.')
                .next()
                .unwrap_or(&table_name)
                .to_owned()
        });
        let dim_fields = dim.spec.schema.fields.clone();
        let mut fields = left.scope.schema.fields.clone();
        fields.extend(dim_fields.iter().cloned().map(|mut f| {
            f.time = TimeAttribute::None;
            f
        }));
        let mut qualifiers = left.scope.qualifiers.clone();
        qualifiers.extend(std::iter::repeat_n(Some(qualifier), dim_fields.len()));
        let scope = Scope {
            schema: Schema::new(fields),
            qualifiers,
        };
        let (left_keys, dim_keys, residual) = split_join_condition(on, &scope, nl)?;
        if dim_keys.is_empty() {
            return plan_err(format!(
                "lookup join on `{table_name}`: the ON clause needs an equality between a column of the stream and a column of `{table_name}` (the lookup key)"
            ));
        }
        // checks the table's lookup options now; it is opened when the job starts
        dim.connector.lookup(&dim.spec, &dim_keys)?;
        let changelog = left.changelog;
        left.ops.push(PlanNode::new(
            PlanOp::LookupJoin {
                target: LookupTarget {
                    spec: dim.spec.clone(),
                    connector: dim.connector,
                    keys: dim_keys,
                },
                left_keys,
                left_outer,
                residual,
            },
            &scope.schema,
            changelog,
        ));
        left.upsert_key = None;
        left.scope = scope;
        left.window_cols = None;
        Ok(left)
    }

    fn plan_factor(&mut self, relation: &TableFactor) -> Result<Rel> {
        match relation {
            TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } => self.named_relation(&name.to_string().replace(['`', '"'], ""), alias.as_ref()),
            TableFactor::Derived {
                subquery, alias, ..
            } => {
                let mut rel = self.plan_query(subquery)?;
                if let Some(a) = alias {
                    rel.scope.qualifiers = vec![Some(a.name.value.clone()); rel.schema().len()];
                    for (f, c) in rel.scope.schema.fields.iter_mut().zip(&a.columns) {
                        f.name = c.name.value.clone();
                    }
                }
                Ok(rel)
            }
            TableFactor::TableFunction { expr, alias } => {
                let mut rel = self.window_tvf(expr)?;
                if let Some(a) = alias {
                    rel.scope.qualifiers = vec![Some(a.name.value.clone()); rel.schema().len()];
                }
                Ok(rel)
            }
            other => plan_err(format!("unsupported FROM item `{other}`")),
        }
    }

    /// `TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), size))` and friends (the token pass removed `TABLE`).
    fn window_tvf(&mut self, expr: &sql::Expr) -> Result<Rel> {
        let sql::Expr::Function(f) = expr else {
            return plan_err(format!(
                "TABLE(...) must call a window function (TUMBLE, HOP, CUMULATE, SESSION): `{expr}`"
            ));
        };
        let name = function_name(f);
        // named arguments: DATA => .., TIMECOL => .., SIZE => ..
        let mut named: BTreeMap<String, &sql::Expr> = BTreeMap::new();
        let mut positional: Vec<&sql::Expr> = Vec::new();
        let mut partition_sql: Vec<sql::Expr> = Vec::new();
        if let FunctionArguments::List(l) = &f.args {
            for a in &l.args {
                match a {
                    sql::FunctionArg::Named {
                        name,
                        arg: sql::FunctionArgExpr::Expr(e),
                        ..
                    } => {
                        named.insert(name.value.to_ascii_uppercase(), e);
                    }
                    sql::FunctionArg::Unnamed(sql::FunctionArgExpr::Expr(sql::Expr::Function(
                        pf,
                    ))) if function_name(pf) == PARTITION_BY_FN => {
                        partition_sql = function_args(pf)?.into_iter().flatten().cloned().collect();
                    }
                    sql::FunctionArg::Unnamed(sql::FunctionArgExpr::Expr(e)) => positional.push(e),
                    other => return plan_err(format!("unsupported argument `{other}` of {name}")),
                }
            }
        }
        let params: &[&str] = match name.as_str() {
            "TUMBLE" => &["DATA", "TIMECOL", "SIZE", "OFFSET"],
            "HOP" => &["DATA", "TIMECOL", "SLIDE", "SIZE", "OFFSET"],
            "CUMULATE" => &["DATA", "TIMECOL", "STEP", "SIZE", "OFFSET"],
            "SESSION" => &["DATA", "TIMECOL", "GAP"],
            "COUNT_WINDOW" => &["DATA", "TIMECOL", "SIZE"],
            _ => {
                return plan_err(format!(
                    "unknown window table function {name} (use TUMBLE, HOP, CUMULATE, SESSION or COUNT_WINDOW)"
                ))
            }
        };
        let arg = |i: usize| -> Option<&sql::Expr> {
            named
                .get(params[i])
                .copied()
                .or_else(|| positional.get(i).copied())
        };
        let min = if matches!(name.as_str(), "TUMBLE" | "SESSION" | "COUNT_WINDOW") {
            3
        } else {
            4
        };
        if (0..min).any(|i| arg(i).is_none()) {
            return plan_err(format!("{name} takes ({}): `{f}`", params.join(", ")));
        }
        let data = arg(0).ok_or_else(|| SqlError::Plan(format!("{name}: missing DATA")))?;
        let table = match data {
            sql::Expr::Identifier(i) => i.value.clone(),
            sql::Expr::CompoundIdentifier(is) => is
                .iter()
                .map(|i| i.value.clone())
                .collect::<Vec<_>>()
                .join("."),
            other => {
                return plan_err(format!(
                    "{name}: the first argument must be TABLE name, got `{other}`"
                ))
            }
        };
        let mut rel = self.named_relation(&table, None)?;
        if rel.updating() {
            return plan_err(format!(
                "{name}: window functions need an append-only input, `{table}` is updating"
            ));
        }
        let time = arg(1).ok_or_else(|| SqlError::Plan(format!("{name}: missing DESCRIPTOR")))?;
        let time_name = match time {
            sql::Expr::Function(d) if function_name(d) == "DESCRIPTOR" => {
                match function_args(d)?.as_slice() {
                    [Some(sql::Expr::Identifier(i))] => i.value.clone(),
                    _ => return plan_err(format!("{name}: DESCRIPTOR takes one column: `{time}`")),
                }
            }
            other => {
                return plan_err(format!(
                    "{name}: the time column must be given as DESCRIPTOR(col), got `{other}`"
                ))
            }
        };
        let time_col = rel.scope.resolve(std::slice::from_ref(&time_name))?;
        let tf = rel.schema().fields[time_col].clone();
        let mode = match tf.time {
            _ if name == "COUNT_WINDOW" => {
                if !tf.data_type.is_timestamp() {
                    return plan_err(format!(
                        "COUNT_WINDOW: DESCRIPTOR({time_name}) must name a timestamp column, not {}",
                        tf.data_type
                    ));
                }
                TimeMode::Processing
            }
            TimeAttribute::Rowtime => TimeMode::Event,
            TimeAttribute::Proctime => TimeMode::Processing,
            TimeAttribute::None => {
                return plan_err(format!(
                    "{name}: column `{time_name}` is not a time attribute; declare WATERMARK FOR {time_name} AS ... on the table, or use a PROCTIME() column"
                ))
            }
        };
        let kind = match name.as_str() {
            "TUMBLE" => WindowKind::Aligned(AlignedWindow::Tumble {
                size: interval_arg(arg(2).unwrap_or(time), "TUMBLE size")?,
                offset: offset_arg(arg(3))?,
            }),
            "HOP" => {
                let slide = interval_arg(arg(2).unwrap_or(time), "HOP slide")?;
                let size = interval_arg(arg(3).unwrap_or(time), "HOP size")?;
                if size % slide != 0 {
                    return plan_err(format!("HOP size must be a multiple of its slide: `{f}`"));
                }
                WindowKind::Aligned(AlignedWindow::Hop {
                    slide,
                    size,
                    offset: offset_arg(arg(4))?,
                })
            }
            "CUMULATE" => {
                let step = interval_arg(arg(2).unwrap_or(time), "CUMULATE step")?;
                let size = interval_arg(arg(3).unwrap_or(time), "CUMULATE size")?;
                if size % step != 0 {
                    return plan_err(format!(
                        "CUMULATE size must be a multiple of its step: `{f}`"
                    ));
                }
                WindowKind::Aligned(AlignedWindow::Cumulate {
                    step,
                    size,
                    offset: offset_arg(arg(4))?,
                })
            }
            "COUNT_WINDOW" => {
                let size = arg(2).unwrap_or(time);
                let scope = Scope::default();
                match eval_const(&Converter::new(&scope).convert(size)?)? {
                    Value::Int(n) if n > 0 => WindowKind::Count { size: n as u64 },
                    _ => {
                        return plan_err(format!(
                            "COUNT_WINDOW size must be a positive integer (rows): `{size}`"
                        ))
                    }
                }
            }
            _ => WindowKind::Session {
                gap: interval_arg(arg(2).unwrap_or(time), "SESSION gap")?,
            },
        };
        if !partition_sql.is_empty() && name != "SESSION" && name != "COUNT_WINDOW" {
            return plan_err(format!(
                "PARTITION BY is only valid in SESSION and COUNT_WINDOW: `{f}`"
            ));
        }
        let conv = Converter::new(&rel.scope);
        let partition = partition_sql
            .iter()
            .map(|e| conv.convert(e))
            .collect::<Result<Vec<_>>>()?;
        let base = rel.schema().len();
        let (wtype, wtime) = match mode {
            _ if matches!(kind, WindowKind::Count { .. }) => (tf.data_type, TimeAttribute::None),
            TimeMode::Event => (
                if matches!(tf.data_type, DataType::TimestampLtz(_)) {
                    DataType::TimestampLtz(3)
                } else {
                    DataType::Timestamp(3)
                },
                TimeAttribute::Rowtime,
            ),
            TimeMode::Processing => (DataType::TimestampLtz(3), TimeAttribute::Proctime),
        };
        let q = rel.scope.qualifiers.first().cloned().flatten();
        for (n, t) in [
            ("window_start", TimeAttribute::None),
            ("window_end", TimeAttribute::None),
            ("window_time", wtime),
        ] {
            rel.scope.schema.fields.push(Field {
                name: n.into(),
                data_type: wtype,
                nullable: false,
                time: t,
            });
            rel.scope.qualifiers.push(q.clone());
        }
        rel.pending_window = Some(PendingWindow {
            kind,
            time_col,
            mode,
            partition,
            base,
        });
        Ok(rel)
    }

    fn projection_items(
        &self,
        rel: &Rel,
        items: &[SelectItem],
        conv: &Converter,
    ) -> Result<Vec<Item>> {
        let mut out = Vec::new();
        for (pos, item) in items.iter().enumerate() {
            match item {
                SelectItem::UnnamedExpr(e) => {
                    let x = conv.convert(e)?;
                    let t = time_of(&x, &conv.scope.schema);
                    out.push((x, derive_name(e, pos), t));
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    let x = conv.convert(expr)?;
                    let t = time_of(&x, &conv.scope.schema);
                    out.push((x, alias.value.clone(), t));
                }
                SelectItem::Wildcard(_) => {
                    for (i, f) in rel.schema().fields.iter().enumerate() {
                        out.push((Expr::col(i, f.data_type), f.name.clone(), f.time));
                    }
                }
                SelectItem::QualifiedWildcard(kind, _) => {
                    let q = kind.to_string().trim_end_matches(".*").to_owned();
                    let mut any = false;
                    for (i, f) in rel.schema().fields.iter().enumerate() {
                        if rel.scope.qualifiers[i]
                            .as_deref()
                            .is_some_and(|x| x.eq_ignore_ascii_case(&q))
                        {
                            out.push((Expr::col(i, f.data_type), f.name.clone(), f.time));
                            any = true;
                        }
                    }
                    if !any {
                        return plan_err(format!("`{q}.*`: no table or alias `{q}` in FROM"));
                    }
                }
                other => return plan_err(format!("unsupported select item `{other}`")),
            }
        }
        Ok(out)
    }

    fn plan_select(&mut self, s: &sql::Select) -> Result<Rel> {
        let mut where_sql = s.selection.clone();
        let mut rel = self.plan_from(&s.from, &mut where_sql)?;
        if let Some(rank) = rel.pending_rank.take() {
            let mut parts = Vec::new();
            if let Some(w) = &where_sql {
                conjuncts(w, &mut parts);
            }
            let mut limit = None;
            let mut rest = Vec::new();
            for p in parts {
                match rank_limit(&p, &rel.scope, rank.rn_col) {
                    Some(n) => limit = Some(limit.map_or(n, |l: usize| l.min(n))),
                    None => rest.push(p),
                }
            }
            let Some(limit) = limit else {
                return plan_err(
                    "a ROW_NUMBER() query needs WHERE rn <= N (or rn = 1) in the outer query",
                );
            };
            // does the outer query read the row number? (if not, rank shifts need no updates)
            let conv = Converter::new(&rel.scope);
            let emits_rn = s.projection.iter().any(|item| match item {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => conv
                    .convert(e)
                    .map(|x| reads_column(&x, rank.rn_col))
                    .unwrap_or(true),
                _ => true,
            });
            let (op, changelog) = match rank.window_end {
                Some(window_end) => (
                    PlanOp::WindowRank {
                        window_end,
                        partition: rank.partition,
                        order: rank.order,
                        limit,
                        emit_row_number: true,
                    },
                    rel.changelog,
                ),
                None if rel.updating() => {
                    // ranking rows that change (a running aggregate's): every row is kept,
                    // retractions move the next row up
                    (
                        PlanOp::Rank {
                            partition: rank.partition,
                            order: rank.order,
                            limit,
                            emit_row_number: emits_rn,
                            over_updates: true,
                        },
                        Changelog::All,
                    )
                }
                None => {
                    // keep-first deduplication only ever inserts: on processing time at once,
                    // on event time once the watermark passes the row (Flink 2.3's rows); every
                    // other ranking updates
                    let keep_first = limit == 1
                        && !emits_rn
                        && rank.order.len() == 1
                        && !rank.order[0].descending;
                    if keep_first && rank.order_time == Some(TimeAttribute::Rowtime) {
                        (
                            PlanOp::Deduplicate {
                                time_col: rank.order[0].col,
                                partition: rank.partition,
                            },
                            Changelog::Insert,
                        )
                    } else {
                        let insert_only =
                            keep_first && rank.order_time == Some(TimeAttribute::Proctime);
                        // keep-last deduplication only updates; other rankings also delete
                        let keep_last = limit == 1 && !emits_rn && rank.order_time.is_some();
                        let changelog = if insert_only {
                            Changelog::Insert
                        } else if keep_last {
                            Changelog::Updates
                        } else {
                            Changelog::All
                        };
                        (
                            PlanOp::Rank {
                                partition: rank.partition,
                                order: rank.order,
                                limit,
                                emit_row_number: emits_rn,
                                over_updates: false,
                            },
                            changelog,
                        )
                    }
                }
            };
            let mut node = PlanNode::new(op, &rank.input, changelog);
            let mut ranked = rank.input.clone();
            let rn_name = rank.post.get(rank.rn_col).map(|p| p.1.clone());
            ranked.fields.push(Field::new(
                rn_name.unwrap_or_else(|| "$rn".into()),
                DataType::BigInt,
            ));
            if changelog.is_updating() && limit == 1 {
                node.upsert_key = Some(match &node.op {
                    PlanOp::Rank { partition, .. } => partition.clone(),
                    _ => Vec::new(),
                });
            }
            let key = node.upsert_key.clone();
            rel.ops.push(node);
            rel.changelog = changelog;
            let (names, exprs): (Vec<String>, Vec<Expr>) = rank
                .post
                .iter()
                .map(|(e, n, _)| (n.clone(), e.clone()))
                .unzip();
            let post_key = key.and_then(|key| {
                key.iter()
                    .map(|&k| {
                        exprs
                            .iter()
                            .position(|e| matches!(e, Expr::Column { index, .. } if *index == k))
                    })
                    .collect::<Option<Vec<usize>>>()
            });
            let mut calc = PlanNode::new(
                PlanOp::Calc {
                    filter: None,
                    exprs,
                    names,
                },
                &Schema::new(ranked.fields),
                changelog,
            );
            calc.upsert_key = post_key.clone();
            rel.ops.push(calc);
            rel.upsert_key = post_key;
            where_sql = rest.into_iter().reduce(|a, b| sql::Expr::BinaryOp {
                left: Box::new(a),
                op: sql::BinaryOperator::And,
                right: Box::new(b),
            });
        }
        let group_sql: Vec<sql::Expr> = match &s.group_by {
            GroupByExpr::Expressions(v, mods) if mods.is_empty() => v.clone(),
            other => return plan_err(format!("unsupported `{other}`")),
        };
        let mut aggs = Vec::new();
        for item in &s.projection {
            if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
                collect_aggregates(e, &mut aggs);
            }
        }
        if let Some(h) = &s.having {
            collect_aggregates(h, &mut aggs);
        }
        if !group_sql.is_empty() || !aggs.is_empty() {
            return self.plan_aggregate(s, rel, where_sql.as_ref(), &group_sql, aggs);
        }
        if s.having.is_some() {
            return plan_err("HAVING needs GROUP BY or an aggregate");
        }
        if let Some(w) = rel.pending_window.take() {
            // a window table function without aggregation: assign windows to each row
            let WindowKind::Aligned(kind) = w.kind else {
                return plan_err(
                    "SESSION and COUNT_WINDOW need a GROUP BY window_start, window_end aggregation above them",
                );
            };
            let late = self.late_target(&rel);
            rel.push(
                PlanOp::WindowTableFunction {
                    window: kind,
                    mode: w.mode,
                    time_col: w.time_col,
                    late,
                },
                Changelog::Insert,
                None,
            );
            rel.window_cols = Some((w.base, w.base + 1));
        }
        let conv = Converter::new(&rel.scope);
        let filter = where_sql.as_ref().map(|w| conv.convert(w)).transpose()?;
        if let Some(f) = &filter {
            if f.data_type() != DataType::Boolean {
                return plan_err(format!("WHERE must be a condition, got {}", f.data_type()));
            }
        }
        // aggregates OVER a window of rows: an OVER aggregation
        let mut overs = Vec::new();
        for item in &s.projection {
            if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
                collect_over_aggregates(e, &mut overs);
            }
        }
        if !overs.is_empty() {
            return self.plan_over(s, rel, filter, overs);
        }
        // ROW_NUMBER() OVER (...) in the projection
        let rank_pos = s.projection.iter().position(|i| match i {
            SelectItem::UnnamedExpr(sql::Expr::Function(f))
            | SelectItem::ExprWithAlias {
                expr: sql::Expr::Function(f),
                ..
            } => f.over.is_some(),
            _ => false,
        });
        if let Some(rp) = rank_pos {
            if let Some(f) = filter {
                let items: Vec<Item> = rel
                    .schema()
                    .fields
                    .iter()
                    .enumerate()
                    .map(|(i, fl)| (Expr::col(i, fl.data_type), fl.name.clone(), fl.time))
                    .collect();
                push_calc(&mut rel, Some(f), items);
            }
            return self.plan_rank_projection(s, rel, rp);
        }
        let items = self.projection_items(&rel, &s.projection, &conv)?;
        push_calc(&mut rel, filter, items);
        if let Some(sql::Distinct::Distinct) = &s.distinct {
            let n = rel.schema().len();
            let changelog = rel.changelog.aggregated();
            rel.push(
                PlanOp::GroupAggregate {
                    keys: (0..n).collect(),
                    calls: vec![],
                },
                changelog,
                Some((0..n).collect()),
            );
            rel.window_cols = None;
            for f in rel.scope.schema.fields.iter_mut() {
                f.time = TimeAttribute::None;
            }
        }
        Ok(rel)
    }

    /// `agg(x) OVER (PARTITION BY … ORDER BY time [frame])` in the SELECT list: every call must
    /// use the same window (as in Flink); the output is the input row with the aggregates.
    fn plan_over(
        &mut self,
        s: &sql::Select,
        mut rel: Rel,
        filter: Option<Expr>,
        overs: Vec<sql::Function>,
    ) -> Result<Rel> {
        if rel.updating() {
            return plan_err("OVER aggregation needs an insert-only input (as in Flink)");
        }
        // the window of each call, named windows resolved
        let lookup = |name: &sql::Ident| -> Result<sql::WindowSpec> {
            let mut name = name.clone();
            for _ in 0..8 {
                match s
                    .named_window
                    .iter()
                    .find(|d| d.0.value.eq_ignore_ascii_case(&name.value))
                {
                    Some(sql::NamedWindowDefinition(_, sql::NamedWindowExpr::WindowSpec(w))) => {
                        return Ok(w.clone())
                    }
                    Some(sql::NamedWindowDefinition(_, sql::NamedWindowExpr::NamedWindow(n))) => {
                        name = n.clone()
                    }
                    None => break,
                }
            }
            plan_err(format!("no window `{name}` in the WINDOW clause"))
        };
        let mut spec: Option<sql::WindowSpec> = None;
        for f in &overs {
            let w = match &f.over {
                Some(sql::WindowType::WindowSpec(w)) => w.clone(),
                Some(sql::WindowType::NamedWindow(n)) => lookup(n)?,
                None => continue,
            };
            match &spec {
                None => spec = Some(w),
                Some(first) if *first == w => {}
                Some(first) => {
                    return plan_err(format!(
                        "all OVER aggregates of one SELECT must use the same window (as in Flink): `{first}` and `{w}`"
                    ))
                }
            }
        }
        let Some(spec) = spec else {
            return plan_err("OVER without a window");
        };
        let conv = Converter::new(&rel.scope);
        let col_of = |e: &sql::Expr, what: &str| -> Result<usize> {
            match conv.convert(e)? {
                Expr::Column { index, .. } => Ok(index),
                _ => plan_err(format!(
                    "{what} of an OVER window must name a column: `{e}`"
                )),
            }
        };
        let partition = spec
            .partition_by
            .iter()
            .map(|e| col_of(e, "PARTITION BY"))
            .collect::<Result<Vec<_>>>()?;
        let time_col = match spec.order_by.as_slice() {
            [o] if !matches!(o.options.sort, Some(sql::OrderBySort::Desc)) => {
                col_of(&o.expr, "ORDER BY")?
            }
            _ => {
                return plan_err(format!(
                    "an OVER window needs ORDER BY one time attribute, ascending (as in Flink): `{spec}`"
                ))
            }
        };
        let time = match rel.schema().fields[time_col].time {
            TimeAttribute::Rowtime => Some(time_col),
            TimeAttribute::Proctime => None,
            TimeAttribute::None => {
                return plan_err(format!(
                    "OVER windows must be ordered by a time attribute (a rowtime column with a WATERMARK, or PROCTIME()); `{}` is not one",
                    rel.schema().fields[time_col].name
                ))
            }
        };
        let preceding = |e: &sql::Expr| -> Result<Value> {
            let x = conv.convert(e)?;
            if !x.is_constant() {
                return plan_err(format!("an OVER frame bound must be a constant: `{e}`"));
            }
            eval_const(&x)
        };
        let frame = match &spec.window_frame {
            None => OverFrame::RangeUnbounded,
            Some(fr) => {
                if !matches!(fr.end_bound, None | Some(sql::WindowFrameBound::CurrentRow)) {
                    return plan_err(format!(
                        "an OVER frame must end at CURRENT ROW (as in Flink's streaming mode): `{spec}`"
                    ));
                }
                match (&fr.units, &fr.start_bound) {
                    (sql::WindowFrameUnits::Rows, sql::WindowFrameBound::Preceding(None)) => {
                        OverFrame::RowsUnbounded
                    }
                    (sql::WindowFrameUnits::Range, sql::WindowFrameBound::Preceding(None)) => {
                        OverFrame::RangeUnbounded
                    }
                    (sql::WindowFrameUnits::Rows, sql::WindowFrameBound::CurrentRow) => {
                        OverFrame::Rows(0)
                    }
                    (sql::WindowFrameUnits::Range, sql::WindowFrameBound::CurrentRow) => {
                        OverFrame::Range(0)
                    }
                    (sql::WindowFrameUnits::Rows, sql::WindowFrameBound::Preceding(Some(n))) => {
                        match preceding(n)? {
                            Value::Int(n) if n >= 0 => OverFrame::Rows(n as u64),
                            _ => {
                                return plan_err(format!(
                                    "ROWS … PRECEDING needs a row count ≥ 0: `{spec}`"
                                ))
                            }
                        }
                    }
                    (sql::WindowFrameUnits::Range, sql::WindowFrameBound::Preceding(Some(n))) => {
                        match preceding(n)? {
                            Value::Interval(us) if us >= 0 && time.is_some() => {
                                OverFrame::Range(us)
                            }
                            Value::Interval(_) => {
                                return plan_err(
                                    "a bounded RANGE frame over processing time is not supported yet; use ROWS",
                                )
                            }
                            _ => {
                                return plan_err(format!(
                                    "RANGE … PRECEDING needs an INTERVAL: `{spec}`"
                                ))
                            }
                        }
                    }
                    _ => return plan_err(format!("unsupported OVER frame in `{spec}`")),
                }
            }
        };
        // pre-projection: the input columns, then the calls' arguments
        let n = rel.schema().len();
        let qualifiers = rel.scope.qualifiers.clone();
        let mut pre: Vec<Item> = rel
            .schema()
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| (Expr::col(i, f.data_type), f.name.clone(), f.time))
            .collect();
        let mut calls = Vec::new();
        for f in &overs {
            let call = agg_call(&conv, f, &mut pre, |_, n| format!("$arg{n}"))?;
            if call.distinct {
                return plan_err(format!(
                    "DISTINCT in an OVER aggregate is not supported yet: `{f}`"
                ));
            }
            if f.filter.is_some() {
                return plan_err(format!(
                    "FILTER in an OVER aggregate is not supported: `{f}`"
                ));
            }
            calls.push(call);
        }
        push_calc(&mut rel, filter, pre);
        for (i, q) in qualifiers.into_iter().enumerate() {
            rel.scope.qualifiers[i] = q;
        }
        let input = rel.scope.clone();
        let base = input.schema.len();
        rel.push(
            PlanOp::OverAggregate {
                partition,
                time,
                frame,
                calls: calls.clone(),
            },
            Changelog::Insert,
            None,
        );
        let mut fields = input.schema.fields.clone();
        let mut qualifiers = input.qualifiers.clone();
        for (j, c) in calls.iter().enumerate() {
            fields.push(Field::new(format!("$over{j}"), c.result_type));
            qualifiers.push(None);
        }
        let out_scope = Scope {
            qualifiers,
            schema: Schema::new(fields),
        };
        let agg_scope = AggScope {
            input: &input,
            groups: (0..n)
                .map(|i| (Expr::col(i, input.schema.fields[i].data_type), i))
                .collect(),
            aggs: overs
                .iter()
                .cloned()
                .enumerate()
                .map(|(j, f)| (f, base + j, calls[j].result_type))
                .collect(),
            window: None,
            window_type: DataType::Timestamp(3),
        };
        rel.scope = out_scope.clone();
        let post_conv = Converter {
            scope: &out_scope,
            agg: Some(&agg_scope),
        };
        let items = self.projection_items(&rel, &s.projection, &post_conv)?;
        push_calc(&mut rel, None, items);
        Ok(rel)
    }

    fn plan_rank_projection(
        &mut self,
        s: &sql::Select,
        mut rel: Rel,
        rank_pos: usize,
    ) -> Result<Rel> {
        let (f, rn_name) = match &s.projection[rank_pos] {
            SelectItem::UnnamedExpr(sql::Expr::Function(f)) => (f, format!("EXPR${rank_pos}")),
            SelectItem::ExprWithAlias {
                expr: sql::Expr::Function(f),
                alias,
            } => (f, alias.value.clone()),
            _ => return plan_err("unsupported ranking item"),
        };
        let name = function_name(f);
        if name != "ROW_NUMBER" {
            return plan_err(format!(
                "{name}() OVER is not supported yet (ROW_NUMBER() is)"
            ));
        }
        let Some(sql::WindowType::WindowSpec(spec)) = &f.over else {
            return plan_err("named windows are not supported");
        };
        let conv = Converter::new(&rel.scope);
        let col_of = |e: &sql::Expr| -> Result<usize> {
            match conv.convert(e)? {
                Expr::Column { index, .. } => Ok(index),
                _ => plan_err(format!(
                    "PARTITION BY / ORDER BY of ROW_NUMBER() must name columns: `{e}`"
                )),
            }
        };
        let partition = spec
            .partition_by
            .iter()
            .map(col_of)
            .collect::<Result<Vec<_>>>()?;
        let mut order = Vec::new();
        for o in &spec.order_by {
            let descending = matches!(o.options.sort, Some(sql::OrderBySort::Desc));
            order.push(SortKey {
                col: col_of(&o.expr)?,
                descending,
                nulls_first: o.options.nulls_first.unwrap_or(!descending),
            });
        }
        if order.is_empty() {
            return plan_err("ROW_NUMBER() needs ORDER BY");
        }
        let window_end = rel
            .window_cols
            .filter(|(ws, we)| partition.contains(ws) && partition.contains(we))
            .map(|(_, we)| we);
        let order_time = match order.as_slice() {
            [k] => Some(rel.schema().fields[k.col].time).filter(|t| *t != TimeAttribute::None),
            _ => None,
        };
        // projection over [input..., rn]
        let n = rel.schema().len();
        let mut ext = rel.scope.clone();
        ext.schema
            .fields
            .push(Field::new(rn_name.clone(), DataType::BigInt));
        ext.qualifiers.push(None);
        let conv_ext = Converter::new(&ext);
        let mut post = Vec::new();
        for (pos, item) in s.projection.iter().enumerate() {
            if pos == rank_pos {
                post.push((
                    Expr::col(n, DataType::BigInt),
                    rn_name.clone(),
                    TimeAttribute::None,
                ));
                continue;
            }
            let mut one = self.projection_items(&rel, std::slice::from_ref(item), &conv_ext)?;
            post.append(&mut one);
        }
        let rn_col = post
            .iter()
            .position(|(e, _, _)| matches!(e, Expr::Column { index, .. } if *index == n))
            .unwrap_or(0);
        let window_cols = rel.window_cols.and_then(|(ws, we)| {
            let pos = |c: usize| {
                post.iter()
                    .position(|(e, _, _)| matches!(e, Expr::Column { index, .. } if *index == c))
            };
            Some((pos(ws)?, pos(we)?))
        });
        let fields = post
            .iter()
            .map(|(e, nm, t)| Field {
                name: nm.clone(),
                data_type: e.data_type(),
                nullable: true,
                time: *t,
            })
            .collect();
        rel.window_cols = window_cols;
        let input = std::mem::replace(&mut rel.scope.schema, Schema::new(Vec::new()));
        rel.scope = Scope {
            schema: Schema::new(fields),
            qualifiers: vec![None; post.len()],
        };
        rel.pending_rank = Some(PendingRank {
            partition,
            order,
            order_time,
            input,
            window_end,
            post,
            rn_col,
        });
        Ok(rel)
    }

    fn plan_aggregate(
        &mut self,
        s: &sql::Select,
        mut rel: Rel,
        where_sql: Option<&sql::Expr>,
        group_sql: &[sql::Expr],
        aggs: Vec<sql::Function>,
    ) -> Result<Rel> {
        let input = rel.scope.clone();
        let conv = Converter::new(&input);
        // legacy group windows
        let mut legacy: Option<(WindowKind, usize, TimeMode)> = None;
        let mut keys_sql = Vec::new();
        for g in group_sql {
            if let sql::Expr::Function(f) = g {
                let name = function_name(f);
                if matches!(name.as_str(), "TUMBLE" | "HOP" | "SESSION") && f.over.is_none() {
                    if legacy.is_some() || rel.pending_window.is_some() {
                        return plan_err("only one window per GROUP BY");
                    }
                    legacy = Some(self.legacy_window(&name, f, &input)?);
                    continue;
                }
            }
            keys_sql.push(g);
        }
        let mut keys: Vec<Expr> = keys_sql
            .iter()
            .map(|g| conv.convert(g))
            .collect::<Result<_>>()?;
        let filter = where_sql.map(|w| conv.convert(w)).transpose()?;
        // window from a TVF
        let tvf = rel.pending_window.take();
        if let Some(w) = &tvf {
            let mut rest = Vec::new();
            let mut rest_sql = Vec::new();
            let mut has = [false; 3];
            for (k, ksql) in keys.into_iter().zip(keys_sql.iter().copied()) {
                match &k {
                    Expr::Column { index, .. } if (w.base..w.base + 3).contains(index) => {
                        has[index - w.base] = true;
                    }
                    _ => {
                        rest.push(k);
                        rest_sql.push(ksql);
                    }
                }
            }
            keys_sql = rest_sql;
            if !(has[0] && has[1]) {
                return plan_err("a window aggregation must GROUP BY window_start and window_end");
            }
            if let Some(f) = &filter {
                if reads_column_at_or_above(f, w.base) {
                    return plan_err("WHERE on window_start/window_end/window_time before the window aggregation is not supported");
                }
            }
            for k in &rest {
                if reads_column_at_or_above(k, w.base) {
                    return plan_err("GROUP BY expressions over window columns are not supported; group by window_start, window_end");
                }
            }
            keys = rest;
        }
        let window = match (&tvf, legacy) {
            (Some(w), _) => Some((w.kind, w.time_col, w.mode, w.partition.clone())),
            (None, Some((k, t, m))) => Some((k, t, m, Vec::new())),
            (None, None) => None,
        };
        // pre-aggregation projection: keys, aggregate arguments and filters, time column
        let mut pre: Vec<Item> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                (
                    k.clone(),
                    key_name(keys_sql.get(i).copied(), i),
                    TimeAttribute::None,
                )
            })
            .collect();
        let mut calls = Vec::new();
        let mut agg_types = Vec::new();
        for f in &aggs {
            let mut call = agg_call(&conv, f, &mut pre, |a, _| a.to_string())?;
            if call.model.is_some() && matches!(window, Some((WindowKind::Session { .. }, ..))) {
                return plan_err(format!(
                    "{} cannot be used in a SESSION window (sessions merge, and a forecast cannot): `{f}`",
                    function_name(f)
                ));
            }
            call.filter = match &f.filter {
                Some(cond) => {
                    let c = conv.convert(cond)?;
                    pre.push((c, format!("$filter{}", calls.len()), TimeAttribute::None));
                    Some(pre.len() - 1)
                }
                None => None,
            };
            agg_types.push(call.result_type);
            calls.push(call);
        }
        let k = keys.len();
        let m = calls.len();
        let time_idx = window.as_ref().map(|(_, t, _, _)| {
            let f = &input.schema.fields[*t];
            pre.push((Expr::col(*t, f.data_type), f.name.clone(), f.time));
            pre.len() - 1
        });
        push_calc(&mut rel, filter, pre);
        let late = if window.is_some() {
            self.late_target(&rel)
        } else {
            None
        };
        // the aggregate operator and the positions of keys in its output
        let mut key_out: Vec<usize> = (0..k).collect();
        let mut wtype = DataType::Timestamp(3);
        let mut wattr = TimeAttribute::Rowtime;
        match &window {
            Some((WindowKind::Aligned(a), _, mode, _)) => {
                rel.push(
                    PlanOp::WindowAggregate {
                        window: *a,
                        mode: *mode,
                        time_col: time_idx.unwrap_or(0),
                        keys: k,
                        calls,
                        late,
                    },
                    Changelog::Insert,
                    None,
                );
                set_window_types(&input, window.as_ref(), &mut wtype, &mut wattr);
            }
            Some((WindowKind::Session { gap }, _, mode, partition)) => {
                let mut part = Vec::new();
                for p in partition {
                    match keys.iter().position(|x| x == p) {
                        Some(i) => part.push(i),
                        None => {
                            return plan_err(
                                "SESSION PARTITION BY columns must also be in GROUP BY",
                            )
                        }
                    }
                }
                if tvf.is_none() {
                    part = (0..k).collect(); // legacy SESSION: sessions per group key
                } else if part.len() != k {
                    // Flink plans this case as a non-windowed GroupAggregate over the TVF (an
                    // updating result); rather than answer differently, refuse it.
                    return plan_err(
                        "SESSION windows must PARTITION BY exactly the GROUP BY keys (besides window_start, window_end); Flink plans other key sets as a non-windowed aggregation, which tillflow does not support yet",
                    );
                }
                let group: Vec<usize> = (0..k).filter(|i| !part.contains(i)).collect();
                for (pos, key) in part.iter().chain(group.iter()).enumerate() {
                    key_out[*key] = pos;
                }
                rel.push(
                    PlanOp::SessionWindowAggregate {
                        gap: *gap,
                        mode: *mode,
                        time_col: time_idx.unwrap_or(0),
                        partition: part,
                        group,
                        calls,
                        late,
                    },
                    Changelog::Insert,
                    None,
                );
                set_window_types(&input, window.as_ref(), &mut wtype, &mut wattr);
            }
            Some((WindowKind::Count { size }, _, _, partition)) => {
                let same_keys = partition.len() == k && partition.iter().all(|p| keys.contains(p));
                if !same_keys {
                    return plan_err(
                        "COUNT_WINDOW must PARTITION BY exactly the GROUP BY keys (besides window_start, window_end)",
                    );
                }
                rel.push(
                    PlanOp::CountWindowAggregate {
                        size: *size,
                        time_col: time_idx.unwrap_or(0),
                        keys: k,
                        calls,
                    },
                    Changelog::Insert,
                    None,
                );
                if let Some(w) = &tvf {
                    wtype = input.schema.fields[w.base].data_type;
                }
                wattr = TimeAttribute::None;
            }
            None => {
                let changelog = rel.changelog.aggregated();
                rel.push(
                    PlanOp::GroupAggregate {
                        keys: (0..k).collect(),
                        calls,
                    },
                    changelog,
                    Some((0..k).collect()),
                );
            }
        }
        // the aggregate's output scope
        let mut fields = vec![Field::new("", DataType::Null); k];
        for i in 0..k {
            fields[key_out[i]] =
                Field::new(key_name(keys_sql.get(i).copied(), i), keys[i].data_type());
        }
        for (j, t) in agg_types.iter().enumerate() {
            fields.push(Field::new(format!("EXPR${}", k + j), *t));
        }
        let mut window_out = None;
        if window.is_some() {
            let base = k + m;
            fields.push(Field {
                name: "window_start".into(),
                data_type: wtype,
                nullable: false,
                time: TimeAttribute::None,
            });
            fields.push(Field {
                name: "window_end".into(),
                data_type: wtype,
                nullable: false,
                time: TimeAttribute::None,
            });
            fields.push(Field {
                name: "window_time".into(),
                data_type: wtype,
                nullable: false,
                time: wattr,
            });
            window_out = Some((base, base + 1, base + 2));
        }
        let out_scope = Scope {
            qualifiers: vec![None; fields.len()],
            schema: Schema::new(fields),
        };
        let mut groups: Vec<(Expr, usize)> = keys
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, e)| (e, key_out[i]))
            .collect();
        if let (Some(w), Some((ws, we, wt))) = (&tvf, window_out) {
            let outs = [ws, we, wt];
            for (which, out) in outs.iter().enumerate() {
                let f = &input.schema.fields[w.base + which];
                groups.push((Expr::col(w.base + which, f.data_type), *out));
            }
        }
        let agg_scope = AggScope {
            input: &input,
            groups,
            aggs: aggs
                .iter()
                .cloned()
                .enumerate()
                .map(|(j, f)| (f, k + j, agg_types[j]))
                .collect(),
            window: window_out,
            window_type: wtype,
        };
        rel.scope = out_scope.clone();
        rel.window_cols = window_out.map(|(ws, we, _)| (ws, we));
        let post_conv = Converter {
            scope: &out_scope,
            agg: Some(&agg_scope),
        };
        let having = s
            .having
            .as_ref()
            .map(|h| post_conv.convert(h))
            .transpose()?;
        if s.projection.iter().any(|i| {
            matches!(
                i,
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
            )
        }) {
            return plan_err("SELECT * is not allowed in an aggregate query");
        }
        let mut items = self.projection_items(&rel, &s.projection, &post_conv)?;
        for (e, _, t) in items.iter_mut() {
            if let (Expr::Column { index, .. }, Some((_, _, wt))) = (&*e, window_out) {
                if *index == wt {
                    *t = wattr;
                }
            }
        }
        push_calc(&mut rel, having, items);
        Ok(rel)
    }

    fn legacy_window(
        &self,
        name: &str,
        f: &sql::Function,
        input: &Scope,
    ) -> Result<(WindowKind, usize, TimeMode)> {
        let args = function_args(f)?;
        let args: Vec<&sql::Expr> = args.into_iter().flatten().collect();
        let Some(time) = args.first() else {
            return plan_err(format!(
                "{name}(time_attr, interval...) needs a time column: `{f}`"
            ));
        };
        let conv = Converter::new(input);
        let col = match conv.convert(time)? {
            Expr::Column { index, .. } => index,
            _ => {
                return plan_err(format!(
                    "{name}: the first argument must be a time attribute column: `{f}`"
                ))
            }
        };
        let mode = match input.schema.fields[col].time {
            TimeAttribute::Rowtime => TimeMode::Event,
            TimeAttribute::Proctime => TimeMode::Processing,
            TimeAttribute::None => {
                return plan_err(format!(
                    "{name}: column `{}` is not a time attribute (declare a WATERMARK or use PROCTIME())",
                    input.schema.fields[col].name
                ))
            }
        };
        let kind = match (name, args.len()) {
            ("TUMBLE", 2 | 3) => WindowKind::Aligned(AlignedWindow::Tumble {
                size: interval_arg(args[1], "TUMBLE size")?,
                offset: offset_arg(args.get(2).copied())?,
            }),
            ("HOP", 3 | 4) => {
                let slide = interval_arg(args[1], "HOP slide")?;
                let size = interval_arg(args[2], "HOP size")?;
                if size % slide != 0 {
                    return plan_err(format!("HOP size must be a multiple of its slide: `{f}`"));
                }
                WindowKind::Aligned(AlignedWindow::Hop {
                    slide,
                    size,
                    offset: offset_arg(args.get(3).copied())?,
                })
            }
            ("SESSION", 2) => WindowKind::Session {
                gap: interval_arg(args[1], "SESSION gap")?,
            },
            _ => return plan_err(format!("wrong number of arguments for {name}: `{f}`")),
        };
        Ok((kind, col, mode))
    }
}

fn set_window_types(
    input: &Scope,
    window: Option<&(WindowKind, usize, TimeMode, Vec<Expr>)>,
    wtype: &mut DataType,
    wattr: &mut TimeAttribute,
) {
    if let Some((_, t, mode, _)) = window {
        match mode {
            TimeMode::Event => {
                *wattr = TimeAttribute::Rowtime;
                *wtype = if matches!(input.schema.fields[*t].data_type, DataType::TimestampLtz(_)) {
                    DataType::TimestampLtz(3)
                } else {
                    DataType::Timestamp(3)
                };
            }
            TimeMode::Processing => {
                *wattr = TimeAttribute::Proctime;
                *wtype = DataType::TimestampLtz(3);
            }
        }
    }
}

fn key_name(e: Option<&sql::Expr>, i: usize) -> String {
    e.map(|e| derive_name(e, i))
        .unwrap_or_else(|| format!("EXPR${i}"))
}

fn time_of(e: &Expr, schema: &Schema) -> TimeAttribute {
    match e {
        Expr::Column { index, .. } => schema
            .fields
            .get(*index)
            .map(|f| f.time)
            .unwrap_or_default(),
        _ => TimeAttribute::None,
    }
}

/// Recognizes `rn <= N`, `rn < N`, `rn = 1` (and the mirrored forms) on the rank column.
fn rank_limit(e: &sql::Expr, scope: &Scope, rn_col: usize) -> Option<usize> {
    let sql::Expr::BinaryOp { left, op, right } = e else {
        return None;
    };
    let is_rn = |x: &sql::Expr| -> bool {
        let parts = match x {
            sql::Expr::Identifier(i) => vec![i.value.clone()],
            sql::Expr::CompoundIdentifier(is) => is.iter().map(|i| i.value.clone()).collect(),
            _ => return false,
        };
        scope.resolve(&parts).ok() == Some(rn_col)
    };
    let num = |x: &sql::Expr| -> Option<i64> {
        match x {
            sql::Expr::Value(v) => match &v.value {
                sql::Value::Number(n, _) => n.parse().ok(),
                _ => None,
            },
            _ => None,
        }
    };
    use sql::BinaryOperator as B;
    let (op, n) = if is_rn(left) {
        (op.clone(), num(right)?)
    } else if is_rn(right) {
        let flipped = match op {
            B::Gt => B::Lt,
            B::GtEq => B::LtEq,
            B::Eq => B::Eq,
            _ => return None,
        };
        (flipped, num(left)?)
    } else {
        return None;
    };
    match op {
        B::LtEq if n >= 1 => Some(n as usize),
        B::Lt if n >= 2 => Some(n as usize - 1),
        B::Eq if n == 1 => Some(1),
        _ => None,
    }
}
