//! A Kafka source as one member of its job's consumer group: the processes of one scaled-out job
//! (`tillflow run --instance-id`) share a topic's partitions through Kafka's group coordinator,
//! as Kafka Streams' instances do, with no coordinator of tillflow's own.
//!
//! This module owns what happens at a rebalance. The group assigns partitions; a partition
//! newly assigned to this member starts at the group's committed offset (the offset the member
//! that held it before committed with its last complete checkpoint), or, never committed, where
//! the table's `scan.startup.mode` says. A revocation is **held**: the member stops handing out
//! rows of its partitions, asks the job for a checkpoint, and gives the partitions up only once
//! that checkpoint has committed their offsets — so the next owner starts exactly after the
//! rows this member has already passed on, none twice and none skipped. librdkafka lets the
//! application answer a rebalance later than in its callback (the group waits for it, within
//! `max.poll.interval.ms`).
//!
//! Members join with static membership by default (`group.instance.id` = the instance id), so a
//! member that restarts within `session.timeout.ms` gets its partitions back without a
//! rebalance (`--membership dynamic`: a member that stops hands its partitions on at once), and the
//! eager `roundrobin` assignor by default (the test broker's cooperative rebalancing does not
//! hand revoked partitions on; `properties.partition.assignment.strategy` picks another).

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::topic_partition_list::TopicPartitionListElem;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LockResult, Mutex, MutexGuard};
use std::time::Duration;

/// The table option (set by the job, not written in DDL) naming this process's member of the
/// job's consumer group: its instance id.
pub const MEMBER_OPTION: &str = "tillflow.group.instance-id";

/// The table option (set by the job) that makes the member a static one: its instance id is
/// its `group.instance.id`.
pub const STATIC_OPTION: &str = "tillflow.group.static";

/// How long a rebalance waits for the group's committed offsets of newly assigned partitions.
const COMMITTED_TIMEOUT: Duration = Duration::from_secs(10);

/// What the rebalance callback (on librdkafka's poll, inside the source's `poll`) tells the
/// source.
#[derive(Default)]
pub struct Membership {
    /// Where a partition the group has never committed an offset for starts (the table's
    /// start-up mode, resolved when the source was built).
    pub starts: BTreeMap<(String, i32), i64>,
    /// A new assignment the source has not taken in yet: each partition and its start offset.
    pub assigned: Option<Vec<(String, i32, i64)>>,
    /// The group has revoked the assignment: the source holds it until a checkpoint has
    /// committed the offsets of what it handed out.
    pub revoking: bool,
    /// Rebalances (assignments) so far.
    pub rebalances: u64,
    /// The last rebalance error, for the job's messages.
    pub error: Option<String>,
    /// The source is closing its consumer: a revocation (the consumer leaving its group) is
    /// answered at once, as no checkpoint will come.
    pub closing: bool,
    /// Positions of the checkpoint this process resumed from: where one is ahead of the
    /// group's committed offset (the process stopped after writing the checkpoint, before
    /// committing its offsets), a partition assigned to it again starts there, as the
    /// checkpoint's rows reach the sinks on the restore.
    pub floors: BTreeMap<(String, i32), i64>,
    /// What makes the source fail the job: the group's committed offsets could not be read
    /// for an assignment (starting elsewhere would read records twice or skip them).
    pub fatal: Option<String>,
}

/// [`Membership`] shared by the source and its consumer's context, with a flag the source
/// reads without the lock on every message: set when a rebalance has news for it, and while a
/// revocation is held.
#[derive(Clone, Default)]
pub struct SharedMembership {
    state: Arc<Mutex<Membership>>,
    news: Arc<AtomicBool>,
}

impl SharedMembership {
    /// The membership, locked.
    pub fn lock(&self) -> LockResult<MutexGuard<'_, Membership>> {
        self.state.lock()
    }

    /// Whether the membership may have changed since [`SharedMembership::seen`] (read
    /// without the lock).
    pub fn has_news(&self) -> bool {
        self.news.load(Ordering::Acquire)
    }

    /// The source has taken the news in; `keep`: look again next time (a revocation is held).
    /// Called with the lock held, as the callback sets the flag with it held.
    pub fn seen(&self, keep: bool) {
        self.news.store(keep, Ordering::Release);
    }

    fn told(&self) {
        self.news.store(true, Ordering::Release);
    }
}

fn offset_of(e: &TopicPartitionListElem<'_>) -> Option<i64> {
    match e.offset() {
        Offset::Offset(o) if o >= 0 => Some(o),
        _ => None,
    }
}

/// Answers a rebalance of `consumer` for `member`: an assignment is taken at once (from the
/// group's committed offsets), a revocation is held for the source (see the module comment).
pub fn rebalance<C: ConsumerContext>(
    member: &SharedMembership,
    consumer: &BaseConsumer<C>,
    err: RDKafkaRespErr,
    tpl: &TopicPartitionList,
) {
    match err {
        RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
            // the offsets the group holds: a partition without one starts where the table's
            // start-up mode says, but one whose offset cannot be read does not start at all
            let mut committed = consumer.committed_offsets(tpl.clone(), COMMITTED_TIMEOUT);
            for _ in 0..2 {
                if committed.is_ok() {
                    break;
                }
                committed = consumer.committed_offsets(tpl.clone(), COMMITTED_TIMEOUT);
            }
            let Ok(mut m) = member.lock() else {
                return;
            };
            let committed = match committed {
                Ok(c) => c,
                Err(e) => {
                    m.fatal = Some(format!(
                        "the group's committed offsets of the partitions it assigned could not be read ({e}); starting anywhere else could read records twice or skip them"
                    ));
                    member.told();
                    return;
                }
            };
            let mut take = TopicPartitionList::new();
            let mut list = Vec::new();
            for e in tpl.elements() {
                let (topic, partition) = (e.topic().to_owned(), e.partition());
                let from_group = committed
                    .find_partition(&topic, partition)
                    .and_then(|c| offset_of(&c));
                let floor = m.floors.remove(&(topic.clone(), partition));
                let start = match (from_group, floor) {
                    (Some(g), Some(f)) => Some(g.max(f)),
                    (g, f) => g.or(f),
                };
                let start = start
                    .or_else(|| m.starts.get(&(topic.clone(), partition)).copied())
                    .or_else(|| {
                        consumer
                            .fetch_watermarks(&topic, partition, COMMITTED_TIMEOUT)
                            .ok()
                            .map(|w| w.0)
                    })
                    .unwrap_or(0);
                let _ = take.add_partition_offset(&topic, partition, Offset::Offset(start));
                list.push((topic, partition, start));
            }
            // a partition paused by an earlier revocation stays paused through an assignment
            if let Err(e) = consumer.assign(&take).and_then(|()| consumer.resume(&take)) {
                m.error = Some(format!("taking the assigned partitions: {e}"));
            }
            m.rebalances += 1;
            m.revoking = false;
            m.assigned = Some(list);
            member.told();
        }
        RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
            let Ok(mut m) = member.lock() else {
                let _ = consumer.unassign();
                return;
            };
            if m.closing {
                // leaving the group: what was checkpointed is committed, the rest is the
                // next owner's to read
                let _ = consumer.unassign();
                m.revoking = false;
                return;
            }
            // held: no more rows of these partitions until the job has checkpointed them
            let _ = consumer.pause(tpl);
            m.revoking = true;
            member.told();
        }
        other => {
            let _ = consumer.unassign();
            if let Ok(mut m) = member.lock() {
                m.error = Some(format!("rebalance failed: {other:?}"));
                m.assigned = Some(Vec::new());
                m.revoking = false;
                member.told();
            }
        }
    }
}
