//! Scalar values as Flink's JSON and CSV formats write them.

use tillflow_runtime::cast::write_decimal;
use tillflow_types::javafmt::{write_double, write_float};
use tillflow_types::temporal::{write_date_sql, write_time_sql, write_timestamp_json};
use tillflow_types::{DataType, Value};

/// Appends a DECIMAL as Jackson writes a normalized `BigDecimal` (trailing zeros stripped,
/// `1E+2` for an integer with stripped zeros), or plainly when `plain`.
pub fn write_decimal_json(out: &mut String, unscaled: i128, scale: u8, plain: bool) {
    if plain {
        write_decimal(out, unscaled, scale);
        return;
    }
    if unscaled == 0 {
        out.push('0');
        return;
    }
    let mut u = unscaled;
    let mut s = scale as i32;
    while u % 10 == 0 {
        u /= 10;
        s -= 1;
    }
    // BigDecimal.toString: plain if scale >= 0 and adjusted exponent >= -6
    let digits = u.unsigned_abs().to_string();
    let adjusted = digits.len() as i32 - 1 - s;
    if s >= 0 && adjusted >= -6 {
        if s == 0 {
            out.push_str(&u.to_string());
        } else {
            write_decimal(out, u, s as u8);
        }
    } else {
        if u < 0 {
            out.push('-');
        }
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('E');
        if adjusted > 0 {
            out.push('+');
        }
        out.push_str(&adjusted.to_string());
    }
}

/// Appends a non-string, non-null scalar as Flink's JSON writes it (no quotes for numbers and
/// booleans; temporal values are quoted by the caller's `quote_temporal`).
pub fn write_scalar(
    out: &mut String,
    v: Value,
    ty: DataType,
    iso: bool,
    plain_decimal: bool,
    quote_temporal: bool,
) {
    let q = |out: &mut String| {
        if quote_temporal {
            out.push('"')
        }
    };
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        Value::Int(i) => {
            use std::fmt::Write;
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => {
            if ty == DataType::Float {
                write_float(out, f as f32)
            } else {
                write_double(out, f)
            }
        }
        Value::Decimal(d) => {
            let scale = match ty {
                DataType::Decimal(_, s) => s,
                _ => 0,
            };
            write_decimal_json(out, d, scale, plain_decimal)
        }
        Value::Timestamp(t) => {
            q(out);
            write_timestamp_json(out, t, iso, matches!(ty, DataType::TimestampLtz(_)));
            q(out);
        }
        Value::Date(d) => {
            q(out);
            write_date_sql(out, d);
            q(out);
        }
        Value::Time(t) => {
            q(out);
            write_time_sql(out, t, None);
            q(out);
        }
        Value::Interval(i) => {
            use std::fmt::Write;
            let _ = write!(out, "{i}");
        }
        Value::Months(m) => {
            use std::fmt::Write;
            let _ = write!(out, "{m}");
        }
        Value::Str(_) => {}
    }
}

/// Appends `s` as a JSON string literal (escaped as Flink's Jackson writes it).
pub fn write_json_string(out: &mut String, s: &str) {
    tillflow_runtime::json::quote(s, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(u: i128, s: u8) -> String {
        let mut o = String::new();
        write_decimal_json(&mut o, u, s, false);
        o
    }

    #[test]
    fn decimals_like_jackson() {
        assert_eq!(dec(1250, 2), "12.5");
        assert_eq!(dec(10000, 2), "1E+2");
        assert_eq!(dec(0, 2), "0");
        assert_eq!(dec(-5, 2), "-0.05");
        assert_eq!(dec(12345, 0), "12345");
    }

    #[test]
    fn strings_are_escaped() {
        let mut o = String::new();
        write_json_string(&mut o, "a\"b\\\n\u{1}é");
        assert_eq!(o, "\"a\\\"b\\\\\\n\\u0001é\"");
    }
}
