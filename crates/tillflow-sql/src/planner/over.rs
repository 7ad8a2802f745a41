//! OVER aggregations (`agg(x) OVER (PARTITION BY … ORDER BY time [frame])`): every call of one
//! SELECT on the same window, as in Flink; the output is the input row with the aggregates.

use super::aggregate::agg_call;
use super::*;

impl Planner<'_> {
    /// `agg(x) OVER (PARTITION BY … ORDER BY time [frame])` in the SELECT list: every call must
    /// use the same window (as in Flink); the output is the input row with the aggregates.
    pub(super) fn plan_over(
        &mut self,
        s: &sql::Select,
        mut rel: Rel,
        filter: Option<Expr>,
        overs: Vec<sql::Function>,
    ) -> Result<Rel> {
        if rel.updating() {
            return plan_err("OVER aggregation needs an insert-only input (as in Flink)");
        }
        // the window of each call, named windows resolved
        let lookup = |name: &sql::Ident| -> Result<sql::WindowSpec> {
            let mut name = name.clone();
            for _ in 0..8 {
                match s
                    .named_window
                    .iter()
                    .find(|d| d.0.value.eq_ignore_ascii_case(&name.value))
                {
                    Some(sql::NamedWindowDefinition(_, sql::NamedWindowExpr::WindowSpec(w))) => {
                        return Ok(w.clone())
                    }
                    Some(sql::NamedWindowDefinition(_, sql::NamedWindowExpr::NamedWindow(n))) => {
                        name = n.clone()
                    }
                    None => break,
                }
            }
            plan_err(format!("no window `{name}` in the WINDOW clause"))
        };
        let mut spec: Option<sql::WindowSpec> = None;
        for f in &overs {
            let w = match &f.over {
                Some(sql::WindowType::WindowSpec(w)) => w.clone(),
                Some(sql::WindowType::NamedWindow(n)) => lookup(n)?,
                None => continue,
            };
            match &spec {
                None => spec = Some(w),
                Some(first) if *first == w => {}
                Some(first) => {
                    return plan_err(format!(
                        "all OVER aggregates of one SELECT must use the same window (as in Flink): `{first}` and `{w}`"
                    ))
                }
            }
        }
        let Some(spec) = spec else {
            return plan_err("OVER without a window");
        };
        let conv = Converter::new(&rel.scope);
        let col_of = |e: &sql::Expr, what: &str| -> Result<usize> {
            match conv.convert(e)? {
                Expr::Column { index, .. } => Ok(index),
                _ => plan_err(format!(
                    "{what} of an OVER window must name a column: `{e}`"
                )),
            }
        };
        let partition = spec
            .partition_by
            .iter()
            .map(|e| col_of(e, "PARTITION BY"))
            .collect::<Result<Vec<_>>>()?;
        let time_col = match spec.order_by.as_slice() {
            [o] if !matches!(o.options.sort, Some(sql::OrderBySort::Desc)) => {
                col_of(&o.expr, "ORDER BY")?
            }
            _ => {
                return plan_err(format!(
                    "an OVER window needs ORDER BY one time attribute, ascending (as in Flink): `{spec}`"
                ))
            }
        };
        let time = match rel.schema().fields[time_col].time {
            TimeAttribute::Rowtime => Some(time_col),
            TimeAttribute::Proctime => None,
            TimeAttribute::None => {
                return plan_err(format!(
                    "OVER windows must be ordered by a time attribute (a rowtime column with a WATERMARK, or PROCTIME()); `{}` is not one",
                    rel.schema().fields[time_col].name
                ))
            }
        };
        let preceding = |e: &sql::Expr| -> Result<Value> {
            let x = conv.convert(e)?;
            if !x.is_constant() {
                return plan_err(format!("an OVER frame bound must be a constant: `{e}`"));
            }
            eval_const(&x)
        };
        let frame = match &spec.window_frame {
            None => OverFrame::RangeUnbounded,
            Some(fr) => {
                if !matches!(fr.end_bound, None | Some(sql::WindowFrameBound::CurrentRow)) {
                    return plan_err(format!(
                        "an OVER frame must end at CURRENT ROW (as in Flink's streaming mode): `{spec}`"
                    ));
                }
                match (&fr.units, &fr.start_bound) {
                    (sql::WindowFrameUnits::Rows, sql::WindowFrameBound::Preceding(None)) => {
                        OverFrame::RowsUnbounded
                    }
                    (sql::WindowFrameUnits::Range, sql::WindowFrameBound::Preceding(None)) => {
                        OverFrame::RangeUnbounded
                    }
                    (sql::WindowFrameUnits::Rows, sql::WindowFrameBound::CurrentRow) => {
                        OverFrame::Rows(0)
                    }
                    (sql::WindowFrameUnits::Range, sql::WindowFrameBound::CurrentRow) => {
                        OverFrame::Range(0)
                    }
                    (sql::WindowFrameUnits::Rows, sql::WindowFrameBound::Preceding(Some(n))) => {
                        match preceding(n)? {
                            Value::Int(n) if n >= 0 => OverFrame::Rows(n as u64),
                            _ => {
                                return plan_err(format!(
                                    "ROWS … PRECEDING needs a row count ≥ 0: `{spec}`"
                                ))
                            }
                        }
                    }
                    (sql::WindowFrameUnits::Range, sql::WindowFrameBound::Preceding(Some(n))) => {
                        match preceding(n)? {
                            Value::Interval(us) if us >= 0 && time.is_some() => {
                                OverFrame::Range(us)
                            }
                            Value::Interval(_) => {
                                return plan_err(
                                    "a bounded RANGE frame over processing time is not supported yet; use ROWS",
                                )
                            }
                            _ => {
                                return plan_err(format!(
                                    "RANGE … PRECEDING needs an INTERVAL: `{spec}`"
                                ))
                            }
                        }
                    }
                    _ => return plan_err(format!("unsupported OVER frame in `{spec}`")),
                }
            }
        };
        // pre-projection: the input columns, then the calls' arguments
        let n = rel.schema().len();
        let qualifiers = rel.scope.qualifiers.clone();
        let mut pre: Vec<Item> = rel
            .schema()
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| (Expr::col(i, f.data_type), f.name.clone(), f.time))
            .collect();
        let mut calls = Vec::new();
        for f in &overs {
            let call = agg_call(&conv, f, &mut pre, |_, n| format!("$arg{n}"))?;
            if (call.kind.is_variance() || call.kind.keeps_values())
                && call.kind != tillflow_runtime::agg::AggKind::Lag
            {
                return plan_err(format!(
                    "{}() OVER (…) is not supported yet (only in GROUP BY and window aggregations): `{f}`",
                    function_name(f)
                ));
            }
            if call.distinct {
                return plan_err(format!(
                    "DISTINCT in an OVER aggregate is not supported yet: `{f}`"
                ));
            }
            if f.filter.is_some() {
                return plan_err(format!(
                    "FILTER in an OVER aggregate is not supported: `{f}`"
                ));
            }
            calls.push(call);
        }
        push_calc(&mut rel, filter, pre);
        for (i, q) in qualifiers.into_iter().enumerate() {
            rel.scope.qualifiers[i] = q;
        }
        let input = rel.scope.clone();
        let base = input.schema.len();
        rel.push(
            PlanOp::OverAggregate {
                partition,
                time,
                frame,
                calls: calls.clone(),
                ttl: self.state_ttl(),
            },
            Changelog::Insert,
            None,
        );
        let mut fields = input.schema.fields.clone();
        let mut qualifiers = input.qualifiers.clone();
        for (j, c) in calls.iter().enumerate() {
            fields.push(Field::new(format!("$over{j}"), c.result_type));
            qualifiers.push(None);
        }
        let out_scope = Scope {
            qualifiers,
            schema: Schema::new(fields),
        };
        let agg_scope = AggScope {
            input: &input,
            groups: (0..n)
                .map(|i| (Expr::col(i, input.schema.fields[i].data_type), i))
                .collect(),
            aggs: overs
                .iter()
                .cloned()
                .enumerate()
                .map(|(j, f)| (f, base + j, calls[j].result_type))
                .collect(),
            window: None,
            window_type: DataType::Timestamp(3),
        };
        rel.scope = out_scope.clone();
        let post_conv = Converter {
            scope: &out_scope,
            agg: Some(&agg_scope),
        };
        let items = self.projection_items(&rel, &s.projection, &post_conv)?;
        push_calc(&mut rel, None, items);
        Ok(rel)
    }
}
