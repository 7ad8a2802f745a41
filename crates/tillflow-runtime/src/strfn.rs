//! The string, hashing and regular-expression functions added for Flink 2.x compatibility
//! (LEFT, RIGHT, REVERSE, REPEAT, OVERLAY, SPLIT_INDEX, MD5, SHA*, TO_BASE64, FROM_BASE64, UUID,
//! REGEXP, REGEXP_EXTRACT, REGEXP_REPLACE, STR_TO_MAP).
//!
//! Results are written straight into the row's heap (`out`): a result that is part of an argument
//! is copied within the heap, hashes and encodings are written byte by byte, so none of these
//! allocates per record. Characters are counted as Flink counts them for text in the Basic
//! Multilingual Plane (Java `char`s); text beyond it counts as one character here.

use crate::error::{Result, RuntimeError};
use crate::functions::Func;
use crate::jregex::{JavaRegex, RegexError};
use tillflow_types::value::{heap_bytes, heap_str};
use tillflow_types::{StrRef, Value};

/// The longest string a function builds (REPEAT, LPAD, RPAD), in characters: 16 Mi. A longer
/// one fails naming the function and the limit instead of allocating gigabytes (Flink's limit
/// is Java's 2^31 − 1 characters, which no streaming row needs); docs/limits.md.
pub const MAX_BUILT_STRING: usize = 1 << 24;
const MAX_LEN: usize = MAX_BUILT_STRING;

fn span(out: &[u8], v: Value) -> Option<StrRef> {
    match v {
        Value::Str(r) => Some(r),
        _ => None,
    }
    .filter(|r| (r.off as usize + r.len as usize) <= out.len())
}

fn int(v: Value) -> i64 {
    match v {
        Value::Int(i) => i,
        _ => 0,
    }
}

/// Copies bytes `range` of the heap to its end and returns the new span.
fn copy(out: &mut Vec<u8>, start: usize, end: usize) -> Value {
    let off = out.len() as u32;
    out.extend_from_within(start..end);
    Value::Str(StrRef {
        off,
        len: (end - start) as u32,
    })
}

fn from(out: &[u8], start: usize) -> Value {
    Value::Str(StrRef {
        off: start as u32,
        len: (out.len() - start) as u32,
    })
}

/// The byte offset of character `n` in `s` (its length when `n` is past the end).
fn char_offset(s: &str, n: usize) -> usize {
    s.char_indices().nth(n).map(|(i, _)| i).unwrap_or(s.len())
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) -> Value {
    let start = out.len();
    for b in bytes {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
    from(out, start)
}

/// The digest of a string for MD5, SHA1, SHA2 and friends, as lowercase hex.
fn digest(func: Func, bits: i64, out: &mut Vec<u8>, r: StrRef) -> Result<Value> {
    use sha2::Digest;
    let data = heap_bytes(out, r);
    macro_rules! hash {
        ($h:ty) => {{
            let d = <$h>::digest(data);
            Ok(push_hex(out, &d))
        }};
    }
    let bits = match func {
        Func::Md5 => return hash!(md5::Md5),
        Func::Sha1 => return hash!(sha1::Sha1),
        Func::Sha224 => 224,
        Func::Sha256 => 256,
        Func::Sha384 => 384,
        Func::Sha512 => 512,
        _ => bits,
    };
    match bits {
        224 => hash!(sha2::Sha224),
        256 => hash!(sha2::Sha256),
        384 => hash!(sha2::Sha384),
        512 => hash!(sha2::Sha512),
        other => Err(RuntimeError::Eval(format!(
            "SHA2: unsupported hash length {other} (224, 256, 384 or 512)"
        ))),
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn to_base64(out: &mut Vec<u8>, r: StrRef) -> Value {
    let start = out.len();
    let (a, n) = (r.off as usize, r.len as usize);
    let mut i = 0;
    while i < n {
        let b0 = out[a + i];
        let b1 = if i + 1 < n { out[a + i + 1] } else { 0 };
        let b2 = if i + 2 < n { out[a + i + 2] } else { 0 };
        let w = ((b0 as u32) << 16) | ((b1 as u32) << 8) | b2 as u32;
        out.push(B64[(w >> 18) as usize & 63]);
        out.push(B64[(w >> 12) as usize & 63]);
        out.push(if i + 1 < n {
            B64[(w >> 6) as usize & 63]
        } else {
            b'='
        });
        out.push(if i + 2 < n {
            B64[w as usize & 63]
        } else {
            b'='
        });
        i += 3;
    }
    from(out, start)
}

/// Java's basic `Base64.getDecoder()`: the standard alphabet, padding optional, anything else an
/// error (Flink's job fails on it). The bytes are read as UTF-8 (bad sequences become U+FFFD).
fn from_base64(out: &mut Vec<u8>, r: StrRef) -> Result<Value> {
    let start = out.len();
    let (a, n) = (r.off as usize, r.len as usize);
    let mut acc = 0u32;
    let mut bits = 0;
    let mut pad = 0;
    for i in 0..n {
        let c = out[a + i];
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                pad += 1;
                continue;
            }
            other => {
                out.truncate(start);
                return Err(RuntimeError::Eval(format!(
                    "FROM_BASE64: illegal base64 character {other:x}"
                )));
            }
        };
        if pad > 0 {
            out.truncate(start);
            return Err(RuntimeError::Eval(
                "FROM_BASE64: input continues after padding".into(),
            ));
        }
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    if bits >= 6 || (pad > 0 && (n % 4 != 0 || pad > 2)) {
        out.truncate(start);
        return Err(RuntimeError::Eval(
            "FROM_BASE64: last unit does not have enough valid bits".into(),
        ));
    }
    if std::str::from_utf8(&out[start..]).is_err() {
        let fixed = String::from_utf8_lossy(&out[start..]).into_owned();
        out.truncate(start);
        out.extend_from_slice(fixed.as_bytes());
    }
    Ok(from(out, start))
}

fn uuid(out: &mut Vec<u8>) -> Result<Value> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| RuntimeError::Eval(format!("UUID: {e}")))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let start = out.len();
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push(b'-');
        }
        out.push(HEX[(x >> 4) as usize]);
        out.push(HEX[(x & 15) as usize]);
    }
    Ok(from(out, start))
}

/// SPLIT_INDEX: Apache Commons' `splitByWholeSeparatorPreserveAllTokens` (an empty separator
/// splits at whitespace), then the 0-based token; NULL when out of range.
fn split_index(out: &mut Vec<u8>, s: StrRef, sep: StrRef, index: i64) -> Value {
    if index < 0 {
        return Value::Null;
    }
    let text = heap_str(out, s);
    let sepr = heap_str(out, sep);
    if text.is_empty() {
        return Value::Null;
    }
    let base = s.off as usize;
    let found: Option<(usize, usize)> = if sepr.is_empty() {
        let mut start = 0;
        let mut k = 0;
        let mut hit = None;
        for (i, c) in text.char_indices() {
            if c.is_whitespace() {
                if k == index {
                    hit = Some((start, i));
                    break;
                }
                k += 1;
                start = i + c.len_utf8();
            }
        }
        hit.or(if k == index {
            Some((start, text.len()))
        } else {
            None
        })
    } else {
        let mut start = 0;
        let mut k = 0;
        let mut hit = None;
        for (i, _) in text.match_indices(sepr) {
            if k == index {
                hit = Some((start, i));
                break;
            }
            k += 1;
            start = i + sepr.len();
        }
        hit.or(if k == index {
            Some((start, text.len()))
        } else {
            None
        })
    };
    match found {
        Some((a, b)) => copy(out, base + a, base + b),
        None => Value::Null,
    }
}

/// Evaluates the stateless functions of this module on non-NULL arguments.
pub fn call(func: Func, v: &[Value], out: &mut Vec<u8>) -> Result<Value> {
    if func == Func::Uuid {
        return uuid(out);
    }
    let Some(r) = v.first().and_then(|x| span(out, *x)) else {
        return Ok(Value::Null);
    };
    let (a, n) = (r.off as usize, r.len as usize);
    Ok(match func {
        Func::Left | Func::Right => {
            let k = int(v[1]);
            if k <= 0 {
                return Ok(copy(out, a, a));
            }
            let text = heap_str(out, r);
            let chars = text.chars().count();
            let k = (k as usize).min(chars);
            if func == Func::Left {
                copy(out, a, a + char_offset(text, k))
            } else {
                copy(out, a + char_offset(text, chars - k), a + n)
            }
        }
        Func::Reverse => {
            let start = out.len();
            out.extend_from_within(a..a + n);
            let tail = &mut out[start..];
            tail.reverse();
            // each character's bytes are now backwards: turn them around again
            let mut i = 0;
            while i < tail.len() {
                let mut j = i;
                while j < tail.len() && tail[j] & 0xC0 == 0x80 {
                    j += 1;
                }
                let last = j.min(tail.len() - 1);
                tail[i..=last].reverse();
                i = j + 1;
            }
            from(out, start)
        }
        Func::Repeat => {
            let k = int(v[1]);
            if k <= 0 || n == 0 {
                return Ok(copy(out, a, a));
            }
            let chars = heap_str(out, r).chars().count();
            if chars.saturating_mul(k as usize) > MAX_LEN {
                return Err(RuntimeError::Eval(format!(
                    "REPEAT: a string of {chars} characters {k} times is longer than the {MAX_LEN} characters a function may build (docs/limits.md)"
                )));
            }
            let start = out.len();
            for _ in 0..k {
                out.extend_from_within(a..a + n);
            }
            from(out, start)
        }
        Func::Overlay => {
            let Some(p) = span(out, v[1]) else {
                return Ok(Value::Null);
            };
            let text = heap_str(out, r);
            let chars = text.chars().count() as i64;
            let pos = int(v[2]);
            let len = match v.get(3) {
                Some(l) => int(*l),
                None => heap_str(out, p).chars().count() as i64,
            };
            // as Flink 2.3 answers (checked through the oracle): a position before the first or
            // past the end leaves the string as it is; a length <= 0 drops the rest
            if pos < 1 || pos - 1 > chars {
                return Ok(copy(out, a, a + n));
            }
            let c1 = char_offset(text, (pos - 1) as usize);
            let resume = (pos - 1).saturating_add(len);
            let c2 = char_offset(text, resume.clamp(0, chars) as usize);
            let start = out.len();
            out.extend_from_within(a..a + c1);
            out.extend_from_within(p.off as usize..(p.off + p.len) as usize);
            if len > 0 {
                out.extend_from_within(a + c2..a + n);
            }
            from(out, start)
        }
        Func::SplitIndex => {
            let Some(sep) = span(out, v[1]) else {
                return Ok(Value::Null);
            };
            split_index(out, r, sep, int(v[2]))
        }
        Func::Md5
        | Func::Sha1
        | Func::Sha224
        | Func::Sha256
        | Func::Sha384
        | Func::Sha512
        | Func::Sha2 => digest(func, v.get(1).map(|x| int(*x)).unwrap_or(0), out, r)?,
        Func::ToBase64 => to_base64(out, r),
        Func::FromBase64 => from_base64(out, r)?,
        other => {
            return Err(RuntimeError::Eval(format!(
                "{other:?} is not a string function"
            )))
        }
    })
}

/// Evaluates a REGEXP function with its compiled pattern (`re`), on non-NULL arguments: `v[1]` is
/// the pattern for REGEXP, REGEXP_EXTRACT and REGEXP_REPLACE; STR_TO_MAP's delimiters are its
/// `v[1]` and `v[2]` (`re` the pair delimiter, `kv` the key-value one).
pub fn call_regex(
    func: Func,
    v: &[Value],
    re: &std::result::Result<JavaRegex, RegexError>,
    kv: Option<&std::result::Result<JavaRegex, RegexError>>,
    out: &mut Vec<u8>,
) -> Result<Value> {
    let Some(r) = v.first().and_then(|x| span(out, *x)) else {
        return Ok(Value::Null);
    };
    let re = match re {
        Ok(re) => re,
        Err(e @ RegexError::Unsupported { .. }) => return Err(RuntimeError::Eval(e.to_string())),
        // Flink catches the bad pattern's exception
        Err(RegexError::Invalid { .. }) => {
            return Ok(if func == Func::Regexp {
                Value::Bool(false)
            } else {
                Value::Null
            })
        }
    };
    let text = heap_str(out, r);
    re.check_input(text)
        .map_err(|e| RuntimeError::Eval(e.to_string()))?;
    let base = r.off as usize;
    Ok(match func {
        // Flink answers FALSE for an empty pattern
        Func::Regexp => Value::Bool(!re.source.is_empty() && re.re.is_match(text)),
        Func::RegexpExtract => {
            let idx = v.get(2).map(|x| int(*x)).unwrap_or(0);
            if idx < 0 || idx as usize >= re.re.captures_len() {
                return Ok(Value::Null);
            }
            let Some(caps) = re.re.captures(text) else {
                return Ok(Value::Null);
            };
            match caps.get(idx as usize) {
                Some(m) => {
                    let (s, e) = (base + m.start(), base + m.end());
                    copy(out, s, e)
                }
                None => Value::Null,
            }
        }
        Func::RegexpReplace => {
            let Some(rep) = span(out, v[2]) else {
                return Ok(Value::Null);
            };
            // Flink quotes the replacement: it is literal text
            let start = out.len();
            let mut last = 0;
            let text_len = text.len();
            // find the matches first: `text` borrows the heap that receives the result
            let matches: Vec<(usize, usize)> = re
                .re
                .find_iter(text)
                .map(|m| (m.start(), m.end()))
                .collect();
            for (s, e) in matches {
                out.extend_from_within(base + last..base + s);
                out.extend_from_within(rep.off as usize..(rep.off + rep.len) as usize);
                last = e;
            }
            out.extend_from_within(base + last..base + text_len);
            from(out, start)
        }
        Func::StrToMap => {
            let kv = match kv {
                Some(Ok(kv)) => kv,
                Some(Err(e)) => return Err(RuntimeError::Eval(format!("STR_TO_MAP: {e}"))),
                None => return Err(RuntimeError::Eval("STR_TO_MAP needs delimiters".into())),
            };
            if text.is_empty() {
                return Ok(Value::Str(tillflow_types::map::push_map(out, [])));
            }
            let mut pairs: Vec<(&[u8], Option<&[u8]>)> = vec![];
            for item in java_split(&re.re, text, 0) {
                let mut parts = java_split(&kv.re, item, 2).into_iter();
                let k = parts.next().unwrap_or("");
                let val = parts.next();
                pairs.retain(|(pk, _)| *pk != k.as_bytes());
                pairs.push((k.as_bytes(), val.map(str::as_bytes)));
            }
            let owned: Vec<(Vec<u8>, Option<Vec<u8>>)> = pairs
                .into_iter()
                .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
                .collect();
            Value::Str(tillflow_types::map::push_map(
                out,
                owned.iter().map(|(k, v)| (k.as_slice(), v.as_deref())),
            ))
        }
        other => {
            return Err(RuntimeError::Eval(format!(
                "{other:?} is not a regex function"
            )))
        }
    })
}

/// Java's `String.split(regex, limit)`: with `limit` 0 trailing empty strings are removed; a
/// zero-width match at the start yields no leading empty string.
pub fn java_split<'a>(re: &regex::Regex, s: &'a str, limit: usize) -> Vec<&'a str> {
    let mut parts = vec![];
    let mut last = 0;
    for m in re.find_iter(s) {
        if limit > 0 && parts.len() + 1 == limit {
            break;
        }
        if m.end() == 0 {
            continue;
        }
        if m.start() == m.end() && m.start() >= s.len() {
            break;
        }
        parts.push(&s[last..m.start()]);
        last = m.end();
    }
    if parts.is_empty() && last == 0 {
        return vec![s];
    }
    parts.push(&s[last..]);
    if limit == 0 {
        while parts.len() > 1 && parts.last().is_some_and(|p| p.is_empty()) {
            parts.pop();
        }
        if parts.len() == 1 && parts[0].is_empty() && !s.is_empty() {
            parts.clear();
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use tillflow_types::value::push_str;

    fn run(func: Func, args: &[&str], ints: &[i64]) -> Option<String> {
        let mut out = vec![];
        let mut v: Vec<Value> = args
            .iter()
            .map(|a| Value::Str(push_str(&mut out, a)))
            .collect();
        v.extend(ints.iter().map(|i| Value::Int(*i)));
        match call(func, &v, &mut out).unwrap() {
            Value::Str(r) => Some(heap_str(&out, r).to_owned()),
            _ => None,
        }
    }

    #[test]
    fn reverse_keeps_characters_whole() {
        assert_eq!(
            run(Func::Reverse, &["héllo ☃x"], &[]).as_deref(),
            Some("x☃ olléh")
        );
    }

    #[test]
    fn split_index_as_commons_lang() {
        assert_eq!(
            run(Func::SplitIndex, &["a,b,,", ","], &[3]).as_deref(),
            Some("")
        );
        assert_eq!(run(Func::SplitIndex, &["a,b,,", ","], &[4]), None);
        assert_eq!(
            run(Func::SplitIndex, &["a  b", ""], &[1]).as_deref(),
            Some("")
        );
        assert_eq!(run(Func::SplitIndex, &["", ","], &[0]), None);
    }

    #[test]
    fn base64_round_trip_and_hashes() {
        for s in ["", "a", "ab", "abc", "héllo ☃"] {
            let b = run(Func::ToBase64, &[s], &[]).unwrap();
            assert_eq!(run(Func::FromBase64, &[&b], &[]).as_deref(), Some(s));
        }
        assert_eq!(
            run(Func::Md5, &[""], &[]).as_deref(),
            Some("d41d8cd98f00b204e9800998ecf8427e")
        );
        let mut out = vec![];
        let v = [Value::Str(push_str(&mut out, "!!"))];
        assert!(call(Func::FromBase64, &v, &mut out).is_err());
    }

    #[test]
    fn java_split_drops_trailing_empties() {
        let re = regex::Regex::new(",").unwrap();
        assert_eq!(java_split(&re, "a,b,,", 0), vec!["a", "b"]);
        assert_eq!(java_split(&re, "a,,b", 0), vec!["a", "", "b"]);
        assert_eq!(java_split(&re, ",a", 0), vec!["", "a"]);
        let eq = regex::Regex::new("=").unwrap();
        assert_eq!(java_split(&eq, "a=b=c", 2), vec!["a", "b=c"]);
        assert_eq!(java_split(&eq, "a=", 2), vec!["a", ""]);
    }
}
