//! Checkpoints: what a job's consistent snapshot holds, how it is written to and read from disk,
//! and the write-ahead wrapper that makes transactional sinks exactly-once.
//!
//! The job runs every pipeline on one thread, so between two source polls every record read so
//! far has been pushed through every operator into the sinks: that point is the consistent cut an
//! aligned barrier produces in a parallel engine. A [`Snapshot`] taken there holds each source's
//! read position, each operator's state (windows, aggregates, Top-N buffers, join state,
//! watermarks) and each sink's prepared rows. [`CheckpointStore`] writes it to
//! `DIR/JOB/chk-NNNNNN/` atomically (a temporary directory renamed when complete, files synced,
//! a manifest with SHA-256 checksums) and keeps the last N. [`EpochSink`] holds the rows a
//! transactional sink receives between checkpoints; the checkpoint stores them, and only after it
//! is durable are they committed together with a marker naming the checkpoint, so a restart that
//! finds the marker behind the checkpoint commits them again and one that finds it level skips
//! them: each row reaches the sink exactly once.

use crate::error::{Result, RuntimeError};
use crate::operator::{Sink, TransactionalSink};
use crate::state::incremental::{Part, Spool, Spooled, StateSection};
use crate::state::{read_u32, read_u64, StateValue};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;
use tillflow_types::Row;

/// A checkpoint could not be written, read or used.
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// A file operation failed.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The checkpoint's files do not match its manifest, or cannot be parsed.
    #[error("checkpoint {path} is corrupt: {what}; it was not loaded (use --from-checkpoint with an older one, or --fresh)")]
    Corrupt {
        /// The checkpoint directory.
        path: String,
        /// What is wrong.
        what: String,
    },
    /// A checkpointing option has a value that cannot be used.
    #[error("option '{key}' = '{value}': {what}")]
    Config {
        /// The option.
        key: String,
        /// Its value.
        value: String,
        /// What is wrong with it.
        what: String,
    },
    /// Another process runs the job: it holds the job's checkpoint location.
    #[error("job `{job}` is already running ({holder}): its checkpoints at {location} belong to that run. Stop it first, or give this run another --job-name (Flink's 'pipeline.name')")]
    Held {
        /// The job.
        job: String,
        /// The job's checkpoint location.
        location: String,
        /// Who holds it, as the holder wrote it (process, host, since when).
        holder: String,
    },
    /// The checkpoint was taken by a different plan (the SQL changed).
    #[error("checkpoint {path} was taken by a different plan, so it was not loaded: {what}. Restore the SQL it was taken with, or start over with --fresh")]
    Incompatible {
        /// The checkpoint directory.
        path: String,
        /// What differs.
        what: String,
    },
}

impl From<CheckpointError> for RuntimeError {
    fn from(e: CheckpointError) -> Self {
        RuntimeError::Checkpoint(e.to_string())
    }
}

/// Reads a checkpoint file that must be a regular file (a symbolic link to `/dev/zero` or a
/// pipe would be read forever), no longer than its size when opened.
fn read_file(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    use std::io::Read;
    let mut f = fs::File::open(path).map_err(|e| io(path, e))?;
    let meta = f.metadata().map_err(|e| io(path, e))?;
    if !meta.is_file() {
        return Err(CheckpointError::Corrupt {
            path: path.display().to_string(),
            what: "it is not a regular file".into(),
        });
    }
    let mut out = Vec::with_capacity(meta.len() as usize);
    Read::by_ref(&mut f)
        .take(meta.len())
        .read_to_end(&mut out)
        .map_err(|e| io(path, e))?;
    Ok(out)
}

fn io(path: &Path, source: std::io::Error) -> CheckpointError {
    CheckpointError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Checkpointing as configured by Flink's options (`SET 'key' = 'value'` in the script).
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointConfig {
    /// `execution.checkpointing.interval` (None: not set).
    pub interval: Option<std::time::Duration>,
    /// `state.checkpoints.dir` as a local directory (`file://` accepted); default
    /// `tillflow-checkpoints`.
    pub dir: PathBuf,
    /// `state.checkpoints.dir` as an object store URI (`s3://bucket/prefix`), when it is one.
    pub uri: Option<String>,
    /// `state.checkpoints.num-retained` (default 1, as in Flink).
    pub retained: usize,
}

impl CheckpointConfig {
    /// The interval an unbounded job gets when the script sets none.
    pub const DEFAULT_UNBOUNDED_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

    /// Reads the checkpointing options out of a script's `SET` options.
    pub fn from_options(
        options: &std::collections::BTreeMap<String, String>,
    ) -> Result<Self, CheckpointError> {
        let bad = |key: &str, value: &str, what: &str| CheckpointError::Config {
            key: key.to_owned(),
            value: value.to_owned(),
            what: what.to_owned(),
        };
        let mut c = CheckpointConfig {
            interval: None,
            dir: PathBuf::from("tillflow-checkpoints"),
            uri: None,
            retained: 1,
        };
        if let Some(v) = options.get("execution.checkpointing.interval") {
            let us = tillflow_types::temporal::parse_duration_micros(v).ok_or_else(|| {
                bad(
                    "execution.checkpointing.interval",
                    v,
                    "not a duration (e.g. '10s', '1 min', '500 ms')",
                )
            })?;
            // Flink: a zero interval (or none) means no periodic checkpoints
            c.interval = (us > 0).then(|| std::time::Duration::from_micros(us as u64));
        }
        if let Some(v) = options.get("state.checkpoints.dir") {
            let path = v.strip_prefix("file://").unwrap_or(v);
            if path.starts_with("s3://") || path.starts_with("s3a://") {
                c.uri = Some(path.replacen("s3a://", "s3://", 1));
            } else if path.contains("://") {
                return Err(bad(
                    "state.checkpoints.dir",
                    v,
                    "a local directory (a path or file:///path) or an S3 URI (s3://bucket/prefix)",
                ));
            } else {
                c.dir = PathBuf::from(path);
            }
        }
        if let Some(v) = options.get("state.checkpoints.num-retained") {
            c.retained = v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    bad(
                        "state.checkpoints.num-retained",
                        v,
                        "not a whole number ≥ 1",
                    )
                })?;
        }
        Ok(c)
    }
}

/// Rows appended as bytes (no allocation per row once the buffer has grown), read back in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RowLog {
    bytes: Vec<u8>,
    rows: u64,
}

impl RowLog {
    /// Appends a row.
    #[inline]
    pub fn push(&mut self, row: &Row) {
        row.write(&mut self.bytes);
        self.rows += 1;
    }

    /// Number of rows.
    pub fn len(&self) -> u64 {
        self.rows
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Removes every row.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.rows = 0;
    }

    /// Calls `f` on each row in order.
    pub fn for_each(&self, f: &mut dyn FnMut(&Row) -> Result<()>) -> Result<()> {
        let mut at = 0;
        for _ in 0..self.rows {
            let row = Row::read(&self.bytes, &mut at)?;
            f(&row)?;
        }
        Ok(())
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.rows.to_le_bytes());
        out.extend_from_slice(&(self.bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.bytes);
    }

    fn read_from(input: &[u8]) -> Result<RowLog> {
        let mut at = 0;
        let rows = read_u64(input, &mut at)?;
        let len = read_u64(input, &mut at)? as usize;
        let bytes = at
            .checked_add(len)
            .and_then(|end| input.get(at..end))
            .ok_or_else(|| RuntimeError::State("truncated row log".into()))?
            .to_vec();
        Ok(RowLog { bytes, rows })
    }
}

/// One source's part of a snapshot.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceState {
    /// The source had ended (and its pipeline with it).
    pub done: bool,
    /// Its read position ([`crate::operator::Source::snapshot_position`]).
    pub position: Vec<u8>,
}

/// A job's consistent snapshot.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Checkpoint number (1, 2, … within a job's directory).
    pub id: u64,
    /// The run it belongs to: a run restored from a checkpoint keeps its run, a fresh one gets a
    /// new one (sinks' commit markers are compared within a run).
    pub run: u64,
    /// The plan's nodes in visiting order (sources, operators, sinks), to refuse a checkpoint of
    /// another plan.
    pub layout: Vec<String>,
    /// Per source task.
    pub sources: Vec<SourceState>,
    /// Per operator or two-input node, in visiting order.
    pub operators: Vec<Vec<u8>>,
    /// Per sink, in visiting order: what it prepared ([`Sink::prepare_checkpoint`]).
    pub sinks: Vec<Vec<u8>>,
    /// The sections of keyed states tracking their changes (incremental checkpoints, see
    /// [`crate::state::incremental`]).
    pub states: Vec<StateSection>,
    /// The earlier checkpoints whose sections [`Snapshot::states`] build on (listed in the
    /// manifest, not in `state.bin`).
    pub references: Vec<u64>,
    /// Loaded with the checkpoint: the sections of the checkpoints it references.
    pub shared: Vec<StateSection>,
    /// Written with the checkpoint: the file its sections' parts were spooled to, stored beside
    /// `state.bin` as `sections.bin` (not in `state.bin`).
    pub spooled: Option<Spooled>,
    /// Loaded with the checkpoint: the `sections.bin` of it and of those it references, checked
    /// against their manifests, by checkpoint.
    pub section_files: Vec<(u64, PathBuf)>,
}

const MAGIC: &[u8; 4] = b"TFCK";
/// 2: operators are named by their plan label and state version (1 named them by their
/// description). 3: every section carries the first 8 bytes of its SHA-256 after its bytes, so
/// a damaged section is found even when the manifest was rewritten to match the file. 4: keyed
/// states' sections of incremental checkpoints follow the sinks. 5: a section is parts, held in
/// `state.bin` or spooled to `sections.bin`.
const VERSION: u32 = 5;

/// The first 8 bytes of `b`'s SHA-256.
fn digest8(b: &[u8]) -> [u8; 8] {
    let d = Sha256::digest(b);
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    out
}

/// Writes a section: its length, its bytes and their digest.
fn put_bytes(out: &mut dyn Write, b: &[u8]) -> std::io::Result<()> {
    out.write_all(&(b.len() as u64).to_le_bytes())?;
    out.write_all(b)?;
    out.write_all(&digest8(b))
}

/// The checksum of a keyed state's section (format 4): XXH3, as the whole file's SHA-256 in
/// the manifest already guards against tampering and these sections are most of the bytes.
fn fast_digest8(b: &[u8]) -> [u8; 8] {
    xxhash_rust::xxh3::xxh3_64(b).to_le_bytes()
}

/// Writes a keyed state's section: its length, its bytes and their [`fast_digest8`].
fn put_state_bytes(out: &mut dyn Write, b: &[u8]) -> std::io::Result<()> {
    out.write_all(&(b.len() as u64).to_le_bytes())?;
    out.write_all(b)?;
    out.write_all(&fast_digest8(b))
}

/// A writer that hashes and counts what goes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Reads a section written by [`put_bytes`]; with `checked` (format 3) its digest must match.
fn get_bytes<'a>(input: &'a [u8], at: &mut usize, checked: bool) -> Result<&'a [u8]> {
    get_checked(input, at, checked.then_some(digest8))
}

/// A section checksum: [`digest8`] or [`fast_digest8`].
type SectionDigest = fn(&[u8]) -> [u8; 8];

/// Reads a section whose digest, when `digest` is given, must match.
fn get_checked<'a>(
    input: &'a [u8],
    at: &mut usize,
    digest: Option<SectionDigest>,
) -> Result<&'a [u8]> {
    let n = read_u64(input, at)? as usize;
    let truncated = || RuntimeError::State("truncated checkpoint section".into());
    let end = at.checked_add(n).ok_or_else(truncated)?;
    let b = input.get(*at..end).ok_or_else(truncated)?;
    *at = end;
    if let Some(digest) = digest {
        let d = input.get(end..end + 8).ok_or_else(truncated)?;
        if d != digest(b) {
            return Err(RuntimeError::State(format!(
                "a section of {n} bytes at byte {} does not match its checksum",
                end - n
            )));
        }
        *at = end + 8;
    }
    Ok(b)
}

impl Snapshot {
    /// True for the checkpoint a bounded job takes at its end (to commit its sinks' last
    /// rows): every source had ended and no operator's state was written, since none is
    /// needed again. Its operators are restored empty.
    pub fn finished(&self) -> bool {
        !self.sources.is_empty()
            && self.sources.iter().all(|s| s.done)
            && self.operators.iter().all(Vec::is_empty)
    }

    /// The binary form (`state.bin`).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // writing to a vector does not fail
        let _ = self.encode_into(&mut out);
        out
    }

    /// Writes the binary form (`state.bin`) to `out` as it is made.
    pub fn encode_into(&self, out: &mut dyn Write) -> std::io::Result<()> {
        out.write_all(MAGIC)?;
        out.write_all(&VERSION.to_le_bytes())?;
        out.write_all(&self.id.to_le_bytes())?;
        out.write_all(&self.run.to_le_bytes())?;
        out.write_all(&(self.layout.len() as u32).to_le_bytes())?;
        for l in &self.layout {
            put_bytes(out, l.as_bytes())?;
        }
        out.write_all(&(self.sources.len() as u32).to_le_bytes())?;
        for s in &self.sources {
            out.write_all(&[s.done as u8])?;
            put_bytes(out, &s.position)?;
        }
        for part in [&self.operators, &self.sinks] {
            out.write_all(&(part.len() as u32).to_le_bytes())?;
            for b in part {
                put_bytes(out, b)?;
            }
        }
        out.write_all(&(self.states.len() as u32).to_le_bytes())?;
        for s in &self.states {
            let mut head = Vec::with_capacity(28 + 25 * s.parts.len());
            head.extend_from_slice(&s.lineage.to_le_bytes());
            head.extend_from_slice(&s.checkpoint.to_le_bytes());
            head.extend_from_slice(&s.previous.to_le_bytes());
            head.extend_from_slice(&(s.parts.len() as u32).to_le_bytes());
            for p in &s.parts {
                match p {
                    Part::Bytes(_) => head.push(0),
                    Part::Spooled {
                        offset,
                        len,
                        digest,
                    } => {
                        head.push(1);
                        head.extend_from_slice(&offset.to_le_bytes());
                        head.extend_from_slice(&len.to_le_bytes());
                        head.extend_from_slice(&digest.to_le_bytes());
                    }
                }
            }
            put_bytes(out, &head)?;
            for p in &s.parts {
                if let Part::Bytes(b) = p {
                    put_state_bytes(out, b)?;
                }
            }
        }
        Ok(())
    }

    /// Reads [`Snapshot::encode`]'s output.
    pub fn decode(input: &[u8]) -> Result<Snapshot> {
        if input.get(..4) != Some(MAGIC.as_slice()) {
            return Err(RuntimeError::State("not a tillflow checkpoint".into()));
        }
        let mut at = 4;
        let version = read_u32(input, &mut at)?;
        // format 2 is format 3 without section checksums, and 3 is 4 without keyed states'
        // sections: both still read
        let checked = version >= 3;
        if !(2..=VERSION).contains(&version) {
            return Err(RuntimeError::State(format!(
                "checkpoint format {version}, this tillflow reads {VERSION}{}",
                if version < VERSION {
                    " (it was written by an earlier tillflow: resume it with that version, or start afresh with --fresh)"
                } else {
                    " (it was written by a newer tillflow)"
                }
            )));
        }
        let id = read_u64(input, &mut at)?;
        let run = read_u64(input, &mut at)?;
        let mut snap = Snapshot {
            id,
            run,
            ..Snapshot::default()
        };
        for _ in 0..read_u32(input, &mut at)? {
            let b = get_bytes(input, &mut at, checked)?;
            snap.layout.push(String::from_utf8_lossy(b).into_owned());
        }
        for _ in 0..read_u32(input, &mut at)? {
            let done = *input
                .get(at)
                .ok_or_else(|| RuntimeError::State("truncated checkpoint".into()))?
                != 0;
            at += 1;
            let position = get_bytes(input, &mut at, checked)?.to_vec();
            snap.sources.push(SourceState { done, position });
        }
        for part in [&mut snap.operators, &mut snap.sinks] {
            for _ in 0..read_u32(input, &mut at)? {
                part.push(get_bytes(input, &mut at, checked)?.to_vec());
            }
        }
        if version >= 4 {
            for _ in 0..read_u32(input, &mut at)? {
                let head = get_bytes(input, &mut at, checked)?;
                let h = &mut 0;
                let (lineage, checkpoint, previous) =
                    (read_u64(head, h)?, read_u64(head, h)?, read_u64(head, h)?);
                let mut parts = Vec::new();
                if version == 4 {
                    // one part, held
                    parts.push(Part::Bytes(
                        get_checked(input, &mut at, Some(fast_digest8))?.to_vec(),
                    ));
                } else {
                    let n = read_u32(head, h)?;
                    for _ in 0..n {
                        let kind = *head
                            .get(*h)
                            .ok_or_else(|| RuntimeError::State("truncated section head".into()))?;
                        *h += 1;
                        parts.push(if kind == 0 {
                            Part::Bytes(Vec::new())
                        } else {
                            Part::Spooled {
                                offset: read_u64(head, h)?,
                                len: read_u64(head, h)?,
                                digest: read_u64(head, h)?,
                            }
                        });
                    }
                    for p in &mut parts {
                        if let Part::Bytes(b) = p {
                            *b = get_checked(input, &mut at, Some(fast_digest8))?.to_vec();
                        }
                    }
                }
                snap.states.push(StateSection {
                    lineage,
                    checkpoint,
                    previous,
                    parts,
                });
            }
        }
        Ok(snap)
    }

    /// The number of workers the checkpoint was taken on (1 for a job on one thread).
    pub fn parallelism(&self) -> usize {
        self.layout
            .iter()
            .find_map(|x| x.strip_prefix("parallelism: "))
            .and_then(|p| p.parse().ok())
            .unwrap_or(1)
    }

    /// How this checkpoint meets a job whose plan has `layout`: the same plan at the same
    /// parallelism; the same plan at another parallelism (every node the same, only the number
    /// of each keyed node's instances differs), whose keyed state then moves to its new owners;
    /// or a different plan, with the first differences.
    pub fn fit(&self, layout: &[String]) -> Fit {
        if self.layout == layout {
            return Fit::Same;
        }
        let parallelism = |l: &[String], key: &str, default: u64| {
            l.iter()
                .find_map(|x| x.strip_prefix(key))
                .and_then(|p| p.parse::<u64>().ok())
                .unwrap_or(default)
        };
        let (was, is) = (
            parallelism(&self.layout, "parallelism: ", 1),
            parallelism(layout, "parallelism: ", 1),
        );
        let (max_was, max_is) = (
            parallelism(&self.layout, "max-parallelism: ", 1),
            parallelism(layout, "max-parallelism: ", 1),
        );
        if was == is && max_was == max_is {
            return Fit::Incompatible(ordered_differences(&self.layout, layout));
        }
        // another parallelism: the same sources in order, and the same set of nodes
        let sources = |l: &[String]| -> Vec<String> {
            l.iter()
                .filter(|x| x.starts_with("source: "))
                .cloned()
                .collect()
        };
        let nodes = |l: &[String]| -> std::collections::BTreeSet<String> {
            l.iter()
                .filter(|x| x.starts_with("operator: ") || x.starts_with("sink: "))
                .cloned()
                .collect()
        };
        let (old_sources, new_sources) = (sources(&self.layout), sources(layout));
        if old_sources != new_sources {
            return Fit::Incompatible(ordered_differences(&old_sources, &new_sources));
        }
        let (old, new) = (nodes(&self.layout), nodes(layout));
        if old != new {
            let mut diffs: Vec<String> = old
                .difference(&new)
                .map(|x| format!("`{x}` is gone"))
                .chain(new.difference(&old).map(|x| format!("`{x}` is new")))
                .collect();
            let more = diffs.len().saturating_sub(3);
            diffs.truncate(3);
            let mut what = format!(
                "it was taken at parallelism {was} and this run has parallelism {is}, and its plan \
                 differs: {}",
                diffs.join("; ")
            );
            if more > 0 {
                what.push_str(&format!("; and {more} more difference(s)"));
            }
            return Fit::Incompatible(what);
        }
        Fit::Rescaled {
            parallelism: was as usize,
            max_parallelism: max_was,
        }
    }
}

/// How a checkpoint meets the job restoring it ([`Snapshot::fit`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Fit {
    /// The same plan at the same parallelism.
    Same,
    /// The same plan, taken at `parallelism` workers and `max_parallelism` key groups.
    Rescaled {
        /// The checkpoint's parallelism.
        parallelism: usize,
        /// The checkpoint's key groups.
        max_parallelism: u64,
    },
    /// Another plan: what differs.
    Incompatible(String),
}

/// The first differences between two layouts, node by node.
fn ordered_differences(was: &[String], is: &[String]) -> String {
    let mut diffs = Vec::new();
    for i in 0..was.len().max(is.len()) {
        match (was.get(i), is.get(i)) {
            (Some(a), Some(b)) if a == b => {}
            (Some(a), Some(b)) => diffs.push(format!("node {} was `{a}`, is now `{b}`", i + 1)),
            (Some(a), None) => diffs.push(format!("node {} `{a}` is gone", i + 1)),
            (None, Some(b)) => diffs.push(format!("node {} `{b}` is new", i + 1)),
            (None, None) => {}
        }
    }
    let more = diffs.len().saturating_sub(3);
    diffs.truncate(3);
    let mut what = diffs.join("; ");
    if more > 0 {
        what.push_str(&format!("; and {more} more difference(s)"));
    }
    what
}

/// The manifest written beside `state.bin`.
#[derive(serde::Serialize, serde::Deserialize)]
struct Manifest {
    format: u32,
    job: String,
    checkpoint: u64,
    run: u64,
    created_unix_ms: u64,
    files: Vec<ManifestFile>,
    /// The earlier checkpoints' files this one builds on (incremental checkpoints).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    shared: Vec<SharedFile>,
}

/// A file of an earlier checkpoint that a checkpoint builds on.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct SharedFile {
    checkpoint: u64,
    name: String,
    bytes: u64,
    sha256: String,
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct ManifestFile {
    name: String,
    bytes: u64,
    sha256: String,
}

fn sha256_hex(b: &[u8]) -> String {
    hex(&Sha256::digest(b))
}

/// Bytes (a digest) in lower-case hex.
pub(crate) fn hex(digest: &[u8]) -> String {
    digest.iter().map(|x| format!("{x:02x}")).collect()
}

/// Where a job's checkpoints are kept: a local directory ([`LocalBackend`]) or an object store
/// (the connectors crate's S3 backend). A checkpoint `id` is two files, `chk-NNNNNN/state.bin` and
/// `chk-NNNNNN/MANIFEST.json`; [`CheckpointBackend::write`] makes it appear whole or not at all
/// (a local rename; on an object store the manifest is written last and marks it complete).
pub trait CheckpointBackend: Send + Sync {
    /// Where the job's checkpoints are (a directory or a URI), for messages.
    fn location(&self) -> String;
    /// The ids of the complete checkpoints, in any order.
    fn ids(&self) -> Result<Vec<u64>, CheckpointError>;
    /// Stores checkpoint `id`.
    fn write(&self, id: u64, state: &[u8], manifest: &[u8]) -> Result<(), CheckpointError>;
    /// Takes the job's location for this process for as long as the lease lives, refusing
    /// ([`CheckpointError::Held`]) while another process holds it: two runs of one job would
    /// resume from and overwrite each other's checkpoints. By default (a store that cannot
    /// lock) the lease holds nothing.
    fn hold(&self, _job: &str) -> Result<JobLease, CheckpointError> {
        Ok(JobLease { _file: None })
    }
    /// Where a snapshot of checkpoint `id` may spool its sections' parts, to be stored with it
    /// as `sections.bin` (None: the backend takes no such file, and parts are held in
    /// `state.bin`).
    fn spool_path(&self, _id: u64) -> Option<PathBuf> {
        None
    }
    /// A local path of file `name` of checkpoint `id`, when the backend has one.
    fn local_file(&self, _id: u64, _name: &str) -> Option<PathBuf> {
        None
    }
    /// Stores checkpoint `id`, its `state.bin` written by `encode` as it is made (the local
    /// backend streams it into the file; by default it is gathered first), the spooled
    /// `sections` file when there is one (only backends with a [`CheckpointBackend::spool_path`])
    /// and its manifest made by `manifest` from `state.bin`'s size and SHA-256.
    fn write_streamed(
        &self,
        id: u64,
        encode: &dyn Fn(&mut dyn Write) -> std::io::Result<()>,
        sections: Option<&Path>,
        manifest: &dyn Fn(u64, String) -> Vec<u8>,
    ) -> Result<(), CheckpointError> {
        if sections.is_some() {
            return Err(CheckpointError::Io {
                path: format!("{}/{}", self.location(), checkpoint_name(id)),
                source: std::io::Error::other("this checkpoint store takes no sections file"),
            });
        }
        let mut state = Vec::new();
        encode(&mut state).map_err(|e| CheckpointError::Io {
            path: format!("{}/{}", self.location(), checkpoint_name(id)),
            source: e,
        })?;
        let m = manifest(state.len() as u64, sha256_hex(&state));
        self.write(id, &state, &m)
    }
    /// Reads checkpoint `id`: `(manifest, state)`.
    fn read(&self, id: u64) -> Result<(Vec<u8>, Vec<u8>), CheckpointError>;
    /// Reads checkpoint `id`'s manifest only.
    fn read_manifest(&self, id: u64) -> Result<Vec<u8>, CheckpointError> {
        self.read(id).map(|(m, _)| m)
    }
    /// Removes checkpoint `id`.
    fn remove(&self, id: u64) -> Result<(), CheckpointError>;
    /// Removes every checkpoint of the job.
    fn remove_all(&self) -> Result<(), CheckpointError>;
}

/// The name of checkpoint `id`'s directory or prefix.
pub fn checkpoint_name(id: u64) -> String {
    format!("chk-{id:06}")
}

/// A directory or URI naming one checkpoint (`…/chk-NNNNNN`): the job's location and the id.
pub fn split_checkpoint_location(location: &str) -> Option<(&str, u64)> {
    let trimmed = location.trim_end_matches('/');
    let (parent, last) = trimmed.rsplit_once('/').unwrap_or(("", trimmed));
    let id = last.strip_prefix("chk-")?.parse().ok()?;
    Some((parent, id))
}

/// Checkpoints in a local directory: `DIR/chk-NNNNNN/{state.bin, MANIFEST.json}`, written into a
/// hidden `.chk-NNNNNN.inprogress` directory, synced and renamed.
#[derive(Clone, Debug)]
pub struct LocalBackend {
    dir: PathBuf,
}

/// A job's hold on its checkpoint location ([`CheckpointBackend::hold`]): the location is free
/// again when the lease is dropped or the process ends, however it ends.
#[derive(Debug)]
pub struct JobLease {
    _file: Option<fs::File>,
}

/// The file in a job's local checkpoint directory whose lock is the job's lease.
const LEASE_FILE: &str = "LOCK";

/// Who this process is, for the lease file: `process P on HOST since TIME`.
fn holder_text() -> String {
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let host = if host.is_empty() {
        "this machine".to_owned()
    } else {
        host
    };
    let now = jiff::Timestamp::now();
    format!(
        "process {} on {host} since {}",
        std::process::id(),
        now.round(jiff::Unit::Second).unwrap_or(now)
    )
}

impl LocalBackend {
    /// The checkpoints in `dir` (the job's own directory).
    pub fn new(dir: PathBuf) -> Self {
        LocalBackend { dir }
    }
}

impl CheckpointBackend for LocalBackend {
    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    /// An exclusive lock (`flock`) on `LOCK` in the job's directory, which names its holder.
    fn hold(&self, job: &str) -> Result<JobLease, CheckpointError> {
        fs::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?;
        let path = self.dir.join(LEASE_FILE);
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                use std::io::Read;
                let mut holder = String::new();
                let _ = (&file).take(300).read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(CheckpointError::Held {
                    job: job.to_owned(),
                    location: self.location(),
                    holder: if holder.is_empty() {
                        "another process".to_owned()
                    } else {
                        holder.to_owned()
                    },
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io(&path, e)),
        }
        file.set_len(0).map_err(|e| io(&path, e))?;
        file.write_all(holder_text().as_bytes())
            .and_then(|()| file.flush())
            .map_err(|e| io(&path, e))?;
        Ok(JobLease { _file: Some(file) })
    }

    fn ids(&self) -> Result<Vec<u64>, CheckpointError> {
        let mut out = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io(&self.dir, e)),
        };
        for e in entries {
            let e = e.map_err(|e| io(&self.dir, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(n) = name
                .strip_prefix("chk-")
                .and_then(|n| n.parse::<u64>().ok())
            {
                out.push(n);
            }
        }
        Ok(out)
    }

    fn write(&self, id: u64, state: &[u8], manifest: &[u8]) -> Result<(), CheckpointError> {
        self.write_streamed(id, &|w| w.write_all(state), None, &|_, _| manifest.to_vec())
    }

    fn read(&self, id: u64) -> Result<(Vec<u8>, Vec<u8>), CheckpointError> {
        let dir = self.dir.join(checkpoint_name(id));
        let m = dir.join("MANIFEST.json");
        let manifest = read_file(&m)?;
        let state = read_file(&dir.join("state.bin"))?;
        Ok((manifest, state))
    }

    fn spool_path(&self, id: u64) -> Option<PathBuf> {
        Some(self.dir.join(format!(".{}.sections", checkpoint_name(id))))
    }

    fn local_file(&self, id: u64, name: &str) -> Option<PathBuf> {
        Some(self.dir.join(checkpoint_name(id)).join(name))
    }

    fn write_streamed(
        &self,
        id: u64,
        encode: &dyn Fn(&mut dyn Write) -> std::io::Result<()>,
        sections: Option<&Path>,
        manifest: &dyn Fn(u64, String) -> Vec<u8>,
    ) -> Result<(), CheckpointError> {
        fs::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?;
        let name = checkpoint_name(id);
        let tmp = self.dir.join(format!(".{name}.inprogress"));
        let dest = self.dir.join(&name);
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
        }
        let result = (|| {
            fs::create_dir(&tmp).map_err(|e| io(&tmp, e))?;
            let path = tmp.join("state.bin");
            let file = fs::File::create(&path).map_err(|e| io(&path, e))?;
            let mut w = Hashing {
                inner: std::io::BufWriter::with_capacity(1 << 20, file),
                hasher: Sha256::new(),
                bytes: 0,
            };
            encode(&mut w)
                .and_then(|()| w.flush())
                .map_err(|e| io(&path, e))?;
            let Hashing {
                inner,
                hasher,
                bytes,
            } = w;
            let file = inner.into_inner().map_err(|e| io(&path, e.into_error()))?;
            file.sync_all().map_err(|e| io(&path, e))?;
            let sha: String = hex(&hasher.finalize());
            if let Some(spooled) = sections {
                let to = tmp.join("sections.bin");
                fs::rename(spooled, &to).map_err(|e| io(&to, e))?;
            }
            write_synced(&tmp.join("MANIFEST.json"), &manifest(bytes, sha))?;
            fs::rename(&tmp, &dest).map_err(|e| io(&dest, e))?;
            sync_dir(&self.dir)
        })();
        if result.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        result
    }

    fn read_manifest(&self, id: u64) -> Result<Vec<u8>, CheckpointError> {
        read_file(&self.dir.join(checkpoint_name(id)).join("MANIFEST.json"))
    }

    fn remove(&self, id: u64) -> Result<(), CheckpointError> {
        let dir = self.dir.join(checkpoint_name(id));
        fs::remove_dir_all(&dir).map_err(|e| io(&dir, e))
    }

    /// Everything in the job's directory but the lease file (whose lock a running job holds).
    fn remove_all(&self) -> Result<(), CheckpointError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(&self.dir, e)),
        };
        for e in entries {
            let e = e.map_err(|e| io(&self.dir, e))?;
            if e.file_name() == LEASE_FILE {
                continue;
            }
            let path = e.path();
            let gone = match e.file_type() {
                Ok(t) if t.is_dir() => fs::remove_dir_all(&path),
                _ => fs::remove_file(&path),
            };
            match gone {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&path, e)),
            }
        }
        Ok(())
    }
}

/// A checkpoint just written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// Where it is.
    pub location: String,
    /// Bytes of its own file.
    pub bytes: u64,
    /// Bytes a restore reads: its own and those of the earlier checkpoints it builds on (the
    /// same as `bytes` for a full checkpoint).
    pub full_bytes: u64,
}

/// A job's checkpoints: numbering, the manifest and its checks, retention, on a backend.
#[derive(Clone)]
pub struct CheckpointStore {
    backend: std::sync::Arc<dyn CheckpointBackend>,
    job: String,
    retained: usize,
}

impl std::fmt::Debug for CheckpointStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CheckpointStore({})", self.backend.location())
    }
}

/// A job name made safe as a directory or object name.
pub fn safe_job_name(job: &str) -> String {
    job.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl CheckpointStore {
    /// The checkpoints of `job` in the local directory `root/JOB`, keeping the last `retained`
    /// (at least 1).
    pub fn new(root: &Path, job: &str, retained: usize) -> Self {
        Self::with_backend(
            std::sync::Arc::new(LocalBackend::new(root.join(safe_job_name(job)))),
            job,
            retained,
        )
    }

    /// The checkpoints of `job` on `backend` (already pointing at the job's own place).
    pub fn with_backend(
        backend: std::sync::Arc<dyn CheckpointBackend>,
        job: &str,
        retained: usize,
    ) -> Self {
        CheckpointStore {
            backend,
            job: job.to_owned(),
            retained: retained.max(1),
        }
    }

    /// Where the job's checkpoints are.
    pub fn location(&self) -> String {
        self.backend.location()
    }

    /// Takes the job's checkpoint location for this process while the lease lives; refused
    /// while another process runs the job ([`CheckpointBackend::hold`]).
    pub fn hold(&self) -> Result<JobLease, CheckpointError> {
        self.backend.hold(&self.job)
    }

    /// Where checkpoint `id` is.
    pub fn location_of(&self, id: u64) -> String {
        format!("{}/{}", self.backend.location(), checkpoint_name(id))
    }

    /// The job's name.
    pub fn job(&self) -> &str {
        &self.job
    }

    /// Complete checkpoints, oldest first.
    pub fn list(&self) -> Result<Vec<u64>, CheckpointError> {
        let mut ids = self.backend.ids()?;
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// The newest complete checkpoint.
    pub fn latest(&self) -> Result<Option<u64>, CheckpointError> {
        Ok(self.list()?.pop())
    }

    /// The number the next checkpoint gets (one more than any kept).
    pub fn next_id(&self) -> Result<u64, CheckpointError> {
        Ok(self.list()?.last().map_or(1, |n| n + 1))
    }

    /// Writes `snap` as checkpoint `snap.id` (whole or not at all), then drops checkpoints
    /// beyond the retained number that no retained one builds on. On failure the earlier
    /// checkpoints are untouched.
    pub fn write(&self, snap: &Snapshot) -> Result<Written, CheckpointError> {
        let result = self.write_files(snap);
        if let (Err(_), Some(s)) = (&result, &snap.spooled) {
            let _ = fs::remove_file(&s.path);
        }
        result
    }

    /// Where a snapshot of checkpoint `id` spools its sections' parts (None when the backend
    /// takes no sections file: they are held in `state.bin`).
    pub fn open_spool(&self, id: u64) -> Result<Option<Spool>, CheckpointError> {
        let Some(path) = self.backend.spool_path(id) else {
            return Ok(None);
        };
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        }
        Spool::create(path.clone())
            .map(Some)
            .map_err(|e| io(&path, e))
    }

    fn write_files(&self, snap: &Snapshot) -> Result<Written, CheckpointError> {
        let mut shared = Vec::with_capacity(snap.references.len());
        for &r in &snap.references {
            let m = self.manifest(r)?;
            if !m.files.iter().any(|f| f.name == "state.bin") {
                return Err(CheckpointError::Corrupt {
                    path: self.location_of(r),
                    what: "the manifest lists no state.bin".into(),
                });
            }
            for f in &m.files {
                shared.push(SharedFile {
                    checkpoint: r,
                    name: format!("{}/{}", checkpoint_name(r), f.name),
                    bytes: f.bytes,
                    sha256: f.sha256.clone(),
                });
            }
        }
        let shared_bytes: u64 = shared.iter().map(|f| f.bytes).sum();
        let written = std::cell::Cell::new(0);
        let manifest = |bytes: u64, sha256: String| {
            written.set(bytes);
            let m = Manifest {
                format: VERSION,
                job: self.job.clone(),
                checkpoint: snap.id,
                run: snap.run,
                created_unix_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0),
                files: std::iter::once(ManifestFile {
                    name: "state.bin".into(),
                    bytes,
                    sha256,
                })
                .chain(snap.spooled.iter().map(|s| ManifestFile {
                    name: "sections.bin".into(),
                    bytes: s.len,
                    sha256: s.sha256.clone(),
                }))
                .collect(),
                shared: shared.clone(),
            };
            // a manifest of strings and numbers always serializes
            serde_json::to_vec_pretty(&m).unwrap_or_default()
        };
        self.backend.write_streamed(
            snap.id,
            &|w| snap.encode_into(w),
            snap.spooled.as_ref().map(|s| s.path.as_path()),
            &manifest,
        )?;
        self.retire(snap)?;
        let own = written.get() + snap.spooled.as_ref().map_or(0, |s| s.len);
        Ok(Written {
            location: self.location_of(snap.id),
            bytes: own,
            full_bytes: own + shared_bytes,
        })
    }

    /// Removes the checkpoints beyond the retained number (just after `snap` was written) that
    /// no retained checkpoint builds on. One whose manifest does not read keeps every older
    /// checkpoint in place.
    fn retire(&self, snap: &Snapshot) -> Result<(), CheckpointError> {
        let all = self.list()?;
        if all.len() <= self.retained {
            return Ok(());
        }
        let kept = &all[all.len() - self.retained..];
        let mut needed: std::collections::BTreeSet<u64> = kept.iter().copied().collect();
        for &id in kept {
            if id == snap.id {
                needed.extend(&snap.references);
                continue;
            }
            match self.manifest(id) {
                Ok(m) => needed.extend(m.shared.iter().map(|f| f.checkpoint)),
                Err(_) => return Ok(()),
            }
        }
        for old in &all[..all.len() - self.retained] {
            if !needed.contains(old) {
                let _ = self.backend.remove(*old);
            }
        }
        Ok(())
    }

    /// Checkpoint `id`'s manifest.
    fn manifest(&self, id: u64) -> Result<Manifest, CheckpointError> {
        let bytes = self.backend.read_manifest(id)?;
        serde_json::from_slice(&bytes).map_err(|e| CheckpointError::Corrupt {
            path: self.location_of(id),
            what: format!("MANIFEST.json does not parse: {e}"),
        })
    }

    /// Reads and checks checkpoint `id` (size and checksum against its manifest), with the
    /// state sections of the earlier checkpoints it builds on.
    pub fn load_id(&self, id: u64) -> Result<Snapshot, CheckpointError> {
        let (manifest, state) = self.backend.read(id)?;
        let location = self.location_of(id);
        let (mut snap, m) = check(&location, &manifest, &state, Some(&self.job))?;
        drop(state);
        let local = |c: u64| self.backend.local_file(c, "sections.bin");
        sections_file(&location, id, &m.files, local(id), &mut snap)?;
        for (c, recorded) in shared_by_checkpoint(&m.shared) {
            let from = self.location_of(c);
            let (manifest, state) = self
                .backend
                .read(c)
                .map_err(|e| missing_reference(&location, c, &e.to_string()))?;
            let (earlier, em) = check_shared(&from, &recorded, &manifest, &state, Some(&self.job))?;
            drop(state);
            sections_file(&from, c, &em.files, local(c), &mut snap)?;
            snap.shared.extend(earlier.states);
            snap.references.push(c);
        }
        Ok(snap)
    }

    /// Reads and checks the checkpoint in the local directory `dir` (…/chk-NNNNNN), with the
    /// state sections of the earlier checkpoints (beside it) it builds on.
    pub fn load(dir: &Path) -> Result<Snapshot, CheckpointError> {
        let mpath = dir.join("MANIFEST.json");
        let manifest = read_file(&mpath)?;
        let state = read_file(&dir.join("state.bin"))?;
        let location = dir.display().to_string();
        let (mut snap, m) = check(&location, &manifest, &state, None)?;
        drop(state);
        let sections = Some(dir.join("sections.bin"));
        sections_file(&location, snap.id, &m.files, sections, &mut snap)?;
        let parent = dir.parent().unwrap_or(Path::new("."));
        for (c, recorded) in shared_by_checkpoint(&m.shared) {
            let other = parent.join(checkpoint_name(c));
            let read = read_file(&other.join("MANIFEST.json"))
                .and_then(|m| Ok((m, read_file(&other.join("state.bin"))?)));
            let (manifest, state) =
                read.map_err(|e| missing_reference(&location, c, &e.to_string()))?;
            let from = other.display().to_string();
            let (earlier, em) = check_shared(&from, &recorded, &manifest, &state, Some(&m.job))?;
            drop(state);
            sections_file(
                &from,
                c,
                &em.files,
                Some(other.join("sections.bin")),
                &mut snap,
            )?;
            snap.shared.extend(earlier.states);
            snap.references.push(c);
        }
        Ok(snap)
    }

    /// Removes every checkpoint of the job (when it has finished).
    pub fn remove_all(&self) -> Result<(), CheckpointError> {
        self.backend.remove_all()
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let mut f = fs::File::create(path).map_err(|e| io(path, e))?;
    f.write_all(bytes).map_err(|e| io(path, e))?;
    f.sync_all().map_err(|e| io(path, e))
}

fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))
}

/// The error for a damaged checkpoint at `location`: what is wrong with it.
fn corrupt_at(location: &str, what: String) -> CheckpointError {
    CheckpointError::Corrupt {
        path: location.to_owned(),
        what,
    }
}

/// The error for an earlier checkpoint that checkpoint `location` builds on and that does not
/// read.
fn missing_reference(location: &str, id: u64, why: &str) -> CheckpointError {
    corrupt_at(
        location,
        format!(
            "it builds on the keyed state of checkpoint {id} ({}), which does not read: {why}",
            checkpoint_name(id)
        ),
    )
}

/// The files a manifest's `shared` list records, by checkpoint: `state.bin`'s entry, and
/// whether `sections.bin` was recorded (with its entry).
fn shared_by_checkpoint(shared: &[SharedFile]) -> Vec<(u64, Recorded)> {
    let mut out: Vec<(u64, Recorded)> = Vec::new();
    for f in shared {
        let i = match out.iter().position(|(c, _)| *c == f.checkpoint) {
            Some(i) => i,
            None => {
                out.push((f.checkpoint, Recorded::default()));
                out.len() - 1
            }
        };
        if f.name.ends_with("/sections.bin") {
            out[i].1.sections = Some(f.clone());
        } else {
            out[i].1.state = Some(f.clone());
        }
    }
    out
}

/// What a later checkpoint's manifest recorded of an earlier one's files.
#[derive(Clone, Default)]
struct Recorded {
    state: Option<SharedFile>,
    sections: Option<SharedFile>,
}

/// Checks checkpoint `id`'s `sections.bin` (at `path`, a local file) against the size and
/// SHA-256 its manifest lists, when it lists one, and records it in `snap`.
fn sections_file(
    location: &str,
    id: u64,
    files: &[ManifestFile],
    path: Option<PathBuf>,
    snap: &mut Snapshot,
) -> Result<(), CheckpointError> {
    let Some(listed) = files.iter().find(|f| f.name == "sections.bin") else {
        return Ok(());
    };
    let corrupt = |what: String| corrupt_at(location, what);
    let path = path.ok_or_else(|| corrupt("its sections.bin cannot be read from here".into()))?;
    let (bytes, sha) = hash_file(&path).map_err(|e| corrupt(format!("sections.bin: {e}")))?;
    if bytes != listed.bytes || sha != listed.sha256 {
        return Err(corrupt(format!(
            "sections.bin ({bytes} bytes) is not the file its manifest lists ({} bytes, SHA-256 {})",
            listed.bytes,
            listed.sha256.get(..16).unwrap_or("")
        )));
    }
    snap.section_files.push((id, path));
    Ok(())
}

/// The length and SHA-256 (hex) of a file, read a block at a time.
fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    use std::io::Read;
    let mut f = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((len, hex(&hasher.finalize())))
}

/// Checks an earlier checkpoint that another builds on: its own manifest, and its files
/// against what the other's manifest recorded of them.
fn check_shared(
    location: &str,
    recorded: &Recorded,
    manifest: &[u8],
    state: &[u8],
    job: Option<&str>,
) -> Result<(Snapshot, Manifest), CheckpointError> {
    let corrupt = |what: String| corrupt_at(location, what);
    let Some(rs) = recorded.state.as_ref() else {
        return Err(corrupt(
            "a later checkpoint builds on it without recording its state.bin".into(),
        ));
    };
    if state.len() as u64 != rs.bytes || sha256_hex(state) != rs.sha256 {
        return Err(corrupt(format!(
            "its state.bin ({} bytes) is not the one a later checkpoint builds on ({} bytes, SHA-256 {})",
            state.len(),
            rs.bytes,
            rs.sha256.get(..16).unwrap_or("")
        )));
    }
    let checked = check(location, manifest, state, job)?;
    let listed = checked.1.files.iter().find(|f| f.name == "sections.bin");
    let same = match (&recorded.sections, listed) {
        (Some(r), Some(l)) => r.bytes == l.bytes && r.sha256 == l.sha256,
        (None, None) => true,
        _ => false,
    };
    if !same {
        return Err(corrupt(
            "its sections.bin is not the one a later checkpoint builds on".into(),
        ));
    }
    Ok(checked)
}

/// Checks `state` against `manifest` (and, when known, the job it must belong to) and decodes
/// it.
fn check(
    location: &str,
    manifest: &[u8],
    state: &[u8],
    job: Option<&str>,
) -> Result<(Snapshot, Manifest), CheckpointError> {
    let corrupt = |what: String| corrupt_at(location, what);
    let manifest: Manifest = serde_json::from_slice(manifest)
        .map_err(|e| corrupt(format!("MANIFEST.json does not parse: {e}")))?;
    if !(2..=VERSION).contains(&manifest.format) {
        return Err(corrupt(format!(
            "MANIFEST.json is of format {}, this tillflow reads 2 to {VERSION}",
            manifest.format
        )));
    }
    let job_name = |j: &str| {
        !j.is_empty()
            && j.len() <= 255
            && !j.contains(['/', '\\'])
            && j != "."
            && j != ".."
            && !j.chars().any(char::is_control)
    };
    if !job_name(&manifest.job) {
        let shown: String = manifest.job.chars().take(100).collect();
        return Err(corrupt(format!(
            "MANIFEST.json names the job `{shown}`, which is not a job name"
        )));
    }
    if let Some(job) = job.filter(|j| *j != manifest.job) {
        return Err(corrupt(format!(
            "MANIFEST.json says it belongs to job `{}`, not `{job}`",
            manifest.job
        )));
    }
    let file = manifest
        .files
        .iter()
        .find(|f| f.name == "state.bin")
        .ok_or_else(|| corrupt("the manifest lists no state.bin".into()))?;
    if state.len() as u64 != file.bytes {
        return Err(corrupt(format!(
            "state.bin has {} bytes, the manifest says {}",
            state.len(),
            file.bytes
        )));
    }
    if sha256_hex(state) != file.sha256 {
        return Err(corrupt(
            "state.bin's SHA-256 differs from the manifest's".into(),
        ));
    }
    let snap = Snapshot::decode(state).map_err(|e| corrupt(e.to_string()))?;
    if snap.id != manifest.checkpoint {
        return Err(corrupt(format!(
            "state.bin is checkpoint {}, the manifest says {}",
            snap.id, manifest.checkpoint
        )));
    }
    Ok((snap, manifest))
}

/// Makes a transactional sink exactly-once: rows received between checkpoints are held here;
/// at a checkpoint they go into the snapshot, and once the snapshot is durable they are
/// committed with a marker naming the checkpoint ([`TransactionalSink::commit_rows`]).
pub struct EpochSink {
    inner: Box<dyn Sink>,
    writer: String,
    pending: RowLog,
    prepared: Option<RowLog>,
}

impl EpochSink {
    /// Wraps `inner`; `writer` names this sink of this job in the sink's commit markers.
    pub fn new(inner: Box<dyn Sink>, writer: String) -> Self {
        EpochSink {
            inner,
            writer,
            pending: RowLog::default(),
            prepared: None,
        }
    }

    fn tx(&mut self) -> Result<&mut dyn TransactionalSink> {
        let what = self.inner.describe();
        self.inner
            .transactional()
            .ok_or_else(|| RuntimeError::Sink(format!("{what} cannot commit transactionally")))
    }
}

impl Sink for EpochSink {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    #[inline]
    fn write(&mut self, row: &Row) -> Result<()> {
        self.pending.push(row);
        Ok(())
    }

    fn watermark(&mut self, wm: i64) -> Result<()> {
        self.inner.watermark(wm)
    }

    /// The rows wait for the job's final checkpoint, which commits them.
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }

    fn rows_written(&self) -> u64 {
        self.inner.rows_written()
    }

    fn recent_rows(&mut self, out: &mut Vec<String>) -> Option<String> {
        self.inner.recent_rows(out)
    }

    fn prepare_checkpoint(&mut self, out: &mut Vec<u8>) -> Result<()> {
        self.inner.on_barrier();
        let log = std::mem::take(&mut self.pending);
        log.write_to(out);
        self.prepared = Some(log);
        Ok(())
    }

    fn commit_checkpoint(&mut self, run: u64, id: u64) -> Result<()> {
        if let Some(mut log) = self.prepared.take() {
            let writer = self.writer.clone();
            self.tx()?.commit_rows(&writer, run, id, &log)?;
            if self.pending.is_empty() {
                // reuse the buffer (rows that came while the checkpoint was written are kept)
                log.clear();
                self.pending = log;
            }
        }
        Ok(())
    }

    fn restore_checkpoint(&mut self, run: u64, id: u64, input: &[u8]) -> Result<()> {
        let writer = self.writer.clone();
        self.restore_checkpoint_from(&writer, run, id, input)
    }

    fn restore_checkpoint_from(
        &mut self,
        writer: &str,
        run: u64,
        id: u64,
        input: &[u8],
    ) -> Result<()> {
        let log = RowLog::read_from(input)?;
        let tx = self.tx()?;
        let done = matches!(tx.committed(writer)?, Some((r, c)) if r == run && c >= id);
        if !done {
            tx.commit_rows(writer, run, id, &log)?;
        }
        Ok(())
    }

    fn end_of_job(&mut self) -> Result<()> {
        self.inner.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tillflow_types::Value;

    fn snap(id: u64) -> Snapshot {
        Snapshot {
            id,
            run: 7,
            layout: vec!["source: a".into(), "operator: b".into()],
            sources: vec![SourceState {
                done: false,
                position: vec![1, 2, 3],
            }],
            operators: vec![vec![9; 100]],
            sinks: vec![vec![]],
            ..Snapshot::default()
        }
    }

    #[test]
    fn snapshots_round_trip_and_only_the_last_n_are_kept() {
        let root = tempfile::tempdir().expect("tempdir");
        let store = CheckpointStore::new(root.path(), "job one", 2);
        assert_eq!(store.next_id().expect("next"), 1);
        for id in 1..=3 {
            store.write(&snap(id)).expect("write");
        }
        assert_eq!(store.list().expect("list"), vec![2, 3]);
        let latest = store.latest().expect("latest").expect("one");
        assert_eq!(store.load_id(latest).expect("load"), snap(3));
        let dir = root.path().join("job_one").join("chk-000003");
        assert_eq!(CheckpointStore::load(&dir).expect("load"), snap(3));
        assert_eq!(store.next_id().expect("next"), 4);
    }

    #[test]
    fn a_damaged_checkpoint_is_refused_with_the_reason() {
        let root = tempfile::tempdir().expect("tempdir");
        let store = CheckpointStore::new(root.path(), "j", 3);
        store.write(&snap(1)).expect("write");
        let dir = root.path().join("j").join("chk-000001");
        let state = dir.join("state.bin");
        let mut b = fs::read(&state).expect("read");
        let last = b.len() - 1;
        b[last] ^= 0xff;
        fs::write(&state, &b).expect("write");
        let e = CheckpointStore::load(&dir).expect_err("corrupt");
        assert!(e.to_string().contains("SHA-256"), "{e}");
        b.truncate(10);
        fs::write(&state, &b).expect("write");
        let e = CheckpointStore::load(&dir).expect_err("corrupt");
        assert!(e.to_string().contains("bytes"), "{e}");
        // a state file that is a link to an endless device is refused, not read forever
        fs::remove_file(&state).expect("remove");
        std::os::unix::fs::symlink("/dev/zero", &state).expect("symlink");
        let e = CheckpointStore::load(&dir).expect_err("not a file");
        assert!(e.to_string().contains("not a regular file"), "{e}");
        assert!(store.load_id(1).is_err());
    }

    /// Rewrites the manifest of the checkpoint in `dir` to match its files, after `edit`.
    fn rewrite_manifest(dir: &Path, edit: impl Fn(&mut serde_json::Value)) {
        let state = fs::read(dir.join("state.bin")).expect("state");
        let m = dir.join("MANIFEST.json");
        let mut v: serde_json::Value =
            serde_json::from_slice(&fs::read(&m).expect("manifest")).expect("json");
        v["files"][0]["bytes"] = serde_json::json!(state.len());
        v["files"][0]["sha256"] = serde_json::json!(sha256_hex(&state));
        edit(&mut v);
        fs::write(&m, serde_json::to_vec(&v).expect("json")).expect("write");
    }

    #[test]
    fn a_damaged_section_is_found_though_the_manifest_was_rewritten_to_match() {
        let root = tempfile::tempdir().expect("tempdir");
        let store = CheckpointStore::new(root.path(), "j", 3);
        store.write(&snap(1)).expect("write");
        let dir = root.path().join("j").join("chk-000001");
        rewrite_manifest(&dir, |_| {});
        assert!(store.load_id(1).is_ok(), "an honest rewrite loads");
        // one byte of the operator's state (the 100 bytes of 9s) changed
        let state = dir.join("state.bin");
        let mut b = fs::read(&state).expect("read");
        let at = b
            .windows(100)
            .position(|w| w == [9u8; 100])
            .expect("section")
            + 50;
        b[at] = 7;
        fs::write(&state, &b).expect("write");
        rewrite_manifest(&dir, |_| {});
        let e = store.load_id(1).expect_err("damaged section");
        assert!(e.to_string().contains("does not match its checksum"), "{e}");
        b[at] = 9;
        fs::write(&state, &b).expect("write");
        rewrite_manifest(&dir, |v| v["job"] = serde_json::json!("../../x"));
        let e = store.load_id(1).expect_err("a path for a job");
        assert!(e.to_string().contains("not a job name"), "{e}");
        rewrite_manifest(&dir, |v| v["job"] = serde_json::json!("other"));
        let e = store.load_id(1).expect_err("another job's");
        assert!(e.to_string().contains("belongs to job `other`"), "{e}");
        rewrite_manifest(&dir, |v| v["format"] = serde_json::json!(99));
        let e = store.load_id(1).expect_err("unknown format");
        assert!(e.to_string().contains("format 99"), "{e}");
    }

    #[test]
    fn a_changed_plan_is_named() {
        let s = snap(1);
        assert_eq!(s.fit(&s.layout), Fit::Same);
        let other = vec!["source: a".to_string(), "operator: c".to_string()];
        let Fit::Incompatible(why) = s.fit(&other) else {
            panic!("differs")
        };
        assert!(
            why.contains("node 2 was `operator: b`, is now `operator: c`"),
            "{why}"
        );
    }

    #[test]
    fn another_parallelism_of_the_same_plan_is_a_rescale_and_a_changed_one_is_named() {
        let layout = |p: usize, ops: &[&str]| {
            let mut l = vec!["source: a".to_string()];
            if p > 1 {
                l.push(format!("parallelism: {p}"));
                l.push("max-parallelism: 128".to_string());
            }
            for _ in 0..p {
                l.extend(ops.iter().map(|o| o.to_string()));
            }
            l
        };
        let mut s = snap(1);
        s.layout = layout(4, &["operator: b", "sink: t"]);
        assert_eq!(
            s.fit(&layout(2, &["operator: b", "sink: t"])),
            Fit::Rescaled {
                parallelism: 4,
                max_parallelism: 128
            }
        );
        assert!(matches!(
            s.fit(&layout(1, &["operator: b", "sink: t"])),
            Fit::Rescaled { parallelism: 4, .. }
        ));
        let Fit::Incompatible(why) = s.fit(&layout(2, &["operator: c", "sink: t"])) else {
            panic!("differs")
        };
        assert!(
            why.contains("parallelism 4") && why.contains("parallelism 2"),
            "{why}"
        );
        assert!(
            why.contains("`operator: b` is gone") && why.contains("`operator: c` is new"),
            "{why}"
        );
    }

    #[test]
    fn an_unwritable_directory_keeps_the_last_good_checkpoint() {
        let root = tempfile::tempdir().expect("tempdir");
        let store = CheckpointStore::new(root.path(), "j", 3);
        store.write(&snap(1)).expect("write");
        // a file where the next checkpoint's temporary directory must go: the write fails (even
        // for root, unlike a read-only directory) as a full or broken disk would
        fs::write(root.path().join("j").join(".chk-000002.inprogress"), b"x").expect("block");
        let e = store.write(&snap(2)).expect_err("cannot write");
        assert!(e.to_string().contains("chk-000002"), "{e}");
        let latest = store.latest().expect("latest").expect("kept");
        assert_eq!(latest, 1);
        assert!(store.load_id(latest).is_ok());
    }

    /// A sink keeping committed rows and its marker in memory.
    #[derive(Default)]
    struct MemSink {
        rows: Vec<i64>,
        marker: Option<(u64, u64)>,
    }

    impl Sink for MemSink {
        fn describe(&self) -> String {
            "mem".into()
        }
        fn write(&mut self, _row: &Row) -> Result<()> {
            Err(RuntimeError::Sink("written outside a checkpoint".into()))
        }
        fn finish(&mut self) -> Result<()> {
            Ok(())
        }
        fn rows_written(&self) -> u64 {
            self.rows.len() as u64
        }
        fn transactional(&mut self) -> Option<&mut dyn TransactionalSink> {
            Some(self)
        }
    }

    impl TransactionalSink for MemSink {
        fn committed(&mut self, _writer: &str) -> Result<Option<(u64, u64)>> {
            Ok(self.marker)
        }
        fn commit_rows(&mut self, _w: &str, run: u64, id: u64, rows: &RowLog) -> Result<()> {
            rows.for_each(&mut |r| {
                if let Some(Value::Int(i)) = r.values.first() {
                    self.rows.push(*i);
                }
                Ok(())
            })?;
            self.marker = Some((run, id));
            Ok(())
        }
    }

    fn int_row(i: i64) -> Row {
        let mut row = Row::default();
        row.values.push(Value::Int(i));
        row
    }

    #[test]
    fn rows_arriving_while_a_checkpoint_is_written_wait_for_the_next() {
        let mut s = EpochSink::new(Box::<MemSink>::default(), "w".into());
        for i in 0..3 {
            s.write(&int_row(i)).expect("write");
        }
        let mut prepared = Vec::new();
        s.prepare_checkpoint(&mut prepared).expect("prepare");
        // the job goes on while checkpoint 1 is written
        s.write(&int_row(3)).expect("write");
        s.commit_checkpoint(9, 1).expect("commit");
        s.write(&int_row(4)).expect("write");
        let mut second = Vec::new();
        s.prepare_checkpoint(&mut second).expect("prepare");
        s.commit_checkpoint(9, 2).expect("commit");
        assert_eq!(s.rows_written(), 5);
        // checkpoint 1 restored: its rows were committed (marker 2 ≥ 1), nothing is written
        s.restore_checkpoint(9, 1, &prepared).expect("restore");
        assert_eq!(s.rows_written(), 5);
        // the same checkpoint in another run (marker from run 9): written again
        s.restore_checkpoint(10, 1, &prepared).expect("restore");
        assert_eq!(s.rows_written(), 8);
    }

    #[test]
    fn damaged_bytes_are_errors_never_panics() {
        let good = snap(4).encode();
        // every truncation, and every single-byte change of the header and counts
        for n in 0..good.len() {
            let _ = Snapshot::decode(&good[..n]);
        }
        for i in 0..good.len().min(200) {
            for x in [0x00u8, 0xff, 0x7f] {
                let mut b = good.clone();
                b[i] = x;
                let _ = Snapshot::decode(&b);
                let _ = RowLog::read_from(&b[i..]);
            }
        }
        // lengths that would overflow or ask for terabytes
        let mut huge = b"TFCK".to_vec();
        huge.extend_from_slice(&1u32.to_le_bytes());
        huge.extend_from_slice(&[0xff; 16]);
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(Snapshot::decode(&huge).is_err());
        let mut rows = Vec::new();
        rows.extend_from_slice(&u64::MAX.to_le_bytes());
        rows.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(RowLog::read_from(&rows).is_err());
        let mut row = vec![0u8];
        row.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(Row::read(&row, &mut 0).is_err());
    }

    #[test]
    fn row_logs_round_trip() {
        let mut log = RowLog::default();
        let mut row = Row::default();
        for i in 0..10 {
            row.clear();
            row.values.push(Value::Int(i));
            log.push(&row);
        }
        let mut out = Vec::new();
        log.write_to(&mut out);
        let back = RowLog::read_from(&out).expect("read");
        let mut seen = Vec::new();
        back.for_each(&mut |r| {
            seen.push(r.values[0]);
            Ok(())
        })
        .expect("rows");
        assert_eq!(seen.len(), 10);
        assert_eq!(seen[9], Value::Int(9));
    }
}
