//! Function calls: the name and arguments of a call, which calls are aggregates (and collecting
//! them from a SELECT list), and the conversion of a scalar call — Flink's built-ins by name with
//! their argument casts, constant regular-expression patterns compiled once (`Expr::Prepared`).

use super::*;

/// The name of a function call, upper-cased.
///
/// A name given to a built-in with `CREATE FUNCTION name AS 'BUILTIN'` is the built-in's.
pub fn function_name(f: &sql::Function) -> String {
    let name = f.name.to_string().to_ascii_uppercase();
    crate::udf::alias_of(&name).unwrap_or(name)
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
    if f.over.is_some() {
        return false;
    }
    let name = function_name(f);
    AggKind::by_name(&name).is_some() || crate::udf::is_python_aggregate(&name)
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

pub(crate) fn collect_calls(
    e: &sql::Expr,
    out: &mut Vec<sql::Function>,
    want: fn(&sql::Function) -> bool,
) {
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

/// A REGEXP function or STR_TO_MAP with its patterns compiled (constant ones now: one Java
/// feature the engine lacks is a plan error naming it).
pub(crate) fn prepare_regex(func: Func, args: Vec<Expr>, ty: DataType, text: &str) -> Result<Expr> {
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

impl Converter<'_> {
    pub(super) fn function(&self, f: &sql::Function) -> Result<Expr> {
        let name = function_name(f);
        if f.over.is_some() && crate::udf::is_python_aggregate(&name) {
            return plan_err(format!(
                "Python aggregate function {name} over an OVER window is not supported yet (use it in a GROUP BY or a window aggregation): `{f}`"
            ));
        }
        if f.over.is_some() {
            return plan_err(format!(
                "{name}() OVER (...) is supported only as ROW_NUMBER() in a Top-N or deduplication query: `{f}`"
            ));
        }
        if is_aggregate(f) {
            return plan_err(format!("aggregate {name}() is not allowed here: `{f}`"));
        }
        if let Some((functions, def)) = crate::udf::python(&name) {
            if def.system || !crate::statements::is_builtin(&name) {
                return self.python_call(&functions, &def, f);
            }
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

impl Converter<'_> {
    /// A call of a Python scalar function: `Expr::Python`, which the plan's `python_calc` rule
    /// moves into a `PythonCalc`.
    fn python_call(
        &self,
        functions: &crate::udf::Functions,
        def: &crate::udf::FunctionDef,
        f: &sql::Function,
    ) -> Result<Expr> {
        use tillflow_runtime::python::{codec::wire_tag, PyCallExpr, PyKind};
        let func = crate::udf::resolve(functions, def, PyKind::Scalar)?;
        let mut args = Vec::new();
        for (i, a) in function_args(f)?.into_iter().enumerate() {
            let Some(a) = a else {
                return plan_err(format!(
                    "`*` is not an argument of Python function {}: `{f}`",
                    def.name
                ));
            };
            let x = self.convert(a)?;
            if wire_tag(x.data_type()).is_none() {
                return plan_err(format!(
                    "argument {} of Python function {} is {}, which Python functions do not take yet (BOOLEAN, the integer types, FLOAT, DOUBLE, DECIMAL, STRING, BYTES, DATE, TIME and TIMESTAMP): `{f}`",
                    i + 1,
                    def.name,
                    x.data_type()
                ));
            }
            args.push(x);
        }
        let ty = func.results[0];
        Ok(Expr::Python(Box::new(PyCallExpr {
            target: func.target,
            env: func.env,
            args,
            ty,
            deterministic: func.deterministic,
        })))
    }
}
