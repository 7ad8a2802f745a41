//! Flink's `csv` format: one delimited line per record, columns by position.
//!
//! A ROW column is its fields and an ARRAY or MULTISET column its elements, joined by
//! `'csv.array-element-delimiter'` (`;`), as Flink writes and reads them: an empty field is a NULL
//! ROW but an empty ARRAY, a NULL field or element is written empty, and an empty element of a
//! string array is the empty string. Deeper nesting has no CSV form and is refused.

use super::framing::Framing;
use super::text::write_scalar;
use super::{DecodeError, Decoder, Encoder};
use crate::{ConnectorError, TableSpec};
use tillflow_runtime::cast::parse_decimal;
use tillflow_runtime::expr::narrow;
use tillflow_types::temporal::{parse_date, parse_time, parse_timestamp};
use tillflow_types::value::{heap_str, push_str};
use tillflow_types::{DataType, Row, RowKind, Value};

fn char_option(table: &TableSpec, key: &str, default: u8) -> Result<u8, ConnectorError> {
    match table.option(key) {
        None => Ok(default),
        Some("\\t") => Ok(b'\t'),
        Some(v) if v.len() == 1 => Ok(v.as_bytes()[0]),
        Some(v) => Err(table.error(format!(
            "option '{key}' must be a single character, got '{v}'"
        ))),
    }
}

/// Decoder for the `csv` format.
pub struct CsvDecoder {
    names: Vec<String>,
    types: Vec<DataType>,
    delimiter: u8,
    quote: Option<u8>,
    escape: Option<u8>,
    null_literal: Option<String>,
    allow_comments: bool,
    ignore_errors: bool,
    element_delimiter: String,
    field: Vec<u8>,
    parts: Vec<Value>,
}

impl CsvDecoder {
    /// A decoder for the table's columns and `csv.*` options.
    pub fn new(table: &TableSpec) -> Result<Self, ConnectorError> {
        let disable_quote = table.bool_option("csv.disable-quote-character", false)?;
        Ok(CsvDecoder {
            names: table.schema.fields.iter().map(|f| f.name.clone()).collect(),
            types: table.schema.fields.iter().map(|f| f.data_type).collect(),
            delimiter: char_option(table, "csv.field-delimiter", b',')?,
            quote: if disable_quote {
                None
            } else {
                Some(char_option(table, "csv.quote-character", b'"')?)
            },
            escape: match table.option("csv.escape-character") {
                None => None,
                Some(_) => Some(char_option(table, "csv.escape-character", b'\\')?),
            },
            null_literal: table.option("csv.null-literal").map(str::to_owned),
            allow_comments: table.bool_option("csv.allow-comments", false)?,
            ignore_errors: table.bool_option("csv.ignore-parse-errors", false)?,
            element_delimiter: element_delimiter(table)?,
            field: Vec::with_capacity(64),
            parts: Vec::with_capacity(8),
        })
    }

    fn convert(
        &mut self,
        i: usize,
        text: &str,
        quoted: bool,
        heap: &mut Vec<u8>,
    ) -> Result<Value, DecodeError> {
        let ty = self.types[i];
        if self.null_literal.as_deref() == Some(text) && !quoted {
            return Ok(Value::Null);
        }
        match ty {
            DataType::Row(_) if text.is_empty() => return Ok(Value::Null),
            DataType::Row(r) => {
                let mut parts = std::mem::take(&mut self.parts);
                parts.clear();
                let mut pieces = text.split(self.element_delimiter.as_str());
                for (name, fty) in &r.fields {
                    let piece = pieces.next().unwrap_or("");
                    let v = scalar(*fty, piece, heap).map_err(|m| DecodeError {
                        field: Some(format!("{}.{name}", self.names[i])),
                        message: m,
                    });
                    match v {
                        Ok(v) => parts.push(v),
                        Err(e) => {
                            self.parts = parts;
                            return Err(e);
                        }
                    }
                }
                let v = Value::Str(tillflow_types::nested::push_row(heap, &parts, r));
                self.parts = parts;
                return Ok(v);
            }
            DataType::Array(et) | DataType::Multiset(et) => {
                let mut parts = std::mem::take(&mut self.parts);
                parts.clear();
                if !text.is_empty() {
                    for (n, piece) in text.split(self.element_delimiter.as_str()).enumerate() {
                        match scalar(*et, piece, heap) {
                            Ok(v) => parts.push(v),
                            Err(m) => {
                                self.parts = parts;
                                return Err(DecodeError {
                                    field: Some(format!("{}[{}]", self.names[i], n + 1)),
                                    message: m,
                                });
                            }
                        }
                    }
                }
                let v = Value::Str(tillflow_types::nested::push_array(heap, &parts, *et));
                self.parts = parts;
                return Ok(v);
            }
            _ => {}
        }
        if text.is_empty() && !ty.is_string() {
            return Ok(Value::Null);
        }
        scalar(ty, text, heap).map_err(|message| DecodeError {
            field: Some(self.names[i].clone()),
            message,
        })
    }
}

/// A field of a ROW or an element of an ARRAY as CSV text (NULL as nothing).
fn write_element(out: &mut String, v: Value, ty: DataType, heap: &[u8]) {
    match v {
        Value::Null => {}
        Value::Str(s) if ty == DataType::Bytes => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .encode_string(tillflow_types::value::heap_bytes(heap, s), out);
        }
        Value::Str(s) => out.push_str(heap_str(heap, s)),
        v => write_scalar(out, v, ty, false, false, false),
    }
}

/// `'csv.array-element-delimiter'` (`;` by default).
fn element_delimiter(table: &TableSpec) -> Result<String, ConnectorError> {
    match table.option("csv.array-element-delimiter") {
        None => Ok(";".to_owned()),
        Some("") => {
            Err(table.error("option 'csv.array-element-delimiter' must not be empty".to_owned()))
        }
        Some(d) => Ok(d.to_owned()),
    }
}

/// A scalar of type `ty` from its CSV text (an empty text is an error but for strings, as inside
/// Flink's ROW and ARRAY fields).
fn scalar(ty: DataType, text: &str, heap: &mut Vec<u8>) -> Result<Value, String> {
    {
        let bad = || format!("expected {ty}, got \"{}\"", super::clip(text));
        Ok(match ty {
            DataType::String(_) => Value::Str(push_str(heap, text)),
            t if t.is_integer() => {
                let v: i64 = text.trim().parse().map_err(|_| bad())?;
                if narrow(v, t) != v {
                    return Err(bad());
                }
                Value::Int(v)
            }
            DataType::Float => Value::Float(text.trim().parse::<f32>().map_err(|_| bad())? as f64),
            DataType::Double => Value::Float(text.trim().parse::<f64>().map_err(|_| bad())?),
            DataType::Decimal(_, s) => Value::Decimal(parse_decimal(text, s).ok_or_else(bad)?),
            DataType::Boolean => match text.trim().to_ascii_lowercase().as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => return Err(bad()),
            },
            DataType::Timestamp(p) | DataType::TimestampLtz(p) => {
                Value::Timestamp(tillflow_types::temporal::truncate_to_precision(
                    parse_timestamp(text).ok_or_else(bad)?,
                    p,
                ))
            }
            DataType::Date => Value::Date(parse_date(text).ok_or_else(bad)?),
            DataType::Time(_) => Value::Time(parse_time(text).ok_or_else(bad)?),
            _ => return Err(bad()),
        })
    }
}

/// The character an escape stands for, as Flink's (Jackson's) CSV reader reads `\0`, `\n`,
/// `\r` and `\t`; any other escaped character is itself.
fn unescape(c: u8) -> u8 {
    match c {
        b'0' => 0,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        c => c,
    }
}

/// A byte as an error message shows it.
fn shown(c: u8) -> String {
    match c {
        b'\t' => "tab".to_owned(),
        c if c.is_ascii_graphic() || c == b' ' => format!("'{}'", c as char),
        c => format!("byte 0x{c:02x}"),
    }
}

impl Decoder for CsvDecoder {
    fn framing(&self) -> Framing {
        Framing::Csv {
            delimiter: self.delimiter,
            quote: self.quote,
            escape: self.escape,
            comments: self.allow_comments,
        }
    }

    fn decode(&mut self, input: &[u8], row: &mut Row) -> Result<(), DecodeError> {
        if self.allow_comments && input.first() == Some(&b'#') {
            return Err(DecodeError {
                field: None,
                message: "comment line".into(),
            });
        }
        row.values.clear();
        let mut i = 0usize;
        let mut col = 0usize;
        loop {
            self.field.clear();
            let mut quoted = false;
            if self.quote.is_some_and(|q| input.get(i) == Some(&q)) {
                let q = self.quote.unwrap_or(b'"');
                quoted = true;
                i += 1;
                loop {
                    match input.get(i) {
                        None => {
                            return Err(DecodeError {
                                field: self.names.get(col).cloned(),
                                message: "unterminated quoted field".into(),
                            })
                        }
                        Some(&c) if c == q => {
                            if input.get(i + 1) == Some(&q) {
                                self.field.push(q);
                                i += 2;
                            } else {
                                i += 1;
                                break;
                            }
                        }
                        Some(&c) if Some(c) == self.escape => {
                            self.field.extend(input.get(i + 1).map(|c| unescape(*c)));
                            i += 2;
                        }
                        Some(&c) => {
                            self.field.push(c);
                            i += 1;
                        }
                    }
                }
                // as Flink's (Jackson's) reader: blanks, then the delimiter after the closing quote
                while let Some(b' ' | b'\t') = input.get(i).filter(|c| **c != self.delimiter) {
                    i += 1;
                }
                if let Some(&c) = input.get(i).filter(|c| **c != self.delimiter) {
                    return Err(DecodeError {
                        field: self.names.get(col).cloned(),
                        message: format!(
                            "unexpected {} after the closing quote (expected the field delimiter {} or the end of the record)",
                            shown(c),
                            shown(self.delimiter)
                        ),
                    });
                }
            }
            while let Some(&c) = input.get(i) {
                if c == self.delimiter {
                    break;
                }
                if Some(c) == self.escape {
                    self.field.extend(input.get(i + 1).map(|c| unescape(*c)));
                    i += 2;
                    continue;
                }
                self.field.push(c);
                i += 1;
            }
            if col >= self.names.len() {
                return Err(DecodeError {
                    field: None,
                    message: format!("more than the {} columns of the table", self.names.len()),
                });
            }
            let field = std::mem::take(&mut self.field);
            let v = match std::str::from_utf8(&field) {
                Ok(text) => self.convert(col, text, quoted, &mut row.heap),
                Err(_) => Err(DecodeError {
                    field: self.names.get(col).cloned(),
                    message: "invalid UTF-8".into(),
                }),
            };
            self.field = field;
            let v = v?;
            row.values.push(v);
            col += 1;
            if input.get(i) == Some(&self.delimiter) {
                i += 1;
            } else {
                break;
            }
        }
        if col < self.names.len() {
            return Err(DecodeError {
                field: self.names.get(col).cloned(),
                message: format!("missing column ({} of {} present)", col, self.names.len()),
            });
        }
        Ok(())
    }

    fn ignore_parse_errors(&self) -> bool {
        self.ignore_errors
    }
}

/// Encoder for the `csv` format.
///
/// It quotes a text value (a string, a timestamp, a ROW's or an ARRAY's joined text) exactly when
/// Flink's writer does (Jackson's CSV encoder with its default, loose check): when it is longer
/// than 24 UTF-16 units, or holds the quote, the escape character (`\` when none is set), or any
/// character below the "safe" one, one past the largest of the delimiter, the quote and the
/// newline — with the default `,` that is a space, `!`, `#` … `+` and the control characters. In
/// quotes a quote is doubled, and so is the escape character when one is set. Numbers and
/// booleans are never quoted; with `'csv.disable-quote-character'` nothing is.
pub struct CsvEncoder {
    types: Vec<DataType>,
    delimiter: u8,
    quote: Option<u8>,
    escape: Option<u8>,
    /// The smallest character that does not make a value quoted by itself.
    min_safe: u8,
    null_literal: String,
    element_delimiter: String,
    line: String,
    text: String,
}

impl CsvEncoder {
    /// An encoder for the table's columns and `csv.*` options.
    pub fn new(table: &TableSpec) -> Result<Self, ConnectorError> {
        let delimiter = char_option(table, "csv.field-delimiter", b',')?;
        let quote = if table.bool_option("csv.disable-quote-character", false)? {
            None
        } else {
            Some(char_option(table, "csv.quote-character", b'"')?)
        };
        let escape = match table.option("csv.escape-character") {
            None => None,
            Some(_) => Some(char_option(table, "csv.escape-character", b'\\')?),
        };
        Ok(CsvEncoder {
            types: table.schema.fields.iter().map(|f| f.data_type).collect(),
            delimiter,
            quote,
            escape,
            min_safe: delimiter
                .max(quote.unwrap_or(0))
                .max(b'\n')
                .saturating_add(1),
            null_literal: table.option("csv.null-literal").unwrap_or("").to_owned(),
            element_delimiter: element_delimiter(table)?,
            line: String::with_capacity(256),
            text: String::with_capacity(64),
        })
    }
}

impl CsvEncoder {
    /// Whether Flink's writer quotes `s` (see [`CsvEncoder`]).
    fn must_quote(&self, s: &str) -> bool {
        let Some(q) = self.quote else {
            return false;
        };
        let esc = self.escape.unwrap_or(b'\\');
        (s.len() > 24 && s.encode_utf16().count() > 24)
            || s.bytes().any(|b| b < self.min_safe || b == q || b == esc)
    }

    /// Appends `s`, quoted when Flink's writer quotes it.
    fn push_text(&self, line: &mut String, s: &str) {
        let Some(q) = self.quote.filter(|_| self.must_quote(s)) else {
            line.push_str(s);
            return;
        };
        let q = q as char;
        let esc = self.escape.map(char::from);
        line.push(q);
        for c in s.chars() {
            if c == q || Some(c) == esc {
                line.push(c);
            }
            line.push(c);
        }
        line.push(q);
    }
}

impl Encoder for CsvEncoder {
    fn encode(&mut self, row: &Row, out: &mut Vec<u8>) -> Result<(), String> {
        if row.kind != RowKind::Insert && row.kind != RowKind::UpdateAfter {
            return Err(format!(
                "the csv format cannot encode a {} row",
                row.kind.short()
            ));
        }
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        for (i, ty) in self.types.iter().enumerate() {
            if i > 0 {
                line.push(self.delimiter as char);
            }
            match row.values.get(i).copied().unwrap_or(Value::Null) {
                Value::Null => line.push_str(&self.null_literal),
                Value::Str(r) if *ty == DataType::Bytes => {
                    // Flink's CSV format writes BYTES in base64, as text
                    use base64::Engine;
                    let mut text = std::mem::take(&mut self.text);
                    text.clear();
                    base64::engine::general_purpose::STANDARD
                        .encode_string(tillflow_types::value::heap_bytes(&row.heap, r), &mut text);
                    self.push_text(&mut line, &text);
                    self.text = text;
                }
                Value::Str(r) => {
                    let mut text = std::mem::take(&mut self.text);
                    text.clear();
                    let s = match ty {
                        DataType::Map(..) => {
                            tillflow_runtime::cast::write_text(
                                &mut text,
                                Value::Str(r),
                                *ty,
                                &row.heap,
                            );
                            text.as_str()
                        }
                        // a ROW's fields and an ARRAY's elements joined by the element
                        // delimiter, NULL as nothing, as Flink writes them
                        DataType::Row(rt) => {
                            for (f, (_, fty)) in rt.fields.iter().enumerate() {
                                if f > 0 {
                                    text.push_str(&self.element_delimiter);
                                }
                                let v = tillflow_types::nested::row_field(&row.heap, r, rt, f);
                                write_element(&mut text, v, *fty, &row.heap);
                            }
                            text.as_str()
                        }
                        DataType::Array(et) | DataType::Multiset(et) => {
                            for (n, v) in
                                tillflow_types::nested::elements(&row.heap, r, **et).enumerate()
                            {
                                if n > 0 {
                                    text.push_str(&self.element_delimiter);
                                }
                                write_element(&mut text, v, **et, &row.heap);
                            }
                            text.as_str()
                        }
                        _ => heap_str(&row.heap, r),
                    };
                    self.push_text(&mut line, s);
                    self.text = text;
                }
                v @ (Value::Timestamp(_) | Value::Date(_) | Value::Time(_)) => {
                    // written as text, quoted as text is (a timestamp holds a space)
                    let mut text = std::mem::take(&mut self.text);
                    text.clear();
                    write_scalar(&mut text, v, *ty, false, false, false);
                    self.push_text(&mut line, &text);
                    self.text = text;
                }
                v => write_scalar(&mut line, v, *ty, false, false, false),
            }
        }
        line.push('\n');
        out.extend_from_slice(line.as_bytes());
        self.line = line;
        Ok(())
    }

    fn accepts_changes(&self) -> bool {
        false
    }
}

/// The `csv` format in the registry.
pub struct CsvFormat;

/// The registry's `csv`.
pub static CSV: CsvFormat = CsvFormat;

impl super::Format for CsvFormat {
    fn name(&self) -> &'static str {
        "csv"
    }
    fn options(&self) -> &'static [crate::OptionSpec] {
        super::CSV_OPTIONS
    }
    fn check(&self, table: &TableSpec) -> Result<(), ConnectorError> {
        CsvDecoder::new(table)?;
        CsvEncoder::new(table).map(drop)
    }
    fn decoder(&self, table: &TableSpec) -> Result<Box<dyn super::Decoder>, ConnectorError> {
        Ok(Box::new(CsvDecoder::new(table)?))
    }
    fn encoder(&self, table: &TableSpec) -> Result<Box<dyn super::Encoder>, ConnectorError> {
        Ok(Box::new(CsvEncoder::new(table)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tillflow_types::{Field, Schema};

    #[test]
    fn round_trip_with_quotes_and_nulls() {
        let t = TableSpec {
            name: "t".into(),
            schema: Schema::new(vec![
                Field::new("id", DataType::Int),
                Field::new("name", DataType::String(None)),
                Field::new("ts", DataType::Timestamp(3)),
            ]),
            options: Default::default(),
            primary_key: vec![],
            metadata: vec![],
            partition_keys: vec![],
        };
        let mut d = CsvDecoder::new(&t).unwrap();
        let mut row = Row::default();
        d.decode(b"7,\"a,\"\"b\",2024-03-01 20:00:00.5", &mut row)
            .unwrap();
        let mut out = Vec::new();
        CsvEncoder::new(&t).unwrap().encode(&row, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            // quoted as Flink's writer quotes a timestamp (it holds a space)
            "7,\"a,\"\"b\",\"2024-03-01 20:00:00.5\"\n"
        );
        row.clear();
        d.decode(b",x,", &mut row).unwrap();
        assert_eq!(row.values[0], Value::Null);
        let e = d.decode(b"x,y,z", &mut row).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("id"));
        assert!(d.decode(b"1,2", &mut row).is_err());
    }
}
