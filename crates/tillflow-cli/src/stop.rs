//! `tillflow stop`: stops a running job through its HTTP API (`POST /api/jobs/{id}/stop`, which
//! answers once the job has stopped, with its final state), as Flink's `flink stop` does through
//! its REST API.
//!
//! A checkpointed job stops with a savepoint — a final checkpoint that keeps open windows
//! unfired — and the next `tillflow run` of the same script resumes from it; a job without
//! checkpoints drains (open windows fire, sinks commit). `--savepoint` insists on the former.

use std::net::SocketAddr;
use std::time::Duration;

/// The options of `tillflow stop`.
#[derive(clap::Args)]
pub struct StopArgs {
    /// The job's id, as `/api/jobs` lists it (the script's file name made URL-safe, e.g.
    /// `sales_sql`); may be left out when the process runs one job.
    job: Option<String>,
    /// Stop with a savepoint, and refuse if the job is not checkpointed (instead of draining it).
    #[arg(long)]
    savepoint: bool,
    /// The HTTP address the job serves its API on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// Bearer token, when the job was started with one.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "TILLFLOW_AUTH_TOKEN",
        hide_env_values = true
    )]
    auth_token: Option<String>,
    /// How long to wait for the job to stop (e.g. 30s, 2 min).
    #[arg(long, default_value = "60 s")]
    timeout: String,
}

struct Api {
    client: reqwest::blocking::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::blocking::RequestBuilder {
        let r = self.client.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// GET `path` as JSON; `Ok(None)` when nothing listens.
    fn get(&self, path: &str) -> Result<Option<serde_json::Value>, String> {
        match self.request(reqwest::Method::GET, path).send() {
            Ok(r) => {
                let code = r.status();
                let text = r.text().map_err(|e| format!("{}{path}: {e}", self.base))?;
                if code == reqwest::StatusCode::UNAUTHORIZED {
                    return Err(self.unauthorized());
                }
                if !code.is_success() {
                    return Err(format!("{}{path}: {code}: {}", self.base, text.trim()));
                }
                serde_json::from_str(&text)
                    .map(Some)
                    .map_err(|e| format!("{}{path}: not the tillflow API ({e})", self.base))
            }
            Err(e) if e.is_connect() => Ok(None),
            Err(e) => Err(format!("{}{path}: {e}", self.base)),
        }
    }

    fn unauthorized(&self) -> String {
        match self.token {
            Some(_) => format!("{}: the token given was refused", self.base),
            None => format!(
                "{}: the job wants a token: pass --auth-token or set TILLFLOW_AUTH_TOKEN",
                self.base
            ),
        }
    }
}

/// Runs `tillflow stop`.
pub fn run(a: &StopArgs) -> Result<(), String> {
    let timeout = tillflow_types::temporal::parse_duration_micros(&a.timeout)
        .filter(|m| *m >= 0)
        .map(|m| Duration::from_micros(m as u64))
        .ok_or_else(|| format!("--timeout: '{}' is not a duration (e.g. 30s)", a.timeout))?;
    let api = Api {
        client: reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?,
        base: format!("http://{}", a.http),
        token: a.auth_token.clone(),
    };
    let nothing = || {
        format!(
            "no tillflow job serves its API on {} (start it with --http {0}, or pass --http ADDR)",
            a.http
        )
    };
    let id = match &a.job {
        Some(id) => id.clone(),
        None => {
            let jobs = api.get("/api/jobs")?.ok_or_else(nothing)?;
            let running: Vec<&str> = jobs
                .as_array()
                .into_iter()
                .flatten()
                .filter(|j| j["state"] == "running")
                .filter_map(|j| j["id"].as_str())
                .collect();
            match running.as_slice() {
                [one] => (*one).to_owned(),
                [] => return Err(format!("no job is running on {}", a.http)),
                many => {
                    return Err(format!(
                        "{} jobs run on {}; name one: {}",
                        many.len(),
                        a.http,
                        many.join(", ")
                    ))
                }
            }
        }
    };
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "'{id}' is not a job id (letters, digits, '_' and '-', as /api/jobs lists them)"
        ));
    }
    let path = format!(
        "/api/jobs/{id}/stop{}",
        if a.savepoint { "?savepoint=true" } else { "" }
    );
    // the server answers once the job has stopped, with its final state
    let r = match api
        .request(reqwest::Method::POST, &path)
        .header(tillflow_server::STOP_HEADER, "1")
        .timeout(timeout)
        .send()
    {
        Ok(r) => r,
        Err(e) if e.is_connect() => return Err(nothing()),
        Err(e) if e.is_timeout() => {
            return Err(format!(
                "job `{id}` has not stopped after {timeout:?} (it was asked to; --timeout to wait longer)"
            ))
        }
        Err(_) => {
            return Err(format!(
                "job `{id}`: its process ended before saying how the stop went; see its log"
            ))
        }
    };
    let code = r.status();
    let text = r.text().unwrap_or_default();
    if code == reqwest::StatusCode::UNAUTHORIZED {
        return Err(api.unauthorized());
    }
    if !code.is_success() {
        let why = text.trim();
        return Err(if why.is_empty() {
            format!("{}{path}: {code}", api.base)
        } else {
            why.to_owned()
        });
    }
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}{path}: not the tillflow API ({e})", api.base))?;
    let savepoint = v["savepoint"].as_bool().unwrap_or(false);
    match v["state"].as_str().unwrap_or_default() {
        "finished" => {}
        "failed" => return Err(format!("job `{id}` failed while stopping; see its log")),
        _ => {
            return Err(format!(
                "job `{id}` is still stopping (it was asked to; see its log or /api/jobs/{id})"
            ))
        }
    }
    if savepoint {
        let which = v["last_checkpoint"]
            .as_u64()
            .map_or(String::new(), |n| format!(" (checkpoint {n})"));
        println!(
            "job `{id}` stopped with a savepoint{which}; `tillflow run` of its script resumes from it"
        );
    } else {
        println!(
            "job `{id}` stopped (not checkpointed: its open windows fired, its sinks committed)"
        );
    }
    Ok(())
}
