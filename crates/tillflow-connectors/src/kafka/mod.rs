//! The `kafka` connector: a source reading a topic's partitions from chosen offsets (optionally
//! bounded, so a backfill or a test can end) and a sink producing one message per row, with
//! Flink's option names.
//!
//! Built on librdkafka (`rdkafka`'s `BaseConsumer` / `BaseProducer`). By default the source is
//! polled from the job loop, no extra threads of ours; with `'scan.parallelism' = 'N'` the
//! partitions are dealt to N reader threads that fetch and decode in parallel (`readers.rs`).
//! The source assigns the topic's partitions itself (Flink's behaviour: startup offsets come from
//! `scan.startup.mode`, not from a group rebalance); with `properties.group.id` it commits the
//! offsets of the rows already handed to the pipeline.
//! Metadata columns `topic`, `partition`, `offset` and `timestamp` are filled from each message.
//! A message that does not decode fails the job naming topic, partition, offset and field, or
//! is skipped (`json.ignore-parse-errors`) or written to `'dead-letter.path'` with its raw bytes.
//! `properties.*` are Flink's Java-client properties, mapped to librdkafka's (`properties.rs`) when
//! the table is validated; passwords and other property values are never printed.

mod group;
pub mod properties;
mod readers;

pub use group::{MEMBER_OPTION, STATIC_OPTION};

use crate::deadletter::DeadLetter;
use crate::format::{self, Decoder, Encoder};
use crate::{opt, Connector, ConnectorError, OptionSpec, TableSpec};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tillflow_runtime::operator::{Poll, Sink, Source, SourceMetrics, TransactionalSink};
use tillflow_runtime::{Result, RuntimeError};
use tillflow_types::{DataType, Row, RowKind, Schema, Value};

/// The `kafka` connector.
pub struct Kafka;

/// Environment variable naming the brokers used when a table gives no
/// `properties.bootstrap.servers`.
pub const BOOTSTRAP_ENV: &str = "TILLFLOW_KAFKA_BOOTSTRAP";

const OPTIONS: &[OptionSpec] = &[
    opt("topic"),
    opt("topic-pattern"),
    opt("format"),
    opt("value.format"),
    opt("key.format"),
    opt("key.fields"),
    opt("key.fields-prefix"),
    opt("value.fields-include"),
    opt("properties.bootstrap.servers"),
    opt("properties.group.id"),
    opt("scan.startup.mode"),
    opt("startup-mode"),
    opt("scan.startup.timestamp-millis"),
    opt("scan.startup.specific-offsets"),
    opt("scan.bounded.mode"),
    opt("scan.bounded.timestamp-millis"),
    opt("scan.bounded.specific-offsets"),
    opt("scan.topic-partition-discovery.interval"),
    opt("scan.watermark.idle-timeout"),
    opt("scan.parallelism"),
    opt("sink.partitioner"),
    opt("sink.delivery-guarantee"),
    opt("sink.transactional-id-prefix"),
    opt("sink.parallelism"),
];

/// The metadata keys a Kafka table can read, with their types.
pub const METADATA: &[(&str, DataType)] = &[
    ("topic", DataType::String(None)),
    ("partition", DataType::Int),
    ("offset", DataType::BigInt),
    ("timestamp", DataType::TimestampLtz(3)),
    (
        "headers",
        DataType::Map(&DataType::String(None), &DataType::Bytes),
    ),
];

impl Connector for Kafka {
    fn name(&self) -> &'static str {
        "kafka"
    }
    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }
    fn uses_format(&self) -> bool {
        false // 'format' or 'value.format' (and 'key.format'): checked by `layout`
    }
    fn source(&self, table: &TableSpec) -> std::result::Result<Box<dyn Source>, ConnectorError> {
        Ok(Box::new(KafkaSource::new(table, false)?))
    }
    /// On several workers, the partitions are read by as many reader threads (fetching and
    /// decoding, each partition in its order), unless the table sets `'scan.parallelism'`.
    fn source_for_workers(
        &self,
        table: &TableSpec,
        workers: usize,
    ) -> std::result::Result<Box<dyn Source>, ConnectorError> {
        Ok(Box::new(KafkaSource::new(
            &with_readers(table, workers),
            false,
        )?))
    }
    fn sink(&self, table: &TableSpec) -> std::result::Result<Box<dyn Sink>, ConnectorError> {
        Ok(Box::new(KafkaSink::new(table, false)?))
    }
    fn sink_per_worker(&self, table: &TableSpec) -> bool {
        producer_per_worker(table)
    }
    fn sink_accepts_changes(&self, table: &TableSpec) -> bool {
        layout(table, false).is_ok_and(|l| format::format_accepts_changes(&l.value))
    }
    fn metadata(&self) -> &'static [(&'static str, DataType)] {
        METADATA
    }
}

/// Whether every worker writes a Kafka sink with a producer of its own, as Flink's sink
/// subtasks do: yes for `none` and `at-least-once` delivery (a table with a primary key gets its
/// rows hashed on the key first, so a key's changes leave through one producer, in order). An
/// exactly-once sink keeps one transactional producer fed by every worker: its transactional id
/// must be one a restart at any parallelism fences again, and ids of workers a smaller restart no
/// longer has would be left with their transactions open.
fn producer_per_worker(table: &TableSpec) -> bool {
    !table
        .option("sink.delivery-guarantee")
        .is_some_and(|g| g.trim().eq_ignore_ascii_case("exactly-once"))
}

/// The table read by `workers` reader threads when it does not say how many itself.
fn with_readers(table: &TableSpec, workers: usize) -> std::borrow::Cow<'_, TableSpec> {
    if workers <= 1 || table.option("scan.parallelism").is_some() {
        return std::borrow::Cow::Borrowed(table);
    }
    let mut t = table.clone();
    t.options
        .insert("scan.parallelism".into(), workers.to_string());
    std::borrow::Cow::Owned(t)
}

/// The `upsert-kafka` connector: a compacted topic as a table keyed by its primary key. The sink
/// writes each insert or update as the key's new value and each delete as a tombstone (a message
/// with the key and no value); the source reads such a topic back as a changelog.
pub struct UpsertKafka;

const UPSERT_OPTIONS: &[OptionSpec] = &[
    opt("topic"),
    opt("key.format"),
    opt("value.format"),
    opt("value.fields-include"),
    opt("properties.bootstrap.servers"),
    opt("properties.group.id"),
    opt("scan.bounded.mode"),
    opt("scan.bounded.timestamp-millis"),
    opt("scan.bounded.specific-offsets"),
    opt("scan.watermark.idle-timeout"),
    opt("scan.parallelism"),
    opt("sink.parallelism"),
    opt("sink.delivery-guarantee"),
    opt("sink.buffer-flush.max-rows"),
    opt("sink.buffer-flush.interval"),
];

impl Connector for UpsertKafka {
    fn name(&self) -> &'static str {
        "upsert-kafka"
    }
    fn options(&self) -> &'static [OptionSpec] {
        UPSERT_OPTIONS
    }
    fn uses_format(&self) -> bool {
        false
    }
    fn source(&self, table: &TableSpec) -> std::result::Result<Box<dyn Source>, ConnectorError> {
        Ok(Box::new(KafkaSource::new(table, true)?))
    }
    fn source_for_workers(
        &self,
        table: &TableSpec,
        workers: usize,
    ) -> std::result::Result<Box<dyn Source>, ConnectorError> {
        Ok(Box::new(KafkaSource::new(
            &with_readers(table, workers),
            true,
        )?))
    }
    fn sink(&self, table: &TableSpec) -> std::result::Result<Box<dyn Sink>, ConnectorError> {
        Ok(Box::new(KafkaSink::new(table, true)?))
    }
    fn sink_per_worker(&self, table: &TableSpec) -> bool {
        producer_per_worker(table)
    }
    fn sink_accepts_changes(&self, _table: &TableSpec) -> bool {
        true
    }
    fn source_is_changelog(&self, _table: &TableSpec) -> bool {
        true
    }
    fn metadata(&self) -> &'static [(&'static str, DataType)] {
        METADATA
    }
}

/// Whether `key` is a Kafka option written with a variable part: `properties.*` (handed to the
/// client), or an option of the value or key format (`json.*` with `'format'`,
/// `value.json.*` with `'value.format'`, `key.json.*` with `'key.format'`).
pub fn is_pattern_option(table: &TableSpec, key: &str) -> bool {
    if key.starts_with("properties.") {
        return true;
    }
    let of = |fmt: Option<&str>, k: &str| {
        fmt.and_then(format::format)
            .is_some_and(|opts| opts.iter().any(|o| o.key == k))
    };
    if let Some(rest) = key.strip_prefix("value.") {
        if of(table.option("value.format"), rest) {
            return true;
        }
    }
    if let Some(rest) = key.strip_prefix("key.") {
        if of(table.option("key.format"), rest) {
            return true;
        }
    }
    of(table.option("format"), key)
}

/// How a table's physical columns map onto message keys and values.
pub struct Layout {
    /// The value format's view of the table: its schema is the value's columns.
    pub value: TableSpec,
    /// Physical column of each value column.
    pub value_cols: Vec<usize>,
    /// The key format's view (schema: the key columns), if messages have keyed fields.
    pub key: Option<TableSpec>,
    /// Physical column of each key column.
    pub key_cols: Vec<usize>,
    /// Whether the key columns are left out of the value (`'value.fields-include' = 'EXCEPT_KEY'`).
    pub except_key: bool,
}

/// A view of `table` for one format: `'format'` = `name`, its options with `prefix` removed,
/// and only the columns `cols`.
fn format_view(table: &TableSpec, name: &str, prefix: &str, cols: &[usize]) -> TableSpec {
    let mut spec = table.clone();
    let opts = format::format(name).unwrap_or(&[]);
    spec.options = table
        .options
        .iter()
        .filter_map(|(k, v)| {
            let rest = k.strip_prefix(prefix)?;
            opts.iter()
                .any(|o| o.key == rest)
                .then(|| (rest.to_owned(), v.clone()))
        })
        .collect();
    spec.options.insert("format".into(), name.into());
    spec.schema = Schema::new(
        cols.iter()
            .map(|&c| table.schema.fields[c].clone())
            .collect(),
    );
    spec.metadata.clear();
    spec
}

/// Works out a Kafka (`upsert` = false) or upsert-Kafka table's key and value layout from
/// `'format'`/`'value.format'`, `'key.format'`, `'key.fields'` (or the primary key) and
/// `'value.fields-include'`.
pub fn layout(table: &TableSpec, upsert: bool) -> std::result::Result<Layout, ConnectorError> {
    let connector = if upsert { "upsert-kafka" } else { "kafka" };
    let (value_fmt, value_prefix) = match (table.option("format"), table.option("value.format")) {
        (Some(_), Some(_)) => {
            return Err(table.error("give either 'format' or 'value.format', not both"))
        }
        (Some(f), None) if !upsert => (f, ""),
        (Some(_), None) => {
            return Err(table.error(
                "connector 'upsert-kafka' takes 'key.format' and 'value.format' (not 'format')",
            ))
        }
        (None, Some(f)) => (f, "value."),
        (None, None) => {
            return Err(table.error(format!(
                "missing required option '{}' for connector '{connector}' (formats: {})",
                if upsert {
                    "value.format"
                } else {
                    "format' (or 'value.format"
                },
                format::record_format_names()
            )))
        }
    };
    let known = |f: &str| {
        match format::lookup(f) {
        Some(fmt) if !fmt.holds_records() => Err(table.error(format!(
            "format '{f}' is a file format (the filesystem connector's); a Kafka message takes one of {}",
            format::record_format_names()
        ))),
        Some(fmt) => Ok(fmt.options()),
        None => Err(table.error(format!(
            "unknown format '{f}' (available: {})",
            format::record_format_names()
        ))),
    }
    };
    known(value_fmt)?;
    let col = |name: &str| {
        table.schema.index_of(name).ok_or_else(|| {
            table.error(format!(
                "key field `{name}` is not a physical column (columns: {})",
                table.schema.names()
            ))
        })
    };
    let key_fmt = table.option("key.format");
    let key_cols: Vec<usize> = if upsert {
        if table.primary_key.is_empty() {
            return Err(table.error("connector 'upsert-kafka' needs a PRIMARY KEY (...) NOT ENFORCED: it is the message key"));
        }
        if table.option("key.fields").is_some() {
            return Err(table.error(
                "connector 'upsert-kafka' takes its key from the PRIMARY KEY, not 'key.fields'",
            ));
        }
        if key_fmt.is_none() {
            return Err(
                table.error("missing required option 'key.format' for connector 'upsert-kafka'")
            );
        }
        table
            .primary_key
            .iter()
            .map(|k| col(k))
            .collect::<std::result::Result<_, _>>()?
    } else {
        match (key_fmt, table.option("key.fields")) {
            (None, None) => Vec::new(),
            (Some(_), Some(f)) => f
                .split(';')
                .map(|k| col(k.trim()))
                .collect::<std::result::Result<_, _>>()?,
            (Some(_), None) => {
                return Err(table.error(
                    "'key.format' needs 'key.fields' (the columns of the key, separated by ';')",
                ))
            }
            (None, Some(_)) => {
                return Err(table.error("'key.fields' needs 'key.format' (how the key is written)"))
            }
        }
    };
    if table.option("key.fields-prefix").is_some() {
        return Err(table.error("'key.fields-prefix' is not supported yet"));
    }
    let except_key = match table.option("value.fields-include").unwrap_or("ALL") {
        v if v.eq_ignore_ascii_case("ALL") => false,
        v if v.eq_ignore_ascii_case("EXCEPT_KEY") => {
            if key_cols.is_empty() {
                return Err(table.error("'value.fields-include' = 'EXCEPT_KEY' needs a key ('key.format' and 'key.fields')"));
            }
            true
        }
        other => {
            return Err(table.error(format!(
                "'value.fields-include' = '{other}' is not one of ALL, EXCEPT_KEY"
            )))
        }
    };
    let n = table.schema.len();
    let value_cols: Vec<usize> = (0..n)
        .filter(|c| !except_key || !key_cols.contains(c))
        .collect();
    let value = format_view(table, value_fmt, value_prefix, &value_cols);
    let key = match key_fmt {
        Some(f) => {
            known(f)?;
            Some(format_view(table, f, "key.", &key_cols))
        }
        None => None,
    };
    Ok(Layout {
        value,
        value_cols,
        key,
        key_cols,
        except_key,
    })
}

/// Copies columns `cols` of `from` into `to` (cleared), strings included.
fn project(from: &Row, cols: &[usize], to: &mut Row) {
    to.clear();
    to.kind = from.kind;
    for &c in cols {
        let v = from.values.get(c).copied().unwrap_or(Value::Null);
        to.push_from(v, &from.heap);
    }
}

/// The client configuration: `properties.*` in librdkafka's names (`properties.rs`), the brokers
/// (defaulted with a notice).
fn client_config(table: &TableSpec) -> std::result::Result<ClientConfig, ConnectorError> {
    let mut cfg = properties::client_properties(table)?.client_config();
    if table.option("properties.bootstrap.servers").is_none() {
        let servers = std::env::var(BOOTSTRAP_ENV).unwrap_or_else(|_| "localhost:9092".into());
        eprintln!(
            "notice: table `{}` names no 'properties.bootstrap.servers'; using {servers} (set {BOOTSTRAP_ENV} or the option to change it)",
            table.name
        );
        cfg.set("bootstrap.servers", servers);
    }
    Ok(cfg)
}

fn brokers(table: &TableSpec) -> String {
    table
        .option("properties.bootstrap.servers")
        .map(str::to_owned)
        .or_else(|| std::env::var(BOOTSTRAP_ENV).ok())
        .unwrap_or_else(|| "localhost:9092".into())
}

/// The topics a table names: `'topic'` (one or a `;` list), or, for a source, every topic whose
/// whole name matches `'topic-pattern'` (a regular expression, as Flink's).
enum Topics {
    Named(Vec<String>),
    Pattern(regex::Regex),
}

fn topics(table: &TableSpec) -> std::result::Result<Topics, ConnectorError> {
    match (table.option("topic"), table.option("topic-pattern")) {
        (Some(_), Some(_)) => Err(table.error("give either 'topic' or 'topic-pattern', not both")),
        (None, Some(p)) => regex::Regex::new(&format!("^(?:{p})$"))
            .map(Topics::Pattern)
            .map_err(|e| {
                table.error(format!(
                    "'topic-pattern' = '{p}' is not a regular expression: {e}"
                ))
            }),
        (t, None) => {
            let t: Vec<String> = t
                .unwrap_or_default()
                .split(';')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
            if t.is_empty() {
                return Err(table.error(
                    "missing required option 'topic' (or 'topic-pattern') for connector 'kafka'",
                ));
            }
            Ok(Topics::Named(t))
        }
    }
}

/// How long start-up waits for the brokers before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

fn unreachable(table: &TableSpec, what: &str, e: KafkaError) -> ConnectorError {
    table.error(format!(
        "Kafka at {} {what}: {e}. Is the broker running and 'properties.bootstrap.servers' right? (gave up after {} s)",
        brokers(table),
        CONNECT_TIMEOUT.as_secs()
    ))
}

/// Where reading starts or stops for each partition.
#[derive(Clone, Debug, PartialEq)]
enum Bound {
    Earliest,
    Latest,
    Group,
    Timestamp(i64),
    Specific(BTreeMap<i32, i64>),
}

fn parse_specific(
    table: &TableSpec,
    key: &str,
) -> std::result::Result<BTreeMap<i32, i64>, ConnectorError> {
    let v = table
        .option(key)
        .ok_or_else(|| table.error(format!("missing option '{key}'")))?;
    let bad = || {
        table.error(format!(
            "option '{key}' must look like 'partition:0,offset:42;partition:1,offset:300', got '{v}'"
        ))
    };
    let mut out = BTreeMap::new();
    for part in v.split(';').filter(|p| !p.trim().is_empty()) {
        let mut p = None;
        let mut o = None;
        for kv in part.split(',') {
            match kv.trim().split_once(':') {
                Some(("partition", n)) => p = n.trim().parse::<i32>().ok(),
                Some(("offset", n)) => o = n.trim().parse::<i64>().ok(),
                _ => return Err(bad()),
            }
        }
        out.insert(p.ok_or_else(bad)?, o.ok_or_else(bad)?);
    }
    Ok(out)
}

fn startup(table: &TableSpec) -> std::result::Result<Bound, ConnectorError> {
    let mode = match (
        table.option("scan.startup.mode"),
        table.option("startup-mode"),
    ) {
        (Some(m), _) => m,
        (None, Some(m)) => {
            eprintln!(
                "warning: table `{}`: 'startup-mode' is read as Flink's 'scan.startup.mode'",
                table.name
            );
            m
        }
        (None, None) => "group-offsets",
    };
    Ok(match mode {
        "earliest-offset" | "earliest" => Bound::Earliest,
        "latest-offset" | "latest" => Bound::Latest,
        "group-offsets" => Bound::Group,
        "timestamp" => Bound::Timestamp(table.int_option("scan.startup.timestamp-millis", -1)?),
        "specific-offsets" => Bound::Specific(parse_specific(table, "scan.startup.specific-offsets")?),
        other => {
            return Err(table.error(format!(
                "'scan.startup.mode' = '{other}' is not one of earliest-offset, latest-offset, group-offsets, timestamp, specific-offsets"
            )))
        }
    })
}

fn bounded(table: &TableSpec) -> std::result::Result<Option<Bound>, ConnectorError> {
    Ok(match table.option("scan.bounded.mode").unwrap_or("unbounded") {
        "unbounded" => None,
        "latest-offset" => Some(Bound::Latest),
        "group-offsets" => Some(Bound::Group),
        "timestamp" => Some(Bound::Timestamp(
            table.int_option("scan.bounded.timestamp-millis", -1)?,
        )),
        "specific-offsets" => Some(Bound::Specific(parse_specific(
            table,
            "scan.bounded.specific-offsets",
        )?)),
        other => {
            return Err(table.error(format!(
                "'scan.bounded.mode' = '{other}' is not one of unbounded, latest-offset, group-offsets, timestamp, specific-offsets"
            )))
        }
    })
}

/// Receives librdkafka's statistics: the end (high watermark) offset of every partition.
/// As one member of the job's consumer group, it also answers the group's rebalances
/// (`group.rs`).
#[derive(Default)]
struct EndOffsets {
    ends: Arc<Mutex<BTreeMap<(String, i32), i64>>>,
    member: Option<group::SharedMembership>,
}

impl EndOffsets {
    /// A context filling the same map (for the reader threads' consumers).
    fn shared(&self) -> EndOffsets {
        EndOffsets {
            ends: self.ends.clone(),
            member: None,
        }
    }
}

impl ClientContext for EndOffsets {
    fn stats(&self, statistics: rdkafka::Statistics) {
        if let Ok(mut ends) = self.ends.lock() {
            for (topic, t) in statistics.topics {
                for (p, part) in t.partitions {
                    if p >= 0 && part.hi_offset >= 0 {
                        ends.insert((topic.clone(), p), part.hi_offset);
                    }
                }
            }
        }
    }
}

impl rdkafka::consumer::ConsumerContext for EndOffsets {
    /// Only a group member's consumer subscribes (the others assign partitions themselves and
    /// never rebalance).
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: rdkafka::types::RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        if let Some(m) = &self.member {
            group::rebalance(m, consumer, err, tpl);
        }
    }
}

/// One assigned partition.
struct PartitionState {
    topic: String,
    partition: i32,
    /// Offset of the next message to hand out.
    next: i64,
    /// Stop before this offset (bounded reads).
    stop: Option<i64>,
    /// Offset last committed to the group.
    committed: i64,
    /// The partition's end offset when last known (start-up, then librdkafka's statistics).
    end: i64,
    /// Whether this source reads it: always, but for a member of a consumer group (scale-out),
    /// which reads the partitions the group has assigned it.
    owned: bool,
}

/// Turns a message's key and value into a row.
struct Codec {
    decoder: Box<dyn Decoder>,
    /// The key's decoder and columns, when the key is read (EXCEPT_KEY values, upsert deletes).
    key: Option<(Box<dyn Decoder>, Vec<usize>)>,
    value_cols: Vec<usize>,
    except_key: bool,
    width: usize,
    vrow: Row,
    krow: Row,
}

/// Where malformed messages go: the dead-letter file, nowhere (skipped and counted), or into the
/// job's error.
struct BadRecords {
    table: String,
    dead_letter: Option<DeadLetter>,
    ignore: bool,
    count: u64,
    position: String,
}

impl BadRecords {
    /// Handles the malformed message at `topic`/`partition`/`offset` whose `raw` bytes did not
    /// decode: written to the dead-letter file, or skipped, or the job's error.
    fn handle(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        e: &format::DecodeError,
        raw: &[u8],
    ) -> Result<()> {
        use std::fmt::Write;
        self.position.clear();
        let _ = write!(
            self.position,
            "topic {topic} partition {partition} offset {offset}"
        );
        if let Some(d) = self.dead_letter.as_mut() {
            self.count += 1;
            return d
                .write(
                    &self.table,
                    topic,
                    &self.position,
                    e.field.as_deref(),
                    &e.message,
                    raw,
                )
                .and_then(|_| d.flush())
                .map_err(|err| RuntimeError::Source(format!("dead-letter {}: {err}", d.path())));
        }
        if self.ignore {
            self.count += 1;
            return Ok(());
        }
        Err(RuntimeError::Source(format!(
            "table `{}`: malformed record at {}: {e}. To skip malformed records set the format's 'ignore-parse-errors' option to 'true'; to keep them set 'dead-letter.path'",
            self.table, self.position
        )))
    }
}

/// Reads a table's topics.
pub struct KafkaSource {
    table: String,
    schema: Schema,
    consumer: BaseConsumer<EndOffsets>,
    codec: Codec,
    upsert: bool,
    bad: BadRecords,
    metadata: Vec<usize>,
    parts: Vec<PartitionState>,
    bounded: bool,
    group: bool,
    metrics: SourceMetrics,
    /// With `'scan.parallelism'`: the reader threads, before (`Pending`) and after they start.
    readers: Option<readers::Readers>,
    /// The batch of decoded messages being handed out, from a reader thread.
    batch: Option<readers::Batch>,
    /// Records with fields nulled by the readers' decoders.
    nulled: u64,
    /// As one member of the job's consumer group: the instance id, the group and what its
    /// rebalances say (`group.rs`).
    member: Option<(String, String, group::SharedMembership)>,
}

/// The offset `bound` names in a partition. A start is kept within the partition's offsets; a
/// stop (`for_stop`) named by specific offsets may lie beyond the current end, and the read then
/// waits until it reaches it, as Flink's bounded read does.
fn resolve(
    consumer: &BaseConsumer<EndOffsets>,
    table: &TableSpec,
    bound: &Bound,
    topic: &str,
    partition: i32,
    group_committed: Option<i64>,
    for_stop: bool,
) -> std::result::Result<i64, ConnectorError> {
    let (low, high) = consumer
        .fetch_watermarks(topic, partition, CONNECT_TIMEOUT)
        .map_err(|e| unreachable(table, "did not return the partition's offsets", e))?;
    Ok(match bound {
        Bound::Earliest => low,
        Bound::Latest => high,
        Bound::Group => group_committed.unwrap_or(low).clamp(low, high),
        Bound::Specific(m) if for_stop => m.get(&partition).copied().unwrap_or(low).max(low),
        Bound::Specific(m) => m.get(&partition).copied().unwrap_or(low).clamp(low, high),
        Bound::Timestamp(ts) => {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(topic, partition, Offset::Offset(*ts))
                .map_err(|e| table.error(format!("timestamp {ts}: {e}")))?;
            let found = consumer
                .offsets_for_times(tpl, CONNECT_TIMEOUT)
                .map_err(|e| unreachable(table, "did not look up offsets by timestamp", e))?;
            match found.find_partition(topic, partition).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => high,
            }
        }
    })
}

/// What one message became.
enum Outcome {
    /// A row (in the `row` given).
    Row,
    /// Nothing: a tombstone of a table that is not an upsert table.
    Skip,
    /// A malformed record.
    Bad(format::DecodeError),
}

impl Codec {
    /// The codec of `layout` for a table of `width` physical columns; `strict` makes every
    /// conversion error fail the record (a dead-letter output takes them whole).
    fn new(
        layout: &Layout,
        upsert: bool,
        strict: bool,
        width: usize,
    ) -> std::result::Result<Codec, ConnectorError> {
        let mut decoder = format::decoder(&layout.value)?;
        let mut key = match &layout.key {
            Some(k) if layout.except_key || upsert => {
                Some((format::decoder(k)?, layout.key_cols.clone()))
            }
            _ => None,
        };
        if strict {
            decoder.set_strict(true);
            if let Some((k, _)) = key.as_mut() {
                k.set_strict(true);
            }
        }
        Ok(Codec {
            decoder,
            key,
            value_cols: layout.value_cols.clone(),
            except_key: layout.except_key,
            width,
            vrow: Row::with_capacity(8),
            krow: Row::with_capacity(4),
        })
    }

    /// Turns `msg` (at `offset`) into `row`: its columns and then the `metadata` columns
    /// (indices into [`METADATA`]).
    fn message(
        &mut self,
        msg: &rdkafka::message::BorrowedMessage<'_>,
        offset: i64,
        upsert: bool,
        metadata: &[usize],
        row: &mut Row,
    ) -> Outcome {
        let payload = msg.payload();
        if payload.is_none() && !upsert {
            return Outcome::Skip; // a tombstone has no row (as Flink's value formats)
        }
        if let Err(e) = self.decode(payload, msg.key(), row) {
            return Outcome::Bad(e);
        }
        for &k in metadata {
            let v = match METADATA[k].0 {
                "topic" => Value::Str(row.intern(msg.topic())),
                "partition" => Value::Int(msg.partition() as i64),
                "offset" => Value::Int(offset),
                "headers" => {
                    use rdkafka::message::Headers;
                    let map = match msg.headers() {
                        Some(h) => tillflow_types::map::push_map(
                            &mut row.heap,
                            h.iter().map(|h| (h.key.as_bytes(), h.value)),
                        ),
                        None => tillflow_types::map::push_map(&mut row.heap, []),
                    };
                    Value::Str(map)
                }
                _ => match msg.timestamp().to_millis() {
                    Some(ms) => Value::Timestamp(ms.saturating_mul(1000)),
                    None => Value::Null,
                },
            };
            row.values.push(v);
        }
        Outcome::Row
    }

    /// Decodes one message into `row`: the value (and, for EXCEPT_KEY, the key) into the
    /// physical columns; an upsert tombstone into a delete of its key.
    fn decode(
        &mut self,
        payload: Option<&[u8]>,
        key: Option<&[u8]>,
        row: &mut Row,
    ) -> std::result::Result<(), format::DecodeError> {
        let missing_key = || format::DecodeError {
            field: None,
            message: "the message has no key".into(),
        };
        match payload {
            Some(p) if !self.except_key => self.decoder.decode(p, row),
            Some(p) => {
                let Some((kd, key_cols)) = self.key.as_mut() else {
                    return self.decoder.decode(p, row);
                };
                self.vrow.clear();
                self.krow.clear();
                self.decoder.decode(p, &mut self.vrow)?;
                kd.decode(key.ok_or_else(missing_key)?, &mut self.krow)?;
                row.values.resize(self.width, Value::Null);
                for (j, &c) in self.value_cols.iter().enumerate() {
                    let v = self.vrow.values.get(j).copied().unwrap_or(Value::Null);
                    row.values[c] =
                        tillflow_types::value::copy_value(v, &self.vrow.heap, &mut row.heap);
                }
                for (j, &c) in key_cols.iter().enumerate() {
                    let v = self.krow.values.get(j).copied().unwrap_or(Value::Null);
                    row.values[c] =
                        tillflow_types::value::copy_value(v, &self.krow.heap, &mut row.heap);
                }
                Ok(())
            }
            None => {
                // a tombstone: the key's row is deleted
                let Some((kd, key_cols)) = self.key.as_mut() else {
                    return Err(missing_key());
                };
                self.krow.clear();
                kd.decode(key.ok_or_else(missing_key)?, &mut self.krow)?;
                row.values.resize(self.width, Value::Null);
                for (j, &c) in key_cols.iter().enumerate() {
                    let v = self.krow.values.get(j).copied().unwrap_or(Value::Null);
                    row.values[c] =
                        tillflow_types::value::copy_value(v, &self.krow.heap, &mut row.heap);
                }
                row.kind = RowKind::Delete;
                Ok(())
            }
        }
    }
}

impl KafkaSource {
    /// Connects, finds the partitions of the topics and the offsets to read from (and to).
    pub fn new(table: &TableSpec, upsert: bool) -> std::result::Result<Self, ConnectorError> {
        let layout = layout(table, upsert)?;
        let dead_letter = match table.option("dead-letter.path") {
            Some(p) => Some(
                DeadLetter::open(p)
                    .map_err(|e| table.error(format!("option 'dead-letter.path' = '{p}': {e}")))?,
            ),
            None => None,
        };
        let strict = dead_letter.is_some();
        let width = table.schema.len();
        let codec = Codec::new(&layout, upsert, strict, width)?;
        let parallelism = match table.option("scan.parallelism") {
            None => None,
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if n >= 1 => Some(n),
                _ => {
                    return Err(table.error(format!(
                        "'scan.parallelism' must be a whole number of readers, 1 or more; got '{v}'"
                    )))
                }
            },
        };
        let topics = topics(table)?;
        // upsert-kafka reads the whole topic: the table is every key's latest value
        let start = if upsert {
            Bound::Earliest
        } else {
            startup(table)?
        };
        let stop = bounded(table)?;
        let member = table.option(group::MEMBER_OPTION).map(str::to_owned);
        if member.is_some() {
            if upsert {
                return Err(table.error(
                    "an upsert-kafka table is read whole by every reader (it is the latest value of every key), so the processes of a scaled-out job (--instance-id) cannot share its partitions: run this job as one process",
                ));
            }
            if stop.is_some() {
                return Err(table.error(
                    "'scan.bounded.mode' with --instance-id: the processes of a scaled-out job share the topic's partitions as they come and go, and a bounded read has no end that they agree on; run a bounded read as one process",
                ));
            }
            if table.option("properties.group.id").is_none() {
                return Err(table
                    .error("internal: a member of a scaled-out job without its consumer group"));
            }
        }
        let group = table.option("properties.group.id").is_some();
        let explicit_group = (start == Bound::Group && table.option("scan.startup.mode").is_some())
            || stop == Some(Bound::Group);
        if explicit_group && !group {
            return Err(table.error(
                "'group-offsets' needs 'properties.group.id' (the consumer group whose offsets to use)",
            ));
        }
        let start = if start == Bound::Group && !group {
            Bound::Earliest // no group: Flink's default needs one; read from the beginning
        } else {
            start
        };
        let mut cfg = client_config(table)?;
        cfg.set("enable.auto.commit", "false");
        cfg.set("enable.auto.offset.store", "false");
        if let Some(instance) = &member {
            if table.option(group::STATIC_OPTION).is_some() {
                // static membership: a member back within the session timeout keeps its
                // partitions (one id per table: two tables may share a group)
                cfg.set("group.instance.id", format!("{instance}.{}", table.name));
            }
            match table.option("properties.partition.assignment.strategy") {
                None => {
                    cfg.set("partition.assignment.strategy", "roundrobin");
                }
                Some(s) if s.to_ascii_lowercase().contains("cooperative") => {
                    return Err(table.error(format!(
                        "'properties.partition.assignment.strategy' = '{s}': a scaled-out job (--instance-id) takes and gives up whole assignments; use an eager assignor (range, roundrobin)"
                    )));
                }
                Some(_) => {}
            }
        }
        if !group {
            // librdkafka wants a group id even for assigned partitions; it is never committed to
            cfg.set("group.id", format!("tillflow-{}", table.name));
        }
        if table.option("properties.fetch.queue.backoff.ms").is_none() {
            // librdkafka stops fetching a partition for this long once its prefetch queue holds
            // queued.min.messages; its default (1 s) stalls a job that drains the queue faster
            // than that: reading went from 0.2 M to 0.8 M records/s here with 10 ms
            cfg.set("fetch.queue.backoff.ms", "10");
        }
        // a member reads with one consumer (its partitions come and go with the group's
        // rebalances, which the reader threads do not follow)
        let parallelism = if member.is_some() { None } else { parallelism };
        // the readers' consumers read; this one reads only without readers (else it looks up
        // offsets and commits, and is never polled: it must not collect statistics)
        let mut reader_cfg = cfg.clone();
        let stats = if table.option("properties.statistics.interval.ms").is_none() {
            // end offsets for the consumer lag, once a second
            Some("1000")
        } else {
            None
        };
        if let Some(ms) = stats {
            reader_cfg.set("statistics.interval.ms", ms);
            if parallelism.is_none() {
                cfg.set("statistics.interval.ms", ms);
            }
        } else if parallelism.is_some() {
            cfg.remove("statistics.interval.ms");
        }
        let membership = member.as_ref().map(|_| group::SharedMembership::default());
        let consumer: BaseConsumer<EndOffsets> = cfg
            .create_with_context(EndOffsets {
                member: membership.clone(),
                ..EndOffsets::default()
            })
            .map_err(|e| table.error(format!("Kafka client: {}", properties::safe_error(&e))))?;
        let topics = match topics {
            Topics::Named(t) => t,
            Topics::Pattern(re) => {
                let md = consumer
                    .fetch_metadata(None, CONNECT_TIMEOUT)
                    .map_err(|e| unreachable(table, "did not answer a metadata request", e))?;
                let mut t: Vec<String> = md
                    .topics()
                    .iter()
                    .map(|t| t.name().to_owned())
                    .filter(|n| re.is_match(n))
                    .collect();
                t.sort();
                if t.is_empty() {
                    return Err(table.error(format!(
                        "no topic on {} matches 'topic-pattern' = '{}'",
                        brokers(table),
                        table.option("topic-pattern").unwrap_or_default()
                    )));
                }
                t
            }
        };
        let mut parts = Vec::new();
        for topic in &topics {
            let md = consumer
                .fetch_metadata(Some(topic), CONNECT_TIMEOUT)
                .map_err(|e| unreachable(table, "did not answer a metadata request", e))?;
            let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
                return Err(table.error(format!("topic '{topic}' not found")));
            };
            if t.partitions().is_empty() {
                return Err(table.error(format!(
                    "topic '{topic}' does not exist on {} (or has no partitions)",
                    brokers(table)
                )));
            }
            let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
            ids.sort_unstable();
            let committed = if group {
                let mut tpl = TopicPartitionList::new();
                for &p in &ids {
                    tpl.add_partition(topic, p);
                }
                Some(
                    consumer
                        .committed_offsets(tpl, CONNECT_TIMEOUT)
                        .map_err(|e| unreachable(table, "did not return the group's offsets", e))?,
                )
            } else {
                None
            };
            for p in ids {
                let c = committed.as_ref().and_then(|c| {
                    match c.find_partition(topic, p).map(|e| e.offset()) {
                        Some(Offset::Offset(o)) => Some(o),
                        _ => None,
                    }
                });
                let next = resolve(&consumer, table, &start, topic, p, c, false)?;
                let stop = match &stop {
                    None => None,
                    Some(b) => Some(resolve(&consumer, table, b, topic, p, c, true)?),
                };
                let end = consumer
                    .fetch_watermarks(topic, p, CONNECT_TIMEOUT)
                    .map(|w| w.1)
                    .unwrap_or(next);
                parts.push(PartitionState {
                    topic: topic.clone(),
                    partition: p,
                    next,
                    stop,
                    committed: c.unwrap_or(-1),
                    end,
                    owned: member.is_none(),
                });
            }
        }
        let mut tpl = TopicPartitionList::new();
        for p in &parts {
            if p.stop.is_none_or(|s| p.next < s) {
                tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.next))
                    .map_err(|e| table.error(format!("assign: {e}")))?;
            }
        }
        // reader threads read the partitions themselves; this consumer then only commits
        let readers = match parallelism {
            Some(n) => {
                let n = n.min(parts.len()).max(1);
                let codecs = (0..n)
                    .map(|_| Codec::new(&layout, upsert, strict, width))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                Some(readers::Readers::pending(
                    reader_cfg,
                    consumer.context().shared(),
                    codecs,
                ))
            }
            None => {
                if let Some(m) = &membership {
                    // the group assigns the partitions; one never committed starts where the
                    // table's start-up mode says
                    if let Ok(mut m) = m.lock() {
                        m.starts = parts
                            .iter()
                            .map(|p| ((p.topic.clone(), p.partition), p.next))
                            .collect();
                    }
                    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                    consumer
                        .subscribe(&names)
                        .map_err(|e| table.error(format!("joining the consumer group: {e}")))?;
                } else {
                    consumer
                        .assign(&tpl)
                        .map_err(|e| table.error(format!("assigning partitions: {e}")))?;
                }
                None
            }
        };
        let member = match (member, membership) {
            (Some(instance), Some(m)) => Some((
                instance,
                table
                    .option("properties.group.id")
                    .unwrap_or_default()
                    .to_owned(),
                m,
            )),
            _ => None,
        };
        let (schema, metadata) = crate::with_metadata(table, METADATA)?;
        Ok(KafkaSource {
            table: table.name.clone(),
            schema,
            consumer,
            bad: BadRecords {
                table: table.name.clone(),
                dead_letter,
                ignore: codec.decoder.ignore_parse_errors(),
                count: 0,
                position: String::new(),
            },
            codec,
            upsert,
            metadata,
            parts,
            bounded: stop.is_some(),
            group,
            metrics: SourceMetrics::default(),
            readers,
            batch: None,
            nulled: 0,
            member,
        })
    }

    /// As a group member (`member`): takes the group's latest assignment into `parts`, and
    /// tells whether a revocation is held (no rows are handed out until the job has
    /// checkpointed).
    fn follow_group(
        parts: &mut [PartitionState],
        member: &Option<(String, String, group::SharedMembership)>,
        table: &str,
    ) -> Result<bool> {
        let Some((_, group, shared)) = member else {
            return Ok(false);
        };
        if !shared.has_news() {
            return Ok(false);
        }
        let Ok(mut m) = shared.lock() else {
            return Err(RuntimeError::Source(format!(
                "table `{table}`: the consumer group's state is unusable (a rebalance panicked)"
            )));
        };
        if let Some(e) = m.error.take() {
            eprintln!("warning: table `{table}`: consumer group '{group}': {e}");
        }
        if let Some(e) = &m.fatal {
            return Err(RuntimeError::Source(format!(
                "table `{table}`: consumer group '{group}': {e}"
            )));
        }
        if let Some(assigned) = m.assigned.take() {
            let mut list: Vec<String> = assigned
                .iter()
                .map(|(t, p, o)| format!("{t}/{p} from offset {o}"))
                .collect();
            if list.is_empty() {
                list.push("none".into());
            }
            eprintln!(
                "note: table `{table}`: consumer group '{group}' rebalanced ({}): this process reads {}",
                m.rebalances,
                list.join(", ")
            );
            for p in parts.iter_mut() {
                p.owned = false;
            }
            for (topic, partition, start) in assigned {
                if let Some(p) = parts
                    .iter_mut()
                    .find(|p| p.partition == partition && p.topic == topic)
                {
                    p.owned = true;
                    p.next = start;
                    p.committed = start;
                }
            }
        }
        shared.seen(m.revoking || m.fatal.is_some());
        Ok(m.revoking)
    }

    fn all_done(&self) -> bool {
        self.parts
            .iter()
            .all(|p| p.stop.is_some_and(|s| p.next >= s))
    }

    /// Hands out the next row of the reader threads' batches (started at the first call, from
    /// the partitions' positions): the per-partition positions advance as rows are handed out,
    /// never as they are fetched, so a checkpoint or a commit covers exactly the rows the
    /// pipeline has seen.
    fn poll_readers(&mut self, row: &mut Row) -> Result<Poll> {
        loop {
            if let Some(b) = self.batch.as_mut() {
                while let Some(e) = b.entries.get(b.pos).copied() {
                    b.pos += 1;
                    let p = &mut self.parts[e.part as usize];
                    p.next = p.next.max(e.next);
                    match e.kind {
                        readers::Kind::Skip => {}
                        readers::Kind::Row(i) => {
                            // the batch's decoded row becomes the job's; the job's (cleared)
                            // buffers go back to the reader with the batch
                            std::mem::swap(row, &mut b.rows[i as usize]);
                            row.split = e.part;
                            self.metrics.records += 1;
                            return Ok(Poll::Record);
                        }
                        readers::Kind::Bad(i) => {
                            let (err, raw) = &b.bad[i as usize];
                            self.bad.handle(&p.topic, p.partition, e.offset, err, raw)?;
                        }
                    }
                }
            }
            let Some(r) = self.readers.as_mut() else {
                return Ok(Poll::Idle);
            };
            if let Some(b) = self.batch.take() {
                r.recycle(b);
            }
            r.start(&self.parts, &self.table, self.upsert, &self.metadata)?;
            match r.next(Duration::from_millis(1))? {
                readers::Next::Batch(b) => {
                    self.metrics.bytes += b.bytes;
                    self.nulled += b.nulled;
                    self.batch = Some(b);
                }
                readers::Next::Nothing => {
                    // this consumer only commits; its queue still takes the client's events
                    let _ = self.consumer.poll(Duration::ZERO);
                    return Ok(Poll::Idle);
                }
                readers::Next::Ended => {
                    if self.bounded && self.all_done() {
                        return Ok(Poll::End);
                    }
                    return Err(RuntimeError::Source(format!(
                        "table `{}`: the reader threads ended before their partitions did",
                        self.table
                    )));
                }
            }
        }
    }

    /// Commits `tpl` to the group; on failure every partition is committed again next time.
    /// A member of a scaled-out job fails instead: the partitions' next owner would read from
    /// older offsets what this process has passed on.
    fn commit_list(&mut self, tpl: &TopicPartitionList) -> Result<()> {
        if tpl.count() == 0 {
            return Ok(());
        }
        if let Err(e) = self.consumer.commit(tpl, CommitMode::Sync) {
            if let Some((_, group, _)) = &self.member {
                return Err(RuntimeError::Source(format!(
                    "table `{}`: committing offsets to consumer group '{group}' failed: {e}. The job stops rather than let another process read these records again; started again, it resumes from its last checkpoint",
                    self.table
                )));
            }
            eprintln!(
                "warning: table `{}`: committing offsets failed (will retry): {e}",
                self.table
            );
            for p in &mut self.parts {
                p.committed = -1;
            }
        }
        Ok(())
    }

    /// Commits the offsets of everything handed out so far (the rows are in the pipeline).
    fn commit_offsets(&mut self) -> Result<()> {
        if !self.group {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for p in self
            .parts
            .iter_mut()
            .filter(|p| p.owned && p.next > p.committed)
        {
            if tpl
                .add_partition_offset(&p.topic, p.partition, Offset::Offset(p.next))
                .is_ok()
            {
                p.committed = p.next;
            }
        }
        self.commit_list(&tpl)
    }
}

impl Source for KafkaSource {
    /// The topics and table, not the partition count: a topic that gained partitions still
    /// restores (the new ones start from their start-up offsets).
    fn checkpoint_identity(&self) -> String {
        let mut topics: Vec<&str> = self.parts.iter().map(|p| p.topic.as_str()).collect();
        topics.dedup();
        format!("kafka[{}] (table `{}`)", topics.join(";"), self.table)
    }

    fn describe(&self) -> String {
        let mut topics: Vec<&str> = self.parts.iter().map(|p| p.topic.as_str()).collect();
        topics.dedup();
        let readers = self
            .readers
            .as_ref()
            .map_or(String::new(), |r| format!(", {} reader(s)", r.count()));
        let member = self.member.as_ref().map_or(String::new(), |(i, g, _)| {
            format!(", member '{i}' of consumer group '{g}'")
        });
        format!(
            "kafka[{}] {} partition(s){readers}{member} (table `{}`)",
            topics.join(";"),
            self.parts.len(),
            self.table
        )
    }

    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn splits(&self) -> usize {
        self.parts.len()
    }

    fn commit(&mut self) -> Result<()> {
        self.commit_offsets()
    }

    /// A group member's offsets go first: once they are committed, the partitions' next owner
    /// starts after the checkpoint's records, whose rows the sinks commit next (or, should the
    /// process stop before, when it resumes from the checkpoint).
    fn commits_before_sinks(&self) -> bool {
        self.member.is_some()
    }

    /// Commits the offsets the completed checkpoint recorded (not the read position, which
    /// has moved on while the checkpoint was written).
    fn commit_checkpoint(&mut self, position: &[u8]) -> Result<()> {
        if !self.group {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (topic, partition, next, _) in parse_positions(position, &mut 0)? {
            // a member commits only what it still owns: a partition handed on is its new
            // owner's to commit
            if let Some(p) = self.parts.iter_mut().find(|p| {
                p.owned && p.partition == partition && p.topic == topic && next > p.committed
            }) {
                if tpl
                    .add_partition_offset(&topic, partition, Offset::Offset(next))
                    .is_ok()
                {
                    p.committed = next;
                }
            }
        }
        self.commit_list(&tpl)
    }

    fn poll(&mut self, row: &mut Row) -> Result<Poll> {
        if self.readers.is_some() {
            return self.poll_readers(row);
        }
        loop {
            if Self::follow_group(&mut self.parts, &self.member, &self.table)? {
                // a revocation is held: the client's events are served, no row handed out
                let _ = self.consumer.poll(Duration::ZERO);
                return Ok(Poll::Idle);
            }
            // an empty local queue waits up to 1 ms for the next fetch rather than handing the
            // job loop an idle turn (which sleeps 5 ms)
            let msg = match self.consumer.poll(Duration::from_millis(1)) {
                None => {
                    if self.bounded {
                        settle_at_positions(&self.consumer, &mut self.parts);
                        if self.all_done() {
                            return Ok(Poll::End);
                        }
                    }
                    return Ok(Poll::Idle);
                }
                Some(Err(e)) => {
                    // librdkafka reconnects by itself; a lost broker is reported, not fatal
                    if fatal(&e) {
                        return Err(RuntimeError::Source(format!("table `{}`: {e}", self.table)));
                    }
                    return Ok(Poll::Idle);
                }
                Some(Ok(m)) => m,
            };
            // the poll may have run a rebalance: a message of a partition being given up, or
            // no longer owned, is left to the partition's next owner (its offset is not passed)
            if Self::follow_group(&mut self.parts, &self.member, &self.table)? {
                continue;
            }
            // a few partitions: a scan, without building a key per message
            let (topic, partition) = (msg.topic(), msg.partition());
            let Some(i) = self
                .parts
                .iter()
                .position(|p| p.owned && p.partition == partition && p.topic == topic)
            else {
                continue;
            };
            let offset = msg.offset();
            let p = &mut self.parts[i];
            if p.stop.is_some_and(|s| offset >= s) {
                p.next = p.next.max(p.stop.unwrap_or(offset));
                continue; // past the bounded end of this partition
            }
            p.next = offset + 1;
            self.metrics.bytes += msg.payload().map_or(0, <[u8]>::len) as u64;
            match self
                .codec
                .message(&msg, offset, self.upsert, &self.metadata, row)
            {
                Outcome::Row => {
                    row.split = i as u32;
                    self.metrics.records += 1;
                    return Ok(Poll::Record);
                }
                Outcome::Skip => {}
                Outcome::Bad(e) => {
                    let raw = msg.payload().or(msg.key()).unwrap_or_default();
                    self.bad.handle(topic, partition, offset, &e, raw)?;
                    row.clear();
                }
            }
        }
    }

    fn metrics(&self) -> SourceMetrics {
        let mut m = self.metrics.clone();
        m.bad_records = self.bad.count;
        m.nulled_records = self.codec.decoder.nulled_records() + self.nulled;
        m.lag = self.partition_lag().iter().map(|(_, l)| l).sum();
        m
    }

    /// The partitions it reads (a group member's: those the group has assigned it).
    fn partition_lag(&self) -> Vec<(String, u64)> {
        let ends = self.consumer.context().ends.lock().ok();
        self.parts
            .iter()
            .filter(|p| p.owned)
            .map(|p| {
                let end = ends
                    .as_ref()
                    .and_then(|e| e.get(&(p.topic.clone(), p.partition)).copied())
                    .unwrap_or(p.end)
                    .max(p.end);
                (
                    format!("{}/{}", p.topic, p.partition),
                    (end - p.next).max(0) as u64,
                )
            })
            .collect()
    }

    fn resumable(&self) -> bool {
        true
    }

    fn wants_checkpoint(&mut self) -> bool {
        Self::follow_group(&mut self.parts, &self.member, &self.table).unwrap_or(true)
    }

    /// Gives the revoked partitions up, their offsets committed: the group's rebalance goes on.
    fn checkpointed(&mut self) -> Result<()> {
        let Some((_, group, m)) = &self.member else {
            return Ok(());
        };
        let held = m.lock().map(|m| m.revoking).unwrap_or(true);
        if !held {
            return Ok(());
        }
        self.consumer.unassign().map_err(|e| {
            RuntimeError::Source(format!(
                "table `{}`: giving partitions back to consumer group '{group}': {e}",
                self.table
            ))
        })?;
        let given: Vec<String> = self
            .parts
            .iter()
            .filter(|p| p.owned)
            .map(|p| format!("{}/{} at offset {}", p.topic, p.partition, p.next))
            .collect();
        for p in &mut self.parts {
            p.owned = false;
        }
        if let Ok(mut m) = m.lock() {
            m.revoking = false;
        }
        if !given.is_empty() {
            eprintln!(
                "note: table `{}`: consumer group '{group}': checkpointed, then gave back {}",
                self.table,
                given.join(", ")
            );
        }
        Ok(())
    }

    fn bounded(&self) -> bool {
        self.bounded
    }

    /// Per partition: topic, partition and the offset of the next message to hand out.
    fn snapshot_position(&mut self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&(self.parts.len() as u32).to_le_bytes());
        for p in &self.parts {
            out.extend_from_slice(&(p.topic.len() as u32).to_le_bytes());
            out.extend_from_slice(p.topic.as_bytes());
            out.extend_from_slice(&p.partition.to_le_bytes());
            out.extend_from_slice(&p.next.to_le_bytes());
            // the bounded end as it was first resolved: a restart reads to the same end
            out.extend_from_slice(&p.stop.unwrap_or(-1).to_le_bytes());
        }
        DeadLetter::snapshot(self.bad.dead_letter.as_mut(), out)
    }

    /// Seeks every partition the checkpoint names to its offset (partitions it does not name,
    /// added since, keep their start-up offsets). Each offset is checked against the partition
    /// as it is now: a partition the topic no longer has, or an offset past its end, means the
    /// topic was recreated (or the checkpoint damaged) and is refused; an offset the topic's
    /// retention has deleted since resumes at the earliest one left, with a warning that says
    /// which records are lost.
    fn restore_position(&mut self, input: &[u8]) -> Result<()> {
        let at = &mut 0;
        let positions = parse_positions(input, at)?;
        DeadLetter::restore(self.bad.dead_letter.as_mut(), input, at)?;
        if let Some((_, _, m)) = &self.member {
            // a member resumes where the group's committed offsets say (its checkpoint's
            // positions were committed with it): the partitions it had may be another's now.
            // Where the checkpoint is ahead (it stopped between writing the checkpoint and
            // committing its offsets), a partition it gets back starts at the checkpoint.
            if let Ok(mut m) = m.lock() {
                m.floors = positions
                    .iter()
                    .map(|(t, p, next, _)| ((t.clone(), *p), *next))
                    .collect();
            }
            return Ok(());
        }
        for (topic, partition, next, stop) in positions {
            let count = self.parts.iter().filter(|p| p.topic == topic).count();
            let Some(p) = self
                .parts
                .iter_mut()
                .find(|p| p.partition == partition && p.topic == topic)
            else {
                return Err(RuntimeError::State(if count == 0 {
                    format!(
                        "it holds a position in topic '{topic}', which table `{}` no longer reads",
                        self.table
                    )
                } else {
                    format!(
                        "it holds a position in partition {partition} of topic '{topic}', which now has {count} partition(s): the topic was deleted and created again since (Kafka never removes partitions)"
                    )
                }));
            };
            if next < 0 {
                return Err(RuntimeError::State(format!(
                    "its position in partition {partition} of topic '{topic}' is {next}, not an offset"
                )));
            }
            let (low, high) = self
                .consumer
                .fetch_watermarks(&topic, partition, CONNECT_TIMEOUT)
                .map_err(|e| {
                    RuntimeError::Source(format!(
                        "table `{}`: the offsets of partition {partition} of topic '{topic}': {e}",
                        self.table
                    ))
                })?;
            if next > high {
                return Err(RuntimeError::State(format!(
                    "its position, offset {next} of partition {partition} of topic '{topic}', is past the partition's end (offset {high}): the topic was deleted and created again, or emptied, since the checkpoint"
                )));
            }
            p.end = high;
            p.next = if next < low {
                eprintln!(
                    "warning: table `{}`: partition {partition} of topic '{topic}' no longer holds offsets {next} to {} (the topic's retention deleted them after the checkpoint): those records are lost to this job, which reads on from offset {low}",
                    self.table,
                    low - 1
                );
                low
            } else {
                next
            };
            // a bounded read keeps the end it first resolved (an unbounded run's checkpoint
            // has none: this run's own end stands)
            if let (Some(_), Some(s)) = (p.stop, stop) {
                p.stop = Some(s);
            }
        }
        if let Some(r) = &self.readers {
            // the readers start at the first poll, from these positions
            return if r.started() {
                Err(RuntimeError::Source(format!(
                    "table `{}`: a position is restored before the job runs",
                    self.table
                )))
            } else {
                Ok(())
            };
        }
        let mut tpl = TopicPartitionList::new();
        for p in &self.parts {
            if p.stop.is_none_or(|s| p.next < s) {
                tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.next))
                    .map_err(|e| RuntimeError::Source(format!("table `{}`: {e}", self.table)))?;
            }
        }
        self.consumer.assign(&tpl).map_err(|e| {
            RuntimeError::Source(format!(
                "table `{}`: seeking to the checkpoint's offsets: {e}",
                self.table
            ))
        })
    }
}

impl Drop for KafkaSource {
    /// A group member's consumer leaves its group as it closes: the revocation that brings
    /// is answered at once (no checkpoint will come to hold it for).
    fn drop(&mut self) {
        if let Some((_, _, m)) = &self.member {
            let held = m
                .lock()
                .map(|mut m| {
                    m.closing = true;
                    std::mem::take(&mut m.revoking)
                })
                .unwrap_or(true);
            if held {
                // a revocation held when the job failed: librdkafka's close would wait for
                // its answer forever
                let _ = self.consumer.unassign();
            }
        }
    }
}

/// Marks a bounded partition read to its end when the consumer's position has reached the end,
/// though its last offsets were never delivered: a transaction's commit marker (or aborted
/// records a read-committed reader skips) takes an offset no message comes with.
fn settle_at_positions(consumer: &BaseConsumer<EndOffsets>, parts: &mut [PartitionState]) {
    if parts.iter().all(|p| p.stop.is_none_or(|s| p.next >= s)) {
        return;
    }
    let Ok(positions) = consumer.position() else {
        return;
    };
    for p in parts.iter_mut() {
        if let Some(stop) = p.stop.filter(|s| p.next < *s) {
            if position_reached(&positions, &p.topic, p.partition, stop) {
                p.next = stop;
            }
        }
    }
}

/// Whether the consumer's position in `topic`/`partition` (in `positions`) is at `stop` or past.
fn position_reached(
    positions: &TopicPartitionList,
    topic: &str,
    partition: i32,
    stop: i64,
) -> bool {
    matches!(
        positions.find_partition(topic, partition).map(|e| e.offset()),
        Some(Offset::Offset(o)) if o >= stop
    )
}

/// Whether a consumer error ends the job (librdkafka recovers from the others by itself: a lost
/// or restarting broker is reconnected).
fn fatal(e: &KafkaError) -> bool {
    matches!(
        e,
        KafkaError::MessageConsumption(RDKafkaErrorCode::UnknownTopicOrPartition)
    )
}

/// One partition's place in a checkpoint: topic, partition, next offset, bounded end.
type PartitionPosition = (String, i32, i64, Option<i64>);

/// Reads what `snapshot_position` wrote.
fn parse_positions(input: &[u8], at: &mut usize) -> Result<Vec<PartitionPosition>> {
    use tillflow_runtime::state::{read_u32, read_u64};
    let truncated = || RuntimeError::State("truncated Kafka position".into());
    let n = read_u32(input, at)? as usize;
    let mut out = Vec::with_capacity(n.min(input.len() / 24));
    for _ in 0..n {
        let len = read_u32(input, at)? as usize;
        let end = at.checked_add(len).ok_or_else(truncated)?;
        let topic = input.get(*at..end).ok_or_else(truncated)?;
        *at = end;
        let partition = read_u32(input, at)? as i32;
        let next = read_u64(input, at)? as i64;
        let stop = read_u64(input, at)? as i64;
        out.push((
            String::from_utf8_lossy(topic).into_owned(),
            partition,
            next,
            (stop >= 0).then_some(stop),
        ));
    }
    Ok(out)
}

/// Numbers the exactly-once sinks of one (prefix, topic) in creation order, which follows the
/// plan, so each gets a transactional id of its own that a restart gives it again.
fn transactional_id(prefix: &str, topic: &str) -> String {
    static SEEN: std::sync::OnceLock<Mutex<BTreeMap<String, u32>>> = std::sync::OnceLock::new();
    let base = format!("{prefix}-{topic}");
    let n = SEEN
        .get_or_init(|| Mutex::new(BTreeMap::new()))
        .lock()
        .map(|mut m| {
            let e = m.entry(base.clone()).or_insert(0);
            *e += 1;
            *e - 1
        })
        .unwrap_or(0);
    format!("{base}-{n}")
}

/// Counts failed deliveries (and keeps the first reason).
#[derive(Default)]
struct Deliveries {
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut first) = self.first_error.lock() {
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Partitioner {
    Default,
    Fixed,
    RoundRobin,
}

/// Writes rows to a topic, one message per row.
pub struct KafkaSink {
    table: String,
    topic: String,
    producer: BaseProducer<Deliveries>,
    encoder: Box<dyn Encoder>,
    /// The key's encoder and columns.
    key: Option<(Box<dyn Encoder>, Vec<usize>)>,
    /// The value's columns when they are not all of them (EXCEPT_KEY).
    value_cols: Option<Vec<usize>>,
    upsert: bool,
    kbuf: Vec<u8>,
    /// The key of a `-U` waiting for the row after it (upsert mode), when `has_pending`.
    pending: Vec<u8>,
    has_pending: bool,
    scratch: Row,
    partitioner: Partitioner,
    partitions: i32,
    next_partition: i32,
    at_least_once: bool,
    /// `sink.delivery-guarantee` = `exactly-once`: rows go out in transactions.
    tx: Option<KafkaTx>,
    buf: Vec<u8>,
    rows: u64,
}

/// An exactly-once sink's transaction state and where it records committed checkpoints.
struct KafkaTx {
    open: bool,
    /// Whether the producer has registered its transactional id (`init_transactions`). That
    /// fences every other producer of the id, so it waits for the sink's first transaction or
    /// its first read of the markers: a second run of a running job, refused by the job's
    /// checkpoint lease after the sinks are built, then never fences the running one.
    ready: bool,
    /// The topic of `(writer → run,checkpoint)` markers, written in each checkpoint's transaction.
    markers: String,
    /// Client settings (brokers, security) for reading the markers back.
    client: ClientConfig,
}

/// Creates `topic` (one partition) unless it exists.
fn ensure_topic(cfg: &ClientConfig, topic: &str) -> std::result::Result<(), String> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = cfg
        .create()
        .map_err(|e| format!("Kafka admin client: {}", properties::safe_error(&e)))?;
    let md = admin
        .inner()
        .fetch_metadata(Some(topic), CONNECT_TIMEOUT)
        .map_err(|e| format!("metadata for '{topic}': {e}"))?;
    if md
        .topics()
        .iter()
        .any(|t| t.name() == topic && !t.partitions().is_empty())
    {
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| format!("creating topic '{topic}': {e}"))?;
    // compacted: each writer's last marker is kept for as long as the job may be restarted
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(1)).set("cleanup.policy", "compact");
    let results = rt
        .block_on(admin.create_topics([&new], &AdminOptions::new()))
        .map_err(|e| format!("creating topic '{topic}': {e}"))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => return Err(format!("creating topic '{t}': {code}")),
        }
    }
    Ok(())
}

impl KafkaSink {
    /// Connects and checks the topic exists.
    pub fn new(table: &TableSpec, upsert: bool) -> std::result::Result<Self, ConnectorError> {
        let layout = layout(table, upsert)?;
        let encoder = format::encoder(&layout.value)?;
        let key = match &layout.key {
            Some(k) => Some((format::encoder(k)?, layout.key_cols.clone())),
            None => None,
        };
        let value_cols = layout.except_key.then(|| layout.value_cols.clone());
        let topic = match topics(table)? {
            Topics::Named(mut t) if t.len() == 1 => t.remove(0),
            _ => {
                return Err(table.error("a Kafka sink writes one 'topic' (not a list or a pattern)"))
            }
        };
        let partitioner = match table.option("sink.partitioner").unwrap_or("default") {
            "default" => Partitioner::Default,
            "fixed" => Partitioner::Fixed,
            "round-robin" => Partitioner::RoundRobin,
            other => {
                return Err(table.error(format!(
                    "'sink.partitioner' = '{other}' is not one of default, fixed, round-robin"
                )))
            }
        };
        let (at_least_once, exactly_once) = match table
            .option("sink.delivery-guarantee")
            .unwrap_or("at-least-once")
        {
            "at-least-once" => (true, false),
            "none" => (false, false),
            "exactly-once" => (true, true),
            other => {
                return Err(table.error(format!(
                    "'sink.delivery-guarantee' = '{other}' is not one of none, at-least-once, exactly-once"
                )))
            }
        };
        let mut cfg = client_config(table)?;
        if at_least_once && table.option("properties.acks").is_none() {
            cfg.set("acks", "all");
        }
        if at_least_once && table.option("properties.enable.idempotence").is_none() {
            // retries after a broker hiccup do not write a message twice
            cfg.set("enable.idempotence", "true");
        }
        if table.option("properties.partitioner").is_none() {
            // the Java client's murmur2 on the key: a key lands where Flink would put it
            cfg.set("partitioner", "murmur2_random");
        }
        let tx = if exactly_once {
            let Some(prefix) = table.option("sink.transactional-id-prefix") else {
                return Err(table.error(
                    "'sink.delivery-guarantee' = 'exactly-once' needs 'sink.transactional-id-prefix' (a prefix no other job uses)",
                ));
            };
            // one transactional id per job sink: a restarted job fences its previous incarnation
            // (at its first transaction or read of the markers: `ready`)
            cfg.set("transactional.id", transactional_id(prefix, &topic));
            Some(KafkaTx {
                open: false,
                ready: false,
                markers: format!("{prefix}-checkpoints"),
                client: client_config(table)?,
            })
        } else {
            None
        };
        let producer: BaseProducer<Deliveries> = cfg
            .create_with_context(Deliveries::default())
            .map_err(|e| table.error(format!("Kafka client: {}", properties::safe_error(&e))))?;
        let md = producer
            .client()
            .fetch_metadata(Some(&topic), CONNECT_TIMEOUT)
            .map_err(|e| unreachable(table, "did not answer a metadata request", e))?;
        let partitions = md
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .map(|t| t.partitions().len() as i32)
            .unwrap_or(0);
        if partitions == 0 {
            return Err(table.error(format!(
                "topic '{topic}' does not exist on {} (create it first)",
                brokers(table)
            )));
        }
        Ok(KafkaSink {
            table: table.name.clone(),
            topic,
            producer,
            encoder,
            key,
            value_cols,
            upsert,
            kbuf: Vec::with_capacity(64),
            pending: Vec::with_capacity(64),
            has_pending: false,
            scratch: Row::with_capacity(8),
            partitioner,
            partitions,
            next_partition: 0,
            at_least_once,
            tx,
            buf: Vec::with_capacity(256),
            rows: 0,
        })
    }

    fn tx_err(&self, what: &str, e: KafkaError) -> RuntimeError {
        RuntimeError::Sink(format!(
            "table `{}`: Kafka transaction to '{}': {what}: {e}",
            self.table, self.topic
        ))
    }

    /// Registers the transactional id (fencing earlier producers of it: a crashed run's open
    /// transaction is aborted) and creates the marker topic, once, before the sink's first
    /// transaction or read of the markers.
    fn ready(&mut self) -> Result<()> {
        let Some(tx) = self.tx.as_mut().filter(|t| !t.ready) else {
            return Ok(());
        };
        let fail = |e: String| {
            RuntimeError::Sink(format!(
                "table `{}`: Kafka transactions to '{}': {e}",
                self.table, self.topic
            ))
        };
        ensure_topic(&tx.client, &tx.markers).map_err(fail)?;
        self.producer
            .init_transactions(CONNECT_TIMEOUT)
            .map_err(|e| fail(e.to_string()))?;
        tx.ready = true;
        Ok(())
    }

    /// Opens a transaction if the sink is transactional and none is open.
    fn begin(&mut self) -> Result<()> {
        self.ready()?;
        let Some(tx) = self.tx.as_mut().filter(|t| !t.open) else {
            return Ok(());
        };
        self.producer
            .begin_transaction()
            .map_err(|e| RuntimeError::Sink(format!("table `{}`: {e}", self.table)))?;
        tx.open = true;
        Ok(())
    }

    /// Commits the open transaction (if any).
    fn commit_tx(&mut self) -> Result<()> {
        if self.tx.as_ref().is_some_and(|t| t.open) {
            if let Err(e) = self.producer.commit_transaction(Duration::from_secs(60)) {
                let _ = self.producer.abort_transaction(Duration::from_secs(30));
                if let Some(tx) = self.tx.as_mut() {
                    tx.open = false;
                }
                return Err(self.tx_err("commit", e));
            }
            if let Some(tx) = self.tx.as_mut() {
                tx.open = false;
            }
        }
        Ok(())
    }

    fn tombstone(&mut self, key: &[u8]) -> Result<()> {
        send(&self.producer, &self.topic, Some(key), None, None).map_err(|e| {
            RuntimeError::Sink(format!(
                "table `{}`: producing to '{}': {e}",
                self.table, self.topic
            ))
        })?;
        self.rows += 1;
        Ok(())
    }

    fn check_deliveries(&self) -> Result<()> {
        let failed = self.producer.context().failed.load(Ordering::Relaxed);
        if failed > 0 && self.at_least_once {
            let first = self
                .producer
                .context()
                .first_error
                .lock()
                .ok()
                .and_then(|f| f.clone())
                .unwrap_or_default();
            return Err(RuntimeError::Sink(format!(
                "table `{}`: {failed} message(s) to topic '{}' were not delivered (first: {first})",
                self.table, self.topic
            )));
        }
        Ok(())
    }
}

impl Sink for KafkaSink {
    fn describe(&self) -> String {
        format!("kafka[{}] (table `{}`)", self.topic, self.table)
    }

    fn write(&mut self, row: &Row) -> Result<()> {
        self.begin()?;
        let fail = |table: &str, e: String| RuntimeError::Sink(format!("table `{table}`: {e}"));
        let tombstone = self.upsert && !row.kind.is_addition();
        self.kbuf.clear();
        if let Some((enc, cols)) = self.key.as_mut() {
            project(row, cols, &mut self.scratch);
            self.scratch.kind = RowKind::Insert;
            enc.encode(&self.scratch, &mut self.kbuf)
                .map_err(|e| fail(&self.table, e))?;
            if enc.delimited() && self.kbuf.last() == Some(&b'\n') {
                self.kbuf.pop();
            }
        }
        if self.upsert {
            // A -U is held until the next row: its +U replaces it (no tombstone), any other row
            // sends the tombstone first (the +U was filtered out above).
            if std::mem::take(&mut self.has_pending)
                && !(row.kind.is_addition() && self.pending == self.kbuf)
            {
                let pk = std::mem::take(&mut self.pending);
                let r = self.tombstone(&pk);
                self.pending = pk;
                r?;
            }
            if row.kind == RowKind::UpdateBefore {
                self.pending.clear();
                self.pending.extend_from_slice(&self.kbuf);
                self.has_pending = true;
                return Ok(());
            }
        }
        self.buf.clear();
        if !tombstone {
            match &self.value_cols {
                Some(cols) => {
                    project(row, cols, &mut self.scratch);
                    self.encoder.encode(&self.scratch, &mut self.buf)
                }
                None => self.encoder.encode(row, &mut self.buf),
            }
            .map_err(|e| fail(&self.table, e))?;
        }
        let len = self.buf.len()
            - usize::from(self.encoder.delimited() && self.buf.last() == Some(&b'\n'));
        let partition = match self.partitioner {
            Partitioner::Default => None,
            Partitioner::Fixed => Some(0),
            Partitioner::RoundRobin => {
                let p = self.next_partition;
                self.next_partition = (p + 1) % self.partitions;
                Some(p)
            }
        };
        let key = self.key.is_some().then_some(&self.kbuf[..]);
        let value = (!tombstone).then_some(&self.buf[..len]);
        send(&self.producer, &self.topic, key, value, partition).map_err(|e| {
            RuntimeError::Sink(format!(
                "table `{}`: producing to '{}': {e}",
                self.table, self.topic
            ))
        })?;
        self.rows += 1;
        if self.rows.is_multiple_of(1024) {
            self.producer.poll(Duration::ZERO);
            self.check_deliveries()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.finish()
    }

    fn finish(&mut self) -> Result<()> {
        if std::mem::take(&mut self.has_pending) {
            let pk = std::mem::take(&mut self.pending);
            let r = self.tombstone(&pk);
            self.pending = pk;
            r?;
        }
        self.producer.flush(Duration::from_secs(60)).map_err(|e| {
            RuntimeError::Sink(format!(
                "table `{}`: flushing to '{}': {e}",
                self.table, self.topic
            ))
        })?;
        self.check_deliveries()?;
        self.commit_tx()
    }

    fn rows_written(&self) -> u64 {
        self.rows
    }

    fn transactional(&mut self) -> Option<&mut dyn TransactionalSink> {
        if self.tx.is_some() {
            Some(self)
        } else {
            None
        }
    }
}

impl TransactionalSink for KafkaSink {
    /// Reads the marker topic (read-committed) for the writer's last marker.
    fn committed(&mut self, writer: &str) -> Result<Option<(u64, u64)>> {
        // fence first: a previous run's open transaction is aborted, not read half-way
        self.ready()?;
        let Some(tx) = &self.tx else {
            return Ok(None);
        };
        let fail = |e: String| {
            RuntimeError::Sink(format!(
                "table `{}`: reading checkpoint markers from '{}': {e}",
                self.table, tx.markers
            ))
        };
        let mut cfg = tx.client.clone();
        cfg.set("group.id", "tillflow-markers")
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed");
        let consumer: BaseConsumer = cfg.create().map_err(|e| fail(e.to_string()))?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&tx.markers, 0, Offset::Beginning)
            .map_err(|e| fail(e.to_string()))?;
        consumer.assign(&tpl).map_err(|e| fail(e.to_string()))?;
        let (_, high) = consumer
            .fetch_watermarks(&tx.markers, 0, CONNECT_TIMEOUT)
            .map_err(|e| fail(e.to_string()))?;
        let mut last = None;
        let started = std::time::Instant::now();
        let mut quiet = 0;
        let mut stuck = (-1i64, 0u32);
        // Read until the consumer's position has reached the end offset (it moves past the
        // transaction markers a read-committed reader never sees), then two quiet polls more,
        // as some brokers report a short end offset. Not getting there is an error: guessing
        // "no marker" would commit the checkpoint's rows a second time.
        loop {
            if started.elapsed() > Duration::from_secs(60) {
                return Err(fail(format!(
                    "did not reach the end of the marker topic (offset {high}) in 60 s"
                )));
            }
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    quiet = 0;
                    if m.key() == Some(writer.as_bytes()) {
                        let text = m.payload().map(String::from_utf8_lossy).unwrap_or_default();
                        if let Some((r, c)) = text.split_once(',') {
                            if let (Ok(r), Ok(c)) = (r.parse(), c.parse()) {
                                last = Some((r, c));
                            }
                        }
                    }
                }
                Some(Err(e)) => return Err(fail(e.to_string())),
                None => {
                    let position = consumer.position().ok().and_then(|p| {
                        p.find_partition(&tx.markers, 0)
                            .and_then(|e| match e.offset() {
                                Offset::Offset(o) => Some(o),
                                _ => None,
                            })
                    });
                    // at the end offset; or fetched, but still short of an end offset the
                    // broker over-reported, for 2 s
                    let settled = match position {
                        _ if high <= 0 => true,
                        Some(o) if o >= high => true,
                        Some(o) => {
                            stuck = if stuck.0 == o {
                                (o, stuck.1 + 1)
                            } else {
                                (o, 0)
                            };
                            stuck.1 >= 10
                        }
                        None => false,
                    };
                    if settled {
                        quiet += 1;
                        if quiet >= 2 {
                            break;
                        }
                    }
                }
            }
        }
        Ok(last)
    }

    fn commit_rows(
        &mut self,
        writer: &str,
        run: u64,
        checkpoint: u64,
        rows: &tillflow_runtime::checkpoint::RowLog,
    ) -> Result<()> {
        self.begin()?;
        let written = rows
            .for_each(&mut |row| Sink::write(self, row))
            .and_then(|_| {
                if std::mem::take(&mut self.has_pending) {
                    let pk = std::mem::take(&mut self.pending);
                    let r = self.tombstone(&pk);
                    self.pending = pk;
                    r?;
                }
                let markers = self
                    .tx
                    .as_ref()
                    .map(|t| t.markers.clone())
                    .unwrap_or_default();
                let value = format!("{run},{checkpoint}");
                send(
                    &self.producer,
                    &markers,
                    Some(writer.as_bytes()),
                    Some(value.as_bytes()),
                    Some(0),
                )
                .map_err(|e| self.tx_err("marker", e))
            });
        if let Err(e) = written {
            let _ = self.producer.abort_transaction(Duration::from_secs(30));
            if let Some(tx) = self.tx.as_mut() {
                tx.open = false;
            }
            return Err(e);
        }
        self.commit_tx()?;
        self.check_deliveries()
    }
}

/// Sends one message, waiting while librdkafka's queue is full.
fn send(
    producer: &BaseProducer<Deliveries>,
    topic: &str,
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
    partition: Option<i32>,
) -> std::result::Result<(), KafkaError> {
    loop {
        let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
        if let Some(k) = key {
            rec = rec.key(k);
        }
        if let Some(p) = payload {
            rec = rec.payload(p);
        }
        if let Some(p) = partition {
            rec = rec.partition(p);
        }
        match producer.send(rec) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                producer.poll(Duration::from_millis(50));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Writes lines (one message each) to a topic: what `tillflow gen --kafka` uses.
pub struct LineProducer {
    producer: BaseProducer<Deliveries>,
    topic: String,
    sent: u64,
}

impl LineProducer {
    /// Connects to `brokers` and checks that `topic` exists.
    pub fn new(brokers: &str, topic: &str) -> std::result::Result<Self, String> {
        let producer: BaseProducer<Deliveries> = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("acks", "all")
            .create_with_context(Deliveries::default())
            .map_err(|e| format!("Kafka client: {e}"))?;
        let md = producer
            .client()
            .fetch_metadata(Some(topic), CONNECT_TIMEOUT)
            .map_err(|e| format!("Kafka at {brokers} did not answer a metadata request: {e} (gave up after {} s)", CONNECT_TIMEOUT.as_secs()))?;
        if md
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .is_none_or(|t| t.partitions().is_empty())
        {
            return Err(format!(
                "topic '{topic}' does not exist on {brokers} (create it first)"
            ));
        }
        Ok(LineProducer {
            producer,
            topic: topic.to_owned(),
            sent: 0,
        })
    }

    /// Sends one message (a trailing newline is dropped).
    pub fn send(&mut self, line: &[u8]) -> std::result::Result<(), String> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        send(&self.producer, &self.topic, None, Some(line), None).map_err(|e| e.to_string())?;
        self.sent += 1;
        if self.sent.is_multiple_of(1024) {
            self.producer.poll(Duration::ZERO);
        }
        Ok(())
    }

    /// Waits until everything sent is acknowledged.
    pub fn flush(&mut self) -> std::result::Result<u64, String> {
        self.producer
            .flush(Duration::from_secs(60))
            .map_err(|e| e.to_string())?;
        let failed = self.producer.context().failed.load(Ordering::Relaxed);
        if failed > 0 {
            return Err(format!("{failed} message(s) were not delivered"));
        }
        Ok(self.sent)
    }
}
