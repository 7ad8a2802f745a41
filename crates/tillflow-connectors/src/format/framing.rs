//! Where a record of a file ends.
//!
//! JSON holds one record per line. Flink's CSV format follows RFC 4180: a quoted field may hold
//! newlines (and, with `'csv.escape-character'`, an escaped newline belongs to its field), so a
//! CSV record ends at the first newline outside quotes. [`RecordScan`] finds that end in one pass
//! that can be resumed as more bytes are read, skipping through plain lines with `memchr`.
//!
//! A quote that never closes would make the rest of the file one record. So a record may span
//! lines only up to [`MAX_MULTILINE_RECORD`] bytes and only until the end of the file: past
//! either, its bytes up to the end of the line at the limit (or the file's end) are read again
//! one record per line, a [`LineSpan`] (the opening line then fails as an unterminated quoted
//! field, and the lines after it are read as they are). The span depends only on the bytes from
//! the record's start, so a reader on one thread, one on several and a resumed one cut the same
//! records. Every byte is scanned at most twice, and a malformed line costs one bad record, not
//! the rest of the file.

/// How a file's bytes split into records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// One record per line.
    Lines,
    /// CSV: a newline inside a quoted field, or right after the escape character, does not end
    /// the record.
    Csv {
        /// The field delimiter.
        delimiter: u8,
        /// The quote character (None: `'csv.disable-quote-character'`).
        quote: Option<u8>,
        /// The escape character (`'csv.escape-character'`), if any.
        escape: Option<u8>,
        /// `'csv.allow-comments'`: a record starting with `#` is a comment line, ended by its
        /// newline whatever it holds.
        comments: bool,
    },
}

/// The most bytes a record may span over several lines (a quoted field with newlines); past it
/// the record's lines are read one by one.
pub const MAX_MULTILINE_RECORD: usize = 16 << 20;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    /// At the start of a field.
    #[default]
    FieldStart,
    /// Inside an unquoted field.
    Unquoted,
    /// Inside a quoted field.
    Quoted,
    /// Just after a quote inside a quoted field: it closes the field unless another follows.
    QuoteInQuoted,
    /// Just after the escape character (inside quotes or not).
    Escaped { quoted: bool },
    /// In a comment line.
    Comment,
}

/// A scan for the end of the record that starts where it was last reset.
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordScan {
    state: State,
    /// Whether a byte of the record was seen.
    started: bool,
}

impl RecordScan {
    /// Starts over at a record's start.
    pub fn reset(&mut self) {
        self.state = State::FieldStart;
        self.started = false;
    }

    /// Whether the bytes fed so far end inside a quoted field or right after an escape: the
    /// record goes on past a newline.
    pub fn open(&self) -> bool {
        matches!(self.state, State::Quoted | State::Escaped { .. })
    }

    /// Feeds the next bytes of the record: the index just after the newline that ends it, or
    /// None when `bytes` end inside it (the scan then goes on with the next bytes fed).
    pub fn feed(&mut self, framing: &Framing, bytes: &[u8]) -> Option<usize> {
        let Framing::Csv {
            delimiter,
            quote,
            escape,
            comments,
        } = *framing
        else {
            return memchr::memchr(b'\n', bytes).map(|p| p + 1);
        };
        if !self.started && !bytes.is_empty() {
            self.started = true;
            if comments && bytes[0] == b'#' {
                self.state = State::Comment;
            }
        }
        let is_quote = |c: u8| quote == Some(c);
        let mut i = 0;
        while i < bytes.len() {
            match self.state {
                State::Comment => {
                    let end = memchr::memchr(b'\n', &bytes[i..]).map(|p| i + p + 1);
                    if end.is_some() {
                        self.reset();
                    }
                    return end;
                }
                State::FieldStart | State::Unquoted => {
                    // outside quotes, a line without quote or escape characters ends the record
                    let nl = memchr::memchr(b'\n', &bytes[i..]).map(|p| i + p);
                    let line_end = nl.unwrap_or(bytes.len());
                    let line = &bytes[i..line_end];
                    let special = match (quote, escape) {
                        (Some(q), Some(e)) => memchr::memchr2(q, e, line),
                        (Some(q), None) | (None, Some(q)) => memchr::memchr(q, line),
                        (None, None) => None,
                    };
                    let Some(p) = special.map(|p| i + p) else {
                        if let Some(nl) = nl {
                            self.reset();
                            return Some(nl + 1);
                        }
                        if let Some(&last) = line.last() {
                            self.state = if last == delimiter {
                                State::FieldStart
                            } else {
                                State::Unquoted
                            };
                        }
                        return None;
                    };
                    let at_field_start = if p == i {
                        self.state == State::FieldStart
                    } else {
                        bytes[p - 1] == delimiter
                    };
                    self.state = if is_quote(bytes[p]) && at_field_start {
                        State::Quoted
                    } else if is_quote(bytes[p]) {
                        // a quote inside an unquoted field is text
                        State::Unquoted
                    } else {
                        State::Escaped { quoted: false }
                    };
                    i = p + 1;
                }
                State::Quoted => {
                    let next = match escape.filter(|e| Some(*e) != quote) {
                        Some(e) => memchr::memchr2(quote.unwrap_or(e), e, &bytes[i..]),
                        None => quote.and_then(|q| memchr::memchr(q, &bytes[i..])),
                    };
                    let p = next.map(|p| i + p)?;
                    self.state = if is_quote(bytes[p]) {
                        State::QuoteInQuoted
                    } else {
                        State::Escaped { quoted: true }
                    };
                    i = p + 1;
                }
                State::QuoteInQuoted => {
                    if is_quote(bytes[i]) {
                        // a doubled quote is a quote inside the field
                        self.state = State::Quoted;
                        i += 1;
                    } else {
                        // the field's quotes are closed; what follows is read as unquoted text
                        self.state = State::Unquoted;
                    }
                }
                State::Escaped { quoted } => {
                    self.state = if quoted {
                        State::Quoted
                    } else {
                        State::Unquoted
                    };
                    i += 1;
                }
            }
        }
        None
    }
}

/// Bytes of a file read one record per line ([`Framing::Lines`] whatever the format): a record
/// longer than [`MAX_MULTILINE_RECORD`], or still open at the end of the file, from its start to
/// the end of the line holding its byte at the limit (or to the file's end).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LineSpan {
    /// Its first byte's offset in the file.
    pub from: u64,
    /// The offset just past it.
    pub until: u64,
}

impl LineSpan {
    /// Whether a record starting at `offset` is a line.
    pub fn holds(&self, offset: u64) -> bool {
        self.from <= offset && offset < self.until
    }

    /// The span in a buffer of the file starting at `start`.
    pub fn within(&self, start: u64) -> std::ops::Range<usize> {
        let rel = |o: u64| usize::try_from(o.saturating_sub(start)).unwrap_or(usize::MAX);
        rel(self.from)..rel(self.until)
    }
}

/// The end of the record at `bytes[at..]` in a buffer whose records are complete (the last one
/// may lack its newline): just after its newline, or the buffer's end. Records starting in
/// `lines` are single lines.
pub fn record_end(
    framing: &Framing,
    bytes: &[u8],
    at: usize,
    lines: std::ops::Range<usize>,
) -> usize {
    let rest = bytes.get(at..).unwrap_or_default();
    let end = if lines.contains(&at) {
        memchr::memchr(b'\n', rest).map(|p| p + 1)
    } else {
        RecordScan::default().feed(framing, rest)
    };
    end.map_or(bytes.len(), |e| at + e)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: Framing = Framing::Csv {
        delimiter: b',',
        quote: Some(b'"'),
        escape: None,
        comments: false,
    };

    fn records(framing: &Framing, text: &str) -> Vec<String> {
        let b = text.as_bytes();
        let mut out = vec![];
        let mut at = 0;
        while at < b.len() {
            let end = record_end(framing, b, at, 0..0);
            out.push(text[at..end].to_owned());
            at = end;
        }
        out
    }

    #[test]
    fn a_quoted_newline_stays_in_its_record() {
        let text = "1,\"two\nlines\",a\n2,plain,b\n3,\"has \"\"quotes\"\"\nand, comma\",c\n4,x\"y,d\n5,\"\"\n";
        assert_eq!(
            records(&CSV, text),
            [
                "1,\"two\nlines\",a\n",
                "2,plain,b\n",
                "3,\"has \"\"quotes\"\"\nand, comma\",c\n",
                "4,x\"y,d\n",
                "5,\"\"\n"
            ]
        );
        assert_eq!(records(&Framing::Lines, text).len(), 7);
        let no_quotes = Framing::Csv {
            delimiter: b',',
            quote: None,
            escape: None,
            comments: false,
        };
        assert_eq!(records(&no_quotes, text).len(), 7);
    }

    #[test]
    fn an_escaped_newline_or_quote_stays_in_its_record() {
        let esc = Framing::Csv {
            delimiter: b',',
            quote: Some(b'"'),
            escape: Some(b'\\'),
            comments: false,
        };
        let text = "1,two\\\nlines,a\n2,\"e\\\"q\nstill\",b\n3,c\n";
        assert_eq!(
            records(&esc, text),
            ["1,two\\\nlines,a\n", "2,\"e\\\"q\nstill\",b\n", "3,c\n"]
        );
    }

    /// Fed in pieces of every size, the scan finds the same ends as over the whole.
    #[test]
    fn the_scan_resumes_across_pieces() {
        let text = b"1,\"a\"\"\nb\",c\n2,d\n\"x\ny\"\"\",z\n";
        let whole = RecordScan::default().feed(&CSV, text);
        assert_eq!(whole, Some(12));
        for piece in 1..text.len() {
            let mut s = RecordScan::default();
            let mut got = None;
            for (k, chunk) in text.chunks(piece).enumerate() {
                if let Some(e) = s.feed(&CSV, chunk) {
                    got = Some(k * piece + e);
                    break;
                }
            }
            assert_eq!(got, whole, "pieces of {piece}");
        }
        let mut s = RecordScan::default();
        assert_eq!(s.feed(&CSV, b"1,\"open"), None);
        assert!(s.open());
        assert_eq!(s.feed(&CSV, b" still\n"), None);
        assert_eq!(s.feed(&CSV, b"closed\",x\nnext\n"), Some(10));
    }

    /// With comments allowed, a line starting with `#` ends at its newline whatever quotes it
    /// holds (a `#` later in a record is data).
    #[test]
    fn a_comment_line_is_one_record() {
        let commented = Framing::Csv {
            delimiter: b',',
            quote: Some(b'"'),
            escape: None,
            comments: true,
        };
        let text = "# a,\"b\n1,x\n2,\"#y\nz\"\n";
        assert_eq!(
            records(&commented, text),
            ["# a,\"b\n", "1,x\n", "2,\"#y\nz\"\n"]
        );
        let mut s = RecordScan::default();
        assert_eq!(s.feed(&commented, b"#"), None);
        assert_eq!(s.feed(&commented, b" \"open"), None);
        assert_eq!(s.feed(&commented, b"\n1,x\n"), Some(1));
    }

    #[test]
    fn lines_before_the_limit_are_records_of_their_own() {
        let text = b"1,\"open\n2,b\n3,\"c\nd\"\n";
        assert_eq!(record_end(&CSV, text, 0, 0..12), 8);
        assert_eq!(record_end(&CSV, text, 8, 0..12), 12);
        assert_eq!(record_end(&CSV, text, 12, 0..12), text.len());
        // with no span the open quote takes the next lines, up to the quote that closes it
        assert_eq!(record_end(&CSV, text, 0, 0..0), 17);
    }
}
