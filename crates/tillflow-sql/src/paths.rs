//! The files a job writes, checked against the files it reads before anything is opened.
//!
//! A filesystem sink, a dead-letter file or a late-data file whose path is a source's input, or
//! contains it, or lies inside an input directory, would overwrite or grow the input (a
//! dead-letter file equal to the input emptied it before it was read, and the job "succeeded"
//! with 0 records). Such a job is refused when it is planned — by `tillflow validate` as well —
//! naming both tables and both options. A directory sink whose path is an existing file is
//! refused too, saying what to write instead.

use crate::error::{plan_err, Result};
use crate::session::{BranchEnd, JobPlan, TaskSource};
use std::path::{Path, PathBuf};

/// One path the job touches: the table, the option naming it, and the path made absolute.
struct Place {
    table: String,
    option: &'static str,
    path: PathBuf,
}

impl Place {
    fn describe(&self) -> String {
        format!(
            "table `{}` ('{}' = '{}')",
            self.table,
            self.option,
            self.path.display()
        )
    }
}

/// `path` made absolute and free of `.`, `..` and symbolic links as far as it exists.
fn absolute(path: &Path) -> PathBuf {
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    // the longest existing ancestor, resolved; the rest appended
    let mut rest = Vec::new();
    let mut at = path.as_path();
    loop {
        if let Ok(real) = at.canonicalize() {
            let mut p = real;
            for part in rest.iter().rev() {
                p.push(part);
            }
            return p;
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                at = parent;
            }
            _ => return path,
        }
    }
}

fn place(table: &str, option: &'static str, value: Option<&str>) -> Option<Place> {
    let path = tillflow_connectors::local_path(value?).ok()?;
    Some(Place {
        table: table.to_owned(),
        option,
        path: absolute(&path),
    })
}

/// Refuses a job that would write over, into or around what it reads (see the module
/// documentation).
pub fn check(plan: &JobPlan) -> Result<()> {
    let mut reads = Vec::new();
    let mut writes = Vec::new();
    // directory sinks whose path is an existing file
    let mut directories = Vec::new();
    for t in &plan.tasks {
        let TaskSource::Table(def) = &t.source else {
            continue;
        };
        let spec = &def.spec;
        if def.connector.name() == "filesystem" {
            reads.extend(place(&def.name, "path", spec.option("path")));
        }
        writes.extend(place(
            &def.name,
            "dead-letter.path",
            spec.option("dead-letter.path"),
        ));
        writes.extend(place(
            &def.name,
            "late-data.path",
            spec.option("late-data.path"),
        ));
    }
    let ends = plan
        .tasks
        .iter()
        .flat_map(|t| t.branches.iter().map(|b| &b.end))
        .chain(plan.joins.iter().map(|j| &j.downstream.end));
    for end in ends {
        if let BranchEnd::Sink { spec, connector } = end {
            if connector.name() == "filesystem" {
                if let Some(s) = place(&spec.name, "path", spec.option("path")) {
                    let single = spec
                        .option("sink.single-file")
                        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
                    if !single && s.path.is_file() {
                        directories.push(s.describe());
                    }
                    writes.push(s);
                }
            }
        }
    }
    for w in &writes {
        for r in &reads {
            let why = if w.path == r.path {
                "is"
            } else if r.path.starts_with(&w.path) {
                "contains"
            } else if w.path.starts_with(&r.path) {
                "lies inside"
            } else {
                continue;
            };
            return plan_err(format!(
                "{} {why} the input of {}: writing there would overwrite or grow what the job reads; write somewhere else",
                w.describe(),
                r.describe()
            ));
        }
    }
    if let Some(d) = directories.first() {
        return plan_err(format!(
            "{d} is an existing file, and a filesystem sink writes a directory of part files: name a directory, or set 'sink.single-file' = 'true' to write one file"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::session::Session;
    use std::collections::BTreeMap;

    /// The plan error of a job reading `input` (a directory with a file) and writing `sink`.
    fn refusal(dir: &std::path::Path, input: &str, sink: &str, single: bool) -> Option<String> {
        let single = if single {
            ", 'sink.single-file' = 'true'"
        } else {
            ""
        };
        let sql = format!(
            "CREATE TABLE t (a INT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
             CREATE TABLE o (a INT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json'{single});
             INSERT INTO o SELECT a FROM t;",
            dir.join(input).display(),
            dir.join(sink).display()
        );
        Session::new()
            .execute_script(&sql, &BTreeMap::new())
            .err()
            .map(|e| e.to_string())
    }

    #[test]
    fn writing_over_into_or_around_the_input_is_refused() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(d.path().join("in")).expect("dir");
        std::fs::write(d.path().join("in/a.json"), "{}\n").expect("input");
        std::fs::write(d.path().join("other.json"), "{}\n").expect("file");
        let contains = refusal(d.path(), "in/a.json", "in", false).expect("refused");
        assert!(
            contains.contains("contains the input of table `t`"),
            "{contains}"
        );
        let inside = refusal(d.path(), "in", "in/out", false).expect("refused");
        assert!(inside.contains("lies inside the input"), "{inside}");
        let file = refusal(d.path(), "in", "other.json", false).expect("refused");
        assert!(
            file.contains("is an existing file") && file.contains("'sink.single-file'"),
            "{file}"
        );
        assert_eq!(
            refusal(d.path(), "in", "out", false),
            None,
            "a directory beside the input"
        );
        assert_eq!(
            refusal(d.path(), "in", "other.json", true),
            None,
            "a single file may be replaced"
        );
    }
}
