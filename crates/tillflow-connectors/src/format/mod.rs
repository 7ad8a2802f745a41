//! Formats: bytes to rows (decoders) and rows to bytes (encoders), with Flink's option names.

pub mod csv;
pub mod debezium;
pub mod framing;
pub mod json;
pub mod json_nested;
pub mod jsonscan;
pub mod text;

use crate::{opt, ConnectorError, OptionSpec, TableSpec};
use tillflow_types::Row;

/// Names of every format.
pub const FORMATS: &[&str] = &["json", "csv", "debezium-json"];

const JSON_OPTIONS: &[OptionSpec] = &[
    opt("json.fail-on-missing-field"),
    opt("json.ignore-parse-errors"),
    opt("json.timestamp-format.standard"),
    opt("json.map-null-key.mode"),
    opt("json.map-null-key.literal"),
    opt("json.encode.decimal-as-plain-number"),
    opt("json.encode.ignore-null-fields"),
];

const CSV_OPTIONS: &[OptionSpec] = &[
    opt("csv.field-delimiter"),
    opt("csv.quote-character"),
    opt("csv.disable-quote-character"),
    opt("csv.allow-comments"),
    opt("csv.ignore-parse-errors"),
    opt("csv.null-literal"),
    opt("csv.escape-character"),
    opt("csv.array-element-delimiter"),
];

const DEBEZIUM_OPTIONS: &[OptionSpec] = &[
    opt("debezium-json.schema-include"),
    opt("debezium-json.ignore-parse-errors"),
    opt("debezium-json.timestamp-format.standard"),
    opt("debezium-json.map-null-key.mode"),
    opt("debezium-json.map-null-key.literal"),
    opt("debezium-json.encode.decimal-as-plain-number"),
];

/// The longest piece of input an error message quotes, in bytes.
pub const QUOTED_INPUT: usize = 200;

/// `text` as an error quotes it: whole up to [`QUOTED_INPUT`] bytes, else its start and its size
/// (a 10 MB field must not be echoed to the terminal and the logs).
pub fn clip(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= QUOTED_INPUT {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut end = QUOTED_INPUT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}… ({} bytes in all)", &text[..end], text.len()))
}

/// The options of a format, or `None` if there is no such format.
pub fn format(name: &str) -> Option<&'static [OptionSpec]> {
    match name {
        "json" => Some(JSON_OPTIONS),
        "csv" => Some(CSV_OPTIONS),
        "debezium-json" => Some(DEBEZIUM_OPTIONS),
        _ => None,
    }
}

/// Why a record could not be decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodeError {
    /// The column being decoded, if the fault is in one.
    pub field: Option<String>,
    /// What was wrong.
    pub message: String,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(c) => write!(f, "field `{c}`: {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

/// Decodes one record (one line, or a CSV record whose quoted fields span lines) into a row of
/// the table's physical columns.
pub trait Decoder: Send {
    /// Where a record of a file ends (one per line unless the format says otherwise).
    fn framing(&self) -> framing::Framing {
        framing::Framing::Lines
    }
    /// Decodes `input` into `row` (cleared by the caller).
    fn decode(&mut self, input: &[u8], row: &mut Row) -> Result<(), DecodeError>;
    /// Whether malformed records are skipped (the format's `ignore-parse-errors`).
    fn ignore_parse_errors(&self) -> bool;
    /// With `strict`, every conversion error fails the record (used when a dead-letter output
    /// takes malformed records whole); otherwise `ignore-parse-errors` may null single fields.
    fn set_strict(&mut self, _strict: bool) {}
    /// Records decoded with at least one field set to NULL because it did not convert.
    fn nulled_records(&self) -> u64 {
        0
    }
}

/// Encodes rows as records.
pub trait Encoder: Send {
    /// Appends the encoding of `row` (one line, with its newline) to `out`.
    fn encode(&mut self, row: &Row, out: &mut Vec<u8>) -> Result<(), String>;
    /// Whether update/delete rows can be encoded.
    fn accepts_changes(&self) -> bool;
}

/// The decoder the table's `'format'` names.
pub fn decoder(table: &TableSpec) -> Result<Box<dyn Decoder>, ConnectorError> {
    match table.option("format").unwrap_or("json") {
        "json" => Ok(Box::new(json::JsonDecoder::new(table)?)),
        "csv" => Ok(Box::new(csv::CsvDecoder::new(table)?)),
        "debezium-json" => {
            Err(table.error("format 'debezium-json' can only be written by tillflow so far"))
        }
        other => Err(table.error(format!("unknown format '{other}'"))),
    }
}

/// The encoder the table's `'format'` names.
pub fn encoder(table: &TableSpec) -> Result<Box<dyn Encoder>, ConnectorError> {
    match table.option("format").unwrap_or("json") {
        "json" => Ok(Box::new(json::JsonEncoder::new(table, "json")?)),
        "csv" => Ok(Box::new(csv::CsvEncoder::new(table)?)),
        "debezium-json" => Ok(Box::new(debezium::DebeziumEncoder::new(table)?)),
        other => Err(table.error(format!("unknown format '{other}'"))),
    }
}

/// Whether a table's format can encode update/delete rows.
pub fn format_accepts_changes(table: &TableSpec) -> bool {
    table.option("format") == Some("debezium-json")
}
