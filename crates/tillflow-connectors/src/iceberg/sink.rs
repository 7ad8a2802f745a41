//! The Iceberg sink: rows into Parquet data files, one snapshot per commit.
//!
//! With checkpoints, the runtime keeps a checkpoint's rows until the checkpoint completes, then
//! [`TransactionalSink::commit_rows`] writes them as data files and commits one snapshot whose
//! summary carries `tillflow.writer`, `tillflow.run` and `tillflow.checkpoint`;
//! [`TransactionalSink::committed`] reads them back from the table's history, so a commit
//! repeated after a crash is skipped (exactly once). Without checkpoints, rows are committed
//! when a million are waiting, at every flush and at the end (at least once). A commit with no
//! rows commits nothing. For a table with a PRIMARY KEY, a commit keeps each key's last change:
//! keys that may already be in the table get an equality delete on the key (every changed key
//! in upsert mode; otherwise keys whose first change is not an insert), and keys whose last
//! change is an insert or update get the new row. Deletes apply to earlier snapshots only (data
//! sequence numbers), which is why a key's changes within one commit are merged first.

use super::arrow::{iceberg_schema, BatchBuilder};
use super::catalog::{CommitError, LakeCatalog, Loaded};
use super::{Codec, IcebergConfig};
use crate::ConnectorError;
use ::iceberg::io::FileIO;
use ::iceberg::spec::{
    DataFile, DataFileFormat, FormatVersion, ManifestList, ManifestListWriter,
    ManifestWriterBuilder, Operation, PartitionKey, Snapshot, SnapshotReference, SnapshotRetention,
    SnapshotSummaryCollector, Struct, Summary, Transform, UnboundPartitionSpec, MAIN_BRANCH,
};
use ::iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use ::iceberg::writer::base_writer::equality_delete_writer::{
    EqualityDeleteFileWriterBuilder, EqualityDeleteWriterConfig,
};
use ::iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use ::iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use ::iceberg::writer::file_writer::ParquetWriterBuilder;
use ::iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use ::iceberg::{TableCreation, TableRequirement, TableUpdate};
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::collections::HashMap;
use std::sync::Arc;
use tillflow_runtime::checkpoint::RowLog;
use tillflow_runtime::error::RuntimeError;
use tillflow_runtime::operator::{Sink, TransactionalSink};
use tillflow_types::{Row, RowKind, Schema, Value};

type Result<T> = std::result::Result<T, RuntimeError>;

/// Rows per arrow batch handed to the Parquet writer.
const BATCH_ROWS: usize = 8192;
/// Rows waiting before a job without checkpoints commits them.
const COMMIT_ROWS: u64 = 1 << 20;

/// Summary keys naming the commit (`tillflow.writer` is the job's sink).
const WRITER_KEY: &str = "tillflow.writer";
const RUN_KEY: &str = "tillflow.run";
const CHECKPOINT_KEY: &str = "tillflow.checkpoint";

/// What a commit does with one key (tables with a PRIMARY KEY).
struct KeyState {
    /// The key may be in the table already: delete it first.
    delete: bool,
    /// The position (in the commit's rows) of the key's last change.
    last: u64,
}

/// Writes a table's rows into an Iceberg table.
pub struct IcebergSink {
    cfg: IcebergConfig,
    rt: tokio::runtime::Runtime,
    catalog: LakeCatalog,
    loaded: Loaded,
    file_io: FileIO,
    props: WriterProperties,
    /// The rows' columns.
    row_schema: Schema,
    /// The partition spec's source columns in the rows, in spec order (identity partitions).
    partition_cols: Vec<usize>,
    /// PRIMARY KEY columns in the rows, and their Iceberg field ids.
    keys: Vec<usize>,
    equality_ids: Vec<i32>,
    /// Rows written outside checkpoints, not committed yet.
    pending: RowLog,
    key_buf: Vec<u8>,
    key_state: HashMap<Vec<u8>, KeyState>,
    rows: u64,
    commits: u64,
}

fn sink_err(cfg: &IcebergConfig, m: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Sink(format!(
        "table `{}` (Iceberg {}): {m}",
        cfg.table,
        cfg.display()
    ))
}

impl IcebergSink {
    /// Opens the catalog, and loads the table or creates it from the Flink table's columns.
    pub fn open(
        cfg: IcebergConfig,
        row_schema: Schema,
    ) -> std::result::Result<Self, ConnectorError> {
        let fail = |m: String| ConnectorError::Options {
            table: cfg.table.clone(),
            message: format!("Iceberg table {}: {m}", cfg.display()),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| fail(format!("starting the I/O runtime: {e}")))?;
        let mut catalog = LakeCatalog::open(&cfg).map_err(fail)?;
        let loaded = match catalog.load().map_err(fail)? {
            Some(l) => l,
            None => {
                let schema = iceberg_schema(&row_schema, &cfg.primary_key).map_err(fail)?;
                let mut spec = UnboundPartitionSpec::builder();
                for p in &cfg.partition_keys {
                    let id = schema.field_by_name(p).map(|f| f.id).ok_or_else(|| {
                        fail(format!("PARTITIONED BY column `{p}` is not a column"))
                    })?;
                    spec = spec
                        .add_partition_field(id, p, Transform::Identity)
                        .map_err(|e| fail(format!("PARTITIONED BY `{p}`: {e}")))?;
                }
                let creation = TableCreation::builder()
                    .name(cfg.table_name.clone())
                    .schema(schema)
                    .partition_spec(spec.build())
                    .properties(cfg.properties.clone())
                    .format_version(if cfg.format_version == 1 {
                        FormatVersion::V1
                    } else {
                        FormatVersion::V2
                    })
                    .build();
                catalog.create(creation).map_err(fail)?
            }
        };
        let table_schema = loaded.metadata.current_schema().clone();
        BatchBuilder::new(&table_schema, &row_schema).map_err(fail)?;
        let mut partition_cols = Vec::new();
        for f in loaded.metadata.default_partition_spec().fields() {
            let source = table_schema
                .field_by_id(f.source_id)
                .map(|s| s.name.clone())
                .unwrap_or_default();
            if f.transform != Transform::Identity {
                return Err(fail(format!(
                    "the table is partitioned by {}({source}), and tillflow writes identity partitions only (a column's value)",
                    f.transform
                )));
            }
            let Some(i) = row_schema.fields.iter().position(|r| r.name == source) else {
                return Err(fail(format!(
                    "partition column `{source}` is not in the Flink table"
                )));
            };
            if super::arrow::partition_literal(&Row::default(), i, row_schema.fields[i].data_type)
                .is_err()
            {
                return Err(fail(format!(
                    "partition column `{source}` is {}: identity partitions take INT, BIGINT, STRING, DATE or BOOLEAN columns",
                    row_schema.fields[i].data_type
                )));
            }
            if !cfg.primary_key.is_empty() && !cfg.primary_key.contains(&source) {
                return Err(fail(format!(
                    "partition column `{source}` must be part of the PRIMARY KEY: a key's delete must land in the partition of its rows (as Flink requires)"
                )));
            }
            partition_cols.push(i);
        }
        let mut keys = Vec::new();
        let mut equality_ids = Vec::new();
        for k in &cfg.primary_key {
            let (Some(i), Some(f)) = (
                row_schema.fields.iter().position(|f| &f.name == k),
                table_schema.field_by_name(k),
            ) else {
                return Err(fail(format!(
                    "PRIMARY KEY column `{k}` is not in the table"
                )));
            };
            keys.push(i);
            equality_ids.push(f.id);
        }
        if loaded.metadata.format_version() > FormatVersion::V2 {
            return Err(fail(format!(
                "the table is format version {:?}; tillflow commits to versions 1 and 2",
                loaded.metadata.format_version()
            )));
        }
        if !keys.is_empty() && loaded.metadata.format_version() == FormatVersion::V1 {
            return Err(fail(
                "the table is format version 1, which has no delete files: a PRIMARY KEY (updates) needs version 2".into(),
            ));
        }
        let compression = match cfg.codec {
            Codec::Zstd(l) => Compression::ZSTD(ZstdLevel::try_new(l).unwrap_or_default()),
            Codec::Snappy => Compression::SNAPPY,
            Codec::Gzip(l) => Compression::GZIP(GzipLevel::try_new(l).unwrap_or_default()),
            Codec::Lz4 => Compression::LZ4_RAW,
            Codec::None => Compression::UNCOMPRESSED,
        };
        let props = WriterProperties::builder()
            .set_compression(compression)
            .set_max_row_group_bytes(Some(cfg.row_group_bytes))
            .set_data_page_size_limit(cfg.page_bytes)
            .set_created_by(format!("tillflow {}", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(IcebergSink {
            cfg,
            rt,
            catalog,
            loaded,
            file_io: FileIO::new_with_fs(),
            props,
            row_schema,
            partition_cols,
            keys,
            equality_ids,
            pending: RowLog::default(),
            key_buf: Vec::new(),
            key_state: HashMap::new(),
            rows: 0,
            commits: 0,
        })
    }

    fn err(&self, m: impl std::fmt::Display) -> RuntimeError {
        sink_err(&self.cfg, m)
    }

    /// The key of `row` as bytes, in `key_buf`.
    fn key_of(keys: &[usize], row: &Row, buf: &mut Vec<u8>) {
        buf.clear();
        for &k in keys {
            match row.values.get(k).copied().unwrap_or(Value::Null) {
                Value::Null => buf.push(0),
                Value::Str(s) => {
                    let b = row.bytes(s);
                    buf.push(1);
                    buf.extend_from_slice(&(b.len() as u32).to_le_bytes());
                    buf.extend_from_slice(b);
                }
                Value::Bool(b) => buf.extend_from_slice(&[2, b as u8]),
                Value::Decimal(d) => {
                    buf.push(3);
                    buf.extend_from_slice(&d.to_le_bytes());
                }
                Value::Int(x) | Value::Timestamp(x) | Value::Time(x) | Value::Interval(x) => {
                    buf.push(4);
                    buf.extend_from_slice(&x.to_le_bytes());
                }
                Value::Date(x) | Value::Months(x) => {
                    buf.push(5);
                    buf.extend_from_slice(&x.to_le_bytes());
                }
                Value::Float(f) => {
                    buf.push(6);
                    buf.extend_from_slice(&f.to_bits().to_le_bytes());
                }
            }
        }
    }

    /// Writes `rows` as data (and delete) files and commits them as one snapshot with `summary`.
    fn commit_log(&mut self, rows: &RowLog, summary: HashMap<String, String>) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        // keys: which to delete, and which change of each is its last
        self.key_state.clear();
        if !self.keys.is_empty() {
            let upsert = self.cfg.upsert;
            let mut i = 0u64;
            let (keys, buf, state) = (&self.keys, &mut self.key_buf, &mut self.key_state);
            rows.for_each(&mut |row| {
                Self::key_of(keys, row, buf);
                match state.get_mut(buf.as_slice()) {
                    Some(s) => s.last = i,
                    None => {
                        state.insert(
                            buf.clone(),
                            KeyState {
                                delete: upsert || row.kind != RowKind::Insert,
                                last: i,
                            },
                        );
                    }
                }
                i += 1;
                Ok(())
            })?;
        }
        let stamp = summary
            .get(CHECKPOINT_KEY)
            .map_or_else(|| format!("{}", self.commits), |c| format!("c{c}"));
        let prefix = format!("{}-{}", uuid::Uuid::new_v4().simple(), stamp);
        let mut files = PartFiles::new(self, prefix)?;
        let mut i = 0u64;
        let mut part_buf = Vec::new();
        let mut key_buf = std::mem::take(&mut self.key_buf);
        let this = &*self;
        let written = rows.for_each(&mut |row| {
            let (add, delete) = if this.keys.is_empty() {
                (true, false)
            } else {
                Self::key_of(&this.keys, row, &mut key_buf);
                match this.key_state.get(key_buf.as_slice()) {
                    Some(s) if s.last == i => (row.kind.is_addition(), s.delete),
                    _ => (false, false),
                }
            };
            i += 1;
            if add || delete {
                Self::key_of(&this.partition_cols, row, &mut part_buf);
                files.push(this, &part_buf, row, add, delete)?;
            }
            Ok(())
        });
        self.key_buf = key_buf;
        written?;
        let (data_files, delete_files) = files.close(self)?;
        self.key_state.clear();
        if data_files.is_empty() && delete_files.is_empty() {
            return Ok(());
        }
        self.commit_files(data_files, delete_files, summary)?;
        self.commits += 1;
        Ok(())
    }

    /// Commits data and delete files as one snapshot, retrying on another writer's commit.
    fn commit_files(
        &mut self,
        data: Vec<DataFile>,
        deletes: Vec<DataFile>,
        extra: HashMap<String, String>,
    ) -> Result<()> {
        for _attempt in 0..20 {
            let base = self
                .catalog
                .load()
                .map_err(|m| self.err(m))?
                .ok_or_else(|| self.err("the table was dropped while the job ran"))?;
            let (updates, requirements) = self.snapshot(&base, &data, &deletes, &extra)?;
            match self.catalog.commit(&base, &requirements, updates) {
                Ok(l) => {
                    self.loaded = l;
                    return Ok(());
                }
                Err(CommitError::Conflict) => continue,
                Err(CommitError::Failed(m)) => return Err(self.err(m)),
            }
        }
        Err(self.err(
            "another writer kept committing to the table first (20 attempts); the rows stay in the checkpoint and are committed after a restart",
        ))
    }

    /// Writes the manifests and manifest list of a snapshot adding `data` and `deletes` to
    /// `base`, and returns the catalog updates that add it.
    fn snapshot(
        &self,
        base: &Loaded,
        data: &[DataFile],
        deletes: &[DataFile],
        extra: &HashMap<String, String>,
    ) -> Result<(Vec<TableUpdate>, Vec<TableRequirement>)> {
        let meta = &base.metadata;
        let version = meta.format_version();
        let schema = meta.current_schema().clone();
        let spec = meta.default_partition_spec().as_ref().clone();
        let parent = meta.current_snapshot_id();
        let seq = meta.next_sequence_number();
        let snapshot_id = loop {
            let (a, b) = uuid::Uuid::new_v4().as_u64_pair();
            let id = ((a ^ b) & (i64::MAX as u64)) as i64;
            if id != 0 && meta.snapshot_by_id(id).is_none() {
                break id;
            }
        };
        let commit = uuid::Uuid::new_v4();
        let meta_dir = format!("{}/metadata", meta.location().trim_end_matches('/'));
        let mut manifests = Vec::new();
        if let Some(cur) = meta.current_snapshot() {
            let path = crate::local_path(cur.manifest_list()).map_err(|m| self.err(m))?;
            let bytes =
                std::fs::read(&path).map_err(|e| self.err(format!("{}: {e}", path.display())))?;
            // a table upgraded from version 1 still has a version-1 list until its next commit
            let list = ManifestList::parse_with_version(&bytes, version)
                .or_else(|e| {
                    ManifestList::parse_with_version(&bytes, FormatVersion::V1).map_err(|_| e)
                })
                .map_err(|e| self.err(format!("{}: {e}", path.display())))?;
            manifests.extend(list.consume_entries());
        }
        let mut summary = SnapshotSummaryCollector::default();
        for (k, files) in [(0, data), (1, deletes)] {
            if files.is_empty() {
                continue;
            }
            let out = self
                .file_io
                .new_output(format!("{meta_dir}/{commit}-m{k}.avro"))
                .map_err(|e| self.err(e))?;
            let b =
                ManifestWriterBuilder::new(out, Some(snapshot_id), schema.clone(), spec.clone());
            let mut w = match (version, k) {
                (FormatVersion::V1, _) => b.build_v1(),
                (FormatVersion::V2, 0) => b.build_v2_data(),
                (FormatVersion::V2, _) => b.build_v2_deletes(),
                (_, 0) => b.build_v3_data(),
                (_, _) => b.build_v3_deletes(),
            };
            for f in files {
                summary.add_file(f, schema.clone(), meta.default_partition_spec().clone());
                w.add_file(f.clone(), seq).map_err(|e| self.err(e))?;
            }
            manifests.push(
                self.rt
                    .block_on(w.write_manifest_file())
                    .map_err(|e| self.err(e))?,
            );
        }
        let list_path = format!("{meta_dir}/snap-{snapshot_id}-1-{commit}.avro");
        let out = self
            .rt
            .block_on(
                self.file_io
                    .new_output(&list_path)
                    .map_err(|e| self.err(e))?
                    .writer(),
            )
            .map_err(|e| self.err(e))?;
        let mut list = match version {
            FormatVersion::V1 => ManifestListWriter::v1(out, snapshot_id, parent),
            _ => ManifestListWriter::v2(out, snapshot_id, parent, seq),
        };
        list.add_manifests(manifests.into_iter())
            .map_err(|e| self.err(e))?;
        self.rt.block_on(list.close()).map_err(|e| self.err(e))?;

        let mut props = extra.clone();
        let added = summary.build();
        // totals carried from the parent's summary
        let previous = meta
            .current_snapshot()
            .map(|s| &s.summary().additional_properties);
        for (total, add) in [
            ("total-data-files", "added-data-files"),
            ("total-delete-files", "added-delete-files"),
            ("total-records", "added-records"),
            ("total-files-size", "added-files-size"),
            ("total-position-deletes", "added-position-deletes"),
            ("total-equality-deletes", "added-equality-deletes"),
        ] {
            let before = previous
                .and_then(|p| p.get(total))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            let plus = added
                .get(add)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            props.insert(total.to_owned(), (before + plus).to_string());
        }
        props.extend(added);
        let snapshot = Snapshot::builder()
            .with_snapshot_id(snapshot_id)
            .with_parent_snapshot_id(parent)
            .with_sequence_number(seq)
            .with_timestamp_ms(now_ms())
            .with_manifest_list(list_path)
            .with_summary(Summary {
                operation: if deletes.is_empty() {
                    Operation::Append
                } else {
                    Operation::Overwrite
                },
                additional_properties: props,
            })
            .with_schema_id(meta.current_schema_id())
            .build();
        Ok((
            vec![
                TableUpdate::AddSnapshot { snapshot },
                TableUpdate::SetSnapshotRef {
                    ref_name: MAIN_BRANCH.to_owned(),
                    reference: SnapshotReference::new(
                        snapshot_id,
                        SnapshotRetention::branch(None, None, None),
                    ),
                },
            ],
            vec![
                TableRequirement::UuidMatch { uuid: meta.uuid() },
                TableRequirement::RefSnapshotIdMatch {
                    r#ref: MAIN_BRANCH.to_owned(),
                    snapshot_id: parent,
                },
            ],
        ))
    }

    fn commit_pending(&mut self) -> Result<()> {
        let rows = std::mem::take(&mut self.pending);
        let n = rows.len();
        let done = self.commit_log(&rows, HashMap::new());
        self.pending = rows;
        done?;
        self.pending.clear();
        self.rows += n;
        Ok(())
    }
}

type DataWriter = ::iceberg::writer::base_writer::data_file_writer::DataFileWriter<
    ParquetWriterBuilder,
    DefaultLocationGenerator,
    DefaultFileNameGenerator,
>;
type DeleteWriter =
    ::iceberg::writer::base_writer::equality_delete_writer::EqualityDeleteFileWriter<
        ParquetWriterBuilder,
        DefaultLocationGenerator,
        DefaultFileNameGenerator,
    >;

/// One partition's writers within a commit.
struct PartWriters {
    data: BatchBuilder,
    deletes: BatchBuilder,
    data_writer: DataWriter,
    delete_writer: Option<DeleteWriter>,
}

/// The data and delete files of one commit, a writer pair per partition (one in all for an
/// unpartitioned table).
struct PartFiles {
    data_builder: DataFileWriterBuilder<
        ParquetWriterBuilder,
        DefaultLocationGenerator,
        DefaultFileNameGenerator,
    >,
    delete_builder: Option<
        EqualityDeleteFileWriterBuilder<
            ParquetWriterBuilder,
            DefaultLocationGenerator,
            DefaultFileNameGenerator,
        >,
    >,
    /// The key columns' schema of the delete files.
    key_schema: Option<Arc<::iceberg::spec::Schema>>,
    parts: HashMap<Vec<u8>, PartWriters>,
}

impl PartFiles {
    fn new(sink: &IcebergSink, prefix: String) -> Result<Self> {
        let meta = &sink.loaded.metadata;
        let location = DefaultLocationGenerator::new(meta).map_err(|e| sink.err(e))?;
        let schema = meta.current_schema().clone();
        let rolling = |schema: Arc<::iceberg::spec::Schema>, suffix: &str| {
            RollingFileWriterBuilder::new(
                ParquetWriterBuilder::new(sink.props.clone(), schema),
                sink.cfg.target_file_size,
                sink.file_io.clone(),
                location.clone(),
                DefaultFileNameGenerator::new(
                    prefix.clone(),
                    Some(suffix.to_owned()),
                    DataFileFormat::Parquet,
                ),
            )
        };
        let data_builder = DataFileWriterBuilder::new(rolling(schema.clone(), "data"));
        let (delete_builder, key_schema) = if sink.keys.is_empty() {
            (None, None)
        } else {
            // delete files hold the key columns only (a delete's other columns may be NULL,
            // even NOT NULL ones: an upsert-kafka tombstone carries its key alone)
            let fields = schema
                .as_struct()
                .fields()
                .iter()
                .filter(|f| sink.equality_ids.contains(&f.id))
                .cloned()
                .collect::<Vec<_>>();
            let key_schema = Arc::new(
                ::iceberg::spec::Schema::builder()
                    .with_schema_id(schema.schema_id())
                    .with_fields(fields)
                    .build()
                    .map_err(|e| sink.err(e))?,
            );
            let config =
                EqualityDeleteWriterConfig::new(sink.equality_ids.clone(), key_schema.clone())
                    .map_err(|e| sink.err(e))?;
            let delete_schema = Arc::new(
                ::iceberg::arrow::arrow_schema_to_schema(config.projected_arrow_schema_ref())
                    .map_err(|e| sink.err(e))?,
            );
            (
                Some(EqualityDeleteFileWriterBuilder::new(
                    rolling(delete_schema, "deletes"),
                    config,
                )),
                Some(key_schema),
            )
        };
        Ok(PartFiles {
            data_builder,
            delete_builder,
            key_schema,
            parts: HashMap::new(),
        })
    }

    /// Adds `row` (to the data file when `add`, to the delete file when `delete`) of the
    /// partition `part` (its encoded values).
    fn push(
        &mut self,
        sink: &IcebergSink,
        part: &[u8],
        row: &Row,
        add: bool,
        delete: bool,
    ) -> Result<()> {
        if !self.parts.contains_key(part) {
            let meta = &sink.loaded.metadata;
            let key = if sink.partition_cols.is_empty() {
                None
            } else {
                let mut values = Vec::with_capacity(sink.partition_cols.len());
                for &c in &sink.partition_cols {
                    let ty = sink.row_schema.fields[c].data_type;
                    values.push(
                        super::arrow::partition_literal(row, c, ty).map_err(|m| sink.err(m))?,
                    );
                }
                Some(PartitionKey::new(
                    meta.default_partition_spec().as_ref().clone(),
                    meta.current_schema().clone(),
                    Struct::from_iter(values),
                ))
            };
            let data_writer = sink
                .rt
                .block_on(self.data_builder.build(key.clone()))
                .map_err(|e| sink.err(e))?;
            let delete_writer = match &self.delete_builder {
                None => None,
                Some(b) => Some(sink.rt.block_on(b.build(key)).map_err(|e| sink.err(e))?),
            };
            let data = BatchBuilder::new(meta.current_schema(), &sink.row_schema)
                .map_err(|m| sink.err(m))?;
            let deletes = BatchBuilder::of_columns(
                self.key_schema.as_deref().unwrap_or(meta.current_schema()),
                &sink.row_schema,
            )
            .map_err(|m| sink.err(m))?;
            self.parts.insert(
                part.to_vec(),
                PartWriters {
                    data,
                    deletes,
                    data_writer,
                    delete_writer,
                },
            );
        }
        let Some(p) = self.parts.get_mut(part) else {
            return Ok(());
        };
        if add {
            p.data.push(row);
            if p.data.len() >= BATCH_ROWS {
                let batch = p.data.finish().map_err(|m| sink.err(m))?;
                sink.rt
                    .block_on(p.data_writer.write(batch))
                    .map_err(|e| sink.err(e))?;
            }
        }
        if delete {
            p.deletes.push(row);
            if p.deletes.len() >= BATCH_ROWS {
                let batch = p.deletes.finish().map_err(|m| sink.err(m))?;
                if let Some(w) = p.delete_writer.as_mut() {
                    sink.rt.block_on(w.write(batch)).map_err(|e| sink.err(e))?;
                }
            }
        }
        Ok(())
    }

    /// Writes what is buffered and closes every file: the data files, then the delete files.
    fn close(self, sink: &IcebergSink) -> Result<(Vec<DataFile>, Vec<DataFile>)> {
        let (mut data, mut deletes) = (Vec::new(), Vec::new());
        for (_, mut p) in self.parts {
            if !p.data.is_empty() {
                let batch = p.data.finish().map_err(|m| sink.err(m))?;
                sink.rt
                    .block_on(p.data_writer.write(batch))
                    .map_err(|e| sink.err(e))?;
            }
            data.extend(
                sink.rt
                    .block_on(p.data_writer.close())
                    .map_err(|e| sink.err(e))?,
            );
            if let Some(mut w) = p.delete_writer {
                if !p.deletes.is_empty() {
                    let batch = p.deletes.finish().map_err(|m| sink.err(m))?;
                    sink.rt.block_on(w.write(batch)).map_err(|e| sink.err(e))?;
                }
                deletes.extend(sink.rt.block_on(w.close()).map_err(|e| sink.err(e))?);
            }
        }
        Ok((data, deletes))
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl TransactionalSink for IcebergSink {
    fn committed(&mut self, writer: &str) -> Result<Option<(u64, u64)>> {
        let loaded = self
            .catalog
            .load()
            .map_err(|m| self.err(m))?
            .ok_or_else(|| self.err("the table was dropped while the job ran"))?;
        // the newest snapshot of this writer on the main branch's history
        let mut at = loaded.metadata.current_snapshot();
        while let Some(s) = at {
            let p = &s.summary().additional_properties;
            if p.get(WRITER_KEY).map(String::as_str) == Some(writer) {
                let run = p.get(RUN_KEY).and_then(|v| u64::from_str_radix(v, 16).ok());
                let ckpt = p.get(CHECKPOINT_KEY).and_then(|v| v.parse().ok());
                if let (Some(r), Some(c)) = (run, ckpt) {
                    return Ok(Some((r, c)));
                }
            }
            at = s
                .parent_snapshot_id()
                .and_then(|id| loaded.metadata.snapshot_by_id(id));
        }
        Ok(None)
    }

    fn commit_rows(
        &mut self,
        writer: &str,
        run: u64,
        checkpoint: u64,
        rows: &RowLog,
    ) -> Result<()> {
        let summary = HashMap::from([
            (WRITER_KEY.to_owned(), writer.to_owned()),
            (RUN_KEY.to_owned(), format!("{run:016x}")),
            (CHECKPOINT_KEY.to_owned(), checkpoint.to_string()),
        ]);
        self.commit_log(rows, summary)?;
        self.rows += rows.len();
        Ok(())
    }
}

impl Sink for IcebergSink {
    fn describe(&self) -> String {
        format!("iceberg[{}] table `{}`", self.cfg.display(), self.cfg.table)
    }

    fn write(&mut self, row: &Row) -> Result<()> {
        self.pending.push(row);
        if self.pending.len() >= COMMIT_ROWS {
            self.commit_pending()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.commit_pending()
    }

    fn finish(&mut self) -> Result<()> {
        self.commit_pending()
    }

    fn rows_written(&self) -> u64 {
        self.rows
    }

    fn transactional(&mut self) -> Option<&mut dyn TransactionalSink> {
        Some(self)
    }
}
