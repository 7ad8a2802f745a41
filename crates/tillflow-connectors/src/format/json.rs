//! Flink's `json` format: one JSON object per record, fields matched to columns by name.
//!
//! Decoding scans the object once ([`super::jsonscan`]) straight into the row (no intermediate tree,
//! no allocation per record): keys are matched against the column names, strings are copied into
//! the row heap, numbers and timestamps are converted as Flink's `JsonToRowDataConverters` do.
//! Missing fields are NULL unless `json.fail-on-missing-field`; timestamps use Flink's SQL layout
//! (`2024-03-01 20:00:00.485`) or ISO-8601 with `json.timestamp-format.standard = 'ISO-8601'`.

use super::jsonscan::{Scanner, SyntaxError, Token};
use super::text::{write_json_string, write_scalar};
use super::{DecodeError, Decoder, Encoder};
use crate::{ConnectorError, TableSpec};
use std::fmt;
use tillflow_runtime::cast::parse_decimal;
use tillflow_runtime::expr::{narrow, rescale};
use tillflow_runtime::keys::eq_bytes;
use tillflow_types::temporal::{parse_date, parse_time, parse_timestamp};
use tillflow_types::value::{heap_str, push_str};
use tillflow_types::{DataType, Row, RowKind, Value};

/// Whether timestamps use the ISO-8601 layout, from `<prefix>.timestamp-format.standard`.
pub fn iso_option(table: &TableSpec, prefix: &str) -> Result<bool, ConnectorError> {
    let key = format!("{prefix}.timestamp-format.standard");
    match table.option(&key) {
        None | Some("SQL") => Ok(false),
        Some("ISO-8601") => Ok(true),
        Some(other) => Err(table.error(format!(
            "option '{key}' must be 'SQL' or 'ISO-8601', got '{other}'"
        ))),
    }
}

/// Parses a timestamp in the layout Flink's JSON format expects.
pub fn parse_json_timestamp(s: &str, iso: bool) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 16 || b[10] != if iso { b'T' } else { b' ' } {
        return None;
    }
    parse_timestamp(s)
}

/// Decoder for the `json` format.
pub struct JsonDecoder {
    names: Vec<String>,
    types: Vec<DataType>,
    iso: bool,
    fail_on_missing: bool,
    ignore_errors: bool,
    strict: bool,
    nulled_records: u64,
    seen: Vec<bool>,
    key_buf: Vec<u8>,
    str_buf: Vec<u8>,
    nested: super::json_nested::Scratch,
}

impl JsonDecoder {
    /// A decoder for the table's physical columns and `json.*` options.
    pub fn new(table: &TableSpec) -> Result<Self, ConnectorError> {
        Self::with_prefix(table, "json")
    }

    /// A decoder reading its options under `prefix` (`json`, `debezium-json`).
    pub fn with_prefix(table: &TableSpec, prefix: &str) -> Result<Self, ConnectorError> {
        let fail_on_missing =
            table.bool_option(&format!("{prefix}.fail-on-missing-field"), false)?;
        let ignore_errors = table.bool_option(&format!("{prefix}.ignore-parse-errors"), false)?;
        if fail_on_missing && ignore_errors {
            return Err(table.error(format!(
                "'{prefix}.fail-on-missing-field' and '{prefix}.ignore-parse-errors' cannot both be true"
            )));
        }
        let n = table.schema.len();
        Ok(JsonDecoder {
            names: table.schema.fields.iter().map(|f| f.name.clone()).collect(),
            types: table.schema.fields.iter().map(|f| f.data_type).collect(),
            iso: iso_option(table, prefix)?,
            fail_on_missing,
            ignore_errors,
            strict: false,
            nulled_records: 0,
            seen: vec![false; n],
            key_buf: Vec::new(),
            str_buf: Vec::new(),
            nested: Default::default(),
        })
    }
}

impl JsonDecoder {
    fn scan(
        &mut self,
        input: &[u8],
        row: &mut Row,
        nulled: &mut bool,
        current: &mut Option<usize>,
    ) -> Result<(), String> {
        let lenient = self.ignore_errors && !self.strict;
        let text = std::str::from_utf8(input)
            .map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to() + 1))?;
        let mut sc = Scanner::new(text);
        let syntax = |e: SyntaxError| format!("invalid JSON at byte {}: {}", e.at + 1, e.message);
        sc.expect(b'{', "expected a JSON object").map_err(syntax)?;
        if sc.peek() == Some(b'}') {
            sc.i += 1;
        } else {
            let mut hint = 0;
            loop {
                if sc.peek() != Some(b'"') {
                    return Err(syntax(SyntaxError {
                        at: sc.i,
                        message: "expected a field name",
                    }));
                }
                let col = {
                    let k = sc.key(&mut self.key_buf).map_err(syntax)?;
                    if self
                        .names
                        .get(hint)
                        .is_some_and(|n| eq_bytes(n.as_bytes(), k))
                    {
                        Some(hint)
                    } else {
                        self.names.iter().position(|n| eq_bytes(n.as_bytes(), k))
                    }
                };
                sc.expect(b':', "expected ':'").map_err(syntax)?;
                match col {
                    None => {
                        sc.skip_value().map_err(syntax)?;
                    }
                    Some(c)
                        if self.types[c].is_nested() && matches!(sc.peek(), Some(b'{' | b'[')) =>
                    {
                        // a nested column is read where it stands (not skipped first)
                        *current = Some(c);
                        let (ty, iso, start, before) =
                            (self.types[c], self.iso, sc.i, row.heap.len());
                        let scalar = |t: Token<'_>, ty: DataType, h: &mut Vec<u8>| {
                            let mut v = Value::Null;
                            scalar_token(t, ty, iso, h, &mut v).map(|_| v)
                        };
                        let r = super::json_nested::decode_at(
                            &mut sc,
                            ty,
                            &mut row.heap,
                            &mut self.nested,
                            &scalar,
                        );
                        match r {
                            Ok(s) => row.values[c] = Value::Str(s),
                            Err(m) => {
                                // the record goes on after the whole value
                                row.heap.truncate(before);
                                sc.i = start;
                                sc.skip_value().map_err(syntax)?;
                                if !lenient {
                                    return Err(m);
                                }
                                *nulled = true;
                                row.values[c] = Value::Null;
                            }
                        }
                        self.seen[c] = true;
                        *current = None;
                        hint = c + 1;
                    }
                    Some(c) => {
                        *current = Some(c);
                        let tok = sc.value(&mut self.str_buf).map_err(syntax)?;
                        let ty = self.types[c];
                        let heap = &mut row.heap;
                        let slot = &mut row.values[c];
                        let iso = self.iso;
                        let r = match tok {
                            Token::Nested(raw) => match ty {
                                DataType::String(_) => {
                                    // Flink keeps nested JSON as its compact text
                                    let text = serde_json::from_str::<serde_json::Value>(raw)
                                        .map(|v| v.to_string())
                                        .unwrap_or_else(|_| raw.to_owned());
                                    *slot = Value::Str(push_str(heap, &text));
                                    Ok(())
                                }
                                ty => Err(mismatch(
                                    ty,
                                    if raw.starts_with('[') {
                                        "an array"
                                    } else {
                                        "an object"
                                    },
                                )),
                            },
                            tok => scalar_token(tok, ty, iso, heap, slot),
                        };
                        match r {
                            Ok(()) => {}
                            Err(_) if lenient => {
                                *nulled = true;
                                row.values[c] = Value::Null;
                            }
                            Err(m) => return Err(m),
                        }
                        self.seen[c] = true;
                        *current = None;
                        hint = c + 1;
                    }
                }
                match sc.peek() {
                    Some(b',') => sc.i += 1,
                    Some(b'}') => {
                        sc.i += 1;
                        break;
                    }
                    _ => {
                        return Err(syntax(SyntaxError {
                            at: sc.i,
                            message: "expected ',' or '}'",
                        }))
                    }
                }
            }
        }
        if !sc.at_end() {
            return Err(syntax(SyntaxError {
                at: sc.i,
                message: "trailing characters after the object",
            }));
        }
        Ok(())
    }
}

impl Decoder for JsonDecoder {
    fn decode(&mut self, input: &[u8], row: &mut Row) -> Result<(), DecodeError> {
        row.values.clear();
        row.values.resize(self.names.len(), Value::Null);
        self.seen.iter_mut().for_each(|s| *s = false);
        let mut current = None;
        let mut nulled = false;
        if let Err(message) = self.scan(input, row, &mut nulled, &mut current) {
            return Err(DecodeError {
                field: current.map(|i| self.names[i].clone()),
                message,
            });
        }
        if nulled {
            self.nulled_records += 1;
        }
        if self.fail_on_missing {
            if let Some(i) = self.seen.iter().position(|s| !s) {
                return Err(DecodeError {
                    field: Some(self.names[i].clone()),
                    message: "missing field (json.fail-on-missing-field is true)".into(),
                });
            }
        }
        Ok(())
    }

    fn ignore_parse_errors(&self) -> bool {
        self.ignore_errors
    }

    fn set_strict(&mut self, strict: bool) {
        self.strict = strict;
    }

    fn nulled_records(&self) -> u64 {
        self.nulled_records
    }
}

/// Converts a scalar JSON token into a value of type `ty` in `slot` (strings into `heap`).
/// Inlined into the decoder's loop, the hot path of every JSON source.
#[inline(always)]
fn scalar_token(
    tok: Token<'_>,
    ty: DataType,
    iso: bool,
    heap: &mut Vec<u8>,
    slot: &mut Value,
) -> Result<(), String> {
    match tok {
        Token::Null => {
            *slot = Value::Null;
            Ok(())
        }
        Token::Bool(b) => from_bool(ty, heap, b, slot),
        Token::Str(s) => from_str(ty, iso, heap, s, slot),
        Token::Number(n) => {
            if let Some(i) = parse_small_int(n) {
                from_i64(ty, heap, i, slot)
            } else if let Some(f) = parse_short_decimal(n) {
                from_f64(ty, heap, f, slot)
            } else if n.bytes().any(|c| matches!(c, b'.' | b'e' | b'E')) {
                match n.parse::<f64>() {
                    Ok(f) => from_f64(ty, heap, f, slot),
                    Err(_) => Err(format!("invalid number {n}")),
                }
            } else {
                match n.parse::<i64>() {
                    Ok(i) => from_i64(ty, heap, i, slot),
                    Err(_) => Err(format!("{n} is out of range for {ty}")),
                }
            }
        }
        Token::Nested(raw) => Err(mismatch(
            ty,
            if raw.starts_with('[') {
                "an array"
            } else {
                "an object"
            },
        )),
    }
}

fn parse_small_int(n: &str) -> Option<i64> {
    let b = n.as_bytes();
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + d as i64;
    }
    Some(if neg { -v } else { v })
}

/// A plain decimal such as `24.5` with at most 15 significant digits: the exact quotient of two
/// exactly representable doubles, which is correctly rounded (Clinger's fast path), so the result
/// equals what a full parser gives.
#[inline(always)]
fn parse_short_decimal(n: &str) -> Option<f64> {
    const POW10: [f64; 16] = [
        1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let b = n.as_bytes();
    let (neg, body) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        _ => (false, b),
    };
    let dot = body.iter().position(|&c| c == b'.')?;
    let frac_len = body.len() - dot - 1;
    if dot == 0 || frac_len == 0 || body.len() - 1 > 15 {
        return None;
    }
    let mut m: u64 = 0;
    for (i, &c) in body.iter().enumerate() {
        if i == dot {
            continue;
        }
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        m = m * 10 + d as u64;
    }
    let v = m as f64 / POW10[frac_len];
    Some(if neg { -v } else { v })
}

fn mismatch(ty: DataType, got: impl fmt::Display) -> String {
    format!("expected {ty}, got {}", super::clip(&got.to_string()))
}

#[inline]
fn from_bool(ty: DataType, heap: &mut Vec<u8>, b: bool, slot: &mut Value) -> Result<(), String> {
    match ty {
        DataType::Boolean => {
            *slot = Value::Bool(b);
            Ok(())
        }
        DataType::String(_) => {
            *slot = Value::Str(push_str(heap, if b { "true" } else { "false" }));
            Ok(())
        }
        ty => Err(mismatch(ty, b)),
    }
}

#[inline(always)]
fn from_i64(ty: DataType, heap: &mut Vec<u8>, i: i64, slot: &mut Value) -> Result<(), String> {
    match ty {
        t if t.is_integer() => {
            if narrow(i, t) != i {
                return Err(format!("{i} is out of range for {t}"));
            }
            {
                *slot = Value::Int(i);
                Ok(())
            }
        }
        DataType::Float => {
            *slot = Value::Float(i as f32 as f64);
            Ok(())
        }
        DataType::Double => {
            *slot = Value::Float(i as f64);
            Ok(())
        }
        DataType::Decimal(_, s) => {
            *slot = Value::Decimal(rescale(i as i128, 0, s));
            Ok(())
        }
        DataType::String(_) => {
            *slot = Value::Str(push_str(heap, &i.to_string()));
            Ok(())
        }
        DataType::Boolean => {
            *slot = Value::Bool(i != 0);
            Ok(())
        }
        ty => Err(mismatch(ty, i)),
    }
}

#[inline]
fn from_f64(ty: DataType, heap: &mut Vec<u8>, f: f64, slot: &mut Value) -> Result<(), String> {
    match ty {
        t if t.is_integer() => {
            let i = f.trunc();
            if !i.is_finite() || narrow(i as i64, t) as f64 != i {
                return Err(format!("{f} is out of range for {t}"));
            }
            {
                *slot = Value::Int(i as i64);
                Ok(())
            }
        }
        DataType::Float => {
            *slot = Value::Float(f as f32 as f64);
            Ok(())
        }
        DataType::Double => {
            *slot = Value::Float(f);
            Ok(())
        }
        DataType::Decimal(_, s) => {
            let mut text = String::new();
            tillflow_types::javafmt::write_double(&mut text, f);
            {
                *slot = Value::Decimal(
                    parse_decimal(&text, s)
                        .unwrap_or_else(|| (f * 10f64.powi(s as i32)).round() as i128),
                );
                Ok(())
            }
        }
        DataType::String(_) => {
            let mut text = String::new();
            tillflow_types::javafmt::write_double(&mut text, f);
            {
                *slot = Value::Str(push_str(heap, &text));
                Ok(())
            }
        }
        ty => Err(mismatch(ty, f)),
    }
}

#[inline(always)]
fn from_str(
    ty: DataType,
    iso: bool,
    heap: &mut Vec<u8>,
    s: &str,
    slot: &mut Value,
) -> Result<(), String> {
    let bad = || mismatch(ty, format_args!("\"{s}\""));
    *slot = match ty {
        DataType::String(_) => Value::Str(push_str(heap, s)),
        DataType::Bytes => {
            use base64::Engine;
            let b = base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .map_err(|_| bad())?;
            let off = heap.len() as u32;
            heap.extend_from_slice(&b);
            Value::Str(tillflow_types::StrRef {
                off,
                len: b.len() as u32,
            })
        }
        t if t.is_integer() => {
            let i: i64 = s.trim().parse().map_err(|_| bad())?;
            if narrow(i, t) != i {
                return Err(bad());
            }
            Value::Int(i)
        }
        DataType::Float => Value::Float(s.trim().parse::<f32>().map_err(|_| bad())? as f64),
        DataType::Double => Value::Float(s.trim().parse::<f64>().map_err(|_| bad())?),
        DataType::Decimal(_, sc) => Value::Decimal(parse_decimal(s, sc).ok_or_else(bad)?),
        DataType::Boolean => Value::Bool(s.trim().eq_ignore_ascii_case("true")),
        DataType::Timestamp(p) | DataType::TimestampLtz(p) => {
            Value::Timestamp(tillflow_types::temporal::truncate_to_precision(
                parse_json_timestamp(s, iso).ok_or_else(bad)?,
                p,
            ))
        }
        DataType::Date => Value::Date(parse_date(s).ok_or_else(bad)?),
        DataType::Time(_) => Value::Time(parse_time(s).ok_or_else(bad)?),
        _ => return Err(bad()),
    };
    Ok(())
}

/// BYTES as Flink's JSON format writes them: a base64 string.
/// BYTES as Flink's json format writes them (base64).
pub fn write_base64_pub(out: &mut String, b: &[u8]) {
    write_base64(out, b)
}

fn write_base64(out: &mut String, b: &[u8]) {
    use base64::Engine;
    out.push('"');
    base64::engine::general_purpose::STANDARD.encode_string(b, out);
    out.push('"');
}

/// Encoder for the `json` format: one object per row, fields in schema order.
pub struct JsonEncoder {
    names: Vec<String>,
    types: Vec<DataType>,
    iso: bool,
    plain_decimal: bool,
    ignore_nulls: bool,
    line: String,
}

impl JsonEncoder {
    /// An encoder reading its options under `prefix`.
    pub fn new(table: &TableSpec, prefix: &str) -> Result<Self, ConnectorError> {
        Ok(JsonEncoder {
            names: table.schema.fields.iter().map(|f| f.name.clone()).collect(),
            types: table.schema.fields.iter().map(|f| f.data_type).collect(),
            iso: iso_option(table, prefix)?,
            plain_decimal: table
                .bool_option(&format!("{prefix}.encode.decimal-as-plain-number"), false)?,
            ignore_nulls: table
                .bool_option(&format!("{prefix}.encode.ignore-null-fields"), false)?,
            line: String::with_capacity(256),
        })
    }

    /// Appends `row` as a JSON object (no newline) to `out`.
    pub fn write_object(&mut self, row: &Row, out: &mut String) {
        out.push('{');
        let mut first = true;
        for (i, name) in self.names.iter().enumerate() {
            let v = row.values.get(i).copied().unwrap_or(Value::Null);
            if self.ignore_nulls && v.is_null() {
                continue;
            }
            if !first {
                out.push(',');
            }
            first = false;
            write_json_string(out, name);
            out.push(':');
            match (v, self.types[i]) {
                (Value::Str(r), DataType::Bytes) => {
                    write_base64(out, tillflow_types::value::heap_bytes(&row.heap, r))
                }
                (Value::Str(r), ty) if ty.is_nested() => {
                    let (iso, plain) = (self.iso, self.plain_decimal);
                    let scalar =
                        |out: &mut String, v: Value, ty: DataType, heap: &[u8]| match (v, ty) {
                            (Value::Str(r), DataType::Bytes) => {
                                write_base64(out, tillflow_types::value::heap_bytes(heap, r))
                            }
                            (Value::Str(r), _) => write_json_string(out, heap_str(heap, r)),
                            (v, ty) => write_scalar(out, v, ty, iso, plain, true),
                        };
                    super::json_nested::write(out, &row.heap, r, ty, &scalar)
                }
                (Value::Str(r), _) => write_json_string(out, heap_str(&row.heap, r)),
                (v, ty) => write_scalar(out, v, ty, self.iso, self.plain_decimal, true),
            }
        }
        out.push('}');
    }
}

impl Encoder for JsonEncoder {
    fn encode(&mut self, row: &Row, out: &mut Vec<u8>) -> Result<(), String> {
        if row.kind != RowKind::Insert && row.kind != RowKind::UpdateAfter {
            return Err(format!(
                "the json format cannot encode a {} row; use 'format' = 'debezium-json' for an updating result",
                row.kind.short()
            ));
        }
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        self.write_object(row, &mut line);
        line.push('\n');
        out.extend_from_slice(line.as_bytes());
        self.line = line;
        Ok(())
    }

    fn accepts_changes(&self) -> bool {
        false
    }
}

/// The `json` format in the registry.
pub struct JsonFormat;

/// The registry's `json`.
pub static JSON: JsonFormat = JsonFormat;

impl super::Format for JsonFormat {
    fn name(&self) -> &'static str {
        "json"
    }
    fn options(&self) -> &'static [crate::OptionSpec] {
        super::JSON_OPTIONS
    }
    fn check(&self, table: &TableSpec) -> Result<(), ConnectorError> {
        JsonDecoder::new(table)?;
        JsonEncoder::new(table, "json").map(drop)
    }
    fn decoder(&self, table: &TableSpec) -> Result<Box<dyn super::Decoder>, ConnectorError> {
        Ok(Box::new(JsonDecoder::new(table)?))
    }
    fn encoder(&self, table: &TableSpec) -> Result<Box<dyn super::Encoder>, ConnectorError> {
        Ok(Box::new(JsonEncoder::new(table, "json")?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tillflow_types::{Field, Schema};

    fn table(opts: &[(&str, &str)]) -> TableSpec {
        TableSpec {
            name: "t".into(),
            schema: Schema::new(vec![
                Field::new("ts", DataType::Timestamp(3)),
                Field::new("id", DataType::Int),
                Field::new("name", DataType::String(None)),
                Field::new("price", DataType::Double),
            ]),
            options: opts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            primary_key: vec![],
            metadata: vec![],
            partition_keys: vec![],
        }
    }

    #[test]
    fn bytes_and_maps_encode_as_flink_writes_them() {
        let mut t = table(&[]);
        t.schema = Schema::new(vec![
            Field::new("b", DataType::Bytes),
            Field::new("h", DataType::map(DataType::String(None), DataType::Bytes)),
        ]);
        let mut row = Row::default();
        let b = push_str(&mut row.heap, "hi!");
        row.values.push(Value::Str(b));
        let m = tillflow_types::map::push_map(
            &mut row.heap,
            [
                (&b"trace"[..], Some(&b"\x01\x02"[..])),
                (&b"none"[..], None),
            ],
        );
        row.values.push(Value::Str(m));
        let mut e = JsonEncoder::new(&t, "json").unwrap();
        let mut out = Vec::new();
        e.encode(&row, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"b\":\"aGkh\",\"h\":{\"trace\":\"AQI=\",\"none\":null}}\n"
        );
        // and BYTES read back from base64
        let mut d = JsonDecoder::new(&t).unwrap();
        let mut back = Row::default();
        d.decode(br#"{"b": "aGkh"}"#, &mut back).unwrap();
        let Value::Str(r) = back.values[0] else {
            panic!("bytes")
        };
        assert_eq!(tillflow_types::value::heap_bytes(&back.heap, r), b"hi!");
    }

    /// A ROW read in one pass when its members come in the schema's order, and field by field
    /// otherwise (another order, a key in another case, an unknown or repeated key, missing
    /// fields): the same values either way, and the same error for a bad field.
    #[test]
    fn rows_in_any_member_order_decode_alike() {
        let inner = DataType::row(vec![
            ("x".into(), DataType::Int),
            ("y".into(), DataType::String(None)),
        ]);
        let mut t = table(&[]);
        t.schema = Schema::new(vec![Field::new(
            "r",
            DataType::row(vec![
                ("a".into(), DataType::BigInt),
                ("b".into(), DataType::String(None)),
                ("c".into(), inner),
            ]),
        )]);
        let mut d = JsonDecoder::new(&t).unwrap();
        let mut e = JsonEncoder::new(&t, "json").unwrap();
        let mut round = |text: &str| {
            let mut row = Row::default();
            d.decode(text.as_bytes(), &mut row).unwrap();
            let mut out = Vec::new();
            e.encode(&row, &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        let want = "{\"r\":{\"a\":1,\"b\":\"s\",\"c\":{\"x\":2,\"y\":\"t\"}}}\n";
        for text in [
            r#"{"r": {"a": 1, "b": "s", "c": {"x": 2, "y": "t"}}}"#,
            r#"{"r": {"c": {"y": "t", "x": 2}, "b": "s", "a": 1}}"#,
            r#"{"r": {"A": 1, "b": "s", "c": {"x": 2, "Y": "t"}}}"#,
            r#"{"r": {"a": 1, "zz": [1, {"q": 2}], "b": "s", "c": {"x": 2, "y": "t"}}}"#,
            r#"{"r": {"a": 0, "a": 1, "b": "s", "c": {"x": 2, "y": "t"}}}"#,
        ] {
            assert_eq!(round(text), want, "{text}");
        }
        let nulls = "{\"r\":{\"a\":1,\"b\":null,\"c\":null}}\n";
        for text in [
            r#"{"r": {"a": 1}}"#,
            r#"{"r": {"a": 1, "b": null, "c": null}}"#,
            r#"{"r": {"c": null, "a": 1}}"#,
        ] {
            assert_eq!(round(text), nulls, "{text}");
        }
        let mut row = Row::default();
        for text in [
            r#"{"r": {"a": "x", "b": "s"}}"#,
            r#"{"r": {"b": "s", "a": "x"}}"#,
        ] {
            let err = d.decode(text.as_bytes(), &mut row).unwrap_err();
            assert!(err.message.contains("field `a`"), "{text}: {err}");
        }
    }

    #[test]
    fn decodes_and_encodes_flink_layout() {
        let t = table(&[]);
        let mut d = JsonDecoder::new(&t).unwrap();
        let mut row = Row::default();
        d.decode(br#"{"id": 7, "ts": "2024-03-01 20:00:17.890", "extra": [1,2], "name": "a\"b", "price": 3}"#, &mut row)
            .unwrap();
        let mut e = JsonEncoder::new(&t, "json").unwrap();
        let mut out = Vec::new();
        e.encode(&row, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"ts\":\"2024-03-01 20:00:17.89\",\"id\":7,\"name\":\"a\\\"b\",\"price\":3.0}\n"
        );
        row.clear();
        d.decode(br#"{"id": 1}"#, &mut row).unwrap();
        assert_eq!(row.values[0], Value::Null);
    }

    #[test]
    fn fast_number_paths_agree_with_the_full_parser() {
        for t in [
            "0.1",
            "1.49",
            "24.5",
            "-137.85",
            "99.99",
            "123456.789012345",
            "0.000001",
            "7.0",
        ] {
            assert_eq!(
                parse_short_decimal(t),
                Some(t.parse::<f64>().unwrap()),
                "{t}"
            );
        }
        for t in ["1e5", "1.", ".5", "1.2.3", "12345678901234567.5"] {
            assert!(parse_short_decimal(t).is_none(), "{t}");
        }
        assert_eq!(parse_small_int("-42"), Some(-42));
        assert_eq!(parse_small_int("1234567890123456789"), None);
        assert_eq!(parse_small_int("-"), None);
    }

    #[test]
    fn errors_name_the_field() {
        let t = table(&[]);
        let mut d = JsonDecoder::new(&t).unwrap();
        let mut row = Row::default();
        let e = d.decode(br#"{"id": "x7"}"#, &mut row).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("id"));
        assert!(e.message.contains("expected INT"), "{}", e.message);
        let e = d
            .decode(br#"{"ts": "2024-03-01T20:00:00"}"#, &mut row)
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("ts"));
        assert!(d.decode(b"{not json", &mut row).is_err());
        let t = table(&[("json.timestamp-format.standard", "ISO-8601")]);
        let mut d = JsonDecoder::new(&t).unwrap();
        assert!(d
            .decode(br#"{"ts": "2024-03-01T20:00:00"}"#, &mut row)
            .is_ok());
        let t = table(&[("json.fail-on-missing-field", "true")]);
        let mut d = JsonDecoder::new(&t).unwrap();
        let e = d
            .decode(br#"{"ts": null, "id": 1, "name": "x"}"#, &mut row)
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("price"));
    }
}
