//! `ML_PREDICT` with a model that learns on the stream (`'provider' = 'online'`): each row is
//! predicted by its key's model as it is, then the model learns from the row's label
//! (prequential, "test then train"), so a prediction never saw its own label. One learner per
//! `PARTITION BY` key (one for the whole stream without it) is kept in keyed state, so
//! checkpoints, savepoints, restores at another parallelism and the on-disk backend carry what
//! it learned. A row whose label is NULL (or NaN, or infinite) is predicted and not learned from
//! (a label that comes later); a NaN or infinite feature counts as missing. The row goes out with the model's OUTPUT columns appended: the prediction, and for
//! a classifier P(true) when OUTPUT has a second column. The learners and their update rules
//! are `tillflow_ml::online`'s (river's).

use crate::error::{Result, RuntimeError};
use crate::keys::encode_key;
use crate::operator::{Emit, Operator, OperatorMetrics};
use crate::state::{read_u32, KeyedState, StateValue};
use tillflow_ml::features::Features;
use tillflow_ml::online::Learner;
use tillflow_ml::OnlineSpec;
use tillflow_types::{Row, Value};

/// How a feature column becomes a learner's input.
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureKind {
    /// A number (a DECIMAL's scale given), into the next numeric slot.
    Number {
        /// A DECIMAL's scale (0 for other types).
        scale: u8,
    },
    /// BOOLEAN, as 0 or 1, into the next numeric slot.
    Bool,
    /// STRING: the token `name=value`, hashed.
    Hashed {
        /// The model INPUT column's name.
        name: String,
    },
}

/// A feature: the input column and how it is read.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    /// The input column.
    pub col: usize,
    /// How it is read.
    pub kind: FeatureKind,
}

/// A learner as keyed state holds it.
struct Held(Learner);

impl StateValue for Held {
    fn write(&self, out: &mut Vec<u8>) {
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        self.0.encode(out);
        let len = (out.len() - at - 4) as u32;
        out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }

    fn read(input: &[u8], at: &mut usize) -> Result<Self> {
        let n = read_u32(input, at)? as usize;
        let bytes = input
            .get(*at..*at + n)
            .ok_or_else(|| RuntimeError::State("truncated model state".into()))?;
        *at += n;
        Learner::decode(bytes)
            .map(Held)
            .map_err(|e| RuntimeError::State(e.to_string()))
    }
}

/// A number of `v` (a DECIMAL with `scale`); None for NULL.
fn number(v: Value, scale: u8) -> Option<f64> {
    match v {
        Value::Int(i) => Some(i as f64),
        Value::Float(f) => Some(f),
        Value::Decimal(d) => Some(d as f64 / 10f64.powi(i32::from(scale))),
        Value::Bool(b) => Some(if b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

/// Predict-then-learn with an online model; see the module comment.
pub struct OnlinePredict {
    model: String,
    spec: OnlineSpec,
    partition: Vec<usize>,
    features: Vec<Feature>,
    slots: usize,
    label: Option<(usize, u8)>,
    probability: bool,
    state: KeyedState<Held>,
    key: Vec<u8>,
    x: Features,
    out: Row,
    metrics: OperatorMetrics,
    /// Prequential errors (this run's rows).
    errors: crate::operator::ModelMetrics,
    ttl: Option<crate::ttl::StateTtl>,
}

impl OnlinePredict {
    /// Model `model` (its name, for errors) with `spec`, one learner per `partition` key,
    /// reading `features` and learning from input column `label` (a DECIMAL's scale given);
    /// `probability`: a classifier also emits P(true).
    pub fn new(
        model: String,
        spec: OnlineSpec,
        partition: Vec<usize>,
        features: Vec<Feature>,
        label: Option<(usize, u8)>,
        probability: bool,
    ) -> Self {
        let slots = features
            .iter()
            .filter(|f| !matches!(f.kind, FeatureKind::Hashed { .. }))
            .count();
        let classifier = spec.algorithm.classifies();
        OnlinePredict {
            model,
            spec,
            partition,
            features,
            slots,
            label,
            probability,
            state: KeyedState::default(),
            key: Vec::new(),
            errors: crate::operator::ModelMetrics {
                classifier,
                ..Default::default()
            },
            ttl: None,
            x: Features::with_slots(slots),
            out: Row::with_capacity(16),
            metrics: OperatorMetrics::default(),
        }
    }

    /// Forgets a key's learner `ttl` after its last row (`table.exec.state.ttl`): a store or
    /// SKU that stops selling stops holding memory, and learns afresh if it comes back.
    pub fn with_state_ttl(mut self, ttl: Option<crate::ttl::StateTtl>) -> Self {
        self.ttl = ttl;
        self.state = KeyedState::with_ttl(ttl);
        self
    }

    fn read_features(&mut self, row: &Row) {
        self.x.clear();
        let mut slot = 0;
        for f in &self.features {
            let v = row.values.get(f.col).copied().unwrap_or(Value::Null);
            match &f.kind {
                FeatureKind::Number { scale } => {
                    // NaN and ±inf are missing: one would poison every weight it touches
                    self.x
                        .set(slot, number(v, *scale).filter(|x| x.is_finite()));
                    slot += 1;
                }
                FeatureKind::Bool => {
                    self.x.set(slot, number(v, 0));
                    slot += 1;
                }
                FeatureKind::Hashed { name } => {
                    if let Value::Str(s) = v {
                        self.x.add_hashed(
                            name,
                            row.str(s),
                            self.spec.hash_buckets,
                            self.spec.hash_seed,
                        );
                    }
                }
            }
        }
    }
}

impl Operator for OnlinePredict {
    fn describe(&self) -> String {
        format!(
            "MLPredictTableFunction(model={}, algorithm={}, partition={:?})",
            self.model,
            self.spec.algorithm.name(),
            self.partition
        )
    }

    fn process(&mut self, row: &Row, out: &mut dyn Emit) -> Result<()> {
        self.metrics.records_in += 1;
        if row.kind != tillflow_types::RowKind::Insert {
            return Err(RuntimeError::Eval(format!(
                "ML_PREDICT with model {}: only inserts are predicted, got a {:?} row",
                self.model, row.kind
            )));
        }
        self.read_features(row);
        encode_key(&mut self.key, row, &self.partition);
        let (spec, slots) = (&self.spec, self.slots);
        let learner = &mut self
            .state
            .get_or_insert_with(&self.key, || Held(Learner::new(spec, slots)))
            .0;
        if learner.slots() != slots {
            return Err(RuntimeError::State(format!(
                "ML_PREDICT with model {}: its restored state reads {} numeric features, its INPUT has {slots}",
                self.model,
                learner.slots()
            )));
        }
        let p = learner.predict(spec, &self.x);
        if let Some((col, scale)) = self.label {
            // a NaN or infinite label is not learned from (as a NULL one)
            if let Some(y) = row
                .values
                .get(col)
                .and_then(|v| number(*v, scale))
                .filter(|y| y.is_finite())
            {
                learner.learn(spec, &self.x, y);
                self.errors.record(y, p.value);
            }
        }
        self.out.clear();
        self.out.kind = row.kind;
        for v in &row.values {
            self.out.push_from(*v, &row.heap);
        }
        if spec.algorithm.classifies() {
            self.out.values.push(Value::Bool(p.value > 0.5));
            if self.probability {
                self.out.values.push(Value::Float(p.value));
            }
        } else {
            self.out.values.push(Value::Float(p.value));
        }
        self.metrics.records_out += 1;
        out.emit(&self.out)
    }

    fn metrics(&self) -> OperatorMetrics {
        let mut m = self.metrics.clone();
        m.state_entries = self.state.len() as u64;
        m.state_bytes = self.state.bytes_estimate();
        m.state_expired = self.state.expired();
        m.model = Some(self.errors.clone());
        m
    }

    fn snapshot_state(&self, out: &mut Vec<u8>) {
        self.state.snapshot(0..crate::keys::MAX_KEY_GROUPS, out);
    }

    fn restore_state(&mut self, input: &[u8]) -> Result<()> {
        self.restore_parts(&[input], &crate::state::Rescale::NONE)
    }

    fn on_watermark(&mut self, wm: i64, out: &mut dyn Emit) -> Result<()> {
        self.state.on_watermark(wm);
        out.watermark(wm)
    }

    fn on_processing_time(&mut self, now: i64, _out: &mut dyn Emit) -> Result<()> {
        self.state.on_processing_time(now);
        Ok(())
    }

    fn restore_parts(&mut self, parts: &[&[u8]], rescale: &crate::state::Rescale) -> Result<()> {
        self.state = KeyedState::with_ttl(self.ttl);
        for (j, p) in parts.iter().enumerate() {
            self.state.restore_part(p, &mut 0, rescale, j)?;
        }
        Ok(())
    }
}

/// Rows an ONNX model is run on at once (fewer at a watermark, a checkpoint or the end).
pub const ONNX_BATCH: usize = 512;

/// `ML_PREDICT` with an ONNX model file (`'provider' = 'onnx'`): rows are held until a batch
/// is full, or a watermark, a processing-time tick, a checkpoint barrier or the end comes, then
/// run through the model at once and emitted in their order with the OUTPUT columns appended
/// (a NaN output, which a NULL feature gives, as NULL). The operator keeps no state across a
/// checkpoint: it emits what it holds before the barrier. A row with a NULL feature is passed
/// as NaN to a model that decides what a missing value means (a tree ensemble); for any other
/// model its OUTPUT columns are NULL.
pub struct OnnxPredict {
    model_name: String,
    model: std::sync::Arc<tillflow_ml::onnx::OnnxModel>,
    features: Vec<Feature>,
    /// OUTPUT column types: BOOLEAN, an integer, or else a number (DOUBLE/FLOAT).
    outputs: Vec<OutputKind>,
    held: Vec<Row>,
    /// Per held row: a feature was NULL.
    missing: Vec<bool>,
    count: usize,
    x: Vec<f64>,
    y: Vec<f64>,
    out: Row,
    metrics: OperatorMetrics,
}

/// How an ONNX output value becomes a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// DOUBLE or FLOAT.
    Number,
    /// An integer type.
    Integer,
    /// BOOLEAN (non-zero is true).
    Bool,
}

impl OnnxPredict {
    /// Model `model_name` loaded as `model`, reading `features` (numbers and booleans),
    /// writing `outputs`.
    pub fn new(
        model_name: String,
        model: std::sync::Arc<tillflow_ml::onnx::OnnxModel>,
        features: Vec<Feature>,
        outputs: Vec<OutputKind>,
    ) -> Self {
        OnnxPredict {
            model_name,
            model,
            features,
            outputs,
            held: Vec::new(),
            missing: Vec::new(),
            count: 0,
            x: Vec::new(),
            y: Vec::new(),
            out: Row::with_capacity(16),
            metrics: OperatorMetrics::default(),
        }
    }

    fn run_batch(&mut self, out: &mut dyn Emit) -> Result<()> {
        if self.count == 0 {
            return Ok(());
        }
        let rows = self.count;
        self.model.run(&self.x, rows, &mut self.y).map_err(|e| {
            RuntimeError::Eval(format!(
                "ML_PREDICT with model {}: the model failed on a batch of {rows} rows: {e:#}",
                self.model_name
            ))
        })?;
        let width = self.outputs.len();
        let decides = self.model.handles_missing();
        for r in 0..rows {
            let held = &self.held[r];
            let none = self.missing[r] && !decides;
            self.out.clear();
            self.out.kind = held.kind;
            for v in &held.values {
                self.out.push_from(*v, &held.heap);
            }
            for (c, kind) in self.outputs.iter().enumerate() {
                let v = self.y.get(r * width + c).copied().unwrap_or(f64::NAN);
                self.out.values.push(if v.is_nan() || none {
                    Value::Null
                } else {
                    match kind {
                        OutputKind::Number => Value::Float(v),
                        OutputKind::Integer => Value::Int(v as i64),
                        OutputKind::Bool => Value::Bool(v != 0.0),
                    }
                });
            }
            self.metrics.records_out += 1;
            out.emit(&self.out)?;
        }
        self.count = 0;
        self.x.clear();
        self.missing.clear();
        Ok(())
    }
}

impl Operator for OnnxPredict {
    fn describe(&self) -> String {
        format!("MLPredictTableFunction(model={}, onnx)", self.model_name)
    }

    fn process(&mut self, row: &Row, out: &mut dyn Emit) -> Result<()> {
        self.metrics.records_in += 1;
        if row.kind != tillflow_types::RowKind::Insert {
            return Err(RuntimeError::Eval(format!(
                "ML_PREDICT with model {}: only inserts are predicted, got a {:?} row",
                self.model_name, row.kind
            )));
        }
        let mut missing = false;
        for f in &self.features {
            let v = row.values.get(f.col).copied().unwrap_or(Value::Null);
            let scale = match f.kind {
                FeatureKind::Number { scale } => scale,
                _ => 0,
            };
            let x = number(v, scale).unwrap_or(f64::NAN);
            missing |= x.is_nan();
            self.x.push(x);
        }
        self.missing.push(missing);
        if self.held.len() <= self.count {
            self.held.push(Row::with_capacity(row.values.len()));
        }
        let slot = &mut self.held[self.count];
        slot.clear();
        slot.kind = row.kind;
        for v in &row.values {
            slot.push_from(*v, &row.heap);
        }
        self.count += 1;
        if self.count >= ONNX_BATCH {
            self.run_batch(out)?;
        }
        Ok(())
    }

    fn on_watermark(&mut self, wm: i64, out: &mut dyn Emit) -> Result<()> {
        self.run_batch(out)?;
        out.watermark(wm)
    }

    fn on_processing_time(&mut self, _now: i64, out: &mut dyn Emit) -> Result<()> {
        self.run_batch(out)
    }

    fn on_end(&mut self, out: &mut dyn Emit) -> Result<()> {
        self.run_batch(out)
    }

    fn flush(&mut self, out: &mut dyn Emit) -> Result<()> {
        self.run_batch(out)
    }

    fn checkpointed(&self) -> bool {
        false
    }

    fn metrics(&self) -> OperatorMetrics {
        self.metrics.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ttl::{StateTtl, TtlClock};
    use std::collections::BTreeMap;

    /// Rows `[key, x, y]`; emitted rows keep their prediction (the last column).
    struct Out(Vec<f64>);

    impl Emit for Out {
        fn emit(&mut self, row: &Row) -> Result<()> {
            if let Some(Value::Float(p)) = row.values.last() {
                self.0.push(*p);
            }
            Ok(())
        }
        fn watermark(&mut self, _wm: i64) -> Result<()> {
            Ok(())
        }
    }

    fn row(key: &str, x: f64, y: f64) -> Row {
        let mut r = Row::with_capacity(3);
        let s = r.intern(key);
        r.values
            .extend([Value::Str(s), Value::Float(x), Value::Float(y)]);
        r
    }

    fn op(ttl: Option<StateTtl>) -> OnlinePredict {
        let options: BTreeMap<String, String> = [
            ("provider", "online"),
            ("algorithm", "linear_regression"),
            ("label", "y"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let tillflow_ml::Provider::Online(spec) = tillflow_ml::ModelSpec::from_options(&options)
            .expect("spec")
            .provider
        else {
            panic!("online")
        };
        OnlinePredict::new(
            "m".into(),
            spec,
            vec![0],
            vec![Feature {
                col: 1,
                kind: FeatureKind::Number { scale: 0 },
            }],
            Some((2, 0)),
            false,
        )
        .with_state_ttl(ttl)
    }

    /// Each key learns on its own; a checkpoint restores what it learned exactly; with a state
    /// TTL a key quiet for longer than it starts over, and its memory is reclaimed.
    #[test]
    fn learners_are_per_key_survive_a_restore_and_expire_with_a_ttl() {
        let mut a = op(None);
        let mut out = Out(Vec::new());
        for i in 0..200 {
            a.process(&row("s1", 1.0, 10.0), &mut out).expect("row");
            a.process(&row("s2", 1.0, -10.0 - f64::from(i % 2)), &mut out)
                .expect("row");
        }
        let (p1, p2) = (out.0[out.0.len() - 2], out.0[out.0.len() - 1]);
        assert!(p1 > 5.0 && p2 < -5.0, "{p1} {p2}");
        assert_eq!(a.metrics().model.map(|m| m.learned), Some(400));
        let mut bytes = Vec::new();
        a.snapshot_state(&mut bytes);
        let mut b = op(None);
        b.restore_state(&bytes).expect("restore");
        let (mut oa, mut ob) = (Out(Vec::new()), Out(Vec::new()));
        a.process(&row("s1", 2.0, 3.0), &mut oa).expect("row");
        b.process(&row("s1", 2.0, 3.0), &mut ob).expect("row");
        assert_eq!(
            oa.0[0].to_bits(),
            ob.0[0].to_bits(),
            "the same model, bit for bit"
        );
        // a TTL on the watermark: s1 quiet for an hour is forgotten
        let hour = 3_600_000_000;
        let mut c = op(Some(StateTtl {
            micros: hour,
            clock: TtlClock::Watermark,
        }));
        let mut out = Out(Vec::new());
        c.on_watermark(0, &mut out).expect("wm");
        for _ in 0..50 {
            c.process(&row("s1", 1.0, 10.0), &mut out).expect("row");
        }
        c.on_watermark(2 * hour, &mut out).expect("wm");
        c.process(&row("s2", 1.0, 1.0), &mut out).expect("row");
        c.process(&row("s1", 1.0, 10.0), &mut out).expect("row");
        assert_eq!(out.0.last().copied(), Some(0.0), "s1 starts over");
        assert!(c.metrics().state_expired >= 1, "{:?}", c.metrics());
    }
}
