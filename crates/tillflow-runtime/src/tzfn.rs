//! CONVERT_TZ and TIMESTAMPADD.
//!
//! Time zones come from the IANA database bundled into the binary (through `jiff`), so every
//! machine converts alike, and are looked up as Java's `TimeZone.getTimeZone` does: region names,
//! `GMT+hh:mm` custom ids, Java's old three-letter ids, and GMT for anything unknown.

use crate::error::{Result, RuntimeError};
use crate::functions::{add_months, TimeUnit};
use jiff::tz::{Offset, TimeZone};
use std::fmt::Write;
use tillflow_types::temporal::{civil_from_days, split_micros, MICROS_PER_DAY, MICROS_PER_SECOND};
use tillflow_types::value::heap_str;
use tillflow_types::{DataType, Value};

/// Java's `TimeZone.getTimeZone(id)`: unknown ids are GMT.
pub fn java_zone(id: &str) -> TimeZone {
    if let Some(rest) = id.strip_prefix("GMT").filter(|r| !r.is_empty()) {
        return custom_offset(rest).unwrap_or(TimeZone::UTC);
    }
    // Java's deprecated three-letter ids (ZoneInfo's old mappings)
    let mapped = match id {
        "PST" => "America/Los_Angeles",
        "PDT" => "America/Los_Angeles",
        "CST" => "America/Chicago",
        "IST" => "Asia/Kolkata",
        "JST" => "Asia/Tokyo",
        "ECT" => "Europe/Paris",
        "CTT" => "Asia/Shanghai",
        "AET" => "Australia/Sydney",
        "ACT" => "Australia/Darwin",
        "AGT" => "America/Argentina/Buenos_Aires",
        "ART" => "Africa/Cairo",
        "AST" => "America/Anchorage",
        "BET" => "America/Sao_Paulo",
        "BST" => "Asia/Dhaka",
        "CAT" => "Africa/Harare",
        "CNT" => "America/St_Johns",
        "EAT" => "Africa/Addis_Ababa",
        "IET" => "America/Indiana/Indianapolis",
        "MIT" => "Pacific/Apia",
        "NET" => "Asia/Yerevan",
        "NST" => "Pacific/Auckland",
        "PLT" => "Asia/Karachi",
        "PNT" => "America/Phoenix",
        "PRT" => "America/Puerto_Rico",
        "SST" => "Pacific/Guadalcanal",
        "VST" => "Asia/Ho_Chi_Minh",
        "EST" => return TimeZone::fixed(Offset::constant(-5)),
        "MST" => return TimeZone::fixed(Offset::constant(-7)),
        "HST" => return TimeZone::fixed(Offset::constant(-10)),
        other => other,
    };
    TimeZone::get(mapped).unwrap_or(TimeZone::UTC)
}

/// `+h`, `+hh`, `+hhmm`, `+h:mm`, `+hh:mm` after GMT.
fn custom_offset(s: &str) -> Option<TimeZone> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) if (1..=2).contains(&h.len()) && m.len() == 2 => (h, m),
        Some(_) => return None,
        None if rest.len() <= 2 => (rest, "0"),
        None if rest.len() == 4 => (&rest[..2], &rest[2..]),
        None => return None,
    };
    if !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) || h.is_empty() {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if h > 23 || m > 59 {
        return None;
    }
    let secs = sign * (h * 3600 + m * 60);
    Offset::from_seconds(secs).ok().map(TimeZone::fixed)
}

/// Parses `yyyy-MM-dd HH:mm:ss` (trailing text ignored, as `SimpleDateFormat.parse` does).
fn parse_local(s: &str) -> Option<jiff::civil::DateTime> {
    let b = s.as_bytes();
    let num = |a: usize, n: usize| -> Option<i64> {
        let t = b.get(a..a + n)?;
        t.iter()
            .all(u8::is_ascii_digit)
            .then(|| std::str::from_utf8(t).ok()?.parse().ok())?
    };
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || b.get(10) != Some(&b' ') {
        return None;
    }
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    let dt = jiff::civil::DateTime::new(
        i16::try_from(num(0, 4)?).ok()?,
        i8::try_from(num(5, 2)?).ok()?,
        i8::try_from(num(8, 2)?).ok()?,
        i8::try_from(num(11, 2)?).ok()?,
        i8::try_from(num(14, 2)?).ok()?,
        i8::try_from(num(17, 2)?).ok()?,
        0,
    )
    .ok()?;
    Some(dt)
}

/// CONVERT_TZ(text, from, to) on non-NULL strings.
pub fn convert_tz(v: &[Value], out: &mut Vec<u8>) -> Result<Value> {
    let (Value::Str(s), Value::Str(from), Value::Str(to)) = (v[0], v[1], v[2]) else {
        return Ok(Value::Null);
    };
    let Some(local) = parse_local(heap_str(out, s)) else {
        return Ok(Value::Null);
    };
    let from = java_zone(heap_str(out, from));
    let to = java_zone(heap_str(out, to));
    let ts = from
        .to_ambiguous_timestamp(local)
        // java.util.Calendar: a time in a gap moves forward, one in a fold is the later one
        .later()
        .map_err(|e| RuntimeError::Eval(format!("CONVERT_TZ: {e}")))?;
    let dt = to.to_datetime(ts);
    let mut buf = String::with_capacity(19);
    let _ = write!(
        buf,
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    );
    Ok(Value::Str(tillflow_types::value::push_str(out, &buf)))
}

/// TIMESTAMPADD(unit, n, t) on non-NULL values; `ty` is the type of `t`.
pub fn timestamp_add(u: TimeUnit, n: Value, t: Value, ty: DataType) -> Result<Value> {
    let Value::Int(n) = n else {
        return Ok(Value::Null);
    };
    let overflow = || RuntimeError::Eval(format!("TIMESTAMPADD: {n} {u:?} overflows"));
    let add = |micros: i64| -> Result<i64> {
        let months = match u {
            TimeUnit::Year => Some(n.checked_mul(12).ok_or_else(overflow)?),
            TimeUnit::Quarter => Some(n.checked_mul(3).ok_or_else(overflow)?),
            TimeUnit::Month => Some(n),
            _ => None,
        };
        match months {
            Some(m) => Ok(add_months(
                micros,
                i32::try_from(m).map_err(|_| overflow())?,
            )),
            None => {
                let unit = u.fixed_micros().ok_or_else(|| {
                    RuntimeError::Eval(format!("TIMESTAMPADD: unsupported unit {u:?}"))
                })?;
                n.checked_mul(unit)
                    .and_then(|d| micros.checked_add(d))
                    .ok_or_else(overflow)
            }
        }
    };
    Ok(match (t, ty) {
        (Value::Date(d), _) => {
            let r = add(d as i64 * MICROS_PER_DAY)?;
            Value::Date(i32::try_from(r.div_euclid(MICROS_PER_DAY)).map_err(|_| overflow())?)
        }
        (Value::Timestamp(ts), _) => Value::Timestamp(add(ts)?),
        (Value::Time(t), _) => Value::Time(add(t)?.rem_euclid(MICROS_PER_DAY)),
        _ => Value::Null,
    })
}

/// The civil fields of a timestamp (for tests and formatting).
pub fn civil(t: i64) -> (i64, u32, u32, i64) {
    let (days, tod) = split_micros(t);
    let (y, m, d) = civil_from_days(days);
    (y, m, d, tod / MICROS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tillflow_types::value::push_str;

    fn conv(s: &str, a: &str, b: &str) -> Option<String> {
        let mut out = vec![];
        let v = [
            Value::Str(push_str(&mut out, s)),
            Value::Str(push_str(&mut out, a)),
            Value::Str(push_str(&mut out, b)),
        ];
        match convert_tz(&v, &mut out).unwrap() {
            Value::Str(r) => Some(heap_str(&out, r).to_owned()),
            _ => None,
        }
    }

    #[test]
    fn zones_as_java() {
        assert_eq!(
            conv("1970-01-01 00:00:00", "UTC", "America/Los_Angeles").as_deref(),
            Some("1969-12-31 16:00:00")
        );
        assert_eq!(
            conv("2024-01-01 00:00:00", "GMT+05:30", "UTC").as_deref(),
            Some("2023-12-31 18:30:00")
        );
        assert_eq!(
            conv("2024-01-01 00:00:00", "No/Such", "UTC").as_deref(),
            Some("2024-01-01 00:00:00")
        );
        assert_eq!(conv("garbage", "UTC", "UTC"), None);
    }
}
