//! The table every decoder target reads: one column of each kind a retail stream has.

use tillflow_connectors::TableSpec;
use tillflow_types::{DataType, Field, Schema};

/// A table of `format` with the columns of a sale, and `extra` options.
pub fn table(format: &str, extra: &[(&str, &str)]) -> TableSpec {
    let mut options: std::collections::BTreeMap<String, String> = [("format", format)]
        .into_iter()
        .chain(extra.iter().copied())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    options.insert("path".into(), "/nonexistent".into());
    let mut fields = vec![
        Field::new("event_time", DataType::Timestamp(3)),
        Field::new("store_id", DataType::Int),
        Field::new("sku", DataType::String(None)),
        Field::new("qty", DataType::BigInt),
        Field::new("price", DataType::Double),
        Field::new("amount", DataType::Decimal(10, 2)),
        Field::new("day", DataType::Date),
        Field::new("ok", DataType::Boolean),
    ];
    if format == "json" {
        // nested columns as Nexmark's and an order's: ROW in ROW, ARRAY of ROW, MAP
        let address = DataType::row(vec![("city".into(), DataType::String(None))]);
        fields.push(Field::new(
            "customer",
            DataType::row(vec![
                ("id".into(), DataType::BigInt),
                ("tier".into(), DataType::String(None)),
                ("address".into(), address),
            ]),
        ));
        fields.push(Field::new(
            "items",
            DataType::array(DataType::row(vec![
                ("sku".into(), DataType::String(None)),
                ("qty".into(), DataType::Int),
            ])),
        ));
        fields.push(Field::new(
            "tags",
            DataType::map(DataType::String(None), DataType::Int),
        ));
    }
    TableSpec {
        name: "t".into(),
        schema: Schema::new(fields),
        options: options.into_iter().collect(),
        primary_key: vec![],
        metadata: vec![],
        partition_keys: vec![],
    }
}
