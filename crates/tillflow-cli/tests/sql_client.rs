//! `tillflow sql`, the interactive SQL client, driven through a real pseudo-terminal (a tmux
//! session) as a person types: statements over several lines, the three result modes, an
//! INSERT in the background managed with SHOW JOBS / STOP JOB, Ctrl-C stopping a query and not
//! the client, errors that leave the session going; and `-i` / `-f` without a terminal.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmux session running one command in a terminal of a fixed size.
struct Terminal {
    name: String,
}

impl Terminal {
    fn start(dir: &Path, command: &str) -> Terminal {
        // tmux reads '.' and ':' in a target as window and pane separators
        let name = format!(
            "tillflow-sql-{}-{}",
            std::process::id(),
            dir.file_name().unwrap().to_string_lossy()
        )
        .replace(['.', ':'], "_");
        // the scrollback is set before the session exists (a pane keeps the limit it began
        // with), and the pane stays after the client leaves (its last words stay readable)
        let ok = Command::new("tmux")
            .args([
                "start-server",
                ";",
                "set-option",
                "-g",
                "history-limit",
                "20000",
            ])
            .args([";", "set-option", "-g", "remain-on-exit", "on", ";"])
            .args([
                "new-session",
                "-d",
                "-s",
                &name,
                "-x",
                "150",
                "-y",
                "45",
                "-c",
            ])
            .arg(dir)
            .arg(command)
            .env("TERM", "xterm-256color")
            .status()
            .expect("tmux runs (scripts/setup.sh installs it)")
            .success();
        assert!(ok, "tmux new-session failed");
        Terminal { name }
    }

    /// Types `text` and presses Enter.
    fn type_line(&self, text: &str) {
        // tmux takes an argument's last ';' for a command separator unless it is escaped
        let escaped = match text.strip_suffix(';') {
            Some(head) => format!("{head}\\;"),
            None => text.to_owned(),
        };
        let ok = Command::new("tmux")
            .args(["send-keys", "-t", &self.name, "-l", "--", &escaped])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        self.key("Enter");
    }

    /// Presses a key (`Enter`, `C-c`).
    fn key(&self, key: &str) {
        let ok = Command::new("tmux")
            .args(["send-keys", "-t", &self.name, key])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    /// The screen and what scrolled off it.
    fn text(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-J", "-t", &self.name, "-S", "-20000"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the terminal's text after `from` bytes satisfies `ready`; returns that text.
    fn wait_for(&self, from: usize, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = self.text();
            let tail = text.get(from..).unwrap_or_default().to_owned();
            if ready(&tail) {
                return tail;
            }
            assert!(
                Instant::now() < deadline,
                "waited 60 s for {what}; the terminal shows:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Where the text typed next will begin (the blank rows below the prompt do not count).
    fn end(&self) -> usize {
        self.text().trim_end().len()
    }

    /// Types a statement and waits for the next prompt after its output; returns the output.
    fn run(&self, lines: &[&str]) -> String {
        let from = self.end();
        for l in lines {
            self.type_line(l);
        }
        let out = self.wait_for(from, &format!("the prompt after {lines:?}"), |t| {
            t.trim_end().ends_with("Flink SQL>")
        });
        out
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .status();
    }
}

/// The cells of each bordered table row in `out` (`| a | b |` → ["a", "b"]).
fn rows(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .filter(|l| l.starts_with('|') && l.ends_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

/// True when `out` has a table row of exactly these cells.
fn has_row(out: &str, cells: &[&str]) -> bool {
    rows(out).iter().any(|r| r == cells)
}

fn tillflow() -> &'static str {
    env!("CARGO_BIN_EXE_tillflow")
}

/// Sales of two stores (store 1: 10 + 20 + 5, store 2: 7 + 8) as NDJSON.
fn write_sales(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("sales.json");
    let rows = [(1, 10.0), (2, 7.0), (1, 20.0), (2, 8.0), (1, 5.0)];
    let text: String = rows
        .iter()
        .map(|(s, a)| format!("{{\"store_id\": {s}, \"amount\": {a}}}\n"))
        .collect();
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_person_defines_queries_and_submits_jobs_in_one_session() {
    let dir = tempfile::tempdir().unwrap();
    let sales = write_sales(dir.path());
    let term = Terminal::start(
        dir.path(),
        &format!(
            "exec {} sql --history {} --store {}",
            tillflow(),
            dir.path().join("history").display(),
            dir.path().join("store.db").display()
        ),
    );
    term.wait_for(0, "the first prompt", |t| t.contains("Flink SQL>"));

    // a statement over three lines
    let out = term.run(&[
        "CREATE TABLE sales (",
        "  store_id INT, amount DOUBLE",
        &format!(
            ") WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');",
            sales.display()
        ),
    ]);
    assert!(out.contains("[INFO] Execute statement succeed."), "{out}");
    let out = term.run(&["SHOW TABLES;"]);
    assert!(has_row(&out, &["sales"]), "{out}");

    // tableau: every change as it comes, with its kind, then the count (a comment before the
    // statement and two statements on one line are read as Flink's client reads them)
    let out = term.run(&[
        "-- the mode",
        "SET 'sql-client.execution.result-mode' = 'tableau'; SHOW TABLES;",
    ]);
    assert!(has_row(&out, &["sales"]), "{out}");
    assert!(
        out.contains("[INFO] Session property has been set."),
        "{out}"
    );
    assert!(!out.contains("has no effect"), "{out}");
    let out = term.run(&["SELECT store_id, SUM(amount) AS total FROM sales GROUP BY store_id;"]);
    let changes: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("| +") || l.starts_with("| -"))
        .collect();
    assert!(out.contains("| op |"), "{out}");
    // store 1 reaches 35 through two updates, store 2 reaches 15 through one
    assert_eq!(changes.len(), 2 + 2 * 2 + 2, "{out}");
    assert!(
        changes
            .iter()
            .any(|l| l.starts_with("| +U |") && l.contains(" 35.0 |")),
        "{out}"
    );
    assert!(
        changes
            .iter()
            .any(|l| l.starts_with("| -U |") && l.contains(" 30.0 |")),
        "{out}"
    );
    assert!(out.contains("Received a total of 8 rows"), "{out}");

    // table: the materialized result
    term.run(&["SET 'sql-client.execution.result-mode' = 'table';"]);
    let out = term.run(&["SELECT store_id, SUM(amount) AS total FROM sales GROUP BY store_id;"]);
    assert!(
        out.contains("| 1 |  35.0 |") || out.contains("|        1 |  35.0 |"),
        "{out}"
    );
    assert!(out.contains("2 rows; the query ended"), "{out}");
    assert!(
        !out.contains(" 30.0 |"),
        "an updated row is replaced: {out}"
    );

    // changelog: the changes with their kinds
    term.run(&["SET 'sql-client.execution.result-mode' = 'changelog';"]);
    let out = term.run(&["SELECT store_id, amount FROM sales WHERE amount > 7.5;"]);
    assert!(out.contains("3 changes so far"), "{out}");
    assert!(has_row(&out, &["+I", "1", "10.0"]), "{out}");
    assert!(!has_row(&out, &["+I", "2", "7.0"]), "filtered out: {out}");

    // an error leaves the session going
    let out = term.run(&["SELECT nope FROM sales;"]);
    assert!(
        out.contains("[ERROR] Could not execute SQL statement."),
        "{out}"
    );
    assert!(out.contains("nope"), "{out}");

    // an INSERT runs in the background; SHOW JOBS follows it to its end
    let out_dir = dir.path().join("out");
    term.run(&[&format!(
        "CREATE TABLE totals (store_id INT, total DOUBLE) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');",
        out_dir.display()
    )]);
    let out = term.run(&["INSERT INTO totals SELECT store_id, amount * 2 FROM sales;"]);
    assert!(out.contains("Job ID: "), "{out}");
    let id: String = out
        .split("Job ID: ")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    assert_eq!(id.len(), 32, "{out}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = term.run(&["SHOW JOBS;"]);
        let row = out.lines().find(|l| l.contains(&id)).unwrap_or_default();
        assert!(row.contains("insert-into_totals"), "{out}");
        if row.contains("FINISHED") {
            break;
        }
        assert!(Instant::now() < deadline, "the job did not finish: {out}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let written: String = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(written.lines().count(), 5, "{written}");
    assert!(
        written.contains("{\"store_id\":1,\"total\":40.0}"),
        "{written}"
    );
    let out = term.run(&[&format!("STOP JOB '{id}';")]);
    assert!(out.contains("is FINISHED already"), "{out}");

    // Ctrl-C stops a query that would run for ever, not the client
    term.run(&[
        "CREATE TABLE ticks (n BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '20', 'fields.n.kind' = 'sequence', 'fields.n.start' = '1', 'fields.n.end' = '1000000000');",
    ]);
    let from = term.end();
    term.type_line("SELECT n FROM ticks;");
    term.wait_for(from, "ticks to show", |t| {
        t.contains("running; Ctrl-C stops the query")
    });
    term.key("C-c");
    let out = term.wait_for(from, "the prompt after Ctrl-C", |t| {
        t.trim_end().ends_with("Flink SQL>")
    });
    assert!(out.contains("[INFO] Query stopped (Ctrl-C)."), "{out}");
    let out = term.run(&["SHOW TABLES;"]);
    assert!(has_row(&out, &["ticks"]), "the client goes on: {out}");

    // a background job still running when the client leaves is stopped
    let out = term.run(&["INSERT INTO totals SELECT CAST(n AS INT), 1.0 FROM ticks;"]);
    assert!(out.contains("Job ID: "), "{out}");
    let from = term.end();
    term.type_line("QUIT;");
    let out = term.wait_for(from, "the client to leave", |t| t.contains("done."));
    assert!(out.contains("Stopping 1 running job(s)"), "{out}");
    let history = std::fs::read_to_string(dir.path().join("history")).unwrap();
    assert!(history.contains("SHOW JOBS;"), "{history}");
}

#[test]
fn init_and_file_scripts_run_without_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let sales = write_sales(dir.path());
    let init = dir.path().join("init.sql");
    std::fs::write(
        &init,
        format!(
            "-- the tables\nCREATE TABLE sales (store_id INT, amount DOUBLE)\n  WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\n",
            sales.display()
        ),
    )
    .unwrap();
    let script = dir.path().join("job.sql");
    let out_dir = dir.path().join("out");
    std::fs::write(
        &script,
        format!(
            "CREATE TABLE big (store_id INT, amount DOUBLE) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\nINSERT INTO big SELECT * FROM sales WHERE amount >= 8;\nSET 'sql-client.execution.result-mode' = 'tableau';\nSELECT COUNT(*) AS n FROM sales;\n",
            out_dir.display()
        ),
    )
    .unwrap();
    let run = || {
        Command::new(tillflow())
            .args(["sql", "-i"])
            .arg(&init)
            .arg("-f")
            .arg(&script)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("finished"), "{stdout}");
    // the count's last change is 5 (the sales' rows)
    assert!(has_row(&stdout, &["+U", "5"]), "{stdout}");
    let written: String = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(written.lines().count(), 3, "{written}");

    // a failing statement ends a file run with an error naming it
    std::fs::write(
        &script,
        "SHOW TABLES;\n\n-- a typo\nSELECT nope\n  FROM sales;\n",
    )
    .unwrap();
    let out = run();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nope"), "{stderr}");
    assert!(
        stderr.contains("job.sql:4:"),
        "the statement's line: {stderr}"
    );
}
