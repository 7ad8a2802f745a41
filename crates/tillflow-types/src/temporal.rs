//! Calendar arithmetic and the text forms of DATE, TIME and TIMESTAMP values.
//!
//! Timestamps are microseconds since 1970-01-01 00:00:00 (UTC wall clock). Parsing accepts Flink's
//! SQL form (`2024-03-01 20:00:00.485`) and the ISO-8601 form (`2024-03-01T20:00:00.485Z`);
//! formatting writes into a caller's buffer so that encoders do not allocate per record.

use std::fmt::Write;

/// Microseconds in one second.
pub const MICROS_PER_SECOND: i64 = 1_000_000;
/// Microseconds in one millisecond.
pub const MICROS_PER_MILLI: i64 = 1_000;
/// Microseconds in one day.
pub const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a day number since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days in a month of a year.
pub fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 {
                29
            } else {
                28
            }
        }
    }
}

fn digits(b: &[u8], i: &mut usize, n: usize) -> Option<u32> {
    let mut v = 0u32;
    for _ in 0..n {
        let c = *b.get(*i)?;
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u32;
        *i += 1;
    }
    Some(v)
}

fn parse_date_at(b: &[u8], i: &mut usize) -> Option<i64> {
    let y = digits(b, i, 4)? as i64;
    if b.get(*i) != Some(&b'-') {
        return None;
    }
    *i += 1;
    let m = digits(b, i, 2)?;
    if b.get(*i) != Some(&b'-') {
        return None;
    }
    *i += 1;
    let d = digits(b, i, 2)?;
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// Parses `HH:MM[:SS[.fffffffff]]` at `i`, returning microseconds of the day.
fn parse_time_at(b: &[u8], i: &mut usize) -> Option<i64> {
    let h = digits(b, i, 2)? as i64;
    if b.get(*i) != Some(&b':') {
        return None;
    }
    *i += 1;
    let mi = digits(b, i, 2)? as i64;
    let mut s = 0i64;
    let mut micros = 0i64;
    if b.get(*i) == Some(&b':') {
        *i += 1;
        s = digits(b, i, 2)? as i64;
        if b.get(*i) == Some(&b'.') {
            *i += 1;
            let mut scale = 100_000i64;
            let start = *i;
            while let Some(c) = b.get(*i).filter(|c| c.is_ascii_digit()) {
                micros += (*c - b'0') as i64 * scale;
                scale /= 10;
                *i += 1;
            }
            if *i == start || *i - start > 9 {
                return None;
            }
        }
    }
    if h > 23 || mi > 59 || s > 59 {
        return None;
    }
    Some(((h * 60 + mi) * 60 + s) * MICROS_PER_SECOND + micros)
}

/// Parses a DATE `YYYY-MM-DD` into days since the epoch.
pub fn parse_date(s: &str) -> Option<i32> {
    let b = s.trim().as_bytes();
    let mut i = 0;
    let d = parse_date_at(b, &mut i)?;
    (i == b.len()).then_some(d as i32)
}

/// Parses a TIME `HH:MM[:SS[.f]]` into microseconds of the day.
pub fn parse_time(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    let mut i = 0;
    let t = parse_time_at(b, &mut i)?;
    (i == b.len()).then_some(t)
}

/// Parses a timestamp in either Flink form: `YYYY-MM-DD HH:MM:SS[.f]` or ISO-8601
/// `YYYY-MM-DDTHH:MM:SS[.f][Z]`. A date alone is midnight. Returns microseconds since the epoch.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    if let Some(t) = parse_millis_fast(s.as_bytes()) {
        return Some(t);
    }
    let b = s.trim().as_bytes();
    let mut i = 0;
    let days = parse_date_at(b, &mut i)?;
    let mut tod = 0;
    if i < b.len() {
        if b[i] != b' ' && b[i] != b'T' {
            return None;
        }
        i += 1;
        tod = parse_time_at(b, &mut i)?;
        if i < b.len() && b[i] == b'Z' {
            i += 1;
        }
    }
    (i == b.len()).then_some(days * MICROS_PER_DAY + tod)
}

/// The common layout `YYYY-MM-DD HH:MM:SS.mmm` (or with `T`), parsed without branching per
/// character; anything else returns `None` and takes the general path.
#[inline]
fn parse_millis_fast(b: &[u8]) -> Option<i64> {
    let b: &[u8; 23] = b.try_into().ok()?;
    if b[4] != b'-'
        || b[7] != b'-'
        || (b[10] != b' ' && b[10] != b'T')
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'.'
    {
        return None;
    }
    let d = |i: usize| b[i].wrapping_sub(b'0') as u32;
    const DIGITS: [usize; 17] = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22];
    if DIGITS.iter().any(|&i| d(i) > 9) {
        return None;
    }
    let y = (d(0) * 1000 + d(1) * 100 + d(2) * 10 + d(3)) as i64;
    let (m, day) = (d(5) * 10 + d(6), d(8) * 10 + d(9));
    let (h, mi, sec) = (
        (d(11) * 10 + d(12)) as i64,
        (d(14) * 10 + d(15)) as i64,
        (d(17) * 10 + d(18)) as i64,
    );
    let ms = (d(20) * 100 + d(21) * 10 + d(22)) as i64;
    if !(1..=12).contains(&m)
        || day == 0
        || day > days_in_month(y, m)
        || h > 23
        || mi > 59
        || sec > 59
    {
        return None;
    }
    Some(
        days_from_civil(y, m, day) * MICROS_PER_DAY
            + ((h * 60 + mi) * 60 + sec) * MICROS_PER_SECOND
            + ms * MICROS_PER_MILLI,
    )
}

/// Splits microseconds since the epoch into (days, microseconds of day).
#[inline]
pub fn split_micros(ts: i64) -> (i64, i64) {
    (ts.div_euclid(MICROS_PER_DAY), ts.rem_euclid(MICROS_PER_DAY))
}

/// Appends `v` as exactly `width` decimal digits (zero-padded; `v` must fit).
#[inline]
fn push_digits(out: &mut String, v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut x = v;
    for i in (20 - width..20).rev() {
        buf[i] = b'0' + (x % 10) as u8;
        x /= 10;
    }
    for &c in &buf[20 - width..] {
        out.push(c as char);
    }
}

fn write_date(out: &mut String, days: i64) {
    let (y, m, d) = civil_from_days(days);
    if (0..10_000).contains(&y) {
        push_digits(out, y as u64, 4);
    } else {
        let _ = write!(out, "{y:04}");
    }
    out.push('-');
    push_digits(out, m as u64, 2);
    out.push('-');
    push_digits(out, d as u64, 2);
}

fn write_hms(out: &mut String, tod: i64) {
    let secs = (tod / MICROS_PER_SECOND) as u64;
    push_digits(out, secs / 3600, 2);
    out.push(':');
    push_digits(out, (secs / 60) % 60, 2);
    out.push(':');
    push_digits(out, secs % 60, 2);
}

/// Appends the fraction of `tod` (microseconds) with trailing zeros removed; nothing for whole seconds.
fn write_fraction_trimmed(out: &mut String, tod: i64) {
    let mut frac = (tod % MICROS_PER_SECOND) as u64;
    if frac == 0 {
        return;
    }
    let mut width = 6;
    while frac.is_multiple_of(10) {
        frac /= 10;
        width -= 1;
    }
    out.push('.');
    push_digits(out, frac, width);
}

/// Appends the fraction of `tod` padded to `precision` digits (0 writes nothing).
fn write_fraction_fixed(out: &mut String, tod: i64, precision: u8) {
    if precision == 0 {
        return;
    }
    let p = precision.min(9) as usize;
    let micros = tod % MICROS_PER_SECOND;
    let mut digits = [b'0'; 9];
    let mut v = micros;
    for k in (0..6).rev() {
        digits[k] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.push('.');
    out.push_str(std::str::from_utf8(&digits[..p]).unwrap_or(""));
}

/// Appends a timestamp as Flink's JSON format writes it: `YYYY-MM-DD HH:MM:SS[.f]`, the fraction
/// without trailing zeros (`iso` uses a `T` separator). `ltz` appends `Z`.
pub fn write_timestamp_json(out: &mut String, ts: i64, iso: bool, ltz: bool) {
    let (days, tod) = split_micros(ts);
    write_date(out, days);
    out.push(if iso { 'T' } else { ' ' });
    write_hms(out, tod);
    write_fraction_trimmed(out, tod);
    if ltz {
        out.push('Z');
    }
}

/// Appends a timestamp as Flink's `CAST(ts AS STRING)` does: the fraction padded to `precision`.
pub fn write_timestamp_sql(out: &mut String, ts: i64, precision: u8) {
    let (days, tod) = split_micros(ts);
    write_date(out, days);
    out.push(' ');
    write_hms(out, tod);
    write_fraction_fixed(out, tod, precision);
}

/// Appends a DATE as `YYYY-MM-DD`.
pub fn write_date_sql(out: &mut String, days: i32) {
    write_date(out, days as i64);
}

/// Appends a TIME as `HH:MM:SS[.f]`, padded to `precision` (as CAST does) or trimmed when `None`.
pub fn write_time_sql(out: &mut String, tod: i64, precision: Option<u8>) {
    write_hms(out, tod);
    match precision {
        Some(p) => write_fraction_fixed(out, tod, p),
        None => write_fraction_trimmed(out, tod),
    }
}

/// Truncates a timestamp to `precision` fractional digits (0..=6 are exact; more keep microseconds).
pub fn truncate_to_precision(ts: i64, precision: u8) -> i64 {
    if precision >= 6 {
        return ts;
    }
    let unit = 10i64.pow(6 - precision as u32);
    ts - ts.rem_euclid(unit)
}

/// A Flink duration (`'5 s'`, `'500ms'`, `'1 min'`, `'2h'`, or bare milliseconds) in µs.
pub fn parse_duration_micros(text: &str) -> Option<i64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: i64 = t[..split].parse().ok()?;
    let unit = t[split..].trim().to_ascii_lowercase();
    let ms = match unit.as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
        "min" | "m" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(ms)?.checked_mul(1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(ts: i64) -> String {
        let mut s = String::new();
        write_timestamp_json(&mut s, ts, false, false);
        s
    }

    #[test]
    fn round_trips_flink_forms() {
        let ts = parse_timestamp("2024-03-01 20:00:17.890").unwrap();
        assert_eq!(json(ts), "2024-03-01 20:00:17.89");
        assert_eq!(
            json(parse_timestamp("2024-03-01 20:00:00").unwrap()),
            "2024-03-01 20:00:00"
        );
        assert_eq!(
            parse_timestamp("2024-03-01T20:00:00.5Z"),
            parse_timestamp("2024-03-01 20:00:00.500")
        );
        let mut s = String::new();
        write_timestamp_sql(&mut s, ts, 3);
        assert_eq!(s, "2024-03-01 20:00:17.890");
        assert_eq!(json(-1), "1969-12-31 23:59:59.999999");
    }

    #[test]
    fn rejects_bad_dates() {
        assert!(parse_timestamp("2024-02-30 00:00:00").is_none());
        assert!(parse_timestamp("2024-03-01 25:00:00").is_none());
        assert!(parse_timestamp("yesterday").is_none());
        assert_eq!(parse_date("1970-01-02"), Some(1));
    }

    #[test]
    fn civil_round_trip() {
        for d in [-800_000i64, -1, 0, 59, 19_783, 2_932_896] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }
}

#[cfg(test)]
mod fast_path_tests {
    use super::*;

    #[test]
    fn fast_path_matches_general_parser() {
        for s in [
            "2024-03-01 20:00:17.890",
            "1999-12-31T23:59:59.999",
            "2024-02-29 00:00:00.000",
            "1970-01-01 00:00:00.001",
        ] {
            let fast = parse_millis_fast(s.as_bytes());
            let b = s.as_bytes();
            let mut i = 0;
            let days = parse_date_at(b, &mut i).unwrap();
            i += 1;
            let tod = parse_time_at(b, &mut i).unwrap();
            assert_eq!(fast, Some(days * MICROS_PER_DAY + tod), "{s}");
        }
        for s in [
            "2023-02-29 00:00:00.000",
            "2024-03-01 24:00:00.000",
            "2024-03-01 20:00:00.00x",
            "2024-03-01 20:00:00.0",
        ] {
            assert_eq!(parse_millis_fast(s.as_bytes()), None, "{s}");
        }
    }
}
