//! Table and stream schemas: named, typed, nullable fields with their time attribute.

use crate::DataType;
use std::fmt;

/// Whether a column is a time attribute that windows can be defined on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TimeAttribute {
    /// An ordinary column.
    #[default]
    None,
    /// An event-time attribute (a column with a WATERMARK, or a window's `window_time`).
    Rowtime,
    /// A processing-time attribute (`PROCTIME()`).
    Proctime,
}

/// One column of a schema.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    /// Column name as written (matched case-insensitively, as Flink does not: see [`Schema::index_of`]).
    pub name: String,
    /// SQL type.
    pub data_type: DataType,
    /// Whether NULL may occur.
    pub nullable: bool,
    /// Time attribute kind.
    pub time: TimeAttribute,
}

impl Field {
    /// A nullable field with no time attribute.
    pub fn new(name: impl Into<String>, data_type: DataType) -> Self {
        Field {
            name: name.into(),
            data_type,
            nullable: true,
            time: TimeAttribute::None,
        }
    }
}

/// An ordered list of fields.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Schema {
    /// The columns, in order.
    pub fields: Vec<Field>,
}

impl Schema {
    /// Builds a schema from fields.
    pub fn new(fields: Vec<Field>) -> Self {
        Schema { fields }
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True when there are no columns.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Position of the column named `name`: an exact match first, then a case-insensitive one.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name).or_else(|| {
            self.fields
                .iter()
                .position(|f| f.name.eq_ignore_ascii_case(name))
        })
    }

    /// The column names, comma separated (for error messages).
    pub fn names(&self) -> String {
        self.fields
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(")?;
        for (i, fld) in self.fields.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{} {}", fld.name, fld.data_type)?;
            if !fld.nullable {
                write!(f, " NOT NULL")?;
            }
            match fld.time {
                TimeAttribute::Rowtime => write!(f, " *ROWTIME*")?,
                TimeAttribute::Proctime => write!(f, " *PROCTIME*")?,
                TimeAttribute::None => {}
            }
        }
        write!(f, ")")
    }
}
