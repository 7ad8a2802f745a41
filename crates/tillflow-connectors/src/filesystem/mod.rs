//! The `filesystem` connector: a bounded source over a file or a directory of files, and a sink
//! that writes a directory of part files as Flink does (or one file with `'sink.single-file'`).
//!
//! The source reads line by line into a reused buffer and decodes each line with the table's
//! format. A malformed line stops the job with its file, line and field, unless the format's
//! `ignore-parse-errors` is set (skipped and counted) or `'dead-letter.path'` is (written there
//! with the reason, and counted). A file format (Parquet) is read file by file by
//! [`bulk::FileFormatSource`] and written a whole part file at a time through the format's
//! [`format::PartWriter`].

pub mod bulk;
pub mod partition;
pub mod sink;

pub use sink::FileSink;

use crate::chunked::{Chunk, ChunkedReader};
use crate::deadletter::DeadLetter;
use crate::format::framing::{Framing, LineSpan, RecordScan, MAX_MULTILINE_RECORD};
use crate::format::{self, Decoder};
use crate::{opt, req, Connector, ConnectorError, OptionSpec, TableSpec};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use tillflow_runtime::operator::{
    ChunkOutput, ChunkWorkFactory, Poll, Sink, Source, SourceMetrics,
};
use tillflow_runtime::{Result, RuntimeError};
use tillflow_types::{Row, Schema};

/// The `filesystem` connector.
pub struct FileSystem;

const OPTIONS: &[OptionSpec] = &[
    req("path"),
    opt("sink.single-file"),
    opt("source.path.regex-pattern"),
    opt("partition.default-name"),
    opt("sink.rolling-policy.file-size"),
    opt("sink.rolling-policy.rollover-interval"),
    opt("sink.rolling-policy.check-interval"),
    opt("sink.rolling-policy.inactivity-interval"),
    opt("sink.partition-commit.trigger"),
    opt("sink.partition-commit.delay"),
    opt("sink.partition-commit.policy.kind"),
    opt("sink.partition-commit.success-file.name"),
    opt("sink.partition-commit.watermark-time-zone"),
    opt("partition.time-extractor.kind"),
    opt("partition.time-extractor.timestamp-pattern"),
    opt("partition.time-extractor.timestamp-formatter"),
    opt("sink.shuffle-by-partition.enable"),
    opt("auto-compaction"),
];

impl Connector for FileSystem {
    fn name(&self) -> &'static str {
        "filesystem"
    }
    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }
    fn uses_format(&self) -> bool {
        true
    }
    fn source(&self, table: &TableSpec) -> std::result::Result<Box<dyn Source>, ConnectorError> {
        if format::is_file_format(table) {
            return Ok(Box::new(bulk::FileFormatSource::new(table)?));
        }
        Ok(Box::new(FileSource::new(table)?))
    }
    fn sink(&self, table: &TableSpec) -> std::result::Result<Box<dyn Sink>, ConnectorError> {
        Ok(Box::new(FileSink::new(table)?))
    }
    fn sink_accepts_changes(&self, table: &TableSpec) -> bool {
        format::format_accepts_changes(table)
    }
    /// A directory of part files: a part file per worker (not `sink.single-file`).
    fn sink_per_worker(&self, table: &TableSpec) -> bool {
        !table.bool_option("sink.single-file", false).unwrap_or(true)
    }
}

fn io_err(path: &Path, e: std::io::Error) -> ConnectorError {
    ConnectorError::Io {
        path: path.display().to_string(),
        source: e,
    }
}

/// Lists the files a source path names: the file itself, or the visible files under a directory
/// (recursively, sorted by path; names starting with `.` or `_` are skipped, as Flink does).
pub fn list_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The table's source path (a file or a directory, which must exist), the files it names and
/// their bytes in all.
pub(crate) fn source_files(
    table: &TableSpec,
) -> std::result::Result<(PathBuf, Vec<PathBuf>, u64), ConnectorError> {
    let path = crate::local_path(table.option("path").unwrap_or_default())
        .map_err(|m| table.error(format!("option 'path': {m}")))?;
    if !path.exists() {
        return Err(table.error(format!(
            "'path' = '{}' does not exist (the filesystem source reads a file or a directory)",
            path.display()
        )));
    }
    let files = list_files(&path).map_err(|e| io_err(&path, e))?;
    let total = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    Ok((path, files, total))
}

/// A bounded source over files.
pub struct FileSource {
    table: String,
    schema: Schema,
    files: Vec<PathBuf>,
    next_file: usize,
    reader: Option<BufReader<File>>,
    current: PathBuf,
    /// The configured path (a file or a directory).
    root: PathBuf,
    line_no: u64,
    /// Bytes of the current file consumed so far.
    offset: u64,
    /// Where a record ends (the format's), and the bytes of the current file read one record
    /// per line (a quoted CSV field that did not close).
    framing: Framing,
    lines: LineSpan,
    line: Vec<u8>,
    decoder: Box<dyn Decoder>,
    dead_letter: Option<DeadLetter>,
    format_name: String,
    metrics: SourceMetrics,
    /// Bytes of all the files.
    total_bytes: u64,
    /// The table (to make a decoder per decoding thread).
    spec: TableSpec,
    /// Decoding threads asked for ([`Source::parallelize`]); 1: decode in the job loop.
    decode_threads: usize,
    /// The chunked reader once started, the chunk being handed out and its next row and
    /// malformed line, and the file index of the position (`next_file` is the reader's).
    chunked: Option<ChunkedReader>,
    chunk: Option<Chunk>,
    chunk_row: usize,
    chunk_bad: usize,
    chunk_file: usize,
    /// Records the decoding threads kept with fields set to NULL.
    chunk_nulled: u64,
    /// The work the decoding threads run over their chunks ([`Source::fuse`]).
    fused: Option<ChunkWorkFactory>,
    /// A partitioned table's partition columns, and their values for the current file.
    partition: Option<(partition::PartitionSpec, partition::PartitionValues)>,
    scratch: Vec<tillflow_types::Value>,
}

impl FileSource {
    /// Opens the source described by the table's options.
    pub fn new(table: &TableSpec) -> std::result::Result<Self, ConnectorError> {
        let (path, files, total_bytes) = source_files(table)?;
        let dead_letter = match table.option("dead-letter.path") {
            Some(p) => Some(
                DeadLetter::open(p)
                    .map_err(|e| table.error(format!("option 'dead-letter.path' = '{p}': {e}")))?,
            ),
            None => None,
        };
        let partition = partition::PartitionSpec::from_table(table)?;
        // the files hold the columns other than the partition keys
        let mut decoder = match &partition {
            Some(p) => format::decoder(&p.data_table(table))?,
            None => format::decoder(table)?,
        };
        decoder.set_strict(dead_letter.is_some());
        Ok(FileSource {
            framing: decoder.framing(),
            lines: LineSpan::default(),
            table: table.name.clone(),
            schema: table.schema.clone(),
            next_file: 0,
            reader: None,
            root: path.clone(),
            current: path,
            line_no: 0,
            offset: 0,
            line: Vec::with_capacity(512),
            decoder,
            dead_letter,
            format_name: table.option("format").unwrap_or("json").to_owned(),
            metrics: SourceMetrics::default(),
            spec: table.clone(),
            decode_threads: 1,
            chunked: None,
            chunk: None,
            chunk_row: 0,
            chunk_bad: 0,
            chunk_file: 0,
            chunk_nulled: 0,
            fused: None,
            partition: partition.map(|p| (p, partition::PartitionValues::default())),
            scratch: Vec::new(),
            total_bytes,
            files,
        })
    }

    fn open_next(&mut self) -> Result<bool> {
        if self.next_file < self.files.len() {
            let p = self.files[self.next_file].clone();
            self.next_file += 1;
            let f = File::open(&p).map_err(|e| {
                RuntimeError::Source(format!("table `{}`: {}: {e}", self.table, p.display()))
            })?;
            self.reader = Some(BufReader::with_capacity(1 << 16, f));
            if let Some((spec, values)) = self.partition.as_mut() {
                let rel = p.strip_prefix(&self.root).unwrap_or(&p);
                *values = spec.values_of(rel).map_err(|m| {
                    RuntimeError::Source(format!("table `{}`: {}: {m}", self.table, p.display()))
                })?;
            }
            self.current = p;
            self.line_no = 0;
            self.offset = 0;
            self.lines = LineSpan::default();
            return Ok(true);
        }
        Ok(false)
    }
}

impl FileSource {
    /// Where a malformed record goes: the dead-letter file, skipped, or the job's error.
    fn bad_record(
        &mut self,
        path: &str,
        line_no: u64,
        e: &format::DecodeError,
        raw: &[u8],
    ) -> Result<()> {
        if let Some(d) = self.dead_letter.as_mut() {
            self.metrics.bad_records += 1;
            d.write(
                &self.table,
                "filesystem",
                &format!("{path}:{line_no}"),
                e.field.as_deref(),
                &e.message,
                raw,
            )
            .map_err(|err| RuntimeError::Source(format!("dead-letter {}: {err}", d.path())))
        } else if self.decoder.ignore_parse_errors() {
            self.metrics.bad_records += 1;
            Ok(())
        } else {
            Err(RuntimeError::Source(format!(
                "table `{}`: malformed record at {path} line {line_no}: {e}. To skip malformed records set '{}.ignore-parse-errors' = 'true'; to keep them set 'dead-letter.path'",
                self.table,
                self.format_name
            )))
        }
    }

    /// [`Source::poll`] with decoding on several threads ([`ChunkedReader`]): rows are handed
    /// out in the file's order, each swapped out of its decoded chunk, and malformed lines go
    /// through the same policy at their place among them.
    /// Starts the decoding threads (once), from the position reached or restored.
    fn start_chunked(&mut self) -> Result<()> {
        if self.chunked.is_some() {
            return Ok(());
        }
        let (file, offset, line) = match self.reader.take() {
            Some(_) => (self.next_file.saturating_sub(1), self.offset, self.line_no),
            None => (self.next_file, 0, 0),
        };
        let mut decoders = Vec::new();
        for _ in 0..self.decode_threads {
            let mut d =
                format::decoder(&self.spec).map_err(|e| RuntimeError::Source(e.to_string()))?;
            d.set_strict(self.dead_letter.is_some());
            let work = match &self.fused {
                Some(f) => Some(f()?),
                None => None,
            };
            decoders.push((d, work));
        }
        let r = ChunkedReader::start(
            self.files.clone(),
            (file, offset, line, self.lines),
            decoders,
            &self.table,
        )
        .map_err(|e| RuntimeError::Source(format!("table `{}`: {e}", self.table)))?;
        self.chunk_file = file;
        self.chunked = Some(r);
        Ok(())
    }

    /// The next decoded chunk in file order (None at the end, after the dead-letter output is
    /// flushed); `emptied` is the previous one.
    fn next_chunk(&mut self, emptied: Option<Chunk>) -> Result<Option<Chunk>> {
        let Some(r) = self.chunked.as_mut() else {
            return Ok(None);
        };
        match r
            .next(emptied)
            .map_err(|e| RuntimeError::Source(format!("table `{}`: {e}", self.table)))?
        {
            Some(c) => {
                self.chunk_file = c.file;
                Ok(Some(c))
            }
            None => {
                self.chunk_file = self.files.len();
                if let Some(d) = self.dead_letter.as_mut() {
                    d.flush().map_err(|e| {
                        RuntimeError::Source(format!("dead-letter {}: {e}", d.path()))
                    })?;
                }
                Ok(None)
            }
        }
    }

    /// The malformed lines of chunk `c` from the `from`-th on, through the bad-record policy.
    fn bad_lines(&mut self, c: &Chunk, upto_row: usize, from: &mut usize) -> Result<()> {
        while let Some(b) = c.bad.get(*from).filter(|b| b.before <= upto_row) {
            let line_no = c.first_line + b.line as u64 + 1;
            let path = self
                .chunked
                .as_ref()
                .map(|r| r.path(c.file).display().to_string())
                .unwrap_or_default();
            let raw = c.bytes.get(b.range.0..b.range.1).unwrap_or_default();
            *from += 1;
            self.bad_record(&path, line_no, &b.error, raw)?;
        }
        Ok(())
    }

    fn poll_chunked(&mut self, row: &mut Row) -> Result<Poll> {
        self.start_chunked()?;
        loop {
            // the common case, in place: the chunk's next row, no malformed line before it
            if let Some(c) = self.chunk.as_mut() {
                let bad_first = c
                    .bad
                    .get(self.chunk_bad)
                    .is_some_and(|b| b.before <= self.chunk_row);
                if !bad_first && self.chunk_row < c.len {
                    let i = self.chunk_row;
                    std::mem::swap(row, &mut c.rows[i]);
                    self.chunk_row += 1;
                    self.offset = c.start + c.ends[i] as u64;
                    self.line_no = c.first_line + c.lines[i] as u64;
                    self.lines = c.line_span;
                    self.metrics.records += 1;
                    return Ok(Poll::Record);
                }
            }
            let emptied = match self.chunk.take() {
                Some(mut c) => {
                    // the malformed lines before the next row take their turn first
                    let mut from = self.chunk_bad;
                    let bad = self.bad_lines(&c, self.chunk_row, &mut from);
                    self.chunk_bad = from;
                    if let Err(e) = bad {
                        self.chunk = Some(c);
                        return Err(e);
                    }
                    if self.chunk_row < c.len {
                        let i = self.chunk_row;
                        std::mem::swap(row, &mut c.rows[i]);
                        self.chunk_row += 1;
                        self.offset = c.start + c.ends[i] as u64;
                        self.line_no = c.first_line + c.lines[i] as u64;
                        self.lines = c.line_span;
                        self.metrics.records += 1;
                        self.chunk = Some(c);
                        return Ok(Poll::Record);
                    }
                    self.chunk_done(&c);
                    Some(c)
                }
                None => None,
            };
            match self.next_chunk(emptied)? {
                Some(c) => {
                    self.chunk_row = 0;
                    self.chunk_bad = 0;
                    self.chunk = Some(c);
                }
                None => return Ok(Poll::End),
            }
        }
    }

    /// Past the whole of chunk `c`: its end is the position, its bytes are read.
    fn chunk_done(&mut self, c: &Chunk) {
        self.offset = c.start + c.bytes.len() as u64;
        self.line_no = c.first_line + c.line_count;
        self.lines = c.line_span;
        self.metrics.bytes += c.bytes.len().saturating_sub(c.skip) as u64;
        self.chunk_nulled += c.nulled;
    }
}

impl Source for FileSource {
    /// The configured path, not the file being read (which moves on as the job runs).
    fn checkpoint_identity(&self) -> String {
        format!(
            "filesystem[{}] table `{}` (format {})",
            self.root.display(),
            self.table,
            self.format_name
        )
    }

    fn describe(&self) -> String {
        format!(
            "filesystem[{}] table `{}` ({} file(s), format {})",
            self.current.display(),
            self.table,
            self.files.len(),
            self.format_name
        )
    }

    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn parallelize(&mut self, workers: usize) {
        // a partitioned table's files are read on the job loop's thread (the partition values
        // come from each file's path)
        if self.partition.is_none() {
            self.decode_threads = workers.max(1);
        }
    }

    /// On several decoding threads, each runs the work over its chunks.
    fn fuse(&mut self, work: ChunkWorkFactory) -> bool {
        if self.decode_threads <= 1 || self.chunked.is_some() {
            return false;
        }
        self.fused = Some(work);
        true
    }

    fn poll_fused(&mut self) -> Result<Option<ChunkOutput>> {
        self.start_chunked()?;
        let emptied = self.chunk.take();
        let Some(mut c) = self.next_chunk(emptied)? else {
            return Ok(None);
        };
        let mut from = 0;
        let bad = self.bad_lines(&c, usize::MAX, &mut from);
        let out = c.fused.take();
        self.metrics.records += c.len as u64;
        self.chunk_done(&c);
        self.chunk = Some(c);
        bad?;
        match out {
            Some(r) => r.map(Some),
            None => Err(RuntimeError::State(format!(
                "internal: table `{}`: a chunk without its work",
                self.table
            ))),
        }
    }

    fn poll(&mut self, row: &mut Row) -> Result<Poll> {
        if self.decode_threads > 1 {
            return self.poll_chunked(row);
        }
        loop {
            let Some(reader) = self.reader.as_mut() else {
                if self.open_next()? {
                    continue;
                }
                if let Some(d) = self.dead_letter.as_mut() {
                    d.flush().map_err(|e| {
                        RuntimeError::Source(format!("dead-letter {}: {e}", d.path()))
                    })?;
                }
                return Ok(Poll::End);
            };
            let io_err = |e: std::io::Error| {
                RuntimeError::Source(format!(
                    "table `{}`: {}: {e}",
                    self.table,
                    self.current.display()
                ))
            };
            // Decode straight from the read buffer when the whole record is in it; copy only a
            // record that straddles two buffer fills.
            let buf = reader.fill_buf().map_err(io_err)?;
            if buf.is_empty() {
                self.reader = None;
                continue;
            }
            let lines_only = self.lines.holds(self.offset);
            let (line, consumed): (&[u8], usize) = if self.framing == Framing::Lines {
                // one record per line: the line without its newline
                match memchr::memchr(b'\n', buf) {
                    Some(p) => (&buf[..p], p + 1),
                    None => {
                        self.line.clear();
                        reader.read_until(b'\n', &mut self.line).map_err(io_err)?;
                        (&self.line[..], 0)
                    }
                }
            } else {
                let mut scan = RecordScan::default();
                let whole = if lines_only {
                    memchr::memchr(b'\n', buf).map(|p| p + 1)
                } else {
                    scan.feed(&self.framing, buf)
                };
                match whole {
                    Some(end) => (&buf[..end], end),
                    None => {
                        // read again from the record's start, line by line
                        self.line.clear();
                        scan.reset();
                        let mut unclosed = false;
                        loop {
                            let before = self.line.len();
                            let n = reader.read_until(b'\n', &mut self.line).map_err(io_err)?;
                            if lines_only || n == 0 {
                                unclosed = n == 0 && !lines_only && scan.open();
                                break;
                            }
                            let ended = scan.feed(&self.framing, &self.line[before..]).is_some();
                            if self.line.len() > MAX_MULTILINE_RECORD {
                                unclosed = true;
                                break;
                            }
                            if ended {
                                break;
                            }
                        }
                        if unclosed {
                            // a quoted field that does not close: the bytes scanned are read
                            // again, one record per line (see format::framing)
                            use std::io::{Seek, SeekFrom};
                            self.lines = LineSpan {
                                from: self.offset,
                                until: self.offset + self.line.len() as u64,
                            };
                            reader.seek(SeekFrom::Start(self.offset)).map_err(io_err)?;
                            continue;
                        }
                        (&self.line[..], 0)
                    }
                }
            };
            let first_line = self.line_no + 1;
            self.line_no += if self.framing == Framing::Lines || lines_only {
                1
            } else {
                crate::chunked::bytecount_lines(line)
            };
            let read = if consumed > 0 {
                consumed as u64
            } else {
                self.line.len() as u64
            };
            self.metrics.bytes += read;
            self.offset += read;
            let line = crate::chunked::strip_terminator(line, self.framing);
            let result = if line.iter().all(u8::is_ascii_whitespace) {
                None
            } else {
                row.clear();
                let r = self.decoder.decode(line, row);
                if let (Ok(()), Some((spec, values))) = (&r, self.partition.as_ref()) {
                    spec.fill(values, row, &mut self.scratch);
                }
                Some(r)
            };
            // a malformed line is copied (it is rare) so that the read buffer can move on
            // before the source's one bad-record policy takes it
            let outcome = match result {
                None => None,
                Some(Ok(())) => {
                    self.metrics.records += 1;
                    Some(Ok(()))
                }
                Some(Err(e)) => Some(Err((e, line.to_vec()))),
            };
            if consumed > 0 {
                reader.consume(consumed);
            }
            match outcome {
                None => continue,
                Some(Ok(())) => return Ok(Poll::Record),
                Some(Err((e, raw))) => {
                    let path = self.current.display().to_string();
                    self.bad_record(&path, first_line, &e, &raw)?;
                }
            }
        }
    }

    fn progress(&self) -> Option<f64> {
        (self.total_bytes > 0)
            .then(|| (self.metrics.bytes as f64 / self.total_bytes as f64).min(1.0))
    }

    fn metrics(&self) -> SourceMetrics {
        SourceMetrics {
            nulled_records: self.decoder.nulled_records() + self.chunk_nulled,
            ..self.metrics.clone()
        }
    }

    fn resumable(&self) -> bool {
        true
    }

    /// The file being read (its index in the sorted file list), the byte offset and line number
    /// reached in it, the bytes read one record per line (see [`format::framing`]; none in a
    /// position from an older checkpoint), and
    /// the length of the dead-letter file.
    fn snapshot_position(&mut self, out: &mut Vec<u8>) -> Result<()> {
        let file = if self.chunked.is_some() {
            self.chunk_file
        } else if self.reader.is_some() {
            self.next_file.saturating_sub(1)
        } else {
            self.next_file
        };
        out.extend_from_slice(&(file as u64).to_le_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.line_no.to_le_bytes());
        out.extend_from_slice(&self.lines.from.to_le_bytes());
        out.extend_from_slice(&self.lines.until.to_le_bytes());
        DeadLetter::snapshot(self.dead_letter.as_mut(), out)
    }

    fn restore_position(&mut self, input: &[u8]) -> Result<()> {
        use std::io::{Seek, SeekFrom};
        let at = &mut 0;
        let file = tillflow_runtime::state::read_u64(input, at)? as usize;
        let offset = tillflow_runtime::state::read_u64(input, at)?;
        let line_no = tillflow_runtime::state::read_u64(input, at)?;
        let lines = if *at < input.len() {
            LineSpan {
                from: tillflow_runtime::state::read_u64(input, at)?,
                until: tillflow_runtime::state::read_u64(input, at)?,
            }
        } else {
            LineSpan::default()
        };
        DeadLetter::restore(self.dead_letter.as_mut(), input, at)?;
        if file > self.files.len() {
            return Err(RuntimeError::State(format!(
                "it names file {} of the {} files of table `{}`",
                file + 1,
                self.files.len(),
                self.table
            )));
        }
        self.reader = None;
        self.chunked = None;
        self.chunk = None;
        self.next_file = file;
        if file < self.files.len() && self.open_next()? {
            let path = self.current.display().to_string();
            let table = self.table.clone();
            let err =
                |e: std::io::Error| RuntimeError::Source(format!("table `{table}`: {path}: {e}"));
            let len = std::fs::metadata(&self.current).map_err(err)?.len();
            if offset > len {
                return Err(RuntimeError::State(format!(
                    "its position, byte {offset} of {path}, is past the file's end ({len} bytes): the file changed since the checkpoint"
                )));
            }
            if let Some(r) = self.reader.as_mut() {
                // a position is always at the start of a line
                if offset > 0 {
                    use std::io::Read;
                    r.seek(SeekFrom::Start(offset - 1)).map_err(err)?;
                    let mut b = [0u8; 1];
                    r.read_exact(&mut b).map_err(err)?;
                    if b[0] != b'\n' {
                        return Err(RuntimeError::State(format!(
                            "its position, byte {offset} of {path}, is not at the start of a line: the file changed since the checkpoint"
                        )));
                    }
                }
                r.seek(SeekFrom::Start(offset)).map_err(err)?;
            }
            self.offset = offset;
            self.line_no = line_no;
            self.lines = lines;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tillflow_types::{DataType, Field, Value};

    #[test]
    fn resumes_from_a_snapshot_position() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.ndjson"), "{\"n\":1}\n{\"n\":2}\n").unwrap();
        std::fs::write(dir.path().join("b.ndjson"), "{\"n\":3}\n\n{\"n\":4}\n").unwrap();
        let spec = TableSpec {
            name: "t".into(),
            schema: Schema::new(vec![Field::new("n", DataType::Int)]),
            options: [("path", dir.path().to_str().unwrap()), ("format", "json")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            primary_key: vec![],
            metadata: vec![],
            partition_keys: vec![],
        };
        let read_all = |src: &mut FileSource| {
            let mut row = Row::default();
            let mut got = vec![];
            while src.poll(&mut row).unwrap() == Poll::Record {
                got.push(row.values[0]);
            }
            got
        };
        for stop in 0..4 {
            let mut src = FileSource::new(&spec).unwrap();
            let mut row = Row::default();
            let mut before = vec![];
            for _ in 0..stop {
                assert_eq!(src.poll(&mut row).unwrap(), Poll::Record);
                before.push(row.values[0]);
            }
            let mut pos = Vec::new();
            src.snapshot_position(&mut pos).unwrap();
            let mut resumed = FileSource::new(&spec).unwrap();
            resumed.restore_position(&pos).unwrap();
            before.extend(read_all(&mut resumed));
            assert_eq!(
                before,
                (1..=4).map(Value::Int).collect::<Vec<_>>(),
                "stopped after {stop}"
            );
        }
    }

    /// A file of several chunks, with blank and malformed lines, a line longer than two chunks
    /// and no line end after the last, decoded on three threads: the same rows in the same
    /// order, the same malformed lines at the same line numbers (in the dead-letter file), and a
    /// position taken anywhere resumes (on one thread or three) where the rows left off.
    #[test]
    fn decodes_chunks_on_several_threads_in_file_order() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("big.ndjson");
        let mut text = String::new();
        let mut want = Vec::new();
        for i in 0..150_000i64 {
            match i % 9_973 {
                17 => text.push_str("{\"n\": \"not a number\"}\n"),
                18 => text.push('\n'),
                // a line longer than two chunks: ranges where no line begins
                _ if i == 60_000 => {
                    let pad = "y".repeat(2 * crate::chunked::CHUNK_BYTES + 12_345);
                    text.push_str(&format!("{{\"n\": {i}, \"pad\": \"{pad}\"}}\n"));
                    want.push(Value::Int(i));
                }
                _ => {
                    text.push_str(&format!(
                        "{{\"n\": {i}, \"pad\": \"xxxxxxxxxxxxxxxxxxxx\"}}\n"
                    ));
                    want.push(Value::Int(i));
                }
            }
        }
        // the last line has no line end
        text.pop();
        std::fs::write(&input, &text).unwrap();
        assert!(text.len() > 3 * crate::chunked::CHUNK_BYTES);
        let spec = |dlq: &str| spec_with_dlq(&numbers(&input), dlq);
        let run = |threads: usize, stop: usize| {
            let dlq = dir.path().join(format!("dlq-{threads}-{stop}.ndjson"));
            let spec = spec(dlq.to_str().unwrap());
            let mut src = FileSource::new(&spec).unwrap();
            src.parallelize(threads);
            let mut row = Row::default();
            let mut got = vec![];
            while got.len() < stop && src.poll(&mut row).unwrap() == Poll::Record {
                got.push(row.values[0]);
            }
            let mut pos = Vec::new();
            src.snapshot_position(&mut pos).unwrap();
            drop(src);
            let dead = std::fs::read_to_string(&dlq).unwrap_or_default();
            let resume = dir.path().join("resumed-dlq.ndjson");
            let resume_spec = self::spec_with_dlq(&spec, resume.to_str().unwrap());
            for resume_threads in [1, threads] {
                let mut resumed = FileSource::new(&resume_spec).unwrap();
                resumed.parallelize(resume_threads);
                resumed.restore_position(&pos).unwrap();
                let mut rest = got.clone();
                while resumed.poll(&mut row).unwrap() == Poll::Record {
                    rest.push(row.values[0]);
                }
                assert_eq!(rest.len(), want.len(), "{threads} threads, stop {stop}");
                assert!(rest == want, "{threads} threads, stop {stop}: rows differ");
            }
            dead
        };
        let one = run(1, usize::MAX);
        let three = run(3, usize::MAX);
        assert_eq!(one.lines().count(), 16, "{one}");
        assert_eq!(one, three);
        assert!(one.contains(&format!("{}:18", input.display())), "{one}");
        for stop in [0, 1, 40_000, 100_000] {
            run(3, stop);
        }
    }

    /// A CSV table `(n BIGINT, note STRING)` over `input`.
    fn notes(input: &std::path::Path) -> TableSpec {
        let mut spec = numbers(input);
        spec.schema = Schema::new(vec![
            Field::new("n", DataType::BigInt),
            Field::new("note", DataType::String(None)),
        ]);
        spec.options.insert("format".into(), "csv".into());
        spec
    }

    /// Every row of `spec` read on `threads` decoding threads, stopping after `stop` rows to
    /// resume from the position reached (on `threads` again), and the dead-letter file's lines.
    fn read_notes(spec: &TableSpec, threads: usize, stop: usize) -> (Vec<(i64, String)>, String) {
        let dir = tempfile::tempdir().unwrap();
        let dlq = dir.path().join("dlq.ndjson");
        let spec = spec_with_dlq(spec, dlq.to_str().unwrap());
        let mut src = FileSource::new(&spec).unwrap();
        src.parallelize(threads);
        let mut row = Row::default();
        let mut got = vec![];
        let take = |row: &Row| match (row.values[0], row.values[1]) {
            (Value::Int(n), Value::Str(s)) => {
                (n, tillflow_types::value::heap_str(&row.heap, s).to_owned())
            }
            other => panic!("{other:?}"),
        };
        while got.len() < stop && src.poll(&mut row).unwrap() == Poll::Record {
            got.push(take(&row));
        }
        let mut pos = Vec::new();
        src.snapshot_position(&mut pos).unwrap();
        drop(src);
        let mut resumed = FileSource::new(&spec).unwrap();
        resumed.parallelize(threads);
        resumed.restore_position(&pos).unwrap();
        while resumed.poll(&mut row).unwrap() == Poll::Record {
            got.push(take(&row));
        }
        drop(resumed);
        (got, std::fs::read_to_string(&dlq).unwrap_or_default())
    }

    /// CSV records whose quoted fields hold newlines, over several chunks (one record longer
    /// than a chunk), read on one thread and on three, whole or resumed anywhere: the same rows,
    /// each field with its newlines, and the same malformed records at their first line, each
    /// once in the dead-letter file.
    #[test]
    fn csv_records_span_lines_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("notes.csv");
        let (mut text, mut want, mut line) = (String::new(), vec![], 1u64);
        let mut bad_lines = vec![];
        for n in 0..150_000i64 {
            let note = match n % 11 {
                _ if n == 30_000 => "x".repeat(100) + &"long\n".repeat(300_000),
                3 => format!("two\nlines, \"quoted\" {n}"),
                7 => format!("a\r\nb\n\nc{n}"),
                _ => format!("plain {n}"),
            };
            if n % 9_001 == 5 {
                text.push_str("oops,\"bad\nid\"\n");
                bad_lines.push(line);
                line += 2;
            }
            text.push_str(&format!("{n},\"{}\"\n", note.replace('"', "\"\"")));
            line += 1 + note.matches('\n').count() as u64;
            want.push((n, note));
        }
        // the last line has no line end
        text.pop();
        std::fs::write(&input, &text).unwrap();
        assert!(text.len() > 3 * crate::chunked::CHUNK_BYTES);
        let spec = notes(&input);
        let (one, dead_one) = read_notes(&spec, 1, usize::MAX);
        assert_eq!(one.len(), want.len());
        assert!(one == want, "one thread: rows differ");
        let got_lines: Vec<u64> = dead_one
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let pos = v["position"].as_str().unwrap().to_owned();
                pos.rsplit(':').next().unwrap().parse().unwrap()
            })
            .collect();
        assert_eq!(got_lines, bad_lines, "{dead_one}");
        for (threads, stop) in [(3, usize::MAX), (3, 1), (3, 29_999), (3, 30_001), (1, 4)] {
            let (rows, dead) = read_notes(&spec, threads, stop);
            assert!(rows == want, "{threads} threads, stop {stop}: rows differ");
            // the resumed run cut the dead-letter file back to its checkpoint and went on
            assert_eq!(dead, dead_one, "{threads} threads, stop {stop}");
        }
    }

    /// A quote that never closes costs its line only: reading goes on with the next line, on
    /// one thread and on three, whether the file ends first or the multi-line limit is passed
    /// (after which records span lines again).
    #[test]
    fn an_unclosed_quote_costs_one_line() {
        let dir = tempfile::tempdir().unwrap();
        for filler in [
            10usize,
            crate::format::framing::MAX_MULTILINE_RECORD / 8 + 10,
        ] {
            let input = dir.path().join(format!("open-{filler}.csv"));
            let mut text = String::from("1,\"a\nb\"\n2,\"never closed\n");
            let mut want = vec![(1, "a\nb".to_owned())];
            for n in 3..filler as i64 {
                text.push_str(&format!("{n},ok\n"));
                want.push((n, "ok".to_owned()));
            }
            if filler > 1_000 {
                // past the limit, records span lines again
                text.push_str("9999999999,\"c\nd\"\n");
                want.push((9_999_999_999, "c\nd".to_owned()));
            }
            std::fs::write(&input, &text).unwrap();
            let spec = notes(&input);
            for threads in [1, 3] {
                let (rows, dead) = read_notes(&spec, threads, usize::MAX);
                assert_eq!(
                    rows.len(),
                    want.len(),
                    "{threads} threads, {filler}: {rows:?} {dead}"
                );
                assert!(rows == want, "{threads} threads, {filler}: rows differ");
                assert!(dead.contains(":3\""), "{dead}");
                assert!(dead.contains("unterminated quoted field"), "{dead}");
                assert_eq!(dead.lines().count(), 1, "{dead}");
            }
        }
    }

    /// A resume inside one line span that reaches a second unclosed quote within the first
    /// chunk read: the chunk ends where the second span starts, so the first span's last lines
    /// stay lines on three threads as on one (here an escaped line end inside the span, which
    /// read as CSV would join two lines).
    #[test]
    fn a_resume_inside_a_line_span_keeps_it_up_to_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("spans.csv");
        let max = crate::format::framing::MAX_MULTILINE_RECORD;
        let mut text = String::from("1,\"a\nb\"\n");
        let span_from = text.len();
        text.push_str("2,\"never closed\n");
        let (mut n, mut rows, mut stop, mut special) = (3i64, 1usize, 0usize, false);
        while text.len() < span_from + max + 200_000 {
            if !special && text.len() > span_from + max - 60_000 {
                // one record read as CSV, two lines inside the span
                text.push_str("6,tail\\\nend\n");
                special = true;
                stop = rows - 5_000;
            }
            text.push_str(&format!("{n},ok\n"));
            rows += 1;
            n += 1;
        }
        text.push_str("9999999999,\"c\nd\"\n8888888888,\"also never\n7777777777,tail\n");
        std::fs::write(&input, &text).unwrap();
        let mut spec = notes(&input);
        spec.options
            .insert("csv.escape-character".into(), "\\".into());
        let (want, dead) = read_notes(&spec, 1, usize::MAX);
        assert!(want.contains(&(6, "tail".to_owned())), "a line of the span");
        assert!(want.contains(&(9_999_999_999, "c\nd".to_owned())));
        assert!(dead.contains("also never"), "{dead}");
        for threads in [1, 3] {
            let (got, got_dead) = read_notes(&spec, threads, stop);
            assert_eq!(got.len(), want.len(), "{threads} threads");
            assert!(got == want, "{threads} threads: rows differ");
            assert_eq!(got_dead, dead, "{threads} threads");
        }
    }

    fn spec_with_dlq(spec: &TableSpec, dlq: &str) -> TableSpec {
        let mut s = spec.clone();
        s.options.insert("dead-letter.path".into(), dlq.into());
        s
    }

    /// A JSON table of one BIGINT column `n` over `input`.
    fn numbers(input: &std::path::Path) -> TableSpec {
        TableSpec {
            name: "t".into(),
            schema: Schema::new(vec![Field::new("n", DataType::BigInt)]),
            options: [("path", input.to_str().unwrap()), ("format", "json")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            primary_key: vec![],
            metadata: vec![],
            partition_keys: vec![],
        }
    }

    #[test]
    fn a_position_past_the_end_or_inside_a_line_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.ndjson");
        std::fs::write(&input, "{\"n\": 1}\n{\"n\": 2}\n").unwrap();
        let spec = numbers(&input);
        let position = |file: u64, offset: u64| {
            let mut b = Vec::new();
            for v in [file, offset, 1] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            b
        };
        let mut src = FileSource::new(&spec).unwrap();
        // after the first line: resumes with the second
        src.restore_position(&position(0, 9)).unwrap();
        let mut row = Row::default();
        assert_eq!(src.poll(&mut row).unwrap(), Poll::Record);
        assert_eq!(row.values[0], Value::Int(2));
        let e = src.restore_position(&position(0, 1_000)).unwrap_err();
        assert!(
            e.to_string().contains("past the file's end (18 bytes)"),
            "{e}"
        );
        let e = src.restore_position(&position(0, 4)).unwrap_err();
        assert!(e.to_string().contains("not at the start of a line"), "{e}");
        let e = src.restore_position(&position(5, 0)).unwrap_err();
        assert!(e.to_string().contains("names file 6 of the 1 files"), "{e}");
    }
}
