//! Window table functions (TUMBLE, HOP, CUMULATE, SESSION, COUNT_WINDOW) and the legacy group
//! window functions: their arguments checked and turned into a pending window that the
//! aggregation above fuses with (or a `WindowTableFunction` when nothing aggregates).

use super::*;

pub(super) fn reads_column_at_or_above(e: &Expr, n: usize) -> bool {
    let mut found = false;
    visit_columns(e, &mut |i| found |= i >= n);
    found
}

pub(super) fn set_window_types(
    input: &Scope,
    window: Option<&(WindowKind, usize, TimeMode, Vec<Expr>)>,
    wtype: &mut DataType,
    wattr: &mut TimeAttribute,
) {
    if let Some((_, t, mode, _)) = window {
        match mode {
            TimeMode::Event => {
                *wattr = TimeAttribute::Rowtime;
                *wtype = if matches!(input.schema.fields[*t].data_type, DataType::TimestampLtz(_)) {
                    DataType::TimestampLtz(3)
                } else {
                    DataType::Timestamp(3)
                };
            }
            TimeMode::Processing => {
                *wattr = TimeAttribute::Proctime;
                *wtype = DataType::TimestampLtz(3);
            }
        }
    }
}

impl Planner<'_> {
    /// `TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), size))` and friends (the token pass removed `TABLE`).
    pub(super) fn window_tvf(&mut self, expr: &sql::Expr) -> Result<Rel> {
        let sql::Expr::Function(f) = expr else {
            return plan_err(format!(
                "TABLE(...) must call a window function (TUMBLE, HOP, CUMULATE, SESSION): `{expr}`"
            ));
        };
        let name = function_name(f);
        // named arguments: DATA => .., TIMECOL => .., SIZE => ..
        let mut named: BTreeMap<String, &sql::Expr> = BTreeMap::new();
        let mut positional: Vec<&sql::Expr> = Vec::new();
        let mut partition_sql: Vec<sql::Expr> = Vec::new();
        if let FunctionArguments::List(l) = &f.args {
            for a in &l.args {
                match a {
                    sql::FunctionArg::Named {
                        name,
                        arg: sql::FunctionArgExpr::Expr(e),
                        ..
                    } => {
                        named.insert(name.value.to_ascii_uppercase(), e);
                    }
                    sql::FunctionArg::Unnamed(sql::FunctionArgExpr::Expr(sql::Expr::Function(
                        pf,
                    ))) if function_name(pf) == PARTITION_BY_FN => {
                        partition_sql = function_args(pf)?.into_iter().flatten().cloned().collect();
                    }
                    sql::FunctionArg::Unnamed(sql::FunctionArgExpr::Expr(e)) => positional.push(e),
                    other => return plan_err(format!("unsupported argument `{other}` of {name}")),
                }
            }
        }
        let params: &[&str] = match name.as_str() {
            "TUMBLE" => &["DATA", "TIMECOL", "SIZE", "OFFSET"],
            "HOP" => &["DATA", "TIMECOL", "SLIDE", "SIZE", "OFFSET"],
            "CUMULATE" => &["DATA", "TIMECOL", "STEP", "SIZE", "OFFSET"],
            "SESSION" => &["DATA", "TIMECOL", "GAP"],
            "COUNT_WINDOW" => &["DATA", "TIMECOL", "SIZE"],
            _ => {
                return plan_err(format!(
                    "unknown window table function {name} (use TUMBLE, HOP, CUMULATE, SESSION or COUNT_WINDOW)"
                ))
            }
        };
        let arg = |i: usize| -> Option<&sql::Expr> {
            named
                .get(params[i])
                .copied()
                .or_else(|| positional.get(i).copied())
        };
        let min = if matches!(name.as_str(), "TUMBLE" | "SESSION" | "COUNT_WINDOW") {
            3
        } else {
            4
        };
        if (0..min).any(|i| arg(i).is_none()) {
            return plan_err(format!("{name} takes ({}): `{f}`", params.join(", ")));
        }
        let data = arg(0).ok_or_else(|| SqlError::Plan(format!("{name}: missing DATA")))?;
        let (table, mut rel) = self.table_argument(data, &name)?;
        if rel.updating() {
            return plan_err(format!(
                "{name}: window functions need an append-only input, `{table}` is updating"
            ));
        }
        let time = arg(1).ok_or_else(|| SqlError::Plan(format!("{name}: missing DESCRIPTOR")))?;
        let time_name = match time {
            sql::Expr::Function(d) if function_name(d) == "DESCRIPTOR" => {
                match function_args(d)?.as_slice() {
                    [Some(sql::Expr::Identifier(i))] => i.value.clone(),
                    _ => return plan_err(format!("{name}: DESCRIPTOR takes one column: `{time}`")),
                }
            }
            other => {
                return plan_err(format!(
                    "{name}: the time column must be given as DESCRIPTOR(col), got `{other}`"
                ))
            }
        };
        let time_col = rel.scope.resolve(std::slice::from_ref(&time_name))?;
        let tf = rel.schema().fields[time_col].clone();
        let mode = match tf.time {
            _ if name == "COUNT_WINDOW" => {
                if !tf.data_type.is_timestamp() {
                    return plan_err(format!(
                        "COUNT_WINDOW: DESCRIPTOR({time_name}) must name a timestamp column, not {}",
                        tf.data_type
                    ));
                }
                TimeMode::Processing
            }
            TimeAttribute::Rowtime => TimeMode::Event,
            TimeAttribute::Proctime => self.processing_time(&name)?,
            TimeAttribute::None => {
                return plan_err(format!(
                    "{name}: column `{time_name}` is not a time attribute; declare WATERMARK FOR {time_name} AS ... on the table, or use a PROCTIME() column"
                ))
            }
        };
        let kind = match name.as_str() {
            "TUMBLE" => WindowKind::Aligned(AlignedWindow::Tumble {
                size: interval_arg(arg(2).unwrap_or(time), "TUMBLE size")?,
                offset: offset_arg(arg(3))?,
            }),
            "HOP" => {
                let slide = interval_arg(arg(2).unwrap_or(time), "HOP slide")?;
                let size = interval_arg(arg(3).unwrap_or(time), "HOP size")?;
                if size % slide != 0 {
                    return plan_err(format!("HOP size must be a multiple of its slide: `{f}`"));
                }
                crate::limits::windows_per_slice("HOP", size / slide, f)?;
                WindowKind::Aligned(AlignedWindow::Hop {
                    slide,
                    size,
                    offset: offset_arg(arg(4))?,
                })
            }
            "CUMULATE" => {
                let step = interval_arg(arg(2).unwrap_or(time), "CUMULATE step")?;
                let size = interval_arg(arg(3).unwrap_or(time), "CUMULATE size")?;
                if size % step != 0 {
                    return plan_err(format!(
                        "CUMULATE size must be a multiple of its step: `{f}`"
                    ));
                }
                crate::limits::windows_per_slice("CUMULATE", size / step, f)?;
                WindowKind::Aligned(AlignedWindow::Cumulate {
                    step,
                    size,
                    offset: offset_arg(arg(4))?,
                })
            }
            "COUNT_WINDOW" => {
                let size = arg(2).unwrap_or(time);
                let scope = Scope::default();
                match eval_const(&Converter::new(&scope).convert(size)?)? {
                    Value::Int(n) if n > 0 => WindowKind::Count { size: n as u64 },
                    _ => {
                        return plan_err(format!(
                            "COUNT_WINDOW size must be a positive integer (rows): `{size}`"
                        ))
                    }
                }
            }
            _ => WindowKind::Session {
                gap: interval_arg(arg(2).unwrap_or(time), "SESSION gap")?,
            },
        };
        if !partition_sql.is_empty() && name != "SESSION" && name != "COUNT_WINDOW" {
            return plan_err(format!(
                "PARTITION BY is only valid in SESSION and COUNT_WINDOW: `{f}`"
            ));
        }
        let conv = Converter::new(&rel.scope);
        let partition = partition_sql
            .iter()
            .map(|e| conv.convert(e))
            .collect::<Result<Vec<_>>>()?;
        let base = rel.schema().len();
        let (wtype, wtime) = match mode {
            _ if matches!(kind, WindowKind::Count { .. }) => (tf.data_type, TimeAttribute::None),
            TimeMode::Event => (
                if matches!(tf.data_type, DataType::TimestampLtz(_)) {
                    DataType::TimestampLtz(3)
                } else {
                    DataType::Timestamp(3)
                },
                TimeAttribute::Rowtime,
            ),
            TimeMode::Processing => (DataType::TimestampLtz(3), TimeAttribute::Proctime),
        };
        let q = rel.scope.qualifiers.first().cloned().flatten();
        for (n, t) in [
            ("window_start", TimeAttribute::None),
            ("window_end", TimeAttribute::None),
            ("window_time", wtime),
        ] {
            rel.scope.schema.fields.push(Field {
                name: n.into(),
                data_type: wtype,
                nullable: false,
                time: t,
            });
            rel.scope.qualifiers.push(q.clone());
        }
        rel.pending_window = Some(PendingWindow {
            kind,
            time_col,
            mode,
            partition,
            base,
        });
        Ok(rel)
    }

    pub(super) fn legacy_window(
        &self,
        name: &str,
        f: &sql::Function,
        input: &Scope,
    ) -> Result<(WindowKind, usize, TimeMode)> {
        let args = function_args(f)?;
        let args: Vec<&sql::Expr> = args.into_iter().flatten().collect();
        let Some(time) = args.first() else {
            return plan_err(format!(
                "{name}(time_attr, interval...) needs a time column: `{f}`"
            ));
        };
        let conv = Converter::new(input);
        let col = match conv.convert(time)? {
            Expr::Column { index, .. } => index,
            _ => {
                return plan_err(format!(
                    "{name}: the first argument must be a time attribute column: `{f}`"
                ))
            }
        };
        let mode = match input.schema.fields[col].time {
            TimeAttribute::Rowtime => TimeMode::Event,
            TimeAttribute::Proctime => self.processing_time(name)?,
            TimeAttribute::None => {
                return plan_err(format!(
                    "{name}: column `{}` is not a time attribute (declare a WATERMARK or use PROCTIME())",
                    input.schema.fields[col].name
                ))
            }
        };
        let kind = match (name, args.len()) {
            ("TUMBLE", 2 | 3) => WindowKind::Aligned(AlignedWindow::Tumble {
                size: interval_arg(args[1], "TUMBLE size")?,
                offset: offset_arg(args.get(2).copied())?,
            }),
            ("HOP", 3 | 4) => {
                let slide = interval_arg(args[1], "HOP slide")?;
                let size = interval_arg(args[2], "HOP size")?;
                if size % slide != 0 {
                    return plan_err(format!("HOP size must be a multiple of its slide: `{f}`"));
                }
                crate::limits::windows_per_slice("HOP", size / slide, f)?;
                WindowKind::Aligned(AlignedWindow::Hop {
                    slide,
                    size,
                    offset: offset_arg(args.get(3).copied())?,
                })
            }
            ("SESSION", 2) => WindowKind::Session {
                gap: interval_arg(args[1], "SESSION gap")?,
            },
            _ => return plan_err(format!("wrong number of arguments for {name}: `{f}`")),
        };
        Ok((kind, col, mode))
    }

    /// A window on processing time: refused in batch mode, where it has no meaning.
    fn processing_time(&self, name: &str) -> Result<TimeMode> {
        if self.catalog.batch() {
            return plan_err(format!(
                "{name}: a processing-time window has no meaning in batch mode; use an event-time column (with a WATERMARK)"
            ));
        }
        Ok(TimeMode::Processing)
    }
}
