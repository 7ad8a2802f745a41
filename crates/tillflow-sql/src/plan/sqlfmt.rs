//! Plan expressions printed as SQL, with column names, the way Flink's `EXPLAIN` shows them.
//!
//! Runtime expressions refer to columns by position; `explain` prints them over the names of the
//! node's input columns ([`Names`]: a repeated name gets a numeric suffix, `id` and `id0`, as
//! Flink names the columns of a join). Aggregate calls print as `COUNT(DISTINCT customer_id)`,
//! windows as `TUMBLE(time_col=[ts], size=[1 min])`, durations in Flink's `[1 min]` form.

use tillflow_runtime::agg::{AggCall, AggKind};
use tillflow_runtime::expr::{scale_of, Expr, UnOp};
use tillflow_runtime::functions::Func;
use tillflow_runtime::window::AlignedWindow;
use tillflow_types::{DataType, Schema, Value};

/// The names a node's input columns print as (unique within the node).
pub struct Names(Vec<String>);

impl Names {
    /// The names of `schema`'s columns, made unique as Flink does (`id`, `id0`, `id1` …).
    pub fn of(schema: &Schema) -> Names {
        let mut out: Vec<String> = Vec::with_capacity(schema.len());
        for f in &schema.fields {
            let mut name = f.name.clone();
            let mut n = 0;
            while out.iter().any(|o| o.eq_ignore_ascii_case(&name)) {
                name = format!("{}{n}", f.name);
                n += 1;
            }
            out.push(name);
        }
        Names(out)
    }

    /// Column `i`'s name as SQL (backquoted unless a plain identifier; `$i` when out of range).
    pub fn get(&self, i: usize) -> String {
        self.0
            .get(i)
            .map(|n| ident(n))
            .unwrap_or_else(|| format!("${i}"))
    }

    /// Columns `cols` by name, comma-separated.
    pub fn list(&self, cols: &[usize]) -> String {
        cols.iter()
            .map(|&c| self.get(c))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A duration in Flink's explain form: `1 min`, `30 s`, `1 h`, `500 ms`, `1 d`.
pub fn duration(us: i64) -> String {
    let ms = us / 1000;
    for (unit, name) in [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "min"),
        (1000, "s"),
    ] {
        if ms != 0 && ms % unit == 0 {
            return format!("{} {name}", ms / unit);
        }
    }
    if us % 1000 == 0 {
        format!("{ms} ms")
    } else {
        format!("{us} µs")
    }
}

/// A window the input rows carry (a cascaded window aggregation), as Flink prints it:
/// `HOP(win_start=[starttime], win_end=[endtime], size=[10 s], slide=[2 s])`.
pub fn attached_window(w: &AlignedWindow, start: &str, end: &str) -> String {
    let own = window(w, "");
    let bounds = format!("win_start=[{start}], win_end=[{end}]");
    own.replacen("time_col=[]", &bounds, 1)
}

/// A window as Flink prints it: `TUMBLE(time_col=[ts], size=[1 min])`.
pub fn window(w: &AlignedWindow, time: &str) -> String {
    let offset = |o: i64| {
        if o == 0 {
            String::new()
        } else {
            format!(", offset=[{}]", duration(o))
        }
    };
    match *w {
        AlignedWindow::Tumble { size, offset: o } => {
            format!(
                "TUMBLE(time_col=[{time}], size=[{}]{})",
                duration(size),
                offset(o)
            )
        }
        AlignedWindow::Hop {
            slide,
            size,
            offset: o,
        } => format!(
            "HOP(time_col=[{time}], size=[{}], slide=[{}]{})",
            duration(size),
            duration(slide),
            offset(o)
        ),
        AlignedWindow::Cumulate {
            step,
            size,
            offset: o,
        } => format!(
            "CUMULATE(time_col=[{time}], max_size=[{}], step=[{}]{})",
            duration(size),
            duration(step),
            offset(o)
        ),
    }
}

fn agg_name(k: AggKind) -> &'static str {
    match k {
        AggKind::CountStar | AggKind::Count => "COUNT",
        AggKind::Sum => "SUM",
        AggKind::Avg => "AVG",
        AggKind::Min => "MIN",
        AggKind::Max => "MAX",
        AggKind::Ewma => "EWMA",
        AggKind::EwmVar => "EWMVAR",
        AggKind::HoltWinters => "HOLT_WINTERS",
        AggKind::HwLevel => "HW_LEVEL",
        AggKind::HwTrend => "HW_TREND",
        AggKind::AnomalyScore => "ANOMALY_SCORE",
        AggKind::IsAnomaly => "IS_ANOMALY",
        AggKind::VarPop => "VAR_POP",
        AggKind::VarSamp => "VAR_SAMP",
        AggKind::StddevPop => "STDDEV_POP",
        AggKind::StddevSamp => "STDDEV_SAMP",
        AggKind::FirstValue => "FIRST_VALUE",
        AggKind::LastValue => "LAST_VALUE",
        AggKind::ListAgg => "LISTAGG",
        AggKind::ArrayAgg => "ARRAY_AGG",
        AggKind::Collect => "COLLECT",
        AggKind::Lag => "LAG",
        AggKind::Python => "PYTHON",
    }
}

/// An aggregate call over `names`: `COUNT(DISTINCT customer_id) FILTER (WHERE $f3)`.
pub fn agg(call: &AggCall, names: &Names) -> String {
    if let Some(py) = &call.python {
        let args: Vec<String> = py.args.iter().map(|&a| names.get(a)).collect();
        let mut s = format!("{}({})", py.target.name, args.join(", "));
        if let Some(f) = call.filter {
            s.push_str(&format!(" FILTER (WHERE {})", names.get(f)));
        }
        return s;
    }
    let arg = match call.arg {
        None => "*".to_owned(),
        Some(a) if call.distinct => format!("DISTINCT {}", names.get(a)),
        Some(a) => names.get(a),
    };
    let mut s = match &call.separator {
        Some(sep) => format!(
            "{}({arg}, '{}')",
            agg_name(call.kind),
            sep.replace('\'', "''")
        ),
        None => format!("{}({arg})", agg_name(call.kind)),
    };
    if let Some(f) = call.filter {
        s.push_str(&format!(" FILTER (WHERE {})", names.get(f)));
    }
    s
}

/// A function's SQL name from its variant name (`ConcatWs` → `CONCAT_WS`).
fn func_name(f: &Func) -> String {
    if let Some(n) = f.sql_name() {
        return n.to_owned();
    }
    let debug = format!("{f:?}");
    let base = debug.split('(').next().unwrap_or(&debug);
    let mut out = String::with_capacity(base.len() + 4);
    for (i, c) in base.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

fn literal(v: &Value, ty: DataType) -> String {
    match v {
        Value::Null => format!("null:{ty}"),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(x) => format!("{x:?}"),
        Value::Decimal(d) => {
            let s = scale_of(ty) as u32;
            if s == 0 {
                d.to_string()
            } else {
                let p = 10i128.pow(s);
                let sign = if *d < 0 { "-" } else { "" };
                format!(
                    "{sign}{}.{:0width$}",
                    (d / p).abs(),
                    (d % p).abs(),
                    width = s as usize
                )
            }
        }
        Value::Interval(us) => format!("{}:INTERVAL", us / 1000),
        Value::Months(m) => format!("{m}:INTERVAL MONTH"),
        Value::Timestamp(us) => format!("{us}:{ty}"),
        Value::Date(d) => format!("{d}:DATE"),
        Value::Time(t) => format!("{t}:TIME"),
        Value::Str(_) => "?".to_owned(),
    }
}

/// A Python function's call `name(args)` over the input columns `names`.
pub fn python_call(name: &str, args: &[Expr], names: &Names) -> String {
    let args: Vec<String> = args.iter().map(|a| expr(a, names)).collect();
    format!("{name}({})", args.join(", "))
}

/// `e` as SQL over the input columns `names`.
pub fn expr(e: &Expr, names: &Names) -> String {
    let list = |args: &[Expr]| {
        args.iter()
            .map(|a| expr(a, names))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match e {
        Expr::Column { index, .. } => names.get(*index),
        Expr::Literal { value, ty } => literal(value, *ty),
        Expr::StrLiteral(s) => {
            let mut q = String::with_capacity(s.len() + 2);
            q.push('\'');
            q.push_str(&s.replace('\'', "''"));
            q.push('\'');
            q
        }
        Expr::Unary { op, arg, .. } => {
            let a = expr(arg, names);
            match op {
                UnOp::Neg => format!("-({a})"),
                UnOp::Not => format!("NOT({a})"),
                UnOp::IsNull => format!("({a} IS NULL)"),
                UnOp::IsNotNull => format!("({a} IS NOT NULL)"),
                UnOp::IsTrue => format!("({a} IS TRUE)"),
                UnOp::IsFalse => format!("({a} IS FALSE)"),
                UnOp::IsNotTrue => format!("({a} IS NOT TRUE)"),
                UnOp::IsNotFalse => format!("({a} IS NOT FALSE)"),
            }
        }
        Expr::Binary {
            op, left, right, ..
        } => format!(
            "({} {} {})",
            expr(left, names),
            op.symbol(),
            expr(right, names)
        ),
        Expr::Case {
            operand,
            whens,
            otherwise,
            ..
        } => {
            let mut s = "CASE".to_owned();
            if let Some(o) = operand {
                s.push(' ');
                s.push_str(&expr(o, names));
            }
            for (w, t) in whens {
                s.push_str(&format!(" WHEN {} THEN {}", expr(w, names), expr(t, names)));
            }
            if let Some(o) = otherwise {
                s.push_str(&format!(" ELSE {}", expr(o, names)));
            }
            s.push_str(" END");
            s
        }
        Expr::Cast { arg, to, safe, .. } => format!(
            "{}({} AS {to})",
            if *safe { "TRY_CAST" } else { "CAST" },
            expr(arg, names)
        ),
        Expr::Call { func, args, .. } => match func {
            Func::MapGet if args.len() == 2 => {
                format!("{}[{}]", expr(&args[0], names), expr(&args[1], names))
            }
            Func::Extract(unit) | Func::FloorTime(unit) | Func::CeilTime(unit) => {
                let what = match func {
                    Func::Extract(_) => "EXTRACT",
                    Func::FloorTime(_) => "FLOOR",
                    _ => "CEIL",
                };
                format!(
                    "{what}({}, {})",
                    format!("{unit:?}").to_ascii_uppercase(),
                    list(args)
                )
            }
            Func::TimestampDiff(unit) | Func::TimestampAdd(unit) => format!(
                "{}({}, {})",
                func_name(func),
                format!("{unit:?}").to_ascii_uppercase(),
                list(args)
            ),
            Func::Now => "PROCTIME()".to_owned(),
            // as Flink's plan: the ON NULL behaviour first, as a flag
            Func::JsonBuild(
                b @ (tillflow_runtime::json::JsonBuild::Object { absent_on_null }
                | tillflow_runtime::json::JsonBuild::Array { absent_on_null }),
            ) => {
                let flag = if *absent_on_null {
                    "ABSENT_ON_NULL"
                } else {
                    "NULL_ON_NULL"
                };
                let sep = if args.is_empty() { "" } else { ", " };
                format!("{}(FLAG({flag}){sep}{})", b.sql_name(), list(args))
            }
            Func::Nested(n) => {
                use tillflow_runtime::nested_fn::NestedFn;
                match (n, args.first().map(Expr::data_type)) {
                    (NestedFn::Field(i), Some(tillflow_types::DataType::Row(r))) => format!(
                        "{}.{}",
                        expr(&args[0], names),
                        r.fields
                            .get(*i as usize)
                            .map(|(n, _)| ident(n))
                            .unwrap_or_else(|| format!("${i}"))
                    ),
                    (NestedFn::Element, _) if args.len() == 2 => {
                        format!("{}[{}]", expr(&args[0], names), expr(&args[1], names))
                    }
                    (NestedFn::Cardinality, _) => format!("CARDINALITY({})", list(args)),
                    (NestedFn::Array, _) => format!("ARRAY[{}]", list(args)),
                    _ => format!("ROW({})", list(args)),
                }
            }
            f => format!("{}({})", func_name(f), list(args)),
        },
        Expr::Prepared { func, args, .. } => format!("{}({})", func_name(func), list(args)),
        Expr::Python(c) => python_call(&c.target.name, &c.args, names),
        Expr::InList {
            arg,
            list: l,
            negated,
        } => format!(
            "{}({}, {})",
            if *negated { "NOT IN" } else { "IN" },
            expr(arg, names),
            list(l)
        ),
        Expr::Like {
            arg,
            pattern,
            negated,
        } => format!(
            "{}({}, {})",
            if *negated { "NOT LIKE" } else { "LIKE" },
            expr(arg, names),
            expr(pattern, names)
        ),
    }
}

/// A name as SQL: as it is when it is a plain identifier, else in backquotes.
pub fn ident(name: &str) -> String {
    let plain = name
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if plain && !name.is_empty() {
        name.to_owned()
    } else {
        format!("`{}`", name.replace('`', "``"))
    }
}

/// A projection item: the expression, `AS name` unless it is that column already.
pub fn item(e: &Expr, name: &str, names: &Names) -> String {
    let s = expr(e, names);
    let name = ident(name);
    if s == name {
        s
    } else {
        format!("{s} AS {name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tillflow_runtime::expr::BinOp;
    use tillflow_types::Field;

    #[test]
    fn prints_expressions_over_names() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int),
            Field::new("id", DataType::Int),
            Field::new("channel", DataType::String(None)),
        ]);
        let names = Names::of(&schema);
        assert_eq!(names.list(&[0, 1]), "id, id0");
        let e = Expr::Binary {
            op: BinOp::And,
            left: Box::new(Expr::Binary {
                op: BinOp::Eq,
                left: Box::new(Expr::col(2, DataType::String(None))),
                right: Box::new(Expr::StrLiteral("it's".into())),
                ty: DataType::Boolean,
            }),
            right: Box::new(Expr::Binary {
                op: BinOp::Gt,
                left: Box::new(Expr::col(1, DataType::Int)),
                right: Box::new(Expr::Literal {
                    value: Value::Int(10),
                    ty: DataType::Int,
                }),
                ty: DataType::Boolean,
            }),
            ty: DataType::Boolean,
        };
        assert_eq!(expr(&e, &names), "((channel = 'it''s') AND (id0 > 10))");
        assert_eq!(func_name(&Func::ConcatWs), "CONCAT_WS");
        // JSON_OBJECT / JSON_ARRAY show their ON NULL flag first, as Flink 2.3's plan does
        use tillflow_runtime::json::JsonBuild;
        let obj = Expr::Call {
            func: Func::JsonBuild(JsonBuild::Object {
                absent_on_null: false,
            }),
            args: vec![
                Expr::StrLiteral("a".into()),
                Expr::Call {
                    func: Func::JsonBuild(JsonBuild::Array {
                        absent_on_null: true,
                    }),
                    args: vec![Expr::col(2, DataType::String(None))],
                    ty: DataType::String(None),
                },
            ],
            ty: DataType::String(None),
        };
        assert_eq!(
            expr(&obj, &names),
            "JSON_OBJECT(FLAG(NULL_ON_NULL), 'a', JSON_ARRAY(FLAG(ABSENT_ON_NULL), channel))"
        );
        assert_eq!(item(&Expr::col(0, DataType::Int), "id", &names), "id");
        assert_eq!(item(&Expr::col(0, DataType::Int), "k", &names), "id AS k");
    }

    #[test]
    fn prints_durations_and_windows() {
        assert_eq!(duration(60_000_000), "1 min");
        assert_eq!(duration(90_000_000), "90 s");
        assert_eq!(duration(86_400_000_000), "1 d");
        assert_eq!(duration(1_500), "1500 µs");
        let w = AlignedWindow::Hop {
            slide: 60_000_000,
            size: 300_000_000,
            offset: 0,
        };
        assert_eq!(
            window(&w, "ts"),
            "HOP(time_col=[ts], size=[5 min], slide=[1 min])"
        );
    }

    #[test]
    fn prints_aggregate_calls() {
        let schema = Schema::new(vec![
            Field::new("customer_id", DataType::BigInt),
            Field::new("$filter1", DataType::Boolean),
        ]);
        let names = Names::of(&schema);
        let call = AggCall {
            kind: AggKind::Count,
            arg: Some(0),
            distinct: true,
            arg_type: DataType::BigInt,
            result_type: DataType::BigInt,
            filter: Some(1),
            model: None,
            separator: None,
            retracts: false,
            lag: None,
            python: None,
        };
        assert_eq!(
            agg(&call, &names),
            "COUNT(DISTINCT customer_id) FILTER (WHERE $filter1)"
        );
    }
}
