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
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}\r\n"
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
    let _ = job.kill();
    let _ = job.wait();

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

/// Loads the dashboard in headless Chromium, lets its script run, and returns (DOM, browser log).
fn browse(url: &str, screenshot: Option<&std::path::Path>) -> (String, String) {
    let mut cmd = Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1400,1100",
        "--virtual-time-budget=3000",
        "--enable-logging=stderr",
        "--v=0",
    ]);
    match screenshot {
        Some(p) => cmd.arg(format!("--screenshot={}", p.display())),
        None => cmd.arg("--dump-dom"),
    };
    let o = cmd
        .arg(url)
        .output()
        .expect("chromium (Debian's package; scripts/setup.sh installs it)");
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn attr(dom: &str, name: &str) -> Option<u64> {
    let at = dom.find(&format!("{name}=\""))? + name.len() + 2;
    dom[at..].split('"').next()?.parse().ok()
}

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
            "6000",
            "--http",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--db")
        .arg(dir.path().join("demo.db"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("demo");
    // a few simulated hours in: windows have fired, sessions closed and stock run low somewhere
    wait_for("stock alerts and funnel rows", || {
        let (_, body) = get(port, "/api/jobs/retail-demo/tables", None)?;
        (body.contains("\"alert\":\"low\"") && body.contains("\"funnel_per_channel\",\"rows\":[{"))
            .then_some(())
    });
    let url = format!("http://127.0.0.1:{port}/");
    let (dom, log) = browse(&url, None);
    assert!(!log.contains("Uncaught"), "script errors: {log}");
    assert!(!log.contains(":ERROR:CONSOLE"), "console errors: {log}");
    let points = attr(&dom, "data-points").expect("the revenue chart was drawn");
    assert!(points > 0, "{dom}");
    let last = attr(&dom, "data-last").expect("the chart's last minute");
    assert!(
        dom.contains("WindowAggregate") && dom.contains("retail[pos_sales]"),
        "the operations view lists the pipeline"
    );
    // the header line `retail-demo · running · N records · R/s` shows a non-zero rate
    let rate: f64 = dom
        .split(" records · ")
        .nth(1)
        .and_then(|r| r.split("/s").next())
        .and_then(|r| r.trim().parse().ok())
        .expect("the job's rate");
    assert!(rate > 0.0, "{dom}");
    assert!(
        dom.contains("<td>web</td>") || dom.contains("<td>app</td>"),
        "the funnel table filled: {dom}"
    );
    // the demo goes on: a later look shows later minutes
    std::thread::sleep(Duration::from_secs(3));
    let (dom2, _) = browse(&url, None);
    let last2 = attr(&dom2, "data-last").expect("the chart's last minute");
    assert!(
        last2 > last,
        "the chart did not move on: {last} then {last2}"
    );
    // a screenshot for people to look at (a test artifact)
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    browse(&url, Some(&shot));
    assert!(
        std::fs::metadata(&shot)
            .map(|m| m.len() > 10_000)
            .unwrap_or(false),
        "no screenshot"
    );
    let _ = demo.kill();
    let _ = demo.wait();
}
