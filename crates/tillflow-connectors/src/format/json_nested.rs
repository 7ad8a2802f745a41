//! Nested JSON values (objects and arrays) for ROW, ARRAY, MULTISET and MAP columns, read into
//! and written from the row-heap encoding of `tillflow_types::nested`, as Flink's `json` format
//! maps them: a ROW is an object whose keys are the field names (missing keys and `null` are
//! NULL, unknown keys ignored), an ARRAY an array, a MAP an object, a MULTISET an object of
//! element → count (`{"x":2,"y":1}`; an array is also read).
//!
//! Reading walks the record's text with the same scanner as the top-level object and writes the
//! encoding straight into the row's heap; the only buffers are the decoder's own, reused from
//! record to record.

use super::jsonscan::{Scanner, SyntaxError, Token};
use super::text::write_json_string;
use tillflow_types::nested::{self, push_bytes_payload, push_scalar_payload};
use tillflow_types::value::heap_bytes;
use tillflow_types::{DataType, StrRef, Value};

/// Converts a scalar JSON token into a value of a scalar type (strings into the given heap).
pub type ReadScalar<'f> = dyn Fn(Token<'_>, DataType, &mut Vec<u8>) -> Result<Value, String> + 'f;

/// Writes a scalar value (its strings in the given heap) as JSON.
pub type WriteScalar<'f> = dyn Fn(&mut String, Value, DataType, &[u8]) + 'f;

/// Buffers a nested decode reuses.
#[derive(Default)]
pub struct Scratch {
    /// Unescaped strings.
    text: Vec<u8>,
    /// Values of scalars before they are written (their strings, for BYTES).
    heap: Vec<u8>,
    /// Where each ROW field's value is in the text, by nesting level.
    spans: Vec<Option<(usize, usize)>>,
}

fn syntax(base: usize) -> impl Fn(SyntaxError) -> String {
    move |e| format!("invalid JSON at byte {}: {}", base + e.at + 1, e.message)
}

/// Decodes the JSON object or array at the scanner's position (in the record it reads) into a
/// value of the nested type `ty` appended to `heap`, leaving the scanner after it; returns its
/// span. Reading the value where it stands, not after skipping it, scans it once less.
pub fn decode_at(
    sc: &mut Scanner<'_>,
    ty: DataType,
    heap: &mut Vec<u8>,
    scratch: &mut Scratch,
    scalar: &ReadScalar<'_>,
) -> Result<StrRef, String> {
    let off = heap.len();
    encode_at(sc, ty, heap, scratch, scalar)?;
    Ok(nested::span_from(heap, off))
}

/// Writes the encoding (not a payload: no length prefix) of the JSON value at the scanner's
/// position, leaving the scanner after it; positions in errors are the scanner's.
fn encode_at(
    sc: &mut Scanner<'_>,
    ty: DataType,
    heap: &mut Vec<u8>,
    scratch: &mut Scratch,
    scalar: &ReadScalar<'_>,
) -> Result<(), String> {
    let text = sc.text();
    let err = syntax(0);
    match ty {
        DataType::Row(rt) => {
            sc.ws();
            let (row_start, heap_start) = (sc.i, heap.len());
            sc.expect(b'{', "expected an object for a ROW")
                .map_err(&err)?;
            // the common case: the fields in the schema's order, each encoded where it stands;
            // anything else is read again below, field by field (which also words the errors)
            if row_in_order(sc, rt, heap, scratch, scalar) {
                return Ok(());
            }
            heap.truncate(heap_start);
            sc.i = row_start + 1;
            let level = scratch.spans.len();
            scratch.spans.resize(level + rt.fields.len(), None);
            if sc.peek() == Some(b'}') {
                sc.i += 1;
            } else {
                loop {
                    sc.ws();
                    let mut key = std::mem::take(&mut scratch.text);
                    let field = {
                        let k = sc.key(&mut key).map_err(&err)?;
                        rt.fields
                            .iter()
                            .position(|(n, _)| n.as_bytes() == k)
                            .or_else(|| {
                                rt.fields
                                    .iter()
                                    .position(|(n, _)| n.as_bytes().eq_ignore_ascii_case(k))
                            })
                    };
                    scratch.text = key;
                    sc.expect(b':', "expected ':'").map_err(&err)?;
                    sc.ws();
                    let start = sc.i;
                    sc.skip_value().map_err(&err)?;
                    if let Some(f) = field {
                        scratch.spans[level + f] = Some((start, sc.i));
                    }
                    if after_member(sc, b'}')? {
                        break;
                    }
                }
            }
            for (f, (name, fty)) in rt.fields.iter().enumerate() {
                match scratch.spans[level + f] {
                    Some((s, e)) if &text[s..e] != "null" => {
                        heap.push(1);
                        encode_payload(&text[s..e], *fty, heap, scratch, scalar)
                            .map_err(|m| format!("field `{name}`: {m}"))?;
                    }
                    _ => heap.push(0),
                }
            }
            scratch.spans.truncate(level);
        }
        DataType::Multiset(et) if sc.peek() == Some(b'{') => {
            // as Flink's json format: an object of element → count
            sc.i += 1;
            let count_at = heap.len();
            heap.extend_from_slice(&0u32.to_le_bytes());
            let mut n = 0u32;
            if sc.peek() == Some(b'}') {
                sc.i += 1;
            } else {
                loop {
                    sc.ws();
                    let mut key = std::mem::take(&mut scratch.text);
                    let mut tmp = std::mem::take(&mut scratch.heap);
                    tmp.clear();
                    let slot = heap.len();
                    heap.push(1);
                    let r = sc
                        .key(&mut key)
                        .map(|k| push_key(heap, k, *et, &mut tmp, scalar, "MULTISET element"));
                    scratch.text = key;
                    scratch.heap = tmp;
                    r.map_err(&err)??;
                    sc.expect(b':', "expected ':'").map_err(&err)?;
                    sc.ws();
                    let start = sc.i;
                    sc.skip_value().map_err(&err)?;
                    let count: u32 = text[start..sc.i]
                        .parse()
                        .ok()
                        .filter(|c| n.saturating_add(*c) <= MAX_MULTISET)
                        .ok_or_else(|| {
                            format!(
                                "a MULTISET count must be an integer from 0 to {MAX_MULTISET} in all, got `{}`",
                                &text[start..sc.i]
                            )
                        })?;
                    let end = heap.len();
                    if count == 0 {
                        heap.truncate(slot);
                    }
                    for _ in 1..count {
                        heap.extend_from_within(slot..end);
                    }
                    n = n.saturating_add(count);
                    if after_member(sc, b'}')? {
                        break;
                    }
                }
            }
            heap[count_at..count_at + 4].copy_from_slice(&n.to_le_bytes());
        }
        DataType::Array(et) | DataType::Multiset(et) => {
            sc.expect(b'[', "expected an array").map_err(&err)?;
            let count_at = heap.len();
            heap.extend_from_slice(&0u32.to_le_bytes());
            let mut n = 0u32;
            if sc.peek() == Some(b']') {
                sc.i += 1;
            } else {
                loop {
                    sc.ws();
                    let start = sc.i;
                    sc.skip_value().map_err(&err)?;
                    let item = &text[start..sc.i];
                    encode_slot(item, *et, heap, scratch, scalar)
                        .map_err(|m| format!("element {}: {m}", n + 1))?;
                    n += 1;
                    if after_member(sc, b']')? {
                        break;
                    }
                }
            }
            heap[count_at..count_at + 4].copy_from_slice(&n.to_le_bytes());
        }
        DataType::Map(kt, v) => {
            sc.expect(b'{', "expected an object for a MAP")
                .map_err(&err)?;
            let count_at = heap.len();
            heap.extend_from_slice(&0u32.to_le_bytes());
            let mut n = 0u32;
            if sc.peek() == Some(b'}') {
                sc.i += 1;
            } else {
                loop {
                    sc.ws();
                    let mut key = std::mem::take(&mut scratch.text);
                    let mut tmp = std::mem::take(&mut scratch.heap);
                    tmp.clear();
                    let r = sc
                        .key(&mut key)
                        .map(|k| push_key(heap, k, *kt, &mut tmp, scalar, "MAP key"));
                    scratch.text = key;
                    scratch.heap = tmp;
                    r.map_err(&err)??;
                    sc.expect(b':', "expected ':'").map_err(&err)?;
                    sc.ws();
                    let start = sc.i;
                    sc.skip_value().map_err(&err)?;
                    let item = &text[start..sc.i];
                    encode_slot(item, *v, heap, scratch, scalar)?;
                    n += 1;
                    if after_member(sc, b'}')? {
                        break;
                    }
                }
            }
            heap[count_at..count_at + 4].copy_from_slice(&n.to_le_bytes());
            nested::dedupe_map_keys(heap, count_at, *kt, *v);
        }
        other => return Err(format!("{other} is not a nested type")),
    }
    Ok(())
}

/// The most elements a MULTISET read from JSON may hold: its counts are expanded into
/// elements, and a hostile count must not exhaust memory.
const MAX_MULTISET: u32 = 1_000_000;

/// Writes a JSON object key as the payload of a value of type `ty`: the text itself for STRING
/// and BYTES, converted to `ty` otherwise (`what` names the key in errors).
fn push_key(
    heap: &mut Vec<u8>,
    k: &[u8],
    ty: DataType,
    tmp: &mut Vec<u8>,
    scalar: &ReadScalar<'_>,
    what: &str,
) -> Result<(), String> {
    if matches!(ty, DataType::String(_) | DataType::Bytes) {
        push_bytes_payload(heap, k);
        return Ok(());
    }
    let text = std::str::from_utf8(k).map_err(|_| format!("a {what} is not UTF-8"))?;
    match scalar(Token::Str(text), ty, tmp)? {
        Value::Null => Err(format!(
            "{what} `{}` is not a {ty}",
            text.chars().take(200).collect::<String>()
        )),
        v => {
            push_scalar_payload(heap, v, ty);
            Ok(())
        }
    }
}

/// After an object member or array element: `,` goes on (false), `close` ends (true).
fn after_member(sc: &mut Scanner<'_>, close: u8) -> Result<bool, String> {
    match sc.peek() {
        Some(b',') => {
            sc.i += 1;
            Ok(false)
        }
        Some(c) if c == close => {
            sc.i += 1;
            Ok(true)
        }
        _ => Err(format!("invalid JSON: expected ',' or '{}'", close as char)),
    }
}

/// Writes a slot for the JSON value `item` of type `ty`: NULL for `null`, else its payload.
fn encode_slot(
    item: &str,
    ty: DataType,
    heap: &mut Vec<u8>,
    scratch: &mut Scratch,
    scalar: &ReadScalar<'_>,
) -> Result<(), String> {
    if item == "null" {
        heap.push(0);
        return Ok(());
    }
    heap.push(1);
    encode_payload(item, ty, heap, scratch, scalar)
}

/// Writes the payload of the non-null JSON value `text` of type `ty`.
fn encode_payload(
    text: &str,
    ty: DataType,
    heap: &mut Vec<u8>,
    scratch: &mut Scratch,
    scalar: &ReadScalar<'_>,
) -> Result<(), String> {
    encode_payload_at(&mut Scanner::new(text), ty, heap, scratch, scalar)
}

/// A ROW's members after its `{` when they are its fields in the schema's order (missing ones
/// at the end are NULL): each field's slot encoded where it stands. False at the first member
/// that is not the next field, or any fault: the caller reads the ROW again from its start.
fn row_in_order(
    sc: &mut Scanner<'_>,
    rt: &tillflow_types::RowType,
    heap: &mut Vec<u8>,
    scratch: &mut Scratch,
    scalar: &ReadScalar<'_>,
) -> bool {
    let mut f = 0;
    if sc.peek() == Some(b'}') {
        sc.i += 1;
    } else {
        loop {
            sc.ws();
            let mut key = std::mem::take(&mut scratch.text);
            let next = match sc.key(&mut key) {
                Ok(k) => rt.fields.get(f).filter(|(n, _)| n.as_bytes() == k),
                Err(_) => None,
            };
            scratch.text = key;
            let Some((_, fty)) = next else {
                return false;
            };
            if sc.expect(b':', "").is_err() {
                return false;
            }
            sc.ws();
            if sc.text().get(sc.i..).is_some_and(|t| t.starts_with("null")) {
                sc.i += 4;
                heap.push(0);
            } else {
                heap.push(1);
                if encode_payload_at(sc, *fty, heap, scratch, scalar).is_err() {
                    return false;
                }
            }
            f += 1;
            match after_member(sc, b'}') {
                Ok(false) => {}
                Ok(true) => break,
                Err(_) => return false,
            }
        }
    }
    for _ in f..rt.fields.len() {
        heap.push(0);
    }
    true
}

/// [`encode_payload`] of the value at the scanner's position, leaving the scanner after it.
fn encode_payload_at(
    sc: &mut Scanner<'_>,
    ty: DataType,
    heap: &mut Vec<u8>,
    scratch: &mut Scratch,
    scalar: &ReadScalar<'_>,
) -> Result<(), String> {
    if ty.is_nested() {
        let len_at = heap.len();
        heap.extend_from_slice(&0u32.to_le_bytes());
        encode_at(sc, ty, heap, scratch, scalar)?;
        let len = (heap.len() - len_at - 4) as u32;
        heap[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
        return Ok(());
    }
    let mut buf = std::mem::take(&mut scratch.text);
    let mut tmp = std::mem::take(&mut scratch.heap);
    tmp.clear();
    let r = match sc.value(&mut buf) {
        Ok(Token::Nested(raw)) => Err(format!(
            "expected {ty}, got {}",
            if raw.starts_with('[') {
                "an array"
            } else {
                "an object"
            }
        )),
        Ok(tok) => scalar(tok, ty, &mut tmp).map(|v| match v {
            Value::Str(s) => push_bytes_payload(heap, heap_bytes(&tmp, s)),
            Value::Null => {
                // a scalar that converts to NULL: keep the slot's flag honest
                heap.pop();
                heap.push(0);
            }
            v => push_scalar_payload(heap, v, ty),
        }),
        Err(e) => Err(syntax(0)(e)),
    };
    scratch.text = buf;
    scratch.heap = tmp;
    r
}

/// Writes the nested value `span` of type `ty` (in `heap`) as JSON; `scalar` writes a scalar.
pub fn write(out: &mut String, heap: &[u8], span: StrRef, ty: DataType, scalar: &WriteScalar<'_>) {
    match ty {
        DataType::Row(rt) => {
            out.push('{');
            for (i, (name, fty)) in rt.fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(out, name);
                out.push(':');
                write_value(
                    out,
                    heap,
                    nested::row_field(heap, span, rt, i),
                    *fty,
                    scalar,
                );
            }
            out.push('}');
        }
        DataType::Multiset(et) => {
            // as Flink's json format: an object of element → count, in order of first appearance
            out.push('{');
            let mut first = true;
            for (i, v) in nested::elements(heap, span, *et).enumerate() {
                let same = |w: Value| match (v, w) {
                    (Value::Str(a), Value::Str(b)) => heap_bytes(heap, a) == heap_bytes(heap, b),
                    (a, b) => a == b,
                };
                if nested::elements(heap, span, *et).take(i).any(same) {
                    continue;
                }
                let count = nested::elements(heap, span, *et)
                    .skip(i)
                    .filter(|w| same(*w))
                    .count();
                if !first {
                    out.push(',');
                }
                first = false;
                match (v, *et) {
                    (Value::Str(s), DataType::String(_)) => {
                        write_json_string(out, tillflow_types::value::heap_str(heap, s))
                    }
                    (Value::Null, _) => out.push_str("\"null\""),
                    (k, kt) => {
                        let mut text = String::new();
                        scalar(&mut text, k, kt, heap);
                        write_json_string(out, text.trim_matches('"'));
                    }
                }
                out.push(':');
                let _ = std::fmt::Write::write_fmt(out, format_args!("{count}"));
            }
            out.push('}');
        }
        DataType::Array(et) => {
            out.push('[');
            for (i, v) in nested::elements(heap, span, *et).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, heap, v, *et, scalar);
            }
            out.push(']');
        }
        DataType::Map(kt, vt) => {
            out.push('{');
            for (i, (k, v)) in nested::map_entries(heap, span, *kt, *vt).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                // an object key is text: a non-string key is written as its JSON text, quoted
                match (k, *kt) {
                    (Value::Str(s), DataType::String(_)) => {
                        write_json_string(out, tillflow_types::value::heap_str(heap, s))
                    }
                    (k, kt) => {
                        let mut text = String::new();
                        scalar(&mut text, k, kt, heap);
                        write_json_string(out, text.trim_matches('"'));
                    }
                }
                out.push(':');
                write_value(out, heap, v, *vt, scalar);
            }
            out.push('}');
        }
        other => scalar(out, Value::Str(span), other, heap),
    }
}

fn write_value(out: &mut String, heap: &[u8], v: Value, ty: DataType, scalar: &WriteScalar<'_>) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Str(s) if ty.is_nested() => write(out, heap, s, ty, scalar),
        v => scalar(out, v, ty, heap),
    }
}

/// A nested value as JSON text with the json format's defaults (SQL timestamps, decimals as
/// numbers), for stores that keep nested columns as JSON (SQLite, PostgreSQL jsonb).
pub fn to_json_text(out: &mut String, heap: &[u8], span: StrRef, ty: DataType) {
    let scalar = |out: &mut String, v: Value, ty: DataType, heap: &[u8]| match (v, ty) {
        (Value::Str(r), DataType::Bytes) => super::json::write_base64_pub(out, heap_bytes(heap, r)),
        (Value::Str(r), _) => write_json_string(out, tillflow_types::value::heap_str(heap, r)),
        (v, ty) => super::text::write_scalar(out, v, ty, false, false, true),
    };
    write(out, heap, span, ty, &scalar)
}
