//! One file (or a directory's files, one after another) decoded on several threads, in file
//! order.
//!
//! The reading thread cuts the input into line-aligned chunks of about [`CHUNK_BYTES`] and deals
//! them to decoder threads in turn (chunk `k` to thread `k mod n`), each with its own decoder of
//! the table's format; each thread decodes its chunks in the order it gets them into recycled
//! rows, noting each row's line and end offset and every malformed line where it occurred. The
//! reading thread takes the decoded chunks back in the same turn, so rows come out exactly in
//! the file's order — the watermark, windows and late data see what they see on one thread —
//! and the malformed lines are handled there, in order, by the source's one bad-record policy.
//! Chunks end at record ends: a line end for JSON, the end of a CSV record (whose quoted fields
//! may span lines) for CSV, found by the format's [`Framing`].
//!
//! Where records are lines, the reading thread does not read at all: it deals byte ranges, and
//! each decoder thread reads its own chunk from the file — the lines that begin in its range,
//! the last one read on to its end — so a chunk's bytes are read into the core that decodes
//! them. A chunk's first line is then known only in order, and is counted as chunks are taken
//! back. CSV chunks are cut by the reading thread, which must follow quotes across lines.

use crate::format::framing::{record_end, Framing, LineSpan, RecordScan, MAX_MULTILINE_RECORD};
use crate::format::{DecodeError, Decoder};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use tillflow_runtime::operator::{ChunkOutput, ChunkWork};
use tillflow_types::Row;

/// About how many bytes a chunk holds (it ends at a line end).
pub const CHUNK_BYTES: usize = 1 << 20;

/// Chunks a decoder thread holds, queued or done, before the reader waits.
const IN_FLIGHT: usize = 2;

/// A malformed line of a chunk.
pub struct BadLine {
    /// The number of good rows of the chunk before it.
    pub before: usize,
    /// Its line index in the chunk (0-based).
    pub line: u32,
    /// Its bytes in the chunk.
    pub range: (usize, usize),
    /// Why it does not decode.
    pub error: DecodeError,
}

/// A chunk, raw or decoded: its place in the input, its bytes, and its rows.
#[derive(Default)]
pub struct Chunk {
    /// Index of the file in the source's list.
    pub file: usize,
    /// Byte offset of the chunk in the file.
    pub start: u64,
    /// Lines of the file before the chunk.
    pub first_line: u64,
    /// The chunk's bytes: whole records from `skip` on.
    pub bytes: Vec<u8>,
    /// Where the chunk's records begin in `bytes` (the bytes before end the previous chunk's
    /// last line, read to find where this chunk's lines begin).
    pub skip: usize,
    /// The range a decoder thread reads itself, for line framing.
    span: Option<Span>,
    /// Why the decoder thread could not read the chunk.
    io_error: Option<std::io::Error>,
    /// The bytes of the file read one record per line (a quoted field that did not close: see
    /// [`crate::format::framing`]).
    pub line_span: LineSpan,
    /// Decoded rows (`len` of them are valid).
    pub rows: Vec<Row>,
    /// Number of decoded rows.
    pub len: usize,
    /// Per row: the end of its record in the chunk (after the newline).
    pub ends: Vec<usize>,
    /// Per row: the lines of the chunk up to the end of its record.
    pub lines: Vec<u32>,
    /// Malformed lines, in order.
    pub bad: Vec<BadLine>,
    /// Lines in the chunk (blank ones included).
    pub line_count: u64,
    /// Records the decoder kept with fields set to NULL.
    pub nulled: u64,
    /// What the decoding thread's work made of the rows, when the source is fused.
    pub fused: Option<tillflow_runtime::Result<ChunkOutput>>,
}

/// A range of a file whose lines a decoder thread reads and decodes: the lines that begin in
/// `from..to`, the last one to its end. Unless `from` is known to begin a line (where reading
/// began), the byte before it is read too, to find where the first line that begins in the
/// range does.
#[derive(Clone, Copy)]
struct Span {
    from: u64,
    to: u64,
    known: bool,
}

/// Bytes read past a range at a time while looking for a line's end.
const READ_ON: usize = 64 << 10;

/// Appends up to `n` bytes of `f` (from where it stands) to `buf`; true at the end of the file.
fn read_on(f: &mut File, buf: &mut Vec<u8>, n: usize) -> std::io::Result<bool> {
    let got = f.take(n as u64).read_to_end(buf)?;
    Ok(got < n)
}

/// Index of the first newline of `bytes` at or after `from`, reading on from `f` while there
/// is none (`eof`: the file has ended); the length of `bytes` when the file ends first.
fn newline_from(
    f: &mut File,
    bytes: &mut Vec<u8>,
    mut from: usize,
    eof: &mut bool,
) -> std::io::Result<usize> {
    loop {
        from = from.min(bytes.len());
        if let Some(p) = memchr::memchr(b'\n', &bytes[from..]) {
            return Ok(from + p);
        }
        if *eof {
            return Ok(bytes.len());
        }
        from = bytes.len();
        *eof = read_on(f, bytes, READ_ON)?;
    }
}

/// Reads chunk `c`'s span of its file: sets its start, bytes and skip.
fn read_span(
    files: &[PathBuf],
    open: &mut Option<(usize, File)>,
    c: &mut Chunk,
    span: Span,
) -> std::io::Result<()> {
    let f = match open {
        Some((i, f)) if *i == c.file => f,
        _ => {
            let path = files
                .get(c.file)
                .ok_or_else(|| std::io::Error::other("a chunk of no file"))?;
            &mut open.insert((c.file, File::open(path)?)).1
        }
    };
    let b0 = if span.known {
        span.from
    } else {
        span.from.saturating_sub(1)
    };
    c.start = b0;
    c.bytes.clear();
    f.seek(SeekFrom::Start(b0))?;
    let nominal = (span.to - b0) as usize;
    let mut eof = read_on(f, &mut c.bytes, nominal)?;
    c.skip = if span.known {
        0
    } else {
        // the first line that begins in the range follows the first newline from its start
        // (the byte before the range)
        (newline_from(f, &mut c.bytes, 0, &mut eof)? + 1).min(c.bytes.len())
    };
    if c.skip >= nominal {
        // no line begins in the range: the chunk is the end of the line before it
        c.bytes.truncate(c.skip);
        return Ok(());
    }
    // the last line that begins in the range, read to its end
    let end = newline_from(f, &mut c.bytes, nominal - 1, &mut eof)?;
    c.bytes.truncate(end + 1);
    Ok(())
}

/// What a decoding thread gets: its decoder, and the work it runs over its chunks (if any).
pub type DecoderThread = (Box<dyn Decoder>, Option<Box<dyn ChunkWork>>);

struct Worker {
    tx: SyncSender<Chunk>,
    rx: Receiver<Chunk>,
}

/// The reading end: cuts chunks, deals them out and takes them back in order.
pub struct ChunkedReader {
    files: Vec<PathBuf>,
    workers: Vec<Worker>,
    /// The next chunk to deal, and the next to take back.
    sent: u64,
    taken: u64,
    /// The file being cut, its index, where the next chunk starts, and its first line.
    file: Option<File>,
    file_index: usize,
    offset: u64,
    line: u64,
    /// Bytes read past the last record end of the previous chunk.
    carry: Vec<u8>,
    /// Where records end, and the bytes of the current file read one record per line.
    framing: Framing,
    lines: LineSpan,
    /// Emptied chunks for reuse.
    spare: Vec<Chunk>,
    done_reading: bool,
    /// Line framing: the decoder threads read their chunks (see [`Span`]); the size of the file
    /// being dealt, and where reading it began (a line start).
    spans: bool,
    size: Option<u64>,
    began: u64,
    /// The file of the last chunk taken back, and its lines so far.
    back: (usize, u64),
}

/// Decodes the chunks it is dealt, in order.
fn decode_chunks(
    mut decoder: Box<dyn Decoder>,
    mut work: Option<Box<dyn ChunkWork>>,
    files: Arc<[PathBuf]>,
    rx: Receiver<Chunk>,
    tx: SyncSender<Chunk>,
) {
    let mut open = None;
    while let Ok(mut c) = rx.recv() {
        c.len = 0;
        c.ends.clear();
        c.lines.clear();
        c.bad.clear();
        c.line_count = 0;
        c.fused = None;
        if let Some(span) = c.span.take() {
            if let Err(e) = read_span(&files, &mut open, &mut c, span) {
                c.io_error = Some(e);
                if tx.send(c).is_err() {
                    return;
                }
                continue;
            }
        }
        let before_nulled = decoder.nulled_records();
        let (mut at, mut line) = (c.skip, 0u32);
        let framing = decoder.framing();
        let lines = c.line_span.within(c.start);
        while at < c.bytes.len() {
            let (end, lines) = match framing {
                Framing::Lines => (
                    memchr::memchr(b'\n', &c.bytes[at..]).map_or(c.bytes.len(), |p| at + p + 1),
                    1,
                ),
                _ => {
                    let end = record_end(&framing, &c.bytes, at, lines.clone());
                    (end, bytecount_lines(&c.bytes[at..end]) as u32)
                }
            };
            let text = strip_terminator(&c.bytes[at..end], framing);
            if !text.iter().all(u8::is_ascii_whitespace) {
                if c.len == c.rows.len() {
                    c.rows.push(Row::with_capacity(8));
                }
                let row = &mut c.rows[c.len];
                row.clear();
                match decoder.decode(text, row) {
                    Ok(()) => {
                        c.ends.push(end);
                        c.lines.push(line + lines);
                        c.len += 1;
                    }
                    Err(error) => c.bad.push(BadLine {
                        before: c.len,
                        line,
                        range: (at, at + text.len()),
                        error,
                    }),
                }
            }
            at = end;
            line += lines;
        }
        c.line_count = line as u64;
        c.nulled = decoder.nulled_records() - before_nulled;
        if let Some(w) = work.as_mut() {
            c.fused = Some(w.run(c.rows.get(..c.len).unwrap_or_default()));
        }
        if tx.send(c).is_err() {
            return;
        }
    }
}

impl ChunkedReader {
    /// Starts one decoder thread per decoder (each with the work it runs over its chunks, if
    /// any), reading `files` from file `file_index` at byte `offset` (after `line` lines), with
    /// the bytes of that file in `lines` read one record per line.
    pub fn start(
        files: Vec<PathBuf>,
        (file_index, offset, line, lines): (usize, u64, u64, LineSpan),
        decoders: Vec<DecoderThread>,
        name: &str,
    ) -> std::io::Result<Self> {
        let framing = decoders
            .first()
            .map_or(Framing::Lines, |(d, _)| d.framing());
        let mut workers = Vec::new();
        let shared: Arc<[PathBuf]> = files.clone().into();
        for (i, (d, work)) in decoders.into_iter().enumerate() {
            let (tx, worker_rx) = sync_channel(IN_FLIGHT);
            let (worker_tx, rx) = sync_channel(IN_FLIGHT);
            let files = shared.clone();
            std::thread::Builder::new()
                .name(format!("decode {name} #{i}"))
                .stack_size(tillflow_runtime::WORKER_STACK)
                .spawn(move || decode_chunks(d, work, files, worker_rx, worker_tx))?;
            workers.push(Worker { tx, rx });
        }
        let mut r = ChunkedReader {
            files,
            workers,
            sent: 0,
            taken: 0,
            file: None,
            file_index,
            offset,
            line,
            carry: Vec::new(),
            framing,
            lines,
            spare: Vec::new(),
            done_reading: false,
            spans: framing == Framing::Lines,
            size: None,
            began: offset,
            back: (file_index, line),
        };
        if r.spans {
            // a missing first file fails here, as opening it would
            if let Some(p) = r.files.get(file_index) {
                r.size = Some(std::fs::metadata(p)?.len());
            }
        } else {
            r.open(offset)?;
        }
        Ok(r)
    }

    /// Deals the next range of lines (line framing: the decoder thread reads it).
    fn deal_span(&mut self) -> std::io::Result<Option<Chunk>> {
        loop {
            let Some(path) = self.files.get(self.file_index) else {
                self.done_reading = true;
                return Ok(None);
            };
            let size = match self.size {
                Some(s) => s,
                None => *self.size.insert(std::fs::metadata(path)?.len()),
            };
            if self.offset >= size {
                // a file that has grown since is read on
                let now = std::fs::metadata(path)?.len();
                if now > size {
                    self.size = Some(now);
                    continue;
                }
                self.file_index += 1;
                self.offset = 0;
                self.began = 0;
                self.size = None;
                continue;
            }
            let to = (self.offset + CHUNK_BYTES as u64).min(size);
            let mut c = self.spare.pop().unwrap_or_default();
            c.span = Some(Span {
                from: self.offset,
                to,
                known: self.offset == self.began,
            });
            c.file = self.file_index;
            c.line_span = LineSpan::default();
            self.offset = to;
            return Ok(Some(c));
        }
    }

    fn open(&mut self, offset: u64) -> std::io::Result<()> {
        self.file = None;
        self.carry.clear();
        match self.files.get(self.file_index) {
            Some(p) => {
                let mut f = File::open(p)?;
                f.seek(SeekFrom::Start(offset))?;
                self.file = Some(f);
            }
            None => self.done_reading = true,
        }
        Ok(())
    }

    /// The path of file `i`.
    pub fn path(&self, i: usize) -> &std::path::Path {
        self.files
            .get(i)
            .map_or(std::path::Path::new("?"), |p| p.as_path())
    }

    /// Cuts the next chunk (None at the end of the last file).
    fn cut(&mut self) -> std::io::Result<Option<Chunk>> {
        if self.spans {
            return self.deal_span();
        }
        loop {
            if self.done_reading {
                return Ok(None);
            }
            let Some(f) = self.file.as_mut() else {
                self.done_reading = true;
                return Ok(None);
            };
            let mut c = self.spare.pop().unwrap_or_default();
            c.bytes.clear();
            c.skip = 0;
            c.bytes.append(&mut self.carry);
            let mut eof;
            // the records found so far end at `records`; the scan has reached `scanned`
            let mut framed = Framed::default();
            // read until the chunk holds a record end past CHUNK_BYTES, or the file ends (into
            // the buffer's spare capacity: nothing is zeroed first)
            loop {
                let want = CHUNK_BYTES.saturating_sub(c.bytes.len()).max(1 << 16) as u64;
                let n = (&mut *f).take(want).read_to_end(&mut c.bytes)?;
                eof = n == 0;
                let at = (self.offset, &mut self.lines);
                find_records(&self.framing, at, &c.bytes, eof, &mut framed);
                if framed.cut_here {
                    // the rest is read again as the next chunk, with its own span
                    eof = false;
                    break;
                }
                if eof || c.bytes.len() >= CHUNK_BYTES && framed.records > 0 {
                    break;
                }
            }
            if !eof {
                let cut = framed.records;
                self.carry.extend_from_slice(&c.bytes[cut..]);
                c.bytes.truncate(cut);
            }
            c.line_span = self.lines;
            c.file = self.file_index;
            c.start = self.offset;
            c.first_line = self.line;
            self.offset += c.bytes.len() as u64;
            self.line += bytecount_lines(&c.bytes);
            if eof {
                self.file_index += 1;
                self.offset = 0;
                self.line = 0;
                self.lines = LineSpan::default();
                self.open(0)?;
            }
            if c.bytes.is_empty() {
                self.spare.push(c);
                continue;
            }
            return Ok(Some(c));
        }
    }

    /// The next decoded chunk in file order (None when the input is exhausted). `emptied` is
    /// the previous chunk, for reuse.
    pub fn next(&mut self, emptied: Option<Chunk>) -> std::io::Result<Option<Chunk>> {
        if let Some(c) = emptied {
            self.spare.push(c);
        }
        let n = self.workers.len() as u64;
        // keep every decoder busy: deal until IN_FLIGHT chunks each are out
        while self.sent - self.taken < n * IN_FLIGHT as u64 {
            match self.cut()? {
                Some(c) => {
                    let w = &self.workers[(self.sent % n) as usize];
                    w.tx.send(c).map_err(|_| decoder_gone())?;
                    self.sent += 1;
                }
                None => break,
            }
        }
        if self.taken == self.sent {
            return Ok(None);
        }
        let w = &self.workers[(self.taken % n) as usize];
        let mut c = w.rx.recv().map_err(|_| decoder_gone())?;
        self.taken += 1;
        if let Some(e) = c.io_error.take() {
            return Err(e);
        }
        if self.spans {
            // lines are counted in order, as chunks come back
            if c.file != self.back.0 {
                self.back = (c.file, 0);
            }
            c.first_line = self.back.1;
            self.back.1 += c.line_count;
        }
        Ok(Some(c))
    }
}

/// How far [`find_records`] got through the bytes of a chunk being cut.
#[derive(Default)]
struct Framed {
    /// The end of the whole records.
    records: usize,
    /// Where the scan of the record after them has reached.
    scanned: usize,
    scan: RecordScan,
    /// No newline lies between the start of a search that failed and here (so a search for a
    /// line end goes on from here as more bytes come: linear in a record's length).
    searched: usize,
    /// The chunk ends at `records`: a new [`LineSpan`] starts there while another is in force
    /// in the chunk, and a chunk carries one.
    cut_here: bool,
}

/// Moves `f.records` (the end of the whole records of `bytes`, a chunk starting at `offset`) as
/// far as the bytes read allow. A record longer than [`MAX_MULTILINE_RECORD`], or still open at
/// the end of the file, makes a [`LineSpan`] of `lines` (see [`crate::format::framing`]).
fn find_records(
    framing: &Framing,
    (offset, lines): (u64, &mut LineSpan),
    bytes: &[u8],
    eof: bool,
    f: &mut Framed,
) {
    loop {
        if lines.holds(offset + f.records as u64) {
            let from = f.searched.max(f.records);
            match memchr::memchr(b'\n', &bytes[from..]) {
                Some(p) => {
                    f.records = from + p + 1;
                    f.scanned = f.records;
                    f.searched = f.records;
                    f.scan.reset();
                    continue;
                }
                None => {
                    f.searched = bytes.len();
                    return;
                }
            }
        }
        let end = f
            .scan
            .feed(framing, &bytes[f.scanned..])
            .map(|e| f.scanned + e);
        f.scanned = end.unwrap_or(bytes.len());
        let span_end = if f.scanned - f.records > MAX_MULTILINE_RECORD {
            // past the limit: the span runs to the end of the line holding the limit's byte
            let from = f.searched.max(f.records + MAX_MULTILINE_RECORD);
            match memchr::memchr(b'\n', &bytes[from..]) {
                Some(p) => Some(from + p + 1),
                None if eof => Some(bytes.len()),
                None => {
                    f.searched = bytes.len();
                    return;
                }
            }
        } else if end.is_none() && eof && f.scan.open() {
            Some(bytes.len())
        } else {
            None
        };
        if let Some(until) = span_end {
            if lines.until > offset && f.records > 0 {
                f.cut_here = true;
                return;
            }
            *lines = LineSpan {
                from: offset + f.records as u64,
                until: offset + until as u64,
            };
            f.scanned = f.records;
            f.searched = f.records;
            f.scan.reset();
            continue;
        }
        match end {
            Some(e) => {
                f.records = e;
                f.searched = e;
                f.scan.reset();
            }
            None => return,
        }
    }
}

fn decoder_gone() -> std::io::Error {
    std::io::Error::other("a decoder thread stopped")
}

/// A record without its line end: for lines every trailing CR and LF (as ever), for CSV one
/// LF and a CR before it (an escaped newline at the end of a field stays in it).
pub(crate) fn strip_terminator(mut text: &[u8], framing: Framing) -> &[u8] {
    if framing == Framing::Lines {
        while let [rest @ .., b'\n' | b'\r'] = text {
            text = rest;
        }
        return text;
    }
    if let [rest @ .., b'\n'] = text {
        text = rest;
    }
    if let [rest @ .., b'\r'] = text {
        text = rest;
    }
    text
}

/// Lines in `bytes`: its newlines, and a last line without one.
pub(crate) fn bytecount_lines(bytes: &[u8]) -> u64 {
    let n = memchr::memchr_iter(b'\n', bytes).count() as u64;
    n + u64::from(bytes.last().is_some_and(|b| *b != b'\n'))
}
