//! Compiled scalar expressions and their evaluation over one row.
//!
//! The SQL planner resolves names and types and inserts the implicit casts Flink would insert, so
//! an [`Expr`] here is fully typed: binary operators see operands of one common type (decimals
//! excepted) and only narrow their result. Evaluation follows one rule for strings: every string an
//! expression returns lives in the `out` heap passed to [`Expr::eval`] (column references copy their
//! bytes there), so nested expressions never need to know which row a string came from, and
//! nothing allocates once the heap has grown to a record's size.

use crate::cast::cast_value;
use crate::error::{Result, RuntimeError};
use crate::functions::{call, Func};
use crate::jregex::{JavaRegex, RegexCache, RegexError};
use std::cmp::Ordering;
use tillflow_types::value::{copy_value, heap_bytes, heap_str, push_str};
use tillflow_types::{DataType, Row, Value};

/// Binary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%` / `MOD`
    Mod,
    /// `=`
    Eq,
    /// `<>`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
    /// `AND` (three-valued)
    And,
    /// `OR` (three-valued)
    Or,
    /// `||` string concatenation
    Concat,
}

impl BinOp {
    /// True for the comparison operators.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::NotEq | BinOp::Lt | BinOp::LtEq | BinOp::Gt | BinOp::GtEq
        )
    }

    /// True for `+ - * / %`.
    pub fn is_arithmetic(self) -> bool {
        matches!(
            self,
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod
        )
    }

    /// The SQL spelling.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Eq => "=",
            BinOp::NotEq => "<>",
            BinOp::Lt => "<",
            BinOp::LtEq => "<=",
            BinOp::Gt => ">",
            BinOp::GtEq => ">=",
            BinOp::And => "AND",
            BinOp::Or => "OR",
            BinOp::Concat => "||",
        }
    }
}

/// Unary operators and predicates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnOp {
    /// Arithmetic negation.
    Neg,
    /// Logical NOT (three-valued).
    Not,
    /// `IS NULL`
    IsNull,
    /// `IS NOT NULL`
    IsNotNull,
    /// `IS TRUE`
    IsTrue,
    /// `IS FALSE`
    IsFalse,
    /// `IS NOT TRUE`
    IsNotTrue,
    /// `IS NOT FALSE`
    IsNotFalse,
}

/// A typed scalar expression over the columns of one input row.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// The value of input column `index`.
    Column {
        /// Column position.
        index: usize,
        /// Column type.
        ty: DataType,
    },
    /// A constant that is not a string.
    Literal {
        /// The constant.
        value: Value,
        /// Its type.
        ty: DataType,
    },
    /// A string constant.
    StrLiteral(Box<str>),
    /// A unary operator.
    Unary {
        /// The operator.
        op: UnOp,
        /// Operand.
        arg: Box<Expr>,
        /// Result type.
        ty: DataType,
    },
    /// A binary operator; the planner has cast both operands to a common type (except decimals).
    Binary {
        /// The operator.
        op: BinOp,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
        /// Result type.
        ty: DataType,
    },
    /// `CASE [operand] WHEN .. THEN .. [ELSE ..] END`; branch results are cast to `ty`.
    Case {
        /// The operand compared with each WHEN value, if any.
        operand: Option<Box<Expr>>,
        /// (condition or value, result) pairs.
        whens: Vec<(Expr, Expr)>,
        /// The ELSE result (NULL when absent).
        otherwise: Option<Box<Expr>>,
        /// Result type.
        ty: DataType,
    },
    /// `CAST(arg AS to)` or `TRY_CAST` (`safe`: NULL instead of an error).
    Cast {
        /// Operand.
        arg: Box<Expr>,
        /// Operand type.
        from: DataType,
        /// Target type.
        to: DataType,
        /// TRY_CAST semantics.
        safe: bool,
    },
    /// A built-in function.
    Call {
        /// Which function.
        func: Func,
        /// Arguments.
        args: Vec<Expr>,
        /// Result type.
        ty: DataType,
    },
    /// A built-in function with state prepared at plan time: the REGEXP functions and STR_TO_MAP,
    /// whose patterns are compiled once (when constant) or cached.
    Prepared {
        /// Which function.
        func: Func,
        /// Arguments.
        args: Vec<Expr>,
        /// The compiled patterns.
        state: std::sync::Arc<Prepared>,
        /// Result type.
        ty: DataType,
    },
    /// A call of a Python function (`CREATE FUNCTION … LANGUAGE PYTHON`): the planner moves it
    /// into a `PythonCalc`, which computes it for bundles of rows; it is never evaluated in
    /// place.
    Python(Box<crate::python::PyCallExpr>),
    /// `arg [NOT] IN (list)`; list items share the argument's type.
    InList {
        /// Tested value.
        arg: Box<Expr>,
        /// Candidates.
        list: Vec<Expr>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `arg [NOT] LIKE pattern` with `%` and `_`.
    Like {
        /// Tested string.
        arg: Box<Expr>,
        /// Pattern.
        pattern: Box<Expr>,
        /// `NOT LIKE`.
        negated: bool,
    },
}

/// Maximum number of arguments evaluated on the stack for one function call.
pub const MAX_ARGS: usize = 16;

impl Expr {
    /// The result type.
    pub fn data_type(&self) -> DataType {
        match self {
            Expr::Column { ty, .. }
            | Expr::Literal { ty, .. }
            | Expr::Unary { ty, .. }
            | Expr::Binary { ty, .. }
            | Expr::Case { ty, .. }
            | Expr::Call { ty, .. }
            | Expr::Prepared { ty, .. } => *ty,
            Expr::StrLiteral(_) => DataType::String(None),
            Expr::Cast { to, .. } => *to,
            Expr::InList { .. } | Expr::Like { .. } => DataType::Boolean,
            Expr::Python(c) => c.ty,
        }
    }

    /// A column reference.
    pub fn col(index: usize, ty: DataType) -> Expr {
        Expr::Column { index, ty }
    }

    /// True when the expression reads no column and calls nothing time-dependent.
    pub fn is_constant(&self) -> bool {
        match self {
            Expr::Column { .. } => false,
            Expr::Literal { .. } | Expr::StrLiteral(_) => true,
            Expr::Unary { arg, .. } | Expr::Cast { arg, .. } => arg.is_constant(),
            Expr::Binary { left, right, .. } => left.is_constant() && right.is_constant(),
            Expr::Case {
                operand,
                whens,
                otherwise,
                ..
            } => {
                operand.as_ref().is_none_or(|o| o.is_constant())
                    && whens
                        .iter()
                        .all(|(a, b)| a.is_constant() && b.is_constant())
                    && otherwise.as_ref().is_none_or(|o| o.is_constant())
            }
            Expr::Call { func, args, .. } | Expr::Prepared { func, args, .. } => {
                func.is_deterministic() && args.iter().all(Expr::is_constant)
            }
            Expr::InList { arg, list, .. } => {
                arg.is_constant() && list.iter().all(Expr::is_constant)
            }
            Expr::Like { arg, pattern, .. } => arg.is_constant() && pattern.is_constant(),
            Expr::Python(_) => false,
        }
    }

    /// Evaluates the expression over `row`; strings in the result live in `out`.
    pub fn eval(&self, row: &Row, out: &mut Vec<u8>) -> Result<Value> {
        match self {
            Expr::Column { index, .. } => {
                let v = row.values.get(*index).copied().unwrap_or(Value::Null);
                Ok(copy_value(v, &row.heap, out))
            }
            Expr::Literal { value, .. } => Ok(*value),
            Expr::StrLiteral(s) => Ok(Value::Str(push_str(out, s))),
            Expr::Unary { op, arg, .. } => {
                let v = arg.eval(row, out)?;
                unary(*op, v)
            }
            Expr::Binary {
                op,
                left,
                right,
                ty,
            } => {
                match op {
                    BinOp::And => {
                        let l = left.eval(row, out)?;
                        if l == Value::Bool(false) {
                            return Ok(l);
                        }
                        let r = right.eval(row, out)?;
                        return Ok(match (l, r) {
                            (_, Value::Bool(false)) => Value::Bool(false),
                            (Value::Bool(true), Value::Bool(true)) => Value::Bool(true),
                            _ => Value::Null,
                        });
                    }
                    BinOp::Or => {
                        let l = left.eval(row, out)?;
                        if l == Value::Bool(true) {
                            return Ok(l);
                        }
                        let r = right.eval(row, out)?;
                        return Ok(match (l, r) {
                            (_, Value::Bool(true)) => Value::Bool(true),
                            (Value::Bool(false), Value::Bool(false)) => Value::Bool(false),
                            _ => Value::Null,
                        });
                    }
                    _ => {}
                }
                let l = left.eval(row, out)?;
                let r = right.eval(row, out)?;
                if l.is_null() || r.is_null() {
                    return Ok(Value::Null);
                }
                if op.is_comparison() {
                    let ord = compare(l, r, out);
                    return Ok(match ord {
                        None => Value::Null,
                        Some(o) => Value::Bool(match op {
                            BinOp::Eq => o == Ordering::Equal,
                            BinOp::NotEq => o != Ordering::Equal,
                            BinOp::Lt => o == Ordering::Less,
                            BinOp::LtEq => o != Ordering::Greater,
                            BinOp::Gt => o == Ordering::Greater,
                            _ => o != Ordering::Less,
                        }),
                    });
                }
                if *op == BinOp::Concat {
                    return Ok(concat(&[l, r], out));
                }
                arithmetic(*op, l, left.data_type(), r, right.data_type(), *ty)
            }
            Expr::Case {
                operand,
                whens,
                otherwise,
                ..
            } => {
                let base = match operand {
                    Some(o) => Some(o.eval(row, out)?),
                    None => None,
                };
                for (cond, result) in whens {
                    let c = cond.eval(row, out)?;
                    let hit = match base {
                        Some(b) => {
                            !b.is_null()
                                && !c.is_null()
                                && compare(b, c, out) == Some(Ordering::Equal)
                        }
                        None => c == Value::Bool(true),
                    };
                    if hit {
                        return result.eval(row, out);
                    }
                }
                match otherwise {
                    Some(e) => e.eval(row, out),
                    None => Ok(Value::Null),
                }
            }
            Expr::Cast {
                arg,
                from,
                to,
                safe,
            } => {
                let v = arg.eval(row, out)?;
                match cast_value(v, *from, *to, out) {
                    Ok(v) => Ok(v),
                    Err(_) if *safe => Ok(Value::Null),
                    Err(e) => Err(e),
                }
            }
            Expr::Call { func, args, ty } => {
                if let (
                    Func::Nested(crate::nested_fn::NestedFn::Field(i)),
                    [Expr::Column {
                        index,
                        ty: DataType::Row(r),
                    }],
                ) = (func, args.as_slice())
                {
                    // a field of a ROW column (`bid.price`), read where the row holds it: only
                    // the field is copied, not the whole ROW first
                    return Ok(match row.values.get(*index) {
                        Some(Value::Str(s)) => copy_value(
                            tillflow_types::nested::row_field(&row.heap, *s, r, *i as usize),
                            &row.heap,
                            out,
                        ),
                        _ => Value::Null,
                    });
                }
                eval_call(*func, args, *ty, row, out)
            }
            Expr::Prepared {
                func, args, state, ..
            } => eval_prepared(*func, args, state, row, out),
            Expr::InList { arg, list, negated } => {
                let v = arg.eval(row, out)?;
                if v.is_null() {
                    return Ok(Value::Null);
                }
                let mut saw_null = false;
                for item in list {
                    let c = item.eval(row, out)?;
                    if c.is_null() {
                        saw_null = true;
                    } else if compare(v, c, out) == Some(Ordering::Equal) {
                        return Ok(Value::Bool(!negated));
                    }
                }
                Ok(if saw_null {
                    Value::Null
                } else {
                    Value::Bool(*negated)
                })
            }
            Expr::Like {
                arg,
                pattern,
                negated,
            } => {
                let v = arg.eval(row, out)?;
                let p = pattern.eval(row, out)?;
                match (v, p) {
                    (Value::Str(s), Value::Str(p)) => {
                        let m = like(heap_bytes(out, s), heap_bytes(out, p));
                        Ok(Value::Bool(m != *negated))
                    }
                    _ => Ok(Value::Null),
                }
            }
            Expr::Python(c) => Err(RuntimeError::Eval(format!(
                "internal: Python function {} was not planned into a PythonCalc",
                c.target.name
            ))),
        }
    }

    /// Evaluates a predicate: true only for a TRUE result (NULL and FALSE reject the row).
    #[inline]
    pub fn eval_predicate(&self, row: &Row, scratch: &mut Vec<u8>) -> Result<bool> {
        scratch.clear();
        Ok(self.eval(row, scratch)? == Value::Bool(true))
    }
}

#[inline(never)]
fn eval_call(
    func: Func,
    args: &[Expr],
    ty: DataType,
    row: &Row,
    out: &mut Vec<u8>,
) -> Result<Value> {
    if func.is_lazy() {
        return crate::functions::call_lazy(func, args, row, out);
    }
    let mut vals = [Value::Null; MAX_ARGS];
    let n = args.len().min(MAX_ARGS);
    for (slot, a) in vals.iter_mut().zip(args.iter()) {
        *slot = a.eval(row, out)?;
    }
    call(func, &vals[..n], args, ty, out)
}

/// A pattern argument: compiled at plan time when constant, else cached by text.
#[derive(Debug)]
pub enum PatternArg {
    /// The compiled constant pattern.
    Fixed(Result<JavaRegex, RegexError>),
    /// Compiled on first use of each text.
    Cached(RegexCache),
}

impl PatternArg {
    /// A pattern from its argument expression (compiled now if constant).
    pub fn new(arg: &Expr) -> PatternArg {
        if arg.is_constant() {
            let mut heap = vec![];
            if let Ok(Value::Str(r)) = arg.eval(&Row::default(), &mut heap) {
                return PatternArg::Fixed(JavaRegex::new(heap_str(&heap, r)));
            }
        }
        PatternArg::Cached(RegexCache::default())
    }

    /// A pattern known in advance (STR_TO_MAP's default delimiters).
    pub fn fixed(pattern: &str) -> PatternArg {
        PatternArg::Fixed(JavaRegex::new(pattern))
    }

    fn with<T>(&self, text: &str, f: impl FnOnce(&Result<JavaRegex, RegexError>) -> T) -> T {
        match self {
            PatternArg::Fixed(r) => f(r),
            PatternArg::Cached(c) => f(&c.get(text)),
        }
    }
}

/// The plan-time state of an [`Expr::Prepared`] function.
#[derive(Debug)]
pub struct Prepared {
    /// The pattern (REGEXP*) or the pair delimiter (STR_TO_MAP).
    pub pattern: PatternArg,
    /// STR_TO_MAP's key-value delimiter.
    pub kv: Option<PatternArg>,
    /// Argument positions of `pattern` and `kv` (None: a default, not an argument).
    pub positions: (Option<usize>, Option<usize>),
    /// The JSON functions' compiled path and clauses (then `pattern` is unused).
    pub json: Option<crate::json::JsonSpec>,
}

impl PartialEq for Prepared {
    fn eq(&self, _: &Prepared) -> bool {
        // the state follows from the arguments, which Expr compares
        true
    }
}

#[inline(never)]
fn eval_prepared(
    func: Func,
    args: &[Expr],
    state: &Prepared,
    row: &Row,
    out: &mut Vec<u8>,
) -> Result<Value> {
    let mut vals = [Value::Null; MAX_ARGS];
    let n = args.len().min(MAX_ARGS);
    for (slot, a) in vals.iter_mut().zip(args.iter()) {
        *slot = a.eval(row, out)?;
    }
    let v = &vals[..n];
    if let Some(spec) = &state.json {
        return crate::json::eval(spec, v, out);
    }
    if v.iter().any(Value::is_null) {
        return Ok(Value::Null);
    }
    // a pattern that is not constant is looked up by its text (copied: the heap grows below)
    let text_of = |i: Option<usize>, out: &[u8]| -> String {
        match i.and_then(|i| v.get(i)) {
            Some(Value::Str(r)) => heap_str(out, *r).to_owned(),
            _ => String::new(),
        }
    };
    let needs_text = |p: &PatternArg| matches!(p, PatternArg::Cached(_));
    let p_text = if needs_text(&state.pattern) {
        text_of(state.positions.0, out)
    } else {
        String::new()
    };
    let kv_text = match &state.kv {
        Some(k) if needs_text(k) => text_of(state.positions.1, out),
        _ => String::new(),
    };
    state.pattern.with(&p_text, |re| match &state.kv {
        Some(kv) => kv.with(&kv_text, |kv| {
            crate::strfn::call_regex(func, v, re, Some(kv), out)
        }),
        None => crate::strfn::call_regex(func, v, re, None, out),
    })
}

fn unary(op: UnOp, v: Value) -> Result<Value> {
    Ok(match op {
        UnOp::IsNull => Value::Bool(v.is_null()),
        UnOp::IsNotNull => Value::Bool(!v.is_null()),
        UnOp::IsTrue => Value::Bool(v == Value::Bool(true)),
        UnOp::IsFalse => Value::Bool(v == Value::Bool(false)),
        UnOp::IsNotTrue => Value::Bool(v != Value::Bool(true)),
        UnOp::IsNotFalse => Value::Bool(v != Value::Bool(false)),
        UnOp::Not => match v {
            Value::Bool(b) => Value::Bool(!b),
            _ => Value::Null,
        },
        UnOp::Neg => match v {
            Value::Int(i) => Value::Int(i.wrapping_neg()),
            Value::Float(f) => Value::Float(-f),
            Value::Decimal(d) => Value::Decimal(-d),
            Value::Interval(i) => Value::Interval(-i),
            Value::Months(m) => Value::Months(-m),
            other => other,
        },
    })
}

/// Compares two non-null values of a common type; strings are read from `heap`. `None` when the
/// values cannot be ordered (NaN, or values of unrelated kinds).
pub fn compare(a: Value, b: Value, heap: &[u8]) -> Option<Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(&y)),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(&y),
        (Value::Int(x), Value::Float(y)) => (x as f64).partial_cmp(&y),
        (Value::Float(x), Value::Int(y)) => x.partial_cmp(&(y as f64)),
        (Value::Decimal(x), Value::Decimal(y)) => Some(x.cmp(&y)),
        (Value::Str(x), Value::Str(y)) => Some(heap_bytes(heap, x).cmp(heap_bytes(heap, y))),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(&y)),
        (Value::Timestamp(x), Value::Timestamp(y)) => Some(x.cmp(&y)),
        (Value::Date(x), Value::Date(y)) => Some(x.cmp(&y)),
        (Value::Time(x), Value::Time(y)) => Some(x.cmp(&y)),
        (Value::Interval(x), Value::Interval(y)) => Some(x.cmp(&y)),
        (Value::Months(x), Value::Months(y)) => Some(x.cmp(&y)),
        _ => None,
    }
}

/// Narrows an integer to the width of its type, wrapping as Java does.
#[inline]
pub fn narrow(i: i64, ty: DataType) -> i64 {
    match ty {
        DataType::TinyInt => i as i8 as i64,
        DataType::SmallInt => i as i16 as i64,
        DataType::Int => i as i32 as i64,
        _ => i,
    }
}

/// The scale of a decimal type (0 for anything else).
pub fn scale_of(ty: DataType) -> u8 {
    match ty {
        DataType::Decimal(_, s) => s,
        _ => 0,
    }
}

/// 10^n, if it fits an i128.
#[inline]
pub fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

/// Rescales an unscaled decimal from scale `from` to scale `to`, rounding half away from zero.
/// A value that does not fit saturates (callers check the precision and yield NULL, as Flink does
/// on DECIMAL overflow).
pub fn rescale(v: i128, from: u8, to: u8) -> i128 {
    if to >= from {
        match pow10((to - from) as u32) {
            Some(m) => v.saturating_mul(m),
            None if v == 0 => 0,
            None => {
                if v > 0 {
                    i128::MAX
                } else {
                    i128::MIN
                }
            }
        }
    } else {
        let Some(div) = pow10((from - to) as u32) else {
            return 0;
        };
        let q = v / div;
        let r = v % div;
        if r.abs() >= div - r.abs() {
            q + v.signum()
        } else {
            q
        }
    }
}

/// True when an unscaled decimal has more digits than `ty`'s precision allows.
pub fn exceeds_precision(v: i128, ty: DataType) -> bool {
    match ty {
        DataType::Decimal(p, _) => pow10(p as u32).is_none_or(|m| v.unsigned_abs() >= m as u128),
        _ => false,
    }
}

fn arithmetic(
    op: BinOp,
    l: Value,
    lt: DataType,
    r: Value,
    rt: DataType,
    ty: DataType,
) -> Result<Value> {
    match (l, r) {
        (Value::Int(a), Value::Int(b)) => {
            let v = match op {
                BinOp::Add => a.wrapping_add(b),
                BinOp::Sub => a.wrapping_sub(b),
                BinOp::Mul => a.wrapping_mul(b),
                BinOp::Div | BinOp::Mod => {
                    if b == 0 {
                        return Err(RuntimeError::Eval("division by zero".into()));
                    }
                    if op == BinOp::Div {
                        a.wrapping_div(b)
                    } else {
                        a.wrapping_rem(b)
                    }
                }
                _ => return Ok(Value::Null),
            };
            Ok(Value::Int(narrow(v, ty)))
        }
        (Value::Float(a), Value::Float(b)) => {
            let v = match op {
                BinOp::Add => a + b,
                BinOp::Sub => a - b,
                BinOp::Mul => a * b,
                BinOp::Div => a / b,
                BinOp::Mod => a % b,
                _ => return Ok(Value::Null),
            };
            Ok(Value::Float(if ty == DataType::Float {
                v as f32 as f64
            } else {
                v
            }))
        }
        (Value::Decimal(a), Value::Decimal(b)) => {
            let (sa, sb, s) = (scale_of(lt), scale_of(rt), scale_of(ty));
            let v = match op {
                BinOp::Add => rescale(a, sa, s).wrapping_add(rescale(b, sb, s)),
                BinOp::Sub => rescale(a, sa, s).wrapping_sub(rescale(b, sb, s)),
                BinOp::Mul => rescale(a.saturating_mul(b), sa + sb, s),
                BinOp::Div => {
                    if b == 0 {
                        return Err(RuntimeError::Eval("division by zero".into()));
                    }
                    // a/10^sa / (b/10^sb) at scale s (one extra digit for rounding)
                    let num = rescale(a, sa, s + sb + 1);
                    rescale(num / b, s + 1, s)
                }
                BinOp::Mod => {
                    if b == 0 {
                        return Err(RuntimeError::Eval("division by zero".into()));
                    }
                    let m = sa.max(sb);
                    rescale(rescale(a, sa, m) % rescale(b, sb, m), m, s)
                }
                _ => return Ok(Value::Null),
            };
            if exceeds_precision(v, ty) {
                return Ok(Value::Null); // DECIMAL overflow is NULL in Flink
            }
            Ok(Value::Decimal(v))
        }
        (Value::Timestamp(t), Value::Interval(i)) => match op {
            BinOp::Add => t
                .checked_add(i)
                .map(Value::Timestamp)
                .ok_or_else(out_of_range),
            BinOp::Sub => t
                .checked_sub(i)
                .map(Value::Timestamp)
                .ok_or_else(out_of_range),
            _ => Ok(Value::Null),
        },
        (Value::Interval(i), Value::Timestamp(t)) if op == BinOp::Add => t
            .checked_add(i)
            .map(Value::Timestamp)
            .ok_or_else(out_of_range),
        (Value::Timestamp(t), Value::Months(m)) => {
            let m = if op == BinOp::Sub { -m } else { m };
            Ok(Value::Timestamp(crate::functions::add_months(t, m)))
        }
        (Value::Date(d), Value::Interval(i)) => {
            let days = i / tillflow_types::temporal::MICROS_PER_DAY;
            let days = if op == BinOp::Sub {
                days.checked_neg()
            } else {
                Some(days)
            };
            days.and_then(|n| i32::try_from(d as i64 + n).ok())
                .map(Value::Date)
                .ok_or_else(out_of_range)
        }
        (Value::Interval(a), Value::Interval(b)) => match op {
            BinOp::Add => a
                .checked_add(b)
                .map(Value::Interval)
                .ok_or_else(out_of_range),
            BinOp::Sub => a
                .checked_sub(b)
                .map(Value::Interval)
                .ok_or_else(out_of_range),
            _ => Ok(Value::Null),
        },
        (Value::Interval(a), Value::Int(b)) | (Value::Int(b), Value::Interval(a))
            if op == BinOp::Mul =>
        {
            a.checked_mul(b)
                .map(Value::Interval)
                .ok_or_else(out_of_range)
        }
        _ => Err(RuntimeError::Eval(format!(
            "cannot apply {} to {lt} and {rt}",
            op.symbol()
        ))),
    }
}

/// The error of date-time arithmetic past what a TIMESTAMP (microseconds in 64 bits, about
/// ±292,000 years) or DATE can hold: refused, never wrapped to another year.
fn out_of_range() -> RuntimeError {
    RuntimeError::Eval(
        "date-time arithmetic out of range: the result is beyond the ±292,000 years a TIMESTAMP can hold".into(),
    )
}

/// Concatenates string values whose bytes live in `out`, appending the result to `out`.
/// Any NULL argument makes the result NULL (as `||` and CONCAT do in Flink).
pub fn concat(parts: &[Value], out: &mut Vec<u8>) -> Value {
    if parts.iter().any(Value::is_null) {
        return Value::Null;
    }
    let start = out.len();
    for p in parts {
        if let Value::Str(s) = p {
            let (a, b) = (s.off as usize, s.off as usize + s.len as usize);
            out.extend_from_within(a..b);
        }
    }
    Value::Str(tillflow_types::StrRef {
        off: start as u32,
        len: (out.len() - start) as u32,
    })
}

/// SQL LIKE matching with `%` (any run) and `_` (one character) over UTF-8 bytes.
pub fn like(s: &[u8], p: &[u8]) -> bool {
    let (mut si, mut pi) = (0usize, 0usize);
    let (mut star_p, mut star_s) = (usize::MAX, 0usize);
    while si < s.len() {
        if pi < p.len() && p[pi] == b'%' {
            star_p = pi;
            star_s = si;
            pi += 1;
        } else if pi < p.len() && (p[pi] == b'_' || p[pi] == s[si]) {
            if p[pi] == b'_' {
                // skip one whole UTF-8 character
                si += utf8_len(s[si]);
            } else {
                si += 1;
            }
            pi += 1;
        } else if star_p != usize::MAX {
            pi = star_p + 1;
            star_s += utf8_len(s[star_s]);
            si = star_s;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'%' {
        pi += 1;
    }
    pi == p.len()
}

fn utf8_len(first: u8) -> usize {
    match first {
        0..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> Row {
        let mut r = Row::with_capacity(3);
        let s = r.intern("web");
        r.values
            .extend([Value::Int(3), Value::Float(1.5), Value::Str(s)]);
        r
    }

    #[test]
    fn arithmetic_and_predicates() {
        let r = row();
        let qty = Expr::col(0, DataType::Int);
        let price = Expr::col(1, DataType::Double);
        let mul = Expr::Binary {
            op: BinOp::Mul,
            left: Box::new(Expr::Cast {
                arg: Box::new(qty.clone()),
                from: DataType::Int,
                to: DataType::Double,
                safe: false,
            }),
            right: Box::new(price),
            ty: DataType::Double,
        };
        let mut heap = Vec::new();
        assert_eq!(mul.eval(&r, &mut heap).unwrap(), Value::Float(4.5));
        let pred = Expr::Binary {
            op: BinOp::Eq,
            left: Box::new(Expr::col(2, DataType::String(None))),
            right: Box::new(Expr::StrLiteral("web".into())),
            ty: DataType::Boolean,
        };
        assert!(pred.eval_predicate(&r, &mut heap).unwrap());
        let overflow = Expr::Binary {
            op: BinOp::Mul,
            left: Box::new(Expr::Literal {
                value: Value::Int(i32::MAX as i64),
                ty: DataType::Int,
            }),
            right: Box::new(Expr::Literal {
                value: Value::Int(2),
                ty: DataType::Int,
            }),
            ty: DataType::Int,
        };
        assert_eq!(overflow.eval(&r, &mut heap).unwrap(), Value::Int(-2));
        let div0 = Expr::Binary {
            op: BinOp::Div,
            left: Box::new(qty),
            right: Box::new(Expr::Literal {
                value: Value::Int(0),
                ty: DataType::Int,
            }),
            ty: DataType::Int,
        };
        assert!(div0.eval(&r, &mut heap).is_err());
    }

    #[test]
    fn like_patterns() {
        assert!(like(b"SKU-0001", b"SKU-%"));
        assert!(like(b"abc", b"a_c"));
        assert!(!like(b"abc", b"a_d"));
        assert!(like(b"", b"%"));
        assert!(like(b"xaxbx", b"%a%b%"));
    }

    #[test]
    fn decimal_rescale_rounds_half_up() {
        assert_eq!(rescale(12345, 3, 2), 1235);
        assert_eq!(rescale(-12345, 3, 2), -1235);
        assert_eq!(rescale(12, 0, 2), 1200);
    }
}

#[cfg(test)]
mod overflow_tests {
    use super::*;

    #[test]
    fn decimal_overflow_is_null_not_a_crash() {
        assert_eq!(rescale(5, 0, 60), i128::MAX);
        assert_eq!(rescale(0, 0, 60), 0);
        assert_eq!(rescale(5, 60, 0), 0);
        let big = Expr::Literal {
            value: Value::Decimal(10i128.pow(30)),
            ty: DataType::Decimal(38, 0),
        };
        let mul = Expr::Binary {
            op: BinOp::Mul,
            left: Box::new(big.clone()),
            right: Box::new(big),
            ty: DataType::Decimal(38, 0),
        };
        assert_eq!(
            mul.eval(&Row::default(), &mut Vec::new()).unwrap(),
            Value::Null
        );
    }
}
