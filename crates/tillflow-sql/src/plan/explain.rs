//! The job's plan printed as Flink's `EXPLAIN` prints its optimized physical plan.
//!
//! One tree per sink, from the sink down to the sources (`+-` for the last input of a node,
//! `:-` for the others), each node as `Name(attributes)` with column names and SQL expressions,
//! the changelog its output carries (`changelogMode=[I,UB,UA]`) and, where known, the upsert key
//! that identifies an updating row. Keyed operators show the `Exchange` that would bring a key's
//! rows together (`hash[store_id]`, or `single` for a global aggregation): the distribution the
//! operator needs. A source's scan is `TableSourceScan`, followed by its computed columns'
//! `Calc`, its `WatermarkAssigner` and, for changelog sources, `ChangelogNormalize`.

use super::sqlfmt::{self, Names};
use super::{Changelog, PlanNode, PlanOp, TwoInputOp};
use crate::planner::ValuesInput;
use crate::session::{Branch, BranchEnd, JobPlan, TaskPlan, TaskSource};
use tillflow_runtime::ops::join::JoinType;
use tillflow_runtime::ops::over::OverFrame;
use tillflow_runtime::ops::rank::SortKey;
use tillflow_runtime::ttl::{format_ttl, StateTtl};
use tillflow_runtime::window::TimeMode;
use tillflow_types::Schema;

/// A line of the tree and the nodes below it.
struct Tree {
    line: String,
    inputs: Vec<Tree>,
}

impl Tree {
    fn leaf(line: String) -> Tree {
        Tree {
            line,
            inputs: Vec::new(),
        }
    }

    fn render(&self, out: &mut String, prefix: &str, own: &str) {
        out.push_str(prefix);
        out.push_str(own);
        out.push_str(&self.line);
        out.push('\n');
        let child_prefix = format!(
            "{prefix}{}",
            match own {
                "" => "",
                "+- " => "   ",
                _ => ":  ",
            }
        );
        let n = self.inputs.len();
        for (i, t) in self.inputs.iter().enumerate() {
            t.render(out, &child_prefix, if i + 1 == n { "+- " } else { ":- " });
        }
    }
}

/// Where a branch is: after a source's scan, or after a join.
#[derive(Clone, Copy)]
enum At {
    Task(usize),
    Join(usize),
}

struct Plan<'a> {
    job: &'a JobPlan,
    /// Every branch with where it starts.
    branches: Vec<(At, &'a Branch)>,
}

/// `plan` as text (see the module documentation).
pub fn explain(job: &JobPlan) -> String {
    let mut branches = Vec::new();
    for (i, t) in job.tasks.iter().enumerate() {
        for b in &t.branches {
            branches.push((At::Task(i), b));
        }
    }
    for (i, j) in job.joins.iter().enumerate() {
        branches.push((At::Join(i), &j.downstream));
    }
    let plan = Plan { job, branches };
    let mut sinks: Vec<&(At, &Branch)> = plan
        .branches
        .iter()
        .filter(|(_, b)| matches!(b.end, BranchEnd::Sink { .. }))
        .collect();
    sinks.sort_by_key(|(_, b)| b.line);
    let mut out = String::from("== Optimized Physical Plan ==\n");
    for (at, b) in sinks {
        plan.branch(*at, b).render(&mut out, "", "");
        out.push('\n');
    }
    out
}

/// A table's name as the user wrote it, and the table hint its reference carried: a reference
/// with `/*+ OPTIONS(…) */` reads a hidden table named `t /*+ OPTIONS #n */`.
fn table_name(name: &str) -> (&str, &str) {
    match name.split_once(" /*+ OPTIONS #") {
        Some((base, _)) => (base, ", hints=[[[OPTIONS]]]"),
        None => (name, ""),
    }
}

fn changelog_attr(c: Changelog, key: Option<&Vec<usize>>, names: &Names) -> String {
    let mut s = format!("changelogMode=[{}]", c.flink());
    if let Some(k) = key.filter(|_| c.is_updating()) {
        s.push_str(&format!(", upsertKeys=[[{}]]", names.list(k)));
    }
    s
}

impl Plan<'_> {
    /// The tree of a branch's last node: its operators in reverse, then where it starts.
    fn branch(&self, at: At, b: &Branch) -> Tree {
        let mut below = self.start(at);
        for n in &b.ops {
            below = node(n, below);
        }
        match &b.end {
            BranchEnd::Sink { spec, connector } => {
                // the sink's columns, as Flink lists them
                let out = &spec.schema;
                let names = Names::of(out);
                let changelog = self.output_changelog(at, b);
                let (table, hints) = table_name(&spec.name);
                Tree {
                    line: format!(
                        "Sink(table=[default_catalog.default_database.{table}], connector=[{}], fields=[{}]{hints}, {})",
                        connector.name(),
                        names.list(&(0..out.len()).collect::<Vec<_>>()),
                        changelog_attr(changelog, None, &names)
                    ),
                    inputs: vec![below],
                }
            }
            // a join's inputs are drawn by the join
            BranchEnd::Join { .. } => below,
        }
    }

    /// What a branch reads: a table's scan, or a join.
    fn start(&self, at: At) -> Tree {
        match at {
            At::Task(i) => scan(&self.job.tasks[i]),
            At::Join(j) => {
                let join = &self.job.joins[j];
                let mut sides: Vec<Tree> = (0..2)
                    .map(|side| {
                        self.branches
                            .iter()
                            .find(|(_, b)| {
                                matches!(b.end, BranchEnd::Join { id, side: s } if id == j && s == side)
                            })
                            .map(|(at, b)| self.branch(*at, b))
                            .unwrap_or_else(|| Tree::leaf("(missing input)".into()))
                    })
                    .collect();
                two_input(&join.op, &mut sides)
            }
        }
    }

    fn output_changelog(&self, at: At, b: &Branch) -> Changelog {
        match b.ops.last() {
            Some(n) => n.changelog,
            None => match at {
                At::Task(i) => self.job.tasks[i]
                    .scan
                    .last()
                    .map(|n| n.changelog)
                    .unwrap_or_else(|| match &self.job.tasks[i].source {
                        TaskSource::Table(t) => crate::session::source_changelog(t),
                        TaskSource::Values(_) => Changelog::Insert,
                    }),
                At::Join(j) => self.job.joins[j].op.changelog,
            },
        }
    }
}

/// The columns a node writes, where the node itself names them (a projection); otherwise its
/// input's (used only for a sink's field list).
fn output_of(n: &PlanNode) -> Schema {
    match &n.op {
        PlanOp::Calc { exprs, names, .. } => Schema::new(
            exprs
                .iter()
                .zip(names)
                .map(|(e, name)| tillflow_types::Field::new(name.clone(), e.data_type()))
                .collect(),
        ),
        _ => n.input.clone(),
    }
}

fn scan(t: &TaskPlan) -> Tree {
    let table = match &t.source {
        TaskSource::Table(table) => table,
        TaskSource::Values(v) => return values(v),
    };
    let fields = &table.spec.schema;
    let names = Names::of(fields);
    let (name, hints) = table_name(&table.name);
    let mut tree = Tree::leaf(format!(
        "TableSourceScan(table=[[default_catalog, default_database, {name}]], connector=[{}], fields=[{}]{hints}, {})",
        table.connector.name(),
        names.list(&(0..fields.len()).collect::<Vec<_>>()),
        changelog_attr(crate::session::source_changelog(table), None, &names)
    ));
    for n in &t.scan {
        tree = node(n, tree);
    }
    tree
}

/// Flink's `Values` node: the literal rows (`{ 0 }` for the one row of a SELECT without FROM,
/// as Flink plans it) and the column names.
fn values(v: &ValuesInput) -> Tree {
    let none = Names::of(&Schema::new(Vec::new()));
    let tuples = v
        .rows
        .iter()
        .map(|r| {
            if r.is_empty() {
                "{ 0 }".to_owned()
            } else {
                format!(
                    "{{ {} }}",
                    r.iter()
                        .map(|e| sqlfmt::expr(e, &none))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let names = Names::of(&v.schema);
    let cols = if v.schema.is_empty() {
        "ZERO".to_owned()
    } else {
        names.list(&(0..v.schema.len()).collect::<Vec<_>>())
    };
    Tree::leaf(format!(
        "Values(tuples=[[{tuples}]], values=[{cols}], {})",
        changelog_attr(Changelog::Insert, None, &names)
    ))
}

/// Where a keyed operator needs its input's rows: `Some(keys)` by hash of `keys` (`single`
/// when empty), `None` where they are (forward).
pub fn distribution(op: &PlanOp) -> Option<Vec<usize>> {
    match op {
        PlanOp::WindowAggregate { keys, .. } | PlanOp::CountWindowAggregate { keys, .. } => {
            Some((0..*keys).collect())
        }
        PlanOp::SessionWindowAggregate {
            partition, group, ..
        } => Some(partition.iter().chain(group).copied().collect()),
        PlanOp::GroupAggregate { keys, .. } | PlanOp::ChangelogNormalize { keys, .. } => {
            Some(keys.clone())
        }
        PlanOp::OverAggregate { partition, .. }
        | PlanOp::Rank { partition, .. }
        | PlanOp::Deduplicate { partition, .. } => Some(partition.clone()),
        PlanOp::WindowRank { partition, .. } => Some(partition.clone()),
        PlanOp::Materialize | PlanOp::Sort { .. } => Some(Vec::new()),
        // a model that learns keeps a learner per key (one for the stream without keys)
        PlanOp::MlPredict {
            partition, model, ..
        } => matches!(model.spec.provider, tillflow_ml::Provider::Online(_))
            .then(|| partition.clone()),
        PlanOp::Calc { .. }
        | PlanOp::WatermarkAssigner { .. }
        | PlanOp::LocalWindowAggregate { .. }
        | PlanOp::WindowTableFunction { .. }
        | PlanOp::Correlate { .. }
        | PlanOp::PythonCalc { .. }
        | PlanOp::PythonCorrelate { .. }
        | PlanOp::LookupJoin { .. } => None,
    }
}

/// A window aggregate's grouping keys (input columns `0..keys`) and its select list: the keys,
/// then the aggregate calls.
fn window_select(
    keys: usize,
    calls: &[tillflow_runtime::agg::AggCall],
    names: &Names,
) -> (String, String) {
    let keys: Vec<usize> = (0..keys).collect();
    let group = names.list(&keys);
    let mut select = group.clone();
    if !select.is_empty() {
        select.push_str(", ");
    }
    select.push_str(&aggs(calls, names));
    (group, select)
}

fn exchange(keys: &[usize], names: &Names, input: Tree) -> Tree {
    let d = if keys.is_empty() {
        "single".to_owned()
    } else {
        format!("hash[{}]", names.list(keys))
    };
    Tree {
        line: format!("Exchange(distribution=[{d}])"),
        inputs: vec![input],
    }
}

fn order(keys: &[SortKey], names: &Names) -> String {
    keys.iter()
        .map(|k| {
            format!(
                "{} {}{}",
                names.get(k.col),
                if k.descending { "DESC" } else { "ASC" },
                match (k.descending, k.nulls_first) {
                    (false, false) => " NULLS LAST",
                    (true, true) => " NULLS FIRST",
                    _ => "",
                }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn time_name(mode: TimeMode, time_col: usize, names: &Names) -> String {
    match mode {
        TimeMode::Event => names.get(time_col),
        TimeMode::Processing => format!("{} (processing time)", names.get(time_col)),
    }
}

fn aggs(calls: &[tillflow_runtime::agg::AggCall], names: &Names) -> String {
    calls
        .iter()
        .map(|c| sqlfmt::agg(c, names))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A node's line, over its input tree.
fn node(n: &PlanNode, input: Tree) -> Tree {
    let names = Names::of(&n.input);
    let input = match distribution(&n.op) {
        Some(keys) => exchange(&keys, &names, input),
        None => input,
    };
    let attrs = match &n.op {
        PlanOp::Calc {
            filter,
            exprs,
            names: out,
        } => {
            let select = exprs
                .iter()
                .zip(out)
                .map(|(e, o)| sqlfmt::item(e, o, &names))
                .collect::<Vec<_>>()
                .join(", ");
            match filter {
                Some(f) => format!("select=[{select}], where=[{}]", sqlfmt::expr(f, &names)),
                None => format!("select=[{select}]"),
            }
        }
        PlanOp::WatermarkAssigner { expr, rowtime, .. } => format!(
            "rowtime=[{rowtime}], watermark=[{}]",
            sqlfmt::expr(expr, &names)
        ),
        PlanOp::ChangelogNormalize { keys, ttl } => {
            format!("key=[{}]{}", names.list(keys), state_ttl(ttl))
        }
        PlanOp::WindowAggregate {
            window,
            mode,
            time_col,
            keys,
            calls,
            attached,
            ..
        } => {
            let (keys, select) = window_select(*keys, calls, &names);
            format!(
                "groupBy=[{keys}], window=[{}], select=[{select}, start('w$) AS window_start, end('w$) AS window_end]",
                match attached {
                    Some((s, e)) => sqlfmt::attached_window(window, &names.get(*s), &names.get(*e)),
                    None => sqlfmt::window(window, &time_name(*mode, *time_col, &names)),
                },
            )
        }
        PlanOp::LocalWindowAggregate {
            window,
            time_col,
            keys,
            calls,
        } => {
            let (keys, select) = window_select(*keys, calls, &names);
            format!(
                "groupBy=[{keys}], window=[{}], select=[{select}, slice_end('w$) AS $slice_end]",
                sqlfmt::window(window, &time_name(TimeMode::Event, *time_col, &names)),
            )
        }
        PlanOp::SessionWindowAggregate {
            gap,
            mode,
            time_col,
            partition,
            group,
            calls,
            ..
        } => format!(
            "partitionBy=[{}], groupBy=[{}], window=[SESSION(time_col=[{}], gap=[{}])], select=[{}]",
            names.list(partition),
            names.list(group),
            time_name(*mode, *time_col, &names),
            sqlfmt::duration(*gap),
            aggs(calls, &names)
        ),
        PlanOp::CountWindowAggregate {
            size, keys, calls, ..
        } => format!(
            "groupBy=[{}], window=[COUNT_WINDOW(size=[{size}])], select=[{}]",
            names.list(&(0..*keys).collect::<Vec<_>>()),
            aggs(calls, &names)
        ),
        PlanOp::WindowTableFunction {
            window,
            mode,
            time_col,
            ..
        } => format!(
            "window=[{}]",
            sqlfmt::window(window, &time_name(*mode, *time_col, &names))
        ),
        PlanOp::GroupAggregate { keys, calls, ttl } => {
            let mut select = names.list(keys);
            if !calls.is_empty() {
                if !select.is_empty() {
                    select.push_str(", ");
                }
                select.push_str(&aggs(calls, &names));
            }
            format!(
                "groupBy=[{}], select=[{select}]{}",
                names.list(keys),
                state_ttl(ttl)
            )
        }
        PlanOp::OverAggregate {
            partition,
            time,
            frame,
            calls,
            ttl,
        } => {
            let frame = match frame {
                OverFrame::RangeUnbounded => {
                    "RANG BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW".to_owned()
                }
                OverFrame::RowsUnbounded => {
                    "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW".to_owned()
                }
                OverFrame::Rows(n) => format!("ROWS BETWEEN {n} PRECEDING AND CURRENT ROW"),
                OverFrame::Range(us) => format!(
                    "RANG BETWEEN {} PRECEDING AND CURRENT ROW",
                    sqlfmt::duration(*us)
                ),
            };
            format!(
                "partitionBy=[{}], orderBy=[{}], window=[{frame}], select=[{}]{}",
                names.list(partition),
                time.map(|t| format!("{} ASC", names.get(t)))
                    .unwrap_or_else(|| "PROCTIME ASC".into()),
                aggs(calls, &names),
                state_ttl(ttl)
            )
        }
        PlanOp::WindowRank {
            window_end,
            partition,
            order: o,
            limit,
            ..
        } => format!(
            "rankType=[ROW_NUMBER], rankRange=[rankStart=1, rankEnd={limit}], partitionBy=[{}], orderBy=[{}], windowEnd=[{}]",
            names.list(partition),
            order(o, &names),
            names.get(*window_end)
        ),
        PlanOp::Rank {
            partition,
            order: o,
            limit,
            emit_row_number,
            over_updates,
            ttl,
        } => format!(
            "strategy=[{}], rankType=[ROW_NUMBER], rankRange=[rankStart=1, rankEnd={limit}], partitionBy=[{}], orderBy=[{}], outputRankNumber=[{emit_row_number}]{}",
            if *over_updates {
                "RetractStrategy"
            } else {
                "AppendFastStrategy"
            },
            names.list(partition),
            order(o, &names),
            state_ttl(ttl)
        ),
        PlanOp::Deduplicate {
            partition,
            time_col,
            keep_last,
            rowtime: true,
            ttl,
        } => format!(
            "strategy=[AppendFastStrategy], rankType=[ROW_NUMBER], rankRange=[rankStart=1, rankEnd=1], partitionBy=[{}], orderBy=[ROWTIME {} {}]{}",
            names.list(partition),
            names.get(*time_col),
            if *keep_last { "DESC" } else { "ASC" },
            state_ttl(ttl)
        ),
        PlanOp::Deduplicate {
            partition,
            time_col,
            keep_last,
            rowtime,
            ttl,
        } => format!(
            "keep=[{}], key=[{}], order=[{}({})]{}",
            if *keep_last { "LastRow" } else { "FirstRow" },
            names.list(partition),
            if *rowtime { "ROWTIME" } else { "PROCTIME" },
            names.get(*time_col),
            state_ttl(ttl)
        ),
        PlanOp::Materialize => "final rows of the changelog".to_owned(),
        PlanOp::Sort {
            keys,
            offset,
            limit,
        } => {
            let mut s = String::new();
            if !keys.is_empty() {
                s.push_str(&format!("orderBy=[{}]", order(keys, &names)));
            }
            if *offset > 0 || limit.is_some() {
                if !s.is_empty() {
                    s.push_str(", ");
                }
                s.push_str(&format!(
                    "offset=[{offset}], fetch=[{}]",
                    limit.map_or("unlimited".to_owned(), |l| l.to_string())
                ));
            }
            s
        }
        PlanOp::Correlate {
            array,
            left_outer,
            ordinality,
            ..
        } => format!(
            "invocation=[UNNEST({}){}], joinType=[{}]",
            sqlfmt::expr(array, &names),
            if *ordinality { " WITH ORDINALITY" } else { "" },
            if *left_outer { "LEFT" } else { "INNER" }
        ),
        PlanOp::PythonCalc { calls, .. } => {
            let mut items: Vec<String> = (0..n.input.len()).map(|i| names.get(i)).collect();
            for (k, c) in calls.iter().enumerate() {
                items.push(format!(
                    "{} AS f{}",
                    sqlfmt::python_call(&c.function.target.name, &c.args, &names),
                    n.input.len() + k
                ));
            }
            format!("select=[{}]", items.join(", "))
        }
        PlanOp::MlPredict {
            model,
            features,
            partition,
            ..
        } => {
            let mut s = format!(
                "invocation=[ML_PREDICT(TABLE(#0){}, Model(MODEL {}), DESCRIPTOR({}), DEFAULT())]",
                if partition.is_empty() {
                    String::new()
                } else {
                    format!(" PARTITION BY {}", names.list(partition))
                },
                model.qualified(),
                features
                    .iter()
                    .map(|&c| format!("_UTF-16LE'{}'", names.get(c)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if let tillflow_ml::Provider::Online(o) = &model.spec.provider {
                s.push_str(&format!(
                    ", learn=[{} from {}]",
                    o.algorithm.name(),
                    o.label
                ));
            }
            s
        }
        PlanOp::PythonCorrelate {
            call, left_outer, ..
        } => format!(
            "invocation=[{}], joinType=[{}]",
            sqlfmt::python_call(&call.function.target.name, &call.args, &names),
            if *left_outer { "LEFT" } else { "INNER" }
        ),
        PlanOp::LookupJoin {
            target,
            left_keys,
            left_outer,
            residual,
        } => {
            let nl = n.input.len() - target.spec.schema.len();
            let lookup = target
                .keys
                .iter()
                .zip(left_keys)
                .map(|(d, l)| format!("{}={}", names.get(nl + d), names.get(*l)))
                .collect::<Vec<_>>()
                .join(", ");
            let mut s = format!(
                "table=[default_catalog.default_database.{}], joinType=[{}], lookup=[{lookup}]",
                target.spec.name,
                if *left_outer {
                    "LeftOuterJoin"
                } else {
                    "InnerJoin"
                }
            );
            if let Some(r) = residual {
                s.push_str(&format!(", where=[{}]", sqlfmt::expr(r, &names)));
            }
            s
        }
    };
    Tree {
        line: format!(
            "{}({attrs}, {})",
            n.op.name(),
            changelog_attr(
                n.changelog,
                n.upsert_key.as_ref(),
                &output_names(n, Names::of(&n.input))
            )
        ),
        inputs: vec![input],
    }
}

/// The names a node's upsert key refers to: a projection's output names; other nodes keep
/// their input's columns first.
fn output_names(n: &PlanNode, input: Names) -> Names {
    match &n.op {
        PlanOp::Calc { .. } => Names::of(&output_of(n)),
        _ => input,
    }
}

fn join_type(kind: JoinType) -> &'static str {
    match kind {
        JoinType::Inner => "InnerJoin",
        JoinType::Left => "LeftOuterJoin",
        JoinType::Right => "RightOuterJoin",
        JoinType::Full => "FullOuterJoin",
    }
}

/// A join's two inputs, each behind the exchange that brings its key's rows together (the
/// right side's key columns counted after the `nl` left columns).
fn keyed_inputs(
    keys: &[Vec<usize>; 2],
    nl: usize,
    names: &Names,
    left: Tree,
    right: Tree,
) -> Vec<Tree> {
    let right_keys: Vec<usize> = keys[1].iter().map(|k| k + nl).collect();
    vec![
        exchange(&keys[0], names, left),
        exchange(&right_keys, names, right),
    ]
}

/// A two-input node over its two input trees.
fn two_input(n: &PlanNode<TwoInputOp>, sides: &mut Vec<Tree>) -> Tree {
    let names = Names::of(&n.input);
    let all = names.list(&(0..n.input.len()).collect::<Vec<_>>());
    let equi = |keys: &[Vec<usize>; 2], nl: usize| {
        keys[0]
            .iter()
            .zip(&keys[1])
            .map(|(l, r)| format!("({} = {})", names.get(*l), names.get(nl + r)))
            .collect::<Vec<_>>()
    };
    let cond =
        |keys: &[Vec<usize>; 2], nl: usize, residual: &Option<tillflow_runtime::expr::Expr>| {
            let mut parts = equi(keys, nl);
            if let Some(r) = residual {
                parts.push(sqlfmt::expr(r, &names));
            }
            if parts.is_empty() {
                "true".to_owned()
            } else {
                parts.join(" AND ")
            }
        };
    let right = sides
        .pop()
        .unwrap_or_else(|| Tree::leaf("(missing input)".into()));
    let left = sides
        .pop()
        .unwrap_or_else(|| Tree::leaf("(missing input)".into()));
    let (attrs, inputs) = match &n.op {
        TwoInputOp::Join {
            kind,
            keys,
            widths,
            residual,
            ttl,
        } => (
            format!(
                "joinType=[{}], where=[{}], select=[{all}]{}",
                join_type(*kind),
                cond(keys, widths[0], residual),
                match ttl {
                    [None, None] => String::new(),
                    [l, r] => format!(
                        ", stateTtl=[left: {}, right: {}]",
                        l.as_ref().map_or("none".into(), format_ttl),
                        r.as_ref().map_or("none".into(), format_ttl)
                    ),
                }
            ),
            keyed_inputs(keys, widths[0], &names, left, right),
        ),
        TwoInputOp::IntervalJoin {
            keys,
            widths,
            times,
            left_before,
            left_after,
            residual,
        } => (
            format!(
                "joinType=[InnerJoin], windowBounds=[isRowTime=true, leftLowerBound={}, leftUpperBound={}, leftTimeIndex={}, rightTimeIndex={}], where=[{}], select=[{all}]",
                -left_before,
                left_after,
                times[0],
                times[1],
                cond(keys, widths[0], residual)
            ),
            keyed_inputs(keys, widths[0], &names, left, right),
        ),
        TwoInputOp::TemporalJoin {
            left_outer,
            keys,
            widths,
            times,
            primary_key,
            residual,
            ttl,
            ..
        } => {
            let nl = widths[0];
            let list = |cols: Vec<usize>| names.list(&cols);
            let mut parts = equi(keys, nl);
            parts.push(format!(
                "__TEMPORAL_JOIN_CONDITION({}, {}, __TEMPORAL_JOIN_CONDITION_PRIMARY_KEY({}), __TEMPORAL_JOIN_LEFT_KEY({}), __TEMPORAL_JOIN_RIGHT_KEY({}))",
                names.get(times[0]),
                names.get(nl + times[1]),
                list(primary_key.iter().map(|k| k + nl).collect()),
                list(keys[0].clone()),
                list(keys[1].iter().map(|k| k + nl).collect()),
            ));
            if let Some(r) = residual {
                parts.push(sqlfmt::expr(r, &names));
            }
            (
                format!(
                    "joinType=[{}], where=[{}], select=[{all}]{}",
                    join_type(if *left_outer {
                        JoinType::Left
                    } else {
                        JoinType::Inner
                    }),
                    parts.join(" AND "),
                    state_ttl(ttl)
                ),
                vec![
                    exchange(&keys[0], &names, left),
                    exchange(
                        &keys[1].iter().map(|k| k + nl).collect::<Vec<_>>(),
                        &names,
                        right,
                    ),
                ],
            )
        }
        TwoInputOp::Union => (format!("all=[true], union=[{all}]"), vec![left, right]),
    };
    Tree {
        line: format!(
            "{}({attrs}, {})",
            n.op.name(),
            changelog_attr(n.changelog, n.upsert_key.as_ref(), &names)
        ),
        inputs,
    }
}

/// `, stateTtl=[1 h]` when a state TTL is set (Flink's EXPLAIN does not show it; its compiled
/// plan does).
fn state_ttl(ttl: &Option<StateTtl>) -> String {
    ttl.as_ref()
        .map_or(String::new(), |t| format!(", stateTtl=[{}]", format_ttl(t)))
}
