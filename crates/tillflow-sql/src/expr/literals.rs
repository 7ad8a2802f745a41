//! Literals and constants: numbers (DECIMAL for decimal literals, as Flink types them), strings,
//! booleans, typed literals, intervals, and the implicit casts and constant folding the planner
//! uses (`cast_to`, `eval_const`).

use super::*;

pub(crate) fn lit(value: Value, ty: DataType) -> Expr {
    Expr::Literal { value, ty }
}

/// Wraps `e` in a cast to `to` unless it already has that type.
pub fn cast_to(e: Expr, to: DataType) -> Expr {
    let from = e.data_type();
    if from == to
        || from == DataType::Null && matches!(e, Expr::Literal { .. }) && to == DataType::Null
    {
        return e;
    }
    if let Expr::Literal {
        value: Value::Null, ..
    } = e
    {
        return lit(Value::Null, to);
    }
    Expr::Cast {
        arg: Box::new(e),
        from,
        to,
        safe: false,
    }
}

/// Evaluates a constant expression.
pub fn eval_const(e: &Expr) -> Result<Value> {
    let row = tillflow_types::Row::default();
    let mut heap = Vec::new();
    e.eval(&row, &mut heap)
        .or_else(|err| plan_err(format!("cannot evaluate constant: {err}")))
}

pub(crate) fn decimal_literal(text: &str) -> Option<(i128, u8, u8)> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = format!("{int}{frac}");
    let v: i128 = digits.parse().ok()?;
    let scale = frac.len() as u8;
    let precision = (digits.trim_start_matches('0').len() as u8)
        .max(scale)
        .max(1);
    Some((v, precision.min(38), scale))
}

pub(crate) fn unit_of(f: &sql::DateTimeField) -> Result<TimeUnit> {
    let text = f.to_string();
    TimeUnit::parse(&text)
        .ok_or_else(|| crate::error::SqlError::Plan(format!("unsupported time unit {text}")))
}

/// The microseconds (or months) of an `INTERVAL 'n' UNIT` literal.
pub fn interval_value(iv: &sql::Interval) -> Result<Value> {
    let text = match iv.value.as_ref() {
        sql::Expr::Value(v) => match &v.value {
            SqlValue::SingleQuotedString(s) => s.clone(),
            SqlValue::Number(n, _) => n.clone(),
            other => return plan_err(format!("unsupported interval value {other}")),
        },
        other => return plan_err(format!("unsupported interval value {other}")),
    };
    let unit = match &iv.leading_field {
        Some(f) => unit_of(f)?,
        None => {
            // INTERVAL '5 SECOND'
            let mut parts = text.split_whitespace();
            let n = parts.next().unwrap_or("0").to_owned();
            let u = parts.next().and_then(TimeUnit::parse).ok_or_else(|| {
                crate::error::SqlError::Plan(format!("interval '{text}' needs a unit"))
            })?;
            return interval_of(&n, u, None);
        }
    };
    interval_of(&text, unit, iv.last_field.as_ref())
}

pub(crate) fn interval_of(
    text: &str,
    unit: TimeUnit,
    last: Option<&sql::DateTimeField>,
) -> Result<Value> {
    if last.is_some() {
        // DAY TO SECOND style: 'd hh:mm:ss[.f]'
        let t = text.trim();
        let (days, rest) = t.split_once(' ').unwrap_or(("0", t));
        let d: i64 = days.parse().unwrap_or(0);
        let tod = parse_time(rest)
            .or_else(|| parse_time(&format!("{rest}:00")))
            .ok_or_else(|| crate::error::SqlError::Plan(format!("bad interval '{text}'")))?;
        return Ok(Value::Interval(d * 86_400 * MICROS_PER_SECOND + tod));
    }
    let n: f64 = text
        .trim()
        .parse()
        .map_err(|_| crate::error::SqlError::Plan(format!("bad interval value '{text}'")))?;
    Ok(match unit {
        TimeUnit::Year => Value::Months((n * 12.0) as i32),
        TimeUnit::Quarter => Value::Months((n * 3.0) as i32),
        TimeUnit::Month => Value::Months(n as i32),
        u => match u.fixed_micros() {
            Some(m) => Value::Interval((n * m as f64).round() as i64),
            None => return plan_err(format!("unsupported interval unit {u:?}")),
        },
    })
}

impl Converter<'_> {
    pub(super) fn value(&self, v: &SqlValue) -> Result<Expr> {
        Ok(match v {
            SqlValue::Number(n, _) => {
                if n.contains(['e', 'E']) {
                    lit(
                        Value::Float(n.parse().unwrap_or(f64::NAN)),
                        DataType::Double,
                    )
                } else if n.contains('.') {
                    match decimal_literal(n) {
                        Some((v, p, s)) => lit(Value::Decimal(v), DataType::Decimal(p, s)),
                        None => return plan_err(format!("bad number {n}")),
                    }
                } else {
                    match n.parse::<i64>() {
                        Ok(i) if i32::try_from(i).is_ok() => lit(Value::Int(i), DataType::Int),
                        Ok(i) => lit(Value::Int(i), DataType::BigInt),
                        Err(_) => match decimal_literal(n) {
                            Some((v, p, s)) => lit(Value::Decimal(v), DataType::Decimal(p, s)),
                            None => return plan_err(format!("bad number {n}")),
                        },
                    }
                }
            }
            SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => {
                Expr::StrLiteral(s.as_str().into())
            }
            SqlValue::Boolean(b) => lit(Value::Bool(*b), DataType::Boolean),
            SqlValue::Null => lit(Value::Null, DataType::Null),
            other => return plan_err(format!("unsupported literal {other}")),
        })
    }
}
