//! How the SQL client shows a `SELECT`'s result while its job runs, in Flink's three result
//! modes:
//! - **table**: the current result, materialized from the changes (a `-U`/`+U` pair updates
//!   its row in place, a `-D` removes it), redrawn in place at most five times a second;
//! - **changelog**: the latest changes with their kinds (`+I`, `-U`, `+U`, `-D`), redrawn in
//!   place;
//! - **tableau**: every change printed as it comes, in a bordered table with a kind column,
//!   column widths from the column types (Flink's streaming tableau), then the row count.
//!
//! On a terminal the table and changelog views are redrawn below the prompt; otherwise
//! (output piped) the table is printed once at the end and changes as they come. Values wider
//! than `sql-client.display.max-column-width` end in `...`.

use super::jobs::ClientJob;
use super::ResultMode;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};
use tillflow_connectors::collect::Batch;
use tillflow_types::{DataType, RowKind, Schema};

/// How often a view is redrawn at most.
const REDRAW: Duration = Duration::from_millis(200);

/// Rows a table result holds at most (Flink's `sql-client.execution.max-table-result.rows`
/// defaults to a million); older rows are dropped beyond it, with a note.
const MAX_TABLE_ROWS: usize = 1_000_000;

/// Shows the result arriving on `rx` until the job ends; Ctrl-C (`interrupted`) stops the job
/// and shows what came until then.
pub fn show(
    schema: &Schema,
    rx: Receiver<Batch>,
    job: &ClientJob,
    mode: ResultMode,
    max_width: usize,
    interrupted: &AtomicBool,
) -> Result<(), String> {
    let names: Vec<String> = schema.fields.iter().map(|f| f.name.clone()).collect();
    let terminal = std::io::stdout().is_terminal();
    let mut view = View {
        names,
        max_width,
        rows: Vec::new(),
        hole: None,
        changes: 0,
        dropped: 0,
        drawn_lines: 0,
        terminal,
        recent: std::collections::VecDeque::new(),
    };
    let widths = tableau_widths(schema, max_width);
    // not locked for the whole query: a print sink of a job in the background writes too
    let mut out = std::io::stdout();
    if mode == ResultMode::Tableau {
        write_tableau_header(&mut out, &view.names, &widths);
    }
    let mut stopped = false;
    let mut dirty = false;
    let mut last_draw = Instant::now() - REDRAW;
    loop {
        // the flag stays set: a second Ctrl-C before the job has stopped ends the client
        if !stopped && interrupted.load(Ordering::Relaxed) {
            stopped = true;
            job.request_stop();
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(batch) => {
                for r in 0..batch.len() {
                    match mode {
                        ResultMode::Tableau => {
                            write_tableau_row(&mut out, batch.kinds[r], batch.row(r), &widths)
                        }
                        ResultMode::Table => view.apply(batch.kinds[r], batch.row(r)),
                        ResultMode::Changelog => {
                            view.record(batch.kinds[r], batch.row(r));
                            if !terminal {
                                let line = view.recent.back().cloned().unwrap_or_default();
                                let _ = writeln!(out, "{}", line.join(" | "));
                            }
                        }
                    }
                    view.changes += 1;
                }
                dirty = true;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if terminal && dirty && mode != ResultMode::Tableau && last_draw.elapsed() >= REDRAW {
            view.draw(&mut out, mode, "running; Ctrl-C stops the query");
            last_draw = Instant::now();
            dirty = false;
        }
        let _ = out.flush();
    }
    let end = if stopped {
        "stopped"
    } else {
        "the query ended"
    };
    match mode {
        ResultMode::Tableau => {
            let _ = out.write_all(border(&widths).as_bytes());
            let _ = writeln!(out, "Received a total of {} rows", view.changes);
        }
        ResultMode::Table if !terminal => {
            let _ = out.write_all(view.table_text().as_bytes());
        }
        ResultMode::Table | ResultMode::Changelog => {
            if terminal {
                view.draw(&mut out, mode, end);
            } else {
                let _ = writeln!(out, "Received a total of {} changes", view.changes);
            }
        }
    }
    if stopped {
        let _ = writeln!(out, "[INFO] Query stopped (Ctrl-C).");
    }
    let _ = writeln!(out);
    let _ = out.flush();
    Ok(())
}

/// A result being shown.
struct View {
    names: Vec<String>,
    max_width: usize,
    /// The materialized result (table mode).
    rows: Vec<Vec<String>>,
    /// Where the row an update (`-U`) took out stood, for its `+U`.
    hole: Option<usize>,
    changes: u64,
    /// Rows dropped beyond [`MAX_TABLE_ROWS`].
    dropped: u64,
    /// Lines the last drawing took (redrawn over).
    drawn_lines: usize,
    terminal: bool,
    /// The latest changes, with their kinds first (changelog mode).
    recent: std::collections::VecDeque<Vec<String>>,
}

impl View {
    /// Applies one change to the materialized result.
    fn apply<'a>(&mut self, kind: RowKind, fields: impl Iterator<Item = &'a str>) {
        let row: Vec<String> = fields.map(str::to_owned).collect();
        match kind {
            RowKind::Insert | RowKind::UpdateAfter => {
                match self.hole.take().filter(|_| kind == RowKind::UpdateAfter) {
                    Some(at) if at <= self.rows.len() => self.rows.insert(at, row),
                    _ => self.rows.push(row),
                }
                if self.rows.len() > MAX_TABLE_ROWS {
                    self.rows.remove(0);
                    self.dropped += 1;
                }
            }
            RowKind::UpdateBefore | RowKind::Delete => {
                if let Some(at) = self.rows.iter().rposition(|r| *r == row) {
                    self.rows.remove(at);
                    self.hole = (kind == RowKind::UpdateBefore).then_some(at);
                }
            }
        }
    }

    /// Keeps one change (changelog mode): the latest a screen can show.
    fn record<'a>(&mut self, kind: RowKind, fields: impl Iterator<Item = &'a str>) {
        let mut row = vec![kind.short().to_string()];
        row.extend(fields.map(str::to_owned));
        self.recent.push_back(row);
        if self.recent.len() > 1000 {
            self.recent.pop_front();
        }
    }

    /// The materialized result as a bordered table with its row count.
    fn table_text(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(|c| clip_cell(c, self.max_width)).collect())
            .collect();
        let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        tillflow_sql::statements::tableau(&names, &rows)
    }

    /// Draws the view over its last drawing (terminal only).
    fn draw(&mut self, out: &mut impl Write, mode: ResultMode, status: &str) {
        let (width, height) = terminal_size();
        let room = height.saturating_sub(7).max(3);
        let (headers, rows, total, what): (Vec<&str>, Vec<Vec<String>>, usize, &str) = match mode {
            ResultMode::Changelog => {
                let mut headers = vec!["op"];
                headers.extend(self.names.iter().map(String::as_str));
                let skip = self.recent.len().saturating_sub(room);
                let rows = self
                    .recent
                    .iter()
                    .skip(skip)
                    .map(|r| r.iter().map(|c| clip_cell(c, self.max_width)).collect())
                    .collect();
                (headers, rows, self.changes as usize, "changes")
            }
            _ => {
                let rows = self
                    .rows
                    .iter()
                    .take(room)
                    .map(|r| r.iter().map(|c| clip_cell(c, self.max_width)).collect())
                    .collect();
                (
                    self.names.iter().map(String::as_str).collect(),
                    rows,
                    self.rows.len(),
                    "rows",
                )
            }
        };
        let mut text = tillflow_sql::statements::tableau(&headers, &rows);
        // the table's own count line says what is shown; say what the result holds
        if let Some(cut) = text.trim_end().rfind('\n') {
            text.truncate(cut + 1);
        }
        let shown = rows.len();
        let mut footer = if mode == ResultMode::Changelog {
            format!("{total} {what} so far (the latest {shown} shown); {status}")
        } else if shown < total {
            format!("{total} {what} (the first {shown} shown); {status}")
        } else {
            format!("{total} {what}; {status}")
        };
        if self.dropped > 0 {
            footer.push_str(&format!(
                " ({} oldest rows dropped beyond {MAX_TABLE_ROWS})",
                self.dropped
            ));
        }
        text.push_str(&footer);
        text.push('\n');
        // a line wider than the terminal would wrap, and the next redraw would miss its start
        if text.lines().any(|l| l.chars().count() > width) {
            text = text
                .lines()
                .map(|l| l.chars().take(width.saturating_sub(1)).collect::<String>() + "\n")
                .collect();
        }
        if self.terminal && self.drawn_lines > 0 {
            // back to where the last drawing began, then clear below
            let _ = write!(out, "\x1b[{}F\x1b[J", self.drawn_lines);
        }
        let _ = out.write_all(text.as_bytes());
        self.drawn_lines = text.lines().count();
    }
}

/// A cell cut to `max` characters, ending in `...` when cut.
fn clip_cell(cell: &str, max: usize) -> String {
    if cell.chars().count() <= max {
        return cell.to_owned();
    }
    let keep = max.saturating_sub(3);
    let mut s: String = cell.chars().take(keep).collect();
    s.push_str("...");
    s
}

/// Column widths for streaming tableau output, from each column's type (the rows are not
/// known in advance), as Flink's streaming tableau chooses them: at least the name, at most
/// the maximum column width.
fn tableau_widths(schema: &Schema, max_width: usize) -> Vec<usize> {
    let mut widths = vec![2]; // the kind column: "op"
    widths.extend(schema.fields.iter().map(|f| {
        let of_type = match f.data_type {
            DataType::Boolean => 5,
            DataType::TinyInt => 4,
            DataType::SmallInt => 6,
            DataType::Int => 11,
            DataType::BigInt => 20,
            DataType::Float | DataType::Double => 22,
            DataType::Decimal(p, _) => p as usize + 2,
            DataType::Date => 10,
            DataType::Time(_) => 12,
            DataType::Timestamp(_) | DataType::TimestampLtz(_) => 26,
            _ => max_width,
        };
        of_type.min(max_width).max(f.name.chars().count())
    }));
    widths
}

fn border(widths: &[usize]) -> String {
    widths
        .iter()
        .map(|w| format!("+{}", "-".repeat(w + 2)))
        .collect::<String>()
        + "+\n"
}

fn write_tableau_line<'a>(
    out: &mut impl Write,
    cells: impl Iterator<Item = &'a str>,
    widths: &[usize],
) {
    let mut line = String::new();
    for (c, w) in cells.zip(widths) {
        let c = clip_cell(c, *w);
        let pad = w.saturating_sub(c.chars().count());
        line.push_str("| ");
        line.extend(std::iter::repeat_n(' ', pad));
        line.push_str(&c);
        line.push(' ');
    }
    line.push_str("|\n");
    let _ = out.write_all(line.as_bytes());
}

fn write_tableau_header(out: &mut impl Write, names: &[String], widths: &[usize]) {
    let b = border(widths);
    let _ = out.write_all(b.as_bytes());
    write_tableau_line(
        out,
        std::iter::once("op").chain(names.iter().map(String::as_str)),
        widths,
    );
    let _ = out.write_all(b.as_bytes());
}

fn write_tableau_row<'a>(
    out: &mut impl Write,
    kind: RowKind,
    fields: impl Iterator<Item = &'a str>,
    widths: &[usize],
) {
    write_tableau_line(out, std::iter::once(kind.short()).chain(fields), widths);
}

/// The terminal's columns and rows (80 × 24 when they cannot be read).
fn terminal_size() -> (usize, usize) {
    // SAFETY: TIOCGWINSZ fills the winsize struct passed; nothing else is touched.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    if ok && ws.ws_col > 0 && ws.ws_row > 0 {
        (ws.ws_col as usize, ws.ws_row as usize)
    } else {
        (80, 24)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> View {
        View {
            names: vec!["k".into(), "n".into()],
            max_width: 30,
            rows: Vec::new(),
            hole: None,
            changes: 0,
            dropped: 0,
            drawn_lines: 0,
            terminal: false,
            recent: Default::default(),
        }
    }

    #[test]
    fn a_table_result_updates_rows_in_place_and_removes_deleted_ones() {
        let mut v = view();
        v.apply(RowKind::Insert, ["a", "1"].into_iter());
        v.apply(RowKind::Insert, ["b", "1"].into_iter());
        v.apply(RowKind::UpdateBefore, ["a", "1"].into_iter());
        v.apply(RowKind::UpdateAfter, ["a", "2"].into_iter());
        assert_eq!(v.rows, vec![vec!["a", "2"], vec!["b", "1"]]);
        v.apply(RowKind::Delete, ["b", "1"].into_iter());
        assert_eq!(v.rows, vec![vec!["a", "2"]]);
        let text = v.table_text();
        assert!(text.contains("| a | 2 |"), "{text}");
        assert!(text.ends_with("1 row in set\n"), "{text}");
    }

    #[test]
    fn wide_cells_end_in_dots() {
        assert_eq!(clip_cell("abcdefghij", 6), "abc...");
        assert_eq!(clip_cell("abc", 6), "abc");
    }
}
