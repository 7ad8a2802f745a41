//! Non-windowed GROUP BY: an updating result.
//!
//! For every input row the group's accumulators are updated and the change is emitted as a
//! changelog: `+I` for a new group, `-U`/`+U` when its result changes, `-D` when its last row is
//! retracted. Late records are never dropped here (there is no window to be late for).
//! With a state TTL (`table.exec.state.ttl`, [`crate::ttl`]) a group not written for that long
//! is forgotten without a row, as in Flink: its next row starts it again with `+I`, and a
//! retraction for it is ignored.
//!
//! A DISTINCT aggregate's values are not kept in its group's value but as entries of their own
//! ([`Distincts`]), one per (group, argument, value), as Flink keeps them in a map state: a
//! group with millions of distinct values (Nexmark q16's bidders per channel and day) is then
//! millions of small entries that the on-disk backend moves one by one, not one huge value.

use crate::agg::{new_accs, update_all, Acc, AggCall};
use crate::error::{Result, RuntimeError};
use crate::keys::{decode_key_into, encode_key, encode_value};
use crate::operator::{Emit, Operator, OperatorMetrics};
use crate::python::agg::{GroupAccs, PyAggs};
use crate::state::{read_u64, KeyedState, StateValue};
use crate::ttl::StateTtl;
use std::collections::HashSet;
use std::time::Instant;
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

/// Calls sharing one entry per distinct value, at most (a bit each).
const MAX_SHARING: usize = 64;

/// The values of a group aggregate's DISTINCT calls, an entry per (group, slot, value), as
/// Flink keeps them in a map state. Over an append-only input the calls over one argument
/// (and one conversion of it) share a slot, and a value's entry has a bit for each call whose
/// FILTER let it through (Flink's bitmap); over an updating input each call has a slot of its
/// own, and the entry counts how often the value is present. A call's accumulator sees a value
/// when it arrives for the call, and (updating input) again, retracted, when its count
/// returns to 0. An entry's key is the group's key, the slot's number (2 bytes), the value,
/// and the group key's length (4 bytes): the state is routed by the group key
/// ([`KeyedState::routed_by_prefix`]), so each entry lies in its group's key group.
struct Distincts {
    /// Per slot: the calls sharing it (one each when counting).
    slots: Vec<Vec<usize>>,
    /// True over an updating input: entries count.
    counting: bool,
    state: KeyedState<i64>,
    key: Vec<u8>,
}

impl Distincts {
    /// The DISTINCT calls among `calls`, by slot (None when there are none).
    fn of(calls: &[AggCall], ttl: Option<StateTtl>) -> Option<Distincts> {
        let counting = calls.iter().any(|c| c.retracts);
        let mut slots: Vec<(Option<usize>, bool, Vec<usize>)> = Vec::new();
        for (i, call) in calls.iter().enumerate() {
            if !Acc::new(call).is_distinct() {
                continue;
            }
            let conversion = call.kind.is_variance();
            let shared = slots.iter_mut().find(|(a, c, m)| {
                !counting && *a == call.arg && *c == conversion && m.len() < MAX_SHARING
            });
            match shared {
                Some((_, _, members)) => members.push(i),
                None => slots.push((call.arg, conversion, vec![i])),
            }
        }
        (!slots.is_empty()).then(|| Distincts {
            slots: slots.into_iter().map(|(_, _, m)| m).collect(),
            counting,
            state: KeyedState::with_ttl(ttl).routed_by_prefix(),
            key: Vec::with_capacity(64),
        })
    }

    /// Adds `row`'s values to (or with `retract`, takes them from) the group keyed `group`,
    /// and feeds each call's accumulator the values that arrive or leave for it.
    fn update(
        &mut self,
        group: &[u8],
        accs: &mut [Acc],
        calls: &[AggCall],
        row: &Row,
        retract: bool,
        scratch: &mut Vec<u8>,
    ) -> Result<()> {
        if retract && !self.counting {
            return Err(RuntimeError::State(
                "a retraction reached a DISTINCT aggregate planned for an append-only input".into(),
            ));
        }
        for (slot, members) in self.slots.iter().enumerate() {
            // the calls whose FILTER lets the row through, and the value (the same for each)
            let (mut mask, mut value) = (0u64, None);
            for (bit, &c) in members.iter().enumerate() {
                if let Some(v) = calls[c].input(row) {
                    mask |= 1 << bit;
                    value.get_or_insert(v);
                }
            }
            let Some(v) = value else {
                continue;
            };
            self.key.clear();
            self.key.extend_from_slice(group);
            self.key.extend_from_slice(&(slot as u16).to_le_bytes());
            encode_value(&mut self.key, v, &row.heap);
            self.key
                .extend_from_slice(&(group.len() as u32).to_le_bytes());
            if self.counting {
                // one call; its FILTER let the row through (the value was found)
                let c = members[0];
                let n = if retract {
                    match self.state.get_mut(&self.key) {
                        Some(n) => n,
                        None => continue,
                    }
                } else {
                    self.state.get_or_insert_with(&self.key, || 0)
                };
                let before = *n;
                *n += if retract { -1 } else { 1 };
                let now = *n;
                if now <= 0 {
                    self.state.remove(&self.key);
                }
                if (before > 0) != (now > 0) {
                    if let Some(inner) = accs[c].distinct_inner() {
                        inner.accept(calls[c].kind, v, &row.heap, retract, scratch)?;
                    }
                }
                continue;
            }
            // a value seen before by every call it counts for is only read
            let new = match self.state.peek_mut(&self.key) {
                Some(seen) if mask & !(*seen as u64) == 0 => continue,
                Some(seen) => {
                    let new = mask & !(*seen as u64);
                    if let Some(seen) = self.state.get_mut(&self.key) {
                        *seen |= new as i64;
                    }
                    new
                }
                None => {
                    self.state.insert_absent(&self.key, mask as i64);
                    mask
                }
            };
            for (bit, &c) in members.iter().enumerate() {
                if new & (1 << bit) != 0 {
                    if let Some(inner) = accs[c].distinct_inner() {
                        inner.accept(calls[c].kind, v, &row.heap, false, scratch)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Running aggregation per key with changelog output `[keys..., aggregates...]`.
pub struct GroupAggregate {
    keys: Vec<usize>,
    calls: Vec<AggCall>,
    state: KeyedState<GroupState>,
    distinct: Option<Distincts>,
    ttl: Option<StateTtl>,
    key: Vec<u8>,
    scratch: Vec<u8>,
    before: Row,
    after: Row,
    metrics: OperatorMetrics,
    /// With Python aggregate calls: the bundle of rows waiting for them.
    py: Option<PyBundle>,
}

/// A group aggregate with Python aggregate calls (Flink's `PythonGroupAggregate`) gathers
/// rows into bundles, as the Python operators do ([`crate::ops::python`]): a bundle is
/// processed when it holds `python.fn-execution.bundle.size` rows, when its first row has
/// waited `python.fn-execution.bundle.time`, before every checkpoint and at the end. Its rows
/// update the groups in order (a Python accumulator keeps them), then every group it touched
/// goes to Python in one request, then each group's change over the bundle is emitted once: as
/// Flink's mini-batch aggregation emits, the same final results as one change per row. A
/// watermark that arrives while a bundle is open waits for it.
struct PyBundle {
    aggs: PyAggs,
    rows: Vec<Row>,
    n: usize,
    first_at: Option<Instant>,
    held: Option<i64>,
    /// The groups the bundle touched, in order, with the row last emitted for each (None: it
    /// had none).
    touched: Vec<(Box<[u8]>, Option<Row>)>,
    seen: HashSet<Box<[u8]>>,
}

impl GroupAccs for KeyedState<GroupState> {
    fn accs_mut(&mut self, key: &[u8]) -> Option<&mut [Acc]> {
        self.get_mut(key).map(|g| g.accs.as_mut_slice())
    }
    fn keys_where(&self, want: &dyn Fn(&[Acc]) -> bool) -> Vec<Box<[u8]>> {
        self.iter()
            .filter(|(_, g)| want(&g.accs))
            .map(|(k, _)| Box::from(&*k))
            .collect()
    }
}

/// Adds `row` to (or with `retract`, takes it from) the group `g` keyed `key`.
fn update_group(
    g: &mut GroupState,
    distinct: Option<&mut Distincts>,
    key: &[u8],
    calls: &[AggCall],
    row: &Row,
    retract: bool,
    scratch: &mut Vec<u8>,
) -> Result<()> {
    match distinct {
        None => update_all(&mut g.accs, calls, row, retract, scratch)?,
        Some(d) => {
            for (acc, call) in g.accs.iter_mut().zip(calls) {
                if !acc.is_distinct() {
                    acc.update(call, row, retract, scratch)?;
                }
            }
            d.update(key, &mut g.accs, calls, row, retract, scratch)?;
        }
    }
    g.rows += if retract { -1 } else { 1 };
    Ok(())
}

impl GroupAggregate {
    /// Groups by `keys` and computes `calls`.
    pub fn new(keys: Vec<usize>, calls: Vec<AggCall>) -> Self {
        GroupAggregate {
            distinct: Distincts::of(&calls, None),
            keys,
            calls,
            state: KeyedState::default(),
            ttl: None,
            key: Vec::with_capacity(32),
            scratch: Vec::new(),
            before: Row::with_capacity(8),
            after: Row::with_capacity(8),
            metrics: OperatorMetrics::default(),
            py: None,
        }
        .with_python()
    }

    fn with_python(mut self) -> Self {
        self.py = PyAggs::of(&self.calls, Vec::new()).map(|aggs| PyBundle {
            aggs,
            rows: Vec::new(),
            n: 0,
            first_at: None,
            held: None,
            touched: Vec::new(),
            seen: HashSet::new(),
        });
        self
    }

    /// The types of the group keys, to name a group in a Python function's error.
    pub fn with_key_types(mut self, types: Vec<tillflow_types::DataType>) -> Self {
        if let Some(b) = self.py.as_mut() {
            b.aggs.set_key_types(types);
        }
        self
    }

    /// Moves the TTL clock of the state to the watermark `wm` (with a watermark clock).
    fn advance_ttl(&mut self, wm: i64) {
        self.state.on_watermark(wm);
        if let Some(d) = self.distinct.as_mut() {
            d.state.on_watermark(wm);
        }
    }

    /// Processes the bundle of rows waiting for the Python calls (see [`PyBundle`]).
    fn run_bundle(&mut self, out: &mut dyn Emit) -> Result<()> {
        let Some(mut b) = self.py.take() else {
            return Ok(());
        };
        let result = self.bundle(&mut b, out);
        b.n = 0;
        b.first_at = None;
        b.touched.clear();
        b.seen.clear();
        let held = b.held.take();
        self.py = Some(b);
        result?;
        match held {
            Some(wm) => {
                // the TTL clock moves with the watermark only once the bundle's rows are in
                self.advance_ttl(wm);
                out.watermark(wm)
            }
            None => Ok(()),
        }
    }

    fn bundle(&mut self, b: &mut PyBundle, out: &mut dyn Emit) -> Result<()> {
        let calls = &self.calls;
        for row in &b.rows[..b.n] {
            encode_key(&mut self.key, row, &self.keys);
            let retract = !row.kind.is_addition();
            if !b.seen.contains(self.key.as_slice()) {
                let before = match self.state.get_mut(&self.key) {
                    Some(g) if g.rows > 0 => {
                        let mut r = Row::with_capacity(8);
                        Self::render(&mut r, &self.key, g, calls, RowKind::UpdateBefore)?;
                        Some(r)
                    }
                    _ => None,
                };
                b.seen.insert(self.key.as_slice().into());
                b.touched.push((self.key.as_slice().into(), before));
            }
            let g = self.state.get_or_insert_with(&self.key, || GroupState {
                rows: 0,
                accs: new_accs(calls),
            });
            if g.rows <= 0 && retract {
                // retraction of a row never seen: nothing to undo
                self.state.remove(&self.key);
                continue;
            }
            update_group(
                g,
                self.distinct.as_mut(),
                &self.key,
                calls,
                row,
                retract,
                &mut self.scratch,
            )?;
            if g.rows <= 0 {
                self.state.remove(&self.key);
            }
        }
        let keys: Vec<Box<[u8]>> = b.touched.iter().map(|(k, _)| k.clone()).collect();
        b.aggs.settle_state(&mut self.state, Some(&keys))?;
        for (key, before) in &mut b.touched {
            let now = self.state.get_mut(key);
            match (before, now) {
                (Some(before), None) => {
                    before.kind = RowKind::Delete;
                    self.metrics.records_out += 1;
                    out.emit(before)?;
                }
                (None, Some(g)) => {
                    Self::render(&mut self.after, key, g, calls, RowKind::Insert)?;
                    self.metrics.records_out += 1;
                    out.emit(&self.after)?;
                }
                (Some(before), Some(g)) => {
                    Self::render(&mut self.after, key, g, calls, RowKind::UpdateAfter)?;
                    if before.values == self.after.values && before.heap == self.after.heap {
                        continue; // unchanged result: Flink emits nothing
                    }
                    self.metrics.records_out += 2;
                    out.emit(before)?;
                    out.emit(&self.after)?;
                }
                (None, None) => {}
            }
        }
        Ok(())
    }

    /// Forgets a group `ttl` after its last row (see [`crate::ttl`]).
    pub fn with_state_ttl(mut self, ttl: Option<StateTtl>) -> Self {
        self.ttl = ttl;
        self.state = KeyedState::with_ttl(ttl);
        self.distinct = Distincts::of(&self.calls, ttl);
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
            "{}GroupAggregate(keys={:?}, aggs={:?}{})",
            if self.py.is_some() { "Python" } else { "" },
            self.keys,
            self.calls.iter().map(|c| c.kind).collect::<Vec<_>>(),
            self.py
                .as_ref()
                .map(|b| format!(", python={:?}", b.aggs.names()))
                .unwrap_or_default()
        )
    }

    fn process(&mut self, row: &Row, out: &mut dyn Emit) -> Result<()> {
        self.metrics.records_in += 1;
        if let Some(b) = self.py.as_mut() {
            if b.n == b.rows.len() {
                b.rows.push(row.clone());
            } else {
                b.rows[b.n].clone_from(row);
            }
            if b.n == 0 {
                b.first_at = Some(Instant::now());
            }
            b.n += 1;
            if b.n >= b.aggs.limits().size {
                self.run_bundle(out)?;
            }
            return Ok(());
        }
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
        update_group(
            g,
            self.distinct.as_mut(),
            &self.key,
            calls,
            row,
            retract,
            &mut self.scratch,
        )?;
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
        if let Some(d) = &self.distinct {
            m.state_entries += d.state.len() as u64;
            m.state_bytes += d.state.bytes_estimate();
            m.state_expired += d.state.expired();
        }
        m
    }

    fn on_watermark(&mut self, wm: i64, out: &mut dyn Emit) -> Result<()> {
        if let Some(b) = self.py.as_mut() {
            if b.n > 0 {
                // held until the bundle's changes have gone out, and so is the TTL clock's
                // move: the bundle's rows came before it, and must find their groups alive
                b.held = Some(b.held.map_or(wm, |h| h.max(wm)));
                return Ok(());
            }
        }
        self.advance_ttl(wm);
        out.watermark(wm)
    }

    fn on_processing_time(&mut self, now: i64, out: &mut dyn Emit) -> Result<()> {
        self.state.on_processing_time(now);
        if let Some(d) = self.distinct.as_mut() {
            d.state.on_processing_time(now);
        }
        let due = self.py.as_ref().is_some_and(|b| {
            b.first_at
                .is_some_and(|t| t.elapsed().as_micros() as i64 >= b.aggs.limits().time_us)
        });
        if due {
            self.run_bundle(out)?;
        }
        Ok(())
    }

    fn on_end(&mut self, out: &mut dyn Emit) -> Result<()> {
        self.run_bundle(out)
    }

    fn flush(&mut self, out: &mut dyn Emit) -> Result<()> {
        self.run_bundle(out)
    }

    /// 2 when a MIN/MAX consumes an updating input (it keeps value counts since then, where it
    /// kept one value before); 1 otherwise, so other aggregates' checkpoints still restore.
    /// 2 more with DISTINCT calls, whose values are kept as entries of their own since (a
    /// checkpoint from before, with the values in each group's value, is refused by name).
    fn state_version(&self) -> u32 {
        let counted = self.calls.iter().any(|c| {
            c.retracts && matches!(c.kind, crate::agg::AggKind::Min | crate::agg::AggKind::Max)
        });
        u32::from(counted) + 1 + if self.distinct.is_some() { 2 } else { 0 }
    }

    fn snapshot_state(&self, out: &mut Vec<u8>) {
        self.state.snapshot(0..crate::keys::MAX_KEY_GROUPS, out);
        if let Some(d) = &self.distinct {
            d.state.snapshot(0..crate::keys::MAX_KEY_GROUPS, out);
        }
    }

    fn restore_state(&mut self, input: &[u8]) -> Result<()> {
        self.restore_parts(&[input], &crate::state::Rescale::NONE)
    }

    fn restore_parts(&mut self, parts: &[&[u8]], rescale: &crate::state::Rescale) -> Result<()> {
        self.state = KeyedState::with_ttl(self.ttl);
        self.distinct = Distincts::of(&self.calls, self.ttl);
        for (j, p) in parts.iter().enumerate() {
            let mut at = 0;
            self.state.restore_part(p, &mut at, rescale, j)?;
            if let Some(d) = self.distinct.as_mut() {
                d.state.restore_part(p, &mut at, rescale, j)?;
            }
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

    fn agg(kind: AggKind, arg: Option<usize>, distinct: bool, filter: Option<usize>) -> AggCall {
        AggCall {
            kind,
            arg,
            distinct,
            arg_type: DataType::BigInt,
            result_type: DataType::BigInt,
            filter,
            model: None,
            separator: None,
            retracts: true,
            lag: None,
            python: None,
        }
    }

    /// The last row emitted per group: `group -> [results]`, a deleted group gone.
    #[derive(Default)]
    struct Latest(std::collections::BTreeMap<i64, Vec<Value>>);
    impl Emit for Latest {
        fn emit(&mut self, row: &Row) -> Result<()> {
            let Value::Int(g) = row.values[0] else {
                panic!("group key {:?}", row.values[0]);
            };
            match row.kind {
                RowKind::Insert | RowKind::UpdateAfter => {
                    self.0.insert(g, row.values[1..].to_vec());
                }
                RowKind::Delete => {
                    self.0.remove(&g);
                }
                RowKind::UpdateBefore => {}
            }
            Ok(())
        }
        fn watermark(&mut self, _wm: i64) -> Result<()> {
            Ok(())
        }
    }

    /// DISTINCT aggregates kept as entries of their own give, after every change, what the live
    /// rows give computed directly — COUNT and SUM of the distinct values, each under its
    /// FILTER, beside a plain COUNT — over an append-only input (bits per value) and through
    /// inserts and retractions (counts per value), on the heap and with nearly every entry on
    /// disk, and across a snapshot taken and restored halfway.
    #[test]
    fn distinct_values_as_entries_match_the_live_rows() {
        use crate::state::testing::{tiny_store, Lcg};
        use std::collections::BTreeMap;
        // rows [group, value, small]: small = value < 20
        let calls = [
            agg(AggKind::CountStar, None, false, None),
            agg(AggKind::Count, Some(1), true, None),
            agg(AggKind::Count, Some(1), true, Some(2)),
            agg(AggKind::Sum, Some(1), true, Some(2)),
            agg(AggKind::Sum, Some(0), true, None),
        ];
        let store = tiny_store();
        for (on_disk, updating) in [(false, true), (true, true), (false, false), (true, false)] {
            let calls: Vec<AggCall> = calls
                .iter()
                .map(|c| AggCall {
                    retracts: updating,
                    ..c.clone()
                })
                .collect();
            let make = || {
                crate::state::disk::scoped(on_disk.then_some(&store), || {
                    GroupAggregate::new(vec![0], calls.clone())
                })
            };
            let mut op = make();
            assert_eq!(op.state_version(), 3);
            let mut rng = Lcg(11);
            let mut live: Vec<(i64, i64)> = Vec::new();
            let mut out = Latest::default();
            let mut row = Row::with_capacity(3);
            for step in 0..6000 {
                let (kind, (g, v)) = if updating && !live.is_empty() && rng.next(3) == 0 {
                    let at = rng.next(live.len() as u64) as usize;
                    (RowKind::Delete, live.swap_remove(at))
                } else {
                    let g = rng.next(5) as i64;
                    let v = rng.next(60) as i64;
                    live.push((g, v));
                    (RowKind::Insert, (g, v))
                };
                row.clear();
                row.kind = kind;
                row.values
                    .extend([Value::Int(g), Value::Int(v), Value::Bool(v < 20)]);
                op.process(&row, &mut out).unwrap();
                if step == 3000 {
                    let mut bytes = Vec::new();
                    op.snapshot_state(&mut bytes);
                    op = make();
                    crate::state::disk::scoped(on_disk.then_some(&store), || {
                        op.restore_state(&bytes)
                    })
                    .unwrap();
                }
                let mut expected: BTreeMap<i64, Vec<Value>> = BTreeMap::new();
                for g in 0..5 {
                    let rows: Vec<i64> = live
                        .iter()
                        .filter(|(k, _)| *k == g)
                        .map(|(_, v)| *v)
                        .collect();
                    if rows.is_empty() {
                        continue;
                    }
                    let all: std::collections::BTreeSet<i64> = rows.iter().copied().collect();
                    let small: Vec<i64> = all.iter().copied().filter(|v| *v < 20).collect();
                    expected.insert(
                        g,
                        vec![
                            Value::Int(rows.len() as i64),
                            Value::Int(all.len() as i64),
                            Value::Int(small.len() as i64),
                            if small.is_empty() {
                                Value::Null
                            } else {
                                Value::Int(small.iter().sum())
                            },
                            Value::Int(g),
                        ],
                    );
                }
                assert_eq!(
                    out.0, expected,
                    "step {step}, on disk {on_disk}, updating {updating}"
                );
            }
            let m = op.metrics();
            assert!(m.state_entries > 5, "the distinct values are entries");
            if on_disk {
                assert!(op.distinct.as_ref().unwrap().state.on_disk() > 0);
            }
        }
    }

    /// With a Python SUM beside the built-in SUM, through inserts and retractions (groups that
    /// empty and start again inside a bundle, retractions of rows never seen), bundles of 16
    /// rows and flushes at random, and a snapshot restored halfway: after every bundle, each
    /// group's Python SUM is its SUM, and every group's latest row is what its live rows give.
    #[test]
    fn python_sums_in_bundles_equal_the_builtin_through_retractions() {
        use crate::state::testing::Lcg;
        use std::collections::BTreeMap;
        let dir = tempfile::tempdir().expect("tempdir");
        let calls = vec![
            agg(AggKind::Sum, Some(1), false, None),
            AggCall {
                retracts: true,
                ..crate::python::agg::testing::py_sum(dir.path(), 1, false, 16)
            },
        ];
        let make = || GroupAggregate::new(vec![0], calls.clone());
        let mut op = make();
        let mut rng = Lcg(3);
        let mut live: Vec<(i64, i64)> = Vec::new();
        let mut out = Latest::default();
        let mut row = Row::with_capacity(2);
        for step in 0..3000 {
            let (kind, (g, v)) = match rng.next(4) {
                0 if !live.is_empty() => {
                    let at = rng.next(live.len() as u64) as usize;
                    (RowKind::Delete, live.swap_remove(at))
                }
                // a retraction of a row that was never there: ignored
                1 if rng.next(10) == 0 => (RowKind::Delete, (rng.next(4) as i64, 1000)),
                _ => {
                    let r = (rng.next(4) as i64, rng.next(100) as i64);
                    live.push(r);
                    (RowKind::Insert, r)
                }
            };
            if kind == RowKind::Delete && v == 1000 && live.iter().any(|&(lg, _)| lg == g) {
                continue; // only for groups without rows, where it is surely never seen
            }
            row.clear();
            row.kind = kind;
            row.values.extend([Value::Int(g), Value::Int(v)]);
            op.process(&row, &mut out).unwrap();
            if rng.next(50) == 0 {
                op.flush(&mut out).unwrap();
            }
            if step == 1500 {
                op.flush(&mut out).unwrap();
                let mut bytes = Vec::new();
                op.snapshot_state(&mut bytes);
                op = make();
                op.restore_state(&bytes).unwrap();
            }
            if op.py.as_ref().is_some_and(|b| b.n == 0) {
                let mut expected: BTreeMap<i64, Vec<Value>> = BTreeMap::new();
                for &(lg, lv) in &live {
                    let e = expected
                        .entry(lg)
                        .or_insert_with(|| vec![Value::Int(0), Value::Int(0)]);
                    for x in e.iter_mut() {
                        if let Value::Int(s) = x {
                            *s += lv;
                        }
                    }
                }
                assert_eq!(out.0, expected, "step {step}");
            }
        }
        assert!(op.metrics().records_out > 100);
    }

    /// With a watermark-clock TTL, a row waiting in a Python bundle when a watermark past its
    /// group's expiry arrives is applied before the clock moves (as it would be without the
    /// bundle: the row came first): the group carries on (-U/+U), it does not expire and start
    /// over (+I) depending on when the bundle happens to run.
    #[test]
    fn a_held_watermark_moves_the_ttl_clock_only_after_the_bundle() {
        #[derive(Default)]
        struct Kinds(Vec<(RowKind, Vec<Value>)>);
        impl Emit for Kinds {
            fn emit(&mut self, row: &Row) -> Result<()> {
                self.0.push((row.kind, row.values.clone()));
                Ok(())
            }
            fn watermark(&mut self, _wm: i64) -> Result<()> {
                Ok(())
            }
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let calls = vec![crate::python::agg::testing::py_sum(
            dir.path(),
            1,
            false,
            1000,
        )];
        let ttl = StateTtl {
            micros: 1_000_000,
            clock: TtlClock::Watermark,
        };
        let mut op = GroupAggregate::new(vec![0], calls).with_state_ttl(Some(ttl));
        let mut out = Kinds::default();
        let mut row = Row::with_capacity(2);
        op.on_watermark(0, &mut out).unwrap();
        row.values.extend([Value::Int(7), Value::Int(1)]);
        op.process(&row, &mut out).unwrap();
        op.flush(&mut out).unwrap();
        // the group's second row waits in the bundle; then a watermark 5 s later
        row.clear();
        row.values.extend([Value::Int(7), Value::Int(2)]);
        op.process(&row, &mut out).unwrap();
        op.on_watermark(5_000_000, &mut out).unwrap();
        op.flush(&mut out).unwrap();
        let v = |n: i64| vec![Value::Int(7), Value::Int(n)];
        assert_eq!(
            out.0,
            vec![
                (RowKind::Insert, v(1)),
                (RowKind::UpdateBefore, v(1)),
                (RowKind::UpdateAfter, v(3)),
            ]
        );
        // and the clock did move: the group expires now
        row.clear();
        row.values.extend([Value::Int(7), Value::Int(4)]);
        op.process(&row, &mut out).unwrap();
        op.flush(&mut out).unwrap();
        assert_eq!(out.0.last(), Some(&(RowKind::Insert, v(4))));
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
            python: None,
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
