//! SQL expressions (sqlparser AST) to typed runtime expressions.
//!
//! Names resolve against a [`Scope`] (the columns of the input, with their table qualifiers).
//! Types follow Flink: the wider numeric type wins, integer arithmetic stays integral, a literal
//! `1.5` is a DECIMAL, and the implicit casts Flink inserts become explicit [`Expr::Cast`] nodes.
//! In an aggregate query, an [`AggScope`] maps grouped expressions, aggregate calls and window
//! properties to the columns of the aggregate's output.

use crate::error::{plan_err, Result};
use sqlparser::ast::{
    self as sql, BinaryOperator, CastKind, CeilFloorKind, DuplicateTreatment, FunctionArg,
    FunctionArgExpr, FunctionArguments, UnaryOperator, Value as SqlValue,
};
use tillflow_runtime::agg::AggKind;
use tillflow_runtime::expr::{BinOp, Expr, UnOp};
use tillflow_runtime::functions::{Func, TimeUnit};
use tillflow_types::temporal::{parse_date, parse_time, parse_timestamp, MICROS_PER_SECOND};
use tillflow_types::{DataType, Field, Schema, TimeAttribute, Value};

/// The columns an expression can name.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// The columns.
    pub schema: Schema,
    /// The table (alias) each column comes from, for `t.col`.
    pub qualifiers: Vec<Option<String>>,
}

impl Scope {
    /// A scope whose columns all come from `qualifier`.
    pub fn new(schema: Schema, qualifier: Option<String>) -> Self {
        let n = schema.len();
        Scope {
            schema,
            qualifiers: vec![qualifier; n],
        }
    }

    /// Resolves a possibly qualified column name.
    pub fn resolve(&self, parts: &[String]) -> Result<usize> {
        let (qual, name) = match parts {
            [name] => (None, name),
            [.., q, name] => (Some(q), name),
            [] => return plan_err("empty column name"),
        };
        let matches: Vec<usize> = (0..self.schema.len())
            .filter(|&i| {
                let f = &self.schema.fields[i];
                (f.name == *name || f.name.eq_ignore_ascii_case(name))
                    && qual.is_none_or(|q| {
                        self.qualifiers[i]
                            .as_deref()
                            .is_some_and(|x| x.eq_ignore_ascii_case(q))
                    })
            })
            .collect();
        let exact: Vec<usize> = matches
            .iter()
            .copied()
            .filter(|&i| self.schema.fields[i].name == *name)
            .collect();
        match (exact.as_slice(), matches.as_slice()) {
            ([i], _) | ([], [i]) => Ok(*i),
            ([], []) => plan_err(format!(
                "column `{}` not found; available columns: {}",
                parts.join("."),
                self.schema.names()
            )),
            _ => plan_err(format!("column `{}` is ambiguous", parts.join("."))),
        }
    }
}

/// Grouped expressions and aggregate calls of an aggregate query, and where they land in its output.
pub struct AggScope<'a> {
    /// The aggregate's input scope.
    pub input: &'a Scope,
    /// Group expressions over the input, with their output column.
    pub groups: Vec<(Expr, usize)>,
    /// Aggregate calls (AST) with their output column and type.
    pub aggs: Vec<(sql::Function, usize, DataType)>,
    /// Output columns of window_start, window_end, window_time, if windowed.
    pub window: Option<(usize, usize, usize)>,
    /// Type of the window columns.
    pub window_type: DataType,
}

/// Converts SQL expressions over a scope.
pub struct Converter<'a> {
    /// Names.
    pub scope: &'a Scope,
    /// Set when converting the SELECT list / HAVING of an aggregate query.
    pub agg: Option<&'a AggScope<'a>>,
}

/// The name of a function call, upper-cased.
pub fn function_name(f: &sql::Function) -> String {
    f.name.to_string().to_ascii_uppercase()
}

/// The unnamed (or named) arguments of a call, as expressions; `*` becomes `None`.
pub fn function_args(f: &sql::Function) -> Result<Vec<Option<&sql::Expr>>> {
    match &f.args {
        FunctionArguments::None => Ok(vec![]),
        FunctionArguments::Subquery(_) => {
            plan_err(format!("subquery arguments are not supported: {f}"))
        }
        FunctionArguments::List(l) => l
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(Some(e)),
                FunctionArg::Named {
                    arg: FunctionArgExpr::Expr(e),
                    ..
                } => Ok(Some(e)),
                FunctionArg::ExprNamed {
                    arg: FunctionArgExpr::Expr(e),
                    ..
                } => Ok(Some(e)),
                FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => Ok(None),
                other => plan_err(format!("unsupported argument `{other}` in {f}")),
            })
            .collect(),
    }
}

/// True when the call is an aggregate function (not a window function with OVER).
pub fn is_aggregate(f: &sql::Function) -> bool {
    f.over.is_none() && AggKind::by_name(&function_name(f)).is_some()
}

/// Collects the aggregate calls inside `e` (outermost first, without duplicates).
pub fn collect_aggregates(e: &sql::Expr, out: &mut Vec<sql::Function>) {
    collect_calls(e, out, is_aggregate)
}

/// True when the call is an aggregate function with OVER (an OVER aggregation).
pub fn is_over_aggregate(f: &sql::Function) -> bool {
    f.over.is_some() && AggKind::by_name(&function_name(f)).is_some()
}

/// Collects the OVER aggregate calls inside `e` (without duplicates).
pub fn collect_over_aggregates(e: &sql::Expr, out: &mut Vec<sql::Function>) {
    collect_calls(e, out, is_over_aggregate)
}

fn collect_calls(e: &sql::Expr, out: &mut Vec<sql::Function>, want: fn(&sql::Function) -> bool) {
    use sql::Expr as E;
    match e {
        E::Function(f) if want(f) && !out.contains(f) => out.push(f.clone()),
        E::Function(f) if want(f) => {}
        E::Function(f) => {
            if let Ok(args) = function_args(f) {
                for a in args.into_iter().flatten() {
                    collect_calls(a, out, want);
                }
            }
        }
        E::BinaryOp { left, right, .. } => {
            collect_calls(left, out, want);
            collect_calls(right, out, want);
        }
        E::UnaryOp { expr, .. }
        | E::Nested(expr)
        | E::IsNull(expr)
        | E::IsNotNull(expr)
        | E::IsTrue(expr)
        | E::IsFalse(expr)
        | E::IsNotTrue(expr)
        | E::IsNotFalse(expr)
        | E::Cast { expr, .. }
        | E::Extract { expr, .. }
        | E::Floor { expr, .. }
        | E::Ceil { expr, .. } => collect_calls(expr, out, want),
        E::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            if let Some(o) = operand {
                collect_calls(o, out, want);
            }
            for c in conditions {
                collect_calls(&c.condition, out, want);
                collect_calls(&c.result, out, want);
            }
            if let Some(e) = else_result {
                collect_calls(e, out, want);
            }
        }
        E::Between {
            expr, low, high, ..
        } => {
            collect_calls(expr, out, want);
            collect_calls(low, out, want);
            collect_calls(high, out, want);
        }
        E::In {
            expr,
            target: sql::InTarget::List(list),
            ..
        } => {
            collect_calls(expr, out, want);
            for x in list {
                collect_calls(x, out, want);
            }
        }
        _ => {}
    }
}

fn lit(value: Value, ty: DataType) -> Expr {
    Expr::Literal { value, ty }
}

/// Wraps `e` in a cast to `to` unless it already has that type.
pub fn cast_to(e: Expr, to: DataType) -> Expr {
    let from = e.data_type();
    if from == to
        || from == DataType::Null && matches!(e, Expr::Literal { .. }) && to == DataType::Null
    {
        return e;
    }
    if let Expr::Literal {
        value: Value::Null, ..
    } = e
    {
        return lit(Value::Null, to);
    }
    Expr::Cast {
        arg: Box::new(e),
        from,
        to,
        safe: false,
    }
}

/// Evaluates a constant expression.
pub fn eval_const(e: &Expr) -> Result<Value> {
    let row = tillflow_types::Row::default();
    let mut heap = Vec::new();
    e.eval(&row, &mut heap)
        .or_else(|err| plan_err(format!("cannot evaluate constant: {err}")))
}

fn decimal_literal(text: &str) -> Option<(i128, u8, u8)> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = format!("{int}{frac}");
    let v: i128 = digits.parse().ok()?;
    let scale = frac.len() as u8;
    let precision = (digits.trim_start_matches('0').len() as u8)
        .max(scale)
        .max(1);
    Some((v, precision.min(38), scale))
}

fn unit_of(f: &sql::DateTimeField) -> Result<TimeUnit> {
    let text = f.to_string();
    TimeUnit::parse(&text)
        .ok_or_else(|| crate::error::SqlError::Plan(format!("unsupported time unit {text}")))
}

/// Flink's result type of DECIMAL arithmetic, with the precision capped at 38 as Flink does
/// (integer digits are kept, the scale gives way down to 6).
fn decimal_result(op: BinOp, (p1, s1): (u8, u8), (p2, s2): (u8, u8)) -> DataType {
    let (p1, s1, p2, s2) = (p1 as i32, s1 as i32, p2 as i32, s2 as i32);
    let (p, s) = match op {
        BinOp::Add | BinOp::Sub => {
            let s = s1.max(s2);
            ((p1 - s1).max(p2 - s2) + s + 1, s)
        }
        BinOp::Mul => (p1 + p2, s1 + s2),
        BinOp::Div => {
            let s = 6.max(s1 + p2 + 1);
            (p1 - s1 + s2 + s, s)
        }
        _ => ((p1 - s1).min(p2 - s2) + s1.max(s2), s1.max(s2)),
    };
    let (p, s) = if p <= 38 {
        (p, s)
    } else {
        let int_digits = p - s;
        let min_scale = s.min(6);
        (38, (38 - int_digits).max(min_scale))
    };
    DataType::Decimal(p.clamp(1, 38) as u8, s.clamp(0, 38) as u8)
}

fn decimal_of(t: DataType) -> (u8, u8) {
    match t {
        DataType::Decimal(p, s) => (p, s),
        DataType::TinyInt => (3, 0),
        DataType::SmallInt => (5, 0),
        DataType::Int => (10, 0),
        DataType::BigInt => (19, 0),
        _ => (38, 0),
    }
}

/// Builds `l op r` with Flink's typing and implicit casts.
pub fn binary(op: BinOp, l: Expr, r: Expr) -> Result<Expr> {
    let (lt, rt) = (l.data_type(), r.data_type());
    if op == BinOp::And || op == BinOp::Or {
        for t in [lt, rt] {
            if t != DataType::Boolean && t != DataType::Null {
                return plan_err(format!("{} needs BOOLEAN operands, got {t}", op.symbol()));
            }
        }
        return Ok(Expr::Binary {
            op,
            left: Box::new(l),
            right: Box::new(r),
            ty: DataType::Boolean,
        });
    }
    if op == BinOp::Concat {
        let s = DataType::String(None);
        return Ok(Expr::Binary {
            op,
            left: Box::new(cast_to(l, s)),
            right: Box::new(cast_to(r, s)),
            ty: s,
        });
    }
    if op.is_comparison() {
        let common = match DataType::common(lt, rt) {
            Some(t) => t,
            // Flink compares a string with a number or a timestamp by casting the string.
            None if lt.is_string() => rt,
            None if rt.is_string() => lt,
            None => return plan_err(format!("cannot compare {lt} with {rt}")),
        };
        return Ok(Expr::Binary {
            op,
            left: Box::new(cast_to(l, common)),
            right: Box::new(cast_to(r, common)),
            ty: DataType::Boolean,
        });
    }
    // arithmetic
    match (lt, rt) {
        (
            DataType::Timestamp(_) | DataType::TimestampLtz(_),
            DataType::IntervalDayTime | DataType::IntervalYearMonth,
        ) if matches!(op, BinOp::Add | BinOp::Sub) => {
            return Ok(Expr::Binary {
                op,
                left: Box::new(l),
                right: Box::new(r),
                ty: lt,
            });
        }
        (DataType::Date, DataType::IntervalDayTime) if matches!(op, BinOp::Add | BinOp::Sub) => {
            return Ok(Expr::Binary {
                op,
                left: Box::new(l),
                right: Box::new(r),
                ty: lt,
            });
        }
        (DataType::IntervalDayTime, DataType::IntervalDayTime)
            if matches!(op, BinOp::Add | BinOp::Sub) =>
        {
            return Ok(Expr::Binary {
                op,
                left: Box::new(l),
                right: Box::new(r),
                ty: lt,
            });
        }
        _ => {}
    }
    let Some(common) = DataType::arithmetic_result(lt, rt) else {
        return plan_err(format!("cannot apply {} to {lt} and {rt}", op.symbol()));
    };
    if let DataType::Decimal(..) = common {
        let (dl, dr) = (decimal_of(lt), decimal_of(rt));
        let l = cast_to(l, DataType::Decimal(dl.0, dl.1));
        let r = cast_to(r, DataType::Decimal(dr.0, dr.1));
        let ty = decimal_result(op, dl, dr);
        return Ok(Expr::Binary {
            op,
            left: Box::new(l),
            right: Box::new(r),
            ty,
        });
    }
    Ok(Expr::Binary {
        op,
        left: Box::new(cast_to(l, common)),
        right: Box::new(cast_to(r, common)),
        ty: common,
    })
}

/// The microseconds (or months) of an `INTERVAL 'n' UNIT` literal.
pub fn interval_value(iv: &sql::Interval) -> Result<Value> {
    let text = match iv.value.as_ref() {
        sql::Expr::Value(v) => match &v.value {
            SqlValue::SingleQuotedString(s) => s.clone(),
            SqlValue::Number(n, _) => n.clone(),
            other => return plan_err(format!("unsupported interval value {other}")),
        },
        other => return plan_err(format!("unsupported interval value {other}")),
    };
    let unit = match &iv.leading_field {
        Some(f) => unit_of(f)?,
        None => {
            // INTERVAL '5 SECOND'
            let mut parts = text.split_whitespace();
            let n = parts.next().unwrap_or("0").to_owned();
            let u = parts.next().and_then(TimeUnit::parse).ok_or_else(|| {
                crate::error::SqlError::Plan(format!("interval '{text}' needs a unit"))
            })?;
            return interval_of(&n, u, None);
        }
    };
    interval_of(&text, unit, iv.last_field.as_ref())
}

fn interval_of(text: &str, unit: TimeUnit, last: Option<&sql::DateTimeField>) -> Result<Value> {
    if last.is_some() {
        // DAY TO SECOND style: 'd hh:mm:ss[.f]'
        let t = text.trim();
        let (days, rest) = t.split_once(' ').unwrap_or(("0", t));
        let d: i64 = days.parse().unwrap_or(0);
        let tod = parse_time(rest)
            .or_else(|| parse_time(&format!("{rest}:00")))
            .ok_or_else(|| crate::error::SqlError::Plan(format!("bad interval '{text}'")))?;
        return Ok(Value::Interval(d * 86_400 * MICROS_PER_SECOND + tod));
    }
    let n: f64 = text
        .trim()
        .parse()
        .map_err(|_| crate::error::SqlError::Plan(format!("bad interval value '{text}'")))?;
    Ok(match unit {
        TimeUnit::Year => Value::Months((n * 12.0) as i32),
        TimeUnit::Quarter => Value::Months((n * 3.0) as i32),
        TimeUnit::Month => Value::Months(n as i32),
        u => match u.fixed_micros() {
            Some(m) => Value::Interval((n * m as f64).round() as i64),
            None => return plan_err(format!("unsupported interval unit {u:?}")),
        },
    })
}

fn ident_parts(e: &sql::Expr) -> Option<Vec<String>> {
    match e {
        sql::Expr::Identifier(i) => Some(vec![i.value.clone()]),
        sql::Expr::CompoundIdentifier(is) => Some(is.iter().map(|i| i.value.clone()).collect()),
        _ => None,
    }
}

impl<'a> Converter<'a> {
    /// A converter over `scope` (no aggregation).
    pub fn new(scope: &'a Scope) -> Self {
        Converter { scope, agg: None }
    }

    fn plain(&self) -> Option<Converter<'a>> {
        self.agg.map(|a| Converter {
            scope: a.input,
            agg: None,
        })
    }

    /// Converts one expression.
    pub fn convert(&self, e: &sql::Expr) -> Result<Expr> {
        if let Some(agg) = self.agg {
            if let sql::Expr::Function(f) = e {
                if let Some((_, col, ty)) = agg.aggs.iter().find(|(a, _, _)| a == f) {
                    return Ok(Expr::col(*col, *ty));
                }
                let name = function_name(f);
                if let Some((ws, we, wt)) = agg.window {
                    for (suffix, col) in [
                        ("_START", ws),
                        ("_END", we),
                        ("_ROWTIME", wt),
                        ("_PROCTIME", wt),
                    ] {
                        if ["TUMBLE", "HOP", "SESSION", "CUMULATE"]
                            .iter()
                            .any(|k| name == format!("{k}{suffix}"))
                        {
                            return Ok(Expr::col(col, agg.window_type));
                        }
                    }
                }
            }
            if let Some(plain) = self.plain() {
                if let Ok(x) = plain.convert(e) {
                    if let Some((_, col)) = agg.groups.iter().find(|(g, _)| *g == x) {
                        return Ok(Expr::col(*col, x.data_type()));
                    }
                    if x.is_constant() {
                        return Ok(x);
                    }
                }
            }
            if let Some(parts) = ident_parts(e) {
                return plan_err(format!(
                    "column `{}` must appear in GROUP BY or be used in an aggregate function",
                    parts.join(".")
                ));
            }
        }
        self.structural(e)
    }

    fn structural(&self, e: &sql::Expr) -> Result<Expr> {
        use sql::Expr as E;
        Ok(match e {
            E::CompoundFieldAccess { root, access_chain } => {
                crate::nested::access_chain(self, root, access_chain, e)?
            }
            E::Array(a) => crate::nested::array(self, &a.elem, &e.to_string())?,
            E::Tuple(items) => {
                let items: Vec<&sql::Expr> = items.iter().collect();
                crate::nested::row(self, &items, &e.to_string())?
            }
            E::Identifier(_) | E::CompoundIdentifier(_) => {
                let parts = ident_parts(e).unwrap_or_default();
                match self.scope.resolve(&parts) {
                    Ok(i) => Expr::col(i, self.scope.schema.fields[i].data_type),
                    Err(err) => {
                        // a ROW column's fields: `o.customer.tier`
                        if let Some(x) = crate::nested::field_path(self, &parts) {
                            return x;
                        }
                        // niladic functions written without parentheses
                        if parts.len() == 1 {
                            let up = parts[0].to_ascii_uppercase();
                            if matches!(
                                up.as_str(),
                                "CURRENT_TIMESTAMP" | "LOCALTIMESTAMP" | "CURRENT_DATE" | "NOW"
                            ) {
                                let func = Func::by_name(&up).unwrap_or(Func::Now);
                                let ty = func
                                    .return_type(&[])
                                    .map_err(crate::error::SqlError::Plan)?;
                                return Ok(Expr::Call {
                                    func,
                                    args: vec![],
                                    ty,
                                });
                            }
                        }
                        return Err(err);
                    }
                }
            }
            E::Value(v) => self.value(&v.value)?,
            E::TypedString(ts) => {
                let text = match &ts.value.value {
                    SqlValue::SingleQuotedString(s) => s.clone(),
                    other => other.to_string(),
                };
                let ty = crate::types::convert(&ts.data_type)?;
                let v = match ty {
                    DataType::Timestamp(_) | DataType::TimestampLtz(_) => {
                        parse_timestamp(&text).map(Value::Timestamp)
                    }
                    DataType::Date => parse_date(&text).map(Value::Date),
                    DataType::Time(_) => parse_time(&text).map(Value::Time),
                    _ => None,
                };
                match v {
                    Some(v) => lit(v, ty),
                    None => return plan_err(format!("bad {ty} literal '{text}'")),
                }
            }
            E::Interval(iv) => {
                let v = interval_value(iv)?;
                let ty = if matches!(v, Value::Months(_)) {
                    DataType::IntervalYearMonth
                } else {
                    DataType::IntervalDayTime
                };
                lit(v, ty)
            }
            E::Nested(inner) => self.convert(inner)?,
            E::BinaryOp { left, op, right } => {
                let l = self.convert(left)?;
                let r = self.convert(right)?;
                let bop = match op {
                    BinaryOperator::Plus => BinOp::Add,
                    BinaryOperator::Minus => BinOp::Sub,
                    BinaryOperator::Multiply => BinOp::Mul,
                    BinaryOperator::Divide => BinOp::Div,
                    BinaryOperator::Modulo => BinOp::Mod,
                    BinaryOperator::Eq => BinOp::Eq,
                    BinaryOperator::NotEq => BinOp::NotEq,
                    BinaryOperator::Lt => BinOp::Lt,
                    BinaryOperator::LtEq => BinOp::LtEq,
                    BinaryOperator::Gt => BinOp::Gt,
                    BinaryOperator::GtEq => BinOp::GtEq,
                    BinaryOperator::And => BinOp::And,
                    BinaryOperator::Or => BinOp::Or,
                    BinaryOperator::StringConcat => BinOp::Concat,
                    other => return plan_err(format!("unsupported operator {other} in `{e}`")),
                };
                binary(bop, l, r)
                    .map_err(|err| crate::error::SqlError::Plan(format!("in `{e}`: {err}")))?
            }
            E::UnaryOp { op, expr } => {
                let x = self.convert(expr)?;
                match op {
                    UnaryOperator::Not => Expr::Unary {
                        op: UnOp::Not,
                        arg: Box::new(x),
                        ty: DataType::Boolean,
                    },
                    UnaryOperator::Minus => {
                        if let Expr::Literal { value, ty } = &x {
                            let v = match value {
                                Value::Int(i) => Value::Int(-i),
                                Value::Float(f) => Value::Float(-f),
                                Value::Decimal(d) => Value::Decimal(-d),
                                Value::Interval(i) => Value::Interval(-i),
                                other => *other,
                            };
                            lit(v, *ty)
                        } else {
                            let ty = x.data_type();
                            Expr::Unary {
                                op: UnOp::Neg,
                                arg: Box::new(x),
                                ty,
                            }
                        }
                    }
                    UnaryOperator::Plus => x,
                    other => return plan_err(format!("unsupported operator {other} in `{e}`")),
                }
            }
            E::IsDistinctFrom(a, b) | E::IsNotDistinctFrom(a, b) => {
                // NULL-safe comparison: CASE WHEN a IS NULL THEN b IS [NOT] NULL
                // WHEN b IS NULL THEN TRUE|FALSE ELSE a <> b | a = b END
                let distinct = matches!(e, E::IsDistinctFrom(..));
                let (l, r) = (self.convert(a)?, self.convert(b)?);
                let is = |op: UnOp, x: &Expr| Expr::Unary {
                    op,
                    arg: Box::new(x.clone()),
                    ty: DataType::Boolean,
                };
                let cmp = if distinct { BinOp::NotEq } else { BinOp::Eq };
                Expr::Case {
                    operand: None,
                    whens: vec![
                        (
                            is(UnOp::IsNull, &l),
                            is(
                                if distinct {
                                    UnOp::IsNotNull
                                } else {
                                    UnOp::IsNull
                                },
                                &r,
                            ),
                        ),
                        (
                            is(UnOp::IsNull, &r),
                            Expr::Literal {
                                value: Value::Bool(distinct),
                                ty: DataType::Boolean,
                            },
                        ),
                    ],
                    otherwise: Some(Box::new(binary(cmp, l, r)?)),
                    ty: DataType::Boolean,
                }
            }
            E::IsNull(x) => self.unary(UnOp::IsNull, x)?,
            E::IsJson {
                expr,
                kind,
                unique_keys,
                negated,
            } => crate::json::is_json(self, expr, *kind, unique_keys.is_some(), *negated, e)?,
            E::IsNotNull(x) => self.unary(UnOp::IsNotNull, x)?,
            E::IsTrue(x) => self.unary(UnOp::IsTrue, x)?,
            E::IsFalse(x) => self.unary(UnOp::IsFalse, x)?,
            E::IsNotTrue(x) => self.unary(UnOp::IsNotTrue, x)?,
            E::IsNotFalse(x) => self.unary(UnOp::IsNotFalse, x)?,
            E::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let x = self.convert(expr)?;
                let lo = binary(BinOp::GtEq, x.clone(), self.convert(low)?)?;
                let hi = binary(BinOp::LtEq, x, self.convert(high)?)?;
                let both = binary(BinOp::And, lo, hi)?;
                if *negated {
                    Expr::Unary {
                        op: UnOp::Not,
                        arg: Box::new(both),
                        ty: DataType::Boolean,
                    }
                } else {
                    both
                }
            }
            E::In {
                expr,
                target,
                negated,
                ..
            } => {
                let sql::InTarget::List(list) = target else {
                    return plan_err(format!("IN with a subquery is not supported: `{e}`"));
                };
                let x = self.convert(expr)?;
                let items: Vec<Expr> = list
                    .iter()
                    .map(|i| self.convert(i))
                    .collect::<Result<_>>()?;
                let mut common = x.data_type();
                for it in &items {
                    common = DataType::common(common, it.data_type())
                        .or(if it.data_type().is_string() {
                            Some(common)
                        } else {
                            None
                        })
                        .ok_or_else(|| {
                            crate::error::SqlError::Plan(format!("IN list mixes types in `{e}`"))
                        })?;
                }
                Expr::InList {
                    arg: Box::new(cast_to(x, common)),
                    list: items.into_iter().map(|i| cast_to(i, common)).collect(),
                    negated: *negated,
                }
            }
            E::Like {
                negated,
                expr,
                pattern,
                escape_char,
                any,
            } => {
                if *any || escape_char.is_some() {
                    return plan_err(format!("LIKE ANY / ESCAPE is not supported: `{e}`"));
                }
                let s = DataType::String(None);
                Expr::Like {
                    arg: Box::new(cast_to(self.convert(expr)?, s)),
                    pattern: Box::new(cast_to(self.convert(pattern)?, s)),
                    negated: *negated,
                }
            }
            E::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                let op = operand.as_ref().map(|o| self.convert(o)).transpose()?;
                let mut whens = Vec::new();
                let mut ty = DataType::Null;
                for c in conditions {
                    let cond = self.convert(&c.condition)?;
                    let res = self.convert(&c.result)?;
                    ty = DataType::common(ty, res.data_type()).ok_or_else(|| {
                        crate::error::SqlError::Plan(format!(
                            "CASE branches mix {ty} and {} in `{e}`",
                            res.data_type()
                        ))
                    })?;
                    whens.push((cond, res));
                }
                let otherwise = else_result.as_ref().map(|x| self.convert(x)).transpose()?;
                if let Some(o) = &otherwise {
                    ty = DataType::common(ty, o.data_type()).ok_or_else(|| {
                        crate::error::SqlError::Plan(format!(
                            "CASE branches mix {ty} and {} in `{e}`",
                            o.data_type()
                        ))
                    })?;
                }
                let operand = match op {
                    Some(o) => {
                        let mut ct = o.data_type();
                        for (c, _) in &whens {
                            ct = DataType::common(ct, c.data_type()).unwrap_or(ct);
                        }
                        whens = whens
                            .into_iter()
                            .map(|(c, r)| (cast_to(c, ct), r))
                            .collect();
                        Some(Box::new(cast_to(o, ct)))
                    }
                    None => None,
                };
                Expr::Case {
                    operand,
                    whens: whens
                        .into_iter()
                        .map(|(c, r)| (c, cast_to(r, ty)))
                        .collect(),
                    otherwise: otherwise.map(|o| Box::new(cast_to(o, ty))),
                    ty,
                }
            }
            E::Cast {
                kind,
                expr,
                data_type,
                ..
            } => {
                let x = self.convert(expr)?;
                let to = crate::types::convert(data_type)?;
                Expr::Cast {
                    from: x.data_type(),
                    arg: Box::new(x),
                    to,
                    safe: matches!(kind, CastKind::TryCast | CastKind::SafeCast),
                }
            }
            E::Extract { field, expr, .. } => {
                let unit = unit_of(field)?;
                let x = self.convert(expr)?;
                Expr::Call {
                    func: Func::Extract(unit),
                    args: vec![x],
                    ty: DataType::BigInt,
                }
            }
            E::Floor { expr, field } | E::Ceil { expr, field } => {
                let is_floor = matches!(e, E::Floor { .. });
                let x = self.convert(expr)?;
                let ty = x.data_type();
                match field {
                    CeilFloorKind::DateTimeField(f)
                        if !matches!(f, sql::DateTimeField::NoDateTime) =>
                    {
                        let u = unit_of(f)?;
                        let func = if is_floor {
                            Func::FloorTime(u)
                        } else {
                            Func::CeilTime(u)
                        };
                        Expr::Call {
                            func,
                            args: vec![x],
                            ty,
                        }
                    }
                    _ => {
                        let func = if is_floor { Func::Floor } else { Func::Ceil };
                        let ty = match ty {
                            DataType::Decimal(p, _) => DataType::Decimal(p, 0),
                            t => t,
                        };
                        Expr::Call {
                            func,
                            args: vec![x],
                            ty,
                        }
                    }
                }
            }
            E::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                let mut args = vec![cast_to(self.convert(expr)?, DataType::String(None))];
                args.push(match substring_from {
                    Some(f) => self.convert(f)?,
                    None => lit(Value::Int(1), DataType::Int),
                });
                if let Some(f) = substring_for {
                    args.push(self.convert(f)?);
                }
                Expr::Call {
                    func: Func::Substring,
                    args,
                    ty: DataType::String(None),
                }
            }
            E::Trim {
                trim_where,
                trim_what,
                expr,
                trim_characters,
            } => {
                let func = match trim_where {
                    Some(sql::TrimWhereField::Leading) => Func::Ltrim,
                    Some(sql::TrimWhereField::Trailing) => Func::Rtrim,
                    _ => Func::Trim,
                };
                let mut args = vec![self.convert(expr)?];
                let chars = match (trim_what.as_deref(), trim_characters.as_deref()) {
                    (Some(chars), None) | (None, Some([chars])) => Some(self.convert(chars)?),
                    (None, None) => None,
                    _ => return plan_err(format!("TRIM takes one string of characters: `{e}`")),
                };
                if let Some(c) = chars {
                    if !c.data_type().is_string() {
                        return plan_err(format!(
                            "TRIM's characters must be a string, not {}: `{e}`",
                            c.data_type()
                        ));
                    }
                    args.push(c);
                }
                Expr::Call {
                    func,
                    args,
                    ty: DataType::String(None),
                }
            }
            E::Overlay {
                expr,
                overlay_what,
                overlay_from,
                overlay_for,
            } => {
                let mut args = vec![
                    cast_to(self.convert(expr)?, DataType::String(None)),
                    cast_to(self.convert(overlay_what)?, DataType::String(None)),
                    self.convert(overlay_from)?,
                ];
                if let Some(f) = overlay_for {
                    args.push(self.convert(f)?);
                }
                Expr::Call {
                    func: Func::Overlay,
                    args,
                    ty: DataType::String(None),
                }
            }
            E::Position { expr, r#in } => Expr::Call {
                func: Func::Position,
                args: vec![self.convert(expr)?, self.convert(r#in)?],
                ty: DataType::Int,
            },
            E::Function(f) => self.function(f)?,
            other => return plan_err(format!("unsupported expression `{other}`")),
        })
    }

    fn unary(&self, op: UnOp, x: &sql::Expr) -> Result<Expr> {
        Ok(Expr::Unary {
            op,
            arg: Box::new(self.convert(x)?),
            ty: DataType::Boolean,
        })
    }

    fn value(&self, v: &SqlValue) -> Result<Expr> {
        Ok(match v {
            SqlValue::Number(n, _) => {
                if n.contains(['e', 'E']) {
                    lit(
                        Value::Float(n.parse().unwrap_or(f64::NAN)),
                        DataType::Double,
                    )
                } else if n.contains('.') {
                    match decimal_literal(n) {
                        Some((v, p, s)) => lit(Value::Decimal(v), DataType::Decimal(p, s)),
                        None => return plan_err(format!("bad number {n}")),
                    }
                } else {
                    match n.parse::<i64>() {
                        Ok(i) if i32::try_from(i).is_ok() => lit(Value::Int(i), DataType::Int),
                        Ok(i) => lit(Value::Int(i), DataType::BigInt),
                        Err(_) => match decimal_literal(n) {
                            Some((v, p, s)) => lit(Value::Decimal(v), DataType::Decimal(p, s)),
                            None => return plan_err(format!("bad number {n}")),
                        },
                    }
                }
            }
            SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => {
                Expr::StrLiteral(s.as_str().into())
            }
            SqlValue::Boolean(b) => lit(Value::Bool(*b), DataType::Boolean),
            SqlValue::Null => lit(Value::Null, DataType::Null),
            other => return plan_err(format!("unsupported literal {other}")),
        })
    }

    fn function(&self, f: &sql::Function) -> Result<Expr> {
        let name = function_name(f);
        if f.over.is_some() {
            return plan_err(format!(
                "{name}() OVER (...) is supported only as ROW_NUMBER() in a Top-N or deduplication query: `{f}`"
            ));
        }
        if is_aggregate(f) {
            return plan_err(format!("aggregate {name}() is not allowed here: `{f}`"));
        }
        if matches!(name.as_str(), "TUMBLE" | "HOP" | "SESSION" | "CUMULATE")
            || name.ends_with("_START") && !name.starts_with("DATE")
        {
            return plan_err(format!("window function {name}() is only valid in GROUP BY / the SELECT list of a window aggregation: `{f}`"));
        }
        if let Some(x) = crate::nested::function(self, &name, f) {
            return x;
        }
        if matches!(name.as_str(), "JSON_OBJECT" | "JSON_ARRAY" | "JSON_STRING") {
            return crate::json::build_function(self, &name, f);
        }
        if matches!(name.as_str(), "JSON_VALUE" | "JSON_QUERY" | "JSON_EXISTS") {
            return crate::json::function(self, &name, f);
        }
        if name == "PROCTIME" {
            return Ok(Expr::Call {
                func: Func::Now,
                args: vec![],
                ty: DataType::TimestampLtz(3),
            });
        }
        if name == "TIMESTAMPDIFF" {
            let args = function_args(f)?;
            let (Some(Some(unit)), Some(Some(a)), Some(Some(b))) =
                (args.first(), args.get(1), args.get(2))
            else {
                return plan_err(format!(
                    "TIMESTAMPDIFF(unit, a, b) takes three arguments: `{f}`"
                ));
            };
            let u = TimeUnit::parse(&unit.to_string())
                .ok_or_else(|| crate::error::SqlError::Plan(format!("unknown unit {unit}")))?;
            return Ok(Expr::Call {
                func: Func::TimestampDiff(u),
                args: vec![self.convert(a)?, self.convert(b)?],
                ty: DataType::Int,
            });
        }
        if name == "TIMESTAMPADD" {
            let args = function_args(f)?;
            let (Some(Some(unit)), Some(Some(n)), Some(Some(t)), None) =
                (args.first(), args.get(1), args.get(2), args.get(3))
            else {
                return plan_err(format!(
                    "TIMESTAMPADD(unit, n, timestamp) takes three arguments: `{f}`"
                ));
            };
            let u = TimeUnit::parse(&unit.to_string())
                .filter(|u| {
                    !matches!(
                        u,
                        TimeUnit::DayOfWeek | TimeUnit::DayOfYear | TimeUnit::Epoch
                    )
                })
                .ok_or_else(|| {
                    crate::error::SqlError::Plan(format!("unknown unit {unit} in `{f}`"))
                })?;
            let n = self.convert(n)?;
            if !n.data_type().is_integer() {
                return plan_err(format!(
                    "TIMESTAMPADD's count must be an integer, not {}: `{f}`",
                    n.data_type()
                ));
            }
            let n = cast_to(n, DataType::BigInt);
            let t = self.convert(t)?;
            let func = Func::TimestampAdd(u);
            let ty = func
                .return_type(&[n.data_type(), t.data_type()])
                .map_err(|m| crate::error::SqlError::Plan(format!("{m} in `{f}`")))?;
            if ty == DataType::Date && u.fixed_micros().is_some_and(|m| m < 86_400_000_000) {
                return plan_err(format!(
                    "TIMESTAMPADD of {unit} to a DATE is not supported yet (cast the date to TIMESTAMP): `{f}`"
                ));
            }
            return Ok(Expr::Call {
                func,
                args: vec![n, t],
                ty,
            });
        }
        if name == "LEAD" {
            return plan_err(format!(
                "LEAD is not supported in streaming mode, as in Flink 2.3 (\"LEAD Function is not supported in stream mode\"); use LAG: `{f}`"
            ));
        }
        if name == "APPROX_COUNT_DISTINCT" {
            // Flink 2.3: "APPROX_COUNT_DISTINCT aggregate function does not support yet for
            // streaming" (window aggregates included); only batch mode plans it
            return plan_err(format!(
                "APPROX_COUNT_DISTINCT is not supported in streaming mode (Flink 2.3 plans it only in batch mode; use COUNT(DISTINCT …)): `{f}`"
            ));
        }
        let Some(func) = Func::by_name(&name) else {
            return plan_err(format!("unknown function {name}() in `{f}`"));
        };
        let args: Vec<Expr> = function_args(f)?
            .into_iter()
            .map(|a| match a {
                Some(a) => self.convert(a),
                None => plan_err(format!("`*` is not a valid argument of {name}()")),
            })
            .collect::<Result<_>>()?;
        if let FunctionArguments::List(l) = &f.args {
            if l.duplicate_treatment == Some(DuplicateTreatment::Distinct) {
                return plan_err(format!(
                    "DISTINCT is only valid in aggregate functions: `{f}`"
                ));
            }
        }
        let types: Vec<DataType> = args.iter().map(Expr::data_type).collect();
        let ty = func
            .return_type(&types)
            .map_err(|m| crate::error::SqlError::Plan(format!("{m} in `{f}`")))?;
        // implicit casts of arguments
        let args = match func {
            Func::Coalesce | Func::IfNull | Func::NullIf | Func::Greatest | Func::Least => {
                args.into_iter().map(|a| cast_to(a, ty)).collect()
            }
            Func::If => {
                let mut it = args.into_iter();
                let c = it
                    .next()
                    .ok_or_else(|| crate::error::SqlError::Plan("IF needs arguments".into()))?;
                let mut v = vec![c];
                v.extend(it.map(|a| cast_to(a, ty)));
                v
            }
            Func::Concat
            | Func::ConcatWs
            | Func::Upper
            | Func::Lower
            | Func::Trim
            | Func::Ltrim
            | Func::Rtrim
            | Func::Initcap
            | Func::Replace
            | Func::CharLength
            | Func::Reverse
            | Func::Md5
            | Func::Sha1
            | Func::Sha224
            | Func::Sha256
            | Func::Sha384
            | Func::Sha512
            | Func::ToBase64
            | Func::FromBase64
            | Func::ConvertTz
            | Func::RegexpReplace
            | Func::Regexp
            | Func::StrToMap => args
                .into_iter()
                .map(|a| cast_to(a, DataType::String(None)))
                .collect(),
            Func::Left
            | Func::Right
            | Func::Repeat
            | Func::Sha2
            | Func::SplitIndex
            | Func::RegexpExtract => {
                let n = args.len();
                let mut out = Vec::with_capacity(n);
                for (i, a) in args.into_iter().enumerate() {
                    let last_is_int = i == n - 1 && !matches!(func, Func::RegexpExtract)
                        || (func == Func::RegexpExtract && i == 2);
                    if last_is_int {
                        if !a.data_type().is_integer() && a.data_type() != DataType::Null {
                            return plan_err(format!(
                                "{name}'s last argument must be an integer, not {}: `{f}`",
                                a.data_type()
                            ));
                        }
                        out.push(cast_to(a, DataType::BigInt));
                    } else {
                        out.push(cast_to(a, DataType::String(None)));
                    }
                }
                out
            }
            _ => args,
        };
        if func == Func::Sha2 {
            if let Some(bits) = args.get(1).filter(|a| a.is_constant()) {
                let mut heap = vec![];
                let v = bits
                    .eval(&tillflow_types::Row::default(), &mut heap)
                    .map_err(|e| crate::error::SqlError::Plan(e.to_string()))?;
                if let Value::Int(b) = v {
                    if ![224, 256, 384, 512].contains(&b) {
                        return plan_err(format!(
                            "SHA2: unsupported hash length {b} (224, 256, 384 or 512; Flink fails the job): `{f}`"
                        ));
                    }
                }
            }
        }
        if func == Func::DateFormat {
            if let Some(p) = args.get(1).filter(|a| a.is_constant()) {
                let mut heap = vec![];
                if let Ok(Value::Str(r)) = p.eval(&tillflow_types::Row::default(), &mut heap) {
                    let pat = tillflow_types::value::heap_str(&heap, r);
                    tillflow_runtime::functions::check_datetime_pattern(pat)
                        .map_err(|m| crate::error::SqlError::Plan(format!("{m}: `{f}`")))?;
                }
            }
        }
        if func.uses_regex() {
            return prepare_regex(func, args, ty, &f.to_string());
        }
        Ok(Expr::Call { func, args, ty })
    }
}

/// A REGEXP function or STR_TO_MAP with its patterns compiled (constant ones now: one Java
/// feature the engine lacks is a plan error naming it).
fn prepare_regex(func: Func, args: Vec<Expr>, ty: DataType, text: &str) -> Result<Expr> {
    use tillflow_runtime::expr::{PatternArg, Prepared};
    let check = |p: &PatternArg| -> Result<()> {
        if let PatternArg::Fixed(Err(
            e @ tillflow_runtime::jregex::RegexError::Unsupported { .. },
        )) = p
        {
            return plan_err(format!("{e}: `{text}`"));
        }
        Ok(())
    };
    let state = if func == Func::StrToMap {
        if args.len() == 3 {
            Prepared {
                pattern: PatternArg::new(&args[1]),
                kv: Some(PatternArg::new(&args[2])),
                positions: (Some(1), Some(2)),
                json: None,
            }
        } else {
            Prepared {
                pattern: PatternArg::fixed(","),
                kv: Some(PatternArg::fixed("=")),
                positions: (None, None),
                json: None,
            }
        }
    } else {
        Prepared {
            pattern: PatternArg::new(&args[1]),
            kv: None,
            positions: (Some(1), None),
            json: None,
        }
    };
    check(&state.pattern)?;
    if let Some(kv) = &state.kv {
        check(kv)?;
    }
    Ok(Expr::Prepared {
        func,
        args,
        state: std::sync::Arc::new(state),
        ty,
    })
}

/// The output name Flink gives a select item without an alias.
pub fn derive_name(e: &sql::Expr, position: usize) -> String {
    match ident_parts(e) {
        Some(parts) => parts.last().cloned().unwrap_or_default(),
        None => format!("EXPR${position}"),
    }
}

/// A field for an expression result.
pub fn field_for(name: String, e: &Expr, time: TimeAttribute) -> Field {
    Field {
        name,
        data_type: e.data_type(),
        nullable: true,
        time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::GenericDialect;
    use sqlparser::parser::Parser;

    fn conv(sql_text: &str) -> Result<Expr> {
        let scope = Scope::new(
            Schema::new(vec![
                Field::new("qty", DataType::Int),
                Field::new("price", DataType::Double),
                Field::new("channel", DataType::String(None)),
                Field::new("ts", DataType::Timestamp(3)),
                Field::new("amount", DataType::Decimal(10, 2)),
            ]),
            Some("e".into()),
        );
        let e = Parser::new(&GenericDialect {})
            .try_with_sql(sql_text)
            .unwrap()
            .parse_expr()
            .unwrap();
        Converter::new(&scope).convert(&e)
    }

    #[test]
    fn types_follow_flink() {
        assert_eq!(conv("qty * price").unwrap().data_type(), DataType::Double);
        assert_eq!(conv("qty * 2").unwrap().data_type(), DataType::Int);
        assert_eq!(
            conv("qty * 1.5").unwrap().data_type(),
            DataType::Decimal(12, 1)
        );
        assert_eq!(
            conv("amount + amount").unwrap().data_type(),
            DataType::Decimal(11, 2)
        );
        assert_eq!(
            conv("e.ts - INTERVAL '5' SECOND").unwrap().data_type(),
            DataType::Timestamp(3)
        );
        assert_eq!(
            conv("COALESCE(channel, 'x')").unwrap().data_type(),
            DataType::String(None)
        );
        assert_eq!(
            conv("CAST(qty AS BIGINT)").unwrap().data_type(),
            DataType::BigInt
        );
        assert_eq!(
            conv("FLOOR(ts TO HOUR)").unwrap().data_type(),
            DataType::Timestamp(3)
        );
        assert_eq!(
            conv("EXTRACT(HOUR FROM ts)").unwrap().data_type(),
            DataType::BigInt
        );
        assert_eq!(
            conv("ts > '2024-03-01 00:00:00'").unwrap().data_type(),
            DataType::Boolean
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let e = conv("nope + 1").unwrap_err().to_string();
        assert!(e.contains("`nope` not found") && e.contains("qty"), "{e}");
        let e = conv("FROB(qty)").unwrap_err().to_string();
        assert!(e.contains("unknown function FROB"), "{e}");
        let e = conv("channel + 1").unwrap_err().to_string();
        assert!(e.contains("cannot apply +"), "{e}");
    }

    #[test]
    fn evaluates_constants() {
        let v = eval_const(&conv("INTERVAL '1' MINUTE").unwrap()).unwrap();
        assert_eq!(v, Value::Interval(60 * MICROS_PER_SECOND));
        let v = eval_const(&conv("UPPER('ab') || 'c'").unwrap()).unwrap();
        assert!(matches!(v, Value::Str(_)));
    }
}
