//! Java's `Double.toString` / `Float.toString`, which Flink's JSON and CSV formats write.
//!
//! Java prints the shortest decimal that round-trips (JDK 19+), in plain notation for magnitudes in
//! `[1e-3, 1e7)` (`3.0`, `0.6000000000000001`) and in computerized scientific notation otherwise
//! (`9.999999E7`, `1.0E-4`). Rust's `{:e}` gives the same shortest digits; this module lays them out.

use std::fmt::Write;

/// Appends `v` formatted as Java's `Double.toString(v)`.
pub fn write_double(out: &mut String, v: f64) {
    if write_cents_fast(out, v) {
        return;
    }
    let mut buf = [0u8; 40];
    let sci = {
        let mut w = SliceWriter {
            buf: &mut buf,
            len: 0,
        };
        let _ = write!(w, "{v:e}");
        w.len
    };
    layout(out, v, &buf[..sci]);
}

/// Money-like values (at most two decimals, between 0.01 and 10^7): when `k / 100` is exactly this
/// double, that decimal is its shortest round-trip form, so it can be written without the general
/// shortest-digits algorithm.
#[inline]
fn write_cents_fast(out: &mut String, v: f64) -> bool {
    let a = v.abs();
    if !(0.01..1e7).contains(&a) {
        return false;
    }
    let k = (a * 100.0).round();
    if k / 100.0 != a {
        return false;
    }
    let k = k as u64;
    let (int, frac) = (k / 100, k % 100);
    if v < 0.0 {
        out.push('-');
    }
    push_uint(out, int);
    out.push('.');
    out.push((b'0' + (frac / 10) as u8) as char);
    if frac % 10 != 0 {
        out.push((b'0' + (frac % 10) as u8) as char);
    }
    true
}

/// Appends `v` formatted as Java's `Float.toString(v)`.
pub fn write_float(out: &mut String, v: f32) {
    let mut buf = [0u8; 40];
    let sci = {
        let mut w = SliceWriter {
            buf: &mut buf,
            len: 0,
        };
        let _ = write!(w, "{v:e}");
        w.len
    };
    layout(out, v as f64, &buf[..sci]);
}

struct SliceWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

fn layout(out: &mut String, v: f64, sci: &[u8]) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    if v == 0.0 {
        out.push_str(if v.is_sign_negative() { "-0.0" } else { "0.0" });
        return;
    }
    // sci is like "-1.2345e-7" or "3e0"
    let (neg, rest) = match sci.first() {
        Some(b'-') => (true, &sci[1..]),
        _ => (false, sci),
    };
    let epos = rest.iter().position(|&c| c == b'e').unwrap_or(rest.len());
    let mantissa = &rest[..epos];
    let exp: i32 = std::str::from_utf8(rest.get(epos + 1..).unwrap_or(b"0"))
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut digits = [0u8; 24];
    let mut nd = 0;
    for &c in mantissa {
        if c.is_ascii_digit() && nd < digits.len() {
            digits[nd] = c;
            nd += 1;
        }
    }
    let digits = &digits[..nd];
    if neg {
        out.push('-');
    }
    if (-3..7).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                push_digits(out, digits);
                for _ in digits.len()..int_len {
                    out.push('0');
                }
                out.push_str(".0");
            } else {
                push_digits(out, &digits[..int_len]);
                out.push('.');
                push_digits(out, &digits[int_len..]);
            }
        } else {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            push_digits(out, digits);
        }
    } else {
        push_digits(out, &digits[..1]);
        out.push('.');
        if digits.len() > 1 {
            push_digits(out, &digits[1..]);
        } else {
            out.push('0');
        }
        let _ = write!(out, "E{exp}");
    }
}

fn push_digits(out: &mut String, d: &[u8]) {
    for &c in d {
        out.push(c as char);
    }
}

/// Appends the decimal digits of `v`, without the formatting machinery.
pub fn push_uint(out: &mut String, v: u64) {
    let mut digits = [0u8; 20];
    let mut i = 20;
    let mut x = v;
    loop {
        i -= 1;
        digits[i] = b'0' + (x % 10) as u8;
        x /= 10;
        if x == 0 {
            break;
        }
    }
    for &c in &digits[i..] {
        out.push(c as char);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(v: f64) -> String {
        let mut s = String::new();
        write_double(&mut s, v);
        s
    }

    #[test]
    fn money_fast_path_agrees_with_the_general_one() {
        for k in (1..200_000u64)
            .step_by(7)
            .chain([1, 10, 99, 100, 101, 999_999_999])
        {
            let v = k as f64 / 100.0;
            for x in [v, -v] {
                let mut fast = String::new();
                assert!(write_cents_fast(&mut fast, x) || (k as f64 / 100.0) != x.abs());
                let mut slow = String::new();
                let mut buf = [0u8; 40];
                let n = {
                    let mut w = SliceWriter {
                        buf: &mut buf,
                        len: 0,
                    };
                    let _ = write!(w, "{x:e}");
                    w.len
                };
                layout(&mut slow, x, &buf[..n]);
                assert_eq!(fast, slow, "{x}");
            }
        }
    }

    #[test]
    fn matches_java() {
        assert_eq!(d(3.0), "3.0");
        assert_eq!(d(0.1 + 0.5), "0.6");
        assert_eq!(d(0.2 + 0.4), "0.6000000000000001");
        assert_eq!(d(9.999999e7), "9.999999E7");
        assert_eq!(d(1e7), "1.0E7");
        assert_eq!(d(1234567.0), "1234567.0");
        assert_eq!(d(0.001), "0.001");
        assert_eq!(d(0.0001), "1.0E-4");
        assert_eq!(d(-137.85000000000002), "-137.85000000000002");
        assert_eq!(d(100.0), "100.0");
        assert_eq!(d(f64::NAN), "NaN");
        let mut s = String::new();
        write_float(&mut s, 1.1f32);
        assert_eq!(s, "1.1");
    }
}
