//! [`Session::prepare`]: from a request to the workflows the event triggers and the
//! engine's configuration, checking everything that can be checked before a run exists.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gantry_engine::actions::ActionResolver;
use gantry_engine::actions::reference::{UsesRef, parse_uses};
use gantry_engine::run::{RunConfig, WorkflowEntry};
use gantry_engine::store::WorkflowText;
use gantry_workflow::Workflow;

use crate::error::SessionError;
use crate::request::{RunRequest, WorkflowFiles, WorkflowSource};

/// The entry point: `Session::prepare(request)?.execute(store, subscribers, cancel)`.
pub struct Session;

/// A run ready to execute: its configuration and the workflow texts it will record.
pub struct PreparedRun {
    pub(crate) request: RunRequest,
    pub(crate) cfg: RunConfig,
    /// The text of each workflow that runs, as parsed (kept in the run record).
    pub(crate) sources: Vec<WorkflowText>,
    not_triggered: Vec<String>,
    warnings: Vec<String>,
}

impl PreparedRun {
    /// No workflow is triggered by the event: nothing to execute.
    pub fn is_empty(&self) -> bool {
        self.cfg.workflows.is_empty()
    }

    /// The triggered workflows, parsed.
    pub fn workflows(&self) -> &[WorkflowEntry] {
        &self.cfg.workflows
    }

    /// `path: why` for each workflow the event does not trigger.
    pub fn not_triggered(&self) -> &[String] {
        &self.not_triggered
    }

    /// The engine's configuration of the run (for printing a plan).
    pub fn config(&self) -> &RunConfig {
        &self.cfg
    }

    /// What the caller should tell the user before the run (undeclared inputs passed
    /// through), one line each.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    pub fn request(&self) -> &RunRequest {
        &self.request
    }
}

impl Session {
    /// Loads the workflows of `request` (error diagnostics fail), keeps those the event
    /// triggers (event name, activity types, branch and tag filters; without a ref in the
    /// payload the repository's HEAD is the pushed ref; path filters are not evaluated, no
    /// "before" commit being known) and checks the `only_jobs` ids.
    pub fn prepare(mut request: RunRequest) -> Result<PreparedRun, SessionError> {
        request.root = request
            .root
            .canonicalize()
            .map_err(|source| SessionError::Repository {
                path: request.root.clone(),
                source,
            })?;
        let root = request.root.clone();
        let mut trigger =
            gantry_plan::trigger::Event::from_payload(&request.event_name, request.event.clone());
        let name = request.event_name.as_str();
        if trigger.ref_.is_none() && name != "pull_request" && name != "pull_request_target" {
            let head = gantry_engine::github_contexts::GitInfo::discover(&root).git_ref;
            if !head.is_empty() {
                trigger.ref_ = Some(head);
            }
        }
        let sources = match &request.workflows {
            WorkflowFiles::Given(s) => s.clone(),
            WorkflowFiles::Find(paths) => collect_workflow_files(paths, &root)?
                .iter()
                .map(|f| WorkflowSource::read(f, rel_to(&root, f)))
                .collect(),
        };
        let mut workflows = Vec::new();
        let mut ran = Vec::new();
        let mut errors = Vec::new();
        let mut not_triggered = Vec::new();
        for src in sources {
            let loaded = src.load();
            for d in &loaded.diagnostics {
                if d.severity == gantry_workflow::Severity::Error {
                    errors.push(d.to_string());
                }
            }
            if let Some(w) = loaded.value {
                let m = gantry_plan::trigger::matches(&w, &trigger);
                if !m.matched {
                    not_triggered.push(format!("{}: {}", src.rel_path, m.reason));
                    continue;
                }
                workflows.push(WorkflowEntry {
                    rel_path: src.rel_path.clone(),
                    workflow: w,
                });
                ran.extend(src.into_text());
            }
        }
        if !errors.is_empty() {
            return Err(SessionError::Workflows(errors.join("\n")));
        }
        let mut cfg = run_config(&request, workflows);
        for id in &cfg.only_jobs {
            if !cfg
                .workflows
                .iter()
                .any(|w| w.workflow.jobs.contains_key(id))
            {
                return Err(SessionError::UnknownJob(id.clone()));
            }
        }
        let warnings = check_inputs(&mut cfg)?;
        Ok(PreparedRun {
            request,
            cfg,
            sources: ran,
            not_triggered,
            warnings,
        })
    }
}

/// Resolves each workflow's inputs as the engine will (required, types, `choice`,
/// defaults; [`gantry_plan::workflow_inputs`]) so that bad ones stop the run before it
/// exists, and returns the warnings for undeclared ones. For `workflow_dispatch`,
/// `github.event.inputs` gets every input as a string (undeclared ones too, as act does).
fn check_inputs(cfg: &mut RunConfig) -> Result<Vec<String>, SessionError> {
    let given = gantry_plan::given_inputs(&cfg.event, &cfg.inputs);
    let mut warnings = Vec::new();
    let mut event_inputs = serde_json::Map::new();
    for w in &cfg.workflows {
        let r = gantry_plan::workflow_inputs(&w.workflow, &cfg.event_name, &given).map_err(
            |source| SessionError::Inputs {
                workflow: w.rel_path.clone(),
                source,
            },
        )?;
        event_inputs.extend(gantry_plan::inputs::event_inputs(&r.values));
        warnings.extend(
            r.warnings
                .into_iter()
                .map(|m| format!("{}: {m}", w.rel_path)),
        );
    }
    if cfg.event_name == "workflow_dispatch" && !event_inputs.is_empty() {
        if !cfg.event.is_object() {
            cfg.event = serde_json::json!({});
        }
        cfg.event["inputs"] = serde_json::Value::Object(event_inputs);
    }
    Ok(warnings)
}

/// The engine's configuration from the request: every field of `RunConfig` the request
/// sets is set here (gates and the run id come later, in `execute`).
fn run_config(request: &RunRequest, workflows: Vec<WorkflowEntry>) -> RunConfig {
    let o = &request.options;
    let mut cfg = RunConfig::new(request.root.clone(), workflows);
    cfg.event_name = request.event_name.clone();
    cfg.event = request.event.clone();
    cfg.actor = request.actor.clone();
    cfg.secrets = request.secrets.clone();
    cfg.vars = request.vars.clone();
    cfg.env = request.env.clone();
    cfg.inputs = request.inputs.clone();
    cfg.platforms = o.platforms.clone();
    cfg.images = o.images.clone();
    cfg.all_host = o.all_host;
    if let Some(n) = o.max_jobs {
        cfg.max_jobs = n.max(1);
    }
    cfg.only_jobs = o.only_jobs.clone();
    cfg.matrix_filters = o.matrix_filters.clone();
    cfg.bind = o.bind;
    cfg.keep_work = o.keep_work;
    cfg.resolver = Arc::new(ActionResolver::new(o.resolver.clone()));
    if let Some(k) = o.kill {
        cfg.kill = k;
    }
    cfg.reuse = request.reuse.clone();
    cfg.host_env = o.host_env.clone();
    cfg.shared = o.shared.clone();
    cfg.job_timeout_cap = o.job_timeout_cap.clone();
    cfg.blocking_job_dirs = o.blocking_job_dirs;
    cfg.workflow_texts = request.workflow_texts.clone();
    cfg
}

/// The workflow files of `paths` (directories: their `.yml`/`.yaml` files, sorted), all
/// inside `root`.
fn collect_workflow_files(paths: &[PathBuf], root: &Path) -> Result<Vec<PathBuf>, SessionError> {
    let list: Vec<PathBuf> = if paths.is_empty() {
        vec![root.join(".github/workflows")]
    } else {
        paths
            .iter()
            .map(|p| {
                if p.is_absolute() || p.exists() {
                    p.clone()
                } else {
                    root.join(p)
                }
            })
            .collect()
    };
    let mut files = Vec::new();
    for p in list {
        if p.is_dir() {
            let here = yaml_files_in(&p)
                .map_err(|e| SessionError::WorkflowPath(format!("reading {}: {e}", p.display())))?;
            files.extend(here);
        } else if p.is_file() {
            files.push(p);
        } else {
            return Err(SessionError::NoWorkflowFile { path: p });
        }
    }
    for f in &files {
        gantry_engine::actions::resolve::repository_file_beneath(root, f)
            .map_err(SessionError::WorkflowRefused)?;
    }
    Ok(files)
}

/// The `*.yml` / `*.yaml` files directly in a workflow directory, sorted.
pub fn yaml_files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|f| {
            f.is_file() && matches!(f.extension().and_then(|e| e.to_str()), Some("yml" | "yaml"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// `p` relative to `root` when inside it.
pub fn rel_to(root: &Path, p: &Path) -> String {
    let rp = p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let rr = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    rp.strip_prefix(&rr)
        .map(|r| r.display().to_string())
        .unwrap_or_else(|_| p.display().to_string())
}

/// The local reusable workflows (`uses: ./.github/workflows/…`) that `workflows` call,
/// directly or through each other: their texts from `known` (a re-run's recorded ones) or
/// read now. Paths leading out of `root` are left to the resolver to refuse.
pub(crate) fn local_callees(
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
