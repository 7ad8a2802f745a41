//! Flink SQL data types and their text form.

use std::fmt;

/// A Flink SQL data type (nullability lives on [`crate::Field`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataType {
    /// `BOOLEAN`
    Boolean,
    /// `TINYINT` (8-bit)
    TinyInt,
    /// `SMALLINT` (16-bit)
    SmallInt,
    /// `INT` (32-bit)
    Int,
    /// `BIGINT` (64-bit)
    BigInt,
    /// `FLOAT` (32-bit IEEE)
    Float,
    /// `DOUBLE` (64-bit IEEE)
    Double,
    /// `DECIMAL(precision, scale)`
    Decimal(u8, u8),
    /// `STRING` / `VARCHAR(n)` / `CHAR(n)`; the length is kept for display only.
    String(Option<u32>),
    /// `DATE` (days since the epoch)
    Date,
    /// `TIME(p)` (microseconds of the day)
    Time(u8),
    /// `TIMESTAMP(p)` without time zone (microseconds since the epoch, as wall-clock UTC)
    Timestamp(u8),
    /// `TIMESTAMP_LTZ(p)` (an instant; microseconds since the epoch)
    TimestampLtz(u8),
    /// `INTERVAL ... SECOND` and friends (microseconds)
    IntervalDayTime,
    /// `INTERVAL ... MONTH` and friends (months)
    IntervalYearMonth,
    /// `BYTES` / `VARBINARY(n)` / `BINARY(n)`: raw bytes, held like a string's (a span of the
    /// row's heap) but never read as text.
    Bytes,
    /// `MAP<K, V>`: held as one encoded span of the row's heap (see [`crate::nested`]; a map of
    /// strings or bytes, such as Kafka's `headers`, can also be read with [`crate::map`]).
    Map(&'static DataType, &'static DataType),
    /// `ROW<name TYPE, …>`: a nested record (its value: one encoded span of the row's heap,
    /// [`crate::nested`]).
    Row(&'static RowType),
    /// `ARRAY<T>` (its value: one encoded span, [`crate::nested`]).
    Array(&'static DataType),
    /// `MULTISET<T>`: a bag, held like an array.
    Multiset(&'static DataType),
    /// The type of a bare `NULL` literal before it is cast.
    Null,
}

/// The fields of a `ROW` type, in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RowType {
    /// Name and type of each field.
    pub fields: Vec<(String, DataType)>,
}

impl RowType {
    /// The position of field `name` (exact, then ignoring case).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|(n, _)| n == name).or_else(|| {
            self.fields
                .iter()
                .position(|(n, _)| n.eq_ignore_ascii_case(name))
        })
    }
}

/// Types nested in other types live for the whole process, each distinct one once, so that
/// [`DataType`] stays a small `Copy` value (a script declares a handful of them).
fn intern<T: Eq + std::hash::Hash + Send + Sync + 'static>(
    set: &'static std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<&'static T>>>,
    value: T,
) -> &'static T {
    let set = set.get_or_init(Default::default);
    let mut guard = match set.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some(existing) = guard.get(&value) {
        return existing;
    }
    let leaked: &'static T = Box::leak(Box::new(value));
    guard.insert(leaked);
    leaked
}

type Interned<T> = std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<&'static T>>>;
static ROW_TYPES: Interned<RowType> = std::sync::OnceLock::new();
static ELEMENT_TYPES: Interned<DataType> = std::sync::OnceLock::new();

impl DataType {
    /// `ROW<fields…>`.
    pub fn row(fields: Vec<(String, DataType)>) -> DataType {
        DataType::Row(intern(&ROW_TYPES, RowType { fields }))
    }

    /// `ARRAY<element>`.
    pub fn array(element: DataType) -> DataType {
        DataType::Array(intern(&ELEMENT_TYPES, element))
    }

    /// `MAP<key, value>`.
    pub fn map(key: DataType, value: DataType) -> DataType {
        DataType::Map(intern(&ELEMENT_TYPES, key), intern(&ELEMENT_TYPES, value))
    }

    /// `MULTISET<element>`.
    pub fn multiset(element: DataType) -> DataType {
        DataType::Multiset(intern(&ELEMENT_TYPES, element))
    }

    /// Whether values of `self` and `other` are encoded alike: the same type, or nested types
    /// that differ only in their ROW field names (Flink matches ROW fields by position).
    pub fn same_layout(self, other: DataType) -> bool {
        match (self, other) {
            (DataType::Row(a), DataType::Row(b)) => {
                a.fields.len() == b.fields.len()
                    && a.fields
                        .iter()
                        .zip(&b.fields)
                        .all(|((_, x), (_, y))| x.same_layout(*y))
            }
            (DataType::Array(a), DataType::Array(b))
            | (DataType::Multiset(a), DataType::Multiset(b)) => a.same_layout(*b),
            (DataType::Map(k1, v1), DataType::Map(k2, v2)) => {
                k1.same_layout(*k2) && v1.same_layout(*v2)
            }
            (DataType::String(_), DataType::String(_)) => true,
            (a, b) => a == b,
        }
    }

    /// Whether values of this type are encoded spans holding other values (ROW, ARRAY,
    /// MULTISET, MAP).
    pub fn is_nested(self) -> bool {
        matches!(
            self,
            DataType::Row(_) | DataType::Array(_) | DataType::Multiset(_) | DataType::Map(..)
        )
    }

    /// True for the integer types TINYINT, SMALLINT, INT and BIGINT.
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            DataType::TinyInt | DataType::SmallInt | DataType::Int | DataType::BigInt
        )
    }

    /// True for every numeric type.
    pub fn is_numeric(self) -> bool {
        self.is_integer()
            || matches!(
                self,
                DataType::Float | DataType::Double | DataType::Decimal(..)
            )
    }

    /// True for TIMESTAMP and TIMESTAMP_LTZ.
    pub fn is_timestamp(self) -> bool {
        matches!(self, DataType::Timestamp(_) | DataType::TimestampLtz(_))
    }

    /// True for character strings.
    pub fn is_string(self) -> bool {
        matches!(self, DataType::String(_))
    }

    /// Rank of an integer type, used to find the wider of two integer types.
    fn int_rank(self) -> u8 {
        match self {
            DataType::TinyInt => 1,
            DataType::SmallInt => 2,
            DataType::Int => 3,
            DataType::BigInt => 4,
            _ => 0,
        }
    }

    /// The type of `a op b` for `+ - * / %` as Flink derives it, or `None` if the operands are not numeric.
    pub fn arithmetic_result(a: DataType, b: DataType) -> Option<DataType> {
        use DataType::*;
        Some(match (a, b) {
            (Null, t) | (t, Null) if t.is_numeric() => t,
            (Double, t) | (t, Double) if t.is_numeric() => Double,
            (Float, t) | (t, Float) if t.is_numeric() => Float,
            (Decimal(p1, s1), Decimal(p2, s2)) => Decimal(p1.max(p2), s1.max(s2)),
            (Decimal(p, s), t) | (t, Decimal(p, s)) if t.is_integer() => Decimal(p.max(19), s),
            (x, y) if x.is_integer() && y.is_integer() => {
                if x.int_rank() >= y.int_rank() {
                    x
                } else {
                    y
                }
            }
            _ => return None,
        })
    }

    /// The common type two values are compared or unified in (CASE branches, COALESCE, comparisons).
    pub fn common(a: DataType, b: DataType) -> Option<DataType> {
        use DataType::*;
        if a == b {
            return Some(a);
        }
        match (a, b) {
            (Null, t) | (t, Null) => Some(t),
            (String(x), String(y)) => Some(String(match (x, y) {
                (Some(x), Some(y)) => Some(x.max(y)),
                _ => None,
            })),
            (Timestamp(p), Timestamp(q)) => Some(Timestamp(p.max(q))),
            (TimestampLtz(p), TimestampLtz(q)) => Some(TimestampLtz(p.max(q))),
            (Timestamp(p), TimestampLtz(q)) | (TimestampLtz(q), Timestamp(p)) => {
                Some(TimestampLtz(p.max(q)))
            }
            (Time(p), Time(q)) => Some(Time(p.max(q))),
            (x, y) if x.is_numeric() && y.is_numeric() => DataType::arithmetic_result(x, y),
            _ => None,
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Boolean => write!(f, "BOOLEAN"),
            DataType::TinyInt => write!(f, "TINYINT"),
            DataType::SmallInt => write!(f, "SMALLINT"),
            DataType::Int => write!(f, "INT"),
            DataType::BigInt => write!(f, "BIGINT"),
            DataType::Float => write!(f, "FLOAT"),
            DataType::Double => write!(f, "DOUBLE"),
            DataType::Decimal(p, s) => write!(f, "DECIMAL({p}, {s})"),
            DataType::String(None) => write!(f, "STRING"),
            DataType::String(Some(n)) => write!(f, "VARCHAR({n})"),
            DataType::Date => write!(f, "DATE"),
            DataType::Time(p) => write!(f, "TIME({p})"),
            DataType::Timestamp(p) => write!(f, "TIMESTAMP({p})"),
            DataType::TimestampLtz(p) => write!(f, "TIMESTAMP_LTZ({p})"),
            DataType::IntervalDayTime => write!(f, "INTERVAL SECOND(3)"),
            DataType::IntervalYearMonth => write!(f, "INTERVAL MONTH"),
            DataType::Bytes => write!(f, "BYTES"),
            DataType::Map(k, v) => write!(f, "MAP<{k}, {v}>"),
            DataType::Row(r) => {
                write!(f, "ROW<")?;
                for (i, (name, ty)) in r.fields.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "`{}` {ty}", name.replace('`', "``"))?;
                }
                write!(f, ">")
            }
            DataType::Array(t) => write!(f, "ARRAY<{t}>"),
            DataType::Multiset(t) => write!(f, "MULTISET<{t}>"),
            DataType::Null => write!(f, "NULL"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_follows_flink() {
        use DataType::*;
        assert_eq!(DataType::arithmetic_result(Int, Double), Some(Double));
        assert_eq!(DataType::arithmetic_result(Int, Int), Some(Int));
        assert_eq!(DataType::arithmetic_result(Int, BigInt), Some(BigInt));
        assert_eq!(DataType::arithmetic_result(String(None), Int), None);
        assert_eq!(DataType::common(Null, Int), Some(Int));
    }
}
