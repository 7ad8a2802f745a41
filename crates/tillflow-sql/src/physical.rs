//! The plan instantiated once per worker: a parallel job's stages.
//!
//! [`stages`] cuts a [`JobPlan`] wherever rows must change worker — before every keyed node (the
//! [`distribution`] `explain` prints as its `Exchange`), at every join, and before a sink fed by
//! several workers — into the job loop's part (sources, scans, everything before the first
//! keyed node of each path) and **stages**: a keyed stage runs as `parallelism` instances, one
//! that needs all rows in one place (a global aggregate, batch mode's sort, a union, a join
//! without equi-join keys, a sink) as one. [`instantiate`] then builds the operators once per
//! instance, connects each part to the next through an [`Exchange`] hashing on the keys the next
//! node needs (Flink's key-group assignment), and opens each sink once — one writer fed by every
//! worker, so exactly-once delivery works as on one thread — or, for a sink every worker may
//! write (a directory of part files), once per worker.

use crate::error::{plan_err, Result};
use crate::plan::explain::distribution;
use crate::plan::rules::two_phase::{self, Strategy};
use crate::plan::{LateFiles, PlanNode, PlanOp, TwoInputOp};
use crate::session::{BranchEnd, JobPlan, TaskSource};
use std::sync::Arc;
use tillflow_connectors::TableSpec;
use tillflow_runtime::exchange::{PrefixOps, PrefixWork, Routing, StageBuilder};
use tillflow_runtime::job::{Job, SourceTask};
use tillflow_runtime::operator::{ChunkWork, ChunkWorkFactory};
use tillflow_runtime::operator::{Output, Pipeline, Source, TwoInputNode};

/// Where a chain's rows go.
enum Tail {
    Sink {
        spec: TableSpec,
        connector: &'static dyn tillflow_connectors::Connector,
    },
    Fanout(Vec<Chain>),
    /// Input `port` of stage `stage`, routed by the hash of `keys` (all to one instance when
    /// empty).
    Exchange {
        stage: usize,
        port: usize,
        keys: Vec<usize>,
    },
}

/// Operators run one after another on one worker, and where their rows go.
struct Chain {
    ops: Vec<PlanNode>,
    tail: Tail,
}

/// Where an uncut chain ends (the plan's branch ends, or several branches).
enum End {
    Sink {
        spec: TableSpec,
        connector: &'static dyn tillflow_connectors::Connector,
    },
    Join {
        id: usize,
        side: usize,
    },
    Fanout(Vec<(Vec<PlanNode>, End)>),
}

impl From<BranchEnd> for End {
    fn from(e: BranchEnd) -> Self {
        match e {
            BranchEnd::Sink { spec, connector } => End::Sink { spec, connector },
            BranchEnd::Join { id, side } => End::Join { id, side },
        }
    }
}

/// What a stage's instances run.
enum Body {
    /// One input feeding a chain.
    Chain(Chain),
    /// A two-input node (its inputs are the stage's inputs 0 and 1) and the chain after it.
    Join {
        op: Box<PlanNode<TwoInputOp>>,
        downstream: Chain,
    },
}

/// A stage: how many instances, how many senders each input has, what it runs.
struct StageDef {
    name: String,
    parallelism: usize,
    senders: Vec<usize>,
    body: Option<Body>,
}

/// The job loop's part of one source and the stages after it.
struct TaskDef {
    source: TaskSource,
    chain: Chain,
}

/// A parallel job's shape: what the job loop runs and the stages.
struct Cut {
    parallelism: usize,
    /// Rows for a sink with a primary key that every worker writes are hashed on the key
    /// first (`table.exec.sink.keyed-shuffle` other than `NONE`), so a key's changes reach
    /// one writer in order.
    keyed_shuffle: bool,
    stages: Vec<StageDef>,
    /// The stage of each join.
    join_stage: Vec<usize>,
    /// The join keys of each join, per side (empty: every row to one instance).
    join_keys: Vec<[Vec<usize>; 2]>,
    /// Which window aggregates run in two phases.
    two_phase: Strategy,
}

impl Cut {
    fn stage(&mut self, name: String, parallelism: usize, inputs: usize) -> usize {
        self.stages.push(StageDef {
            name,
            parallelism,
            senders: vec![0; inputs],
            body: None,
        });
        self.stages.len() - 1
    }

    /// A stage of `parallelism` writers of `spec`, fed by `p` workers through an exchange on
    /// `keys`.
    fn sink_stage(
        &mut self,
        spec: TableSpec,
        connector: &'static dyn tillflow_connectors::Connector,
        parallelism: usize,
        p: usize,
        keys: Vec<usize>,
    ) -> Tail {
        let s = self.stage(format!("Sink({})", spec.name), parallelism, 1);
        self.stages[s].senders[0] = p;
        self.stages[s].body = Some(Body::Chain(Chain {
            ops: Vec::new(),
            tail: Tail::Sink { spec, connector },
        }));
        Tail::Exchange {
            stage: s,
            port: 0,
            keys,
        }
    }

    /// Cuts `ops` (run on workers of parallelism `p`) before its first keyed node (after the
    /// first when `started`: the node a new stage starts with) and at its end. On a source's
    /// own chain (`in_task`: the job loop's thread or the decoding threads, which flush before
    /// every barrier), a window aggregate may start with its local half (`rules::two_phase`).
    fn cut(
        &mut self,
        mut ops: Vec<PlanNode>,
        end: End,
        p: usize,
        started: bool,
        in_task: bool,
    ) -> Chain {
        let keyed = ops
            .iter()
            .enumerate()
            .skip(started as usize)
            .find_map(|(i, n)| distribution(&n.op).map(|k| (i, k)));
        if let Some((i, keys)) = keyed {
            let mut rest = ops.split_off(i);
            if in_task && self.parallelism > 1 {
                if let Some((local, global)) = two_phase::split(&rest[0], self.two_phase) {
                    ops.push(local);
                    rest[0] = global;
                }
            }
            let sp = if keys.is_empty() { 1 } else { self.parallelism };
            let s = self.stage(rest[0].identity().label, sp, 1);
            self.stages[s].senders[0] = p;
            let body = self.cut(rest, end, sp, true, false);
            self.stages[s].body = Some(Body::Chain(body));
            return Chain {
                ops,
                tail: Tail::Exchange {
                    stage: s,
                    port: 0,
                    keys,
                },
            };
        }
        let tail = match end {
            End::Sink { spec, connector } if p == 1 => Tail::Sink { spec, connector },
            // a sink every worker may write (a part file, a connection each): with a primary
            // key, after a keyed shuffle on it (Flink's `table.exec.sink.keyed-shuffle`)
            End::Sink { spec, connector } if connector.sink_per_worker(&spec) => {
                let pk: Option<Vec<usize>> = spec
                    .primary_key
                    .iter()
                    .map(|k| spec.schema.fields.iter().position(|f| f.name == *k))
                    .collect();
                // a partitioned file table: each partition written by one worker (Flink's
                // `sink.shuffle-by-partition.enable`), so the partition's commit follows all
                // of its files
                let partition: Option<Vec<usize>> = spec
                    .partition_keys
                    .iter()
                    .map(|k| spec.schema.fields.iter().position(|f| f.name == *k))
                    .collect();
                let keys = partition
                    .filter(|k| !k.is_empty())
                    .or(pk.filter(|k| !k.is_empty() && self.keyed_shuffle));
                match keys {
                    Some(keys) => self.sink_stage(spec, connector, self.parallelism, p, keys),
                    None => Tail::Sink { spec, connector },
                }
            }
            End::Sink { spec, connector } => self.sink_stage(spec, connector, 1, p, Vec::new()),
            End::Join { id, side } => {
                let stage = self.join_stage[id];
                // each side of a join is fed by one chain (its senders are that chain's workers)
                debug_assert_eq!(self.stages[stage].senders[side], 0);
                self.stages[stage].senders[side] = p;
                Tail::Exchange {
                    stage,
                    port: side,
                    keys: self.join_keys[id][side].clone(),
                }
            }
            End::Fanout(branches) => Tail::Fanout(
                branches
                    .into_iter()
                    .map(|(ops, end)| self.cut(ops, end, p, false, in_task))
                    .collect(),
            ),
        };
        Chain { ops, tail }
    }
}

/// The keys each side of a two-input node is hashed on (empty: it needs every row in one
/// place).
fn two_input_keys(op: &TwoInputOp) -> [Vec<usize>; 2] {
    match op {
        TwoInputOp::Join { keys, .. }
        | TwoInputOp::IntervalJoin { keys, .. }
        | TwoInputOp::TemporalJoin { keys, .. }
            if !keys[0].is_empty() =>
        {
            keys.clone()
        }
        _ => [Vec::new(), Vec::new()],
    }
}

/// The scan's and branches' nodes as one uncut chain.
fn task_chain(
    scan: Vec<PlanNode>,
    mut branches: Vec<crate::session::Branch>,
) -> (Vec<PlanNode>, End) {
    if branches.len() == 1 {
        let b = branches.remove(0);
        let mut ops = scan;
        ops.extend(b.ops);
        return (ops, b.end.into());
    }
    (
        scan,
        End::Fanout(
            branches
                .into_iter()
                .map(|b| (b.ops, b.end.into()))
                .collect(),
        ),
    )
}

/// Builds a chain's operators and output for the worker `from` of its stage.
fn build_chain(
    c: &Chain,
    from: usize,
    splits: usize,
    builders: &[StageBuilder],
    recent: bool,
    late: &mut LateFiles,
) -> Result<Pipeline> {
    let ops = c
        .ops
        .iter()
        .map(|n| n.build(splits, late))
        .collect::<Result<Vec<_>>>()?;
    let output = match &c.tail {
        Tail::Sink { spec, connector } => {
            let sink = connector.sink(spec)?;
            Output::Sink(if recent {
                Box::new(tillflow_connectors::recent::Recent::new(sink, spec)?)
            } else {
                sink
            })
        }
        Tail::Fanout(cs) => Output::Fanout(
            cs.iter()
                .map(|c| build_chain(c, from, 1, builders, recent, late))
                .collect::<Result<Vec<_>>>()?,
        ),
        Tail::Exchange { stage, port, keys } => {
            let Some(b) = builders.get(*stage) else {
                return plan_err(format!("internal: stage {stage} is missing"));
            };
            let label = if keys.is_empty() {
                "Exchange(single)".to_owned()
            } else {
                format!("Exchange(hash{keys:?})")
            };
            Output::Exchange(b.exchange(*port, from, keys.clone(), label))
        }
    };
    Ok(Pipeline {
        ops,
        ids: c.ops.iter().map(|n| n.identity()).collect(),
        output,
    })
}

/// The work a source's decoding threads can do in the job loop's place: a chain of stateless
/// nodes (computed columns, the watermark assigner, projections and filters, and a window
/// aggregate's local half, which sends its partials at the end of every chunk) that ends in
/// one exchange — most scans before a window or a GROUP BY — or in the job loop's sink (whose
/// rows then come to the job loop in chunks, in order).
fn prefix_work(chain: &Chain, pipeline: &Pipeline, splits: usize) -> Option<ChunkWorkFactory> {
    let fusable = chain.ops.iter().all(|n| {
        matches!(
            n.op,
            PlanOp::Calc { .. }
                | PlanOp::WatermarkAssigner { .. }
                | PlanOp::LocalWindowAggregate { .. }
        )
    });
    if !fusable {
        return None;
    }
    let routing = match (&pipeline.output, &chain.tail) {
        (Output::Exchange(e), Tail::Exchange { .. }) => e.routing(),
        (Output::Sink(_), Tail::Sink { .. }) => Routing {
            width: 1,
            max_parallelism: 1,
            ..Routing::default()
        },
        _ => return None,
    };
    let nodes = chain.ops.clone();
    let ops: PrefixOps = Arc::new(move || {
        let mut late = LateFiles::default();
        nodes
            .iter()
            .map(|n| n.build(splits, &mut late))
            .collect::<Result<Vec<_>>>()
            .map_err(|e| tillflow_runtime::RuntimeError::State(e.to_string()))
    });
    Some(Arc::new(move || {
        Ok(Box::new(PrefixWork {
            ops: ops.clone(),
            routing: routing.clone(),
        }) as Box<dyn ChunkWork>)
    }))
}

/// The parallelism a job runs at: `--parallelism` (`over`), else the script's
/// `table.exec.resource.default-parallelism` or `parallelism.default` when positive, else the
/// cores the process may run on (at most the max parallelism); and the max parallelism
/// (`pipeline.max-parallelism`, 128).
pub fn parallelism(plan: &JobPlan, over: Option<usize>) -> Result<(usize, u32)> {
    let get = |k: &str| {
        plan.config
            .get(k)
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|v| *v > 0)
    };
    let max = get("pipeline.max-parallelism").unwrap_or(128);
    if max > 32_768 {
        return plan_err(format!(
            "'pipeline.max-parallelism' = {max} is above Flink's limit of 32768"
        ));
    }
    let p = match over {
        Some(p) => p as i64,
        None => get("table.exec.resource.default-parallelism")
            .or_else(|| get("parallelism.default"))
            // the cores, up to the key groups there are
            .unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, |n| (n.get() as i64).min(max))
            }),
    };
    if p < 1 {
        return plan_err("the parallelism must be at least 1");
    }
    if p > max {
        return plan_err(format!(
            "parallelism {p} is above 'pipeline.max-parallelism' = {max} (the number of key groups state is split into); raise 'pipeline.max-parallelism' or lower the parallelism"
        ));
    }
    Ok((p as usize, max as u32))
}

/// Opens every source and sink and returns the runnable job, with the keyed part of each path
/// running on `parallelism` workers.
pub fn instantiate(
    plan: JobPlan,
    parallelism: usize,
    max_parallelism: u32,
    open: &mut dyn FnMut(&TaskSource) -> Result<Box<dyn Source>>,
) -> Result<Job> {
    let recent = plan.keep_recent_rows;
    let mut cut = Cut {
        parallelism,
        keyed_shuffle: !plan
            .config
            .get("table.exec.sink.keyed-shuffle")
            .is_some_and(|v| v.eq_ignore_ascii_case("NONE")),
        stages: Vec::new(),
        join_stage: Vec::new(),
        join_keys: Vec::new(),
        two_phase: Strategy::from_config(&plan.config),
    };
    let mut joins = Vec::new();
    for j in plan.joins {
        let keys = two_input_keys(&j.op.op);
        let p = if keys[0].is_empty() { 1 } else { parallelism };
        let s = cut.stage(j.op.identity().label, p, 2);
        cut.join_stage.push(s);
        cut.join_keys.push(keys);
        joins.push((s, j));
    }
    for (s, j) in joins {
        let p = cut.stages[s].parallelism;
        let downstream = cut.cut(j.downstream.ops, j.downstream.end.into(), p, false, false);
        cut.stages[s].body = Some(Body::Join {
            op: Box::new(j.op),
            downstream,
        });
    }
    let mut tasks = Vec::new();
    for t in plan.tasks {
        let (ops, end) = task_chain(t.scan, t.branches);
        let chain = cut.cut(ops, end, 1, false, true);
        tasks.push(TaskDef {
            source: t.source,
            chain,
        });
    }
    let builders: Vec<StageBuilder> = cut
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            StageBuilder::new(
                i,
                s.name.clone(),
                s.parallelism,
                s.senders.clone(),
                max_parallelism,
            )
        })
        .collect();
    let mut late = LateFiles::default();
    let mut instances = Vec::new();
    for s in &cut.stages {
        let mut per = Vec::new();
        for k in 0..s.parallelism {
            per.push(match &s.body {
                Some(Body::Chain(c)) => vec![build_chain(c, k, 1, &builders, recent, &mut late)?],
                Some(Body::Join { op, downstream }) => {
                    let down = build_chain(downstream, k, 1, &builders, recent, &mut late)?;
                    let node = TwoInputNode::shared(op.identity(), op.build()?, down);
                    (0..2)
                        .map(|side| Pipeline {
                            ops: Vec::new(),
                            ids: Vec::new(),
                            output: Output::Input(node.clone(), side),
                        })
                        .collect()
                }
                None => return plan_err(format!("internal: {} has nothing to run", s.name)),
            });
        }
        instances.push(per);
    }
    let mut source_tasks = Vec::new();
    for t in tasks {
        let mut source = open(&t.source)?;
        source.parallelize(parallelism);
        let pipeline = build_chain(&t.chain, 0, source.splits(), &builders, recent, &mut late)?;
        let work = prefix_work(&t.chain, &pipeline, source.splits());
        let fused = work.is_some_and(|w| source.fuse(w));
        let mut task = SourceTask::new(source, pipeline);
        if fused {
            task.set_fused();
        }
        source_tasks.push(task);
    }
    let stages = builders
        .into_iter()
        .zip(instances)
        .map(|(b, i)| b.finish(i))
        .collect::<tillflow_runtime::Result<Vec<_>>>();
    let stages = match stages {
        Ok(s) => s,
        Err(e) => return plan_err(e.to_string()),
    };
    Ok(Job::parallel(source_tasks, stages))
}

#[cfg(test)]
mod tests {
    use crate::session::Session;
    use std::collections::BTreeMap;

    /// The job of `script` at `parallelism`, after tables `t` and `u` over a one-line file and
    /// a blackhole `out1` (`${OUT}` in the script: a fresh directory).
    fn job(script: &str, parallelism: usize) -> tillflow_runtime::job::Job {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.ndjson");
        std::fs::write(&input, "{\"k\": 1, \"s\": 2, \"x\": 3}\n").unwrap();
        let sql = format!(
            "CREATE TABLE t (k INT, s INT, x INT) WITH ('connector' = 'filesystem', 'path' = '{0}', 'format' = 'json');
             CREATE TABLE u (k INT, y INT) WITH ('connector' = 'filesystem', 'path' = '{0}', 'format' = 'json');
             CREATE TABLE out1 (a INT, b BIGINT) WITH ('connector' = 'blackhole');
             {1}",
            input.display(),
            script.replace("${OUT}", &dir.path().join("out").display().to_string())
        );
        let mut plan = Session::new()
            .execute_script(&sql, &BTreeMap::new())
            .unwrap();
        plan.parallelism = Some(parallelism);
        plan.instantiate().unwrap()
    }

    /// The workers of each operator of `query`, at `parallelism`.
    fn workers(query: &str, parallelism: usize) -> Vec<(String, usize)> {
        let r = job(query, parallelism).report(std::time::Duration::ZERO);
        r.operators
            .iter()
            .zip(&r.workers)
            .map(|((name, _), w)| {
                let name = name.split('[').next().unwrap_or("").to_owned();
                (name, w.len().max(1))
            })
            .collect()
    }

    fn of(ops: &[(String, usize)], name: &str) -> usize {
        ops.iter()
            .find(|(n, _)| n == name)
            .map(|(_, w)| *w)
            .unwrap_or_else(|| panic!("{name} in {ops:?}"))
    }

    #[test]
    fn a_window_aggregate_after_the_source_runs_in_two_phases_on_several_workers() {
        let window = |sets: &str| {
            format!(
                "CREATE TABLE w (k INT, x INT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts)
                 WITH ('connector' = 'datagen', 'number-of-rows' = '10');
                 {sets}
                 INSERT INTO out1 SELECT k, COUNT(*) FROM TABLE(TUMBLE(TABLE w, DESCRIPTOR(ts),
                   INTERVAL '1' MINUTE)) GROUP BY k, window_start, window_end"
            )
        };
        let two = workers(&window(""), 3);
        // the local half where the rows are read, the global one on every worker
        assert_eq!(of(&two, "LocalWindowAggregate"), 1, "{two:?}");
        assert_eq!(of(&two, "WindowAggregate"), 3, "{two:?}");
        let one = workers(&window(""), 1);
        assert!(
            one.iter().all(|(n, _)| n != "LocalWindowAggregate"),
            "{one:?}"
        );
        let off = workers(
            &window("SET 'table.optimizer.agg-phase-strategy' = 'ONE_PHASE';"),
            3,
        );
        assert!(
            off.iter().all(|(n, _)| n != "LocalWindowAggregate"),
            "{off:?}"
        );
    }

    #[test]
    fn keyed_nodes_and_joins_run_on_every_worker_global_ones_on_one() {
        let grouped = workers("INSERT INTO out1 SELECT k, COUNT(*) FROM t GROUP BY k", 3);
        assert_eq!(of(&grouped, "GroupAggregate"), 3, "{grouped:?}");
        let global = workers("INSERT INTO out1 SELECT 1, COUNT(*) FROM t", 3);
        assert_eq!(of(&global, "GroupAggregate"), 1, "{global:?}");
        let joined = workers(
            "INSERT INTO out1 SELECT t.k, CAST(u.y AS BIGINT) FROM t JOIN u ON t.k = u.k",
            4,
        );
        assert_eq!(of(&joined, "Join"), 4, "{joined:?}");
        // a projection has nothing to hash: it stays on the job loop's thread
        let plain = workers(
            "INSERT INTO out1 SELECT k, CAST(x AS BIGINT) FROM t WHERE s > 0",
            4,
        );
        assert!(plain.iter().all(|(_, w)| *w == 1), "{plain:?}");
        // on one worker nothing is cut
        let one = workers("INSERT INTO out1 SELECT k, COUNT(*) FROM t GROUP BY k", 1);
        assert_eq!(of(&one, "GroupAggregate"), 1, "{one:?}");
    }

    #[test]
    fn parallelism_comes_from_the_flag_then_the_script_within_the_max() {
        let plan = |set: &str| {
            Session::new()
                .execute_script(set, &BTreeMap::new())
                .unwrap()
        };
        let p = plan("SET 'parallelism.default' = '3';");
        assert_eq!(super::parallelism(&p, None).unwrap(), (3, 128));
        assert_eq!(super::parallelism(&p, Some(5)).unwrap(), (5, 128));
        let p = plan(
            "SET 'parallelism.default' = '3'; SET 'table.exec.resource.default-parallelism' = '2';",
        );
        assert_eq!(super::parallelism(&p, None).unwrap().0, 2);
        let p = plan("SET 'pipeline.max-parallelism' = '4';");
        let e = super::parallelism(&p, Some(8)).unwrap_err().to_string();
        assert!(e.contains("pipeline.max-parallelism"), "{e}");
        assert!(super::parallelism(&plan(""), None).unwrap().0 >= 1);
    }

    /// The stages of `script` at `parallelism`.
    fn stages(script: &str, parallelism: usize) -> Vec<(String, usize)> {
        job(script, parallelism).stages()
    }

    #[test]
    fn a_sink_with_a_primary_key_gets_its_rows_hashed_on_the_key() {
        let counts = "INSERT INTO o SELECT k, COUNT(*) FROM t GROUP BY k;";
        let keyed = stages(
            &format!("CREATE TABLE o (k INT, n BIGINT, PRIMARY KEY (k) NOT ENFORCED) WITH ('connector' = 'filesystem', 'path' = '${{OUT}}', 'format' = 'debezium-json'); {counts}"),
            3,
        );
        assert_eq!(keyed.last(), Some(&("Sink(o)".to_owned(), 3)), "{keyed:?}");
        let unshuffled = stages(
            &format!("SET 'table.exec.sink.keyed-shuffle' = 'NONE'; CREATE TABLE o (k INT, n BIGINT, PRIMARY KEY (k) NOT ENFORCED) WITH ('connector' = 'filesystem', 'path' = '${{OUT}}', 'format' = 'debezium-json'); {counts}"),
            3,
        );
        assert!(
            unshuffled.iter().all(|(n, _)| !n.starts_with("Sink")),
            "{unshuffled:?}"
        );
        // a sink written by one writer: a stage of one, fed by every worker
        let printed = stages(
            &format!("CREATE TABLE o (k INT, n BIGINT) WITH ('connector' = 'print'); {counts}"),
            3,
        );
        assert_eq!(
            printed.last(),
            Some(&("Sink(o)".to_owned(), 1)),
            "{printed:?}"
        );
    }
}
