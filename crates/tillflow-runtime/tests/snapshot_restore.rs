//! Every stateful operator can be stopped anywhere, its state written to bytes and read into a
//! fresh operator, and carry on to exactly the output of an uninterrupted run — the property
//! checkpoints will rely on.

use tillflow_runtime::agg::{AggCall, AggKind};
use tillflow_runtime::operator::{Emit, Operator};
use tillflow_runtime::ops::group_agg::GroupAggregate;
use tillflow_runtime::ops::over::{OverAggregate, OverFrame};
use tillflow_runtime::ops::rank::{SortKey, TopN, WindowTopN};
use tillflow_runtime::window::aggregate::WindowAggregate;
use tillflow_runtime::window::count::CountWindowAggregate;
use tillflow_runtime::window::session::SessionWindowAggregate;
use tillflow_runtime::window::{AlignedWindow, TimeMode};
use tillflow_runtime::Result;
use tillflow_types::{DataType, Row, Value};

const SEC: i64 = 1_000_000;

#[derive(Default)]
struct Collect(Vec<String>);

impl Emit for Collect {
    fn emit(&mut self, row: &Row) -> Result<()> {
        let vals: Vec<String> = row
            .values
            .iter()
            .map(|v| match v {
                Value::Str(s) => row.str(*s).to_owned(),
                other => format!("{other:?}"),
            })
            .collect();
        self.0
            .push(format!("{}{}", row.kind.short(), vals.join("|")));
        Ok(())
    }
    fn watermark(&mut self, _wm: i64) -> Result<()> {
        Ok(())
    }
}

/// Rows `[key STRING, amount INT, ts TIMESTAMP]`, a little out of order, with watermarks 5 s behind.
fn input() -> Vec<(Row, i64)> {
    let mut out = Vec::new();
    let mut seed = 7u64;
    for i in 0..600i64 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let jitter = ((seed >> 33) % 4) as i64 * SEC;
        let ts = i * 2 * SEC - jitter;
        let mut row = Row::default();
        let k = row.intern(["a", "b", "c", "d"][((seed >> 40) % 4) as usize]);
        row.values = vec![
            Value::Str(k),
            Value::Int((seed >> 50) as i64 % 100),
            Value::Timestamp(ts),
        ];
        out.push((row, ts - 5 * SEC));
    }
    out
}

fn calls() -> Vec<AggCall> {
    vec![
        AggCall::builtin(AggKind::CountStar, None, DataType::BigInt, DataType::BigInt),
        AggCall::builtin(AggKind::Sum, Some(1), DataType::Int, DataType::Int),
        AggCall {
            kind: AggKind::Max,
            arg: Some(1),
            distinct: true,
            arg_type: DataType::Int,
            result_type: DataType::Int,
            filter: None,
            model: None,
            separator: None,
            retracts: false,
            lag: None,
            python: None,
        },
    ]
}

fn run(make: &dyn Fn() -> Box<dyn Operator>, split: Option<usize>) -> Vec<String> {
    let rows = input();
    let mut out = Collect::default();
    let mut op = make();
    for (i, (row, wm)) in rows.iter().enumerate() {
        if Some(i) == split {
            let mut bytes = Vec::new();
            op.snapshot_state(&mut bytes);
            op = make();
            op.restore_state(&bytes).expect("restore");
        }
        op.process(row, &mut out).expect("process");
        op.on_watermark(*wm, &mut out).expect("watermark");
    }
    op.on_watermark(i64::MAX, &mut out)
        .expect("final watermark");
    op.on_end(&mut out).expect("end");
    let mut v = out.0;
    v.sort();
    v
}

fn check(name: &str, make: &dyn Fn() -> Box<dyn Operator>) {
    let whole = run(make, None);
    assert!(!whole.is_empty(), "{name} produced nothing");
    for split in [1, 137, 300, 599] {
        assert_eq!(
            run(make, Some(split)),
            whole,
            "{name} restored at record {split}"
        );
    }
}

#[test]
fn tumble_hop_cumulate_survive_a_restore() {
    for w in [
        AlignedWindow::Tumble {
            size: 60 * SEC,
            offset: 0,
        },
        AlignedWindow::Hop {
            slide: 20 * SEC,
            size: 60 * SEC,
            offset: 0,
        },
        AlignedWindow::Cumulate {
            step: 30 * SEC,
            size: 120 * SEC,
            offset: 0,
        },
    ] {
        check(&format!("{w:?}"), &move || {
            Box::new(WindowAggregate::new(
                w,
                TimeMode::Event,
                2,
                vec![0],
                calls(),
            ))
        });
    }
}

#[test]
fn sessions_survive_a_restore() {
    check("session", &|| {
        Box::new(SessionWindowAggregate::new(
            5 * SEC,
            TimeMode::Event,
            2,
            vec![0],
            vec![],
            calls(),
        ))
    });
}

#[test]
fn count_windows_and_group_aggregates_survive_a_restore() {
    check("count", &|| {
        Box::new(CountWindowAggregate::new(7, 2, vec![0], calls()))
    });
    check("group", &|| Box::new(GroupAggregate::new(vec![0], calls())));
}

#[test]
fn rankings_survive_a_restore() {
    let order = vec![SortKey {
        col: 1,
        descending: true,
        nulls_first: false,
    }];
    let o2 = order.clone();
    check("top-n", &move || {
        Box::new(TopN::new(vec![0], o2.clone(), 3, true))
    });
    // window Top-N over rows whose column 2 acts as window_end
    check("window top-n", &move || {
        Box::new(WindowTopN::new(2, vec![2], order.clone(), 2, true))
    });
}

#[test]
fn over_aggregations_survive_a_restore() {
    let mut with_model = calls();
    with_model.push(AggCall {
        kind: AggKind::HoltWinters,
        arg: Some(1),
        distinct: false,
        arg_type: DataType::Int,
        result_type: DataType::Double,
        filter: None,
        model: Some(
            tillflow_runtime::forecast::ModelSpec::from_call(
                AggKind::HoltWinters,
                &[0.3, 0.1, 0.2, 4.0],
            )
            .expect("model"),
        ),
        separator: None,
        retracts: false,
        lag: None,
        python: None,
    });
    for frame in [
        OverFrame::RangeUnbounded,
        OverFrame::RowsUnbounded,
        OverFrame::Rows(3),
        OverFrame::Range(10 * SEC),
    ] {
        let c = with_model.clone();
        check(&format!("over {frame:?}"), &move || {
            Box::new(OverAggregate::new(vec![0], Some(2), frame, c.clone()))
        });
    }
}
