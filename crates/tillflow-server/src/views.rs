//! The result tables as the API serves them, kept up to date from the rows each report brings.
//!
//! A job's report carries the rows its sinks wrote since the previous report. [`Views`] folds
//! them into one view per table: for a table with a primary key, its current row per key (an
//! upsert table as the database holds it: `-U`/`-D` take a key's row away, `+I`/`+U` set it);
//! for any other table, its latest [`APPEND_ROWS`] rows. Every change gets the next number of
//! the job's sequence, so a client that asks for the changes after the number it has seen gets
//! only those (`GET /api/jobs/{id}/tables?since=N`): a dashboard loads a view once and then
//! follows it, however long the job has run.

use serde::Serialize;
use std::collections::{HashMap, VecDeque};

/// How many rows of a table without a primary key a view keeps (the latest).
pub const APPEND_ROWS: usize = 20_000;
/// How many keys of a table with a primary key a view keeps (then the oldest deletions go).
pub const KEYED_ROWS: usize = 100_000;

/// One table's view.
#[derive(Clone, Debug, Default)]
struct View {
    key: Vec<String>,
    /// Append tables: `(seq, row)`, oldest first.
    rows: VecDeque<(u64, serde_json::Value)>,
    /// Keyed tables: the key's text → `(seq, row)`; a deleted key keeps its last row with
    /// `"op": "-D"` so that a client following the changes hears of the deletion.
    keyed: HashMap<String, (u64, serde_json::Value)>,
    seq: u64,
}

/// Every result table of a job.
#[derive(Clone, Debug, Default)]
pub struct Views {
    tables: Vec<(String, View)>,
    seq: u64,
}

/// One table in an answer of `GET /api/jobs/{id}/tables`.
#[derive(Serialize)]
pub struct TableRows<'a> {
    /// The table's name.
    pub table: &'a str,
    /// Its primary key columns (empty: an append table, its latest rows).
    pub key: &'a [String],
    /// The number of its latest change (ask for `since` this to get only later ones).
    pub seq: u64,
    /// The rows: all of the view, or those changed after `since`, in the order they changed.
    pub rows: Vec<&'a serde_json::Value>,
}

fn key_text(row: &serde_json::Value, key: &[String]) -> String {
    let mut out = String::new();
    for k in key {
        out.push_str(&row.get(k).map(|v| v.to_string()).unwrap_or_default());
        out.push('\u{1f}');
    }
    out
}

impl Views {
    /// Declares the primary key of `table` (before its rows arrive; tables not declared are
    /// append tables).
    pub fn set_key(&mut self, table: &str, key: Vec<String>) {
        let view = self.view(table);
        view.key = key;
    }

    fn view(&mut self, table: &str) -> &mut View {
        let i = match self.tables.iter().position(|(t, _)| t == table) {
            Some(i) => i,
            None => {
                self.tables.push((table.to_owned(), View::default()));
                self.tables.len() - 1
            }
        };
        &mut self.tables[i].1
    }

    /// Folds in the rows `table` wrote since the last report.
    pub fn apply(&mut self, table: &str, rows: Vec<serde_json::Value>) {
        let mut seq = self.seq;
        let view = self.view(table);
        for row in rows {
            seq += 1;
            view.seq = seq;
            if view.key.is_empty() {
                if view.rows.len() == APPEND_ROWS {
                    view.rows.pop_front();
                }
                view.rows.push_back((seq, row));
                continue;
            }
            let k = key_text(&row, &view.key);
            let gone = matches!(
                row.get("op").and_then(|o| o.as_str()),
                Some("-D") | Some("-U")
            );
            let mut row = row;
            if gone {
                if let Some(o) = row.get_mut("op") {
                    *o = serde_json::Value::from("-D");
                }
            }
            view.keyed.insert(k, (seq, row));
            if view.keyed.len() > KEYED_ROWS {
                let before = view.keyed.len();
                let oldest_gone = view
                    .keyed
                    .iter()
                    .filter(|(_, (_, r))| r.get("op").and_then(|o| o.as_str()) == Some("-D"))
                    .map(|(_, (s, _))| *s)
                    .min();
                if let Some(s) = oldest_gone {
                    view.keyed.retain(|_, (q, _)| *q != s);
                }
                if view.keyed.len() == before {
                    // no deletions to forget: the key changed longest ago goes
                    if let Some(s) = view.keyed.values().map(|(s, _)| *s).min() {
                        view.keyed.retain(|_, (q, _)| *q != s);
                    }
                }
            }
        }
        self.seq = seq;
    }

    /// The tables, each with its rows changed after `since` (all live rows when `None`).
    pub fn rows(&self, since: Option<u64>) -> Vec<TableRows<'_>> {
        self.tables
            .iter()
            .map(|(t, v)| {
                let rows = if v.key.is_empty() {
                    v.rows
                        .iter()
                        .filter(|(s, _)| since.is_none_or(|n| *s > n))
                        .map(|(_, r)| r)
                        .collect()
                } else {
                    let mut changed: Vec<&(u64, serde_json::Value)> = v
                        .keyed
                        .values()
                        .filter(|(s, r)| match since {
                            Some(n) => *s > n,
                            None => r.get("op").and_then(|o| o.as_str()) != Some("-D"),
                        })
                        .collect();
                    changed.sort_by_key(|(s, _)| *s);
                    changed.into_iter().map(|(_, r)| r).collect()
                };
                TableRows {
                    table: t,
                    key: &v.key,
                    seq: v.seq,
                    rows,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_keyed_view_holds_each_keys_current_row_and_a_client_follows_its_changes() {
        let mut v = Views::default();
        v.set_key("stock", vec!["store".into(), "sku".into()]);
        v.apply(
            "stock",
            vec![
                json!({"op": "+I", "store": 1, "sku": "A", "n": 5}),
                json!({"op": "+I", "store": 1, "sku": "B", "n": 7}),
                json!({"op": "-U", "store": 1, "sku": "A", "n": 5}),
                json!({"op": "+U", "store": 1, "sku": "A", "n": 4}),
            ],
        );
        v.apply("sales", vec![json!({"store": 1, "revenue": 10.0})]);
        let all = v.rows(None);
        let stock: Vec<i64> = all[0]
            .rows
            .iter()
            .map(|r| r["n"].as_i64().unwrap_or(0))
            .collect();
        assert_eq!(
            stock,
            vec![7, 4],
            "one row per key, in the order they last changed"
        );
        let seen = all.iter().map(|t| t.seq).max().unwrap_or(0);
        v.apply(
            "stock",
            vec![json!({"op": "-D", "store": 1, "sku": "B", "n": 7})],
        );
        v.apply("sales", vec![json!({"store": 2, "revenue": 3.0})]);
        let later = v.rows(Some(seen));
        assert_eq!(
            later[0].rows,
            vec![&json!({"op": "-D", "store": 1, "sku": "B", "n": 7})]
        );
        assert_eq!(later[1].rows, vec![&json!({"store": 2, "revenue": 3.0})]);
        // a fresh client gets the live rows only
        let all = v.rows(None);
        assert_eq!(all[0].rows.len(), 1);
        assert_eq!(all[1].rows.len(), 2);
    }

    #[test]
    fn an_append_view_keeps_its_latest_rows() {
        let mut v = Views::default();
        v.apply(
            "t",
            (0..APPEND_ROWS + 5).map(|i| json!({ "i": i })).collect(),
        );
        let all = v.rows(None);
        assert_eq!(all[0].rows.len(), APPEND_ROWS);
        assert_eq!(all[0].rows[0], &json!({"i": 5}));
        assert_eq!(all[0].seq, (APPEND_ROWS + 5) as u64);
    }
}
