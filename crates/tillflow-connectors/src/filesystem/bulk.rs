//! The filesystem source over a file format (Parquet): the files of the path in sorted order,
//! each read whole through the format's [`PartReader`], row by row in the file's order.
//!
//! Its checkpoint position is the file (its index in the sorted list) and the rows of it already
//! handed out; a restore reopens that file and skips as many rows, so a resumed job reads each
//! row once. A file the format cannot read (not Parquet, a damaged footer or page, a column of
//! a type the table's cannot take) stops the job with the table, the file and the fault.

use super::partition::{PartitionSpec, PartitionValues};
use crate::format::{self, PartReader};
use crate::{ConnectorError, TableSpec};
use std::path::PathBuf;
use tillflow_runtime::operator::{Poll, Source, SourceMetrics};
use tillflow_runtime::{Result, RuntimeError};
use tillflow_types::{Row, Schema};

/// A bounded source over the files of a file format.
pub struct FileFormatSource {
    spec: TableSpec,
    root: PathBuf,
    files: Vec<PathBuf>,
    /// The file being read (index into `files`) and its reader.
    file: usize,
    reader: Option<Box<dyn PartReader>>,
    metrics: SourceMetrics,
    total_bytes: u64,
    done_bytes: u64,
    /// A partitioned table's partition columns, and their values for the current file.
    partition: Option<(PartitionSpec, PartitionValues)>,
    /// The table as the files see it (without partition columns).
    data_spec: TableSpec,
    scratch: Vec<tillflow_types::Value>,
}

impl FileFormatSource {
    /// Lists the files of the table's path (nothing is opened until the first poll).
    pub fn new(table: &TableSpec) -> std::result::Result<Self, ConnectorError> {
        let (root, files, total_bytes) = super::source_files(table)?;
        let partition = PartitionSpec::from_table(table)?;
        let data_spec = match &partition {
            Some(p) => p.data_table(table),
            None => table.clone(),
        };
        Ok(FileFormatSource {
            partition: partition.map(|p| (p, PartitionValues::default())),
            data_spec,
            scratch: Vec::new(),
            spec: table.clone(),
            root,
            files,
            file: 0,
            reader: None,
            metrics: SourceMetrics::default(),
            total_bytes,
            done_bytes: 0,
        })
    }

    fn format_name(&self) -> &str {
        self.spec.option("format").unwrap_or("json")
    }

    fn open(&mut self) -> Result<bool> {
        let Some(path) = self.files.get(self.file) else {
            return Ok(false);
        };
        if let Some((spec, values)) = self.partition.as_mut() {
            let rel = path.strip_prefix(&self.root).unwrap_or(path);
            *values = spec.values_of(rel).map_err(|m| {
                RuntimeError::Source(format!(
                    "table `{}`: {}: {m}",
                    self.spec.name,
                    path.display()
                ))
            })?;
        }
        let reader = format::part_reader(&self.data_spec, path)
            .map_err(|e| RuntimeError::Source(e.to_string()))?
            .ok_or_else(|| {
                RuntimeError::State(format!(
                    "internal: table `{}`: format '{}' has no file reader",
                    self.spec.name,
                    self.format_name()
                ))
            })?;
        self.reader = Some(reader);
        Ok(true)
    }
}

impl Source for FileFormatSource {
    fn describe(&self) -> String {
        format!(
            "filesystem[{}] table `{}` ({} file(s), format {})",
            self.root.display(),
            self.spec.name,
            self.files.len(),
            self.format_name()
        )
    }

    fn checkpoint_identity(&self) -> String {
        format!(
            "filesystem[{}] table `{}` (format {})",
            self.root.display(),
            self.spec.name,
            self.format_name()
        )
    }

    fn schema(&self) -> &Schema {
        &self.spec.schema
    }

    fn poll(&mut self, row: &mut Row) -> Result<Poll> {
        loop {
            let Some(reader) = self.reader.as_mut() else {
                if self.open()? {
                    continue;
                }
                return Ok(Poll::End);
            };
            match reader.next(row) {
                Ok(true) => {
                    if let Some((spec, values)) = self.partition.as_ref() {
                        spec.fill(values, row, &mut self.scratch);
                    }
                    self.metrics.records += 1;
                    return Ok(Poll::Record);
                }
                Ok(false) => {
                    self.reader = None;
                    if let Some(m) = self.files.get(self.file).and_then(|f| f.metadata().ok()) {
                        self.done_bytes += m.len();
                        self.metrics.bytes += m.len();
                    }
                    self.file += 1;
                }
                Err(e) => {
                    let at = reader.position() + 1;
                    let path = self
                        .files
                        .get(self.file)
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    return Err(RuntimeError::Source(format!(
                        "table `{}`: {path}, row {at}: {e}",
                        self.spec.name
                    )));
                }
            }
        }
    }

    fn metrics(&self) -> SourceMetrics {
        self.metrics.clone()
    }

    fn progress(&self) -> Option<f64> {
        (self.total_bytes > 0).then(|| self.done_bytes as f64 / self.total_bytes as f64)
    }

    fn resumable(&self) -> bool {
        true
    }

    /// The file's index in the sorted list and the rows of it handed out.
    fn snapshot_position(&mut self, out: &mut Vec<u8>) -> Result<()> {
        let rows = self.reader.as_ref().map_or(0, |r| r.position());
        out.extend_from_slice(&(self.file as u64).to_le_bytes());
        out.extend_from_slice(&rows.to_le_bytes());
        Ok(())
    }

    fn restore_position(&mut self, input: &[u8]) -> Result<()> {
        let at = &mut 0;
        let file = tillflow_runtime::state::read_u64(input, at)? as usize;
        let rows = tillflow_runtime::state::read_u64(input, at)?;
        if file > self.files.len() {
            return Err(RuntimeError::State(format!(
                "it names file {} of the {} files of table `{}`",
                file + 1,
                self.files.len(),
                self.spec.name
            )));
        }
        self.file = file;
        self.reader = None;
        self.done_bytes = self.files[..file]
            .iter()
            .filter_map(|f| f.metadata().ok())
            .map(|m| m.len())
            .sum();
        if rows > 0 && self.open()? {
            let mut row = Row::with_capacity(self.spec.schema.fields.len());
            for _ in 0..rows {
                row.clear();
                let more = match self.reader.as_mut() {
                    Some(r) => r.next(&mut row).map_err(|e| {
                        RuntimeError::Source(format!("table `{}`: {e}", self.spec.name))
                    })?,
                    None => false,
                };
                if !more {
                    return Err(RuntimeError::State(format!(
                        "its position, row {rows} of {}, is past the file's end: the file changed since the checkpoint",
                        self.files[file].display()
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tillflow_types::{DataType, Field, Value};

    fn table(path: &std::path::Path) -> TableSpec {
        TableSpec {
            name: "t".into(),
            schema: Schema::new(vec![Field::new("n", DataType::BigInt)]),
            options: [
                ("path", path.to_str().unwrap_or_default()),
                ("format", "parquet"),
                ("parquet.block.size", "4096"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            primary_key: vec![],
            metadata: vec![],
            partition_keys: vec![],
        }
    }

    fn read_all(s: &mut FileFormatSource, upto: usize) -> Vec<i64> {
        let mut out = Vec::new();
        let mut row = Row::default();
        while out.len() < upto {
            row.clear();
            match s.poll(&mut row).expect("poll") {
                Poll::Record => match row.values[0] {
                    Value::Int(n) => out.push(n),
                    ref v => panic!("{v:?}"),
                },
                Poll::End => break,
                _ => {}
            }
        }
        out
    }

    /// Two files of several row groups: a position taken anywhere resumes at the next row,
    /// in another source, and a position past a file's end is refused.
    #[test]
    fn resumes_at_the_row_after_its_position() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = table(dir.path());
        for (f, range) in [("a", 0..2500), ("b", 2500..4000)] {
            let file = std::fs::File::create(dir.path().join(f)).expect("create");
            let mut w = format::part_writer(&t, file).expect("writer");
            let mut row = Row::default();
            for n in range {
                row.clear();
                row.values.push(Value::Int(n));
                w.write(&row).expect("write");
            }
            w.finish().expect("finish");
        }
        let all: Vec<i64> = (0..4000).collect();
        assert_eq!(
            read_all(&mut FileFormatSource::new(&t).expect("source"), usize::MAX),
            all
        );
        for stop in [0, 1, 999, 2499, 2500, 2501, 3999, 4000] {
            let mut s = FileFormatSource::new(&t).expect("source");
            let mut got = read_all(&mut s, stop);
            let mut pos = Vec::new();
            s.snapshot_position(&mut pos).expect("snapshot");
            let mut resumed = FileFormatSource::new(&t).expect("source");
            resumed.restore_position(&pos).expect("restore");
            got.extend(read_all(&mut resumed, usize::MAX));
            assert_eq!(got, all, "stopped after {stop}");
        }
        let mut pos = Vec::new();
        pos.extend_from_slice(&1u64.to_le_bytes());
        pos.extend_from_slice(&1501u64.to_le_bytes());
        let e = FileFormatSource::new(&t)
            .expect("source")
            .restore_position(&pos)
            .expect_err("past the end");
        assert!(e.to_string().contains("past the file's end"), "{e}");
    }
}
