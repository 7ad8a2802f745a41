//! COUNT windows: every `size` rows of a key, in arrival order, form one window.
//!
//! Flink SQL has no count windows (its DataStream API does); tillflow offers them as a window
//! table function, `TABLE(COUNT_WINDOW(TABLE t PARTITION BY k, DESCRIPTOR(ts), 100))`, aggregated
//! with `GROUP BY window_start, window_end, k`. `window_start` / `window_end` are the earliest and
//! latest timestamp among the window's rows and `window_time` equals `window_end`. As with
//! Flink's `countWindow`, a window fires when its N-th row arrives, and an incomplete window at the
//! end of a bounded input is not emitted. Count windows know no lateness.

use crate::agg::{new_accs, update_all, Acc, AggCall};
use crate::error::{Result, RuntimeError};
use crate::keys::{decode_key_into, encode_key};
use crate::operator::{Emit, Operator, OperatorMetrics};
use crate::state::{read_u64, KeyedState, StateValue};
use tillflow_types::{Row, Value};

/// The open window of one key.
pub struct CountState {
    rows: u64,
    first: i64,
    last: i64,
    accs: Vec<Acc>,
}

impl StateValue for CountState {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.rows.to_le_bytes());
        out.extend_from_slice(&self.first.to_le_bytes());
        out.extend_from_slice(&self.last.to_le_bytes());
        self.accs.write(out);
    }
    fn read(input: &[u8], at: &mut usize) -> Result<Self> {
        Ok(CountState {
            rows: read_u64(input, at)?,
            first: read_u64(input, at)? as i64,
            last: read_u64(input, at)? as i64,
            accs: Vec::<Acc>::read(input, at)?,
        })
    }
}

/// Aggregates every `size` rows per key.
pub struct CountWindowAggregate {
    size: u64,
    time_col: usize,
    keys: Vec<usize>,
    calls: Vec<AggCall>,
    state: KeyedState<CountState>,
    key: Vec<u8>,
    scratch: Vec<u8>,
    out: Row,
    metrics: OperatorMetrics,
}

impl CountWindowAggregate {
    /// Windows of `size` rows per `keys`, bounded by the timestamps in `time_col`.
    pub fn new(size: u64, time_col: usize, keys: Vec<usize>, calls: Vec<AggCall>) -> Self {
        CountWindowAggregate {
            size: size.max(1),
            time_col,
            keys,
            calls,
            state: KeyedState::default(),
            key: Vec::with_capacity(32),
            scratch: Vec::new(),
            out: Row::with_capacity(8),
            metrics: OperatorMetrics::default(),
        }
    }
}

impl Operator for CountWindowAggregate {
    fn describe(&self) -> String {
        format!(
            "CountWindowAggregate(size={}, keys={:?}, aggs={:?})",
            self.size,
            self.keys,
            self.calls.iter().map(|c| c.kind).collect::<Vec<_>>()
        )
    }

    fn process(&mut self, row: &Row, out: &mut dyn Emit) -> Result<()> {
        self.metrics.records_in += 1;
        let ts = match row.values.get(self.time_col) {
            Some(Value::Timestamp(t)) => Some(*t),
            _ => None,
        };
        encode_key(&mut self.key, row, &self.keys);
        let calls = &self.calls;
        let st = self.state.get_or_insert_with(&self.key, || CountState {
            rows: 0,
            first: i64::MAX,
            last: i64::MIN,
            accs: new_accs(calls),
        });
        update_all(
            &mut st.accs,
            calls,
            row,
            !row.kind.is_addition(),
            &mut self.scratch,
        )?;
        st.rows += 1;
        if let Some(t) = ts {
            st.first = st.first.min(t);
            st.last = st.last.max(t);
        }
        if st.rows < self.size {
            return Ok(());
        }
        let Some(st) = self.state.remove(&self.key) else {
            return Ok(());
        };
        self.out.clear();
        decode_key_into(&self.key, &mut self.out)
            .ok_or_else(|| RuntimeError::State("corrupt count-window key".into()))?;
        for (acc, call) in st.accs.iter().zip(&self.calls) {
            let v = acc.value(call, &mut self.out.heap);
            self.out.values.push(v);
        }
        let (first, last) = if st.first <= st.last {
            (Value::Timestamp(st.first), Value::Timestamp(st.last))
        } else {
            (Value::Null, Value::Null)
        };
        self.out.values.extend([first, last, last]);
        self.metrics.records_out += 1;
        out.emit(&self.out)
    }

    fn metrics(&self) -> OperatorMetrics {
        let mut m = self.metrics.clone();
        m.state_entries = self.state.len() as u64;
        m.state_bytes = self.state.bytes_estimate();
        m
    }

    fn snapshot_state(&self, out: &mut Vec<u8>) {
        self.state.snapshot(0..crate::keys::MAX_KEY_GROUPS, out);
    }

    fn restore_state(&mut self, input: &[u8]) -> Result<()> {
        self.restore_parts(&[input], &crate::state::Rescale::NONE)
    }

    fn restore_parts(&mut self, parts: &[&[u8]], rescale: &crate::state::Rescale) -> Result<()> {
        self.state = KeyedState::default();
        for (j, p) in parts.iter().enumerate() {
            self.state.restore_part(p, &mut 0, rescale, j)?;
        }
        Ok(())
    }
}
