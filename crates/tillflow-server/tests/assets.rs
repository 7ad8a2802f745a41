//! The dashboard's own script parses (with Node.js, which machines of this kind have), and the
//! Prometheus text names every node once per metric.

use tillflow_server::{prometheus, JobStatus, NodeStatus};

#[test]
fn the_dashboard_script_parses() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/dashboard.js");
    let o = std::process::Command::new("node")
        .args(["--check", path])
        .output()
        .expect("node (Node.js) is needed to check the dashboard script");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn prometheus_text_has_help_type_and_one_series_per_node() {
    let job = JobStatus {
        id: "q_sql".into(),
        nodes: vec![
            NodeStatus {
                kind: "source",
                name: "file \"a\"".into(),
                rows_in: 7,
                ..NodeStatus::default()
            },
            NodeStatus {
                kind: "sink",
                name: "print".into(),
                rows_out: 5,
                watermark_lag_ms: Some(1500),
                ..NodeStatus::default()
            },
        ],
        ..JobStatus::default()
    };
    let text = prometheus(&[job]);
    assert!(text.contains("# TYPE tillflow_operator_rows_in_total counter"));
    assert!(text.contains(
        "tillflow_operator_rows_in_total{job=\"q_sql\",operator=\"file \\\"a\\\"\",kind=\"source\",index=\"0\"} 7"
    ), "{text}");
    assert!(text.contains("tillflow_operator_rows_out_total{job=\"q_sql\",operator=\"print\",kind=\"sink\",index=\"1\"} 5"));
    assert_eq!(
        text.matches("tillflow_operator_watermark_lag_milliseconds{")
            .count(),
        1
    );
}
