//! Queries to plan nodes.
//!
//! A query plans into a [`Rel`]: the table its records come from (or two planned queries meeting
//! in a join or a union) and the chain of [`PlanNode`]s that turns those rows into the query's
//! rows — data only; operators are built from it when the job starts (`crate::plan`). One file
//! per construct: `relation.rs` (FROM items), `select.rs` (a SELECT: WHERE, projection,
//! DISTINCT), `aggregate.rs` (GROUP BY, window aggregates), `window.rs` (window table
//! functions), `over.rs` (OVER aggregates), `rank.rs` (ROW_NUMBER), `join.rs` (joins and lookup
//! joins), `set.rs` (UNION ALL). The choices among physical operators are rules of their own in
//! `crate::plan::rules` (interval join, ranking).

use crate::catalog::Catalog;
use crate::error::{plan_err, Result, SqlError};
use crate::expr::{
    collect_aggregates, collect_over_aggregates, derive_name, eval_const, function_args,
    function_name, AggScope, Converter, Scope,
};
use crate::plan::rules::interval_join::{bounds_time, interval_bounds};
use crate::plan::rules::temporal_join;
use crate::plan::visit_columns;
use crate::plan::{Changelog, LateTarget, LookupTarget, PlanNode, PlanOp, TwoInputOp};
use crate::script::PARTITION_BY_FN;
use sqlparser::ast::{
    self as sql, DuplicateTreatment, FunctionArguments, GroupByExpr, SelectItem, SetExpr,
    TableFactor,
};
use std::collections::BTreeMap;
use tillflow_runtime::agg::{AggCall, AggKind};
use tillflow_runtime::expr::Expr;
use tillflow_runtime::forecast::ModelSpec;
use tillflow_runtime::ops::join::JoinType;
use tillflow_runtime::ops::over::OverFrame;
use tillflow_runtime::ops::rank::SortKey;
use tillflow_runtime::window::{AlignedWindow, TimeMode};
use tillflow_types::{DataType, Field, Schema, TimeAttribute, Value};

mod aggregate;
mod join;
mod ml;
mod over;
mod rank;
mod relation;
mod select;
mod set;
mod state_ttl;
pub(crate) use state_ttl::configured_ttl;
mod window;

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
    /// The ranked window is on processing time (its rank fires on the wall clock, not on
    /// watermarks).
    window_proctime: bool,
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
    /// Literal rows: `VALUES (…), (…)`, or the one row a SELECT without FROM reads.
    Values(Box<ValuesInput>),
}

/// The rows of a `VALUES` clause (Flink's `Values` node), a bounded source.
#[derive(Clone)]
pub struct ValuesInput {
    /// Each row's expressions, cast to the column types.
    pub rows: Vec<Vec<Expr>>,
    /// The columns (Flink's `EXPR$0`, `EXPR$1` …, each of the rows' common type).
    pub schema: Schema,
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
    /// The window of an aligned window aggregation whose result the rows are (kept with
    /// `window_cols`: a GROUP BY on those columns aggregates per that window again).
    pub window_kind: Option<(AlignedWindow, TimeMode)>,
    pending_window: Option<PendingWindow>,
    pending_rank: Option<PendingRank>,
}

impl Rel {
    fn schema(&self) -> &Schema {
        &self.scope.schema
    }

    /// Whether the window whose result (or assigned rows) these rows are is on processing
    /// time: the latest window node of the chain, or the window table function not yet planned.
    fn window_proctime(&self) -> bool {
        if let Some(w) = &self.pending_window {
            return w.mode == TimeMode::Processing;
        }
        self.ops
            .iter()
            .rev()
            .find_map(|n| match &n.op {
                PlanOp::WindowAggregate { mode, .. }
                | PlanOp::SessionWindowAggregate { mode, .. }
                | PlanOp::WindowTableFunction { mode, .. } => Some(*mode == TimeMode::Processing),
                _ => None,
            })
            .unwrap_or(false)
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
            window_kind: None,
            pending_window: None,
            pending_rank: None,
        }
    }

    /// Literal rows as a query's input.
    fn values(v: ValuesInput) -> Rel {
        let scope = Scope::new(v.schema.clone(), None);
        Rel {
            input: RelInput::Values(Box::new(v)),
            ops: Vec::new(),
            scope,
            changelog: Changelog::Insert,
            upsert_key: None,
            window_cols: None,
            window_kind: None,
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
            RelInput::Values(_) => "",
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

pub(super) fn push_calc(rel: &mut Rel, filter: Option<Expr>, items: Vec<Item>) {
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

pub(super) fn conjuncts(e: &sql::Expr, out: &mut Vec<sql::Expr>) {
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

pub(super) fn reads_column(e: &Expr, c: usize) -> bool {
    let mut found = false;
    visit_columns(e, &mut |i| found |= i == c);
    found
}

/// Plans queries against a catalog.
pub struct Planner<'a> {
    catalog: &'a Catalog,
    /// The CTEs in scope, innermost last: a CTE sees those defined before it, never itself.
    ctes: Vec<(String, std::rc::Rc<sql::Query>)>,
    /// What the user should know about how a query runs (printed before the job starts).
    pub notices: Vec<String>,
    /// The STATE_TTL hints of the SELECTs being planned, innermost last.
    ttl_hints: Vec<state_ttl::TtlHints>,
    /// The catalog's functions, found by name while this planner lives.
    _functions: crate::udf::Installed,
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

pub(super) fn interval_arg(e: &sql::Expr, what: &str) -> Result<i64> {
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

pub(super) fn offset_arg(e: Option<&sql::Expr>) -> Result<i64> {
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

pub(super) fn key_name(e: Option<&sql::Expr>, i: usize) -> String {
    e.map(|e| derive_name(e, i))
        .unwrap_or_else(|| format!("EXPR${i}"))
}

pub(super) fn time_of(e: &Expr, schema: &Schema) -> TimeAttribute {
    match e {
        Expr::Column { index, .. } => schema
            .fields
            .get(*index)
            .map(|f| f.time)
            .unwrap_or_default(),
        _ => TimeAttribute::None,
    }
}

impl<'a> Planner<'a> {
    /// A planner over `catalog`.
    pub fn new(catalog: &'a Catalog) -> Self {
        Planner {
            catalog,
            ctes: Vec::new(),
            notices: Vec::new(),
            ttl_hints: Vec::new(),
            _functions: crate::udf::install(std::rc::Rc::new(catalog.functions())),
        }
    }

    /// Plans a query.
    pub fn plan_query(&mut self, q: &sql::Query) -> Result<Rel> {
        let saved = self.ctes.len();
        if let Some(with) = &q.with {
            if with.recursive {
                return plan_err(format!(
                    "WITH RECURSIVE is not Flink SQL (a CTE cannot read itself): `{with}`"
                ));
            }
            for cte in &with.cte_tables {
                self.ctes.push((
                    cte.alias.name.value.clone(),
                    std::rc::Rc::new((*cte.query).clone()),
                ));
            }
        }
        let sorted = q.order_by.is_some() || q.limit_clause.is_some() || q.fetch.is_some();
        if sorted && !self.catalog.batch() {
            self.ctes.truncate(saved);
            return plan_err(format!(
                "ORDER BY and LIMIT on a stream are not supported (Flink allows ORDER BY only on a time attribute ascending); on bounded inputs run the script in batch mode, SET 'execution.runtime-mode' = 'batch': `{q}`"
            ));
        }
        let rel = self.plan_set(q.body.as_ref()).and_then(|rel| {
            if sorted {
                self.sort(rel, q)
            } else {
                Ok(rel)
            }
        });
        self.ctes.truncate(saved);
        rel
    }

    /// Batch mode's `ORDER BY … LIMIT n OFFSET m` over the query's final rows: Flink's
    /// `Sort`, `SortLimit` or `Limit`. ORDER BY names output columns (by name, alias or 1-based
    /// position); NULLs first when ascending, last when descending, as in Flink.
    fn sort(&mut self, mut rel: Rel, q: &sql::Query) -> Result<Rel> {
        rel.finish()?;
        materialize(&mut rel);
        let mut keys = Vec::new();
        if let Some(ob) = &q.order_by {
            let sql::OrderByKind::Expressions(items) = &ob.kind else {
                return plan_err(format!("ORDER BY ALL is not Flink SQL: `{ob}`"));
            };
            let conv = Converter::new(&rel.scope);
            for o in items {
                let col = match &o.expr {
                    sql::Expr::Value(v) => match &v.value {
                        sql::Value::Number(n, _) => n
                            .parse::<usize>()
                            .ok()
                            .filter(|&i| i >= 1 && i <= rel.schema().len())
                            .map(|i| i - 1),
                        _ => None,
                    },
                    e => match conv.convert(e) {
                        Ok(Expr::Column { index, .. }) => Some(index),
                        _ => None,
                    },
                };
                let Some(col) = col else {
                    return plan_err(format!(
                        "ORDER BY `{}` must name a column of the result (by name or position): `{q}`",
                        o.expr
                    ));
                };
                let descending = matches!(o.options.sort, Some(sql::OrderBySort::Desc));
                keys.push(SortKey {
                    col,
                    descending,
                    nulls_first: o.options.nulls_first.unwrap_or(!descending),
                });
            }
        }
        let count = |e: &sql::Expr, what: &str| -> Result<usize> {
            let scope = Scope::default();
            match eval_const(&Converter::new(&scope).convert(e)?)? {
                Value::Int(n) if n >= 0 => Ok(n as usize),
                _ => plan_err(format!("{what} must be a number of rows ≥ 0: `{e}`")),
            }
        };
        let (mut limit, mut offset) = (None, 0);
        match &q.limit_clause {
            Some(sql::LimitClause::LimitOffset {
                limit: l,
                offset: o,
                limit_by,
            }) => {
                if !limit_by.is_empty() {
                    return plan_err(format!("LIMIT … BY is not Flink SQL: `{q}`"));
                }
                if let Some(l) = l {
                    limit = Some(count(l, "LIMIT")?);
                }
                if let Some(o) = o {
                    offset = count(&o.value, "OFFSET")?;
                }
            }
            Some(sql::LimitClause::OffsetCommaLimit {
                offset: o,
                limit: l,
            }) => {
                limit = Some(count(l, "LIMIT")?);
                offset = count(o, "OFFSET")?;
            }
            None => {}
        }
        if let Some(f) = &q.fetch {
            if let Some(n) = &f.quantity {
                limit = Some(count(n, "FETCH FIRST")?);
            }
        }
        rel.push(
            PlanOp::Sort {
                keys,
                offset,
                limit,
            },
            Changelog::Insert,
            None,
        );
        Ok(rel)
    }
}

/// In batch mode, an updating result becomes its final rows (Flink's batch mode writes only
/// those): a `Materialize` node after it.
pub(crate) fn materialize(rel: &mut Rel) {
    if rel.updating() {
        rel.push(PlanOp::Materialize, Changelog::Insert, None);
    }
}
