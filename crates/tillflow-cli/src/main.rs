//! The `tillflow` command: run, explain or validate a Flink SQL script.

use clap::{Parser, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use tillflow_runtime::job::JobReport;
use tillflow_sql::session::{JobPlan, Session};

#[derive(Parser)]
#[command(
    name = "tillflow",
    version,
    about = "Real-time retail stream processing with Flink SQL, in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a SQL script: its DDL, then every INSERT and SELECT as one job.
    Run(ScriptArgs),
    /// Print the streaming plan of a script without running it.
    Explain(ScriptArgs),
    /// Check a script (parse, names, types, connector options) without running it.
    Validate(ScriptArgs),
}

#[derive(clap::Args)]
struct ScriptArgs {
    /// The SQL script.
    file: PathBuf,
    /// Replace ${NAME} in the script (repeatable); the environment is used for names not given.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    vars: Vec<String>,
    /// Print no job summary.
    #[arg(long, short)]
    quiet: bool,
    /// The SQLite file for tables declared without a WITH clause (the embedded default store).
    #[arg(long, value_name = "FILE", default_value = tillflow_sql::session::DEFAULT_STORE)]
    store: String,
}

fn load(args: &ScriptArgs) -> Result<JobPlan, String> {
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| format!("cannot read {}: {e}", args.file.display()))?;
    let mut vars = BTreeMap::new();
    for v in &args.vars {
        let Some((k, val)) = v.split_once('=') else {
            return Err(format!("--var expects NAME=VALUE, got '{v}'"));
        };
        vars.insert(k.to_owned(), val.to_owned());
    }
    let mut session = Session::new();
    session.default_store = Some(args.store.clone());
    session
        .execute_script(&text, &vars)
        .map_err(|e| format!("{}: {e}", args.file.display()))
}

fn summary(r: &JobReport) -> String {
    let mut s = String::new();
    let records: u64 = r.sources.iter().map(|(_, m)| m.records).sum();
    let bad: u64 = r.sources.iter().map(|(_, m)| m.bad_records).sum();
    let rows: u64 = r.sinks.iter().map(|(_, n)| n).sum();
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    s.push_str(&format!(
        "tillflow: read {records} records in {:.3} s ({:.0} records/s), wrote {rows} rows",
        secs,
        records as f64 / secs
    ));
    if bad > 0 {
        s.push_str(&format!(", skipped {bad} malformed records"));
    }
    let nulled: u64 = r.sources.iter().map(|(_, m)| m.nulled_records).sum();
    if nulled > 0 {
        s.push_str(&format!(
            ", set unparsable fields to NULL in {nulled} records"
        ));
    }
    let late = r.late_dropped();
    if late > 0 {
        s.push_str(&format!(", dropped {late} late records"));
    }
    s
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Validate(a) => load(a).map(|plan| {
            for n in &plan.notices {
                eprintln!("note: {n}");
            }
            println!(
                "{}: OK ({} source(s), {} sink(s))",
                a.file.display(),
                plan.tasks.len(),
                plan.tasks.iter().map(|t| t.branches.len()).sum::<usize>()
            );
        }),
        Command::Explain(a) => load(a).map(|plan| print!("{}", plan.explain())),
        Command::Run(a) => load(a).and_then(|plan| {
            for n in &plan.notices {
                eprintln!("note: {n}");
            }
            if plan.is_empty() {
                eprintln!("note: the script has no INSERT or SELECT; nothing to run");
                return Ok(());
            }
            let mut job = plan
                .instantiate()
                .map_err(|e| format!("{}: {e}", a.file.display()))?;
            let report = job
                .run()
                .map_err(|e| format!("{}: job failed: {e}", a.file.display()))?;
            if !a.quiet {
                eprintln!("{}", summary(&report));
            }
            Ok(())
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
