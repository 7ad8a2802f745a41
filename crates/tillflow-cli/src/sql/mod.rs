//! `tillflow sql`: the interactive SQL client, as Flink's `sql-client.sh`. It owns a session
//! (tables, views and `SET` options that live as long as the client) and reads statements
//! from the terminal (line editing and history through rustyline), from `-i` (run first) and
//! from `-f` (run, then exit). A statement ends at a `;` outside quotes and comments and may
//! span lines.
//!
//! What each statement does: DDL, `SET`/`RESET`, `SHOW …`, `DESCRIBE` and `EXPLAIN` act on the
//! session and print as Flink's client prints; a `SELECT` runs in the foreground and shows its
//! result as `sql-client.execution.result-mode` says ([`view`]) until it ends or Ctrl-C stops it;
//! an `INSERT` (or a statement set) becomes a job in the background of this process ([`jobs`]),
//! which `SHOW JOBS` lists and `STOP JOB 'id' [WITH SAVEPOINT]` stops (with
//! `table.dml-sync` = true, and always under `-f`, the client waits for it instead). Ctrl-C
//! at the prompt clears the line; while a query runs it stops the query, never the client.

mod jobs;
mod view;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tillflow_sql::session::Session;

/// `tillflow sql`'s options.
#[derive(clap::Args)]
pub struct SqlArgs {
    /// Run this script's statements (DDL, SET) before the session starts, as Flink's `-i`.
    #[arg(short = 'i', long = "init", value_name = "FILE")]
    init: Option<PathBuf>,
    /// Run this script's statements and exit, as Flink's `-f`: each INSERT runs to its end
    /// before the next statement.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    /// Replace ${NAME} in statements (repeatable); the environment is used for names not given.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    vars: Vec<String>,
    /// Set a configuration key before the session starts, as Flink's `-D` (repeatable).
    #[arg(long = "set", short = 'D', value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// The SQLite file for tables declared without a WITH clause (the embedded default store).
    #[arg(long, value_name = "FILE", default_value = tillflow_sql::session::DEFAULT_STORE)]
    store: String,
    /// Where the statement history is kept (default ~/.tillflow_sql_history).
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
}

/// How `SELECT` results are shown (`sql-client.execution.result-mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultMode {
    /// A table of the current result, redrawn in place as rows change.
    Table,
    /// Every change (+I, -U, +U, -D) as it comes, the latest ones redrawn in place.
    Changelog,
    /// Printed as it comes, in a bordered table with each change's kind.
    Tableau,
}

/// The client's own settings: keys Flink's SQL client reads itself.
struct Display {
    mode: ResultMode,
    max_width: usize,
    dml_sync: bool,
}

/// What a statement asks of the read loop.
#[derive(PartialEq, Eq)]
enum Next {
    Continue,
    Quit,
}

/// The client: its session, its settings and the jobs it started.
struct Client {
    session: Session,
    vars: BTreeMap<String, String>,
    display: Display,
    jobs: jobs::Jobs,
    /// Set by SIGINT (Ctrl-C while a query runs; at the prompt the editor reads it as a key).
    interrupted: Arc<AtomicBool>,
    /// Statements run so far (names each SELECT's result channel).
    statements: u64,
    /// Stop at the first failing statement (`-f`, `-i`).
    batch: bool,
    /// Running `-f`: every INSERT runs to its end before the next statement.
    file_mode: bool,
}

/// Runs the client; the error is what ends it abnormally (a statement of `-f` failing).
pub fn run(a: &SqlArgs) -> Result<(), String> {
    let mut vars = BTreeMap::new();
    for v in &a.vars {
        let (k, val) = v
            .split_once('=')
            .ok_or_else(|| format!("--var expects NAME=VALUE, got '{v}'"))?;
        vars.insert(k.to_owned(), val.to_owned());
    }
    let mut session = Session::new();
    session.default_store = Some(a.store.clone());
    let interrupted = Arc::new(AtomicBool::new(false));
    // Ctrl-C while a query runs stops the query and the client lives on; a second Ctrl-C
    // before the query has stopped ends the client (the order matters: the conditional exit
    // sees the flag before this signal sets it)
    signal_hook::flag::register_conditional_shutdown(
        signal_hook::consts::SIGINT,
        130,
        interrupted.clone(),
    )
    .and_then(|_| signal_hook::flag::register(signal_hook::consts::SIGINT, interrupted.clone()))
    .map_err(|e| format!("cannot handle Ctrl-C: {e}"))?;
    let mut client = Client {
        session,
        vars,
        display: Display {
            mode: ResultMode::Table,
            max_width: 30,
            dml_sync: false,
        },
        jobs: jobs::Jobs::default(),
        interrupted,
        statements: 0,
        batch: true,
        file_mode: false,
    };
    for kv in &a.sets {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("--set expects KEY=VALUE, got '{kv}'"))?;
        client.set(k.trim(), v.trim())?;
    }
    let result = match &a.init {
        Some(init) => client.run_file(init),
        None => Ok(()),
    };
    let result = result.and_then(|()| match &a.file {
        Some(file) => {
            client.file_mode = true;
            client.run_file(file)
        }
        None => {
            client.batch = false;
            client.interactive(a)
        }
    });
    // every way out stops the jobs still running (with a savepoint when they checkpoint)
    client.jobs.stop_all();
    result
}

impl Client {
    /// Runs every statement of a file, stopping at the first that fails.
    fn run_file(&mut self, path: &PathBuf) -> Result<(), String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut pending = String::new();
        let mut pending_line = 1;
        for (n, line) in text.lines().enumerate() {
            if pending.is_empty() {
                pending_line = n + 1;
            }
            pending.push_str(line);
            pending.push('\n');
            if !tillflow_sql::script::is_complete(&pending) {
                continue;
            }
            let text = std::mem::take(&mut pending);
            for (at, stmt) in statements(&text, pending_line) {
                let next = self
                    .execute(&stmt)
                    .map_err(|e| format!("{}:{at}: {e}", path.display()))?;
                if next == Next::Quit {
                    return Ok(());
                }
                if self.interrupted.load(Ordering::Relaxed) {
                    return Err(format!("{}: stopped by Ctrl-C", path.display()));
                }
            }
        }
        if !pending.trim().is_empty() && !only_comments(&pending) {
            return Err(format!(
                "{}: the last statement has no ';' at its end",
                path.display()
            ));
        }
        Ok(())
    }

    /// Reads statements from the terminal until QUIT or end of input.
    fn interactive(&mut self, a: &SqlArgs) -> Result<(), String> {
        use rustyline::error::ReadlineError;
        let mut editor = rustyline::DefaultEditor::new()
            .map_err(|e| format!("cannot read the terminal: {e}"))?;
        let history = a.history.clone().or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".tillflow_sql_history"))
        });
        if let Some(h) = &history {
            let _ = editor.load_history(h);
        }
        println!(
            "tillflow SQL client {}: end statements with ';', HELP; for help, QUIT; to leave.",
            env!("CARGO_PKG_VERSION")
        );
        let mut pending = String::new();
        loop {
            let prompt = if pending.is_empty() {
                "Flink SQL> "
            } else {
                "> "
            };
            match editor.readline(prompt) {
                Ok(line) => {
                    pending.push_str(&line);
                    pending.push('\n');
                    if !tillflow_sql::script::is_complete(&pending) {
                        continue;
                    }
                    let text = std::mem::take(&mut pending);
                    let _ = editor.add_history_entry(text.trim_end());
                    if let Some(h) = &history {
                        let _ = editor.save_history(h);
                    }
                    let mut quit = false;
                    for (_, stmt) in statements(&text, 1) {
                        match self.execute(&stmt) {
                            Ok(Next::Quit) => quit = true,
                            Ok(Next::Continue) => {}
                            Err(e) => println!("[ERROR] {e}\n"),
                        }
                        if quit {
                            break;
                        }
                    }
                    if quit {
                        break;
                    }
                }
                // Ctrl-C at the prompt drops what was typed
                Err(ReadlineError::Interrupted) => pending.clear(),
                Err(ReadlineError::Eof) => break,
                Err(e) => return Err(format!("reading the terminal: {e}")),
            }
        }
        println!("Shutting down the session...");
        self.jobs.stop_all();
        println!("done.");
        Ok(())
    }

    /// Runs one statement. An error is the statement's (the client goes on).
    fn execute(&mut self, text: &str) -> Result<Next, String> {
        self.statements += 1;
        // a Ctrl-C that stopped the last query (it stays set until then, so that a second one
        // ends the client, and a file run sees it after the statement)
        self.interrupted.store(false, Ordering::Relaxed);
        let words = words(text);
        let w: Vec<&str> = words.iter().map(String::as_str).collect();
        match w.as_slice() {
            [] => return Ok(Next::Continue),
            ["QUIT"] | ["EXIT"] => return Ok(Next::Quit),
            ["HELP"] => {
                println!("{HELP}");
                return Ok(Next::Continue);
            }
            ["CLEAR"] => {
                print!("\x1b[2J\x1b[H");
                return Ok(Next::Continue);
            }
            ["SET"] => {
                // Flink's client lists the session's options as a table (secrets masked)
                let mut rows: Vec<Vec<String>> =
                    tillflow_sql::config::listing(&self.session.catalog.config)
                        .into_iter()
                        .filter_map(|kv| {
                            let (k, v) = kv.split_once(" = ")?;
                            Some(vec![
                                k.trim_matches('\'').to_string(),
                                v.trim_matches('\'').to_string(),
                            ])
                        })
                        .collect();
                rows.push(vec![
                    "sql-client.execution.result-mode".into(),
                    format!("{:?}", self.display.mode).to_ascii_uppercase(),
                ]);
                rows.push(vec![
                    "sql-client.display.max-column-width".into(),
                    self.display.max_width.to_string(),
                ]);
                rows.push(vec![
                    "table.dml-sync".into(),
                    self.display.dml_sync.to_string(),
                ]);
                rows.sort();
                println!(
                    "{}",
                    tillflow_sql::statements::tableau(&["key", "value"], &rows)
                );
                return Ok(Next::Continue);
            }
            ["SHOW", "JOBS"] => {
                println!("{}", self.jobs.show());
                return Ok(Next::Continue);
            }
            ["STOP", "JOB", ..] => {
                return self.stop_job(text).map(|()| Next::Continue);
            }
            _ => {}
        }
        if let Some(done) = self.client_set(&w, text)? {
            println!("{done}\n");
            return Ok(Next::Continue);
        }
        if w.as_slice() == ["RESET"] {
            // every option back to its default, the client's own too
            self.display.mode = ResultMode::Table;
            self.display.max_width = 30;
            self.display.dml_sync = false;
        }
        let is_select = matches!(w.first().copied(), Some("SELECT" | "WITH" | "VALUES"));
        let channel = format!("sql-client-{}-{}", std::process::id(), self.statements);
        self.session.select_sink = Some(
            [
                ("connector".to_string(), "collect".to_string()),
                ("channel".to_string(), channel.clone()),
            ]
            .into_iter()
            .collect(),
        );
        let mut plan = match self.session.execute_script(text, &self.vars) {
            Ok(plan) => plan,
            Err(e) => return self.failed(format!("Could not execute SQL statement. Reason:\n{e}")),
        };
        for n in &plan.notices {
            if !is_client_key_notice(n) {
                println!("[WARNING] {n}");
            }
        }
        for text in std::mem::take(&mut plan.printed) {
            println!("{text}");
        }
        if plan.is_empty() {
            if let Some(done) = done_message(&w) {
                println!("{done}\n");
            }
            return Ok(Next::Continue);
        }
        if is_select {
            let schema = plan
                .sink_tables()
                .first()
                .map(|t| t.schema.clone())
                .unwrap_or_default();
            let rx = tillflow_connectors::collect::open(&channel);
            let started = jobs::start(plan, jobs::Kind::Query, &channel, None);
            tillflow_connectors::collect::close(&channel);
            let mut job = match started {
                Ok(job) => job,
                Err(e) => return self.failed(e),
            };
            let shown = view::show(
                &schema,
                rx,
                &job,
                self.display.mode,
                self.display.max_width,
                &self.interrupted,
            );
            let outcome = job.wait();
            shown?;
            if let Err(e) = outcome {
                return self.failed(format!("The query failed:\n{e}"));
            }
            return Ok(Next::Continue);
        }
        let name = self
            .session
            .catalog
            .config
            .get("pipeline.name")
            .cloned()
            .unwrap_or_else(|| {
                let tables: Vec<&str> =
                    plan.sink_tables().iter().map(|t| t.name.as_str()).collect();
                format!("insert-into_{}", tables.join(","))
            });
        let config = plan.config.clone();
        println!("[INFO] Submitting SQL update statement to the cluster...");
        let mut job = match jobs::start(plan, jobs::Kind::Insert, &name, Some(&config)) {
            Ok(job) => job,
            Err(e) => return self.failed(e),
        };
        for n in job.notes() {
            println!("[INFO] {n}");
        }
        let id = job.id().to_owned();
        if self.display.dml_sync || self.file_mode {
            println!("[INFO] Running job {id} ({name}) until it ends (Ctrl-C stops it)");
            let outcome = job.wait_interruptible(&self.interrupted);
            match outcome {
                Ok(summary) => println!("[INFO] Job {id} finished: {summary}\n"),
                Err(e) => return self.failed(format!("Job {id} failed:\n{e}")),
            }
            self.jobs.add(job);
        } else {
            println!(
                "[INFO] SQL update statement has been successfully submitted to the cluster:\nJob ID: {id}\n"
            );
            self.jobs.add(job);
        }
        Ok(Next::Continue)
    }

    /// An error of a statement: the client goes on, unless it runs a file.
    fn failed(&self, message: String) -> Result<Next, String> {
        if self.batch {
            Err(message)
        } else {
            println!("[ERROR] {message}\n");
            Ok(Next::Continue)
        }
    }

    /// `STOP JOB 'id' [WITH SAVEPOINT]`.
    fn stop_job(&mut self, text: &str) -> Result<(), String> {
        let Some(id) = text.split('\'').nth(1) else {
            return self
                .failed(
                    "STOP JOB expects the job's id in quotes: STOP JOB '<id>' [WITH SAVEPOINT]"
                        .into(),
                )
                .map(|_| ());
        };
        let savepoint = words(text)
            .windows(2)
            .any(|w| w[0] == "WITH" && w[1] == "SAVEPOINT");
        match self.jobs.stop(id, savepoint) {
            Ok(message) => {
                println!("{message}\n");
                Ok(())
            }
            Err(e) => self.failed(e).map(|_| ()),
        }
    }

    /// A `SET`, `RESET` of a key the client itself reads; None for any other statement.
    fn client_set(&mut self, w: &[&str], text: &str) -> Result<Option<String>, String> {
        let (key, value) = match w {
            ["SET", ..] => match set_parts(text) {
                Some((k, v)) if CLIENT_KEYS.contains(&k.as_str()) => (k, Some(v)),
                _ => return Ok(None),
            },
            ["RESET", ..] => match quoted(text) {
                Some(k) if CLIENT_KEYS.contains(&k.as_str()) => (k, None),
                _ => return Ok(None),
            },
            _ => return Ok(None),
        };
        let value = match value {
            Some(v) => v,
            None => {
                let defaults = [
                    ("sql-client.execution.result-mode", "table"),
                    ("sql-client.display.max-column-width", "30"),
                    ("table.display.max-column-width", "30"),
                    ("table.dml-sync", "false"),
                ];
                let d = defaults
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map_or("", |(_, v)| *v);
                self.set(&key, d)?;
                return Ok(Some("[INFO] Session property has been reset.".to_string()));
            }
        };
        match self.set(&key, &value) {
            Ok(()) => Ok(Some("[INFO] Session property has been set.".to_string())),
            Err(e) => self
                .failed(format!("Could not execute SQL statement. Reason:\n{e}"))
                .map(|_| Some(String::new())),
        }
    }

    /// Sets one of the client's keys (or, for any other key, the session's).
    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "sql-client.execution.result-mode" => {
                self.display.mode = match value.to_ascii_lowercase().as_str() {
                    "table" => ResultMode::Table,
                    "changelog" => ResultMode::Changelog,
                    "tableau" => ResultMode::Tableau,
                    _ => {
                        return Err(format!(
                            "'{key}' is 'table', 'changelog' or 'tableau', not '{}'",
                            clip(value)
                        ))
                    }
                }
            }
            "sql-client.display.max-column-width" | "table.display.max-column-width" => {
                self.display.max_width = value
                    .parse::<usize>()
                    .ok()
                    .filter(|w| *w >= 1)
                    .ok_or_else(|| {
                        format!("'{key}' is a width of 1 or more, not '{}'", clip(value))
                    })?
            }
            "table.dml-sync" => {
                self.display.dml_sync = match value.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(format!("'{key}' is true or false, not '{}'", clip(value))),
                }
            }
            _ => {
                if let Some(n) = self.session.set(key, value).map_err(|e| e.to_string())? {
                    println!("[WARNING] {n}");
                }
            }
        }
        Ok(())
    }
}

/// Keys the client reads itself (Flink's SQL client's own options).
const CLIENT_KEYS: &[&str] = &[
    "sql-client.execution.result-mode",
    "sql-client.display.max-column-width",
    "table.display.max-column-width",
    "table.dml-sync",
];

/// True for the session's notice that one of the client's own keys has no effect (it has one
/// here).
fn is_client_key_notice(notice: &str) -> bool {
    CLIENT_KEYS.iter().any(|k| notice.contains(k))
}

/// What Flink's client says after a statement that ran nothing.
fn done_message(w: &[&str]) -> Option<&'static str> {
    match w {
        ["SET", _, ..] => Some("[INFO] Session property has been set."),
        ["RESET", _, ..] => Some("[INFO] Session property has been reset."),
        ["RESET"] => Some("[INFO] All session properties have been set to their default values."),
        ["CREATE", ..] | ["DROP", ..] | ["USE", ..] => Some("[INFO] Execute statement succeed."),
        _ => None,
    }
}

/// The statement's words outside quotes, upper-cased, without the final `;` (to recognize
/// the client's own commands).
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        // comments are no words: `-- …` to the end of the line, `/* … */`
        if quote.is_none() && c == '-' && chars.peek() == Some(&'-') {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            for c in chars.by_ref() {
                if c == '\n' {
                    break;
                }
            }
            continue;
        }
        if quote.is_none() && c == '/' && chars.peek() == Some(&'*') {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            let mut last = ' ';
            for c in chars.by_ref() {
                if last == '*' && c == '/' {
                    break;
                }
                last = c;
            }
            continue;
        }
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' || c == '`' => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
                out.push("'".into());
                quote = Some(c);
            }
            None if c.is_alphanumeric() || c == '_' || c == '.' || c == '-' => {
                word.push(c.to_ascii_uppercase())
            }
            None => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
            }
        }
        if out.len() > 8 {
            break;
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// The whole statements of a complete text (several may share a line): split at each `;`
/// outside quotes and comments that ends a statement, with the line each begins on (counted
/// from `first_line`).
fn statements(text: &str, first_line: usize) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quote: Option<char> = None;
    let mut comment: Option<&str> = None;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        let next = bytes.get(i + 1).map(|b| *b as char);
        match (quote, comment) {
            (Some(q), _) if c == q => quote = None,
            (Some(_), _) => {}
            (None, Some("--")) if c == '\n' => comment = None,
            (None, Some("/*")) if c == '*' && next == Some('/') => {
                comment = None;
                i += 1;
            }
            (None, Some(_)) => {}
            (None, None) => match c {
                '\'' | '"' | '`' => quote = Some(c),
                '-' if next == Some('-') => comment = Some("--"),
                '/' if next == Some('*') => comment = Some("/*"),
                ';' if tillflow_sql::script::is_complete(&text[start..=i]) => {
                    let stmt = &text[start..=i];
                    out.push((
                        first_line + lines_before(text, start, stmt),
                        stmt.to_string(),
                    ));
                    start = i + 1;
                }
                _ => {}
            },
        }
        i += 1;
    }
    let rest = &text[start..];
    if !rest.trim().is_empty() && !only_comments(rest) {
        out.push((
            first_line + lines_before(text, start, rest),
            rest.to_string(),
        ));
    }
    out
}

/// Lines of `text` before the first line of `stmt` (which starts at byte `start`) that holds
/// more than blanks and `--` comments.
fn lines_before(text: &str, start: usize, stmt: &str) -> usize {
    let mut n = text[..start].matches('\n').count();
    for l in stmt.lines() {
        let t = l.trim();
        if !(t.is_empty() || t.starts_with("--")) {
            break;
        }
        n += 1;
    }
    n
}

/// The first quoted text of a statement.
fn quoted(text: &str) -> Option<String> {
    let text = strip_leading_comments(text);
    let start = text.find('\'')? + 1;
    let len = text[start..].find('\'')?;
    Some(text[start..start + len].to_string())
}

/// `SET 'key' = 'value'`'s key and value (quoted as Flink writes them, or bare as Flink's
/// older client took them).
fn set_parts(text: &str) -> Option<(String, String)> {
    let unquote = |s: &str| {
        let s = s.trim();
        s.strip_prefix('\'')
            .and_then(|s| s.strip_suffix('\''))
            .unwrap_or(s)
            .to_string()
    };
    let body = strip_leading_comments(text)
        .trim_end()
        .trim_end_matches(';');
    // past the word SET (the caller saw it first)
    let body = body.get(3..)?;
    let (key, value) = body.split_once('=')?;
    Some((unquote(key), unquote(value)))
}

/// The text after the blanks and comments it begins with.
fn strip_leading_comments(mut text: &str) -> &str {
    loop {
        text = text.trim_start();
        if let Some(rest) = text.strip_prefix("--") {
            text = rest.split_once('\n').map_or("", |(_, r)| r);
        } else if let Some(rest) = text.strip_prefix("/*") {
            text = rest.split_once("*/").map_or("", |(_, r)| r);
        } else {
            return text;
        }
    }
}

/// True when a text holds nothing but comments and blanks.
fn only_comments(text: &str) -> bool {
    text.lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with("--"))
}

/// User input quoted in a message: at most 200 bytes.
fn clip(text: &str) -> std::borrow::Cow<'_, str> {
    tillflow_connectors::format::clip(text)
}

const HELP: &str = "\
The SQL client's statements (each ends with ';'):
  CREATE TABLE / VIEW ...      define tables and views (Flink's DDL)
  CREATE FUNCTION f AS 'module.func' LANGUAGE PYTHON
                               a Python function (SET 'python.files' = 'udfs.py' first)
  SET 'key' = 'value'          set an option; SET lists them, RESET [ 'key' ] resets
  SHOW TABLES | VIEWS | FUNCTIONS | JOBS | CREATE TABLE t
  DESCRIBE t                   a table's columns
  EXPLAIN <query or INSERT>    the streaming plan
  SELECT ...                   run a query and show its result until it ends or Ctrl-C
  INSERT INTO ... SELECT ...   submit a job that runs in the background
  STOP JOB '<id>' [WITH SAVEPOINT]
  CLEAR                        clear the screen
  QUIT / EXIT                  leave (running jobs are stopped, with a savepoint when they checkpoint)
Result display: SET 'sql-client.execution.result-mode' = 'table' | 'changelog' | 'tableau';
SET 'table.dml-sync' = 'true' runs an INSERT in the foreground until it ends.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clients_own_commands_are_recognized_by_their_words() {
        assert_eq!(words("show   jobs ;"), vec!["SHOW", "JOBS"]);
        assert_eq!(
            words("STOP JOB 'ab12' WITH SAVEPOINT;"),
            vec!["STOP", "JOB", "'", "WITH", "SAVEPOINT"]
        );
        assert_eq!(
            words("SET 'sql-client.execution.result-mode' = 'tableau';")[..2],
            ["SET".to_string(), "'".to_string()]
        );
        assert_eq!(
            set_parts("SET 'sql-client.execution.result-mode' = 'tableau';"),
            Some((
                "sql-client.execution.result-mode".to_string(),
                "tableau".to_string()
            ))
        );
        assert_eq!(set_parts("SET;"), None);
        assert_eq!(
            set_parts("-- mode\nSET 'sql-client.execution.result-mode' = 'tableau';"),
            Some((
                "sql-client.execution.result-mode".to_string(),
                "tableau".to_string()
            ))
        );
        assert_eq!(
            set_parts("SET sql-client.execution.result-mode = tableau;"),
            Some((
                "sql-client.execution.result-mode".to_string(),
                "tableau".to_string()
            ))
        );
        assert_eq!(
            set_parts("SET 'table.dml-sync' = true;"),
            Some(("table.dml-sync".to_string(), "true".to_string()))
        );
        assert_eq!(
            words("-- first the jobs\n/* all */ SHOW JOBS;"),
            vec!["SHOW", "JOBS"]
        );
        assert_eq!(
            statements("SET 'a' = 'x;y'; SELECT 1; -- done\n\nSELECT ';';", 1),
            vec![
                (1, "SET 'a' = 'x;y';".to_string()),
                (1, " SELECT 1;".to_string()),
                (3, " -- done\n\nSELECT ';';".to_string())
            ]
        );
        assert_eq!(
            statements("BEGIN STATEMENT SET;\nINSERT INTO a SELECT 1;\nEND;", 4).len(),
            1
        );
        assert_eq!(
            quoted("RESET 'table.dml-sync';").as_deref(),
            Some("table.dml-sync")
        );
    }
}
