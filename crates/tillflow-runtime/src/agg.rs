//! Aggregate functions (COUNT, SUM, AVG, MIN, MAX, each optionally DISTINCT, and the forecasting
//! and anomaly functions of [`crate::forecast`]) and their accumulators.
//!
//! Accumulators are plain enums kept inside keyed state, one per aggregate call of a group. They
//! accept retractions where Flink does (COUNT, SUM, AVG, MIN/MAX and DISTINCT through per-value counts) so a
//! group aggregate can consume an updating input, and they serialize through [`StateValue`].

use crate::error::{Result, RuntimeError};
use crate::expr::{compare, scale_of};
use crate::forecast::{Model, ModelSpec};
use crate::keys::encode_value;
use crate::python::agg::{PyAcc, PyAggSpec};
use crate::state::{read_u32, read_u64, StateValue};
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use tillflow_types::value::{heap_str, push_str};
use tillflow_types::{DataType, Row, Value};

/// Which aggregate function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggKind {
    /// `COUNT(*)`
    CountStar,
    /// `COUNT(x)`: non-null values.
    Count,
    /// `SUM(x)`
    Sum,
    /// `AVG(x)`
    Avg,
    /// `MIN(x)`
    Min,
    /// `MAX(x)`
    Max,
    /// `EWMA(x, alpha)`
    Ewma,
    /// `EWMVAR(x, alpha)`
    EwmVar,
    /// `HOLT_WINTERS(x, alpha, beta, gamma, season_length [, horizon])`, alias `HW_FORECAST`
    HoltWinters,
    /// `HW_LEVEL(x, alpha, beta, gamma, season_length)`
    HwLevel,
    /// `HW_TREND(x, alpha, beta, gamma, season_length)`
    HwTrend,
    /// `ANOMALY_SCORE(x [, alpha])`
    AnomalyScore,
    /// `IS_ANOMALY(x [, threshold [, alpha]])`
    IsAnomaly,
    /// `VAR_POP(x)`
    VarPop,
    /// `VAR_SAMP(x)`, alias `VARIANCE`
    VarSamp,
    /// `STDDEV_POP(x)`
    StddevPop,
    /// `STDDEV_SAMP(x)`, alias `STDDEV`
    StddevSamp,
    /// `FIRST_VALUE(x)`: the first non-NULL value
    FirstValue,
    /// `LAST_VALUE(x)`: the last non-NULL value
    LastValue,
    /// `LISTAGG(x [, separator])`: the non-NULL strings joined (`,` by default)
    ListAgg,
    /// `ARRAY_AGG(x)`: every value, NULLs included, as an ARRAY
    ArrayAgg,
    /// `LAG(x [, offset [, default]]) OVER (…)`: the value `offset` rows back (NULLs count)
    Lag,
    /// `COLLECT(x)`: the non-NULL values as a MULTISET (empty, not NULL, when there are none)
    Collect,
    /// A Python aggregate function ([`AggCall::python`] says which).
    Python,
}

impl AggKind {
    /// Resolves an aggregate by name.
    pub fn by_name(name: &str) -> Option<AggKind> {
        Some(match name.to_ascii_uppercase().as_str() {
            "COUNT" => AggKind::Count,
            "SUM" => AggKind::Sum,
            "AVG" => AggKind::Avg,
            "MIN" => AggKind::Min,
            "MAX" => AggKind::Max,
            "EWMA" => AggKind::Ewma,
            "EWMVAR" => AggKind::EwmVar,
            "HOLT_WINTERS" | "HW_FORECAST" => AggKind::HoltWinters,
            "HW_LEVEL" => AggKind::HwLevel,
            "HW_TREND" => AggKind::HwTrend,
            "ANOMALY_SCORE" => AggKind::AnomalyScore,
            "IS_ANOMALY" => AggKind::IsAnomaly,
            "VAR_POP" => AggKind::VarPop,
            "VAR_SAMP" | "VARIANCE" => AggKind::VarSamp,
            "STDDEV_POP" => AggKind::StddevPop,
            "STDDEV_SAMP" | "STDDEV" => AggKind::StddevSamp,
            "FIRST_VALUE" => AggKind::FirstValue,
            "LAST_VALUE" => AggKind::LastValue,
            "LISTAGG" => AggKind::ListAgg,
            "ARRAY_AGG" => AggKind::ArrayAgg,
            "LAG" => AggKind::Lag,
            "COLLECT" => AggKind::Collect,
            _ => return None,
        })
    }

    /// The result type for an argument of type `arg`, as Flink derives it.
    pub fn result_type(self, arg: DataType) -> DataType {
        match self {
            AggKind::CountStar | AggKind::Count => DataType::BigInt,
            AggKind::Sum => match arg {
                DataType::Decimal(_, s) => DataType::Decimal(38, s),
                t => t,
            },
            AggKind::Avg => match arg {
                DataType::Decimal(_, s) => DataType::Decimal(38, s.max(6)),
                t => t,
            },
            AggKind::Min
            | AggKind::Max
            | AggKind::FirstValue
            | AggKind::LastValue
            | AggKind::Lag => arg,
            // as Flink: the argument's type (an INT variance is truncated), DECIMAL as AVG's
            AggKind::VarPop | AggKind::VarSamp | AggKind::StddevPop | AggKind::StddevSamp => {
                match arg {
                    DataType::Decimal(_, s) => DataType::Decimal(38, s.max(6)),
                    t => t,
                }
            }
            AggKind::ListAgg => DataType::String(None),
            AggKind::ArrayAgg => DataType::array(arg),
            AggKind::Collect => DataType::multiset(arg),
            AggKind::IsAnomaly => DataType::Boolean,
            // declared by the function ([`AggCall::python`])
            AggKind::Python => arg,
            AggKind::Ewma
            | AggKind::EwmVar
            | AggKind::HoltWinters
            | AggKind::HwLevel
            | AggKind::HwTrend
            | AggKind::AnomalyScore => DataType::Double,
        }
    }

    /// True for the forecasting and anomaly functions (their constant parameters make a
    /// [`ModelSpec`]; they depend on the order of values).
    pub fn is_model(self) -> bool {
        matches!(
            self,
            AggKind::Ewma
                | AggKind::EwmVar
                | AggKind::HoltWinters
                | AggKind::HwLevel
                | AggKind::HwTrend
                | AggKind::AnomalyScore
                | AggKind::IsAnomaly
        )
    }

    /// True for the variance and standard deviation functions.
    pub fn is_variance(self) -> bool {
        matches!(
            self,
            AggKind::VarPop | AggKind::VarSamp | AggKind::StddevPop | AggKind::StddevSamp
        )
    }

    /// True for the functions that keep their values (FIRST_VALUE, LAST_VALUE, LISTAGG,
    /// ARRAY_AGG).
    pub fn keeps_values(self) -> bool {
        matches!(
            self,
            AggKind::FirstValue
                | AggKind::LastValue
                | AggKind::ListAgg
                | AggKind::ArrayAgg
                | AggKind::Collect
                | AggKind::Lag
        )
    }
}

/// One aggregate call of an aggregate operator: function, input column and types.
#[derive(Clone, Debug, PartialEq)]
pub struct AggCall {
    /// The function.
    pub kind: AggKind,
    /// Input column (None for COUNT(*)).
    pub arg: Option<usize>,
    /// `DISTINCT`.
    pub distinct: bool,
    /// Input type.
    pub arg_type: DataType,
    /// Result type.
    pub result_type: DataType,
    /// Optional `FILTER (WHERE ...)` column: the row counts only where it is TRUE.
    pub filter: Option<usize>,
    /// The model and its parameters, for the forecasting and anomaly functions.
    pub model: Option<ModelSpec>,
    /// LISTAGG's separator (`,` when None).
    pub separator: Option<String>,
    /// Whether the input retracts (an updating input): FIRST_VALUE and LAST_VALUE then keep
    /// every value, as Flink's `…WithRetract` functions do, instead of one.
    pub retracts: bool,
    /// LAG's offset and default.
    pub lag: Option<LagSpec>,
    /// A Python aggregate function's call ([`AggKind::Python`]): the function, its arguments.
    pub python: Option<std::sync::Arc<PyAggSpec>>,
}

impl AggCall {
    /// A call of the built-in `kind` over input column `arg` (`None` for `COUNT(*)`), neither
    /// DISTINCT nor filtered, with the argument's and the result's types.
    pub fn builtin(
        kind: AggKind,
        arg: Option<usize>,
        arg_type: DataType,
        result_type: DataType,
    ) -> AggCall {
        AggCall {
            kind,
            arg,
            distinct: false,
            arg_type,
            result_type,
            filter: None,
            model: None,
            separator: None,
            retracts: false,
            lag: None,
            python: None,
        }
    }

    /// A call of a Python aggregate function.
    pub fn python(spec: PyAggSpec) -> AggCall {
        let ty = spec
            .target
            .results
            .first()
            .copied()
            .unwrap_or(DataType::String(None));
        AggCall {
            kind: AggKind::Python,
            arg: spec.args.first().copied(),
            distinct: false,
            arg_type: spec.arg_types.first().copied().unwrap_or(DataType::Null),
            result_type: ty,
            filter: None,
            model: None,
            separator: None,
            retracts: false,
            lag: None,
            python: Some(std::sync::Arc::new(spec)),
        }
    }
}

impl AggCall {
    /// The value `row` gives this call, as its accumulator takes it: None when the row does
    /// not count (its FILTER is not TRUE, or the value is NULL where NULLs are skipped).
    /// Variances take their values as DOUBLE, as Flink's do.
    #[inline]
    pub fn input(&self, row: &Row) -> Option<Value> {
        if let Some(f) = self.filter {
            if row.values.get(f) != Some(&Value::Bool(true)) {
                return None;
            }
        }
        let v = match self.arg {
            None => Value::Bool(true),
            Some(i) => row.values.get(i).copied().unwrap_or(Value::Null),
        };
        if v.is_null() && !matches!(self.kind, AggKind::ArrayAgg | AggKind::Lag) {
            return None;
        }
        if !self.kind.is_variance() {
            return Some(v);
        }
        Some(match v {
            Value::Int(i) => Value::Float(i as f64),
            Value::Decimal(d) => {
                Value::Float(d as f64 / 10f64.powi(scale_of(self.arg_type) as i32))
            }
            other => other,
        })
    }
}

/// LAG's constant parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct LagSpec {
    /// How many rows back (1 by default).
    pub offset: u32,
    /// The default value when there is no such row, in the key encoding ([`encode_value`]).
    pub default: Box<[u8]>,
}

/// The running state of one aggregate call for one group.
#[derive(Clone, Debug, PartialEq)]
pub enum Acc {
    /// COUNT: rows or non-null values.
    Count(i64),
    /// SUM/AVG over integers.
    IntSum {
        /// Sum (wrapping at the result width on output).
        sum: i64,
        /// Non-null values seen.
        n: i64,
    },
    /// SUM/AVG over FLOAT/DOUBLE.
    FloatSum {
        /// Sum.
        sum: f64,
        /// Non-null values seen.
        n: i64,
    },
    /// SUM/AVG over DECIMAL (unscaled at the argument's scale).
    DecSum {
        /// Sum.
        sum: i128,
        /// Non-null values seen.
        n: i64,
    },
    /// MIN/MAX of a non-string value.
    Extreme(Value),
    /// MIN/MAX of a string (None until a value is seen).
    StrExtreme(Option<String>),
    /// A forecasting or anomaly model.
    Model(Model),
    /// Variance and standard deviation: Welford's running count, mean and sum of squared
    /// deviations (as Flink 2.3's `$WELFORD_M2$`), over the values as DOUBLE.
    Welford {
        /// Non-null values.
        n: i64,
        /// Their mean.
        mean: f64,
        /// Sum of squared deviations from the mean.
        m2: f64,
    },
    /// FIRST_VALUE, LAST_VALUE, LISTAGG, ARRAY_AGG: the values in arrival order, each in the key
    /// encoding ([`encode_value`]) one after the other in `bytes`; `ends[i]` is where value `i`
    /// ends. A retraction removes the earliest equal value, as Flink's `…WithRetract` functions.
    Values {
        /// The encoded values.
        bytes: Vec<u8>,
        /// End offset of each value.
        ends: Vec<u32>,
    },
    /// MIN/MAX over an updating input: how often each value is present, in an order-preserving
    /// encoding ([`ordered_key`]), so the extreme is the first or last key — as Flink's
    /// `Min/MaxWithRetractAggFunction` keep a map of value → count. A retraction of a value not
    /// held leaves a negative count, as in Flink; a count of 0 removes the value.
    Counted(BTreeMap<Box<[u8]>, i64>),
    /// A DISTINCT aggregate: how often each distinct value is present, and the inner accumulator.
    Distinct {
        /// Encoded value → multiplicity.
        seen: HashMap<Box<[u8]>, i64>,
        /// Accumulator over the distinct values.
        inner: Box<Acc>,
    },
    /// A Python aggregate function's accumulator ([`crate::python::agg`]).
    Python(Box<PyAcc>),
}

impl Acc {
    /// A fresh accumulator for `call`.
    pub fn new(call: &AggCall) -> Acc {
        if call.python.is_some() {
            return Acc::Python(Box::default());
        }
        if let Some(spec) = &call.model {
            return Acc::Model(Model::new(spec));
        }
        let base = match call.kind {
            AggKind::CountStar | AggKind::Count => Acc::Count(0),
            AggKind::Sum | AggKind::Avg => match call.arg_type {
                DataType::Float | DataType::Double => Acc::FloatSum { sum: 0.0, n: 0 },
                DataType::Decimal(..) => Acc::DecSum { sum: 0, n: 0 },
                _ => Acc::IntSum { sum: 0, n: 0 },
            },
            AggKind::Min | AggKind::Max if call.retracts => Acc::Counted(BTreeMap::new()),
            AggKind::Min | AggKind::Max => {
                if call.arg_type.is_string() {
                    Acc::StrExtreme(None)
                } else {
                    Acc::Extreme(Value::Null)
                }
            }
            k if k.is_variance() => Acc::Welford {
                n: 0,
                mean: 0.0,
                m2: 0.0,
            },
            k if k.keeps_values() => Acc::Values {
                bytes: Vec::new(),
                ends: Vec::new(),
            },
            // a model function planned without its parameters yields NULL
            _ => Acc::Extreme(Value::Null),
        };
        if call.distinct && call.kind != AggKind::CountStar {
            Acc::Distinct {
                seen: HashMap::new(),
                inner: Box::new(base),
            }
        } else {
            base
        }
    }

    /// Adds (or with `retract`, removes) the call's input of `row`.
    #[inline]
    pub fn update(
        &mut self,
        call: &AggCall,
        row: &Row,
        retract: bool,
        scratch: &mut Vec<u8>,
    ) -> Result<()> {
        if let (Acc::Python(acc), Some(spec)) = (&mut *self, &call.python) {
            // NULL arguments are passed (as None); only a FILTER keeps a row out
            if call
                .filter
                .is_none_or(|f| row.values.get(f) == Some(&Value::Bool(true)))
            {
                acc.push(spec, row, retract)?;
            }
            return Ok(());
        }
        let Some(v) = call.input(row) else {
            return Ok(());
        };
        if let Acc::Values { bytes, ends } = self {
            values_update(bytes, ends, call, v, &row.heap, retract, scratch);
            return Ok(());
        }
        if let (Acc::Model(m), Some(spec)) = (&mut *self, &call.model) {
            if retract {
                return Err(RuntimeError::Eval(format!(
                    "{:?} over an updating input is not supported (it needs its values in order, once)",
                    call.kind
                )));
            }
            let x = match v {
                Value::Int(i) => i as f64,
                Value::Float(f) => f,
                Value::Decimal(d) => d as f64 / 10f64.powi(scale_of(call.arg_type) as i32),
                _ => return Ok(()),
            };
            m.push(spec, x);
            return Ok(());
        }
        self.accept(call.kind, v, &row.heap, retract, scratch)
    }

    /// True for a DISTINCT aggregate's accumulator.
    pub fn is_distinct(&self) -> bool {
        matches!(self, Acc::Distinct { .. })
    }

    /// The accumulator over a DISTINCT aggregate's distinct values (None for another kind):
    /// an operator keeping the distinct values itself ([`crate::ops::group_agg`]) feeds it
    /// each value's first arrival and last retraction through [`Acc::accept`].
    pub fn distinct_inner(&mut self) -> Option<&mut Acc> {
        match self {
            Acc::Distinct { inner, .. } => Some(inner),
            _ => None,
        }
    }

    /// Adds (or with `retract`, removes) one input value `v` ([`AggCall::input`]), its strings
    /// in `heap`.
    pub fn accept(
        &mut self,
        kind: AggKind,
        v: Value,
        heap: &[u8],
        retract: bool,
        scratch: &mut Vec<u8>,
    ) -> Result<()> {
        let sign = if retract { -1 } else { 1 };
        match self {
            Acc::Count(c) => *c += sign,
            Acc::IntSum { sum, n } => {
                if let Value::Int(i) = v {
                    *sum = sum.wrapping_add(i.wrapping_mul(sign));
                    *n += sign;
                }
            }
            Acc::FloatSum { sum, n } => {
                if let Value::Float(f) = v {
                    *sum += f * sign as f64;
                    *n += sign;
                }
            }
            Acc::DecSum { sum, n } => {
                if let Value::Decimal(d) = v {
                    *sum = sum.wrapping_add(d * sign as i128);
                    *n += sign;
                }
            }
            Acc::Extreme(cur) => {
                if retract {
                    return Err(RuntimeError::Eval(
                        "MIN/MAX over an updating input is not supported".into(),
                    ));
                }
                let better = cur.is_null()
                    || match compare(v, *cur, heap) {
                        Some(Ordering::Less) => kind == AggKind::Min,
                        Some(Ordering::Greater) => kind == AggKind::Max,
                        _ => false,
                    };
                if better {
                    *cur = v;
                }
            }
            Acc::StrExtreme(cur) => {
                if retract {
                    return Err(RuntimeError::Eval(
                        "MIN/MAX over an updating input is not supported".into(),
                    ));
                }
                if let Value::Str(r) = v {
                    let s = heap_str(heap, r);
                    let better = match cur {
                        None => true,
                        Some(c) => match s.cmp(c.as_str()) {
                            Ordering::Less => kind == AggKind::Min,
                            Ordering::Greater => kind == AggKind::Max,
                            Ordering::Equal => false,
                        },
                    };
                    if better {
                        let c = cur.get_or_insert_with(String::new);
                        c.clear();
                        c.push_str(s);
                    }
                }
            }
            Acc::Welford { n, mean, m2 } => {
                if let Value::Float(x) = v {
                    welford(n, mean, m2, x, retract);
                }
            }
            Acc::Counted(map) => {
                scratch.clear();
                ordered_key(scratch, v, heap);
                match map.get_mut(scratch.as_slice()) {
                    Some(c) => {
                        *c += sign;
                        if *c == 0 {
                            map.remove(scratch.as_slice());
                        }
                    }
                    None => {
                        map.insert(scratch.as_slice().into(), sign);
                    }
                }
            }
            // reached only inside DISTINCT (COLLECT(DISTINCT x)): each distinct value once, in
            // order of arrival
            Acc::Values { bytes, ends } => {
                if retract {
                    values_remove(bytes, ends, v, heap, scratch);
                } else {
                    encode_value(bytes, v, heap);
                    ends.push(bytes.len() as u32);
                }
            }
            // a Python accumulator takes whole rows ([`Acc::update`])
            Acc::Model(_) | Acc::Python(_) => {}
            Acc::Distinct { seen, inner } => {
                scratch.clear();
                encode_value(scratch, v, heap);
                if retract {
                    if let Some(c) = seen.get_mut(scratch.as_slice()) {
                        *c -= 1;
                        if *c == 0 {
                            seen.remove(scratch.as_slice());
                            inner.accept(kind, v, heap, true, &mut Vec::new())?;
                        }
                    }
                } else if let Some(c) = seen.get_mut(scratch.as_slice()) {
                    *c += 1;
                } else {
                    seen.insert(scratch.as_slice().into(), 1);
                    inner.accept(kind, v, heap, false, &mut Vec::new())?;
                }
            }
        }
        Ok(())
    }

    /// The aggregate's current result; strings are appended to `heap`.
    pub fn value(&self, call: &AggCall, heap: &mut Vec<u8>) -> Value {
        match self {
            Acc::Count(c) => Value::Int(*c),
            Acc::IntSum { sum, n } => {
                if *n == 0 {
                    Value::Null
                } else if call.kind == AggKind::Avg {
                    Value::Int(crate::expr::narrow(sum / n, call.result_type))
                } else {
                    Value::Int(crate::expr::narrow(*sum, call.result_type))
                }
            }
            Acc::FloatSum { sum, n } => {
                if *n == 0 {
                    Value::Null
                } else {
                    let v = if call.kind == AggKind::Avg {
                        sum / *n as f64
                    } else {
                        *sum
                    };
                    Value::Float(if call.result_type == DataType::Float {
                        v as f32 as f64
                    } else {
                        v
                    })
                }
            }
            Acc::DecSum { sum, n } => {
                if *n == 0 {
                    Value::Null
                } else if call.kind == AggKind::Avg {
                    let (s_in, s_out) = (scale_of(call.arg_type), scale_of(call.result_type));
                    let scaled = crate::expr::rescale(*sum, s_in, s_out + 1) / *n as i128;
                    Value::Decimal(crate::expr::rescale(scaled, s_out + 1, s_out))
                } else {
                    Value::Decimal(*sum)
                }
            }
            Acc::Extreme(v) => *v,
            Acc::StrExtreme(s) => match s {
                Some(s) => Value::Str(push_str(heap, s)),
                None => Value::Null,
            },
            Acc::Counted(map) => {
                let k = if call.kind == AggKind::Min {
                    map.keys().next()
                } else {
                    map.keys().next_back()
                };
                k.map_or(Value::Null, |k| ordered_value(k, heap))
            }
            Acc::Welford { n, m2, .. } => variance_result(call.kind, *n, *m2, call.result_type),
            Acc::Values { bytes, ends } => values_result(bytes, ends, call, heap),
            Acc::Model(m) => match &call.model {
                Some(
                    spec @ ModelSpec::Anomaly {
                        threshold: Some(t), ..
                    },
                ) => m
                    .value(spec)
                    .map_or(Value::Null, |z| Value::Bool(z.abs() > *t)),
                Some(spec) => m.value(spec).map_or(Value::Null, Value::Float),
                None => Value::Null,
            },
            Acc::Distinct { inner, .. } => inner.value(call, heap),
            Acc::Python(p) => p.value(heap),
        }
    }

    /// True when the accumulator has seen no value (or all of them were retracted).
    pub fn is_empty(&self) -> bool {
        match self {
            Acc::Count(c) => *c == 0,
            Acc::IntSum { n, .. } | Acc::FloatSum { n, .. } | Acc::DecSum { n, .. } => *n == 0,
            Acc::Extreme(v) => v.is_null(),
            Acc::StrExtreme(s) => s.is_none(),
            Acc::Welford { n, .. } => *n == 0,
            Acc::Counted(map) => map.is_empty(),
            Acc::Values { ends, .. } => ends.is_empty(),
            Acc::Model(Model::Ew { n, .. }) => *n == 0,
            Acc::Model(Model::Hw(hw)) => hw.n == 0,
            Acc::Distinct { seen, .. } => seen.is_empty(),
            Acc::Python(p) => p.is_empty(),
        }
    }
}

impl Acc {
    /// Folds `other` (an accumulator of the same call) into this one, as when two session windows merge.
    pub fn merge(&mut self, other: Acc, kind: AggKind) -> Result<()> {
        match (self, other) {
            (Acc::Count(a), Acc::Count(b)) => *a += b,
            (Acc::IntSum { sum, n }, Acc::IntSum { sum: s2, n: n2 }) => {
                *sum = sum.wrapping_add(s2);
                *n += n2;
            }
            (Acc::FloatSum { sum, n }, Acc::FloatSum { sum: s2, n: n2 }) => {
                *sum += s2;
                *n += n2;
            }
            (Acc::DecSum { sum, n }, Acc::DecSum { sum: s2, n: n2 }) => {
                *sum = sum.wrapping_add(s2);
                *n += n2;
            }
            (
                Acc::Welford { n, mean, m2 },
                Acc::Welford {
                    n: n2,
                    mean: mean2,
                    m2: m22,
                },
            ) => {
                // Chan et al.'s parallel combination
                if n2 > 0 {
                    let total = *n + n2;
                    let delta = mean2 - *mean;
                    *m2 += m22 + delta * delta * (*n as f64) * (n2 as f64) / total as f64;
                    *mean += delta * n2 as f64 / total as f64;
                    *n = total;
                }
            }
            (
                Acc::Values { bytes, ends },
                Acc::Values {
                    bytes: b2,
                    ends: e2,
                },
            ) => {
                let base = bytes.len() as u32;
                bytes.extend_from_slice(&b2);
                ends.extend(e2.iter().map(|e| e + base));
                if kind == AggKind::FirstValue {
                    if let Some(&first) = ends.first() {
                        bytes.truncate(first as usize);
                        ends.truncate(1);
                    }
                } else if kind == AggKind::LastValue && ends.len() > 1 {
                    let r = value_range(ends, ends.len() - 1);
                    bytes.drain(..r.start);
                    *ends = vec![bytes.len() as u32];
                }
            }
            (me @ Acc::Extreme(_), Acc::Extreme(v)) => {
                if !v.is_null() {
                    me.accept(kind, v, &[], false, &mut Vec::new())?;
                }
            }
            (Acc::StrExtreme(a), Acc::StrExtreme(b)) => {
                if let Some(b) = b {
                    let better = match a {
                        None => true,
                        Some(x) => match b.as_str().cmp(x.as_str()) {
                            Ordering::Less => kind == AggKind::Min,
                            Ordering::Greater => kind == AggKind::Max,
                            Ordering::Equal => false,
                        },
                    };
                    if better {
                        *a = Some(b);
                    }
                }
            }
            (
                Acc::Distinct { seen, inner },
                Acc::Distinct {
                    seen: other_seen, ..
                },
            ) => {
                for (k, c) in other_seen {
                    if let Some(mine) = seen.get_mut(&k) {
                        *mine += c;
                    } else {
                        let mut row = Row::default();
                        let mut at = 0;
                        crate::keys::decode_value_into(&k, &mut at, &mut row)
                            .ok_or_else(|| state_err("distinct key"))?;
                        let v = row.values.first().copied().unwrap_or(Value::Null);
                        inner.accept(kind, v, &row.heap, false, &mut Vec::new())?;
                        seen.insert(k, c);
                    }
                }
            }
            (Acc::Python(a), Acc::Python(b)) => a.merge(*b)?,
            (Acc::Model(_), _) => return Err(RuntimeError::Eval(
                "forecasting and anomaly functions cannot merge (not usable in SESSION windows)"
                    .into(),
            )),
            (Acc::Counted(a), Acc::Counted(b)) => {
                for (k, c) in b {
                    let e = a.entry(k).or_insert(0);
                    *e += c;
                    if *e == 0 {
                        a.retain(|_, c| *c != 0);
                    }
                }
            }
            _ => return Err(state_err("merging accumulators of different kinds")),
        }
        Ok(())
    }
}

/// One step of Welford's algorithm: adds `x` (or removes it, `retract`).
fn welford(n: &mut i64, mean: &mut f64, m2: &mut f64, x: f64, retract: bool) {
    if retract {
        *n -= 1;
        if *n <= 0 {
            *n = 0;
            *mean = 0.0;
            *m2 = 0.0;
            return;
        }
        let delta = x - *mean;
        *mean -= delta / *n as f64;
        *m2 -= delta * (x - *mean);
    } else {
        *n += 1;
        let delta = x - *mean;
        *mean += delta / *n as f64;
        *m2 += delta * (x - *mean);
    }
}

/// The range of value `i` in a [`Acc::Values`] buffer.
fn value_range(ends: &[u32], i: usize) -> std::ops::Range<usize> {
    let start = if i == 0 { 0 } else { ends[i - 1] as usize };
    start..ends[i] as usize
}

/// Removes the earliest value equal to `v` from a [`Acc::Values`] accumulator.
fn values_remove(
    bytes: &mut Vec<u8>,
    ends: &mut Vec<u32>,
    v: Value,
    heap: &[u8],
    scratch: &mut Vec<u8>,
) {
    scratch.clear();
    encode_value(scratch, v, heap);
    let Some(i) = (0..ends.len()).find(|&i| bytes[value_range(ends, i)] == scratch[..]) else {
        return; // not held (Flink keeps such retractions aside; rare out-of-order input)
    };
    let r = value_range(ends, i);
    let len = r.len() as u32;
    bytes.drain(r);
    ends.remove(i);
    for e in &mut ends[i..] {
        *e -= len;
    }
}

/// Adds (or retracts) `v` in a [`Acc::Values`] accumulator of `call`.
fn values_update(
    bytes: &mut Vec<u8>,
    ends: &mut Vec<u32>,
    call: &AggCall,
    v: Value,
    heap: &[u8],
    retract: bool,
    scratch: &mut Vec<u8>,
) {
    if retract {
        values_remove(bytes, ends, v, heap, scratch);
        return;
    }
    if !call.retracts {
        // an append-only input needs one value for FIRST_VALUE and LAST_VALUE
        match call.kind {
            AggKind::FirstValue if !ends.is_empty() => return,
            AggKind::LastValue => {
                bytes.clear();
                ends.clear();
            }
            _ => {}
        }
    }
    encode_value(bytes, v, heap);
    ends.push(bytes.len() as u32);
    if let (AggKind::Lag, Some(lag)) = (call.kind, &call.lag) {
        // only the last offset + 1 values are needed
        if ends.len() > lag.offset as usize + 1 {
            let first = ends[0];
            bytes.drain(..first as usize);
            ends.remove(0);
            for e in ends.iter_mut() {
                *e -= first;
            }
        }
    }
}

/// The result of a [`Acc::Values`] accumulator of `call`, written to `heap`.
fn values_result(bytes: &[u8], ends: &[u32], call: &AggCall, heap: &mut Vec<u8>) -> Value {
    let read = |i: usize| {
        let mut at = value_range(ends, i).start;
        crate::keys::decode_value_ref(bytes, &mut at).unwrap_or(Value::Null)
    };
    // a value whose string lies in `bytes`, copied to `heap`
    let own = |v: Value, heap: &mut Vec<u8>| match v {
        Value::Str(r) => Value::Str(push_bytes(
            heap,
            tillflow_types::value::heap_bytes(bytes, r),
        )),
        other => other,
    };
    if call.kind == AggKind::Lag {
        let offset = call.lag.as_ref().map_or(1, |l| l.offset as usize);
        let Some(lag) = &call.lag else {
            return Value::Null;
        };
        let mut at = 0;
        let default = crate::keys::decode_value_ref(&lag.default, &mut at);
        if ends.len() > offset {
            let v = read(ends.len() - 1 - offset);
            // Flink 2.3 (oracle): a NULL value with a default gives the default, but "" for a
            // string
            return match (v, default) {
                (Value::Null, Some(d)) if !d.is_null() => {
                    if call.arg_type.is_string() {
                        Value::Str(push_bytes(heap, b""))
                    } else {
                        d
                    }
                }
                (v, _) => own(v, heap),
            };
        }
        return match default {
            Some(Value::Str(r)) => Value::Str(push_bytes(
                heap,
                tillflow_types::value::heap_bytes(&lag.default, r),
            )),
            Some(v) => v,
            None => Value::Null,
        };
    }
    if ends.is_empty() && call.kind != AggKind::Collect {
        return Value::Null;
    }
    match call.kind {
        AggKind::FirstValue => own(read(0), heap),
        AggKind::LastValue => own(read(ends.len() - 1), heap),
        AggKind::ListAgg => {
            let start = heap.len();
            let sep = call.separator.as_deref().unwrap_or(",");
            for i in 0..ends.len() {
                if i > 0 {
                    heap.extend_from_slice(sep.as_bytes());
                }
                if let Value::Str(r) = read(i) {
                    heap.extend_from_slice(tillflow_types::value::heap_bytes(bytes, r));
                }
            }
            Value::Str(tillflow_types::nested::span_from(heap, start))
        }
        AggKind::ArrayAgg | AggKind::Collect => {
            let (DataType::Array(elem) | DataType::Multiset(elem)) = call.result_type else {
                return Value::Null;
            };
            let start = heap.len();
            heap.extend_from_slice(&(ends.len() as u32).to_le_bytes());
            for i in 0..ends.len() {
                match read(i) {
                    Value::Str(r) => {
                        let b = tillflow_types::value::heap_bytes(bytes, r);
                        heap.push(1);
                        heap.extend_from_slice(&(b.len() as u32).to_le_bytes());
                        heap.extend_from_slice(b);
                    }
                    v => tillflow_types::nested::push_slot(heap, v, *elem),
                }
            }
            Value::Str(tillflow_types::nested::span_from(heap, start))
        }
        _ => Value::Null,
    }
}

/// Appends raw bytes (a BYTES value) to `heap` and returns their span.
pub fn push_bytes(heap: &mut Vec<u8>, b: &[u8]) -> tillflow_types::StrRef {
    let off = heap.len() as u32;
    heap.extend_from_slice(b);
    tillflow_types::StrRef {
        off,
        len: b.len() as u32,
    }
}

/// A variance or standard deviation from Welford's state, as Flink 2.3 derives it from
/// `$WELFORD_M2$`: NULL without values (VAR_SAMP / STDDEV_SAMP: with fewer than two), converted
/// to the result type (integers truncated).
fn variance_result(kind: AggKind, n: i64, m2: f64, ty: DataType) -> Value {
    let var = match kind {
        AggKind::VarPop | AggKind::StddevPop if n >= 1 => m2 / n as f64,
        AggKind::VarSamp | AggKind::StddevSamp if n >= 2 => m2 / (n - 1) as f64,
        _ => return Value::Null,
    };
    let x = match kind {
        AggKind::StddevPop | AggKind::StddevSamp => var.powf(0.5),
        _ => var,
    };
    match ty {
        DataType::Float => Value::Float(x as f32 as f64),
        DataType::Double => Value::Float(x),
        DataType::Decimal(..) => {
            let mut scratch = Vec::new();
            crate::cast::cast_value(Value::Float(x), DataType::Double, ty, &mut scratch)
                .unwrap_or(Value::Null)
        }
        t => Value::Int(crate::expr::narrow(
            if x.is_nan() { 0 } else { x as i64 },
            t,
        )),
    }
}

/// Adds a row to every accumulator of a group.
#[inline]
pub fn update_all(
    accs: &mut [Acc],
    calls: &[AggCall],
    row: &Row,
    retract: bool,
    scratch: &mut Vec<u8>,
) -> Result<()> {
    for (acc, call) in accs.iter_mut().zip(calls) {
        acc.update(call, row, retract, scratch)?;
    }
    Ok(())
}

/// Fresh accumulators for every call.
pub fn new_accs(calls: &[AggCall]) -> Vec<Acc> {
    calls.iter().map(Acc::new).collect()
}

const A_COUNT: u8 = 0;
const A_INT: u8 = 1;
const A_FLOAT: u8 = 2;
const A_DEC: u8 = 3;
const A_EXT: u8 = 4;
const A_STR: u8 = 5;
const A_DISTINCT: u8 = 6;
const A_MODEL: u8 = 7;
const A_WELFORD: u8 = 8;
const A_VALUES: u8 = 9;
const A_COUNTED: u8 = 10;
const A_PYTHON: u8 = 11;

/// Appends `v` in an encoding whose byte order is the values' order (for one kind of value): a
/// kind tag, then integers and times as big-endian with the sign bit flipped, doubles in their
/// total order (as Java's `Double.compare`), strings as their UTF-8 bytes (Flink compares
/// strings by bytes).
fn ordered_key(out: &mut Vec<u8>, v: Value, heap: &[u8]) {
    let flip = |i: i64| (i as u64 ^ (1 << 63)).to_be_bytes();
    match v {
        Value::Null => out.push(0),
        Value::Bool(b) => out.extend_from_slice(&[1, b as u8]),
        Value::Int(i) => {
            out.push(2);
            out.extend_from_slice(&flip(i));
        }
        Value::Float(f) => {
            out.push(3);
            let b = f.to_bits();
            let b = if b >> 63 == 1 { !b } else { b ^ (1 << 63) };
            out.extend_from_slice(&b.to_be_bytes());
        }
        Value::Decimal(d) => {
            out.push(4);
            out.extend_from_slice(&(d as u128 ^ (1 << 127)).to_be_bytes());
        }
        Value::Str(r) => {
            out.push(5);
            out.extend_from_slice(heap_str(heap, r).as_bytes());
        }
        Value::Timestamp(t) => {
            out.push(6);
            out.extend_from_slice(&flip(t));
        }
        Value::Date(d) => {
            out.push(7);
            out.extend_from_slice(&flip(d as i64));
        }
        Value::Time(t) => {
            out.push(8);
            out.extend_from_slice(&flip(t));
        }
        Value::Interval(i) => {
            out.push(9);
            out.extend_from_slice(&flip(i));
        }
        Value::Months(m) => {
            out.push(10);
            out.extend_from_slice(&flip(m as i64));
        }
    }
}

/// The value of an [`ordered_key`]; a string is appended to `heap`. NULL for a malformed key.
fn ordered_value(k: &[u8], heap: &mut Vec<u8>) -> Value {
    let (Some(&tag), body) = (k.first(), k.get(1..).unwrap_or(&[])) else {
        return Value::Null;
    };
    let i64_of = |b: &[u8]| -> Option<i64> {
        Some((u64::from_be_bytes(b.try_into().ok()?) ^ (1 << 63)) as i64)
    };
    let v = match tag {
        1 => body.first().map(|&b| Value::Bool(b != 0)),
        2 => i64_of(body).map(Value::Int),
        3 => body.try_into().ok().map(|b: [u8; 8]| {
            let b = u64::from_be_bytes(b);
            let b = if b >> 63 == 1 { b ^ (1 << 63) } else { !b };
            Value::Float(f64::from_bits(b))
        }),
        4 => body
            .try_into()
            .ok()
            .map(|b: [u8; 16]| Value::Decimal((u128::from_be_bytes(b) ^ (1 << 127)) as i128)),
        5 => Some(Value::Str(push_bytes(heap, body))),
        6 => i64_of(body).map(Value::Timestamp),
        7 => i64_of(body).map(|d| Value::Date(d as i32)),
        8 => i64_of(body).map(Value::Time),
        9 => i64_of(body).map(Value::Interval),
        10 => i64_of(body).map(|m| Value::Months(m as i32)),
        _ => None,
    };
    v.unwrap_or(Value::Null)
}

fn state_err(what: &str) -> RuntimeError {
    RuntimeError::State(format!("corrupt accumulator: {what}"))
}

impl StateValue for Acc {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Acc::Count(c) => {
                out.push(A_COUNT);
                out.extend_from_slice(&c.to_le_bytes());
            }
            Acc::IntSum { sum, n } => {
                out.push(A_INT);
                out.extend_from_slice(&sum.to_le_bytes());
                out.extend_from_slice(&n.to_le_bytes());
            }
            Acc::FloatSum { sum, n } => {
                out.push(A_FLOAT);
                out.extend_from_slice(&sum.to_bits().to_le_bytes());
                out.extend_from_slice(&n.to_le_bytes());
            }
            Acc::DecSum { sum, n } => {
                out.push(A_DEC);
                out.extend_from_slice(&sum.to_le_bytes());
                out.extend_from_slice(&n.to_le_bytes());
            }
            Acc::Extreme(v) => {
                out.push(A_EXT);
                encode_value(out, *v, &[]);
            }
            Acc::StrExtreme(s) => {
                out.push(A_STR);
                match s {
                    None => out.push(0),
                    Some(s) => {
                        out.push(1);
                        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                        out.extend_from_slice(s.as_bytes());
                    }
                }
            }
            Acc::Model(m) => {
                out.push(A_MODEL);
                m.write(out);
            }
            Acc::Welford { n, mean, m2 } => {
                out.push(A_WELFORD);
                out.extend_from_slice(&n.to_le_bytes());
                out.extend_from_slice(&mean.to_bits().to_le_bytes());
                out.extend_from_slice(&m2.to_bits().to_le_bytes());
            }
            Acc::Values { bytes, ends } => {
                out.push(A_VALUES);
                out.extend_from_slice(&(ends.len() as u32).to_le_bytes());
                for e in ends {
                    out.extend_from_slice(&e.to_le_bytes());
                }
                out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                out.extend_from_slice(bytes);
            }
            Acc::Counted(map) => {
                out.push(A_COUNTED);
                out.extend_from_slice(&(map.len() as u64).to_le_bytes());
                for (k, c) in map {
                    out.extend_from_slice(&(k.len() as u32).to_le_bytes());
                    out.extend_from_slice(k);
                    out.extend_from_slice(&c.to_le_bytes());
                }
            }
            Acc::Python(p) => {
                out.push(A_PYTHON);
                p.write(out);
            }
            Acc::Distinct { seen, inner } => {
                out.push(A_DISTINCT);
                out.extend_from_slice(&(seen.len() as u64).to_le_bytes());
                for (k, c) in seen {
                    out.extend_from_slice(&(k.len() as u32).to_le_bytes());
                    out.extend_from_slice(k);
                    out.extend_from_slice(&c.to_le_bytes());
                }
                inner.write(out);
            }
        }
    }

    fn read(input: &[u8], at: &mut usize) -> Result<Self> {
        let tag = *input.get(*at).ok_or_else(|| state_err("missing tag"))?;
        *at += 1;
        let i64_at = |at: &mut usize| read_u64(input, at).map(|v| v as i64);
        Ok(match tag {
            A_COUNT => Acc::Count(i64_at(at)?),
            A_INT => Acc::IntSum {
                sum: i64_at(at)?,
                n: i64_at(at)?,
            },
            A_FLOAT => Acc::FloatSum {
                sum: f64::from_bits(read_u64(input, at)?),
                n: i64_at(at)?,
            },
            A_DEC => {
                let b = input
                    .get(*at..*at + 16)
                    .ok_or_else(|| state_err("decimal"))?;
                *at += 16;
                let sum = i128::from_le_bytes(b.try_into().map_err(|_| state_err("decimal"))?);
                Acc::DecSum {
                    sum,
                    n: i64_at(at)?,
                }
            }
            A_EXT => {
                let mut row = Row::default();
                crate::keys::decode_value_into(input, at, &mut row)
                    .ok_or_else(|| state_err("value"))?;
                Acc::Extreme(row.values.first().copied().unwrap_or(Value::Null))
            }
            A_STR => {
                let present = *input.get(*at).ok_or_else(|| state_err("string"))?;
                *at += 1;
                if present == 0 {
                    Acc::StrExtreme(None)
                } else {
                    let len = read_u32(input, at)? as usize;
                    let b = input
                        .get(*at..*at + len)
                        .ok_or_else(|| state_err("string"))?;
                    *at += len;
                    Acc::StrExtreme(Some(String::from_utf8_lossy(b).into_owned()))
                }
            }
            A_DISTINCT => {
                let n = read_u64(input, at)?;
                let mut seen = HashMap::new();
                for _ in 0..n {
                    let len = read_u32(input, at)? as usize;
                    let k = input
                        .get(*at..*at + len)
                        .ok_or_else(|| state_err("distinct key"))?;
                    *at += len;
                    seen.insert(k.into(), i64_at(at)?);
                }
                Acc::Distinct {
                    seen,
                    inner: Box::new(Acc::read(input, at)?),
                }
            }
            A_PYTHON => Acc::Python(Box::new(PyAcc::read(input, at)?)),
            A_COUNTED => {
                let n = read_u64(input, at)?;
                let mut map = BTreeMap::new();
                for _ in 0..n {
                    let len = read_u32(input, at)? as usize;
                    let k = input
                        .get(*at..*at + len)
                        .ok_or_else(|| state_err("counted key"))?;
                    *at += len;
                    map.insert(k.into(), i64_at(at)?);
                }
                Acc::Counted(map)
            }
            A_MODEL => Acc::Model(Model::read(input, at)?),
            A_WELFORD => Acc::Welford {
                n: i64_at(at)?,
                mean: f64::from_bits(read_u64(input, at)?),
                m2: f64::from_bits(read_u64(input, at)?),
            },
            A_VALUES => {
                let count = read_u32(input, at)? as usize;
                let mut ends = Vec::with_capacity(count.min(1 << 16));
                for _ in 0..count {
                    ends.push(read_u32(input, at)?);
                }
                let len = read_u32(input, at)? as usize;
                let bytes = input
                    .get(*at..*at + len)
                    .ok_or_else(|| state_err("values"))?
                    .to_vec();
                *at += len;
                if ends.windows(2).any(|w| w[0] > w[1])
                    || ends.last().is_some_and(|&e| e as usize != len)
                {
                    return Err(state_err("values"));
                }
                Acc::Values { bytes, ends }
            }
            _ => return Err(state_err("unknown tag")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(kind: AggKind, ty: DataType, distinct: bool) -> AggCall {
        AggCall {
            kind,
            arg: Some(0),
            distinct,
            arg_type: ty,
            result_type: kind.result_type(ty),
            filter: None,
            model: None,
            separator: None,
            retracts: false,
            lag: None,
            python: None,
        }
    }

    #[test]
    fn sums_counts_and_distinct() {
        let calls = [
            call(AggKind::Sum, DataType::Int, false),
            call(AggKind::Avg, DataType::Int, false),
            call(AggKind::Count, DataType::Int, true),
            call(AggKind::Max, DataType::String(None), false),
        ];
        let mut accs = new_accs(&calls[..3]);
        let mut scratch = Vec::new();
        for v in [3, 4, 4, i32::MAX as i64] {
            let row = Row {
                values: vec![Value::Int(v)],
                ..Row::default()
            };
            update_all(&mut accs, &calls[..3], &row, false, &mut scratch).unwrap();
        }
        let mut heap = Vec::new();
        // SUM(INT) wraps at INT, as in Java
        assert_eq!(
            accs[0].value(&calls[0], &mut heap),
            Value::Int((11i64 + i32::MAX as i64) as i32 as i64)
        );
        assert_eq!(accs[2].value(&calls[2], &mut heap), Value::Int(3));
        let row = Row {
            values: vec![Value::Int(4)],
            ..Row::default()
        };
        update_all(&mut accs, &calls[..3], &row, true, &mut scratch).unwrap();
        assert_eq!(accs[2].value(&calls[2], &mut heap), Value::Int(3));
        update_all(&mut accs, &calls[..3], &row, true, &mut scratch).unwrap();
        assert_eq!(accs[2].value(&calls[2], &mut heap), Value::Int(2));

        let mut out = Vec::new();
        accs.write(&mut out);
        let back = Vec::<Acc>::read(&out, &mut 0).unwrap();
        assert_eq!(back, accs);

        let mut m = Acc::new(&calls[3]);
        for s in ["b", "c", "a"] {
            let mut row = Row::default();
            let r = row.intern(s);
            row.values.push(Value::Str(r));
            m.update(&calls[3], &row, false, &mut scratch).unwrap();
        }
        let v = m.value(&calls[3], &mut heap);
        match v {
            Value::Str(r) => assert_eq!(heap_str(&heap, r), "c"),
            _ => panic!(),
        }
    }
}

#[cfg(test)]
mod value_aggs {
    use super::*;

    fn call(kind: AggKind, ty: DataType, retracts: bool) -> AggCall {
        AggCall {
            kind,
            arg: Some(0),
            distinct: false,
            arg_type: ty,
            result_type: kind.result_type(ty),
            filter: None,
            model: None,
            separator: Some("|".into()),
            retracts,
            lag: None,
            python: None,
        }
    }

    fn row(s: Option<&str>) -> Row {
        let mut r = Row::default();
        let v = match s {
            Some(s) => Value::Str(r.intern(s)),
            None => Value::Null,
        };
        r.values.push(v);
        r
    }

    fn text(v: Value, heap: &[u8]) -> Option<String> {
        match v {
            Value::Str(r) => Some(heap_str(heap, r).to_owned()),
            _ => None,
        }
    }

    fn num_row(v: Value) -> Row {
        let mut r = Row::default();
        r.values.push(v);
        r
    }

    #[test]
    fn min_max_with_retraction_keep_value_counts() {
        let s = DataType::String(None);
        let calls = [call(AggKind::Min, s, true), call(AggKind::Max, s, true)];
        let mut accs = new_accs(&calls);
        let mut scratch = vec![];
        let mut heap = vec![];
        let now = |accs: &[Acc], heap: &mut Vec<u8>| -> Vec<Option<String>> {
            accs.iter()
                .zip(&calls)
                .map(|(a, c)| {
                    let v = a.value(c, heap);
                    text(v, heap)
                })
                .collect()
        };
        for (v, retract) in [
            ("m", false),
            ("a", false),
            ("z", false),
            ("a", false),
            ("a", true),
        ] {
            update_all(&mut accs, &calls, &row(Some(v)), retract, &mut scratch).unwrap();
        }
        // one "a" left
        assert_eq!(now(&accs, &mut heap), [Some("a".into()), Some("z".into())]);
        let mut out = vec![];
        accs.write(&mut out);
        let mut back = Vec::<Acc>::read(&out, &mut 0).unwrap();
        assert_eq!(back, accs);
        for v in ["a", "z"] {
            update_all(&mut back, &calls, &row(Some(v)), true, &mut scratch).unwrap();
        }
        assert_eq!(now(&back, &mut heap), [Some("m".into()), Some("m".into())]);
        update_all(&mut back, &calls, &row(Some("m")), true, &mut scratch).unwrap();
        assert!(back.iter().all(Acc::is_empty));
        assert_eq!(now(&back, &mut heap), [None, None]);

        // numbers order by value, negatives and doubles included
        for (ty, vals) in [
            (
                DataType::BigInt,
                [
                    Value::Int(-5),
                    Value::Int(3),
                    Value::Int(-70),
                    Value::Int(0),
                ],
            ),
            (
                DataType::Double,
                [
                    Value::Float(-0.5),
                    Value::Float(2.25),
                    Value::Float(-1e300),
                    Value::Float(0.0),
                ],
            ),
            (
                DataType::Decimal(10, 2),
                [
                    Value::Decimal(-5),
                    Value::Decimal(300),
                    Value::Decimal(-7000),
                    Value::Decimal(0),
                ],
            ),
        ] {
            let calls = [call(AggKind::Min, ty, true), call(AggKind::Max, ty, true)];
            let mut accs = new_accs(&calls);
            for v in vals {
                update_all(&mut accs, &calls, &num_row(v), false, &mut scratch).unwrap();
            }
            let got = |accs: &[Acc]| -> Vec<Value> {
                let mut h = vec![];
                accs.iter()
                    .zip(&calls)
                    .map(|(a, c)| a.value(c, &mut h))
                    .collect()
            };
            assert_eq!(got(&accs), [vals[2], vals[1]]);
            // the extremes retracted: the next ones
            update_all(&mut accs, &calls, &num_row(vals[2]), true, &mut scratch).unwrap();
            update_all(&mut accs, &calls, &num_row(vals[1]), true, &mut scratch).unwrap();
            assert_eq!(got(&accs), [vals[0], vals[3]]);
        }
    }

    #[test]
    fn collect_keeps_non_null_values_and_is_empty_not_null() {
        let s = DataType::String(None);
        let calls = [call(AggKind::Collect, s, true)];
        let mut accs = new_accs(&calls);
        let mut scratch = vec![];
        let mut heap = vec![];
        // no values: an empty MULTISET
        let Value::Str(span) = accs[0].value(&calls[0], &mut heap) else {
            panic!("COLLECT of nothing is not NULL");
        };
        assert_eq!(tillflow_types::nested::len(&heap, span), 0);
        for (v, retract) in [
            (Some("x"), false),
            (None, false),
            (Some("x"), false),
            (Some("y"), false),
            (Some("x"), true),
        ] {
            update_all(&mut accs, &calls, &row(v), retract, &mut scratch).unwrap();
        }
        let mut out = vec![];
        accs.write(&mut out);
        assert_eq!(Vec::<Acc>::read(&out, &mut 0).unwrap(), accs);
        let Value::Str(span) = accs[0].value(&calls[0], &mut heap) else {
            panic!("COLLECT is NULL");
        };
        let got: Vec<_> = tillflow_types::nested::elements(&heap, span, s)
            .map(|v| text(v, &heap))
            .collect();
        assert_eq!(got, [Some("x".into()), Some("y".into())]);

        // DISTINCT: each value once, until its last copy is retracted
        let mut d = call(AggKind::Collect, s, true);
        d.distinct = true;
        let calls = [d];
        let mut accs = new_accs(&calls);
        for (v, retract) in [
            ("x", false),
            ("y", false),
            ("x", false),
            ("x", true),
            ("y", true),
        ] {
            update_all(&mut accs, &calls, &row(Some(v)), retract, &mut scratch).unwrap();
        }
        let mut out = vec![];
        accs.write(&mut out);
        assert_eq!(Vec::<Acc>::read(&out, &mut 0).unwrap(), accs);
        let Value::Str(span) = accs[0].value(&calls[0], &mut heap) else {
            panic!("COLLECT(DISTINCT) is NULL");
        };
        let got: Vec<_> = tillflow_types::nested::elements(&heap, span, s)
            .map(|v| text(v, &heap))
            .collect();
        assert_eq!(got, [Some("x".into())]);
    }

    #[test]
    fn retraction_removes_the_earliest_equal_value() {
        let s = DataType::String(None);
        let calls = [
            call(AggKind::FirstValue, s, true),
            call(AggKind::LastValue, s, true),
            call(AggKind::ListAgg, s, true),
        ];
        let mut accs = new_accs(&calls);
        let mut scratch = vec![];
        for (v, retract) in [
            ("a", false),
            ("b", false),
            ("a", false),
            ("a", true),
            ("c", false),
        ] {
            update_all(&mut accs, &calls, &row(Some(v)), retract, &mut scratch).unwrap();
        }
        update_all(&mut accs, &calls, &row(None), false, &mut scratch).unwrap();
        let mut heap = vec![];
        let got: Vec<_> = accs
            .iter()
            .zip(&calls)
            .map(|(a, c)| {
                let v = a.value(c, &mut heap);
                text(v, &heap)
            })
            .collect();
        assert_eq!(
            got,
            [Some("b".into()), Some("c".into()), Some("b|a|c".into())]
        );
        let mut out = vec![];
        accs.write(&mut out);
        assert_eq!(Vec::<Acc>::read(&out, &mut 0).unwrap(), accs);
        // all retracted: NULL
        for v in ["b", "a", "c"] {
            update_all(&mut accs, &calls, &row(Some(v)), true, &mut scratch).unwrap();
        }
        assert!(accs.iter().all(Acc::is_empty));
        assert_eq!(accs[2].value(&calls[2], &mut heap), Value::Null);
    }

    #[test]
    fn welford_variance_with_retraction() {
        let c = call(AggKind::VarSamp, DataType::Double, true);
        let mut acc = Acc::new(&c);
        let mut scratch = vec![];
        let r = |x: f64| Row {
            values: vec![Value::Float(x)],
            ..Row::default()
        };
        for x in [1.0, 2.0, 4.0, 100.0] {
            acc.update(&c, &r(x), false, &mut scratch).unwrap();
        }
        acc.update(&c, &r(100.0), true, &mut scratch).unwrap();
        let Value::Float(v) = acc.value(&c, &mut vec![]) else {
            panic!()
        };
        assert!((v - 7.0 / 3.0).abs() < 1e-12);
        let int = call(AggKind::StddevPop, DataType::Int, false);
        let mut acc = Acc::new(&int);
        for x in [1, 2, 4] {
            let row = Row {
                values: vec![Value::Int(x)],
                ..Row::default()
            };
            acc.update(&int, &row, false, &mut scratch).unwrap();
        }
        // sqrt(14/9) = 1.247… truncated, as Flink's INT result
        assert_eq!(acc.value(&int, &mut vec![]), Value::Int(1));
    }
}

#[cfg(test)]
mod lag_tests {
    use super::*;

    #[test]
    fn lag_keeps_offset_plus_one_values() {
        let mut default = vec![];
        encode_value(&mut default, Value::Int(-1), &[]);
        let call = AggCall {
            kind: AggKind::Lag,
            arg: Some(0),
            distinct: false,
            arg_type: DataType::Int,
            result_type: DataType::Int,
            filter: None,
            model: None,
            separator: None,
            retracts: false,
            lag: Some(LagSpec {
                offset: 2,
                default: default.into(),
            }),
            python: None,
        };
        let mut acc = Acc::new(&call);
        let mut heap = vec![];
        let mut got = vec![];
        for x in [
            Value::Int(1),
            Value::Null,
            Value::Int(3),
            Value::Int(4),
            Value::Int(5),
        ] {
            let row = Row {
                values: vec![x],
                ..Row::default()
            };
            acc.update(&call, &row, false, &mut vec![]).unwrap();
            got.push(acc.value(&call, &mut heap));
        }
        // two rows back; none yet: the default; a NULL two back: the default (as Flink 2.3)
        assert_eq!(
            got,
            [
                Value::Int(-1),
                Value::Int(-1),
                Value::Int(1),
                Value::Int(-1),
                Value::Int(3)
            ]
        );
        let Acc::Values { ends, .. } = &acc else {
            panic!()
        };
        assert_eq!(ends.len(), 3);
    }
}
