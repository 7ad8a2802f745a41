//! The result tables as the API serves them, kept up to date from the rows each report brings.
//!
//! A job's report carries the rows its sinks wrote since the previous report. [`Views`] folds
//! them into one view per table: for a table with a primary key, its current row per key (an
//! upsert table as the database holds it: `-U`/`-D` take a key's row away, `+I`/`+U` set it);
//! for any other table, its latest [`APPEND_ROWS`] rows. Every change gets the next number of
//! the job's sequence, so a client that asks for the changes after the number it has seen gets
//! only those (`GET /api/jobs/{id}/tables?since=N`): a dashboard loads a view once and then
//! follows it, however long the job has run. When a view no longer holds every change after a
//! client's number (it dropped its oldest rows or deleted keys to stay bounded), or the number is
//! ahead of the job's (a new process of the same job), the answer says `reset` and carries the
//! whole view, for the client to load again.

use serde::Serialize;
use std::collections::{HashMap, VecDeque};

/// How many rows of a table without a primary key a view keeps (the latest).
pub const APPEND_ROWS: usize = 20_000;
/// How many keys of a table with a primary key a view keeps: beyond, a tenth goes at once, the
/// oldest deletions first, then the keys changed longest ago.
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
    /// The newest change the view no longer holds: a client behind it must load the view again.
    floor: u64,
}

fn is_deletion(row: &serde_json::Value) -> bool {
    row.get("op").and_then(|o| o.as_str()) == Some("-D")
}

impl View {
    /// Drops a tenth of the keys, the oldest deletions first, then the keys changed longest ago
    /// (one pass for many inserts, so a view at its bound costs little per change).
    fn shrink(&mut self) {
        let target = KEYED_ROWS - KEYED_ROWS / 10;
        let excess = self.keyed.len().saturating_sub(target);
        if excess == 0 {
            return;
        }
        let mut order: Vec<(bool, u64)> = self
            .keyed
            .values()
            .map(|(s, r)| (!is_deletion(r), *s))
            .collect();
        let (_, cut, _) = order.select_nth_unstable(excess - 1);
        let cut = *cut;
        let mut floor = self.floor;
        self.keyed.retain(|_, (s, r)| {
            let keep = (!is_deletion(r), *s) > cut;
            if !keep {
                floor = floor.max(*s);
            }
            keep
        });
        self.floor = floor;
    }
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
    /// The view no longer holds every change after the number asked for (or that number is
    /// ahead of the job's): `rows` is the whole view, to be loaded in place of what the client
    /// has.
    pub reset: bool,
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
                    if let Some((s, _)) = view.rows.pop_front() {
                        view.floor = s;
                    }
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
                view.shrink();
            }
        }
        self.seq = seq;
    }

    /// The tables, each with its rows changed after `since` (all live rows when `None`, or when
    /// the view cannot give every change after it: then `reset`).
    pub fn rows(&self, since: Option<u64>) -> Vec<TableRows<'_>> {
        // a number ahead of the job's: another process of the job numbers from the start
        let ahead = since.is_some_and(|n| n > self.seq);
        self.tables
            .iter()
            .map(|(t, v)| {
                let reset = ahead || since.is_some_and(|n| n < v.floor);
                let since = if reset { None } else { since };
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
                    reset,
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
    fn a_client_behind_what_a_view_holds_or_ahead_of_it_is_told_to_load_again() {
        let mut v = Views::default();
        v.apply(
            "t",
            (0..APPEND_ROWS + 5).map(|i| json!({ "i": i })).collect(),
        );
        // rows 1..=5 are gone: a client that saw only 3 cannot follow
        assert!(v.rows(Some(3))[0].reset);
        assert_eq!(v.rows(Some(3))[0].rows.len(), APPEND_ROWS);
        assert!(!v.rows(Some(5))[0].reset);
        assert_eq!(v.rows(Some(5))[0].rows.len(), APPEND_ROWS);
        // a number from another process of the job
        let late = v.rows(Some((APPEND_ROWS + 100) as u64));
        assert!(late[0].reset && late[0].rows.len() == APPEND_ROWS);
        // a keyed view at its bound drops a tenth at once, deletions first
        v.set_key("k", vec!["id".into()]);
        v.apply(
            "k",
            vec![json!({"op": "+I", "id": -1}), json!({"op": "-D", "id": -1})],
        );
        let seen = v.rows(None).iter().map(|t| t.seq).max().unwrap_or(0);
        v.apply(
            "k",
            (0..KEYED_ROWS as i64)
                .map(|i| json!({"op": "+I", "id": i}))
                .collect(),
        );
        let k = &v.rows(None)[1];
        assert_eq!(k.rows.len(), KEYED_ROWS - KEYED_ROWS / 10);
        assert_eq!(
            k.rows[0],
            &json!({"op": "+I", "id": (KEYED_ROWS / 10) as i64})
        );
        assert!(
            v.rows(Some(seen))[1].reset,
            "the deletion it had not seen is gone"
        );
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
