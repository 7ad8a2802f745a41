//! The shape of each SQL expression: column references (qualified, and ROW fields), nested
//! access, CASE, CAST/TRY_CAST, IN, BETWEEN, LIKE, IS [NOT] NULL/TRUE/FALSE/DISTINCT FROM,
//! EXTRACT, FLOOR/CEIL TO, and the dispatch to literals, operators and calls.

use super::*;

impl Converter<'_> {
    pub(super) fn structural(&self, e: &sql::Expr) -> Result<Expr> {
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
}
