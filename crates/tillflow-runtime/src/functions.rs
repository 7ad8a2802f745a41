//! Built-in scalar functions: the string, numeric and date/time functions Flink users reach for first.
//!
//! Each [`Func`] is resolved by name in the planner ([`Func::by_name`]) and evaluated here on
//! already-evaluated arguments, except the lazy ones (COALESCE, IF, ...) that evaluate only the
//! branch they need. Date patterns are Java `SimpleDateFormat` patterns, as in Flink.

use crate::cast::cast_value;
use crate::error::{Result, RuntimeError};
use crate::expr::{compare, concat, Expr};
use std::cmp::Ordering;
use std::fmt::Write;
use tillflow_types::temporal::{
    civil_from_days, days_from_civil, days_in_month, split_micros, MICROS_PER_DAY,
    MICROS_PER_SECOND,
};
use tillflow_types::value::{heap_str, push_str};
use tillflow_types::{DataType, Row, StrRef, Value};

/// A calendar unit for EXTRACT, FLOOR/CEIL and TIMESTAMPDIFF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeUnit {
    /// Year.
    Year,
    /// Quarter of the year (1..4).
    Quarter,
    /// Month.
    Month,
    /// ISO week.
    Week,
    /// Day.
    Day,
    /// Hour.
    Hour,
    /// Minute.
    Minute,
    /// Second.
    Second,
    /// Millisecond.
    Millisecond,
    /// Day of week, 1 = Sunday (as Flink).
    DayOfWeek,
    /// Day of year.
    DayOfYear,
    /// Seconds since the epoch.
    Epoch,
}

impl TimeUnit {
    /// Parses a unit name (`HOUR`, `DAY`, `DOW`, ...).
    pub fn parse(s: &str) -> Option<TimeUnit> {
        Some(match s.to_ascii_uppercase().as_str() {
            "YEAR" | "YEARS" => TimeUnit::Year,
            "QUARTER" => TimeUnit::Quarter,
            "MONTH" | "MONTHS" => TimeUnit::Month,
            "WEEK" | "WEEKS" => TimeUnit::Week,
            "DAY" | "DAYS" => TimeUnit::Day,
            "HOUR" | "HOURS" => TimeUnit::Hour,
            "MINUTE" | "MINUTES" => TimeUnit::Minute,
            "SECOND" | "SECONDS" => TimeUnit::Second,
            "MILLISECOND" | "MILLISECONDS" => TimeUnit::Millisecond,
            "DOW" | "DAYOFWEEK" => TimeUnit::DayOfWeek,
            "DOY" | "DAYOFYEAR" => TimeUnit::DayOfYear,
            "EPOCH" => TimeUnit::Epoch,
            _ => return None,
        })
    }

    /// The fixed length of the unit in microseconds (None for months, quarters and years).
    pub fn fixed_micros(self) -> Option<i64> {
        Some(match self {
            TimeUnit::Week => 7 * MICROS_PER_DAY,
            TimeUnit::Day => MICROS_PER_DAY,
            TimeUnit::Hour => 3600 * MICROS_PER_SECOND,
            TimeUnit::Minute => 60 * MICROS_PER_SECOND,
            TimeUnit::Second => MICROS_PER_SECOND,
            TimeUnit::Millisecond => 1000,
            _ => return None,
        })
    }
}

/// A built-in scalar function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    /// UPPER(s)
    Upper,
    /// LOWER(s)
    Lower,
    /// CHAR_LENGTH(s) / CHARACTER_LENGTH(s)
    CharLength,
    /// SUBSTRING(s, start [, len]) / SUBSTR
    Substring,
    /// CONCAT(s, ...) (NULL if any argument is NULL)
    Concat,
    /// CONCAT_WS(sep, s, ...) (NULL arguments skipped)
    ConcatWs,
    /// TRIM(s) both sides (spaces)
    Trim,
    /// LTRIM(s)
    Ltrim,
    /// RTRIM(s)
    Rtrim,
    /// REPLACE(s, from, to)
    Replace,
    /// LPAD(s, len, pad)
    Lpad,
    /// RPAD(s, len, pad)
    Rpad,
    /// INITCAP(s)
    Initcap,
    /// POSITION(needle IN s) / LOCATE(needle, s), 1-based, 0 when absent
    Position,
    /// COALESCE(a, b, ...) (lazy)
    Coalesce,
    /// IFNULL(a, b) (lazy)
    IfNull,
    /// NULLIF(a, b)
    NullIf,
    /// IF(cond, a, b) (lazy)
    If,
    /// ABS(x)
    Abs,
    /// ROUND(x [, d]) half up
    Round,
    /// FLOOR(x) numeric
    Floor,
    /// CEIL(x) numeric
    Ceil,
    /// MOD(a, b)
    Mod,
    /// POWER(a, b)
    Power,
    /// SQRT(x)
    Sqrt,
    /// LN(x)
    Ln,
    /// LOG10(x)
    Log10,
    /// EXP(x)
    Exp,
    /// SIGN(x)
    Sign,
    /// GREATEST(a, ...)
    Greatest,
    /// LEAST(a, ...)
    Least,
    /// FLOOR(ts TO unit)
    FloorTime(TimeUnit),
    /// CEIL(ts TO unit)
    CeilTime(TimeUnit),
    /// EXTRACT(unit FROM ts) and YEAR(ts), HOUR(ts), ...
    Extract(TimeUnit),
    /// DATE_FORMAT(ts, pattern)
    DateFormat,
    /// TO_TIMESTAMP(s [, pattern])
    ToTimestamp,
    /// TO_DATE(s [, pattern])
    ToDate,
    /// UNIX_TIMESTAMP() / UNIX_TIMESTAMP(s [, pattern])
    UnixTimestamp,
    /// FROM_UNIXTIME(secs [, pattern])
    FromUnixtime,
    /// TO_TIMESTAMP_LTZ(n, precision) with precision 0 (seconds) or 3 (milliseconds)
    ToTimestampLtz,
    /// TIMESTAMPDIFF(unit, a, b)
    TimestampDiff(TimeUnit),
    /// CURRENT_TIMESTAMP / NOW() / LOCALTIMESTAMP / PROCTIME() (wall clock, UTC)
    Now,
    /// CURRENT_DATE
    CurrentDate,
    /// `map[key]`: the value of a key in a MAP (NULL when absent).
    MapGet,
    /// Field, element and CARDINALITY access and the ROW / ARRAY constructors.
    Nested(crate::nested_fn::NestedFn),
    /// LEFT(s, n): the first n characters ("" for n <= 0)
    Left,
    /// RIGHT(s, n): the last n characters ("" for n <= 0)
    Right,
    /// REVERSE(s)
    Reverse,
    /// REPEAT(s, n) ("" for n <= 0)
    Repeat,
    /// OVERLAY(s PLACING r FROM pos [FOR len])
    Overlay,
    /// SPLIT_INDEX(s, sep, i): the 0-based i-th token
    SplitIndex,
    /// MD5(s) as hex
    Md5,
    /// SHA1(s) as hex
    Sha1,
    /// SHA224(s) as hex
    Sha224,
    /// SHA256(s) as hex
    Sha256,
    /// SHA384(s) as hex
    Sha384,
    /// SHA512(s) as hex
    Sha512,
    /// SHA2(s, bits) with bits 224, 256, 384 or 512
    Sha2,
    /// TO_BASE64(s)
    ToBase64,
    /// FROM_BASE64(s)
    FromBase64,
    /// UUID(): a random (type 4) UUID
    Uuid,
    /// REGEXP(s, pattern): does the pattern occur in s
    Regexp,
    /// REGEXP_EXTRACT(s, pattern [, group])
    RegexpExtract,
    /// REGEXP_REPLACE(s, pattern, replacement) (the replacement is literal, as in Flink)
    RegexpReplace,
    /// STR_TO_MAP(s [, pair_delimiter, kv_delimiter]) (delimiters are regular expressions)
    StrToMap,
    /// CONVERT_TZ(s, from_zone, to_zone) on 'yyyy-MM-dd HH:mm:ss' text
    ConvertTz,
    /// TIMESTAMPADD(unit, n, ts)
    TimestampAdd(TimeUnit),
    /// JSON_VALUE, JSON_QUERY, JSON_EXISTS (evaluated with their compiled path,
    /// [`crate::expr::Expr::Prepared`])
    Json(crate::json::JsonFn),
    /// `s IS JSON [VALUE|SCALAR|ARRAY|OBJECT]` (0 VALUE, 1 SCALAR, 2 ARRAY, 3 OBJECT)
    IsJson(u8),
    /// JSON_OBJECT, JSON_ARRAY, JSON_STRING
    JsonBuild(crate::json::JsonBuild),
}

impl Func {
    /// Resolves a function by its SQL name (case-insensitive) for the plain call syntax.
    pub fn by_name(name: &str) -> Option<Func> {
        Some(match name.to_ascii_uppercase().as_str() {
            "UPPER" | "UCASE" => Func::Upper,
            "LOWER" | "LCASE" => Func::Lower,
            "CHAR_LENGTH" | "CHARACTER_LENGTH" | "LENGTH" => Func::CharLength,
            "SUBSTRING" | "SUBSTR" => Func::Substring,
            "CONCAT" => Func::Concat,
            "CONCAT_WS" => Func::ConcatWs,
            "TRIM" | "BTRIM" => Func::Trim,
            "LTRIM" => Func::Ltrim,
            "RTRIM" => Func::Rtrim,
            "REPLACE" => Func::Replace,
            "LPAD" => Func::Lpad,
            "RPAD" => Func::Rpad,
            "INITCAP" => Func::Initcap,
            "LOCATE" | "POSITION" | "INSTR" => Func::Position,
            "COALESCE" => Func::Coalesce,
            "IFNULL" | "NVL" => Func::IfNull,
            "NULLIF" => Func::NullIf,
            "IF" => Func::If,
            "ABS" => Func::Abs,
            "ROUND" => Func::Round,
            "FLOOR" => Func::Floor,
            "CEIL" | "CEILING" => Func::Ceil,
            "MOD" => Func::Mod,
            "POWER" | "POW" => Func::Power,
            "SQRT" => Func::Sqrt,
            "LN" => Func::Ln,
            "LOG10" => Func::Log10,
            "EXP" => Func::Exp,
            "SIGN" => Func::Sign,
            "GREATEST" => Func::Greatest,
            "LEAST" => Func::Least,
            "YEAR" => Func::Extract(TimeUnit::Year),
            "QUARTER" => Func::Extract(TimeUnit::Quarter),
            "MONTH" => Func::Extract(TimeUnit::Month),
            "WEEK" => Func::Extract(TimeUnit::Week),
            "DAYOFMONTH" => Func::Extract(TimeUnit::Day),
            "DAYOFWEEK" => Func::Extract(TimeUnit::DayOfWeek),
            "DAYOFYEAR" => Func::Extract(TimeUnit::DayOfYear),
            "HOUR" => Func::Extract(TimeUnit::Hour),
            "MINUTE" => Func::Extract(TimeUnit::Minute),
            "SECOND" => Func::Extract(TimeUnit::Second),
            "DATE_FORMAT" => Func::DateFormat,
            "TO_TIMESTAMP" => Func::ToTimestamp,
            "TO_DATE" => Func::ToDate,
            "UNIX_TIMESTAMP" => Func::UnixTimestamp,
            "FROM_UNIXTIME" => Func::FromUnixtime,
            "TO_TIMESTAMP_LTZ" => Func::ToTimestampLtz,
            "NOW"
            | "CURRENT_TIMESTAMP"
            | "LOCALTIMESTAMP"
            | "CURRENT_ROW_TIMESTAMP"
            | "PROCTIME" => Func::Now,
            "CURRENT_DATE" => Func::CurrentDate,
            "LEFT" => Func::Left,
            "RIGHT" => Func::Right,
            "REVERSE" => Func::Reverse,
            "REPEAT" => Func::Repeat,
            "OVERLAY" => Func::Overlay,
            "SPLIT_INDEX" => Func::SplitIndex,
            "MD5" => Func::Md5,
            "SHA1" => Func::Sha1,
            "SHA224" => Func::Sha224,
            "SHA256" => Func::Sha256,
            "SHA384" => Func::Sha384,
            "SHA512" => Func::Sha512,
            "SHA2" => Func::Sha2,
            "TO_BASE64" => Func::ToBase64,
            "FROM_BASE64" => Func::FromBase64,
            "UUID" => Func::Uuid,
            "REGEXP" => Func::Regexp,
            "REGEXP_EXTRACT" => Func::RegexpExtract,
            "REGEXP_REPLACE" => Func::RegexpReplace,
            "STR_TO_MAP" => Func::StrToMap,
            "CONVERT_TZ" => Func::ConvertTz,
            _ => return None,
        })
    }

    /// False for functions whose result depends on the clock.
    pub fn is_deterministic(self) -> bool {
        !matches!(self, Func::Now | Func::CurrentDate | Func::Uuid)
            && !(self == Func::UnixTimestamp)
    }

    /// True for the REGEXP functions, whose pattern is compiled once ([`crate::expr::Expr::Prepared`]).
    pub fn uses_regex(self) -> bool {
        matches!(
            self,
            Func::Regexp | Func::RegexpExtract | Func::RegexpReplace | Func::StrToMap
        )
    }

    /// The name Flink gives the function (for explain output).
    pub fn sql_name(self) -> Option<&'static str> {
        Some(match self {
            Func::Left => "LEFT",
            Func::Right => "RIGHT",
            Func::Reverse => "REVERSE",
            Func::Repeat => "REPEAT",
            Func::Overlay => "OVERLAY",
            Func::SplitIndex => "SPLIT_INDEX",
            Func::Md5 => "MD5",
            Func::Sha1 => "SHA1",
            Func::Sha224 => "SHA224",
            Func::Sha256 => "SHA256",
            Func::Sha384 => "SHA384",
            Func::Sha512 => "SHA512",
            Func::Sha2 => "SHA2",
            Func::ToBase64 => "TO_BASE64",
            Func::FromBase64 => "FROM_BASE64",
            Func::Uuid => "UUID",
            Func::Regexp => "REGEXP",
            Func::RegexpExtract => "REGEXP_EXTRACT",
            Func::RegexpReplace => "REGEXP_REPLACE",
            Func::StrToMap => "STR_TO_MAP",
            Func::ConvertTz => "CONVERT_TZ",
            Func::TimestampAdd(_) => "TIMESTAMPADD",
            Func::TimestampDiff(_) => "TIMESTAMPDIFF",
            Func::Json(crate::json::JsonFn::Value) => "JSON_VALUE",
            Func::Json(crate::json::JsonFn::Query) => "JSON_QUERY",
            Func::Json(crate::json::JsonFn::Exists) => "JSON_EXISTS",
            Func::IsJson(_) => "IS_JSON",
            Func::JsonBuild(b) => b.sql_name(),
            _ => return None,
        })
    }

    /// True for functions that evaluate their arguments themselves.
    pub fn is_lazy(self) -> bool {
        matches!(self, Func::Coalesce | Func::IfNull | Func::If)
    }

    /// The result type for arguments of types `args`, or a message saying what is wrong.
    pub fn return_type(self, args: &[DataType]) -> std::result::Result<DataType, String> {
        use DataType as T;
        if let Func::Nested(n) = self {
            return n.return_type(args);
        }
        let first = args.first().copied().unwrap_or(T::Null);
        let need = |n: std::ops::RangeInclusive<usize>| {
            if n.contains(&args.len()) {
                Ok(())
            } else {
                // Flink's name: `RegexpExtract` → `REGEXP_EXTRACT`
                let name = self.sql_name().map_or_else(
                    || {
                        let mut n = String::new();
                        for (i, c) in format!("{self:?}").chars().enumerate() {
                            if c.is_ascii_uppercase() && i > 0 {
                                n.push('_');
                            }
                            n.push(c.to_ascii_uppercase());
                        }
                        n
                    },
                    str::to_owned,
                );
                let takes = if n.start() == n.end() {
                    format!("{}", n.start())
                } else {
                    format!("{} to {}", n.start(), n.end())
                };
                let s = if *n.end() == 1 { "" } else { "s" };
                Err(format!(
                    "{name} takes {takes} argument{s}, got {}",
                    args.len()
                ))
            }
        };
        Ok(match self {
            Func::Nested(n) => return n.return_type(args),
            Func::MapGet => {
                need(2..=2)?;
                match first {
                    T::Map(_, v) => *v,
                    other => return Err(format!("[key] needs a MAP, not {other}")),
                }
            }
            Func::Upper | Func::Lower | Func::Initcap => {
                need(1..=1)?;
                T::String(None)
            }
            // TRIM([BOTH|LEADING|TRAILING] chars FROM s): the characters to remove, as a set
            Func::Trim | Func::Ltrim | Func::Rtrim => {
                need(1..=2)?;
                T::String(None)
            }
            Func::CharLength => {
                need(1..=1)?;
                T::Int
            }
            Func::Substring => {
                need(2..=3)?;
                T::String(None)
            }
            Func::Concat | Func::ConcatWs => {
                need(1..=MAX_VARARGS)?;
                T::String(None)
            }
            Func::Replace | Func::Lpad | Func::Rpad => {
                need(3..=3)?;
                T::String(None)
            }
            Func::Position => {
                need(2..=2)?;
                T::Int
            }
            Func::Coalesce | Func::Greatest | Func::Least => {
                need(1..=MAX_VARARGS)?;
                let mut t = T::Null;
                for a in args {
                    t = T::common(t, *a).ok_or_else(|| format!("{self:?} mixes {t} and {a}"))?;
                }
                t
            }
            Func::IfNull | Func::NullIf => {
                need(2..=2)?;
                T::common(args[0], args[1])
                    .ok_or_else(|| format!("{self:?} mixes {} and {}", args[0], args[1]))?
            }
            Func::If => {
                need(3..=3)?;
                T::common(args[1], args[2])
                    .ok_or_else(|| format!("IF mixes {} and {}", args[1], args[2]))?
            }
            Func::Abs | Func::Floor | Func::Ceil | Func::Sign => {
                need(1..=1)?;
                first
            }
            Func::Round => {
                need(1..=2)?;
                first
            }
            Func::Mod => {
                need(2..=2)?;
                T::arithmetic_result(args[0], args[1]).ok_or("MOD needs numbers")?
            }
            Func::Power | Func::Sqrt | Func::Ln | Func::Log10 | Func::Exp => T::Double,
            Func::FloorTime(_) | Func::CeilTime(_) => first,
            Func::Extract(_) | Func::TimestampDiff(_) => T::BigInt,
            Func::DateFormat => T::String(None),
            Func::ToTimestamp => T::Timestamp(3),
            Func::ToDate => T::Date,
            Func::UnixTimestamp => T::BigInt,
            Func::FromUnixtime => T::String(None),
            Func::ToTimestampLtz => T::TimestampLtz(3),
            Func::Now => T::TimestampLtz(3),
            Func::CurrentDate => T::Date,
            Func::Left | Func::Right | Func::Repeat => {
                need(2..=2)?;
                T::String(None)
            }
            Func::Reverse
            | Func::Md5
            | Func::Sha1
            | Func::Sha224
            | Func::Sha256
            | Func::Sha384
            | Func::Sha512
            | Func::ToBase64
            | Func::FromBase64 => {
                need(1..=1)?;
                T::String(None)
            }
            Func::Sha2 => {
                need(2..=2)?;
                T::String(None)
            }
            Func::Overlay => {
                need(3..=4)?;
                T::String(None)
            }
            Func::SplitIndex => {
                need(3..=3)?;
                T::String(None)
            }
            Func::Uuid => {
                need(0..=0)?;
                T::String(None)
            }
            Func::Regexp => {
                need(2..=2)?;
                T::Boolean
            }
            Func::RegexpExtract => {
                need(2..=3)?;
                T::String(None)
            }
            Func::RegexpReplace | Func::ConvertTz => {
                need(3..=3)?;
                T::String(None)
            }
            Func::StrToMap => {
                if args.len() != 1 && args.len() != 3 {
                    return Err(format!(
                        "STR_TO_MAP takes 1 or 3 arguments, got {}",
                        args.len()
                    ));
                }
                T::map(T::String(None), T::String(None))
            }
            Func::Json(crate::json::JsonFn::Exists) | Func::IsJson(_) => T::Boolean,
            Func::Json(_) => T::String(None),
            Func::JsonBuild(b) => {
                if let Some(t) = args.iter().find(|t| !crate::json::build_accepts(**t)) {
                    return Err(format!(
                        "{}: type {t} is not scalar or cannot be converted into JSON",
                        b.sql_name()
                    ));
                }
                if b == crate::json::JsonBuild::String {
                    need(1..=1)?;
                }
                T::String(None)
            }
            Func::TimestampAdd(_) => {
                need(2..=2)?;
                match args[1] {
                    T::Date => T::Date,
                    T::Timestamp(p) => T::Timestamp(p),
                    T::TimestampLtz(p) => T::TimestampLtz(p),
                    T::Time(p) => T::Time(p),
                    other => {
                        return Err(format!(
                            "TIMESTAMPADD needs a date or timestamp, not {other}"
                        ))
                    }
                }
            }
        })
    }
}

/// Most arguments a variadic function accepts.
pub const MAX_VARARGS: usize = crate::expr::MAX_ARGS;

fn wall_clock_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn s(heap: &[u8], v: Value) -> Option<&str> {
    match v {
        Value::Str(r) => Some(heap_str(heap, r)),
        _ => None,
    }
}

fn new_str(out: &mut Vec<u8>, f: impl FnOnce(&str, &mut String), src: StrRef) -> Value {
    let mut buf = String::new();
    f(heap_str(out, src), &mut buf);
    Value::Str(push_str(out, &buf))
}

/// Evaluates a lazy function (COALESCE, IFNULL, IF).
pub fn call_lazy(func: Func, args: &[Expr], row: &Row, out: &mut Vec<u8>) -> Result<Value> {
    match func {
        Func::Coalesce | Func::IfNull => {
            for a in args {
                let v = a.eval(row, out)?;
                if !v.is_null() {
                    return Ok(v);
                }
            }
            Ok(Value::Null)
        }
        Func::If => {
            let c = args[0].eval(row, out)?;
            if c == Value::Bool(true) {
                args[1].eval(row, out)
            } else {
                args[2].eval(row, out)
            }
        }
        _ => Err(RuntimeError::Eval(format!("{func:?} is not lazy"))),
    }
}

fn as_f64(v: Value, ty: DataType) -> Option<f64> {
    match v {
        Value::Int(i) => Some(i as f64),
        Value::Float(f) => Some(f),
        Value::Decimal(d) => Some(d as f64 / 10f64.powi(crate::expr::scale_of(ty) as i32)),
        _ => None,
    }
}

/// Evaluates a function on evaluated arguments whose strings live in `out`.
pub fn call(
    func: Func,
    v: &[Value],
    args: &[Expr],
    ty: DataType,
    out: &mut Vec<u8>,
) -> Result<Value> {
    if let Func::Nested(n) = func {
        return n.call(v, args, ty, out);
    }
    let arg_ty = |i: usize| args.get(i).map(Expr::data_type).unwrap_or(DataType::Null);
    if !matches!(
        func,
        Func::ConcatWs
            | Func::Now
            | Func::CurrentDate
            | Func::UnixTimestamp
            | Func::NullIf
            | Func::Greatest
            | Func::Least
            | Func::IsJson(_)
            | Func::JsonBuild(_)
    ) && v.iter().any(Value::is_null)
    {
        return Ok(Value::Null);
    }
    Ok(match func {
        Func::Nested(n) => return n.call(v, args, ty, out),
        Func::Left
        | Func::Right
        | Func::Reverse
        | Func::Repeat
        | Func::Overlay
        | Func::SplitIndex
        | Func::Md5
        | Func::Sha1
        | Func::Sha224
        | Func::Sha256
        | Func::Sha384
        | Func::Sha512
        | Func::Sha2
        | Func::ToBase64
        | Func::FromBase64
        | Func::Uuid => crate::strfn::call(func, v, out)?,
        Func::Regexp | Func::RegexpExtract | Func::RegexpReplace | Func::StrToMap => {
            return Err(RuntimeError::Eval(format!(
                "{func:?} must be evaluated with its compiled pattern"
            )))
        }
        Func::ConvertTz => crate::tzfn::convert_tz(v, out)?,
        Func::IsJson(k) => Value::Bool(crate::json::is_json(s(out, v[0]), k)),
        Func::JsonBuild(b) => return crate::json::build(b, v, args, out),
        Func::Json(_) => {
            return Err(RuntimeError::Eval(format!(
                "{func:?} must be evaluated with its compiled path"
            )))
        }
        Func::TimestampAdd(u) => crate::tzfn::timestamp_add(u, v[0], v[1], arg_ty(1))?,
        Func::MapGet => match (v[0], arg_ty(0)) {
            (Value::Str(m), DataType::Map(k, val)) => {
                tillflow_types::nested::map_get(out, m, *k, *val, v[1])
            }
            _ => Value::Null,
        },
        Func::Trim | Func::Ltrim | Func::Rtrim if v.len() == 2 => {
            // as Flink: every character of the second string is removed from the chosen ends
            let (Some(a), Some(set)) = (s(out, v[0]), s(out, v[1])) else {
                return Ok(Value::Null);
            };
            let strip = |c: char| set.contains(c);
            let r = match func {
                Func::Ltrim => a.trim_start_matches(strip),
                Func::Rtrim => a.trim_end_matches(strip),
                _ => a.trim_matches(strip),
            }
            .to_owned();
            Value::Str(push_str(out, &r))
        }
        Func::Upper | Func::Lower | Func::Trim | Func::Ltrim | Func::Rtrim | Func::Initcap => {
            let Value::Str(r) = v[0] else {
                return Ok(Value::Null);
            };
            new_str(
                out,
                |x, b| match func {
                    Func::Upper => b.push_str(&x.to_uppercase()),
                    Func::Lower => b.push_str(&x.to_lowercase()),
                    Func::Trim => b.push_str(x.trim_matches(' ')),
                    Func::Ltrim => b.push_str(x.trim_start_matches(' ')),
                    Func::Rtrim => b.push_str(x.trim_end_matches(' ')),
                    _ => {
                        let mut up = true;
                        for c in x.chars() {
                            if up {
                                b.extend(c.to_uppercase());
                            } else {
                                b.extend(c.to_lowercase());
                            }
                            up = !c.is_alphanumeric();
                        }
                    }
                },
                r,
            )
        }
        Func::CharLength => Value::Int(s(out, v[0]).map(|x| x.chars().count()).unwrap_or(0) as i64),
        Func::Substring => {
            let Value::Str(r) = v[0] else {
                return Ok(Value::Null);
            };
            let start = int(v[1]);
            let len = v.get(2).map(|x| int(*x));
            if len.is_some_and(|l| l < 0) {
                return Ok(Value::Null);
            }
            new_str(
                out,
                |x, b| {
                    let n = x.chars().count() as i64;
                    let from = if start > 0 {
                        start - 1
                    } else if start < 0 {
                        (n + start).max(0)
                    } else {
                        0
                    };
                    let take = len.unwrap_or(n).max(0);
                    b.extend(x.chars().skip(from as usize).take(take as usize));
                },
                r,
            )
        }
        Func::Concat => concat(v, out),
        Func::ConcatWs => {
            let Some(sep) = v.first().copied().filter(|x| !x.is_null()) else {
                return Ok(Value::Null);
            };
            let start = out.len();
            let mut first = true;
            for x in &v[1..] {
                if let Value::Str(r) = x {
                    if !first {
                        if let Value::Str(sr) = sep {
                            out.extend_from_within(sr.off as usize..(sr.off + sr.len) as usize);
                        }
                    }
                    out.extend_from_within(r.off as usize..(r.off + r.len) as usize);
                    first = false;
                }
            }
            Value::Str(StrRef {
                off: start as u32,
                len: (out.len() - start) as u32,
            })
        }
        Func::Replace => {
            let (Some(a), Some(f), Some(t)) = (s(out, v[0]), s(out, v[1]), s(out, v[2])) else {
                return Ok(Value::Null);
            };
            let r = if f.is_empty() {
                a.to_owned()
            } else {
                a.replace(f, t)
            };
            Value::Str(push_str(out, &r))
        }
        Func::Lpad | Func::Rpad => {
            let (Some(a), Some(p)) = (s(out, v[0]), s(out, v[2])) else {
                return Ok(Value::Null);
            };
            let n = int(v[1]);
            if n < 0 || (p.is_empty() && (a.chars().count() as i64) < n) {
                return Ok(Value::Null);
            }
            if n as u64 > crate::strfn::MAX_BUILT_STRING as u64 {
                return Err(RuntimeError::Eval(format!(
                    "{}: a result of {n} characters is longer than the {} characters a function may build (docs/limits.md)",
                    if func == Func::Lpad { "LPAD" } else { "RPAD" },
                    crate::strfn::MAX_BUILT_STRING
                )));
            }
            let a: Vec<char> = a.chars().collect();
            let p: Vec<char> = p.chars().collect();
            let n = n as usize;
            let r: String = if a.len() >= n {
                a[..n].iter().collect()
            } else {
                let pad: String = p.iter().cycle().take(n - a.len()).collect();
                let a: String = a.iter().collect();
                if func == Func::Lpad {
                    pad + &a
                } else {
                    a + &pad
                }
            };
            Value::Str(push_str(out, &r))
        }
        Func::Position => {
            let (Some(needle), Some(hay)) = (s(out, v[0]), s(out, v[1])) else {
                return Ok(Value::Null);
            };
            Value::Int(match hay.find(needle) {
                Some(b) => hay[..b].chars().count() as i64 + 1,
                None => 0,
            })
        }
        Func::NullIf => {
            if !v[0].is_null()
                && !v[1].is_null()
                && compare(v[0], v[1], out) == Some(Ordering::Equal)
            {
                Value::Null
            } else {
                v[0]
            }
        }
        Func::Greatest | Func::Least => {
            if v.iter().any(Value::is_null) {
                return Ok(Value::Null);
            }
            let mut best = v[0];
            for x in &v[1..] {
                let o = compare(*x, best, out);
                if (func == Func::Greatest && o == Some(Ordering::Greater))
                    || (func == Func::Least && o == Some(Ordering::Less))
                {
                    best = *x;
                }
            }
            best
        }
        Func::Abs => match v[0] {
            Value::Int(i) => Value::Int(i.wrapping_abs()),
            Value::Float(f) => Value::Float(f.abs()),
            Value::Decimal(d) => Value::Decimal(d.abs()),
            x => x,
        },
        Func::Sign => match v[0] {
            Value::Int(i) => Value::Int(i.signum()),
            Value::Float(f) => Value::Float(if f == 0.0 { 0.0 } else { f.signum() }),
            Value::Decimal(d) => {
                Value::Decimal(d.signum() * 10i128.pow(crate::expr::scale_of(ty) as u32))
            }
            x => x,
        },
        Func::Round | Func::Floor | Func::Ceil => {
            let digits = v.get(1).map(|x| int(*x)).unwrap_or(0);
            match v[0] {
                Value::Int(i) => {
                    if digits >= 0 || func != Func::Round {
                        Value::Int(i)
                    } else {
                        let p = 10i64.pow((-digits).min(18) as u32);
                        Value::Int(((i as f64 / p as f64).round() as i64) * p)
                    }
                }
                Value::Float(f) => {
                    let p = 10f64.powi(digits as i32);
                    Value::Float(match func {
                        Func::Round => round_half_up(f * p) / p,
                        Func::Floor => f.floor(),
                        _ => f.ceil(),
                    })
                }
                Value::Decimal(d) => {
                    let sc = crate::expr::scale_of(arg_ty(0)) as i64;
                    let keep = if func == Func::Round {
                        digits.min(sc)
                    } else {
                        0
                    };
                    let unit = 10i128.pow((sc - keep).max(0) as u32);
                    let q = d.div_euclid(unit);
                    let r = d.rem_euclid(unit);
                    let q = match func {
                        Func::Round => {
                            if d >= 0 {
                                if r * 2 >= unit {
                                    q + 1
                                } else {
                                    q
                                }
                            } else if r * 2 > unit {
                                q + 1
                            } else {
                                q
                            }
                        }
                        Func::Floor => q,
                        _ => {
                            if r > 0 {
                                q + 1
                            } else {
                                q
                            }
                        }
                    };
                    // the result keeps the argument's scale
                    Value::Decimal(q * unit)
                }
                x => x,
            }
        }
        Func::Mod => {
            let (a, b) = (v[0], v[1]);
            match (a, b) {
                (Value::Int(_), Value::Int(0)) => {
                    return Err(RuntimeError::Eval("MOD by zero".into()))
                }
                (Value::Int(x), Value::Int(y)) => Value::Int(x.wrapping_rem(y)),
                // decimals exactly, as Java's BigDecimal.remainder (the dividend's sign)
                (Value::Decimal(_) | Value::Int(_), Value::Decimal(_) | Value::Int(_)) => {
                    let unscaled = |v: Value| match v {
                        Value::Decimal(d) => d,
                        Value::Int(i) => i as i128,
                        _ => 0,
                    };
                    let (sx, sy) = (
                        crate::expr::scale_of(arg_ty(0)),
                        crate::expr::scale_of(arg_ty(1)),
                    );
                    let s = sx.max(sy);
                    let up =
                        |d: i128, from: u8| d.checked_mul(10i128.checked_pow((s - from) as u32)?);
                    let (Some(x), Some(y)) = (up(unscaled(a), sx), up(unscaled(b), sy)) else {
                        return Err(RuntimeError::Eval(format!("MOD({a:?}, {b:?}) overflows")));
                    };
                    if y == 0 {
                        return Err(RuntimeError::Eval("MOD: division by zero".into()));
                    }
                    cast_value(Value::Decimal(x % y), DataType::Decimal(38, s), ty, out)?
                }
                _ => {
                    let (x, y) = (
                        as_f64(a, arg_ty(0)).unwrap_or(f64::NAN),
                        as_f64(b, arg_ty(1)).unwrap_or(f64::NAN),
                    );
                    cast_value(Value::Float(x % y), DataType::Double, ty, out)?
                }
            }
        }
        Func::Power | Func::Sqrt | Func::Ln | Func::Log10 | Func::Exp => {
            let x = as_f64(v[0], arg_ty(0)).unwrap_or(f64::NAN);
            Value::Float(match func {
                Func::Power => x.powf(as_f64(v[1], arg_ty(1)).unwrap_or(f64::NAN)),
                Func::Sqrt => x.sqrt(),
                Func::Ln => x.ln(),
                Func::Log10 => x.log10(),
                _ => x.exp(),
            })
        }
        Func::FloorTime(u) | Func::CeilTime(u) => match v[0] {
            Value::Timestamp(t) => {
                Value::Timestamp(floor_ceil_ts(t, u, matches!(func, Func::CeilTime(_))))
            }
            Value::Date(d) => {
                let t = floor_ceil_ts(
                    d as i64 * MICROS_PER_DAY,
                    u,
                    matches!(func, Func::CeilTime(_)),
                );
                Value::Date(t.div_euclid(MICROS_PER_DAY) as i32)
            }
            x => x,
        },
        Func::Extract(u) => {
            let t = match v[0] {
                Value::Timestamp(t) => t,
                Value::Date(d) => d as i64 * MICROS_PER_DAY,
                Value::Time(t) => t,
                _ => return Ok(Value::Null),
            };
            Value::Int(extract(u, t))
        }
        Func::TimestampDiff(u) => match (v[0], v[1]) {
            (Value::Timestamp(a), Value::Timestamp(b)) => Value::Int(match u.fixed_micros() {
                Some(m) => (b - a) / m,
                None => {
                    let months = months_between(a, b);
                    match u {
                        TimeUnit::Year => months / 12,
                        TimeUnit::Quarter => months / 3,
                        _ => months,
                    }
                }
            }),
            _ => Value::Null,
        },
        Func::DateFormat => {
            let t = match v[0] {
                Value::Timestamp(t) => t,
                Value::Str(r) => {
                    match tillflow_types::temporal::parse_timestamp(heap_str(out, r)) {
                        Some(t) => t,
                        None => return Ok(Value::Null),
                    }
                }
                _ => return Ok(Value::Null),
            };
            let pat = s(out, v[1]).unwrap_or("").to_owned();
            let mut buf = String::new();
            format_datetime(&mut buf, t, &pat).map_err(RuntimeError::Eval)?;
            Value::Str(push_str(out, &buf))
        }
        Func::ToTimestamp | Func::ToDate | Func::UnixTimestamp => {
            if func == Func::UnixTimestamp && v.is_empty() {
                return Ok(Value::Int(
                    wall_clock_micros().div_euclid(MICROS_PER_SECOND),
                ));
            }
            if v.iter().any(Value::is_null) {
                return Ok(Value::Null);
            }
            let text = s(out, v[0]).unwrap_or("").to_owned();
            let default = if func == Func::ToDate {
                "yyyy-MM-dd"
            } else {
                "yyyy-MM-dd HH:mm:ss"
            };
            let pat = v
                .get(1)
                .and_then(|p| s(out, *p))
                .unwrap_or(default)
                .to_owned();
            match parse_pattern(&text, &pat) {
                Some(t) => match func {
                    Func::ToTimestamp => Value::Timestamp(t),
                    Func::ToDate => Value::Date(t.div_euclid(MICROS_PER_DAY) as i32),
                    _ => Value::Int(t.div_euclid(MICROS_PER_SECOND)),
                },
                None => Value::Null,
            }
        }
        Func::FromUnixtime => {
            let secs = int(v[0]);
            let pat = v
                .get(1)
                .and_then(|p| s(out, *p))
                .unwrap_or("yyyy-MM-dd HH:mm:ss")
                .to_owned();
            let mut buf = String::new();
            format_pattern(&mut buf, secs.saturating_mul(MICROS_PER_SECOND), &pat);
            Value::Str(push_str(out, &buf))
        }
        Func::ToTimestampLtz => {
            let n = int(v[0]);
            let p = v.get(1).map(|x| int(*x)).unwrap_or(3);
            Value::Timestamp(if p == 0 {
                n.saturating_mul(MICROS_PER_SECOND)
            } else {
                n.saturating_mul(1000)
            })
        }
        Func::Now => Value::Timestamp(tillflow_types::temporal::truncate_to_precision(
            wall_clock_micros(),
            3,
        )),
        Func::CurrentDate => Value::Date(wall_clock_micros().div_euclid(MICROS_PER_DAY) as i32),
        Func::Coalesce | Func::IfNull | Func::If => {
            return Err(RuntimeError::Eval(format!(
                "{func:?} must be evaluated lazily"
            )))
        }
    })
}

fn round_half_up(x: f64) -> f64 {
    // Java's Math.round-like half-up on the decimal digits Flink keeps
    if x >= 0.0 {
        (x + 0.5).floor()
    } else {
        -((-x + 0.5).floor())
    }
}

fn int(v: Value) -> i64 {
    match v {
        Value::Int(i) => i,
        Value::Float(f) => f as i64,
        Value::Decimal(d) => d as i64,
        _ => 0,
    }
}

/// Adds `m` months to a timestamp, clamping the day to the target month's length.
pub fn add_months(t: i64, m: i32) -> i64 {
    let (days, tod) = split_micros(t);
    let (y, mo, d) = civil_from_days(days);
    let total = y * 12 + (mo as i64 - 1) + m as i64;
    let (ny, nm) = (total.div_euclid(12), (total.rem_euclid(12) + 1) as u32);
    let nd = d.min(days_in_month(ny, nm));
    days_from_civil(ny, nm, nd) * MICROS_PER_DAY + tod
}

fn months_between(a: i64, b: i64) -> i64 {
    let (da, ta) = split_micros(a);
    let (db, tb) = split_micros(b);
    let (ya, ma, dda) = civil_from_days(da);
    let (yb, mb, ddb) = civil_from_days(db);
    let mut m = (yb - ya) * 12 + mb as i64 - ma as i64;
    if m > 0 && (ddb, tb) < (dda, ta) {
        m -= 1;
    } else if m < 0 && (ddb, tb) > (dda, ta) {
        m += 1;
    }
    m
}

/// FLOOR/CEIL of a timestamp to a calendar unit.
pub fn floor_ceil_ts(t: i64, u: TimeUnit, ceil: bool) -> i64 {
    let floor = match u.fixed_micros() {
        Some(m) if u != TimeUnit::Week => t - t.rem_euclid(m),
        _ => {
            let (days, _) = split_micros(t);
            let (y, mo, _) = civil_from_days(days);
            let d = match u {
                TimeUnit::Year => days_from_civil(y, 1, 1),
                TimeUnit::Quarter => days_from_civil(y, ((mo - 1) / 3) * 3 + 1, 1),
                TimeUnit::Week => days - (days + 4).rem_euclid(7), // weeks start on Sunday, as Calcite
                _ => days_from_civil(y, mo, 1),
            };
            d * MICROS_PER_DAY
        }
    };
    if !ceil || floor == t {
        return floor;
    }
    match u {
        TimeUnit::Year => add_months(floor, 12),
        TimeUnit::Quarter => add_months(floor, 3),
        TimeUnit::Month => add_months(floor, 1),
        TimeUnit::Week => floor + 7 * MICROS_PER_DAY,
        _ => floor + u.fixed_micros().unwrap_or(0),
    }
}

/// EXTRACT(unit FROM t).
pub fn extract(u: TimeUnit, t: i64) -> i64 {
    let (days, tod) = split_micros(t);
    let (y, m, d) = civil_from_days(days);
    match u {
        TimeUnit::Year => y,
        TimeUnit::Quarter => (m as i64 - 1) / 3 + 1,
        TimeUnit::Month => m as i64,
        TimeUnit::Day => d as i64,
        TimeUnit::Hour => tod / (3600 * MICROS_PER_SECOND),
        TimeUnit::Minute => (tod / (60 * MICROS_PER_SECOND)) % 60,
        TimeUnit::Second => (tod / MICROS_PER_SECOND) % 60,
        TimeUnit::Millisecond => (tod / 1000) % 60_000,
        TimeUnit::DayOfWeek => (days + 4).rem_euclid(7) + 1,
        TimeUnit::DayOfYear => days - days_from_civil(y, 1, 1) + 1,
        TimeUnit::Week => {
            // ISO-8601 week number
            let wd = (days + 3).rem_euclid(7); // 0 = Monday
            let thursday = days - wd + 3;
            let (ty, _, _) = civil_from_days(thursday);
            (thursday - days_from_civil(ty, 1, 1)) / 7 + 1
        }
        TimeUnit::Epoch => t.div_euclid(MICROS_PER_SECOND),
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// Formats a timestamp with a Java `SimpleDateFormat` pattern (y M d H h m s S E a and quotes).
pub fn format_pattern(out: &mut String, t: i64, pat: &str) {
    let (days, tod) = split_micros(t);
    let (y, mo, d) = civil_from_days(days);
    let (h, mi, sec) = (
        tod / (3600 * MICROS_PER_SECOND),
        (tod / (60 * MICROS_PER_SECOND)) % 60,
        (tod / MICROS_PER_SECOND) % 60,
    );
    let micros = tod % MICROS_PER_SECOND;
    let chars: Vec<char> = pat.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let mut n = 1;
        while i + n < chars.len() && chars[i + n] == c {
            n += 1;
        }
        match c {
            'y' => {
                if n == 2 {
                    let _ = write!(out, "{:02}", y.rem_euclid(100));
                } else {
                    let _ = write!(out, "{:0n$}", y);
                }
            }
            'M' => {
                if n >= 3 {
                    out.push_str(MONTHS[(mo - 1) as usize]);
                } else {
                    let _ = write!(out, "{:0n$}", mo);
                }
            }
            'd' => {
                let _ = write!(out, "{:0n$}", d);
            }
            'H' => {
                let _ = write!(out, "{:0n$}", h);
            }
            'h' => {
                let hh = if h % 12 == 0 { 12 } else { h % 12 };
                let _ = write!(out, "{:0n$}", hh);
            }
            'm' => {
                let _ = write!(out, "{:0n$}", mi);
            }
            's' => {
                let _ = write!(out, "{:0n$}", sec);
            }
            'S' => {
                // fraction digits, as DateTimeFormatter's S
                let digits = format!("{micros:06}");
                let mut f: String = digits.chars().take(n).collect();
                while f.len() < n {
                    f.push('0');
                }
                out.push_str(&f);
            }
            'E' => out.push_str(DAYS[(days + 4).rem_euclid(7) as usize]),
            'a' => out.push_str(if h < 12 { "AM" } else { "PM" }),
            '\'' => {
                let mut j = i + 1;
                if j < chars.len() && chars[j] == '\'' {
                    out.push('\'');
                    i += 2;
                    continue;
                }
                while j < chars.len() && chars[j] != '\'' {
                    out.push(chars[j]);
                    j += 1;
                }
                i = j + 1;
                continue;
            }
            other => {
                for _ in 0..n {
                    out.push(other);
                }
            }
        }
        i += n;
    }
}

const MONTHS_FULL: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS_FULL: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Checks a `java.time.format.DateTimeFormatter` pattern as DATE_FORMAT uses it on a TIMESTAMP
/// (no time zone): the error names what Flink would fail on.
pub fn check_datetime_pattern(pat: &str) -> std::result::Result<(), String> {
    format_datetime(&mut String::new(), 0, pat)
}

/// Formats a timestamp as `DateTimeFormatter.ofPattern(pat)` does for a `LocalDateTime` in the US
/// locale (Flink's DATE_FORMAT): weeks start on Sunday and week 1 holds January 1st.
pub fn format_datetime(out: &mut String, t: i64, pat: &str) -> std::result::Result<(), String> {
    let (days, tod) = split_micros(t);
    let (y, mo, d) = civil_from_days(days);
    let (h, mi, sec) = (
        tod / (3600 * MICROS_PER_SECOND),
        (tod / (60 * MICROS_PER_SECOND)) % 60,
        (tod / MICROS_PER_SECOND) % 60,
    );
    let micros = tod % MICROS_PER_SECOND;
    let dow0 = (days + 4).rem_euclid(7); // 0 = Sunday
    let doy = days - days_from_civil(y, 1, 1) + 1;
    // US week fields: week 1 is the week (Sunday..Saturday) holding January 1st
    let week_start = |yy: i64| {
        let jan1 = days_from_civil(yy, 1, 1);
        jan1 - (jan1 + 4).rem_euclid(7)
    };
    let (wy, w) = {
        let next = week_start(y + 1);
        if days >= next {
            (y + 1, 1)
        } else {
            (y, (days - week_start(y)) / 7 + 1)
        }
    };
    let first_of_month = days - (d as i64 - 1);
    let wom = (d as i64 - 1 + (first_of_month + 4).rem_euclid(7)) / 7 + 1;
    let chars: Vec<char> = pat.chars().collect();
    let too_many = |c: char| Err(format!("DATE_FORMAT: too many pattern letters: {c}"));
    let num = |out: &mut String, v: i64, n: usize, max: usize, c: char| {
        if n > max {
            return too_many(c);
        }
        let _ = write!(out, "{v:0n$}");
        Ok(())
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let mut n = 1;
        while i + n < chars.len() && chars[i + n] == c && c.is_ascii_alphabetic() {
            n += 1;
        }
        match c {
            'y' | 'u' | 'Y' => {
                let yy = if c == 'Y' { wy } else { y };
                if n == 2 {
                    let _ = write!(out, "{:02}", yy.rem_euclid(100));
                } else {
                    let _ = write!(out, "{yy:0n$}");
                }
            }
            'G' => out.push_str(match n {
                1..=3 => "AD",
                4 => "Anno Domini",
                5 => "A",
                _ => return too_many(c),
            }),
            'M' | 'L' => match n {
                1 | 2 => num(out, mo as i64, n, 2, c)?,
                3 => out.push_str(MONTHS[(mo - 1) as usize]),
                4 => out.push_str(MONTHS_FULL[(mo - 1) as usize]),
                5 => out.push_str(&MONTHS_FULL[(mo - 1) as usize][..1]),
                _ => return too_many(c),
            },
            'Q' | 'q' => {
                let q = (mo as i64 - 1) / 3 + 1;
                match n {
                    1 | 2 => num(out, q, n, 2, c)?,
                    3 => {
                        let _ = write!(out, "Q{q}");
                    }
                    4 => out.push_str(
                        ["1st quarter", "2nd quarter", "3rd quarter", "4th quarter"]
                            [(q - 1) as usize],
                    ),
                    5 => {
                        let _ = write!(out, "{q}");
                    }
                    _ => return too_many(c),
                }
            }
            'd' => num(out, d as i64, n, 2, c)?,
            'D' => num(out, doy, n, 3, c)?,
            'w' => num(out, w, n, 2, c)?,
            'W' => num(out, wom, n, 1, c)?,
            'F' => num(out, (d as i64 - 1) % 7 + 1, n, 1, c)?,
            'E' => match n {
                1..=3 => out.push_str(DAYS[dow0 as usize]),
                4 => out.push_str(DAYS_FULL[dow0 as usize]),
                5 => out.push_str(&DAYS_FULL[dow0 as usize][..1]),
                _ => return too_many(c),
            },
            'e' | 'c' => match n {
                1 | 2 if c == 'e' || n == 1 => num(out, dow0 + 1, n, 2, c)?,
                3 => out.push_str(DAYS[dow0 as usize]),
                4 => out.push_str(DAYS_FULL[dow0 as usize]),
                5 => out.push_str(&DAYS_FULL[dow0 as usize][..1]),
                _ => return Err(format!("DATE_FORMAT: invalid pattern letter count {c}")),
            },
            'a' => {
                if n > 1 {
                    return too_many(c);
                }
                out.push_str(if h < 12 { "AM" } else { "PM" })
            }
            'H' => num(out, h, n, 2, c)?,
            'k' => num(out, if h == 0 { 24 } else { h }, n, 2, c)?,
            'K' => num(out, h % 12, n, 2, c)?,
            'h' => num(out, if h % 12 == 0 { 12 } else { h % 12 }, n, 2, c)?,
            'm' => num(out, mi, n, 2, c)?,
            's' => num(out, sec, n, 2, c)?,
            'S' => {
                if n > 9 {
                    return too_many(c);
                }
                let digits = format!("{:09}", micros * 1000);
                out.push_str(&digits[..n]);
            }
            'n' => {
                let _ = write!(out, "{:0n$}", micros * 1000);
            }
            'A' => {
                let _ = write!(out, "{:0n$}", tod / 1000);
            }
            'N' => {
                let _ = write!(out, "{:0n$}", tod as i128 * 1000);
            }
            'V' | 'v' | 'z' | 'O' | 'X' | 'x' | 'Z' => {
                return Err(format!(
                    "DATE_FORMAT: pattern letter {c} needs a time zone, which a TIMESTAMP has not (Flink fails the job)"
                ))
            }
            '[' | ']' => {}
            '#' | '{' | '}' => {
                return Err(format!("DATE_FORMAT: pattern character {c} is reserved"))
            }
            '\'' => {
                let mut j = i + 1;
                if j < chars.len() && chars[j] == '\'' {
                    out.push('\'');
                    i += 2;
                    continue;
                }
                loop {
                    if j >= chars.len() {
                        return Err("DATE_FORMAT: pattern ends in an open quote".into());
                    }
                    if chars[j] == '\'' {
                        if chars.get(j + 1) == Some(&'\'') {
                            out.push('\'');
                            j += 2;
                            continue;
                        }
                        break;
                    }
                    out.push(chars[j]);
                    j += 1;
                }
                i = j + 1;
                continue;
            }
            other if other.is_ascii_alphabetic() => {
                return Err(format!("DATE_FORMAT: unknown pattern letter: {other}"))
            }
            other => {
                for _ in 0..n {
                    out.push(other);
                }
            }
        }
        i += n;
    }
    Ok(())
}

/// Parses text with a Java date pattern; returns microseconds since the epoch.
pub fn parse_pattern(text: &str, pat: &str) -> Option<i64> {
    let t: Vec<char> = text.trim().chars().collect();
    let p: Vec<char> = pat.chars().collect();
    let (mut y, mut mo, mut d, mut h, mut mi, mut sec, mut frac) =
        (1970i64, 1u32, 1u32, 0i64, 0i64, 0i64, 0i64);
    let mut pm: Option<bool> = None;
    let (mut ti, mut pi) = (0usize, 0usize);
    let num = |ti: &mut usize, max: usize| -> Option<i64> {
        let start = *ti;
        let mut v = 0i64;
        while *ti < t.len() && *ti - start < max && t[*ti].is_ascii_digit() {
            v = v * 10 + t[*ti].to_digit(10)? as i64;
            *ti += 1;
        }
        (*ti > start).then_some(v)
    };
    while pi < p.len() {
        let c = p[pi];
        let mut n = 1;
        while pi + n < p.len() && p[pi + n] == c {
            n += 1;
        }
        match c {
            'y' => y = num(&mut ti, if n == 2 { 2 } else { 4 })?,
            'M' => mo = num(&mut ti, 2)? as u32,
            'd' => d = num(&mut ti, 2)? as u32,
            'H' | 'h' => h = num(&mut ti, 2)?,
            'm' => mi = num(&mut ti, 2)?,
            's' => sec = num(&mut ti, 2)?,
            'S' => {
                let start = ti;
                let v = num(&mut ti, 9)?;
                let digits = (ti - start) as u32;
                frac = if digits <= 6 {
                    v * 10i64.pow(6 - digits)
                } else {
                    v / 10i64.pow(digits - 6)
                };
            }
            'a' => {
                let w: String = t.get(ti..ti + 2)?.iter().collect();
                pm = Some(w.eq_ignore_ascii_case("PM"));
                ti += 2;
            }
            '\'' => {
                pi += 1;
                while pi < p.len() && p[pi] != '\'' {
                    if t.get(ti) != Some(&p[pi]) {
                        return None;
                    }
                    ti += 1;
                    pi += 1;
                }
                pi += 1;
                continue;
            }
            other => {
                for _ in 0..n {
                    if t.get(ti) != Some(&other) {
                        return None;
                    }
                    ti += 1;
                }
            }
        }
        pi += n;
    }
    if ti != t.len()
        || !(1..=12).contains(&mo)
        || d == 0
        || d > days_in_month(y, mo)
        || h > 23
        || mi > 59
        || sec > 59
    {
        return None;
    }
    if let Some(pm) = pm {
        h = h % 12 + if pm { 12 } else { 0 };
    }
    Some(
        days_from_civil(y, mo, d) * MICROS_PER_DAY
            + ((h * 60 + mi) * 60 + sec) * MICROS_PER_SECOND
            + frac,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tillflow_types::temporal::parse_timestamp;

    #[test]
    fn date_patterns_round_trip() {
        let t = parse_timestamp("2024-03-01 20:05:09.123").unwrap();
        let mut s = String::new();
        format_pattern(&mut s, t, "yyyy-MM-dd HH:mm:ss.SSS");
        assert_eq!(s, "2024-03-01 20:05:09.123");
        assert_eq!(parse_pattern(&s, "yyyy-MM-dd HH:mm:ss.SSS"), Some(t));
        let mut s = String::new();
        format_pattern(&mut s, t, "EEE dd MMM yyyy hh a");
        assert_eq!(s, "Fri 01 Mar 2024 08 PM");
        assert_eq!(
            parse_pattern("2024/03/01", "yyyy/MM/dd"),
            parse_timestamp("2024-03-01")
        );
        assert_eq!(parse_pattern("2024-13-01", "yyyy-MM-dd"), None);
    }

    #[test]
    fn floor_and_extract() {
        let t = parse_timestamp("2024-03-01 20:05:09.123").unwrap();
        assert_eq!(
            floor_ceil_ts(t, TimeUnit::Hour, false),
            parse_timestamp("2024-03-01 20:00:00").unwrap()
        );
        assert_eq!(
            floor_ceil_ts(t, TimeUnit::Month, true),
            parse_timestamp("2024-04-01 00:00:00").unwrap()
        );
        assert_eq!(extract(TimeUnit::DayOfWeek, t), 6); // Friday
        assert_eq!(extract(TimeUnit::Hour, t), 20);
        assert_eq!(extract(TimeUnit::Week, t), 9);
        assert_eq!(
            add_months(parse_timestamp("2024-01-31").unwrap(), 1),
            parse_timestamp("2024-02-29").unwrap()
        );
    }
}
