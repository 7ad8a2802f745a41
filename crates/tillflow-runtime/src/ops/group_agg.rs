//! Non-windowed GROUP BY: an updating result.
//!
//! For every input row the group's accumulators are updated and the change is emitted as a
//! changelog: `+I` for a new group, `-U`/`+U` when its result changes, `-D` when its last row is
//! retracted. Late records are never dropped here (there is no window to be late for).
//! With a state TTL (`table.exec.state.ttl`, [`crate::ttl`]) a group not written for that long
//! is forgotten without a row, as in Flink: its next row starts it again with `+I`, and a
//! retraction for it is ignored.

use crate::agg::{new_accs, update_all, Acc, AggCall};
use crate::error::{Result, RuntimeError};
use crate::keys::{decode_key_into, encode_key};
use crate::operator::{Emit, Operator, OperatorMetrics};
use crate::state::{read_u64, KeyedState, StateValue};
use crate::ttl::StateTtl;
use tillflow_types::{Row, RowKind};

/// A group's state: live row count and accumulators.
pub struct GroupState {
    rows: i64,
    accs: Vec<Acc>,
}

impl StateValue for GroupState {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.rows.to_le_bytes());
        self.accs.write(out);
    }
    fn read(input: &[u8], at: &mut usize) -> Result<Self> {
        Ok(GroupState {
            rows: read_u64(input, at)? as i64,
            accs: Vec::<Acc>::read(input, at)?,
        })
    }
}

/// Running aggregation per key with changelog output `[keys..., aggregates...]`.
pub struct GroupAggregate {
    keys: Vec<usize>,
    calls: Vec<AggCall>,
    state: KeyedState<GroupState>,
    ttl: Option<StateTtl>,
    key: Vec<u8>,
    scratch: Vec<u8>,
    before: Row,
    after: Row,
    metrics: OperatorMetrics,
}

impl GroupAggregate {
    /// Groups by `keys` and computes `calls`.
    pub fn new(keys: Vec<usize>, calls: Vec<AggCall>) -> Self {
        GroupAggregate {
            keys,
            calls,
            state: KeyedState::default(),
            ttl: None,
            key: Vec::with_capacity(32),
            scratch: Vec::new(),
            before: Row::with_capacity(8),
            after: Row::with_capacity(8),
            metrics: OperatorMetrics::default(),
        }
    }

    /// Forgets a group `ttl` after its last row (see [`crate::ttl`]).
    pub fn with_state_ttl(mut self, ttl: Option<StateTtl>) -> Self {
        self.ttl = ttl;
        self.state = KeyedState::with_ttl(ttl);
        self
    }

    fn render(
        row: &mut Row,
        key: &[u8],
        g: &GroupState,
        calls: &[AggCall],
        kind: RowKind,
    ) -> Result<()> {
        row.clear();
        row.kind = kind;
        decode_key_into(key, row).ok_or_else(|| RuntimeError::State("corrupt group key".into()))?;
        for (acc, call) in g.accs.iter().zip(calls) {
            let v = acc.value(call, &mut row.heap);
            row.values.push(v);
        }
        Ok(())
    }
}

impl Operator for GroupAggregate {
    fn describe(&self) -> String {
        format!(
            "GroupAggregate(keys={:?}, aggs={:?})",
            self.keys,
            self.calls.iter().map(|c| c.kind).collect::<Vec<_>>()
        )
    }

    fn process(&mut self, row: &Row, out: &mut dyn Emit) -> Result<()> {
        self.metrics.records_in += 1;
        encode_key(&mut self.key, row, &self.keys);
        let retract = !row.kind.is_addition();
        let calls = &self.calls;
        let g = self.state.get_or_insert_with(&self.key, || GroupState {
            rows: 0,
            accs: new_accs(calls),
        });
        let existed = g.rows > 0;
        if existed {
            Self::render(&mut self.before, &self.key, g, calls, RowKind::UpdateBefore)?;
        } else if retract {
            // retraction of a row never seen: nothing to undo
            self.state.remove(&self.key);
            return Ok(());
        }
        update_all(&mut g.accs, calls, row, retract, &mut self.scratch)?;
        g.rows += if retract { -1 } else { 1 };
        if g.rows <= 0 {
            self.before.kind = RowKind::Delete;
            self.metrics.records_out += 1;
            out.emit(&self.before)?;
            self.state.remove(&self.key);
            return Ok(());
        }
        Self::render(
            &mut self.after,
            &self.key,
            g,
            calls,
            if existed {
                RowKind::UpdateAfter
            } else {
                RowKind::Insert
            },
        )?;
        if existed {
            if self.before.values == self.after.values && self.before.heap == self.after.heap {
                return Ok(()); // unchanged result: Flink emits nothing
            }
            self.metrics.records_out += 1;
            out.emit(&self.before)?;
        }
        self.metrics.records_out += 1;
        out.emit(&self.after)
    }

    fn metrics(&self) -> OperatorMetrics {
        let mut m = self.metrics.clone();
        m.state_entries = self.state.len() as u64;
        m.state_bytes = self.state.bytes_estimate();
        m.state_expired = self.state.expired();
        m
    }

    fn on_watermark(&mut self, wm: i64, out: &mut dyn Emit) -> Result<()> {
        self.state.on_watermark(wm);
        out.watermark(wm)
    }

    fn on_processing_time(&mut self, now: i64, _out: &mut dyn Emit) -> Result<()> {
        self.state.on_processing_time(now);
        Ok(())
    }

    /// 2 when a MIN/MAX consumes an updating input (it keeps value counts since then, where it
    /// kept one value before); 1 otherwise, so other aggregates' checkpoints still restore.
    fn state_version(&self) -> u32 {
        if self.calls.iter().any(|c| {
            c.retracts && matches!(c.kind, crate::agg::AggKind::Min | crate::agg::AggKind::Max)
        }) {
            2
        } else {
            1
        }
    }

    fn snapshot_state(&self, out: &mut Vec<u8>) {
        self.state.snapshot(0..crate::keys::MAX_KEY_GROUPS, out);
    }

    fn restore_state(&mut self, input: &[u8]) -> Result<()> {
        self.restore_parts(&[input], &crate::state::Rescale::NONE)
    }

    fn restore_parts(&mut self, parts: &[&[u8]], rescale: &crate::state::Rescale) -> Result<()> {
        self.state = KeyedState::with_ttl(self.ttl);
        for (j, p) in parts.iter().enumerate() {
            self.state.restore_part(p, &mut 0, rescale, j)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agg::AggKind;
    use crate::ttl::TtlClock;
    use tillflow_types::{DataType, Value};

    struct Drop;
    impl Emit for Drop {
        fn emit(&mut self, _row: &Row) -> Result<()> {
            Ok(())
        }
        fn watermark(&mut self, _wm: i64) -> Result<()> {
            Ok(())
        }
    }

    /// Under a steady stream of new keys (a customer id per event, one event a millisecond), a
    /// GROUP BY with a 1 s TTL holds only the last second or two of keys, however long the stream
    /// runs; without it, every key stays.
    #[test]
    fn state_stops_growing_under_a_ttl() {
        let count = AggCall {
            kind: AggKind::CountStar,
            arg: None,
            distinct: false,
            arg_type: DataType::BigInt,
            result_type: DataType::BigInt,
            filter: None,
            model: None,
            separator: None,
            retracts: false,
            lag: None,
        };
        let ttl = StateTtl {
            micros: 1_000_000,
            clock: TtlClock::Watermark,
        };
        let mut with = GroupAggregate::new(vec![0], vec![count.clone()]).with_state_ttl(Some(ttl));
        let mut without = GroupAggregate::new(vec![0], vec![count]);
        let mut row = Row::with_capacity(1);
        let mut most = 0;
        for i in 0..100_000i64 {
            row.clear();
            row.values.push(Value::Int(i));
            for op in [&mut with, &mut without] {
                op.process(&row, &mut Drop).unwrap();
                op.on_watermark(i * 1000, &mut Drop).unwrap();
            }
            most = most.max(with.metrics().state_entries);
        }
        assert!(most <= 2_600, "at most about 2.5 s of keys: {most}");
        assert_eq!(without.metrics().state_entries, 100_000);
        assert!(with.metrics().state_expired >= 97_000);
    }
}
