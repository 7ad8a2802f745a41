//! The streaming plan as data.
//!
//! The planner (`planner.rs`) turns a query into [`PlanNode`]s: each names one of Flink's
//! physical operators (`Calc`, `WindowAggregate`, `GroupAggregate`, `Rank`, `Join` …) and holds
//! what it computes — expressions, keys, windows, aggregate calls — but no state, file or
//! connection. Nothing runs while a script is planned, so `validate` and `explain` open nothing.
//! [`PlanNode::build`] is the one place where a node becomes a runtime operator, when the job is
//! instantiated. Each node carries the changelog its output is (Flink's `changelogMode`, see
//! [`Changelog`]) and, once the job plan is complete, a stable id: its position in the plan, the
//! same from run to run of one script, which names its state in checkpoints and its row on the
//! dashboard. `explain.rs` prints the plan the way Flink's `EXPLAIN` does.

pub mod explain;
pub mod rules;
pub mod sqlfmt;

use crate::error::{Result, SqlError};
use std::collections::BTreeMap;
use tillflow_runtime::agg::AggCall;
use tillflow_runtime::expr::Expr;
use tillflow_runtime::late::SharedLateSink;
use tillflow_runtime::operator::{NodeIdentity, Operator, TwoInputOperator};
use tillflow_runtime::ops::batch::{Materialize, Sort};
use tillflow_runtime::ops::calc::Calc;
use tillflow_runtime::ops::dedup::RowtimeFirstRow;
use tillflow_runtime::ops::group_agg::GroupAggregate;
use tillflow_runtime::ops::interval_join::IntervalJoin;
use tillflow_runtime::ops::join::{JoinType, StreamingJoin};
use tillflow_runtime::ops::lookup::LookupJoin;
use tillflow_runtime::ops::normalize::ChangelogNormalize;
use tillflow_runtime::ops::over::{OverAggregate, OverFrame};
use tillflow_runtime::ops::python::{BundleLimits, PyCall, PythonCalc, PythonCorrelate};
use tillflow_runtime::ops::rank::{SortKey, TopN, WindowTopN};
use tillflow_runtime::ops::temporal_join::TemporalJoin;
use tillflow_runtime::ops::union::UnionAll;
use tillflow_runtime::ops::unnest::Unnest;
use tillflow_runtime::ops::watermark::WatermarkAssigner;
use tillflow_runtime::python::{PyTarget, PythonEnv};
use tillflow_runtime::ttl::StateTtl;
use tillflow_runtime::window::aggregate::WindowAggregate;
use tillflow_runtime::window::assign::WindowAssign;
use tillflow_runtime::window::count::CountWindowAggregate;
use tillflow_runtime::window::local::LocalWindowAggregate;
use tillflow_runtime::window::session::SessionWindowAggregate;
use tillflow_runtime::window::{AlignedWindow, TimeMode};
use tillflow_types::{DataType, Schema};

/// Which kinds of change a node's output carries, as Flink's `changelogMode` names them:
/// inserts (`I`), update-before (`UB`), update-after (`UA`) and deletes (`D`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Changelog {
    /// `[I]`: an append-only stream.
    #[default]
    Insert,
    /// `[I,UB,UA]`: updates, never a delete (a running aggregate of an append-only input).
    Updates,
    /// `[I,UB,UA,D]`: every kind of change.
    All,
    /// `[UA,D]`: an upsert stream (upsert-kafka before normalization).
    Upsert,
}

impl Changelog {
    /// Whether the stream carries anything but inserts.
    pub fn is_updating(self) -> bool {
        self != Changelog::Insert
    }

    /// The changelog of two streams merged (a union).
    pub fn union(self, other: Changelog) -> Changelog {
        match (self, other) {
            (Changelog::Insert, c) | (c, Changelog::Insert) => c,
            (Changelog::Updates, Changelog::Updates) => Changelog::Updates,
            _ => Changelog::All,
        }
    }

    /// The changelog of a running aggregate over this stream: updates without deletes over an
    /// append-only input (a group never empties), everything otherwise.
    pub fn aggregated(self) -> Changelog {
        if self.is_updating() {
            Changelog::All
        } else {
            Changelog::Updates
        }
    }

    /// `I,UB,UA,D` as Flink prints it.
    pub fn flink(self) -> &'static str {
        match self {
            Changelog::Insert => "I",
            Changelog::Updates => "I,UB,UA",
            Changelog::All => "I,UB,UA,D",
            Changelog::Upsert => "UA,D",
        }
    }
}

/// Where a window operator writes the rows it drops as late: the source table's
/// `'late-data.path'` (one file shared by every operator that names it).
#[derive(Clone, Debug)]
pub struct LateTarget {
    /// The source table.
    pub table: String,
    /// The file.
    pub path: String,
    /// The rows' schema (the operator's input).
    pub schema: Schema,
}

/// The table a lookup join reads (a jdbc/postgres table), opened when the job is built.
#[derive(Clone)]
pub struct LookupTarget {
    /// The dimension table.
    pub spec: tillflow_connectors::TableSpec,
    /// Its connector.
    pub connector: &'static dyn tillflow_connectors::Connector,
    /// The looked-up columns of the dimension table.
    pub keys: Vec<usize>,
}

/// A one-input operator of the plan, with what it computes.
#[derive(Clone)]
pub enum PlanOp {
    /// Flink's `Calc`: a filter and a projection.
    Calc {
        /// `WHERE` (or `HAVING`) condition.
        filter: Option<Expr>,
        /// Output expressions.
        exprs: Vec<Expr>,
        /// Output names.
        names: Vec<String>,
    },
    /// Flink's `WatermarkAssigner`.
    WatermarkAssigner {
        /// The WATERMARK expression.
        expr: Expr,
        /// The rowtime column's name.
        rowtime: String,
        /// After how long without records a split stops holding the watermark (µs).
        idle_timeout: Option<i64>,
    },
    /// Flink's `ChangelogNormalize`: an upsert stream made a full changelog on its primary key.
    ChangelogNormalize {
        /// Primary-key columns.
        keys: Vec<usize>,
        /// How long a key lives after its last change (`table.exec.state.ttl`).
        ttl: Option<StateTtl>,
    },
    /// Flink's `WindowAggregate` over TUMBLE, HOP or CUMULATE (also the legacy group windows).
    WindowAggregate {
        /// The window.
        window: AlignedWindow,
        /// Event or processing time.
        mode: TimeMode,
        /// The time column.
        time_col: usize,
        /// The grouping keys are input columns `0..keys`.
        keys: usize,
        /// Aggregate calls.
        calls: Vec<AggCall>,
        /// Where late rows go.
        late: Option<LateTarget>,
        /// The input is a window's result and these input columns are its window_start and
        /// window_end: each row belongs to that window (Flink's window-attached windowing
        /// strategy, a cascaded window aggregation), `window` says which kind it was.
        attached: Option<(usize, usize)>,
        /// The global half of a two-phase aggregate (Flink's `GlobalWindowAggregate`): its
        /// input is [`PlanOp::LocalWindowAggregate`]'s partials, not the rows (see
        /// `rules::two_phase`). Its state is the one-phase operator's, so it keeps that name.
        two_phase: bool,
    },
    /// The local half of a two-phase window aggregate (Flink's `LocalWindowAggregate`): before
    /// the exchange, rows of one slice and key are folded into a partial row `[keys…, slice
    /// time, rows, accumulators]` (see `rules::two_phase`).
    LocalWindowAggregate {
        /// The window.
        window: AlignedWindow,
        /// The time column.
        time_col: usize,
        /// The grouping keys are input columns `0..keys`.
        keys: usize,
        /// Aggregate calls.
        calls: Vec<AggCall>,
    },
    /// Flink's `WindowAggregate` over SESSION windows.
    SessionWindowAggregate {
        /// Inactivity gap (µs).
        gap: i64,
        /// Event or processing time.
        mode: TimeMode,
        /// The time column.
        time_col: usize,
        /// Key columns sessions are kept per.
        partition: Vec<usize>,
        /// Further grouping columns.
        group: Vec<usize>,
        /// Aggregate calls.
        calls: Vec<AggCall>,
        /// Where late rows go.
        late: Option<LateTarget>,
    },
    /// A window of every N rows per key (`COUNT_WINDOW`).
    CountWindowAggregate {
        /// Rows per window.
        size: u64,
        /// The time column.
        time_col: usize,
        /// The grouping keys are input columns `0..keys`.
        keys: usize,
        /// Aggregate calls.
        calls: Vec<AggCall>,
    },
    /// Flink's `WindowTableFunction`: each row once per window, nothing aggregating.
    WindowTableFunction {
        /// The window.
        window: AlignedWindow,
        /// Event or processing time.
        mode: TimeMode,
        /// The time column.
        time_col: usize,
        /// Where late rows go.
        late: Option<LateTarget>,
    },
    /// Flink's `GroupAggregate`: a running aggregate per key, an updating result.
    GroupAggregate {
        /// Key columns.
        keys: Vec<usize>,
        /// Aggregate calls.
        calls: Vec<AggCall>,
        /// How long a group lives after its last row (`table.exec.state.ttl`, `STATE_TTL`).
        ttl: Option<StateTtl>,
    },
    /// Flink's `OverAggregate`.
    OverAggregate {
        /// PARTITION BY columns.
        partition: Vec<usize>,
        /// The rowtime column (None: processing time).
        time: Option<usize>,
        /// The frame.
        frame: OverFrame,
        /// Aggregate calls.
        calls: Vec<AggCall>,
        /// How long a partition key lives after its last row (`table.exec.state.ttl`).
        ttl: Option<StateTtl>,
    },
    /// Flink's `WindowRank`: the top N per window.
    WindowRank {
        /// The window_end column.
        window_end: usize,
        /// The window is on processing time: windows fire on the wall clock (else only on
        /// watermarks).
        proctime: bool,
        /// PARTITION BY columns.
        partition: Vec<usize>,
        /// ORDER BY.
        order: Vec<SortKey>,
        /// N.
        limit: usize,
        /// Whether the row number is a column of the output.
        emit_row_number: bool,
    },
    /// Flink's `Rank`: the top N per key of a non-windowed input.
    Rank {
        /// PARTITION BY columns.
        partition: Vec<usize>,
        /// ORDER BY.
        order: Vec<SortKey>,
        /// N.
        limit: usize,
        /// Whether the row number is a column of the output.
        emit_row_number: bool,
        /// The input is updating: every row is kept, a retraction moves the next one up.
        over_updates: bool,
        /// How long a partition lives after its last row (`table.exec.state.ttl`).
        ttl: Option<StateTtl>,
    },
    /// Flink's `Deduplicate`: each key's first row by event time (held until the watermark
    /// passes it), or each key's last row by a time attribute (`ORDER BY t DESC`, updating).
    Deduplicate {
        /// PARTITION BY columns.
        partition: Vec<usize>,
        /// The time attribute column.
        time_col: usize,
        /// Keep the last row (`ORDER BY t DESC`) instead of the first.
        keep_last: bool,
        /// Whether `time_col` is the rowtime (else processing time).
        rowtime: bool,
        /// How long a key lives after its last write (`table.exec.state.ttl`).
        ttl: Option<StateTtl>,
    },
    /// Batch mode: a changelog's final rows, emitted as inserts at the end of the input.
    Materialize,
    /// Batch mode's ORDER BY / LIMIT / OFFSET (Flink's `Sort`, `SortLimit`, `Limit`).
    Sort {
        /// ORDER BY (empty: arrival order).
        keys: Vec<SortKey>,
        /// Rows skipped.
        offset: usize,
        /// Rows kept.
        limit: Option<usize>,
    },
    /// Flink's `Correlate` of each row with the elements of one of its arrays (UNNEST).
    Correlate {
        /// The array (or multiset).
        array: Expr,
        /// Its element type.
        element: DataType,
        /// `LEFT JOIN UNNEST(…) ON TRUE`: a row with NULLs for an empty or NULL array.
        left_outer: bool,
        /// `WITH ORDINALITY`: the element's 1-based position as a last column.
        ordinality: bool,
    },
    /// Flink's `PythonCalc`: each row with the results of Python scalar function calls
    /// appended as new columns (computed a bundle of rows at a time in a Python worker).
    PythonCalc {
        /// The calls, in the order of their columns.
        calls: Vec<PyPlanCall>,
        /// When a bundle goes to the worker.
        limits: BundleLimits,
    },
    /// Flink's `PythonCorrelate`: each row joined with the rows its Python table function call
    /// gives (`LATERAL TABLE(f(…))`).
    PythonCorrelate {
        /// The call.
        call: PyPlanCall,
        /// `LEFT JOIN LATERAL TABLE(…) ON TRUE`: a row with NULLs when the call gives none.
        left_outer: bool,
        /// When a bundle goes to the worker.
        limits: BundleLimits,
    },
    /// Flink's `MLPredictTableFunction`: each row with its model's OUTPUT columns appended
    /// (`ML_PREDICT`); a model that learns on the stream learns from each row after predicting
    /// it, one learner per `partition` key.
    MlPredict {
        /// The model.
        model: std::sync::Arc<crate::model::ModelDef>,
        /// The input columns its INPUT columns read, in order.
        features: Vec<usize>,
        /// PARTITION BY columns.
        partition: Vec<usize>,
        /// The column an online model learns from.
        label: Option<usize>,
        /// An ONNX model, loaded (and checked) when the query was planned.
        onnx: Option<std::sync::Arc<tillflow_ml::onnx::OnnxModel>>,
        /// How long a key's learner lives after its last row (`table.exec.state.ttl`).
        ttl: Option<StateTtl>,
    },
    /// Flink's `LookupJoin`.
    LookupJoin {
        /// The table looked up.
        target: LookupTarget,
        /// Columns of the stream matched with the lookup key.
        left_keys: Vec<usize>,
        /// LEFT JOIN.
        left_outer: bool,
        /// The residual condition over the joined row.
        residual: Option<Expr>,
    },
}

/// A call of a Python function in a `PythonCalc` or `PythonCorrelate`.
#[derive(Clone, Debug)]
pub struct PyPlanCall {
    /// The function, where it runs and its result types.
    pub function: crate::udf::PyFunction,
    /// Arguments over the node's input row.
    pub args: Vec<Expr>,
}

/// An operator with two inputs.
#[derive(Clone)]
pub enum TwoInputOp {
    /// Flink's regular `Join`.
    Join {
        /// INNER, LEFT, RIGHT or FULL.
        kind: JoinType,
        /// The equi-join key columns of each side.
        keys: [Vec<usize>; 2],
        /// Number of columns of each side.
        widths: [usize; 2],
        /// The rest of the condition.
        residual: Option<Expr>,
        /// How long each side's rows live after their last write (`table.exec.state.ttl`,
        /// `STATE_TTL`).
        ttl: [Option<StateTtl>; 2],
    },
    /// Flink's `IntervalJoin`.
    IntervalJoin {
        /// The equi-join key columns of each side.
        keys: [Vec<usize>; 2],
        /// Number of columns of each side.
        widths: [usize; 2],
        /// The rowtime column of each side.
        times: [usize; 2],
        /// How far (ms) a left row may precede a matching right row.
        left_before: i64,
        /// How far (ms) a left row may follow a matching right row.
        left_after: i64,
        /// The rest of the condition.
        residual: Option<Expr>,
    },
    /// Flink's `TemporalJoin` on event time: each left row joined with the version of the
    /// right (versioned) table valid at the left row's time.
    TemporalJoin {
        /// LEFT (true) or INNER.
        left_outer: bool,
        /// The equi-join key columns of each side.
        keys: [Vec<usize>; 2],
        /// Number of columns of each side.
        widths: [usize; 2],
        /// The left row's time attribute and the versioned table's version time (its rowtime).
        times: [usize; 2],
        /// The versioned table's primary key (columns of the right side).
        primary_key: Vec<usize>,
        /// Whether the right input's retractions delete versions (false when its source is
        /// append-only: a keep-last view's retractions only withdraw replaced versions).
        deletes: bool,
        /// The rest of the condition.
        residual: Option<Expr>,
        /// How long a key lives after its last write (`table.exec.state.ttl`).
        ttl: Option<StateTtl>,
    },
    /// Flink's `Union` (UNION ALL).
    Union,
}

/// A node of the plan: an operator, the columns it reads and the changelog it writes.
#[derive(Clone)]
pub struct PlanNode<O = PlanOp> {
    /// Its position in the job's plan (set once the job plan is complete; 0 before).
    pub id: u32,
    /// What it computes.
    pub op: O,
    /// The columns it reads (for a two-input node: the left's then the right's).
    pub input: Schema,
    /// What its output carries.
    pub changelog: Changelog,
    /// Output columns that identify a row of an updating output (its upsert key), if known.
    pub upsert_key: Option<Vec<usize>>,
}

impl<O> PlanNode<O> {
    /// A node reading `input`, writing `changelog`.
    pub fn new(op: O, input: &Schema, changelog: Changelog) -> Self {
        PlanNode {
            id: 0,
            op,
            input: input.clone(),
            changelog,
            upsert_key: None,
        }
    }

    /// The same node with an upsert key.
    pub fn with_upsert_key(mut self, key: Vec<usize>) -> Self {
        self.upsert_key = Some(key);
        self
    }
}

/// The late-data files of a job being built, one per path, shared by the operators naming it.
#[derive(Default)]
pub struct LateFiles(BTreeMap<String, SharedLateSink>);

impl LateFiles {
    fn get(&mut self, target: &Option<LateTarget>) -> Result<Option<SharedLateSink>> {
        let Some(t) = target else {
            return Ok(None);
        };
        if let Some(s) = self.0.get(&t.path) {
            return Ok(Some(s.clone()));
        }
        let sink = tillflow_connectors::late::LateFile::shared(&t.path, &t.table, &t.schema)?;
        self.0.insert(t.path.clone(), sink.clone());
        Ok(Some(sink))
    }
}

impl PlanOp {
    /// Flink's name for the operator.
    pub fn name(&self) -> &'static str {
        match self {
            PlanOp::Calc { .. } => "Calc",
            PlanOp::WatermarkAssigner { .. } => "WatermarkAssigner",
            PlanOp::ChangelogNormalize { .. } => "ChangelogNormalize",
            PlanOp::WindowAggregate { calls, .. }
            | PlanOp::SessionWindowAggregate { calls, .. }
                if calls.iter().any(|c| c.python.is_some()) =>
            {
                "PythonGroupWindowAggregate"
            }
            PlanOp::GroupAggregate { calls, .. } if calls.iter().any(|c| c.python.is_some()) => {
                "PythonGroupAggregate"
            }
            PlanOp::WindowAggregate { .. } | PlanOp::SessionWindowAggregate { .. } => {
                "WindowAggregate"
            }
            PlanOp::CountWindowAggregate { .. } => "CountWindowAggregate",
            PlanOp::LocalWindowAggregate { .. } => "LocalWindowAggregate",
            PlanOp::WindowTableFunction { .. } => "WindowTableFunction",
            PlanOp::GroupAggregate { .. } => "GroupAggregate",
            PlanOp::OverAggregate { .. } => "OverAggregate",
            PlanOp::WindowRank { .. } => "WindowRank",
            PlanOp::Rank { .. } => "Rank",
            // Flink 2.3 plans an event-time deduplication as a Rank (its EXPLAIN says so)
            PlanOp::Deduplicate { rowtime: true, .. } => "Rank",
            PlanOp::Deduplicate { .. } => "Deduplicate",
            PlanOp::LookupJoin { .. } => "LookupJoin",
            PlanOp::Correlate { .. } => "Correlate",
            PlanOp::PythonCalc { .. } => "PythonCalc",
            PlanOp::PythonCorrelate { .. } => "PythonCorrelate",
            PlanOp::MlPredict { .. } => "MLPredictTableFunction",
            PlanOp::Materialize => "Materialize",
            PlanOp::Sort { keys, limit, .. } => match (keys.is_empty(), limit) {
                (false, None) => "Sort",
                (false, Some(_)) => "SortLimit",
                (true, _) => "Limit",
            },
        }
    }
}

impl TwoInputOp {
    /// Flink's name for the operator.
    pub fn name(&self) -> &'static str {
        match self {
            TwoInputOp::Join { .. } => "Join",
            TwoInputOp::IntervalJoin { .. } => "IntervalJoin",
            TwoInputOp::TemporalJoin { .. } => "TemporalJoin",
            TwoInputOp::Union => "Union",
        }
    }
}

impl PlanNode {
    /// The types of the columns the node reads.
    fn input_types(&self) -> Vec<DataType> {
        self.input.fields.iter().map(|f| f.data_type).collect()
    }

    /// How the node is known on the dashboard, in metrics and in checkpoints: `Name[id]` and
    /// its state signature.
    pub fn identity(&self) -> NodeIdentity {
        NodeIdentity {
            label: format!("{}[{}]", self.op.name(), self.id),
            signature: self.state_signature(),
        }
    }

    /// What the meaning of the node's state depends on, in a compact canonical form: windows,
    /// keys, aggregate calls, ranking and frame. A checkpoint records it beside the node's
    /// label, so a query whose operator changed (a window of another size, another aggregate)
    /// is refused instead of resuming from state that means something else. It is not explain
    /// text: rewording `explain` never invalidates a checkpoint.
    pub fn state_signature(&self) -> String {
        let calls = |calls: &[AggCall]| {
            calls
                .iter()
                .map(|c| {
                    format!(
                        "{:?}{}({}:{}){}{}",
                        c.kind,
                        if c.distinct { " distinct" } else { "" },
                        c.arg.map_or("*".to_owned(), |a| a.to_string()),
                        c.arg_type,
                        c.filter.map_or(String::new(), |f| format!(" filter {f}")),
                        c.model
                            .as_ref()
                            .map_or(String::new(), |m| format!(" {m:?}"))
                    ) + &c.python.as_ref().map_or(String::new(), |p| {
                        format!(" '{}'{:?}", p.target.target, p.args)
                    })
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        let order = |o: &[SortKey]| {
            o.iter()
                .map(|k| {
                    format!(
                        "{}{}{}",
                        k.col,
                        if k.descending { "d" } else { "a" },
                        if k.nulls_first { "f" } else { "l" }
                    )
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        match &self.op {
            PlanOp::Calc { .. }
            | PlanOp::LookupJoin { .. }
            | PlanOp::Correlate { .. }
            | PlanOp::PythonCalc { .. }
            | PlanOp::PythonCorrelate { .. }
            | PlanOp::Materialize
            | PlanOp::Sort { .. }
            | PlanOp::LocalWindowAggregate { .. }
            | PlanOp::WatermarkAssigner { .. } => String::new(),
            PlanOp::ChangelogNormalize { keys, .. } => format!("key={keys:?}"),
            PlanOp::MlPredict {
                model,
                features,
                partition,
                label,
                ..
            } => format!(
                "model={} {:?} input=[{}] features={features:?} partition={partition:?} label={label:?}",
                model.name,
                model.spec,
                // hashed features are named by their INPUT column: a renamed one is another model
                model
                    .input
                    .iter()
                    .map(|c| format!("{} {}", c.name, c.data_type))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            PlanOp::WindowAggregate {
                window,
                mode,
                time_col,
                keys,
                calls: c,
                attached,
                ..
            } => format!(
                "{window:?} {mode:?} time={time_col} keys={keys} aggs=[{}]{}",
                calls(c),
                attached
                    .map(|(s, e)| format!(" attached={s},{e}"))
                    .unwrap_or_default()
            ),
            PlanOp::SessionWindowAggregate {
                gap,
                mode,
                time_col,
                partition,
                group,
                calls: c,
                ..
            } => format!(
                "SESSION gap={gap} {mode:?} time={time_col} partition={partition:?} group={group:?} aggs=[{}]",
                calls(c)
            ),
            PlanOp::CountWindowAggregate {
                size,
                keys,
                calls: c,
                ..
            } => format!("COUNT size={size} keys={keys} aggs=[{}]", calls(c)),
            PlanOp::WindowTableFunction { window, mode, .. } => format!("{window:?} {mode:?}"),
            PlanOp::GroupAggregate { keys, calls: c, .. } => {
                format!("keys={keys:?} aggs=[{}]", calls(c))
            }
            PlanOp::OverAggregate {
                partition,
                time,
                frame,
                calls: c,
                ..
            } => format!(
                "partition={partition:?} time={time:?} {frame:?} aggs=[{}]",
                calls(c)
            ),
            PlanOp::WindowRank {
                partition,
                order: o,
                limit,
                ..
            } => format!("partition={partition:?} order=[{}] top={limit}", order(o)),
            PlanOp::Rank {
                partition,
                order: o,
                limit,
                emit_row_number,
                over_updates,
                ..
            } => format!(
                "partition={partition:?} order=[{}] top={limit} rn={emit_row_number} retract={over_updates}",
                order(o)
            ),
            PlanOp::Deduplicate {
                partition,
                time_col,
                keep_last: false,
                ..
            } => format!("partition={partition:?} time={time_col}"),
            PlanOp::Deduplicate {
                partition,
                time_col,
                rowtime,
                ..
            } => format!("partition={partition:?} time={time_col} keep=last rowtime={rowtime}"),
        }
    }

    /// Builds the runtime operator (`splits`: the source's splits, for the watermark assigner).
    pub fn build(&self, splits: usize, late: &mut LateFiles) -> Result<Box<dyn Operator>> {
        let op: Box<dyn Operator> = match &self.op {
            PlanOp::Calc {
                filter,
                exprs,
                names,
            } => Box::new(Calc::new(filter.clone(), exprs.clone(), names.clone())),
            PlanOp::WatermarkAssigner {
                expr,
                rowtime,
                idle_timeout,
            } => Box::new(
                WatermarkAssigner::new(expr.clone(), rowtime.clone())
                    .with_splits(splits, *idle_timeout),
            ),
            PlanOp::ChangelogNormalize { keys, ttl } => {
                Box::new(ChangelogNormalize::new(keys.clone()).with_state_ttl(*ttl))
            }
            PlanOp::WindowAggregate {
                window,
                mode,
                time_col,
                keys,
                calls,
                late: l,
                attached,
                two_phase,
            } => {
                // a partial's slice time, row count and accumulators follow its keys
                let time = if *two_phase { *keys } else { *time_col };
                let types = self.input_types();
                let op =
                    WindowAggregate::new(*window, *mode, time, (0..*keys).collect(), calls.clone())
                        .with_late_sink(late.get(l)?)
                        .with_key_types(types.get(..*keys).unwrap_or_default().to_vec());
                Box::new(match attached {
                    Some((start, end)) => op.attached(*start, *end),
                    None if *two_phase => op.global(keys + 1, keys + 2),
                    None => op,
                })
            }
            PlanOp::LocalWindowAggregate {
                window,
                time_col,
                keys,
                calls,
            } => Box::new(LocalWindowAggregate::new(
                *window,
                *time_col,
                (0..*keys).collect(),
                calls.clone(),
            )),
            PlanOp::SessionWindowAggregate {
                gap,
                mode,
                time_col,
                partition,
                group,
                calls,
                late: l,
            } => Box::new(
                SessionWindowAggregate::new(
                    *gap,
                    *mode,
                    *time_col,
                    partition.clone(),
                    group.clone(),
                    calls.clone(),
                )
                .with_late_sink(late.get(l)?)
                .with_key_types({
                    let types = self.input_types();
                    partition
                        .iter()
                        .chain(group)
                        .filter_map(|&k| types.get(k).copied())
                        .collect()
                }),
            ),
            PlanOp::CountWindowAggregate {
                size,
                time_col,
                keys,
                calls,
            } => Box::new(CountWindowAggregate::new(
                *size,
                *time_col,
                (0..*keys).collect(),
                calls.clone(),
            )),
            PlanOp::WindowTableFunction {
                window,
                mode,
                time_col,
                late: l,
            } => {
                Box::new(WindowAssign::new(*window, *mode, *time_col).with_late_sink(late.get(l)?))
            }
            PlanOp::GroupAggregate { keys, calls, ttl } => {
                let types = self.input_types();
                Box::new(
                    GroupAggregate::new(keys.clone(), calls.clone())
                        .with_state_ttl(*ttl)
                        .with_key_types(
                            keys.iter().filter_map(|&k| types.get(k).copied()).collect(),
                        ),
                )
            }
            PlanOp::OverAggregate {
                partition,
                time,
                frame,
                calls,
                ttl,
            } => Box::new(
                OverAggregate::new(partition.clone(), *time, *frame, calls.clone())
                    .with_state_ttl(*ttl),
            ),
            PlanOp::WindowRank {
                window_end,
                proctime,
                partition,
                order,
                limit,
                emit_row_number,
            } => Box::new(
                WindowTopN::new(
                    *window_end,
                    partition.clone(),
                    order.clone(),
                    *limit,
                    *emit_row_number,
                )
                .on_processing_time(*proctime),
            ),
            PlanOp::Rank {
                partition,
                order,
                limit,
                emit_row_number,
                over_updates,
                ttl,
            } => {
                let op = TopN::new(partition.clone(), order.clone(), *limit, *emit_row_number)
                    .with_state_ttl(*ttl);
                Box::new(if *over_updates { op.over_updates() } else { op })
            }
            PlanOp::Deduplicate {
                partition,
                time_col,
                keep_last: false,
                ttl,
                ..
            } => Box::new(RowtimeFirstRow::new(partition.clone(), *time_col).with_state_ttl(*ttl)),
            PlanOp::Deduplicate {
                partition,
                time_col,
                ttl,
                ..
            } => {
                let order = vec![SortKey {
                    col: *time_col,
                    descending: true,
                    nulls_first: false,
                }];
                Box::new(
                    TopN::new(partition.clone(), order, 1, false)
                        .later_wins_ties()
                        .with_state_ttl(*ttl),
                )
            }
            PlanOp::Materialize => Box::new(Materialize::default()),
            PlanOp::Sort {
                keys,
                offset,
                limit,
            } => Box::new(Sort::new(keys.clone(), *offset, *limit)),
            PlanOp::Correlate {
                array,
                element,
                left_outer,
                ordinality,
            } => Box::new(Unnest::new(
                array.clone(),
                *element,
                *left_outer,
                *ordinality,
            )),
            PlanOp::PythonCalc { calls, limits } => {
                let (env, targets, calls) = python_calls(calls);
                Box::new(PythonCalc::new(
                    env,
                    targets,
                    calls,
                    self.input_types(),
                    *limits,
                ))
            }
            PlanOp::PythonCorrelate {
                call,
                left_outer,
                limits,
            } => {
                let (env, mut targets, mut calls) = python_calls(std::slice::from_ref(call));
                let (Some(target), Some(call)) = (targets.pop(), calls.pop()) else {
                    return Err(SqlError::Plan(
                        "internal: a PythonCorrelate without its call".into(),
                    ));
                };
                Box::new(PythonCorrelate::new(
                    env,
                    target,
                    call,
                    *left_outer,
                    self.input_types(),
                    *limits,
                ))
            }
            PlanOp::MlPredict {
                model,
                features,
                partition,
                label,
                onnx,
                ttl,
            } => {
                use tillflow_runtime::ops::ml::{
                    Feature, FeatureKind, OnlinePredict, OnnxPredict, OutputKind,
                };
                let types = self.input_types();
                let scale = |c: usize| match types.get(c) {
                    Some(DataType::Decimal(_, s)) => *s,
                    _ => 0,
                };
                let features = features
                    .iter()
                    .zip(&model.input)
                    .map(|(&col, input)| Feature {
                        col,
                        kind: match types.get(col) {
                            Some(DataType::String(_)) => FeatureKind::Hashed {
                                name: input.name.clone(),
                            },
                            Some(DataType::Boolean) => FeatureKind::Bool,
                            _ => FeatureKind::Number { scale: scale(col) },
                        },
                    })
                    .collect();
                match &model.spec.provider {
                    tillflow_ml::Provider::Online(spec) => Box::new(
                        OnlinePredict::new(
                            model.name.clone(),
                            spec.clone(),
                            partition.clone(),
                            features,
                            label.map(|c| (c, scale(c))),
                            model.output.len() > 1,
                        )
                        .with_state_ttl(*ttl),
                    ),
                    tillflow_ml::Provider::Onnx(_) => {
                        let Some(loaded) = onnx else {
                            return Err(SqlError::Plan(format!(
                                "internal: model {} was not loaded when planned",
                                model.name
                            )));
                        };
                        let outputs = model
                            .output
                            .iter()
                            .map(|c| match c.data_type {
                                DataType::Boolean => OutputKind::Bool,
                                DataType::Float | DataType::Double => OutputKind::Number,
                                _ => OutputKind::Integer,
                            })
                            .collect();
                        Box::new(OnnxPredict::new(
                            model.name.clone(),
                            loaded.clone(),
                            features,
                            outputs,
                        ))
                    }
                }
            }
            PlanOp::LookupJoin {
                target,
                left_keys,
                left_outer,
                residual,
            } => {
                let table = target.connector.lookup(&target.spec, &target.keys)?;
                let cache = table.cache();
                Box::new(LookupJoin::new(
                    table,
                    left_keys.clone(),
                    *left_outer,
                    target.spec.schema.len(),
                    residual.clone(),
                    cache,
                ))
            }
        };
        Ok(op)
    }
}

impl PlanNode<TwoInputOp> {
    /// How the node is known on the dashboard, in metrics and in checkpoints: `Name[id]` and
    /// its state signature.
    pub fn identity(&self) -> NodeIdentity {
        NodeIdentity {
            label: format!("{}[{}]", self.op.name(), self.id),
            signature: self.state_signature(),
        }
    }

    /// What the meaning of the node's state depends on (see [`PlanNode::state_signature`]).
    pub fn state_signature(&self) -> String {
        match &self.op {
            TwoInputOp::Join {
                kind,
                keys,
                widths,
                ..
            } => format!("{kind:?} keys={keys:?} widths={widths:?}"),
            TwoInputOp::IntervalJoin {
                keys,
                widths,
                times,
                left_before,
                left_after,
                ..
            } => format!(
                "keys={keys:?} widths={widths:?} times={times:?} bounds=[{left_before},{left_after}]"
            ),
            TwoInputOp::TemporalJoin {
                left_outer,
                keys,
                widths,
                times,
                deletes,
                ..
            } => format!(
                "left={left_outer} keys={keys:?} widths={widths:?} times={times:?} deletes={deletes}"
            ),
            TwoInputOp::Union => String::new(),
        }
    }

    /// Builds the runtime operator.
    pub fn build(&self) -> Result<Box<dyn TwoInputOperator>> {
        Ok(match &self.op {
            TwoInputOp::Join {
                kind,
                keys,
                widths,
                residual,
                ttl,
            } => Box::new(
                StreamingJoin::new(*kind, keys.clone(), *widths, residual.clone())
                    .with_state_ttl(*ttl),
            ),
            TwoInputOp::IntervalJoin {
                keys,
                widths,
                times,
                left_before,
                left_after,
                residual,
            } => Box::new(IntervalJoin::new(
                keys.clone(),
                *widths,
                *times,
                *left_before,
                *left_after,
                residual.clone(),
            )),
            TwoInputOp::TemporalJoin {
                left_outer,
                keys,
                widths,
                times,
                residual,
                deletes,
                ttl,
                ..
            } => {
                let op =
                    TemporalJoin::new(keys.clone(), *widths, *times, *left_outer, residual.clone())
                        .with_state_ttl(*ttl);
                Box::new(if *deletes {
                    op
                } else {
                    op.ignoring_retractions()
                })
            }
            TwoInputOp::Union => Box::new(UnionAll::default()),
        })
    }
}

/// Calls `f` with every column an expression reads.
pub(crate) fn visit_columns(e: &Expr, f: &mut dyn FnMut(usize)) {
    walk_expr(e, &mut |x| {
        if let Expr::Column { index, .. } = x {
            f(*index)
        }
    })
}

/// Calls `f` on `e` and on every expression inside it, outermost first.
pub(crate) fn walk_expr(e: &Expr, f: &mut dyn FnMut(&Expr)) {
    f(e);
    match e {
        Expr::Column { .. } | Expr::Literal { .. } | Expr::StrLiteral(_) => {}
        Expr::Unary { arg, .. } | Expr::Cast { arg, .. } => walk_expr(arg, f),
        Expr::Binary { left, right, .. } => {
            walk_expr(left, f);
            walk_expr(right, f);
        }
        Expr::Case {
            operand,
            whens,
            otherwise,
            ..
        } => {
            if let Some(o) = operand {
                walk_expr(o, f);
            }
            for (a, b) in whens {
                walk_expr(a, f);
                walk_expr(b, f);
            }
            if let Some(o) = otherwise {
                walk_expr(o, f);
            }
        }
        Expr::Call { args, .. } | Expr::Prepared { args, .. } => {
            args.iter().for_each(|a| walk_expr(a, f))
        }
        Expr::Python(c) => c.args.iter().for_each(|a| walk_expr(a, f)),
        Expr::InList { arg, list, .. } => {
            walk_expr(arg, f);
            list.iter().for_each(|a| walk_expr(a, f));
        }
        Expr::Like { arg, pattern, .. } => {
            walk_expr(arg, f);
            walk_expr(pattern, f);
        }
    }
}

/// The runtime's form of Python calls: the worker's environment, its functions (each once)
/// and the calls naming them by position.
fn python_calls(calls: &[PyPlanCall]) -> (PythonEnv, Vec<PyTarget>, Vec<PyCall>) {
    let env = calls
        .first()
        .map(|c| c.function.env.clone())
        .unwrap_or_default();
    let mut targets: Vec<PyTarget> = Vec::new();
    let mut out = Vec::new();
    for c in calls {
        let t = &c.function.target;
        let function = match targets.iter().position(|x| x == t) {
            Some(i) => i,
            None => {
                targets.push(t.clone());
                targets.len() - 1
            }
        };
        out.push(PyCall {
            function,
            args: c.args.clone(),
            results: c.function.results.clone(),
        });
    }
    (env, targets, out)
}
