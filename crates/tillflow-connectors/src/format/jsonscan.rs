//! A scanner for one JSON object per record, built for the decode hot path.
//!
//! It walks the bytes once: keys are matched against the table's columns (trying the next
//! column in schema order first, since producers usually write fields in order), values are
//! sliced in place (strings are unescaped into a reused buffer only when they contain escapes),
//! and unknown fields are skipped without being decoded. Nothing is allocated per record.

/// A JSON syntax error at a byte offset.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    /// Byte offset in the record.
    pub at: usize,
    /// What was expected.
    pub message: &'static str,
}

/// Position of the first `"` or `\\` in `b`, scanning 8 bytes at a time (SWAR).
#[inline]
pub fn find_quote_or_backslash(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has = |x: u64, c: u8| {
        let y = x ^ (ONES * c as u64);
        y.wrapping_sub(ONES) & !y & HIGH
    };
    let mut i = 0;
    while i + 8 <= b.len() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i..i + 8]);
        let x = u64::from_le_bytes(w);
        let m = has(x, b'"') | has(x, b'\\');
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\')
        .map(|p| i + p)
}

/// One scalar or nested value, borrowed from the record (or the unescape buffer).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Token<'a> {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A number's text.
    Number(&'a str),
    /// A string's (unescaped) text.
    Str(&'a str),
    /// A nested object or array's raw text (a slice of the record, already valid UTF-8).
    Nested(&'a str),
}

/// Cursor over one record (validated as UTF-8 once, so string slices need no further checks).
pub struct Scanner<'a> {
    text: &'a str,
    b: &'a [u8],
    /// Current offset.
    pub i: usize,
}

fn err<T>(at: usize, message: &'static str) -> Result<T, SyntaxError> {
    Err(SyntaxError { at, message })
}

impl<'a> Scanner<'a> {
    /// A scanner at the start of `text`.
    pub fn new(text: &'a str) -> Self {
        Scanner {
            text,
            b: text.as_bytes(),
            i: 0,
        }
    }

    /// The whole text the scanner reads (positions index it).
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// Skips whitespace.
    #[inline]
    pub fn ws(&mut self) {
        while let Some(c) = self.b.get(self.i) {
            if matches!(c, b' ' | b'\t' | b'\r' | b'\n') {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    /// The next non-whitespace byte, without consuming it.
    #[inline]
    pub fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    /// Consumes `c` (after whitespace) or fails.
    #[inline]
    pub fn expect(&mut self, c: u8, message: &'static str) -> Result<(), SyntaxError> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            err(self.i, message)
        }
    }

    /// True at the end of the input (whitespace aside).
    pub fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    /// Reads a string starting at the opening quote; escaped strings are unescaped into `buf`.
    #[inline]
    pub fn string<'s>(&mut self, buf: &'s mut Vec<u8>) -> Result<StrSlice<'a, 's>, SyntaxError>
    where
        'a: 's,
    {
        let start = self.i + 1;
        let rest = self.b.get(start..).unwrap_or(&[]);
        match find_quote_or_backslash(rest) {
            Some(p) if rest[p] == b'"' => {
                let j = start + p;
                self.i = j + 1;
                // quotes are ASCII, so both ends are character boundaries
                match self.text.get(start..j) {
                    Some(s) => Ok(StrSlice::Borrowed(s)),
                    None => err(start, "invalid UTF-8 in a string"),
                }
            }
            Some(p) => self.escaped(start, start + p, buf).map(StrSlice::Buffered),
            None => err(self.b.len(), "unterminated string"),
        }
    }

    /// Reads a field name: the raw bytes when it has no escapes (compared, never stored, so not
    /// validated), else its unescaped text in `buf`.
    #[inline(always)]
    pub fn key<'s>(&mut self, buf: &'s mut Vec<u8>) -> Result<&'s [u8], SyntaxError>
    where
        'a: 's,
    {
        let start = self.i + 1;
        let rest = &self.b[start.min(self.b.len())..];
        match find_quote_or_backslash(rest) {
            Some(p) if rest[p] == b'"' => {
                self.i = start + p + 1;
                Ok(&self.b[start..start + p])
            }
            Some(p) => self.escaped(start, start + p, buf).map(str::as_bytes),
            None => err(self.b.len(), "unterminated string"),
        }
    }

    fn escaped<'s>(
        &mut self,
        start: usize,
        first_escape: usize,
        buf: &'s mut Vec<u8>,
    ) -> Result<&'s str, SyntaxError> {
        buf.clear();
        buf.extend_from_slice(&self.b[start..first_escape]);
        let mut j = first_escape;
        loop {
            let Some(&c) = self.b.get(j) else {
                return err(j, "unterminated string");
            };
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.b.get(j + 1) else {
                        return err(j, "unterminated escape");
                    };
                    j += 2;
                    match e {
                        b'"' => buf.push(b'"'),
                        b'\\' => buf.push(b'\\'),
                        b'/' => buf.push(b'/'),
                        b'b' => buf.push(8),
                        b'f' => buf.push(12),
                        b'n' => buf.push(b'\n'),
                        b'r' => buf.push(b'\r'),
                        b't' => buf.push(b'\t'),
                        b'u' => {
                            let mut cp = self.hex4(j)?;
                            j += 4;
                            if (0xD800..0xDC00).contains(&cp)
                                && self.b.get(j) == Some(&b'\\')
                                && self.b.get(j + 1) == Some(&b'u')
                            {
                                let lo = self.hex4(j + 2)?;
                                if (0xDC00..0xE000).contains(&lo) {
                                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                                    j += 6;
                                }
                            }
                            let ch = char::from_u32(cp).unwrap_or('\u{FFFD}');
                            let mut tmp = [0u8; 4];
                            buf.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
                        }
                        _ => return err(j - 1, "invalid escape"),
                    }
                }
                c => {
                    buf.push(c);
                    j += 1;
                }
            }
        }
        self.i = j + 1;
        std::str::from_utf8(buf).or_else(|_| err(start, "invalid UTF-8 in a string"))
    }

    fn hex4(&self, j: usize) -> Result<u32, SyntaxError> {
        let h = self.b.get(j..j + 4).ok_or(SyntaxError {
            at: j,
            message: "short \\u escape",
        })?;
        let s = std::str::from_utf8(h).map_err(|_| SyntaxError {
            at: j,
            message: "bad \\u escape",
        })?;
        u32::from_str_radix(s, 16).map_err(|_| SyntaxError {
            at: j,
            message: "bad \\u escape",
        })
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), SyntaxError> {
        if self.b.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            Ok(())
        } else {
            err(self.i, "invalid literal")
        }
    }

    fn number(&mut self) -> Result<&'a str, SyntaxError> {
        let start = self.i;
        let mut j = self.i;
        if self.b.get(j) == Some(&b'-') {
            j += 1;
        }
        let digits_start = j;
        while self.b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        if j == digits_start {
            return err(j, "invalid number");
        }
        if self.b.get(j) == Some(&b'.') {
            j += 1;
            let f = j;
            while self.b.get(j).is_some_and(u8::is_ascii_digit) {
                j += 1;
            }
            if j == f {
                return err(j, "invalid number");
            }
        }
        if matches!(self.b.get(j), Some(b'e' | b'E')) {
            j += 1;
            if matches!(self.b.get(j), Some(b'+' | b'-')) {
                j += 1;
            }
            let e = j;
            while self.b.get(j).is_some_and(u8::is_ascii_digit) {
                j += 1;
            }
            if j == e {
                return err(j, "invalid number");
            }
        }
        self.i = j;
        self.text.get(start..j).ok_or(SyntaxError {
            at: start,
            message: "invalid number",
        })
    }

    /// Skips one value of any kind; returns its raw bytes.
    pub fn skip_value(&mut self) -> Result<&'a [u8], SyntaxError> {
        self.ws();
        let start = self.i;
        match self.b.get(self.i) {
            Some(b'"') => {
                let mut scratch = Vec::new();
                self.string(&mut scratch)?;
            }
            Some(b'{') | Some(b'[') => {
                let mut depth = 0usize;
                while let Some(&c) = self.b.get(self.i) {
                    match c {
                        b'{' | b'[' => {
                            depth += 1;
                            self.i += 1;
                        }
                        b'}' | b']' => {
                            depth -= 1;
                            self.i += 1;
                            if depth == 0 {
                                return Ok(&self.b[start..self.i]);
                            }
                        }
                        b'"' => {
                            let mut scratch = Vec::new();
                            self.string(&mut scratch)?;
                        }
                        _ => self.i += 1,
                    }
                }
                return err(self.i, "unterminated object or array");
            }
            Some(b't') => self.literal(b"true")?,
            Some(b'f') => self.literal(b"false")?,
            Some(b'n') => self.literal(b"null")?,
            Some(b'-' | b'0'..=b'9') => {
                self.number()?;
            }
            _ => return err(self.i, "expected a value"),
        }
        Ok(&self.b[start..self.i])
    }

    /// Reads one value.
    #[inline(always)]
    pub fn value<'s>(&mut self, buf: &'s mut Vec<u8>) -> Result<Token<'s>, SyntaxError>
    where
        'a: 's,
    {
        self.ws();
        match self.b.get(self.i) {
            Some(b'"') => Ok(match self.string(buf)? {
                StrSlice::Borrowed(s) => Token::Str(s),
                StrSlice::Buffered(s) => Token::Str(s),
            }),
            Some(b'-' | b'0'..=b'9') => Ok(Token::Number(self.number()?)),
            Some(b'n') => self.literal(b"null").map(|_| Token::Null),
            Some(b't') => self.literal(b"true").map(|_| Token::Bool(true)),
            Some(b'f') => self.literal(b"false").map(|_| Token::Bool(false)),
            Some(b'{' | b'[') => {
                let start = self.i;
                self.skip_value()?;
                // brackets are ASCII: both ends are character boundaries of the record
                match self.text.get(start..self.i) {
                    Some(s) => Ok(Token::Nested(s)),
                    None => err(start, "invalid UTF-8 in a nested value"),
                }
            }
            _ => err(self.i, "expected a value"),
        }
    }
}

/// A string either borrowed from the record or unescaped into a buffer.
pub enum StrSlice<'a, 's> {
    /// No escapes: a slice of the record.
    Borrowed(&'a str),
    /// Unescaped text.
    Buffered(&'s str),
}

impl<'s> StrSlice<'_, 's> {
    /// The text.
    pub fn as_str(&self) -> &str {
        match self {
            StrSlice::Borrowed(s) => s,
            StrSlice::Buffered(s) => s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_quotes_like_a_plain_scan() {
        let texts: [&[u8]; 6] = [
            b"abc\"",
            b"0123456789\\x",
            b"no quote here at all",
            b"",
            b"\"",
            b"exactly8\"tail",
        ];
        for t in texts {
            let plain = t.iter().position(|&c| c == b'"' || c == b'\\');
            assert_eq!(
                find_quote_or_backslash(t),
                plain,
                "{:?}",
                String::from_utf8_lossy(t)
            );
        }
        // a byte 0x80+ next to a match must not confuse the SWAR mask
        let t = "é\"…".as_bytes();
        assert_eq!(find_quote_or_backslash(t), Some(2));
    }

    #[test]
    fn scans_values_and_escapes() {
        let text = r#"{"a": "x\"y\u00e9\ud83d\ude00", "b": -1.5e3, "c": [1, {"d": "]"}], "e": null, "f": true}"#;
        let mut s = Scanner::new(text);
        let mut buf = Vec::new();
        s.expect(b'{', "object").unwrap();
        let mut keys = vec![];
        loop {
            assert_eq!(s.peek(), Some(b'"'));
            let k = s.string(&mut Vec::new()).unwrap().as_str().to_owned();
            s.expect(b':', "colon").unwrap();
            let v = format!("{:?}", s.value(&mut buf).unwrap());
            keys.push((k, v));
            if s.peek() == Some(b',') {
                s.i += 1;
                continue;
            }
            s.expect(b'}', "end").unwrap();
            break;
        }
        assert!(s.at_end());
        assert_eq!(keys[0].1, "Str(\"x\\\"yé😀\")");
        assert_eq!(keys[1].1, "Number(\"-1.5e3\")");
        assert!(keys[2].1.starts_with("Nested"));
        assert_eq!(keys[3].1, "Null");
        assert_eq!(keys[4].1, "Bool(true)");
        assert!(Scanner::new("\"abc").string(&mut buf).is_err());
        assert!(Scanner::new("01x").value(&mut buf).is_ok());
        assert!(Scanner::new("-").value(&mut buf).is_err());
    }
}
