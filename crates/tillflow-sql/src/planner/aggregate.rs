//! GROUP BY: a window aggregate when the input is a window table function's (or a legacy
//! `GROUP BY TUMBLE(...)`), a count window, or an updating `GroupAggregate` otherwise; the
//! pre-aggregation projection of keys, arguments and FILTER conditions, and the calls themselves
//! (with the forecasting models' parameters).

use super::window::{reads_column_at_or_above, set_window_types};
use super::*;

/// Plans one aggregate call (of a GROUP BY or an OVER aggregation): the function, DISTINCT, and its
/// argument, which is appended to the pre-aggregation projection `pre` under the name `arg_name`
/// gives it (from the argument and its position). FILTER is left to the caller.
pub(super) fn agg_call(
    conv: &Converter<'_>,
    f: &sql::Function,
    pre: &mut Vec<Item>,
    arg_name: fn(&sql::Expr, usize) -> String,
) -> Result<AggCall> {
    let name = function_name(f);
    let Some(mut kind) = AggKind::by_name(&name) else {
        if crate::udf::is_python_aggregate(&name) {
            if let Some((functions, def)) = crate::udf::python(&name) {
                return python_agg_call(conv, f, pre, arg_name, &functions, &def);
            }
        }
        return plan_err(format!("unknown aggregate {name}"));
    };
    let distinct = matches!(&f.args, FunctionArguments::List(l) if l.duplicate_treatment == Some(DuplicateTreatment::Distinct));
    let args = function_args(f)?;
    let mut model = None;
    let (arg, arg_type) = match args.as_slice() {
        [Some(a), params @ ..] if kind.is_model() => {
            let (x, spec) = model_call(conv, kind, f, a, params)?;
            if distinct {
                return plan_err(format!("{name} does not take DISTINCT: `{f}`"));
            }
            model = Some(spec);
            let t = x.data_type();
            pre.push((x, arg_name(a, pre.len()), TimeAttribute::None));
            (Some(pre.len() - 1), t)
        }
        [] | [None] if kind == AggKind::Count => {
            kind = AggKind::CountStar;
            (None, DataType::BigInt)
        }
        [Some(a), ..]
            if args.len() == 1
                || (kind == AggKind::ListAgg && args.len() == 2)
                || (kind == AggKind::Lag && args.len() <= 3) =>
        {
            let x = conv.convert(a)?;
            let t = x.data_type();
            if (matches!(kind, AggKind::Sum | AggKind::Avg) || kind.is_variance())
                && !t.is_numeric()
            {
                return plan_err(format!("{name} needs a numeric argument, got {t}: `{f}`"));
            }
            if kind == AggKind::ListAgg && !t.is_string() {
                return plan_err(format!(
                    "LISTAGG needs a string argument, got {t} (cast it to STRING): `{f}`"
                ));
            }
            if kind.keeps_values() && distinct && kind != AggKind::Collect {
                return plan_err(format!("{name}(DISTINCT …) is not supported yet: `{f}`"));
            }
            pre.push((x, arg_name(a, pre.len()), TimeAttribute::None));
            (Some(pre.len() - 1), t)
        }
        _ => return plan_err(format!("{name} takes one argument: `{f}`")),
    };
    let separator = match args.get(1) {
        Some(Some(sep)) if kind == AggKind::ListAgg => {
            let e = conv.convert(sep)?;
            let mut heap = vec![];
            match e
                .is_constant()
                .then(|| e.eval(&tillflow_types::Row::default(), &mut heap))
            {
                Some(Ok(Value::Str(r))) => {
                    Some(tillflow_types::value::heap_str(&heap, r).to_owned())
                }
                _ => {
                    return plan_err(format!(
                        "LISTAGG's separator must be a string literal: `{f}`"
                    ))
                }
            }
        }
        _ => None,
    };
    let lag = if kind == AggKind::Lag {
        let constant = |i: usize| -> Result<Option<Expr>> {
            match args.get(i) {
                Some(Some(e)) => {
                    let x = conv.convert(e)?;
                    if !x.is_constant() {
                        return plan_err(format!(
                            "LAG's offset and default must be constants: `{f}`"
                        ));
                    }
                    Ok(Some(x))
                }
                _ => Ok(None),
            }
        };
        let offset = match constant(1)? {
            None => 1,
            Some(x) => match eval_const(&x)? {
                Value::Int(n) if (0..=i32::MAX as i64).contains(&n) => n as u32,
                _ => return plan_err(format!("LAG's offset must be an integer ≥ 0: `{f}`")),
            },
        };
        let mut default = Vec::new();
        let value = match constant(2)? {
            None => Value::Null,
            Some(x) => {
                let mut heap = vec![];
                let v = crate::expr::cast_to(x, arg_type)
                    .eval(&tillflow_types::Row::default(), &mut heap)
                    .or_else(|e| plan_err(format!("LAG's default: {e}: `{f}`")))?;
                tillflow_runtime::keys::encode_value(&mut default, v, &heap);
                v
            }
        };
        if value.is_null() {
            default.clear();
            tillflow_runtime::keys::encode_value(&mut default, Value::Null, &[]);
        }
        Some(tillflow_runtime::agg::LagSpec {
            offset,
            default: default.into(),
        })
    } else {
        None
    };
    Ok(AggCall {
        kind,
        arg,
        distinct,
        arg_type,
        result_type: kind.result_type(arg_type),
        filter: None,
        model,
        separator,
        retracts: false,
        lag,
        python: None,
    })
}

/// Plans a call of a Python aggregate function: its arguments go to the pre-aggregation
/// projection; its result type is the function's.
fn python_agg_call(
    conv: &Converter<'_>,
    f: &sql::Function,
    pre: &mut Vec<Item>,
    arg_name: fn(&sql::Expr, usize) -> String,
    functions: &crate::udf::Functions,
    def: &crate::udf::FunctionDef,
) -> Result<AggCall> {
    use tillflow_runtime::python::{agg::PyAggSpec, codec::wire_tag, PyKind};
    if matches!(&f.args, FunctionArguments::List(l) if l.duplicate_treatment == Some(DuplicateTreatment::Distinct))
    {
        return plan_err(format!(
            "Python aggregate function {} does not take DISTINCT yet: `{f}`",
            def.name
        ));
    }
    let func = crate::udf::resolve(functions, def, PyKind::Aggregate)?;
    let (mut args, mut arg_types) = (Vec::new(), Vec::new());
    for (i, a) in function_args(f)?.into_iter().enumerate() {
        let Some(a) = a else {
            return plan_err(format!(
                "`*` is not an argument of Python function {}: `{f}`",
                def.name
            ));
        };
        let x = conv.convert(a)?;
        let t = x.data_type();
        if wire_tag(t).is_none() {
            return plan_err(format!(
                "argument {} of Python function {} is {t}, which Python functions do not take yet (BOOLEAN, the integer types, FLOAT, DOUBLE, DECIMAL, STRING, BYTES, DATE, TIME and TIMESTAMP): `{f}`",
                i + 1,
                def.name,
            ));
        }
        pre.push((x, arg_name(a, pre.len()), TimeAttribute::None));
        args.push(pre.len() - 1);
        arg_types.push(t);
    }
    let mut call = AggCall::python(PyAggSpec {
        target: func.target,
        env: func.env,
        args,
        arg_types,
        limits: functions.limits.unwrap_or(crate::udf::DEFAULT_LIMITS),
        has_retract: func.retract,
        has_merge: func.merge,
    });
    call.result_type = func.results[0];
    Ok(call)
}

/// What a Python aggregate call needs that it lacks where it is used, as a message: `retract`
/// over an updating input.
pub(super) fn python_agg_missing(call: &AggCall, f: &sql::Function) -> Option<String> {
    let py = call.python.as_ref()?;
    (call.retracts && !py.has_retract).then(|| {
        format!(
            "Python aggregate function {} ('{}') has no retract method, which it needs here: its input is an updating table (rows are retracted from groups). Give its class a retract(accumulator, *args) method: `{f}`",
            py.target.name, py.target.target
        )
    })
}

/// Plans a forecasting or anomaly call: its value argument (numeric) and its constant
/// parameters, validated into a model.
pub(super) fn model_call(
    conv: &Converter<'_>,
    kind: AggKind,
    f: &sql::Function,
    value: &sql::Expr,
    params: &[Option<&sql::Expr>],
) -> Result<(Expr, ModelSpec)> {
    let name = function_name(f).to_ascii_uppercase();
    let x = conv.convert(value)?;
    if !x.data_type().is_numeric() {
        return plan_err(format!(
            "{name} needs a numeric value, got {}: `{f}`",
            x.data_type()
        ));
    }
    let mut ps = Vec::with_capacity(params.len());
    for p in params {
        let Some(p) = p else {
            return plan_err(format!("{name}: `*` is not a parameter: `{f}`"));
        };
        let e = conv.convert(p)?;
        if !e.is_constant() {
            return plan_err(format!(
                "{name}: parameter `{p}` must be a constant (a number): `{f}`"
            ));
        }
        let v = match eval_const(&e)? {
            Value::Int(i) => i as f64,
            Value::Float(x) => x,
            Value::Decimal(d) => {
                d as f64 / 10f64.powi(tillflow_runtime::expr::scale_of(e.data_type()) as i32)
            }
            _ => return plan_err(format!("{name}: parameter `{p}` must be a number: `{f}`")),
        };
        ps.push(v);
    }
    let spec = ModelSpec::from_call(kind, &ps).or_else(|m| plan_err(format!("{m}: `{f}`")))?;
    Ok((x, spec))
}

impl Planner<'_> {
    pub(super) fn plan_aggregate(
        &mut self,
        s: &sql::Select,
        mut rel: Rel,
        where_sql: Option<&sql::Expr>,
        group_sql: &[sql::Expr],
        aggs: Vec<sql::Function>,
    ) -> Result<Rel> {
        let input = rel.scope.clone();
        // the names a STATE_TTL hint may give the input by, before projections clear them
        let input_names = super::state_ttl::rel_names(&rel);
        let conv = Converter::new(&input);
        // legacy group windows
        let mut legacy: Option<(WindowKind, usize, TimeMode)> = None;
        let mut keys_sql = Vec::new();
        for g in group_sql {
            if let sql::Expr::Function(f) = g {
                let name = function_name(f);
                if matches!(name.as_str(), "TUMBLE" | "HOP" | "SESSION") && f.over.is_none() {
                    if legacy.is_some() || rel.pending_window.is_some() {
                        return plan_err("only one window per GROUP BY");
                    }
                    legacy = Some(self.legacy_window(&name, f, &input)?);
                    continue;
                }
            }
            keys_sql.push(g);
        }
        let mut keys: Vec<Expr> = keys_sql
            .iter()
            .map(|g| conv.convert(g))
            .collect::<Result<_>>()?;
        let filter = where_sql.map(|w| conv.convert(w)).transpose()?;
        // window from a TVF
        let tvf = rel.pending_window.take();
        if let Some(w) = &tvf {
            let mut rest = Vec::new();
            let mut rest_sql = Vec::new();
            let mut has = [false; 3];
            for (k, ksql) in keys.into_iter().zip(keys_sql.iter().copied()) {
                match &k {
                    Expr::Column { index, .. } if (w.base..w.base + 3).contains(index) => {
                        has[index - w.base] = true;
                    }
                    _ => {
                        rest.push(k);
                        rest_sql.push(ksql);
                    }
                }
            }
            keys_sql = rest_sql;
            if !(has[0] && has[1]) {
                return plan_err("a window aggregation must GROUP BY window_start and window_end");
            }
            if let Some(f) = &filter {
                if reads_column_at_or_above(f, w.base) {
                    return plan_err("WHERE on window_start/window_end/window_time before the window aggregation is not supported");
                }
            }
            for k in &rest {
                if reads_column_at_or_above(k, w.base) {
                    return plan_err("GROUP BY expressions over window columns are not supported; group by window_start, window_end");
                }
            }
            keys = rest;
        }
        // a GROUP BY on the window_start and window_end of a window aggregation's result
        // (renamed or not, through subqueries and views) aggregates per that window again,
        // append-only, as Flink propagates windows (cascaded window aggregation)
        let mut attached_in = None;
        if let (None, None, Some((ws, we)), Some((aligned, mode))) =
            (&tvf, legacy, rel.window_cols, rel.window_kind)
        {
            let is_col =
                |k: &Expr, c: usize| matches!(k, Expr::Column { index, .. } if *index == c);
            if keys.iter().any(|k| is_col(k, ws)) && keys.iter().any(|k| is_col(k, we)) {
                let (mut rest, mut rest_sql) = (Vec::new(), Vec::new());
                for (k, ksql) in keys.into_iter().zip(keys_sql.iter().copied()) {
                    if !is_col(&k, ws) && !is_col(&k, we) {
                        rest.push(k);
                        rest_sql.push(ksql);
                    }
                }
                keys = rest;
                keys_sql = rest_sql;
                attached_in = Some((ws, we, aligned, mode));
            }
        }
        let window = match (&tvf, legacy, attached_in) {
            (Some(w), _, _) => Some((w.kind, w.time_col, w.mode, w.partition.clone())),
            (None, Some((k, t, m)), _) => Some((k, t, m, Vec::new())),
            (None, None, Some((ws, _, a, m))) => Some((WindowKind::Aligned(a), ws, m, Vec::new())),
            (None, None, None) => None,
        };
        // pre-aggregation projection: keys, aggregate arguments and filters, time column
        let mut pre: Vec<Item> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                (
                    k.clone(),
                    key_name(keys_sql.get(i).copied(), i),
                    TimeAttribute::None,
                )
            })
            .collect();
        let mut calls = Vec::new();
        let mut agg_types = Vec::new();
        for f in &aggs {
            let mut call = agg_call(&conv, f, &mut pre, |a, _| a.to_string())?;
            call.retracts = rel.updating();
            if call.python.is_some() {
                if let Some(why) = python_agg_missing(&call, f) {
                    return plan_err(why);
                }
                if matches!(window, Some((WindowKind::Count { .. }, ..))) {
                    return plan_err(format!(
                        "Python aggregate function {} in a COUNT_WINDOW is not supported yet: `{f}`",
                        function_name(f)
                    ));
                }
            }
            if call.kind == AggKind::Lag {
                return plan_err(format!("LAG is only valid with OVER (…): `{f}`"));
            }
            if call.model.is_some() && matches!(window, Some((WindowKind::Session { .. }, ..))) {
                return plan_err(format!(
                    "{} cannot be used in a SESSION window (sessions merge, and a forecast cannot): `{f}`",
                    function_name(f)
                ));
            }
            call.filter = match &f.filter {
                Some(cond) => {
                    let c = conv.convert(cond)?;
                    pre.push((c, format!("$filter{}", calls.len()), TimeAttribute::None));
                    Some(pre.len() - 1)
                }
                None => None,
            };
            agg_types.push(call.result_type);
            calls.push(call);
        }
        let k = keys.len();
        let m = calls.len();
        let time_idx = window.as_ref().map(|(_, t, _, _)| {
            let f = &input.schema.fields[*t];
            pre.push((Expr::col(*t, f.data_type), f.name.clone(), f.time));
            pre.len() - 1
        });
        let attached = attached_in.and_then(|(_, we, _, _)| {
            let f = &input.schema.fields[we];
            pre.push((Expr::col(we, f.data_type), f.name.clone(), f.time));
            Some((time_idx?, pre.len() - 1))
        });
        push_calc(&mut rel, filter, pre);
        let late = if window.is_some() {
            self.late_target(&rel)
        } else {
            None
        };
        // the aggregate operator and the positions of keys in its output
        let mut key_out: Vec<usize> = (0..k).collect();
        let mut wtype = DataType::Timestamp(3);
        let mut wattr = TimeAttribute::Rowtime;
        match &window {
            Some((WindowKind::Aligned(a), _, mode, _)) => {
                rel.push(
                    PlanOp::WindowAggregate {
                        window: *a,
                        mode: *mode,
                        time_col: time_idx.unwrap_or(0),
                        keys: k,
                        calls,
                        late,
                        attached,
                        two_phase: false,
                    },
                    Changelog::Insert,
                    None,
                );
                set_window_types(&input, window.as_ref(), &mut wtype, &mut wattr);
            }
            Some((WindowKind::Session { gap }, _, mode, partition)) => {
                let mut part = Vec::new();
                for p in partition {
                    match keys.iter().position(|x| x == p) {
                        Some(i) => part.push(i),
                        None => {
                            return plan_err(
                                "SESSION PARTITION BY columns must also be in GROUP BY",
                            )
                        }
                    }
                }
                if tvf.is_none() {
                    part = (0..k).collect(); // legacy SESSION: sessions per group key
                } else if part.len() != k {
                    // Flink plans this case as a non-windowed GroupAggregate over the TVF (an
                    // updating result); rather than answer differently, refuse it.
                    return plan_err(
                        "SESSION windows must PARTITION BY exactly the GROUP BY keys (besides window_start, window_end); Flink plans other key sets as a non-windowed aggregation, which tillflow does not support yet",
                    );
                }
                let group: Vec<usize> = (0..k).filter(|i| !part.contains(i)).collect();
                for (pos, key) in part.iter().chain(group.iter()).enumerate() {
                    key_out[*key] = pos;
                }
                rel.push(
                    PlanOp::SessionWindowAggregate {
                        gap: *gap,
                        mode: *mode,
                        time_col: time_idx.unwrap_or(0),
                        partition: part,
                        group,
                        calls,
                        late,
                    },
                    Changelog::Insert,
                    None,
                );
                set_window_types(&input, window.as_ref(), &mut wtype, &mut wattr);
            }
            Some((WindowKind::Count { size }, _, _, partition)) => {
                let same_keys = partition.len() == k && partition.iter().all(|p| keys.contains(p));
                if !same_keys {
                    return plan_err(
                        "COUNT_WINDOW must PARTITION BY exactly the GROUP BY keys (besides window_start, window_end)",
                    );
                }
                rel.push(
                    PlanOp::CountWindowAggregate {
                        size: *size,
                        time_col: time_idx.unwrap_or(0),
                        keys: k,
                        calls,
                    },
                    Changelog::Insert,
                    None,
                );
                if let Some(w) = &tvf {
                    wtype = input.schema.fields[w.base].data_type;
                }
                wattr = TimeAttribute::None;
            }
            None => {
                let changelog = rel.changelog.aggregated();
                rel.push(
                    PlanOp::GroupAggregate {
                        keys: (0..k).collect(),
                        calls,
                        ttl: self.named_state_ttl(&input_names),
                    },
                    changelog,
                    Some((0..k).collect()),
                );
            }
        }
        // the aggregate's output scope
        let mut fields = vec![Field::new("", DataType::Null); k];
        for i in 0..k {
            fields[key_out[i]] =
                Field::new(key_name(keys_sql.get(i).copied(), i), keys[i].data_type());
        }
        for (j, t) in agg_types.iter().enumerate() {
            fields.push(Field::new(format!("EXPR${}", k + j), *t));
        }
        let mut window_out = None;
        if window.is_some() {
            let base = k + m;
            fields.push(Field {
                name: "window_start".into(),
                data_type: wtype,
                nullable: false,
                time: TimeAttribute::None,
            });
            fields.push(Field {
                name: "window_end".into(),
                data_type: wtype,
                nullable: false,
                time: TimeAttribute::None,
            });
            fields.push(Field {
                name: "window_time".into(),
                data_type: wtype,
                nullable: false,
                time: wattr,
            });
            window_out = Some((base, base + 1, base + 2));
        }
        let out_scope = Scope {
            qualifiers: vec![None; fields.len()],
            schema: Schema::new(fields),
        };
        let mut groups: Vec<(Expr, usize)> = keys
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, e)| (e, key_out[i]))
            .collect();
        if let (Some(w), Some((ws, we, wt))) = (&tvf, window_out) {
            let outs = [ws, we, wt];
            for (which, out) in outs.iter().enumerate() {
                let f = &input.schema.fields[w.base + which];
                groups.push((Expr::col(w.base + which, f.data_type), *out));
            }
        }
        if let (Some((in_s, in_e, _, _)), Some((ws, we, _))) = (attached_in, window_out) {
            for (col, out) in [(in_s, ws), (in_e, we)] {
                let f = &input.schema.fields[col];
                groups.push((Expr::col(col, f.data_type), out));
            }
        }
        let agg_scope = AggScope {
            input: &input,
            groups,
            aggs: aggs
                .iter()
                .cloned()
                .enumerate()
                .map(|(j, f)| (f, k + j, agg_types[j]))
                .collect(),
            window: window_out,
            window_type: wtype,
        };
        rel.scope = out_scope.clone();
        rel.window_cols = window_out.map(|(ws, we, _)| (ws, we));
        rel.window_kind = match &window {
            Some((WindowKind::Aligned(a), _, mode, _)) => Some((*a, *mode)),
            _ => None,
        };
        let post_conv = Converter {
            scope: &out_scope,
            agg: Some(&agg_scope),
        };
        let having = s
            .having
            .as_ref()
            .map(|h| post_conv.convert(h))
            .transpose()?;
        if s.projection.iter().any(|i| {
            matches!(
                i,
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
            )
        }) {
            return plan_err("SELECT * is not allowed in an aggregate query");
        }
        let mut items = self.projection_items(&rel, &s.projection, &post_conv)?;
        for (e, _, t) in items.iter_mut() {
            if let (Expr::Column { index, .. }, Some((_, _, wt))) = (&*e, window_out) {
                if *index == wt {
                    *t = wattr;
                }
            }
        }
        push_calc(&mut rel, having, items);
        Ok(rel)
    }
}
