//! The filesystem sink: a directory of part files as Flink's file sink writes it (or one file
//! with `'sink.single-file'`), in any format of the registry through its [`PartWriter`].
//!
//! Without checkpoints a part file is open per partition (one for an unpartitioned table) and
//! rolls — is completed (renamed from its hidden `.inprogress` name) and replaced — when it
//! reaches `'sink.rolling-policy.file-size'`, has been open for
//! `'sink.rolling-policy.rollover-interval'` or has taken no row for
//! `'sink.rolling-policy.inactivity-interval'`; the rest complete at the end. With checkpoints
//! (exactly-once) each checkpoint's rows become part files named by the writer, run and
//! checkpoint (a part per partition, more when one outgrows the file size), written hidden,
//! synced and renamed, then a marker records the checkpoint: committing the same checkpoint
//! again after a crash replaces them rather than adding copies. A partitioned table writes each
//! row without its partition columns under its partition's directory ([`super::partition`]) and
//! commits partitions as its commit policy says, after their files are complete.

use super::partition::{CommitPolicy, PartitionSpec, Trigger};
use crate::format::{self, PartWriter};
use crate::{ConnectorError, TableSpec};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tillflow_runtime::operator::Sink;
use tillflow_runtime::{Result, RuntimeError};
use tillflow_types::Row;

/// `'sink.rolling-policy.*'`.
#[derive(Clone, Copy, Debug)]
pub struct RollingPolicy {
    /// `file-size`: bytes after which a part file rolls.
    pub file_size: u64,
    /// `rollover-interval`: how long a part file may stay open.
    pub rollover: Duration,
    /// `inactivity-interval`: how long a part file may go without a row.
    pub inactivity: Duration,
}

impl RollingPolicy {
    /// Parses the table's rolling options (Flink's defaults: 128 MB, 30 min).
    pub fn from_table(table: &TableSpec) -> std::result::Result<Self, ConnectorError> {
        let file_size = match table.option("sink.rolling-policy.file-size") {
            None => 128 << 20,
            Some(v) => tillflow_types::units::parse_memory_size(v)
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    table.error(format!(
                        "option 'sink.rolling-policy.file-size' must be a size such as '128MB', got '{}'",
                        format::clip(v)
                    ))
                })?,
        };
        let duration = |key: &str, default: i64| -> std::result::Result<Duration, ConnectorError> {
            match table.option(key) {
                None => Ok(Duration::from_micros(default as u64)),
                Some(v) => tillflow_types::temporal::parse_duration_micros(v)
                    .filter(|d| *d > 0)
                    .map(|d| Duration::from_micros(d as u64))
                    .ok_or_else(|| {
                        table.error(format!(
                            "option '{key}' must be a duration such as '30 min', got '{}'",
                            format::clip(v)
                        ))
                    }),
            }
        };
        let rollover = duration("sink.rolling-policy.rollover-interval", 1_800_000_000)?;
        // how often Flink looks at its parts: tillflow looks after every row and at every
        // flush (at least once a second), so a part rolls no later than Flink's would
        duration("sink.rolling-policy.check-interval", 60_000_000)?;
        let inactivity = duration("sink.rolling-policy.inactivity-interval", 1_800_000_000)?;
        Ok(RollingPolicy {
            file_size,
            rollover,
            inactivity,
        })
    }
}

/// An open part file.
struct OpenPart {
    writer: Box<dyn PartWriter>,
    in_progress: PathBuf,
    target: PathBuf,
    opened: Instant,
    /// When it last took a row.
    written: Instant,
    rows: u64,
}

impl OpenPart {
    /// Creates part file `name` in `dir` (as `.NAME.inprogress` until it is complete) with a
    /// writer of `spec`'s format; errors name table `table` and the file.
    fn create(dir: &Path, name: &str, spec: &TableSpec, table: &str) -> Result<OpenPart> {
        let in_progress = dir.join(format!(".{name}.inprogress"));
        let f = File::create(&in_progress).map_err(|e| {
            RuntimeError::Sink(format!("table `{table}`: {}: {e}", in_progress.display()))
        })?;
        let writer = format::part_writer(spec, f).map_err(|e| RuntimeError::Sink(e.to_string()))?;
        Ok(OpenPart {
            writer,
            in_progress,
            target: dir.join(name),
            opened: Instant::now(),
            written: Instant::now(),
            rows: 0,
        })
    }
}

/// A sink writing a directory of part files (or one file).
pub struct FileSink {
    table: String,
    /// The table as the files see it (without partition columns).
    data_spec: TableSpec,
    /// The directory of part files (None: `sink.single-file`, which cannot be transactional).
    dir: Option<PathBuf>,
    /// `sink.single-file`'s file.
    single: Option<PathBuf>,
    partition: Option<PartitionSpec>,
    commit: CommitPolicy,
    rolling: RollingPolicy,
    /// Open part files by partition directory ("" unpartitioned).
    parts: HashMap<String, OpenPart>,
    /// Parts opened by this sink (their names' counter).
    opened_parts: u64,
    id: String,
    rows: u64,
    /// Checkpoints committed as part files (exactly-once mode).
    committed_parts: u64,
    /// Partitions with files and no commit yet, with when they got their first file (wall
    /// clock, microseconds).
    pending: BTreeMap<String, i64>,
    watermark: i64,
    /// The watermark when the checkpoint being committed was taken.
    barrier_watermark: i64,
    path_buf: String,
    projected: Row,
}

fn part_id() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    // one process may open several part files at once (a worker each)
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{:016x}-{:08x}-{n}", nanos as u64, std::process::id())
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn io_err(path: &Path, e: std::io::Error) -> ConnectorError {
    ConnectorError::Io {
        path: path.display().to_string(),
        source: e,
    }
}

/// Checks the sink options of a filesystem table without I/O.
pub fn check(table: &TableSpec) -> std::result::Result<(), ConnectorError> {
    let partition = PartitionSpec::from_table(table)?;
    CommitPolicy::from_table(table, partition.as_ref())?;
    RollingPolicy::from_table(table)?;
    if partition.is_some() && table.bool_option("sink.single-file", false)? {
        return Err(table.error(
            "'sink.single-file' writes one file, a partitioned table a directory per partition: drop one of them",
        ));
    }
    for key in ["auto-compaction"] {
        if table.bool_option(key, false)? {
            return Err(table.error(format!(
                "option '{key}' = 'true': tillflow does not merge part files yet; leave it false (each checkpoint's files are complete and readable)"
            )));
        }
    }
    table.bool_option("sink.shuffle-by-partition.enable", false)?;
    Ok(())
}

impl FileSink {
    /// Creates the output directory (or the file's parent); an unpartitioned table's first
    /// part file is opened at once.
    pub fn new(table: &TableSpec) -> std::result::Result<Self, ConnectorError> {
        check(table)?;
        let path = crate::local_path(table.option("path").unwrap_or_default())
            .map_err(|m| table.error(format!("option 'path': {m}")))?;
        let single = table.bool_option("sink.single-file", false)?;
        let partition = PartitionSpec::from_table(table)?;
        let commit = CommitPolicy::from_table(table, partition.as_ref())?;
        let data_spec = match &partition {
            Some(p) => p.data_table(table),
            None => table.clone(),
        };
        let mut sink = FileSink {
            table: table.name.clone(),
            data_spec,
            dir: (!single).then(|| path.clone()),
            single: single.then(|| path.clone()),
            commit,
            rolling: RollingPolicy::from_table(table)?,
            parts: HashMap::new(),
            opened_parts: 0,
            id: part_id(),
            rows: 0,
            committed_parts: 0,
            pending: BTreeMap::new(),
            watermark: i64::MIN,
            barrier_watermark: i64::MIN,
            path_buf: String::new(),
            projected: Row::default(),
            partition,
        };
        if single {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
            }
        } else {
            std::fs::create_dir_all(&path).map_err(|e| io_err(&path, e))?;
        }
        if sink.partition.is_none() {
            sink.open("").map_err(|e| table.error(e.to_string()))?;
        } else {
            sink.find_pending();
        }
        Ok(sink)
    }

    fn fail(&self, p: &Path, e: impl std::fmt::Display) -> RuntimeError {
        RuntimeError::Sink(format!("table `{}`: {}: {e}", self.table, p.display()))
    }

    /// The marker file recording `writer`'s last committed checkpoint.
    fn marker(dir: &Path, writer: &str) -> PathBuf {
        let safe = tillflow_runtime::checkpoint::safe_job_name(writer);
        dir.join(format!(".tillflow-{safe}.committed"))
    }

    /// Opens a part file in partition directory `partition` ("" unpartitioned).
    fn open(&mut self, partition: &str) -> Result<()> {
        let (dir, name) = match (&self.single, &self.dir) {
            (Some(file), _) => (
                file.parent().map(Path::to_path_buf).unwrap_or_default(),
                file.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
            (None, Some(dir)) => {
                let dir = if partition.is_empty() {
                    dir.clone()
                } else {
                    dir.join(partition)
                };
                std::fs::create_dir_all(&dir).map_err(|e| self.fail(&dir, e))?;
                (dir, format!("part-{}-0-{}", self.id, self.opened_parts))
            }
            (None, None) => return Err(RuntimeError::Sink("internal: no path".into())),
        };
        self.opened_parts += 1;
        let part = OpenPart::create(&dir, &name, &self.data_spec, &self.table)?;
        if !partition.is_empty() {
            self.pending
                .entry(partition.to_owned())
                .or_insert_with(now_micros);
        }
        self.parts.insert(partition.to_owned(), part);
        Ok(())
    }

    /// Completes the part file of `partition`: finished, renamed to its visible name.
    fn close(&mut self, partition: &str) -> Result<()> {
        let Some(part) = self.parts.remove(partition) else {
            return Ok(());
        };
        let f = part
            .writer
            .finish()
            .map_err(|e| self.fail(&part.in_progress, e))?;
        drop(f);
        if self.committed_parts > 0 && part.rows == 0 && self.single.is_none() {
            // exactly-once mode wrote part files per checkpoint: the start-up file stayed empty
            return std::fs::remove_file(&part.in_progress)
                .map_err(|e| self.fail(&part.in_progress, e));
        }
        std::fs::rename(&part.in_progress, &part.target).map_err(|e| self.fail(&part.target, e))
    }

    /// Partition directories under the table's that have files and no success file: pending
    /// commits of an earlier run (found once, at the start).
    fn find_pending(&mut self) {
        let (Some(dir), Some(spec), Some(success)) =
            (&self.dir, &self.partition, &self.commit.success_file)
        else {
            return;
        };
        let depth = spec.keys.len();
        let mut stack = vec![(dir.clone(), 0usize)];
        while let Some((d, level)) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            let entries: Vec<_> = rd.flatten().collect();
            if level == depth {
                let has_files = entries.iter().any(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    !n.starts_with('.') && !n.starts_with('_')
                });
                let committed = d.join(success).exists();
                if has_files && !committed {
                    if let Ok(rel) = d.strip_prefix(dir) {
                        let created = std::fs::metadata(&d)
                            .and_then(|m| m.modified())
                            .ok()
                            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                            .map(|t| t.as_micros() as i64)
                            .unwrap_or_else(now_micros);
                        self.pending
                            .insert(rel.to_string_lossy().into_owned(), created);
                    }
                }
                continue;
            }
            for e in entries {
                let n = e.file_name().to_string_lossy().into_owned();
                if e.path().is_dir() && n.contains('=') && !n.starts_with('.') {
                    stack.push((e.path(), level + 1));
                }
            }
        }
    }

    /// Writes `row` (projected into `self.projected` for a partitioned table) into the part
    /// file of partition `key`, opening it first and rolling it when full or old.
    fn write_part(&mut self, key: &str, row: &Row) -> Result<()> {
        if !self.parts.contains_key(key) {
            self.open(key)?;
        }
        let Some(part) = self.parts.get_mut(key) else {
            return Ok(());
        };
        let row = if self.partition.is_some() {
            &self.projected
        } else {
            row
        };
        if let Err(e) = part.writer.write(row) {
            return Err(RuntimeError::Sink(format!(
                "table `{}`: {}: {e}",
                self.table,
                part.in_progress.display()
            )));
        }
        part.rows += 1;
        part.written = Instant::now();
        self.rows += 1;
        let due = part.writer.size() >= self.rolling.file_size
            || part.opened.elapsed() >= self.rolling.rollover;
        if due && self.single.is_none() {
            self.close(key)?;
            if self.partition.is_none() {
                self.open("")?;
            }
        }
        Ok(())
    }

    /// Commits the pending partitions the policy allows at watermark `wm` (the end of the
    /// input: every one): writes their success files.
    fn commit_partitions(&mut self, wm: i64) -> Result<()> {
        let (Some(dir), Some(spec)) = (self.dir.clone(), self.partition.as_ref()) else {
            return Ok(());
        };
        let now = now_micros();
        let delay = self.commit.delay;
        let ready: Vec<String> = self
            .pending
            .iter()
            .filter(|(p, created)| {
                wm == i64::MAX
                    || match self.commit.trigger {
                        Trigger::ProcessTime => now >= created.saturating_add(delay),
                        Trigger::PartitionTime => self
                            .commit
                            .partition_time(spec, p)
                            .is_some_and(|t| wm > t.saturating_add(delay)),
                    }
            })
            .map(|(p, _)| p.clone())
            .collect();
        for p in ready {
            // a partition whose part file is still open is not complete
            if self.parts.contains_key(&p) {
                continue;
            }
            self.pending.remove(&p);
            if let Some(name) = &self.commit.success_file {
                let path = dir.join(&p).join(name);
                File::create(&path)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| self.fail(&path, e))?;
            }
        }
        Ok(())
    }
}

/// With checkpoints (the directory form): each checkpoint's rows become part files
/// `part-WRITER-RUN-CHECKPOINT[-N]` per partition, written as in-progress files, synced and
/// renamed; then a marker file records the checkpoint and partitions the commit policy allows
/// at the checkpoint's watermark are committed.
impl tillflow_runtime::operator::TransactionalSink for FileSink {
    fn committed(&mut self, writer: &str) -> Result<Option<(u64, u64)>> {
        let Some(dir) = &self.dir else {
            return Ok(None);
        };
        let m = FileSink::marker(dir, writer);
        match std::fs::read_to_string(&m) {
            Ok(text) => Ok(text
                .trim()
                .split_once(',')
                .and_then(|(r, c)| Some((r.parse().ok()?, c.parse().ok()?)))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.fail(&m, e)),
        }
    }

    fn commit_rows(
        &mut self,
        writer: &str,
        run: u64,
        checkpoint: u64,
        rows: &tillflow_runtime::checkpoint::RowLog,
    ) -> Result<()> {
        let Some(dir) = self.dir.clone() else {
            return Ok(());
        };
        self.committed_parts += 1;
        let safe = tillflow_runtime::checkpoint::safe_job_name(writer);
        // per partition: the open part, its in-progress and final names, and how many rolled
        let mut open: BTreeMap<String, (OpenPart, u32)> = BTreeMap::new();
        let mut done: Vec<(PathBuf, PathBuf, File)> = Vec::new();
        let name = |k: u32| {
            if k == 0 {
                format!("part-{safe}-{run:016x}-{checkpoint:06}")
            } else {
                format!("part-{safe}-{run:016x}-{checkpoint:06}-{k}")
            }
        };
        let table = self.table.clone();
        let fail = |p: &Path, e: &dyn std::fmt::Display| {
            RuntimeError::Sink(format!("table `{table}`: {}: {e}", p.display()))
        };
        let mut path = std::mem::take(&mut self.path_buf);
        let mut projected = std::mem::take(&mut self.projected);
        let partition = self.partition.clone();
        let data_spec = self.data_spec.clone();
        let file_size = self.rolling.file_size;
        let written = rows.for_each(&mut |row| {
            let row = match &partition {
                Some(spec) => {
                    spec.path_of(row, &mut path);
                    spec.project(row, &mut projected);
                    &projected
                }
                None => {
                    path.clear();
                    row
                }
            };
            if !open.contains_key(path.as_str()) {
                let pdir = dir.join(&path);
                std::fs::create_dir_all(&pdir).map_err(|e| fail(&pdir, &e))?;
                let part = OpenPart::create(&pdir, &name(0), &data_spec, &table)?;
                open.insert(path.clone(), (part, 0));
            }
            let Some((part, k)) = open.get_mut(path.as_str()) else {
                return Ok(());
            };
            part.writer
                .write(row)
                .map_err(|e| RuntimeError::Sink(format!("table `{table}`: {e}")))?;
            part.rows += 1;
            if part.writer.size() >= file_size {
                // roll: this part is complete, the partition's next rows go to part k + 1
                *k += 1;
                let pdir = part
                    .target
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default();
                let next = OpenPart::create(&pdir, &name(*k), &data_spec, &table)?;
                let full = std::mem::replace(part, next);
                let f = full
                    .writer
                    .finish()
                    .map_err(|e| fail(&full.in_progress, &e))?;
                done.push((full.in_progress, full.target, f));
            }
            Ok(())
        });
        self.path_buf = path;
        self.projected = projected;
        written?;
        for (p, (part, _)) in open {
            if part.rows == 0 {
                let f = part
                    .writer
                    .finish()
                    .map_err(|e| fail(&part.in_progress, &e))?;
                drop(f);
                std::fs::remove_file(&part.in_progress).map_err(|e| fail(&part.in_progress, &e))?;
                continue;
            }
            let f = part
                .writer
                .finish()
                .map_err(|e| fail(&part.in_progress, &e))?;
            done.push((part.in_progress, part.target, f));
            if !p.is_empty() {
                self.pending.entry(p).or_insert_with(now_micros);
            }
        }
        for (tmp, dest, f) in done {
            f.sync_all().map_err(|e| fail(&tmp, &e))?;
            std::fs::rename(&tmp, &dest).map_err(|e| fail(&dest, &e))?;
        }
        self.rows += rows.len();
        self.write_marker(&dir, writer, run, checkpoint)?;
        let wm = self.barrier_watermark;
        self.commit_partitions(wm)
    }
}

impl FileSink {
    fn write_marker(&self, dir: &Path, writer: &str, run: u64, checkpoint: u64) -> Result<()> {
        let m = FileSink::marker(dir, writer);
        let tmp = m.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(format!("{run},{checkpoint}\n").as_bytes())?;
            f.sync_all()
        };
        write().map_err(|e| self.fail(&tmp, e))?;
        std::fs::rename(&tmp, &m).map_err(|e| self.fail(&m, e))?;
        // the parts' and the marker's renames survive a power loss
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.fail(dir, e))
    }
}

impl Sink for FileSink {
    fn describe(&self) -> String {
        // the directory, not the part file (whose name differs per run), so a checkpoint's plan
        // matches the restarted job's
        format!(
            "filesystem[{}] table `{}`",
            self.dir
                .as_ref()
                .or(self.single.as_ref())
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            self.table
        )
    }

    fn write(&mut self, row: &Row) -> Result<()> {
        // the partition's directory, in a buffer kept across rows (no allocation per row)
        let mut key = std::mem::take(&mut self.path_buf);
        key.clear();
        if let Some(spec) = &self.partition {
            spec.path_of(row, &mut key);
            spec.project(row, &mut self.projected);
        }
        let written = self.write_part(&key, row);
        self.path_buf = key;
        written
    }

    fn watermark(&mut self, wm: i64) -> Result<()> {
        self.watermark = self.watermark.max(wm);
        Ok(())
    }

    fn on_barrier(&mut self) {
        self.barrier_watermark = self.watermark;
    }

    fn flush(&mut self) -> Result<()> {
        let table = self.table.clone();
        for part in self.parts.values_mut() {
            part.writer.flush().map_err(|e| {
                RuntimeError::Sink(format!(
                    "table `{table}`: {}: {e}",
                    part.in_progress.display()
                ))
            })?;
        }
        // parts open too long, or idle too long, roll (a partition's next row opens another)
        if self.single.is_none() {
            let policy = self.rolling;
            let due: Vec<String> = self
                .parts
                .iter()
                .filter(|(_, p)| {
                    p.rows > 0
                        && (p.opened.elapsed() >= policy.rollover
                            || p.written.elapsed() >= policy.inactivity)
                })
                .map(|(k, _)| k.clone())
                .collect();
            for k in due {
                self.close(&k)?;
                if self.partition.is_none() {
                    self.open("")?;
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        let keys: Vec<String> = self.parts.keys().cloned().collect();
        for k in keys {
            self.close(&k)?;
        }
        let wm = self.watermark;
        self.commit_partitions(wm)
    }

    fn rows_written(&self) -> u64 {
        self.rows
    }

    fn checkpoint_obstacle(&self) -> Option<String> {
        self.dir.is_none().then(|| {
            "'sink.single-file' = 'true' writes its file once, at the end, so a restart would lose what the file held; with checkpoints write to a directory (part files, exactly-once)".to_owned()
        })
    }

    fn transactional(&mut self) -> Option<&mut dyn tillflow_runtime::operator::TransactionalSink> {
        if self.dir.is_some() {
            Some(self)
        } else {
            None
        }
    }
}
