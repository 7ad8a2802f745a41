//! The HTTP API and Prometheus metrics of a running job, over real HTTP.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// GET `path`; (status code, body). `None` while nothing listens yet.
fn get(port: u16, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    get_as(port, "localhost", path, token)
}

/// GET `path` naming `host` in the `Host` header.
fn get_as(port: u16, host: &str, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{auth}\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((code, body))
}

/// A generated-sales job paced to run for a while, serving on `port`.
fn start_job(dir: &std::path::Path, port: u16, extra: &[&str]) -> Child {
    let script = dir.join("sales.sql");
    std::fs::write(
        &script,
        "CREATE TABLE s (event_time TIMESTAMP(3), store_id INT, qty INT, unit_price DOUBLE,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND)
WITH ('connector' = 'retail', 'stream' = 'pos_sales', 'duration' = '1d', 'pacing' = '3000x');
CREATE TABLE o (window_start TIMESTAMP(3), store_id INT, revenue DOUBLE) WITH ('connector' = 'blackhole');
INSERT INTO o SELECT window_start, store_id, SUM(qty * unit_price)
FROM TABLE(TUMBLE(TABLE s, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, store_id;",
    )
    .expect("script");
    Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .arg("run")
        .arg(&script)
        .current_dir(script.parent().unwrap_or(std::path::Path::new(".")))
        .arg("--http")
        .arg(format!("127.0.0.1:{port}"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tillflow")
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_api_and_metrics_show_a_running_job() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut job = start_job(dir.path(), port, &[]);
    let records = |body: &str| -> Option<u64> {
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        v.as_array()?.first()?["records"].as_u64()
    };
    let first = wait_for("a job with records", || {
        let (code, body) = get(port, "/api/jobs", None)?;
        assert_eq!(code, 200, "{body}");
        records(&body).filter(|&n| n > 0)
    });
    let later = wait_for("more records", || {
        records(&get(port, "/api/jobs", None)?.1).filter(|&n| n > first)
    });
    assert!(later > first);
    let (code, body) = get(port, "/api/jobs/sales_sql", None).expect("job");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["state"], "running");
    let nodes = v["nodes"].as_array().expect("nodes");
    let kinds: Vec<&str> = nodes.iter().filter_map(|n| n["kind"].as_str()).collect();
    assert!(
        kinds.contains(&"source") && kinds.contains(&"operator") && kinds.contains(&"sink"),
        "{kinds:?}"
    );
    assert!(
        nodes.iter().any(
            |n| n["name"].as_str().unwrap_or("").contains("WindowAggregate")
                || n["name"].as_str().unwrap_or("").contains("Window")
        ),
        "{body}"
    );
    assert!(
        nodes
            .iter()
            .any(|n| n["watermark"].is_string() && n["watermark_lag_ms"].is_i64()),
        "the watermark assigner and the window report their watermark: {body}"
    );
    let (code, metrics) = get(port, "/metrics", None).expect("metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("tillflow_operator_watermark_lag_milliseconds{job=\"sales_sql\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE tillflow_operator_rows_in_total counter"),
        "{metrics}"
    );
    let source_rows: u64 = metrics
        .lines()
        .find(|l| {
            l.starts_with("tillflow_operator_rows_in_total{job=\"sales_sql\"")
                && l.contains("kind=\"source\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("source rows in the metrics");
    assert!(source_rows >= later, "{source_rows} < {later}");
    // the latest rows of the result table: windows of revenue per store
    let rows = wait_for("result rows", || {
        let (code, body) = get(port, "/api/jobs/sales_sql/tables", None)?;
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let t = v.as_array()?.first()?.clone();
        (t["rows"].as_array()?.len() > 3).then_some(t)
    });
    assert_eq!(rows["table"], "o");
    let r = &rows["rows"][0];
    assert!(
        r["window_start"].is_string() && r["store_id"].is_i64() && r["revenue"].is_f64(),
        "{r}"
    );
    assert!(rows["rows"].as_array().map_or(0, Vec::len) <= 100);
    // the live stream: an event with the jobs each time they change
    let mut sse = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    sse.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(sse, "GET /api/events HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("request");
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    let started = Instant::now();
    while got.matches("event: jobs").count() < 2 && started.elapsed() < Duration::from_secs(10) {
        match sse.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    assert!(got.contains("text/event-stream"), "{got}");
    assert!(got.matches("event: jobs").count() >= 2, "{got}");
    let data = got
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("a data line");
    let v: serde_json::Value = serde_json::from_str(data).expect("json");
    assert_eq!(v[0]["id"], "sales_sql");
    // the dashboard page and its embedded assets
    let (code, page) = get(port, "/", None).expect("page");
    assert_eq!(code, 200);
    assert!(
        page.contains("assets/vendor/uplot/uPlot.iife.min.js") && page.contains("revenue-chart"),
        "{page}"
    );
    for asset in [
        "dashboard.js",
        "dashboard.css",
        "vendor/uplot/uPlot.iife.min.js",
        "vendor/uplot/LICENSE",
    ] {
        let (code, body) = get(port, &format!("/assets/{asset}"), None).expect("asset");
        assert_eq!(code, 200, "{asset}");
        assert!(body.len() > 100, "{asset}");
    }
    let (code, _) = get(port, "/api/jobs/nope", None).expect("404");
    assert_eq!(code, 404);
    let _ = job.kill();
    let _ = job.wait();
}

/// DNS rebinding: a page whose name now resolves to 127.0.0.1 is same-origin to the browser,
/// but its requests name its own host, which the server refuses without a token; loopback
/// names and the hosts allowed with `--http-allowed-hosts` are answered.
/// A job on the on-disk state backend shows the store in its status and metrics: the memory
/// budget left for entries once the store's block cache (a quarter) and write buffers (five
/// sixteenths) are taken from `fixed-per-slot`.
#[test]
fn the_on_disk_state_backend_shows_in_the_status_and_the_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut job = start_job(
        dir.path(),
        port,
        &[
            "--parallelism",
            "1",
            "--set",
            "state.backend.type=disk",
            "--set",
            "state.backend.rocksdb.memory.fixed-per-slot=64mb",
        ],
    );
    let budget = (64 << 20) - (16 << 20) - 5 * (4 << 20);
    let metrics = wait_for("the state store's metrics", || {
        let (_, body) = get(port, "/metrics", None)?;
        body.contains("tillflow_state_memory_budget_bytes{")
            .then_some(body)
    });
    assert!(
        metrics.contains(&format!(
            "tillflow_state_memory_budget_bytes{{job=\"sales_sql\"}} {budget}\n"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE tillflow_state_entries_spilled_total counter"),
        "{metrics}"
    );
    let (_, status) = get(port, "/api/jobs/sales_sql", None).expect("status");
    let v: serde_json::Value = serde_json::from_str(&status).expect("json");
    assert_eq!(v["state_store"]["memory_budget"], budget, "{status}");
    // each operator's keyed state in bytes, beside its keys
    wait_for("an operator's state size", || {
        let (_, body) = get(port, "/metrics", None)?;
        body.lines()
            .filter(|l| l.starts_with("tillflow_operator_state_bytes{"))
            .any(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) > Some(0.0))
            .then_some(())
    });
    let _ = job.kill();
    let _ = job.wait();
}

#[test]
fn a_foreign_host_header_is_refused_without_a_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut child = start_job(dir.path(), port, &["--http-allowed-hosts", "dash.example"]);
    let (code, _) = wait_for("the server", || get(port, "/api/jobs", None));
    assert_eq!(code, 200);
    for host in [
        "evil.example",
        "evil.example:80",
        "127.0.0.1.evil.example",
        "localhost.evil.example",
    ] {
        let (code, body) = get_as(port, host, "/api/jobs", None).expect("answer");
        assert_eq!(code, 403, "{host}: {body}");
        assert!(body.contains("--http-allowed-hosts"), "{body}");
        let (code, _) = get_as(port, host, "/metrics", None).expect("answer");
        assert_eq!(code, 403, "{host}");
    }
    for host in [
        "localhost",
        &format!("127.0.0.1:{port}"),
        &format!("[::1]:{port}"),
        "app.localhost",
        "DASH.example:8080",
    ] {
        let (code, body) = get_as(port, host, "/api/jobs", None).expect("answer");
        assert_eq!(code, 200, "{host}: {body}");
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_token_is_required_when_given_and_beyond_loopback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut job = start_job(dir.path(), port, &["--auth-token", "t0ken-9"]);
    let (code, _) = wait_for("the server", || get(port, "/api/jobs", None));
    assert_eq!(code, 401);
    let (code, _) = get(port, "/metrics", Some("wrong")).expect("metrics");
    assert_eq!(code, 401);
    let (code, _) = get(port, "/api/jobs", Some("t0ken-9")).expect("jobs");
    assert_eq!(code, 200);
    // a browser opening the page passes the token in the URL; the page's files carry it on
    let (code, page) = get(port, "/?token=t0ken-9", None).expect("page");
    assert_eq!(code, 200);
    assert!(page.contains("dashboard.js?token=t0ken-9"), "{page}");
    let (code, _) = get(port, "/assets/dashboard.js?token=t0ken-9", None).expect("asset");
    assert_eq!(code, 200);
    let (code, _) = get(port, "/assets/dashboard.js", None).expect("asset");
    assert_eq!(code, 401);
    // stopping a job needs the token too
    let stop = |token: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tillflow"));
        c.args(["stop", "sales_sql", "--http", &format!("127.0.0.1:{port}")])
            .env_remove("TILLFLOW_AUTH_TOKEN");
        if let Some(t) = token {
            c.args(["--auth-token", t]);
        }
        c.output().expect("tillflow stop")
    };
    let o = stop(None);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("wants a token"), "{err}");
    assert!(
        job.try_wait().expect("wait").is_none(),
        "stopped without the token"
    );
    let o = stop(Some("wrong"));
    assert!(!o.status.success());
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("wrong"),
        "the token was printed"
    );
    // a request a web page could send (no stop header) is refused, even with the token
    let raw = {
        let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        write!(
            c,
            "POST /api/jobs/sales_sql/stop HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Bearer t0ken-9\r\nContent-Length: 0\r\n\r\n"
        )
        .expect("request");
        let mut text = String::new();
        c.read_to_string(&mut text).expect("response");
        text
    };
    assert!(raw.starts_with("HTTP/1.1 403"), "{raw}");
    assert!(
        job.try_wait().expect("wait").is_none(),
        "stopped without the header"
    );
    let o = stop(Some("t0ken-9"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let status = job.wait().expect("wait");
    assert!(status.success(), "the stopped job exits cleanly");

    // 0.0.0.0 without a token: refused at start
    let o = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args(["demo", "--quiet", "--duration", "1h", "--http"])
        .arg(format!("0.0.0.0:{}", free_port()))
        .env_remove("TILLFLOW_AUTH_TOKEN")
        .current_dir(dir.path())
        .output()
        .expect("demo");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("refusing to serve on 0.0.0.0") && err.contains("--auth-token"),
        "{err}"
    );
}

/// Drives the dashboard at `url` in headless Chromium through playwright-core
/// (tests/browser/dashboard.cjs) and returns what the page showed.
fn drive_browser(url: &str, shots: &std::path::Path) -> serde_json::Value {
    let node_path = std::env::var("NODE_PATH").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/tillflow-tools/node/node_modules")
    });
    let o = Command::new("node")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/browser/dashboard.cjs"
        ))
        .arg(url)
        .arg(shots)
        .env("NODE_PATH", &node_path)
        .output()
        .expect("node (scripts/setup.sh installs Node.js, playwright-core and Chromium)");
    let out = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| {
        panic!(
            "the browser driver's report ({e}): {out}\n{}\n(NODE_PATH={node_path}; run scripts/setup.sh test)",
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

/// The dashboard a store manager and an on-call engineer read, in a real browser over the
/// running demo: it agrees with itself and with the API, every figure names its period, empty
/// panels say why, the operations view measures lag against the stream's own time.
#[test]
fn the_dashboard_shows_the_demo_in_a_real_browser() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .args([
            "demo",
            "--quiet",
            "--duration",
            "7d",
            "--speed",
            "10000",
            "--http",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--db")
        .arg(dir.path().join("demo.db"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("demo");
    // most of a simulated day in: hours closed, sessions ended, promotions measured
    wait_for("a day of the demo", || {
        let (_, body) = get(port, "/api/jobs/retail-demo", None)?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (v["stream_time"].as_str()? > "2024-03-01 20:00").then_some(())
    });
    // screenshots are kept as test artifacts, for people to look at
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let seen = drive_browser(&format!("http://127.0.0.1:{port}/"), shots);
    let (_, body) = get(port, "/api/jobs/retail-demo", None).expect("the job");
    let _ = demo.kill();
    let _ = demo.wait();
    eprintln!("the dashboard showed: {seen}");
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    // the revenue chart: hourly lines for the top 5 stores, gaining later hours as the demo
    // runs, its legend naming each store with its revenue in the period
    assert!(seen["points"].as_u64() > Some(12), "{seen}");
    assert_eq!(seen["canvas"], 1, "{seen}");
    assert_eq!(seen["series"], 5, "{seen}");
    assert!(seen["last2"].as_f64() > seen["last"].as_f64(), "{seen}");
    let legend = seen["legend"].as_str().unwrap_or("");
    assert!(
        legend.contains("in the period") && !legend.contains("--"),
        "{seen}"
    );
    // the units forecasts: hours of units with the three forecasts, their errors named
    assert!(seen["forecast_points"].as_u64() > Some(6), "{seen}");
    let legend = seen["forecast_legend"].as_str().unwrap_or("");
    assert!(
        legend.contains("online model")
            && legend.contains("ONNX model")
            && legend.contains("Holt-Winters"),
        "{seen}"
    );
    // every panel names its period or moment (a date), and an empty one says why
    let panels = seen["panels"].as_array().expect("panels");
    assert!(panels.len() >= 8, "{seen}");
    for p in panels {
        let title = p["title"].as_str().unwrap_or("");
        let why = p["why"].as_str().unwrap_or("");
        let empty = p["rows"].as_u64() == Some(0) && p["chart"] == false;
        assert!(
            title.contains("2024-") || (empty && why.contains("2024-")),
            "a panel without its period: {p}"
        );
        assert!(
            !empty || p["why"].as_str().is_some_and(|w| w.len() > 20),
            "an empty panel that does not say why: {p}"
        );
    }
    assert_eq!(seen["overflowing"], serde_json::json!([]), "{seen}");
    // stock: the panel lists the API's stock state as it is (out, or under the lead time of
    // cover), and the alerts raised beside it come from that state (under 6 h of cover)
    let stock = &seen["stock"];
    assert_eq!(stock["unexplained"], serde_json::json!([]), "{seen}");
    assert_eq!(
        stock["shown"].as_i64(),
        stock["page"].as_i64().map(|n| n.min(50)),
        "{seen}"
    );
    assert!(
        stock["kinds"]
            .as_array()
            .expect("kinds")
            .iter()
            .all(|k| k == "out" || k == "low"),
        "{seen}"
    );
    for h in seen["stockoutHours"].as_array().expect("hours") {
        let h: f64 = h.as_str().and_then(|h| h.parse().ok()).expect("hours left");
        assert!(h < 6.0, "{seen}");
    }
    // the funnel per channel converts as e-commerce does; promotions say when they cannot tell
    let funnel = seen["funnel"].to_string();
    assert!(funnel.contains("web") && funnel.contains("app"), "{seen}");
    for c in seen["conversion"].as_array().expect("conversion") {
        let pct: f64 = c
            .as_str()
            .and_then(|c| c.trim_end_matches(" %").parse().ok())
            .expect("a conversion");
        assert!((1.0..=6.0).contains(&pct), "{seen}");
    }
    for u in seen["uplift"].as_array().expect("uplift") {
        assert!(
            !u.as_str().unwrap_or("").is_empty(),
            "a blank uplift: {seen}"
        );
    }
    assert!(seen["topSkus"].as_u64() > Some(0), "{seen}");
    // a store filter and the whole run
    let store = seen["store"].as_str().expect("a store");
    assert!(
        seen["storeTitle"]
            .as_str()
            .is_some_and(|t| t.contains(&format!("store {store}"))),
        "{seen}"
    );
    assert!(
        seen["wholeRun"]
            .as_str()
            .is_some_and(|t| t.starts_with("2024-03-01 0")),
        "{seen}"
    );
    // the tabs switch views
    assert_eq!(seen["opsHiddenBefore"], true, "{seen}");
    assert_eq!(seen["retailHiddenAfter"], true, "{seen}");
    assert_eq!(seen["hash"], "#ops", "{seen}");
    // the graph: every node of the API in a box (chains of operators share one), fitted to the
    // page, every sink named by its table
    let job: serde_json::Value = serde_json::from_str(&body).expect("json");
    let nodes = job["nodes"].as_array().expect("nodes");
    assert_eq!(
        seen["graphNodes"].as_u64(),
        Some(nodes.len() as u64),
        "{seen}"
    );
    assert_eq!(
        seen["graphMembers"].as_u64(),
        Some(nodes.len() as u64),
        "{seen}"
    );
    assert!(
        seen["graphBoxes"].as_u64() < Some(nodes.len() as u64 * 2 / 3),
        "operators chained: {seen}"
    );
    assert_eq!(seen["graphEdges"], seen["graphEdgesSaid"], "{seen}");
    assert_eq!(seen["fits"], true, "{seen}");
    let sinks: Vec<String> = nodes
        .iter()
        .filter(|n| n["kind"] == "sink")
        .filter_map(|n| {
            n["name"]
                .as_str()?
                .split(" table ")
                .nth(1)?
                .split(' ')
                .next()
                .map(str::to_owned)
        })
        .collect();
    assert!(sinks.len() >= 10, "the demo's result tables: {body}");
    let sink_names = seen["sinkNames"].to_string();
    for t in &sinks {
        assert!(sink_names.contains(t.as_str()), "sink {t} unnamed: {seen}");
    }
    // labels are the plan's operator names, not debug text
    for name in seen["boxNames"].as_array().expect("names") {
        let name = name.as_str().unwrap_or("");
        assert!(
            !name.contains('[') && !name.contains("Box"),
            "{name}: {seen}"
        );
    }
    let rates = seen["rates"].as_array().expect("rates");
    assert!(
        rates.iter().filter(|r| r.as_f64() > Some(0.0)).count() > rates.len() / 3,
        "{seen}"
    );
    // lag: against the stream's own time (seconds to hours) and, apart, the wall clock (the
    // 2024 data is years behind it); late and bad records in columns of their own
    let figures = seen["figures"].to_string();
    assert!(figures.contains("wm −"), "{seen}");
    let stream_lags: Vec<&str> = seen["streamLags"]
        .as_array()
        .expect("lags")
        .iter()
        .filter_map(|l| l.as_str())
        .filter(|l| !l.is_empty())
        .collect();
    assert!(!stream_lags.is_empty(), "{seen}");
    assert!(stream_lags.iter().all(|l| !l.ends_with(" d")), "{seen}");
    assert!(
        seen["wallLags"]
            .as_array()
            .expect("lags")
            .iter()
            .any(|l| l.as_str().is_some_and(|l| l.ends_with(" d"))),
        "{seen}"
    );
    let columns = seen["columns"].to_string();
    assert!(
        columns.contains("\"late\"") && columns.contains("\"bad\""),
        "{seen}"
    );
    assert!(
        seen["header"]
            .as_str()
            .is_some_and(|h| h.contains("data at 2024-03-")),
        "{seen}"
    );
    // each operator's keyed state, in bytes beside its keys
    let sizes: Vec<f64> = seen["stateSizes"]
        .as_array()
        .expect("state sizes")
        .iter()
        .filter_map(|c| {
            let c = c.as_str()?;
            c.strip_suffix(" KiB")
                .or_else(|| c.strip_suffix(" MiB"))?
                .parse()
                .ok()
        })
        .collect();
    assert!(sizes.iter().any(|s| *s > 0.0), "{seen}");
    // the online model's node: rows learned and its error
    assert!(
        seen["models"].as_array().is_some_and(|m| m
            .iter()
            .any(|t| t.as_str().is_some_and(|t| t.contains("MAE")))),
        "{seen}"
    );
    for shot in [
        "dashboard-retail.png",
        "dashboard-store.png",
        "dashboard-ops.png",
    ] {
        assert!(
            std::fs::metadata(shots.join(shot)).map_or(0, |m| m.len()) > 10_000,
            "no screenshot {shot}"
        );
    }
}

/// Runs `script` on two workers, serving the API after it ends, until job `id` has finished:
/// the port, the process (to kill) and the job's last status.
fn run_to_the_end(script: &std::path::Path, id: &str) -> (u16, Child, serde_json::Value) {
    let port = free_port();
    let job = Command::new(env!("CARGO_BIN_EXE_tillflow"))
        .arg("run")
        .arg(script)
        .args(["--quiet", "--keep-serving", "--parallelism", "2", "--http"])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run tillflow");
    let status = wait_for("the job to finish", || {
        let (_, body) = get(port, &format!("/api/jobs/{id}"), None)?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (v["state"] == "finished").then_some(v)
    });
    (port, job, status)
}

/// The API's figures for a finished bounded job equal what its sinks hold: the rows of each result
/// table, the sinks' row counts, the source's record count.
#[test]
fn the_api_shows_the_result_tables_of_a_finished_job() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("out.db");
    let script = dir.path().join("bounded.sql");
    std::fs::write(
        &script,
        format!(
            "CREATE TABLE s (event_time TIMESTAMP(3), store_id INT, qty INT, unit_price DOUBLE,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND)
WITH ('connector' = 'retail', 'stream' = 'pos_sales', 'start' = '2024-03-01 08:00:00', 'duration' = '3h',
  'stores' = '4', 'seed' = '11');
CREATE TABLE per_minute (window_start TIMESTAMP(3), store_id INT, revenue DOUBLE)
WITH ('connector' = 'sqlite', 'path' = '{db}', 'table-name' = 'per_minute');
CREATE TABLE totals (store_id INT, units BIGINT, lines BIGINT, PRIMARY KEY (store_id) NOT ENFORCED)
WITH ('connector' = 'sqlite', 'path' = '{db}', 'table-name' = 'totals');
INSERT INTO per_minute SELECT window_start, store_id, SUM(qty * unit_price)
FROM TABLE(TUMBLE(TABLE s, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, store_id;
INSERT INTO totals SELECT store_id, SUM(qty), COUNT(*) FROM s GROUP BY store_id;",
            db = db.display()
        ),
    )
    .expect("script");
    let (port, mut job, status) = run_to_the_end(&script, "bounded_sql");
    let (code, tables) = get(port, "/api/jobs/bounded_sql/tables", None).expect("tables");
    let (_, metrics) = get(port, "/metrics", None).expect("metrics");
    // the cursor of the latest change, and what a client following the changes is given
    let seq = serde_json::from_str::<serde_json::Value>(&tables)
        .ok()
        .and_then(|t| {
            t.as_array()
                .map(|ts| ts.iter().filter_map(|t| t["seq"].as_u64()).max())
        })
        .flatten()
        .unwrap_or(0);
    let since = |n: u64| {
        let (_, body) = get(
            port,
            &format!("/api/jobs/bounded_sql/tables?since={n}"),
            None,
        )
        .expect("tables since");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        v.as_array()
            .map(|ts| {
                ts.iter()
                    .map(|t| t["rows"].as_array().map_or(0, Vec::len))
                    .sum::<usize>()
            })
            .unwrap_or(usize::MAX)
    };
    let (rows_after, rows_last) = (since(seq), since(seq.saturating_sub(1)));
    let (bad_since, _) =
        get(port, "/api/jobs/bounded_sql/tables?since=x", None).expect("bad since");
    // the job has ended, yet the process still serves until told to stop
    assert!(job.try_wait().expect("status").is_none());
    let _ = job.kill();
    let _ = job.wait();
    assert_eq!(code, 200, "{tables}");
    let tables: serde_json::Value = serde_json::from_str(&tables).expect("json");
    let rows_of = |name: &str| -> Vec<serde_json::Value> {
        tables
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["table"] == name))
            .and_then(|t| t["rows"].as_array().cloned())
            .unwrap_or_else(|| panic!("table {name} in {tables}"))
    };
    let conn = rusqlite::Connection::open(&db).expect("result db");
    // append-only: the API's rows are the table's rows, in the order written (up to 20,000)
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM per_minute", [], |r| r.get(0))
        .expect("count");
    assert!(n > 100 && n < 20_000, "{n}");
    let mut st = conn
        .prepare("SELECT window_start, store_id, revenue FROM per_minute ORDER BY rowid")
        .expect("query");
    let want: Vec<(String, i64, f64)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    let got: Vec<(String, i64, f64)> = rows_of("per_minute")
        .iter()
        .map(|r| {
            (
                r["window_start"].as_str().unwrap_or("").to_owned(),
                r["store_id"].as_i64().unwrap_or(-1),
                r["revenue"].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(
            (&g.0[..19], g.1),
            (w.0.get(..19).unwrap_or(&w.0), w.1),
            "{got:?}\n{want:?}"
        );
        assert!((g.2 - w.2).abs() < 1e-9 * w.2.abs().max(1.0), "{g:?} {w:?}");
    }
    // updating with a primary key: the API's rows are the table's rows, one per key
    let latest: std::collections::BTreeMap<i64, (Option<i64>, Option<i64>)> = rows_of("totals")
        .iter()
        .map(|r| {
            (
                r["store_id"].as_i64().expect("store"),
                (r["units"].as_i64(), r["lines"].as_i64()),
            )
        })
        .collect();
    let mut st = conn
        .prepare("SELECT store_id, units, lines FROM totals ORDER BY store_id")
        .expect("query");
    let want: std::collections::BTreeMap<i64, (Option<i64>, Option<i64>)> = st
        .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(want.len(), 4);
    assert_eq!(latest, want);
    assert_eq!(rows_of("totals").len(), 4, "one row per key: {tables}");
    let key = tables
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["table"] == "totals"))
        .map(|t| t["key"].clone());
    assert_eq!(key, Some(serde_json::json!(["store_id"])));
    // a client that has seen everything gets nothing more; one that saw all but the last
    // change gets just that one; a bad cursor is refused
    assert!(seq as i64 >= n, "{seq}");
    assert_eq!(rows_after, 0);
    assert_eq!(rows_last, 1);
    assert_eq!(bad_since, 400);
    // the counters: the source read every line the totals counted; each sink wrote its rows
    let lines: i64 = want.values().filter_map(|v| v.1).sum();
    let nodes = status["nodes"].as_array().expect("nodes");
    let source = nodes
        .iter()
        .find(|n| n["kind"] == "source")
        .expect("source");
    assert_eq!(source["rows_out"].as_i64(), Some(lines), "{status}");
    assert_eq!(status["records"].as_i64(), Some(lines), "{status}");
    let sink_rows = |table: &str| {
        nodes
            .iter()
            .find(|n| n["kind"] == "sink" && n["name"].as_str().unwrap_or("").contains(table))
            .and_then(|n| n["rows_in"].as_u64())
            .unwrap_or_else(|| panic!("sink {table}: {status}"))
    };
    assert_eq!(sink_rows("per_minute") as i64, n, "{status}");
    // the totals sink wrote every change: a row per input line (the +I of a key, then its +U),
    // and the -U of a pair only when a flush fell between it and its +U (then written as a
    // delete, the +U restoring the row) — so from one row per line to two
    let totals = sink_rows("totals") as i64;
    assert!((lines..=2 * lines - 4).contains(&totals), "{status}");
    let in_metrics: Option<i64> = metrics
        .lines()
        .find(|l| {
            l.starts_with("tillflow_operator_rows_in_total{")
                && l.contains("kind=\"sink\"")
                && l.contains("per_minute")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok());
    assert_eq!(in_metrics, Some(n), "{metrics}");
    // run on two workers: the running aggregate shows both, each with its share of the rows
    let agg = nodes
        .iter()
        .find(|n| {
            n["name"]
                .as_str()
                .unwrap_or("")
                .starts_with("GroupAggregate")
        })
        .unwrap_or_else(|| panic!("GroupAggregate: {status}"));
    assert_eq!(agg["parallelism"].as_u64(), Some(2), "{agg}");
    let workers = agg["workers"].as_array().expect("workers");
    assert_eq!(workers.len(), 2, "{agg}");
    let shares: Vec<u64> = workers
        .iter()
        .filter_map(|w| w["rows_in"].as_u64())
        .collect();
    assert_eq!(
        shares.iter().sum::<u64>(),
        agg["rows_in"].as_u64().unwrap_or(0),
        "{agg}"
    );
    assert!(
        shares.iter().all(|r| *r > 0),
        "four stores over two workers: {agg}"
    );
    assert_eq!(agg["rows_in"].as_i64(), Some(lines), "{agg}");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("tillflow_operator_parallelism{")
                && l.contains("GroupAggregate")
                && l.ends_with(" 2")),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .filter(
                |l| l.starts_with("tillflow_worker_rows_in_total{") && l.contains("GroupAggregate")
            )
            .count()
            == 2,
        "{metrics}"
    );
}

/// A model that learns on the stream shows its prequential error on the API and in /metrics:
/// as many rows learned as the model's output has rows, and an error that could only be this
/// small if it learned.
#[test]
fn a_model_learning_on_the_stream_shows_its_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("out.db");
    let script = dir.path().join("model.sql");
    std::fs::write(
        &script,
        format!(
            "CREATE TABLE s (event_time TIMESTAMP(3), store_id INT, qty INT, unit_price DOUBLE,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND)
WITH ('connector' = 'retail', 'stream' = 'pos_sales', 'start' = '2024-03-01 08:00:00', 'duration' = '6h',
  'stores' = '4', 'seed' = '11');
CREATE MODEL units INPUT (lines BIGINT) OUTPUT (units_hat DOUBLE)
WITH ('provider' = 'online', 'algorithm' = 'linear_regression', 'label' = 'units', 'optimizer' = 'adagrad');
CREATE TABLE forecast (ws TIMESTAMP(3), store_id INT, units DOUBLE, units_hat DOUBLE)
WITH ('connector' = 'sqlite', 'path' = '{db}', 'table-name' = 'forecast');
INSERT INTO forecast SELECT window_start, store_id, units, units_hat FROM ML_PREDICT(
  (SELECT window_start, store_id, COUNT(*) AS lines, CAST(SUM(qty) AS DOUBLE) AS units
   FROM TABLE(TUMBLE(TABLE s, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
   GROUP BY window_start, window_end, store_id) PARTITION BY store_id,
  MODEL units, DESCRIPTOR(lines));",
            db = db.display()
        ),
    )
    .expect("script");
    let (port, mut job, status) = run_to_the_end(&script, "model_sql");
    let (_, metrics) = get(port, "/metrics", None).expect("metrics");
    let _ = job.kill();
    let _ = job.wait();
    let node = status["nodes"]
        .as_array()
        .and_then(|ns| ns.iter().find(|n| n["model"].is_object()))
        .unwrap_or_else(|| panic!("a node with a model: {status}"));
    let model = &node["model"];
    let rows: i64 = rusqlite::Connection::open(&db)
        .expect("db")
        .query_row("SELECT COUNT(*) FROM forecast", [], |r| r.get(0))
        .expect("count");
    assert!(rows > 500, "{rows} store-minutes");
    assert_eq!(model["learned"].as_i64(), Some(rows), "{model}");
    let (mae, recent) = (
        model["mae"].as_f64().expect("mae"),
        model["recent_mae"].as_f64().expect("recent"),
    );
    // units per store-minute are about 2.5 per line: a model that learned nothing would be
    // off by the whole mean
    let mean: f64 = rusqlite::Connection::open(&db)
        .expect("db")
        .query_row("SELECT AVG(units) FROM forecast", [], |r| r.get(0))
        .expect("mean");
    assert!(mae > 0.0 && mae < 0.5 * mean, "mae {mae}, mean {mean}");
    assert!(recent <= mae * 1.5, "recent {recent} vs all {mae}");
    assert!(model["rmse"].as_f64().expect("rmse") >= mae);
    assert!(model["accuracy"].is_null());
    assert!(
        metrics.contains("# TYPE tillflow_model_mae gauge")
            && metrics
                .lines()
                .any(|l| l.starts_with("tillflow_model_rows_learned_total{")
                    && l.ends_with(&format!(" {rows}"))),
        "{metrics}"
    );
}
