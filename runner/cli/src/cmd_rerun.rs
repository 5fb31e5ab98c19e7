//! `gantry rerun [--failed] [RUN]`: run a recorded run again, with the workflow files it
//! ran (from its commit, or the copies in its record when they were not committed), its
//! flags, and the secrets given now (secrets are never saved; on a terminal the missing
//! ones are asked for, without echo). `--failed` reuses the jobs
//! that succeeded; a run that crashed (no summary) counts its unfinished jobs as failed.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::bail;
use gantry_engine::events::Status;
use gantry_engine::run::ReusedJob;
use gantry_engine::store::{self, LocalRuns};
use gantry_session::{RunRecord, WorkflowSource};
use indexmap::IndexMap;

use crate::cmd_run::{BadInput, RunArgs, execute, exit_code, prepare, request_from_args};

#[derive(clap::Args, Debug, Clone)]
pub struct RerunArgs {
    /// Re-run only the failed (and cancelled) jobs and the jobs that depend on them.
    #[arg(long)]
    pub failed: bool,
    /// Run id (default: the latest run).
    pub run: Option<String>,
    /// Secret: K=V, or K from the environment (secrets are never saved with a run).
    #[arg(short = 's', long = "secret")]
    pub secret: Vec<String>,
    /// File of secrets (dotenv format).
    #[arg(long = "secret-file")]
    pub secret_file: Option<PathBuf>,
    #[arg(long = "json")]
    pub json: bool,
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    #[arg(short = 'C', long = "workdir")]
    pub workdir: Option<PathBuf>,
}

/// Asks for secret `name` on the terminal with echo off (`stty -echo`); `None` when
/// nothing could be read.
fn ask_secret(id: &str, name: &str) -> Option<String> {
    let stty = |arg: &str| {
        std::process::Command::new("stty")
            .arg(arg)
            .stdin(std::process::Stdio::inherit())
            .status()
            .is_ok_and(|s| s.success())
    };
    eprint!("gantry: run {id} used secret {name}; value (empty to leave it unset): ");
    let _ = std::io::stderr().flush();
    let hidden = stty("-echo");
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if hidden {
        stty("echo");
    }
    eprintln!();
    read.ok()?;
    Some(line.trim_end_matches(['\n', '\r']).to_string())
}

/// The local reusable workflows run `id` called, as it called them, by path.
fn recorded_callees(
    record: &RunRecord,
    dir: &Path,
    id: &str,
) -> anyhow::Result<HashMap<PathBuf, String>> {
    let mut texts = HashMap::new();
    for w in &record.sources.called {
        let text = store::recorded_workflow_text(&record.root, dir, &record.sources, w)
            .map_err(|e| BadInput(format!("run {id}: {e}")))?;
        texts.insert(record.root.join(w.rel_path()), text);
    }
    Ok(texts)
}

/// The workflow files run `id` ran, as it ran them.
fn recorded_sources(
    record: &RunRecord,
    dir: &Path,
    id: &str,
) -> anyhow::Result<Vec<WorkflowSource>> {
    let sha7 = record
        .sources
        .sha
        .as_deref()
        .map_or("", |s| &s[..7.min(s.len())]);
    let mut out = Vec::new();
    for w in &record.sources.workflows {
        let text = store::recorded_workflow_text(&record.root, dir, &record.sources, w)
            .map_err(|e| BadInput(format!("run {id}: {e}")))?;
        let display = match w {
            store::RecordedWorkflow::Commit { rel_path, .. } => format!("{rel_path}@{sha7}"),
            store::RecordedWorkflow::Snapshot { file, .. } => dir.join(file).display().to_string(),
        };
        out.push(WorkflowSource {
            display,
            rel_path: w.rel_path().to_string(),
            text: Some(text),
        });
    }
    Ok(out)
}

/// Jobs whose every leg succeeded (or may fail) are reused with their outputs.
fn reusable_jobs(summary: &store::RunSummary) -> HashMap<(String, String), ReusedJob> {
    let mut by_job: HashMap<(String, String), Vec<&store::JobSummary>> = HashMap::new();
    for j in &summary.jobs {
        by_job
            .entry((j.workflow.clone(), j.job_id.clone()))
            .or_default()
            .push(j);
    }
    let mut reuse = HashMap::new();
    for (k, legs) in by_job {
        let ok = legs
            .iter()
            .all(|j| matches!(j.result, Status::Success) || j.continue_on_error);
        if ok {
            let mut outputs = IndexMap::new();
            for l in &legs {
                outputs.extend(l.outputs.clone());
            }
            reuse.insert(
                k,
                ReusedJob {
                    result: Status::Success,
                    outputs,
                },
            );
        }
    }
    reuse
}

pub async fn rerun(args: RerunArgs) -> anyhow::Result<i32> {
    exit_code(rerun_inner(args).await)
}

async fn rerun_inner(args: RerunArgs) -> anyhow::Result<i32> {
    let root = match &args.workdir {
        Some(d) => d.clone(),
        None => std::env::current_dir()?,
    };
    let store = LocalRuns::new(&root);
    let Some(id) = args.run.clone().or_else(|| store.latest()) else {
        bail!(BadInput("no saved run to re-run".into()));
    };
    let dir = store.run_dir(&id);
    let record_text = std::fs::read_to_string(dir.join("run.json")).map_err(|e| {
        BadInput(format!(
            "run {id}: {}: {e} (a run stopped before it started has none)",
            dir.join("run.json").display()
        ))
    })?;
    let record: RunRecord = serde_json::from_str(&record_text)
        .map_err(|e| BadInput(format!("{}: {e}", dir.join("run.json").display())))?;
    let rebuilt = store
        .summary_or_rebuilt(&id)
        .map_err(|e| BadInput(format!("run {id}: {e}")))?;
    if !rebuilt.unfinished.is_empty() {
        eprintln!(
            "gantry: run {id} did not finish; its unfinished jobs count as failed: {}",
            rebuilt.unfinished.join(", ")
        );
    }

    let sources = if record.sources.workflows.is_empty() {
        eprintln!(
            "gantry: note: run {id} does not record its workflow files (an older gantry); \
             using the working tree's"
        );
        None
    } else {
        Some(recorded_sources(&record, &dir, &id)?)
    };
    let mut run_args: RunArgs = serde_json::from_value(record.args.clone())
        .map_err(|e| BadInput(format!("{}: args: {e}", dir.join("run.json").display())))?;
    let original_secret_file = run_args.secret_file.clone();
    run_args.workdir = Some(record.root.clone());
    run_args.json = args.json;
    run_args.quiet = args.quiet;
    // Only the secrets given now: none is kept from the recorded run, not even its file.
    run_args.secret = args.secret.clone();
    run_args.secret_file = args.secret_file.clone();

    let mut request = request_from_args(&run_args, IndexMap::new(), sources)?;
    request.rerun_of = Some(id.clone());
    request.workflow_texts = recorded_callees(&record, &dir, &id)?;
    if args.failed {
        request.reuse = reusable_jobs(&rebuilt.summary);
    }
    let missing: Vec<&str> = record
        .secret_names
        .iter()
        .filter(|n| !request.secrets.contains_key(n.as_str()))
        .map(String::as_str)
        .collect();
    // On a terminal the missing ones are asked for (not echoed); elsewhere they are named.
    let missing: Vec<&str> = if !missing.is_empty() && std::io::stdin().is_terminal() {
        let mut still = Vec::new();
        for name in missing {
            match ask_secret(&id, name) {
                Some(v) if !v.is_empty() => {
                    request.secrets.insert(name.to_string(), v);
                }
                _ => still.push(name),
            }
        }
        still
    } else {
        missing
    };
    if !missing.is_empty() {
        let file_hint = original_secret_file
            .map(|f| format!(" (run {id} read --secret-file {})", f.display()))
            .unwrap_or_default();
        eprintln!(
            "gantry: warning: run {id} had secrets that were not given again: {}; secrets are \
             never saved with a run, pass them with -s NAME=VALUE, -s NAME or --secret-file{file_hint}",
            missing.join(", ")
        );
    }
    if let Some(sha) = &record.sources.sha {
        let head = gantry_engine::github_contexts::GitInfo::discover(&record.root).sha;
        if &head != sha {
            eprintln!(
                "gantry: note: run {id} was made at commit {}, HEAD is now {}: the workflow \
                 files are the run's, the workspace is the working tree's",
                &sha[..7.min(sha.len())],
                &head[..7.min(head.len())]
            );
        }
    }
    let p = prepare(request, &run_args)?;
    execute(p, args.json, args.quiet).await
}
