//! `gantry rerun [--failed] [RUN]`: run a recorded run again, with the workflow files it
//! ran (from its commit, or the copies in its record when they were not committed), its
//! flags, and the secrets given now (secrets are never saved). `--failed` reuses the jobs
//! that succeeded; a run that crashed (no summary) counts its unfinished jobs as failed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::bail;
use gantry_engine::actions::reference::{UsesRef, parse_uses};
use gantry_engine::events::Status;
use gantry_engine::run::{ReusedJob, WorkflowEntry};
use gantry_engine::store::{self, RecordedSources, RunStore, WorkflowText};
use gantry_workflow::{Loaded, Workflow};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::cmd_run::{BadInput, Prepared, RunArgs, execute, exit_code, prepare_from};

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

/// What `run.json` records (no secret values).
#[derive(Serialize, Deserialize)]
struct RunRecord {
    args: RunArgs,
    secret_names: Vec<String>,
    root: PathBuf,
    /// The commit and the workflow files the run used (absent in records of older versions).
    #[serde(default)]
    sources: RecordedSources,
    /// The run this one re-ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rerun_of: Option<String>,
}

/// A workflow file to load: the name diagnostics give it, the path the run knows it by,
/// and its text (`None`: unreadable, loaded from `display` to say why).
pub(crate) struct WorkflowSource {
    display: String,
    pub(crate) rel_path: String,
    text: Option<String>,
}

impl WorkflowSource {
    pub(crate) fn read(path: &Path, rel_path: String) -> Self {
        WorkflowSource {
            display: path.display().to_string(),
            rel_path,
            text: std::fs::read_to_string(path).ok(),
        }
    }

    pub(crate) fn load(&self) -> Loaded<Workflow> {
        match &self.text {
            Some(text) => gantry_workflow::parse_workflow(&self.display, text),
            None => gantry_workflow::load_workflow(Path::new(&self.display)),
        }
    }

    /// The text as parsed, for the run record.
    pub(crate) fn into_text(self) -> Option<WorkflowText> {
        Some(WorkflowText {
            rel_path: self.rel_path,
            text: self.text?,
        })
    }
}

/// The local reusable workflows (`uses: ./.github/workflows/…`) that `workflows` call,
/// directly or through each other: their texts from `known` (a re-run's recorded ones) or
/// read now. Paths leading out of `root` are left to the resolver to refuse.
fn local_callees(
    root: &Path,
    workflows: &[WorkflowEntry],
    known: &HashMap<PathBuf, String>,
) -> Vec<WorkflowText> {
    let Ok(canonical_root) = root.canonicalize() else {
        return vec![];
    };
    let mut found: Vec<WorkflowText> = Vec::new();
    let mut queue: Vec<Workflow> = workflows.iter().map(|w| w.workflow.clone()).collect();
    // GitHub's limit on distinct called workflows bounds the walk.
    while let Some(w) = queue.pop()
        && found.len() < 50
    {
        for job in w.jobs.values() {
            let Some(uses) = &job.uses else { continue };
            let Ok(UsesRef::LocalWorkflow { path }) = parse_uses(&uses.value) else {
                continue;
            };
            let rel = path.trim_start_matches("./").to_string();
            if found.iter().any(|f| f.rel_path == rel) {
                continue;
            }
            let file = root.join(&rel);
            let text = match known.get(&file) {
                Some(text) => text.clone(),
                None => {
                    let inside = file
                        .canonicalize()
                        .is_ok_and(|c| c.starts_with(&canonical_root));
                    match std::fs::read_to_string(&file) {
                        Ok(text) if inside => text,
                        _ => continue,
                    }
                }
            };
            if let Some(callee) = gantry_workflow::parse_workflow(&rel, &text).value {
                queue.push(callee);
            }
            found.push(WorkflowText {
                rel_path: rel,
                text,
            });
        }
    }
    found
}

/// Writes `run.json` for the run `p` recorded in `dir`, with the workflow files it parsed
/// and the local ones they call (copied beside it unless identical to the commit's). The
/// run then calls those texts, not whatever the files hold when a job gets to the call.
pub(crate) fn save_run_record(dir: &Path, p: &mut Prepared) -> anyhow::Result<()> {
    let called = local_callees(&p.cfg.root, &p.cfg.workflows, &p.cfg.workflow_texts);
    p.cfg.workflow_texts = called
        .iter()
        .map(|w| (p.cfg.root.join(&w.rel_path), w.text.clone()))
        .collect();
    let sources = store::record_workflows(&p.cfg.root, dir, &p.sources, &called)?;
    let record = RunRecord {
        args: p.args.clone(),
        secret_names: p.cfg.secrets.keys().cloned().collect(),
        root: p.cfg.root.clone(),
        sources,
        rerun_of: p.rerun_of.clone(),
    };
    store::write_atomically(
        &dir.join("run.json"),
        serde_json::to_string_pretty(&record)?.as_bytes(),
    )?;
    Ok(())
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
    let store = RunStore::new(&root);
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
    let mut run_args = record.args.clone();
    run_args.workdir = Some(record.root.clone());
    run_args.json = args.json;
    run_args.quiet = args.quiet;
    // Only the secrets given now: none is kept from the recorded run, not even its file.
    run_args.secret = args.secret.clone();
    run_args.secret_file = args.secret_file.clone();
    let original_secret_file = record.args.secret_file.clone();

    let mut p = prepare_from(run_args, IndexMap::new(), sources)?;
    p.rerun_of = Some(id.clone());
    p.cfg.workflow_texts = recorded_callees(&record, &dir, &id)?;
    let missing: Vec<&str> = record
        .secret_names
        .iter()
        .filter(|n| !p.cfg.secrets.contains_key(n.as_str()))
        .map(String::as_str)
        .collect();
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
        let head = gantry_engine::context::GitInfo::discover(&record.root).sha;
        if &head != sha {
            eprintln!(
                "gantry: note: run {id} was made at commit {}, HEAD is now {}: the workflow \
                 files are the run's, the workspace is the working tree's",
                &sha[..7.min(sha.len())],
                &head[..7.min(head.len())]
            );
        }
    }
    if args.failed {
        p.cfg.reuse = reusable_jobs(&rebuilt.summary);
    }
    execute(p, args.json, args.quiet).await
}
