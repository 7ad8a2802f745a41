//! CAST between SQL types, with Flink's conversions and text forms.

use crate::error::{Result, RuntimeError};
use crate::expr::{narrow, rescale, scale_of};
use std::fmt::Write;
use tillflow_types::javafmt::{write_double, write_float};
use tillflow_types::temporal::{self, MICROS_PER_DAY, MICROS_PER_SECOND};
use tillflow_types::value::heap_str;
use tillflow_types::{DataType, StrRef, Value};

/// Appends the text of a value the way Flink's `CAST(v AS STRING)` writes it.
pub fn write_text(s: &mut String, v: Value, ty: DataType, heap: &[u8]) {
    match v {
        Value::Null => s.push_str("NULL"),
        Value::Bool(b) => s.push_str(if b { "TRUE" } else { "FALSE" }),
        Value::Int(i) => {
            let _ = write!(s, "{i}");
        }
        Value::Float(f) => {
            if ty == DataType::Float {
                write_float(s, f as f32)
            } else {
                write_double(s, f)
            }
        }
        Value::Decimal(d) => write_decimal(s, d, scale_of(ty)),
        Value::Str(r) => match ty {
            // BYTES read as UTF-8, as Flink's CAST(BYTES AS STRING) does
            DataType::Bytes => s.push_str(&String::from_utf8_lossy(
                tillflow_types::value::heap_bytes(heap, r),
            )),
            // MAP as Flink prints it: {k1=v1, k2=v2}
            DataType::Map(kt, vt) => {
                s.push('{');
                for (i, (k, v)) in
                    tillflow_types::nested::map_entries(heap, r, *kt, *vt).enumerate()
                {
                    if i > 0 {
                        s.push_str(", ");
                    }
                    write_text(s, k, *kt, heap);
                    s.push('=');
                    write_text(s, v, *vt, heap);
                }
                s.push('}');
            }
            // ROW as Flink casts it to text: (v1, v2); ARRAY and MULTISET: [v1, v2]
            DataType::Row(rt) => {
                s.push('(');
                for (i, (_, t)) in rt.fields.iter().enumerate() {
                    if i > 0 {
                        s.push_str(", ");
                    }
                    write_text(
                        s,
                        tillflow_types::nested::row_field(heap, r, rt, i),
                        *t,
                        heap,
                    );
                }
                s.push(')');
            }
            DataType::Array(t) | DataType::Multiset(t) => {
                s.push('[');
                for (i, e) in tillflow_types::nested::elements(heap, r, *t).enumerate() {
                    if i > 0 {
                        s.push_str(", ");
                    }
                    write_text(s, e, *t, heap);
                }
                s.push(']');
            }
            _ => s.push_str(heap_str(heap, r)),
        },
        Value::Timestamp(t) => {
            let p = match ty {
                DataType::Timestamp(p) | DataType::TimestampLtz(p) => p,
                _ => 3,
            };
            temporal::write_timestamp_sql(s, t, p)
        }
        Value::Date(d) => temporal::write_date_sql(s, d),
        Value::Time(t) => temporal::write_time_sql(
            s,
            t,
            Some(match ty {
                DataType::Time(p) => p,
                _ => 0,
            }),
        ),
        Value::Interval(i) => {
            let _ = write!(s, "{}", i as f64 / MICROS_PER_SECOND as f64);
        }
        Value::Months(m) => {
            let _ = write!(s, "{m}");
        }
    }
}

/// Appends an unscaled decimal with `scale` fractional digits (`12.30`).
pub fn write_decimal(s: &mut String, d: i128, scale: u8) {
    if scale == 0 {
        let _ = write!(s, "{d}");
        return;
    }
    let div = 10i128.pow(scale as u32);
    if d < 0 {
        s.push('-');
    }
    let a = d.unsigned_abs();
    let _ = write!(
        s,
        "{}.{:0width$}",
        a / div as u128,
        a % div as u128,
        width = scale as usize
    );
}

/// Parses decimal text into an unscaled value at `scale`.
pub fn parse_decimal(text: &str, scale: u8) -> Option<i128> {
    let t = text.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().all(|c| c.is_ascii_digit()) || !frac.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut v: i128 = 0;
    for c in int.bytes() {
        v = v.checked_mul(10)?.checked_add((c - b'0') as i128)?;
    }
    let mut fs: u8 = 0;
    for c in frac.bytes() {
        v = v.checked_mul(10)?.checked_add((c - b'0') as i128)?;
        fs = fs.checked_add(1)?;
    }
    let v = rescale(v, fs, scale);
    Some(if neg { -v } else { v })
}

fn as_f64(v: Value, ty: DataType) -> Option<f64> {
    match v {
        Value::Int(i) => Some(i as f64),
        Value::Float(f) => Some(f),
        Value::Decimal(d) => Some(d as f64 / 10f64.powi(scale_of(ty) as i32)),
        Value::Bool(b) => Some(b as i64 as f64),
        _ => None,
    }
}

fn bad(v: &str, to: DataType) -> RuntimeError {
    RuntimeError::Eval(format!("cannot cast '{v}' to {to}"))
}

thread_local! {
    static TEXT: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Converts `v` of type `from` to type `to`; strings are read from and written to `heap`.
pub fn cast_value(v: Value, from: DataType, to: DataType, heap: &mut Vec<u8>) -> Result<Value> {
    if v.is_null() || from == to {
        return Ok(v);
    }
    use DataType as T;
    Ok(match to {
        // the string's UTF-8 bytes
        T::Bytes => match v {
            Value::Str(r) if from.is_string() => Value::Str(r),
            _ => return Err(bad(&format!("{v:?}"), to)),
        },
        T::Map(..) | T::Row(_) | T::Array(_) | T::Multiset(_) => {
            return Err(bad(&format!("{v:?}"), to))
        }
        T::String(_) => TEXT.with(|buf| {
            // one reused buffer per thread: no allocation per record
            let mut s = buf.borrow_mut();
            s.clear();
            write_text(&mut s, v, from, heap);
            let off = heap.len() as u32;
            heap.extend_from_slice(s.as_bytes());
            Value::Str(StrRef {
                off,
                len: s.len() as u32,
            })
        }),
        T::TinyInt | T::SmallInt | T::Int | T::BigInt => match v {
            Value::Int(i) => Value::Int(narrow(i, to)),
            // as Java's (int) / (long): saturating at the int (or long) range, NaN 0; TINYINT
            // and SMALLINT then wrap from the int, as Java narrows int to byte and short
            Value::Float(f) => Value::Int(match to {
                T::BigInt => f as i64,
                _ => narrow(f as i32 as i64, to),
            }),
            Value::Decimal(d) => Value::Int(narrow(rescale_trunc(d, scale_of(from)) as i64, to)),
            Value::Bool(b) => Value::Int(b as i64),
            Value::Timestamp(t) => Value::Int(t.div_euclid(MICROS_PER_SECOND)),
            Value::Str(r) => {
                let s = heap_str(heap, r).trim();
                let i: i64 = s.parse().map_err(|_| bad(s, to))?;
                if narrow(i, to) != i {
                    return Err(bad(s, to));
                }
                Value::Int(i)
            }
            _ => return Err(bad(&format!("{v:?}"), to)),
        },
        T::Float | T::Double => match v {
            Value::Str(r) => {
                let s = heap_str(heap, r).trim();
                let f: f64 = s.parse().map_err(|_| bad(s, to))?;
                Value::Float(if to == T::Float { f as f32 as f64 } else { f })
            }
            other => {
                let f = as_f64(other, from).ok_or_else(|| bad(&format!("{v:?}"), to))?;
                Value::Float(if to == T::Float { f as f32 as f64 } else { f })
            }
        },
        T::Decimal(p, s) => {
            let d = match v {
                Value::Int(i) => rescale(i as i128, 0, s),
                Value::Decimal(d) => rescale(d, scale_of(from), s),
                Value::Float(f) => {
                    let scaled = (f * 10f64.powi(s as i32)).round();
                    if !scaled.is_finite() {
                        return Err(bad(&f.to_string(), to));
                    }
                    scaled as i128
                }
                Value::Str(r) => {
                    let t = heap_str(heap, r);
                    parse_decimal(t, s).ok_or_else(|| bad(t, to))?
                }
                _ => return Err(bad(&format!("{v:?}"), to)),
            };
            if d.unsigned_abs() >= 10u128.pow(p as u32) {
                // Flink returns NULL when a value does not fit the precision.
                return Ok(Value::Null);
            }
            Value::Decimal(d)
        }
        T::Boolean => match v {
            Value::Int(i) => Value::Bool(i != 0),
            Value::Str(r) => {
                let s = heap_str(heap, r).trim();
                match s.to_ascii_lowercase().as_str() {
                    "true" | "t" | "yes" | "y" | "1" => Value::Bool(true),
                    "false" | "f" | "no" | "n" | "0" => Value::Bool(false),
                    _ => return Err(bad(s, to)),
                }
            }
            _ => return Err(bad(&format!("{v:?}"), to)),
        },
        T::Timestamp(p) | T::TimestampLtz(p) => match v {
            Value::Timestamp(t) => Value::Timestamp(temporal::truncate_to_precision(t, p)),
            Value::Date(d) => Value::Timestamp(d as i64 * MICROS_PER_DAY),
            Value::Int(secs) => Value::Timestamp(secs.saturating_mul(MICROS_PER_SECOND)),
            Value::Str(r) => {
                let s = heap_str(heap, r);
                let t = temporal::parse_timestamp(s).ok_or_else(|| bad(s, to))?;
                Value::Timestamp(temporal::truncate_to_precision(t, p))
            }
            _ => return Err(bad(&format!("{v:?}"), to)),
        },
        T::Date => match v {
            Value::Timestamp(t) => Value::Date(t.div_euclid(MICROS_PER_DAY) as i32),
            Value::Str(r) => {
                let s = heap_str(heap, r);
                match temporal::parse_date(s) {
                    Some(d) => Value::Date(d),
                    None => Value::Date(
                        temporal::parse_timestamp(s)
                            .ok_or_else(|| bad(s, to))?
                            .div_euclid(MICROS_PER_DAY) as i32,
                    ),
                }
            }
            _ => return Err(bad(&format!("{v:?}"), to)),
        },
        T::Time(_) => match v {
            Value::Timestamp(t) => Value::Time(t.rem_euclid(MICROS_PER_DAY)),
            Value::Str(r) => {
                let s = heap_str(heap, r);
                Value::Time(temporal::parse_time(s).ok_or_else(|| bad(s, to))?)
            }
            _ => return Err(bad(&format!("{v:?}"), to)),
        },
        T::IntervalDayTime | T::IntervalYearMonth | T::Null => {
            return Err(bad(&format!("{v:?}"), to));
        }
    })
}

fn rescale_trunc(d: i128, scale: u8) -> i128 {
    d / 10i128.pow(scale as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casts_follow_flink() {
        let mut heap = Vec::new();
        let s = tillflow_types::value::push_str(&mut heap, " 42 ");
        assert_eq!(
            cast_value(
                Value::Str(s),
                DataType::String(None),
                DataType::Int,
                &mut heap
            )
            .unwrap(),
            Value::Int(42)
        );
        let bad = tillflow_types::value::push_str(&mut heap, "x");
        assert!(cast_value(
            Value::Str(bad),
            DataType::String(None),
            DataType::Int,
            &mut heap
        )
        .is_err());
        let v = cast_value(
            Value::Float(1.5),
            DataType::Double,
            DataType::String(None),
            &mut heap,
        )
        .unwrap();
        match v {
            Value::Str(r) => assert_eq!(heap_str(&heap, r), "1.5"),
            _ => panic!(),
        }
        assert_eq!(
            cast_value(
                Value::Float(2.345),
                DataType::Double,
                DataType::Decimal(10, 2),
                &mut heap
            )
            .unwrap(),
            Value::Decimal(235)
        );
        assert_eq!(parse_decimal("-1.5", 2), Some(-150));
        let mut s = String::new();
        write_decimal(&mut s, -5, 2);
        assert_eq!(s, "-0.05");
    }
}
