//! Operators: arithmetic, comparison and logical operators with Flink's result types (DECIMAL
//! precision and scale rules, integer widening) and the implicit casts of their operands; unary
//! minus and NOT.

use super::*;

/// Flink's result type of DECIMAL arithmetic, with the precision capped at 38 as Flink does
/// (integer digits are kept, the scale gives way down to 6).
pub(crate) fn decimal_result(op: BinOp, (p1, s1): (u8, u8), (p2, s2): (u8, u8)) -> DataType {
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

pub(crate) fn decimal_of(t: DataType) -> (u8, u8) {
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

impl Converter<'_> {
    pub(super) fn unary(&self, op: UnOp, x: &sql::Expr) -> Result<Expr> {
        Ok(Expr::Unary {
            op,
            arg: Box::new(self.convert(x)?),
            ty: DataType::Boolean,
        })
    }
}
