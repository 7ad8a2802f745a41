//! A job's plan made one member of a scaled-out job: N processes running the same script with
//! the same job name and their own instance ids (`tillflow run --instance-id`) share the work
//! through Kafka, with no coordinator of tillflow's own.
//!
//! This module owns what a plan must be to run that way, and what changes in it: every source
//! is a Kafka table, read as one member of the job's consumer group for that table (the
//! table's `properties.group.id`, else `<job>.<table>`), so the group coordinator deals the
//! topic's partitions among the processes; and each Kafka exactly-once sink's transactional id
//! prefix gets the instance id, so the members' producers do not fence each other. The other
//! sinks' commit markers and the checkpoints are the member's own already (the job name a
//! member checkpoints under carries its instance id).
//!
//! UNION ALL is row at a time and runs. What needs the rows of one key in one place — a window,
//! a GROUP BY, a join, OVER, Top-N, deduplication — is refused for now: partitions are dealt to processes without regard to
//! the key, so each process would see part of a key's rows and write its own partial answer.
//! Those run across processes once rows are re-keyed through repartition topics.

use crate::error::{plan_err, Result};
use crate::plan::explain::distribution;
use crate::plan::{PlanNode, TwoInputOp};
use crate::session::{BranchEnd, JobPlan, TaskSource};
use tillflow_connectors::kafka::{MEMBER_OPTION, STATIC_OPTION};

/// The consumer group a member joins for `table` of job `job`, unless the table names one.
pub fn group_id(job: &str, table: &str) -> String {
    format!("{job}.{table}")
}

/// Why a scaled-out job refuses what it refuses (the start of every refusal).
const WHY: &str = "a scaled-out job (--instance-id) shares its sources' partitions between its processes by Kafka's consumer groups";

/// Refuses the first of `ops` (of the statement at `line`) that needs all rows of a key in one
/// process: one `explain` puts behind a keyed exchange.
fn refuse_keyed<'a>(ops: impl IntoIterator<Item = &'a PlanNode>, line: u64) -> Result<()> {
    match ops.into_iter().find(|n| distribution(&n.op).is_some()) {
        Some(n) => plan_err(format!(
            "{WHY}, which deals partitions without regard to keys: the {} of the statement at line {line} needs all rows of a key in one process, and cannot run scaled out yet (rows are not re-keyed between processes); run this job as one process, with --parallelism for more cores",
            n.op.name()
        )),
        None => Ok(()),
    }
}

impl JobPlan {
    /// Makes this plan the part of job `job` that the process with instance id `instance`
    /// runs (see the module comment), or refuses, naming what cannot be shared. With
    /// `fixed`, the process is a static member of its groups (Kafka's `group.instance.id`).
    pub fn join_group(&mut self, job: &str, instance: &str, fixed: bool) -> Result<()> {
        if instance.trim().is_empty() {
            return plan_err("--instance-id must not be empty");
        }
        // a UNION ALL is row at a time; a join needs both inputs' rows of a key in one place
        if let Some(j) = self
            .joins
            .iter()
            .find(|j| !matches!(j.op.op, TwoInputOp::Union))
        {
            return plan_err(format!(
                "{WHY}, and a join needs both inputs' rows of one key in one process: the {} at line {} cannot run scaled out yet (rows are not re-keyed between processes); run this job as one process, with --parallelism for more cores",
                j.op.op.name(),
                j.downstream.line
            ));
        }
        for j in &self.joins {
            refuse_keyed(&j.downstream.ops, j.downstream.line)?;
        }
        for task in &mut self.tasks {
            let TaskSource::Table(table) = &mut task.source else {
                return plan_err(format!(
                    "{WHY}; a VALUES clause is not a Kafka topic: run this job as one process"
                ));
            };
            if table.connector.name() != "kafka" {
                return plan_err(format!(
                    "{WHY}; table `{}` is read by the '{}' connector, which has no consumer group: every process would read all of it. Run this job as one process",
                    table.name,
                    table.connector.name()
                ));
            }
            for b in &task.branches {
                refuse_keyed(task.scan.iter().chain(&b.ops), b.line)?;
            }
            let spec = &mut table.spec;
            spec.options
                .entry("properties.group.id".into())
                .or_insert_with(|| group_id(job, &table.name));
            spec.options.insert(MEMBER_OPTION.into(), instance.into());
            if fixed {
                spec.options.insert(STATIC_OPTION.into(), "true".into());
            }
        }
        let branches = self
            .tasks
            .iter_mut()
            .flat_map(|t| t.branches.iter_mut())
            .chain(self.joins.iter_mut().map(|j| &mut j.downstream));
        for b in branches {
            let BranchEnd::Sink { spec, connector } = &mut b.end else {
                continue;
            };
            if connector.name() == "kafka" {
                if let Some(p) = spec.options.get_mut("sink.transactional-id-prefix") {
                    *p = format!("{p}-{instance}");
                }
            }
        }
        Ok(())
    }
}
