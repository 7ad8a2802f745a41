//! The `avro` format through the real binary, checked by an independent reader (fastavro,
//! installed pinned by `scripts/setup.sh`): Avro container files hold the JSON sink's rows with
//! Flink's derived schema, tillflow reads the files fastavro wrote (resolving another field
//! order, an extra field and a missing column), and Kafka messages are single Avro datums that
//! fastavro decodes and tillflow reads back.

use std::path::Path;

mod common;
use common::canon;
use common::{tillflow, Broker, COLUMNS};

fn run(script: &str, dir: &Path) {
    let (ok, err) = tillflow(script, dir);
    assert!(ok, "{err}");
}

const OUT_COLUMNS: &str = "event_time TIMESTAMP(3), store_id INT, sku STRING, qty SMALLINT, unit_price DOUBLE, price DECIMAL(10, 2), day_of DATE, customer_id STRING, big BOOLEAN, f FLOAT";
const SELECT: &str = "SELECT event_time, store_id, sku, CAST(qty AS SMALLINT), unit_price, CAST(unit_price AS DECIMAL(10, 2)), CAST(event_time AS DATE), customer_id, qty > 3, CAST(unit_price AS FLOAT) FROM events";
const KINDS: &str = "event_time:ts,day_of:date,price:dec";

/// The same rows into JSON and into Avro files (snappy, and deflate): fastavro reads exactly the
/// JSON sink's rows, under the schema Flink derives (a record in Flink's namespace, nullable
/// columns as unions with null first, the logical types of Flink's mapping).
#[test]
fn avro_files_hold_the_json_sinks_rows_as_fastavro_reads_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = common::events(dir.path(), 5_000, false);
    let d = |n: &str| dir.path().join(n).display().to_string();
    let script = format!(
        "CREATE TABLE events ({COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');
CREATE TABLE j ({OUT_COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{j}', 'format' = 'json');
CREATE TABLE a ({OUT_COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{a}', 'format' = 'avro');
CREATE TABLE z ({OUT_COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{z}', 'format' = 'avro', 'avro.codec' = 'deflate');
EXECUTE STATEMENT SET BEGIN
INSERT INTO j {SELECT};
INSERT INTO a {SELECT};
INSERT INTO z {SELECT};
END;",
        input = input.display(),
        j = d("j"),
        a = d("a"),
        z = d("z"),
    );
    run(&script, dir.path());
    let want = canon(&["json", &d("j"), KINDS]);
    assert_eq!(want.len(), 5_000);
    for out in ["a", "z"] {
        let got = canon(&["avro", &d(out)]);
        assert_eq!(got.len(), want.len(), "{out}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, w, "{out}");
        }
    }
    let schema = canon(&["avro-schema", &d("a")]).join("");
    for part in [
        r#""name": "org.apache.flink.avro.generated.record""#,
        r#"{"default": null, "name": "event_time", "type": ["null", {"logicalType": "timestamp-millis", "type": "long"}]}"#,
        r#"{"logicalType": "decimal", "precision": 10, "scale": 2, "type": "bytes"}"#,
        r#"{"logicalType": "date", "type": "int"}"#,
        r#""type": ["null", "float"]"#,
    ] {
        assert!(schema.contains(part), "{part} in {schema}");
    }
}

/// A file fastavro wrote (deflate; fields in another order, one the table lacks; a nullable
/// decimal; timestamp-millis and date) reads as its rows in the table's order, and a column the
/// file lacks is NULL.
#[test]
fn tillflow_reads_the_avro_fastavro_wrote() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("in.avro");
    let want = canon(&["write-avro", &file.to_string_lossy()]);
    assert_eq!(want.len(), 500);
    let cols = "sku STRING, qty INT, ts TIMESTAMP(3), price DECIMAL(10, 2), d DATE, ratio DOUBLE, ok BOOLEAN, big BIGINT, missing STRING";
    let out = dir.path().join("out");
    run(
        &format!(
            "CREATE TABLE src ({cols}) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'avro');
CREATE TABLE out ({cols}) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'avro');
INSERT INTO out SELECT * FROM src;",
            file.display(),
            out.display()
        ),
        dir.path(),
    );
    assert_eq!(canon(&["avro", &out.to_string_lossy()]), want);
}

/// Kafka messages in the avro format are single datums (no container header, no trailing byte
/// cut off): fastavro decodes every message with Flink's derived schema, and tillflow reads the
/// topic back into the rows it wrote.
#[test]
fn kafka_messages_are_avro_datums_fastavro_decodes_and_tillflow_reads_back() {
    let b = Broker::start();
    b.create_topic("sales_avro", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let input = common::events(dir.path(), 2_000, false);
    let d = |n: &str| dir.path().join(n).display().to_string();
    let kafka = format!(
        "'connector' = 'kafka', 'topic' = 'sales_avro', 'properties.bootstrap.servers' = '{}', 'format' = 'avro', 'properties.linger.ms' = '0', 'properties.batch.num.messages' = '1'",
        b.addr()
    );
    run(
        &format!(
            "CREATE TABLE events ({COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');
CREATE TABLE j ({OUT_COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{j}', 'format' = 'json');
CREATE TABLE k ({OUT_COLUMNS}) WITH ({kafka});
EXECUTE STATEMENT SET BEGIN
INSERT INTO j {SELECT};
INSERT INTO k {SELECT};
END;",
            input = input.display(),
            j = d("j"),
        ),
        dir.path(),
    );
    let want = canon(&["json", &d("j"), KINDS]);
    let messages = common::read_topic(&b, "sales_avro", 1);
    assert_eq!(messages.len(), want.len());
    let raw = dir.path().join("raw");
    std::fs::create_dir_all(&raw).expect("mkdir");
    for (i, (_, v)) in messages.iter().enumerate() {
        std::fs::write(
            raw.join(format!("m{i:05}")),
            v.as_deref().unwrap_or_default(),
        )
        .expect("write");
    }
    // the schema Flink derives for the table, as tillflow's files carry it
    run(
        &format!(
            "CREATE TABLE events ({COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');
CREATE TABLE a ({OUT_COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{a}', 'format' = 'avro');
INSERT INTO a {SELECT};",
            input = input.display(),
            a = d("a"),
        ),
        dir.path(),
    );
    let schema = dir.path().join("schema.json");
    std::fs::write(&schema, canon(&["avro-schema", &d("a")]).join("")).expect("schema");
    let decoded = canon(&[
        "avro-datums",
        &raw.to_string_lossy(),
        &schema.to_string_lossy(),
    ]);
    assert_eq!(decoded, want);
    let (ok, err) = tillflow(
        &format!(
            "CREATE TABLE k ({OUT_COLUMNS}) WITH ({kafka}, 'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset');
CREATE TABLE back ({OUT_COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{back}', 'format' = 'json');
INSERT INTO back SELECT * FROM k;",
            back = d("back"),
        ),
        dir.path(),
    );
    assert!(ok, "{err}");
    let back = canon(&["json", &d("back"), KINDS]);
    assert_eq!(back.len(), want.len(), "rows read back: {err}");
    for (g, w) in back.iter().zip(&want) {
        assert_eq!(g, w);
    }
}

/// ROW and ARRAY columns written as Avro records and arrays: fastavro reads them as nested
/// records and lists, and tillflow reads the files back into exactly the JSON sink's rows.
#[test]
fn nested_columns_are_avro_records_and_arrays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = common::events(dir.path(), 1_000, false);
    let d = |n: &str| dir.path().join(n).display().to_string();
    let cols =
        "store_id INT, line ROW<sku STRING, qty INT, price DECIMAL(10, 2)>, tags ARRAY<STRING>";
    let select = "SELECT store_id, ROW(sku, qty, CAST(unit_price AS DECIMAL(10, 2))), ARRAY[sku, channel, customer_id] FROM events";
    run(
        &format!(
            "CREATE TABLE events ({COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');
CREATE TABLE j ({cols}) WITH ('connector' = 'filesystem', 'path' = '{j}', 'format' = 'json');
CREATE TABLE a ({cols}) WITH ('connector' = 'filesystem', 'path' = '{a}', 'format' = 'avro');
EXECUTE STATEMENT SET BEGIN
INSERT INTO j {select};
INSERT INTO a {select};
END;",
            input = input.display(),
            j = d("j"),
            a = d("a"),
        ),
        dir.path(),
    );
    let rows = canon(&["avro", &d("a")]);
    assert_eq!(rows.len(), 1_000);
    // the first event: store 5, SKU-0014, qty 1, 1.49, channel store, customer C01482
    assert!(
        rows.contains(&"5|{sku=SKU-0014,qty=1,price=1.49}|[SKU-0014,store,C01482]".to_string()),
        "{:?}",
        &rows[..3]
    );
    run(
        &format!(
            "CREATE TABLE a ({cols}) WITH ('connector' = 'filesystem', 'path' = '{a}', 'format' = 'avro');
CREATE TABLE back ({cols}) WITH ('connector' = 'filesystem', 'path' = '{back}', 'format' = 'json');
INSERT INTO back SELECT * FROM a;",
            a = d("a"),
            back = d("back"),
        ),
        dir.path(),
    );
    assert_eq!(
        common::lines(&dir.path().join("back")),
        common::lines(&dir.path().join("j"))
    );
}
