//! Formats: bytes to rows (decoders) and rows to bytes (encoders), with Flink's option names.
//!
//! Every format is one [`Format`] in the [`REGISTRY`]: its name, its options, a check of their
//! values without I/O, and what it can make — a [`Decoder`] / [`Encoder`] of one record (a line,
//! a Kafka message) for the record formats, a [`FileFormat`] (a reader over a whole file, a
//! writer of a whole part file) for the file formats such as Parquet. The filesystem connector
//! writes every format through [`part_writer`]: a file format's own writer, or a record
//! format's encoder behind the one line adapter ([`LineWriter`]).

pub mod avro;
pub mod csv;
pub mod debezium;
pub mod framing;
pub mod json;
pub mod json_nested;
pub mod jsonscan;
pub mod parquet;
pub mod text;

use crate::{opt, ConnectorError, OptionSpec, TableSpec};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use tillflow_types::Row;

/// One format: what the registry knows of it.
pub trait Format: Sync {
    /// The name `'format'` takes.
    fn name(&self) -> &'static str;
    /// The format's options (keys as written in `WITH`).
    fn options(&self) -> &'static [OptionSpec];
    /// Checks the option values and the columns the format must hold, without I/O.
    fn check(&self, table: &TableSpec) -> Result<(), ConnectorError>;
    /// A decoder of one record (a line, a message).
    fn decoder(&self, table: &TableSpec) -> Result<Box<dyn Decoder>, ConnectorError>;
    /// An encoder of one record.
    fn encoder(&self, table: &TableSpec) -> Result<Box<dyn Encoder>, ConnectorError>;
    /// Whether update and delete rows can be written.
    fn accepts_changes(&self) -> bool {
        false
    }
    /// The whole-file reader and writer of a file format (none for record formats).
    fn file_format(&self) -> Option<&dyn FileFormat> {
        None
    }
    /// Whether a file format also encodes single records (Avro: a datum per Kafka message).
    fn records_too(&self) -> bool {
        false
    }
    /// Whether a Kafka message or a line can hold one record of this format.
    fn holds_records(&self) -> bool {
        self.file_format().is_none() || self.records_too()
    }
}

/// A format whose unit is a whole file (Parquet): files only, not Kafka messages.
pub trait FileFormat: Sync {
    /// A writer of one part file into `out`.
    fn writer(&self, table: &TableSpec, out: File) -> Result<Box<dyn PartWriter>, ConnectorError>;
    /// A reader of the file at `path`, yielding rows of the table's physical columns.
    fn reader(&self, table: &TableSpec, path: &Path)
        -> Result<Box<dyn PartReader>, ConnectorError>;
}

/// Writes the rows of one part file.
pub trait PartWriter: Send {
    /// Appends a row.
    fn write(&mut self, row: &Row) -> Result<(), String>;
    /// Writes what is buffered out to the file (a file format may keep a row group until
    /// [`PartWriter::finish`]).
    fn flush(&mut self) -> std::io::Result<()>;
    /// About how many bytes the file holds so far (written and buffered), for rolling.
    fn size(&self) -> u64;
    /// Completes the file (a Parquet footer) and returns it, flushed but not synced.
    fn finish(self: Box<Self>) -> Result<File, String>;
}

/// Reads the rows of one file of a file format, in the file's order.
pub trait PartReader: Send {
    /// The next row into `row` (cleared by the caller); false at the end of the file.
    fn next(&mut self, row: &mut Row) -> Result<bool, DecodeError>;
    /// Rows returned so far.
    fn position(&self) -> u64;
}

/// Every format tillflow reads or writes.
pub static REGISTRY: &[&dyn Format] = &[
    &json::JSON,
    &csv::CSV,
    &debezium::DEBEZIUM_JSON,
    &parquet::PARQUET,
    &avro::AVRO,
];

/// The format named `name`.
pub fn lookup(name: &str) -> Option<&'static dyn Format> {
    REGISTRY.iter().copied().find(|f| f.name() == name)
}

/// The names of every format, for messages.
pub fn names() -> String {
    REGISTRY
        .iter()
        .map(|f| f.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The names of the record formats (those a Kafka message can hold), for messages.
pub fn record_format_names() -> String {
    REGISTRY
        .iter()
        .filter(|f| f.holds_records())
        .map(|f| f.name())
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) const JSON_OPTIONS: &[OptionSpec] = &[
    opt("json.fail-on-missing-field"),
    opt("json.ignore-parse-errors"),
    opt("json.timestamp-format.standard"),
    opt("json.map-null-key.mode"),
    opt("json.map-null-key.literal"),
    opt("json.encode.decimal-as-plain-number"),
    opt("json.encode.ignore-null-fields"),
];

pub(crate) const CSV_OPTIONS: &[OptionSpec] = &[
    opt("csv.field-delimiter"),
    opt("csv.quote-character"),
    opt("csv.disable-quote-character"),
    opt("csv.allow-comments"),
    opt("csv.ignore-parse-errors"),
    opt("csv.null-literal"),
    opt("csv.escape-character"),
    opt("csv.array-element-delimiter"),
];

pub(crate) const DEBEZIUM_OPTIONS: &[OptionSpec] = &[
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
    lookup(name).map(|f| f.options())
}

/// The format a table's `'format'` names (json when absent).
fn of(table: &TableSpec) -> Result<&'static dyn Format, ConnectorError> {
    let name = table.option("format").unwrap_or("json");
    lookup(name)
        .ok_or_else(|| table.error(format!("unknown format '{name}' (available: {})", names())))
}

/// A big-endian two's complement integer of up to 16 bytes (a decimal's unscaled value as
/// Parquet and Avro store it; no bytes is 0).
pub(crate) fn be_i128(b: &[u8]) -> Option<i128> {
    if b.len() > 16 {
        return None;
    }
    let fill = if b.first().is_some_and(|x| x & 0x80 != 0) {
        0xff
    } else {
        0
    };
    let mut buf = [fill; 16];
    buf[16 - b.len()..].copy_from_slice(b);
    Some(i128::from_be_bytes(buf))
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
    /// Whether each encoding ends with a newline that a message leaves out (text formats); a
    /// binary encoding (Avro) is taken whole.
    fn delimited(&self) -> bool {
        true
    }
}

/// The decoder the table's `'format'` names.
pub fn decoder(table: &TableSpec) -> Result<Box<dyn Decoder>, ConnectorError> {
    of(table)?.decoder(table)
}

/// The encoder the table's `'format'` names.
pub fn encoder(table: &TableSpec) -> Result<Box<dyn Encoder>, ConnectorError> {
    of(table)?.encoder(table)
}

/// Whether a table's format can encode update/delete rows.
pub fn format_accepts_changes(table: &TableSpec) -> bool {
    of(table).is_ok_and(|f| f.accepts_changes())
}

/// Whether a table's format is a file format (read and written a whole file at a time).
pub fn is_file_format(table: &TableSpec) -> bool {
    of(table).is_ok_and(|f| f.file_format().is_some())
}

/// Checks the values of a table's format options (no I/O).
pub fn check(table: &TableSpec) -> Result<(), ConnectorError> {
    of(table)?.check(table)
}

/// A writer of one part file of the table's format into `out`: a file format's own, or the
/// record format's encoder writing a line per row.
pub fn part_writer(table: &TableSpec, out: File) -> Result<Box<dyn PartWriter>, ConnectorError> {
    let f = of(table)?;
    match f.file_format() {
        Some(ff) => ff.writer(table, out),
        None => Ok(Box::new(LineWriter {
            out: BufWriter::with_capacity(1 << 16, out),
            encoder: f.encoder(table)?,
            buf: Vec::with_capacity(1 << 12),
            written: 0,
        })),
    }
}

/// A reader of a whole file of the table's file format (`None` for a record format, whose files
/// the filesystem source reads line by line).
pub fn part_reader(
    table: &TableSpec,
    path: &Path,
) -> Result<Option<Box<dyn PartReader>>, ConnectorError> {
    match of(table)?.file_format() {
        Some(ff) => ff.reader(table, path).map(Some),
        None => Ok(None),
    }
}

/// The line adapter: a record format's encoder writing one line per row into a buffered file.
pub struct LineWriter {
    out: BufWriter<File>,
    encoder: Box<dyn Encoder>,
    buf: Vec<u8>,
    written: u64,
}

impl PartWriter for LineWriter {
    fn write(&mut self, row: &Row) -> Result<(), String> {
        self.buf.clear();
        self.encoder.encode(row, &mut self.buf)?;
        self.written += self.buf.len() as u64;
        self.out.write_all(&self.buf).map_err(|e| e.to_string())
    }

    fn size(&self) -> u64 {
        self.written
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    fn finish(self: Box<Self>) -> Result<File, String> {
        self.out.into_inner().map_err(|e| e.error().to_string())
    }
}

/// Damaged copies of `good` for the formats' tests: every tenth cut short, the others with one
/// to four bytes overwritten, drawn from `seed`.
#[cfg(test)]
pub(crate) fn damaged_copies(good: &[u8], seed: u64, n: usize) -> Vec<Vec<u8>> {
    let mut state = seed;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    (0..n)
        .map(|case| {
            let mut bad = good.to_vec();
            if case % 10 == 0 {
                bad.truncate(next() % good.len().max(1));
            } else {
                for _ in 0..1 + case % 4 {
                    let at = next() % bad.len().max(1);
                    if let Some(b) = bad.get_mut(at) {
                        *b = next() as u8;
                    }
                }
            }
            bad
        })
        .collect()
}
