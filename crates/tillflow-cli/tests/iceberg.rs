//! The `iceberg` connector through the real binary, read back by pyiceberg (installed pinned by
//! `scripts/setup.sh`) with the same catalogs: a JDBC catalog over SQLite (pyiceberg's
//! SqlCatalog), over PostgreSQL (its `iceberg_tables` row, then the metadata file), and the
//! hadoop catalog's warehouse directory. pyiceberg lists the live files of the current
//! snapshot; pyarrow reads them; equality deletes are merged as the Iceberg spec says.

use std::path::Path;
use std::process::Command;

mod common;
use common::canon;
use common::{tillflow, COLUMNS};

fn run(script: &str, dir: &Path) {
    let (ok, err) = tillflow(script, dir);
    assert!(ok, "{err}");
}

const OUT_COLUMNS: &str = "event_time TIMESTAMP(3), store_id INT, sku STRING, qty SMALLINT, unit_price DOUBLE, price DECIMAL(10, 2), day_of DATE, customer_id STRING, big BOOLEAN, line BIGINT";
const SELECT: &str = "SELECT event_time, store_id, sku, CAST(qty AS SMALLINT), unit_price, CAST(unit_price AS DECIMAL(10, 2)), CAST(event_time AS DATE), customer_id, qty > 3, CAST(store_id AS BIGINT) * 1000000 + qty FROM events";
const KINDS: &str = "event_time:ts,day_of:date,price:dec";

/// A bounded job into a table of a JDBC catalog over SQLite: pyiceberg's SqlCatalog finds it,
/// and its rows are exactly the JSON sink's, with Flink's type mapping (SMALLINT as int, DECIMAL
/// as decimal(10, 2), DATE, TIMESTAMP as timestamp) and one snapshot.
#[test]
fn a_table_in_a_sqlite_jdbc_catalog_holds_the_json_sinks_rows_as_pyiceberg_reads_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = common::events(dir.path(), 5_000, false);
    let d = |n: &str| dir.path().join(n).display().to_string();
    let script = format!(
        "CREATE TABLE events ({COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');
CREATE TABLE j ({OUT_COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{j}', 'format' = 'json');
CREATE TABLE ice ({OUT_COLUMNS}) WITH ('connector' = 'iceberg', 'catalog-name' = 'lake',
  'catalog-impl' = 'org.apache.iceberg.jdbc.JdbcCatalog', 'uri' = 'jdbc:sqlite:{db}',
  'warehouse' = 'file://{wh}', 'catalog-database' = 'retail', 'catalog-table' = 'pos_lines',
  'write.parquet.compression-codec' = 'snappy');
EXECUTE STATEMENT SET BEGIN
INSERT INTO j {SELECT};
INSERT INTO ice {SELECT};
END;",
        input = input.display(),
        j = d("j"),
        db = d("catalog.db"),
        wh = d("wh"),
    );
    run(&script, dir.path());
    let want = canon(&["json", &d("j"), KINDS]);
    assert_eq!(want.len(), 5_000);
    let source = format!("sql:{}:lake:retail.pos_lines", d("catalog.db"));
    let got = canon(&["iceberg", &source]);
    assert_eq!(got.len(), want.len());
    assert!(got == want, "pyiceberg's rows differ from the JSON sink's");
    // and through pyiceberg's own scan
    assert!(canon(&["iceberg-scan", &source]) == want);
    let schema = canon(&["iceberg-schema", &source]).join("\n");
    for part in [
        "1 event_time timestamp False",
        "4 qty int False",
        "6 price decimal(10, 2) False",
        "7 day_of date False",
        "10 line long False",
    ] {
        assert!(schema.contains(part), "{part} in {schema}");
    }
    let snaps = canon(&["iceberg-snapshots", &source]);
    assert_eq!(snaps, vec!["append - 5000 0"]);
    // the data files are under the warehouse, as Java's JdbcCatalog lays them out
    assert!(dir.path().join("wh/retail/pos_lines/data").is_dir());
}

/// `PARTITIONED BY (day_of)`: an identity-partitioned table whose data files sit under
/// `data/day_of=…/`, one partition a day, holding the JSON sink's rows.
#[test]
fn partitioned_by_a_date_column_writes_an_identity_partitioned_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = common::events(dir.path(), 3_000, false);
    let d = |n: &str| dir.path().join(n).display().to_string();
    let script = format!(
        "CREATE TABLE events ({COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');
CREATE TABLE j ({OUT_COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{j}', 'format' = 'json');
CREATE TABLE ice ({OUT_COLUMNS}) PARTITIONED BY (day_of) WITH ('connector' = 'iceberg', 'catalog-name' = 'lake',
  'catalog-type' = 'hadoop', 'warehouse' = '{wh}');
EXECUTE STATEMENT SET BEGIN
INSERT INTO j {SELECT};
INSERT INTO ice {SELECT};
END;",
        input = input.display(),
        j = d("j"),
        wh = d("wh"),
    );
    run(&script, dir.path());
    let want = canon(&["json", &d("j"), KINDS]);
    let table = dir.path().join("wh/default_database/ice");
    let source = format!("hadoop:{}", table.display());
    let got = canon(&["iceberg", &source]);
    assert_eq!(got.len(), want.len());
    assert!(
        got == want,
        "the partitioned table's rows differ from the JSON sink's"
    );
    let schema = canon(&["iceberg-schema", &source]).join("\n");
    assert!(
        schema.contains("partition [('day_of', 'identity')]"),
        "{schema}"
    );
    let days: std::collections::BTreeSet<String> = want
        .iter()
        .filter_map(|r| r.split('|').nth(6).map(str::to_owned))
        .collect();
    let dirs: std::collections::BTreeSet<String> = std::fs::read_dir(table.join("data"))
        .expect("data dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let expected: std::collections::BTreeSet<String> =
        days.iter().map(|d| format!("day_of={d}")).collect();
    assert_eq!(dirs, expected);
}

/// Flink's hadoop catalog: the warehouse directory holds `vN.metadata.json` and
/// `version-hint.text`; a second run appends a second snapshot.
#[test]
fn a_hadoop_catalog_table_takes_a_snapshot_per_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = common::events(dir.path(), 2_000, false);
    let d = |n: &str| dir.path().join(n).display().to_string();
    let script = format!(
        "CREATE TABLE events ({COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');
CREATE TABLE j ({OUT_COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{j}', 'format' = 'json');
CREATE TABLE ice ({OUT_COLUMNS}) WITH ('connector' = 'iceberg', 'catalog-name' = 'hadoop_catalog',
  'catalog-type' = 'hadoop', 'warehouse' = '{wh}', 'catalog-database' = 'retail');
EXECUTE STATEMENT SET BEGIN
INSERT INTO j {SELECT};
INSERT INTO ice {SELECT};
END;",
        input = input.display(),
        j = d("j"),
        wh = d("wh"),
    );
    run(&script, dir.path());
    let table = dir.path().join("wh/retail/ice");
    let hint = std::fs::read_to_string(table.join("metadata/version-hint.text")).expect("hint");
    assert_eq!(hint.trim(), "2");
    std::fs::remove_dir_all(dir.path().join("j")).expect("rm");
    run(&script, dir.path());
    let want = canon(&["json", &d("j"), KINDS]);
    let source = format!("hadoop:{}", table.display());
    let got = canon(&["iceberg", &source]);
    let mut twice: Vec<String> = want.iter().chain(&want).cloned().collect();
    twice.sort();
    assert!(got == twice, "two runs' rows: {} rows", got.len());
    assert_eq!(
        canon(&["iceberg-snapshots", &source]),
        vec!["append - 2000 0", "append - 2000 0"]
    );
    assert!(table.join("metadata/v3.metadata.json").exists());
}

/// A paced day of sales with checkpoints every 200 ms into two tables of one SQLite catalog:
/// every POS line (append) and revenue per store (a PRIMARY KEY: updates as equality deletes;
/// partitioned by store).
/// The first run aborts right after a checkpoint, before its commit; the second is SIGKILLed
/// mid-run; the third runs to the end. The lines are exactly a fault-free run's, each snapshot
/// is one checkpoint's (no checkpoint committed twice), and the per-store table, merged by an
/// independent reader, equals the totals of the lines.
#[test]
fn crashes_and_restarts_leave_exactly_a_fault_free_runs_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("catalog.db");
    let wh = dir.path().join("wh");
    let script = |pacing: &str, checkpoints: bool, ns: &str| {
        let set = if checkpoints {
            format!(
                "SET 'execution.checkpointing.interval' = '200 ms';\nSET 'state.checkpoints.dir' = '{}';\n",
                dir.path().join("chk").display()
            )
        } else {
            String::new()
        };
        let with = format!(
            "'connector' = 'iceberg', 'catalog-name' = 'lake', 'catalog-type' = 'jdbc', 'uri' = 'jdbc:sqlite:{}', 'warehouse' = '{}', 'catalog-database' = '{ns}'",
            db.display(),
            wh.display()
        );
        format!(
            "{set}CREATE TABLE sales (event_time TIMESTAMP(3), store_id INT, sku STRING, qty INT, unit_price DOUBLE,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND)
WITH ('connector' = 'retail', 'stream' = 'pos_sales', 'seed' = '9', 'duration' = '1d', 'pacing' = '{pacing}');
CREATE TABLE lines (event_time TIMESTAMP(3), store_id INT, sku STRING, qty INT) WITH ({with});
CREATE TABLE by_store (store_id INT, n BIGINT, units BIGINT, PRIMARY KEY (store_id) NOT ENFORCED)
PARTITIONED BY (store_id) WITH ({with}, 'write.upsert.enabled' = 'true');
EXECUTE STATEMENT SET BEGIN
INSERT INTO lines SELECT event_time, store_id, sku, qty FROM sales;
INSERT INTO by_store SELECT store_id, COUNT(*), SUM(CAST(qty AS BIGINT)) FROM sales GROUP BY store_id;
END;"
        )
    };
    let tf = |file: &str, text: String| {
        let p = dir.path().join(file);
        std::fs::write(&p, text).expect("write");
        let mut c = Command::new(env!("CARGO_BIN_EXE_tillflow"));
        c.args(["run", "--quiet", "--no-http"]).arg(p);
        c
    };
    let o = tf("reference.sql", script("max", false, "reference"))
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let src = |ns: &str, t: &str| format!("sql:{}:lake:{ns}.{t}", db.display());
    let want = canon(&["iceberg", &src("reference", "lines")]);
    assert!(want.len() > 1000, "{} rows", want.len());

    // 1: abort right after checkpoint 6 is written, before the sinks commit it
    let o = tf("job.sql", script("14400x", true, "job"))
        .env("TILLFLOW_CRASH_AFTER_CHECKPOINT", "6")
        .output()
        .expect("run");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        o.status.signal(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let after_abort = canon(&["iceberg-snapshots", &src("job", "lines")]).len();
    assert!(after_abort >= 3, "{after_abort} snapshots before the abort");
    // 2: killed mid-run
    let mut child = tf("job.sql", script("14400x", true, "job"))
        .spawn()
        .expect("run");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    // 3: to the end
    let o = tf("job.sql", script("14400x", true, "job"))
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let got = canon(&["iceberg", &src("job", "lines")]);
    assert_eq!(got.len(), want.len(), "rows after two crashes");
    assert!(got == want, "the rows differ from a run without faults");
    // one snapshot per committed checkpoint, in order, none twice
    let snaps = canon(&["iceberg-snapshots", &src("job", "lines")]);
    let mut ckpts: Vec<u64> = snaps
        .iter()
        .map(|s| {
            s.split(' ')
                .nth(1)
                .and_then(|c| c.parse().ok())
                .expect("a checkpoint")
        })
        .collect();
    let n = ckpts.len();
    ckpts.dedup();
    assert_eq!(ckpts.len(), n, "a checkpoint committed twice: {snaps:?}");
    assert!(n > after_abort, "{snaps:?}");
    // revenue per store: the merged upsert table equals the totals of the lines
    let mut totals: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for l in &want {
        let f: Vec<&str> = l.split('|').collect();
        let e = totals.entry(f[1].to_owned()).or_default();
        e.0 += 1;
        e.1 += f[3].parse::<u64>().expect("qty");
    }
    let mut expected: Vec<String> = totals
        .iter()
        .map(|(s, (n, u))| format!("{s}|{n}|{u}"))
        .collect();
    expected.sort();
    let by_store = canon(&["iceberg", &src("job", "by_store")]);
    assert_eq!(by_store, expected);
    let store_snaps = canon(&["iceberg-snapshots", &src("job", "by_store")]);
    assert!(
        store_snaps
            .iter()
            .filter(|s| s.starts_with("overwrite"))
            .count()
            > 1,
        "updates across commits: {store_snaps:?}"
    );
}

/// A JDBC catalog over PostgreSQL: the table's row in `iceberg_tables` names its current
/// metadata file, which pyiceberg reads; a password never shows in an error.
#[test]
fn a_postgresql_jdbc_catalog_points_at_the_current_metadata() {
    let pg = common::Pg::start("");
    let dir = tempfile::tempdir().expect("tempdir");
    let input = common::events(dir.path(), 1_000, false);
    let d = |n: &str| dir.path().join(n).display().to_string();
    let script = |password: &str| {
        format!(
            "CREATE TABLE events ({COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');
CREATE TABLE j ({OUT_COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{j}', 'format' = 'json');
CREATE TABLE ice ({OUT_COLUMNS}) WITH ('connector' = 'iceberg', 'catalog-name' = 'pg_lake',
  'catalog-impl' = 'org.apache.iceberg.jdbc.JdbcCatalog', 'uri' = 'jdbc:postgresql://127.0.0.1:{port}/postgres',
  'jdbc.user' = '{user}', 'jdbc.password' = '{password}', 'warehouse' = '{wh}');
EXECUTE STATEMENT SET BEGIN
INSERT INTO j {SELECT};
INSERT INTO ice {SELECT};
END;",
            input = input.display(),
            j = d("j"),
            wh = d("wh"),
            port = pg.port,
            user = common::PG_USER,
        )
    };
    let (ok, err) = tillflow(&script("not-the-password-77"), dir.path());
    assert!(!ok);
    assert!(err.contains("PostgreSQL"), "{err}");
    assert!(!err.contains("not-the-password-77"), "{err}");
    run(&script(common::PG_PASSWORD), dir.path());
    let mut c = pg.client();
    let row = c
        .query_one(
            "SELECT metadata_location, previous_metadata_location FROM iceberg_tables WHERE catalog_name = 'pg_lake' AND table_namespace = 'default_database' AND table_name = 'ice'",
            &[],
        )
        .expect("the table's row");
    let current: String = row.get(0);
    let previous: Option<String> = row.get(1);
    assert!(
        current.contains("/wh/default_database/ice/metadata/00001-"),
        "{current}"
    );
    assert!(previous.is_some_and(|p| p.contains("/metadata/00000-")));
    let want = canon(&["json", &d("j"), KINDS]);
    let got = canon(&["iceberg", &current]);
    assert_eq!(got.len(), 1_000);
    assert!(got == want);
}

/// Options Flink's Iceberg connector has but tillflow cannot honour are refused by name.
#[test]
fn catalogs_and_formats_tillflow_lacks_are_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (with, says) in [
        ("'catalog-name' = 'c'", "Flink's default, 'hive', needs a Hive metastore"),
        ("'catalog-name' = 'c', 'catalog-type' = 'rest', 'uri' = 'http://h'", "'rest' needs a catalog server"),
        ("'catalog-name' = 'c', 'catalog-type' = 'hadoop', 'warehouse' = '/tmp/w', 'write.format.default' = 'orc'", "'orc' are not supported"),
        ("'catalog-name' = 'c', 'catalog-type' = 'hadoop', 'warehouse' = '/tmp/w', 'write.distribution-mode' = 'hash'", "write.distribution-mode"),
    ] {
        let script = format!(
            "CREATE TABLE t (a INT) WITH ('connector' = 'iceberg', {with});\nINSERT INTO t SELECT 1;"
        );
        let (ok, err) = tillflow(&script, dir.path());
        assert!(!ok, "{with}");
        assert!(err.contains(says), "{with}: {err}");
    }
}

/// The README's Iceberg example runs as written: each store's two closed days in the append
/// table, and the upsert table of running figures, merged, ends on the same units and revenue.
#[test]
fn the_iceberg_example_lands_daily_revenue_that_the_running_table_agrees_with() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["run", "--quiet", "--no-http"])
        .arg(common::root().join("examples/retail/lake_store_revenue_iceberg.sql"))
        .current_dir(dir.path())
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let db = dir.path().join("out/lake/catalog.db");
    let src = |t: &str| format!("sql:{}:lake:retail.{t}", db.display());
    let daily = canon(&["iceberg", &src("store_daily_revenue")]);
    assert!(daily.len() >= 20, "{} rows", daily.len());
    let days: std::collections::BTreeSet<&str> =
        daily.iter().filter_map(|r| r.split('|').next()).collect();
    assert_eq!(days.len(), 2, "{days:?}");
    // day|store|receipts|units|revenue  vs  store|day|units|revenue
    let mut a: Vec<String> = daily
        .iter()
        .map(|r| {
            let f: Vec<&str> = r.split('|').collect();
            format!("{}|{}|{}|{}", f[1], f[0], f[3], f[4])
        })
        .collect();
    a.sort();
    let running = canon(&["iceberg", &src("store_revenue_today")]);
    assert_eq!(running, a);
}

/// Nested columns (ROW, ARRAY, MAP, an ARRAY of ROWs) become Iceberg struct, list and map
/// fields with their own field ids, and pyiceberg reads the JSON sink's values.
#[test]
fn nested_columns_become_iceberg_structs_lists_and_maps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = common::nested_events(dir.path(), 300);
    let cols = common::NESTED_COLUMNS;
    let d = |n: &str| dir.path().join(n).display().to_string();
    run(
        &format!(
            "CREATE TABLE src ({cols}) WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');
CREATE TABLE j ({cols}) WITH ('connector' = 'filesystem', 'path' = '{j}', 'format' = 'json');
CREATE TABLE ice ({cols}) WITH ('connector' = 'iceberg', 'catalog-name' = 'lake', 'catalog-type' = 'hadoop', 'warehouse' = '{wh}');
EXECUTE STATEMENT SET BEGIN
INSERT INTO j SELECT * FROM src;
INSERT INTO ice SELECT * FROM src;
END;",
            input = input.display(),
            j = d("j"),
            wh = d("wh"),
        ),
        dir.path(),
    );
    let want = canon(&["json", &d("j")]);
    let source = format!(
        "hadoop:{}",
        dir.path().join("wh/default_database/ice").display()
    );
    let got = canon(&["iceberg", &source]);
    assert_eq!(got.len(), 300);
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
    let schema = canon(&["iceberg-schema", &source]).join("\n");
    for part in [
        "2 item struct<6: sku: optional string, 7: qty: optional int> False",
        "3 tags list<string> False",
        "4 attrs map<string, int> False",
    ] {
        assert!(schema.contains(part), "{part} in {schema}");
    }
}

/// An upsert-kafka topic read into a table with a PRIMARY KEY: a store's count replaces its
/// row, and a tombstone (its key alone: the NOT NULL count empty) removes it — equality-delete
/// files hold the key columns only. The table ends as the changelog's final state.
#[test]
fn an_upsert_kafka_changelog_with_tombstones_lands_as_equality_deletes() {
    let b = common::Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    b.create_topic("top_stores", 1);
    let input = common::events(d, 1500, false);
    let upsert = format!(
        "'connector' = 'upsert-kafka', 'topic' = 'top_stores', 'properties.bootstrap.servers' = '{}', 'key.format' = 'json', 'value.format' = 'json'",
        b.addr()
    );
    // line counts per store, kept only while not a multiple of 7: a store leaves the table
    // (a tombstone) and comes back
    let top = "SELECT store_id, cnt FROM (SELECT store_id, COUNT(*) AS cnt FROM events GROUP BY store_id) WHERE MOD(cnt, 7) <> 0";
    run(
        &format!(
            "CREATE TABLE events ({COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
CREATE TABLE top_stores (store_id INT, cnt BIGINT, PRIMARY KEY (store_id) NOT ENFORCED)
WITH ({upsert}, 'properties.linger.ms' = '0', 'properties.batch.num.messages' = '1');
INSERT INTO top_stores {top};",
            input.display(),
        ),
        d,
    );
    // the topic, read from the start to its end, into Iceberg
    run(
        &format!(
            "CREATE TABLE top_stores (store_id INT, cnt BIGINT NOT NULL, PRIMARY KEY (store_id) NOT ENFORCED)
WITH ({upsert}, 'scan.bounded.mode' = 'latest-offset');
CREATE TABLE ice (store_id INT, cnt BIGINT NOT NULL, PRIMARY KEY (store_id) NOT ENFORCED)
WITH ('connector' = 'iceberg', 'catalog-name' = 'lake', 'catalog-type' = 'hadoop', 'warehouse' = '{wh}');
INSERT INTO ice SELECT * FROM top_stores;",
            wh = d.join("wh").display(),
        ),
        d,
    );
    // the final counts, from the file
    run(
        &format!(
            "CREATE TABLE events ({COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
CREATE TABLE o (store_id INT, cnt BIGINT, PRIMARY KEY (store_id) NOT ENFORCED)
WITH ('connector' = 'sqlite', 'path' = '{}', 'table-name' = 'o');
INSERT INTO o {top};",
            input.display(),
            d.join("want.db").display()
        ),
        d,
    );
    let db = rusqlite::Connection::open(d.join("want.db")).expect("open");
    let mut want: Vec<String> = db
        .prepare("SELECT store_id, cnt FROM o")
        .expect("prepare")
        .query_map([], |r| {
            Ok(format!("{}|{}", r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
        })
        .expect("query")
        .map(|r| r.expect("row"))
        .collect();
    want.sort();
    let source = format!("hadoop:{}", d.join("wh/default_database/ice").display());
    let got = canon(&["iceberg", &source]);
    assert_eq!(got, want);
    // the changelog did hold tombstones, and the table is not empty
    let msgs = common::read_topic(&b, "top_stores", 1);
    assert!(
        msgs.iter().any(|(_, v)| v.is_none()),
        "no tombstone in the topic"
    );
    assert!(!got.is_empty());
}
