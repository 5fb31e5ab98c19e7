//! What a caller asks for: a [`RunRequest`] is plain data, built by the CLI from its flags
//! or by the server from a webhook, and recorded (without secret values) with the run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gantry_engine::actions::ResolverConfig;
use gantry_engine::backend::KillPolicy;
use gantry_engine::backend::Placement;
use gantry_engine::events::EventBus;
use gantry_engine::gate::DeliveryGates;
use gantry_engine::run::{JobTimeoutCap, ReusedJob, SharedLimits};
use gantry_engine::store::WorkflowText;
use gantry_workflow::{Loaded, Workflow};
use indexmap::IndexMap;

/// One run to prepare: an event in a repository, with its workflow sources and values.
#[derive(Clone)]
pub struct RunRequest {
    /// The repository's directory (the workspace the run copies or binds).
    pub root: PathBuf,
    /// `push`, `pull_request`, `workflow_dispatch`, …
    pub event_name: String,
    /// The event payload (`{}` when none).
    pub event: serde_json::Value,
    pub workflows: WorkflowFiles,
    /// `github.actor` (default: git's user.name).
    pub actor: Option<String>,
    pub secrets: IndexMap<String, String>,
    pub vars: IndexMap<String, String>,
    /// Added to every job's `env` below the workflow's.
    pub env: IndexMap<String, String>,
    /// Workflow inputs (over the payload's `inputs`).
    pub inputs: IndexMap<String, String>,
    pub options: RunOptions,
    pub gates: GateSource,
    /// How the caller started the run (the CLI: its flags), kept as `args` in the run
    /// record for re-runs. Must hold no secret value.
    pub invocation: serde_json::Value,
    /// The run this one re-runs.
    pub rerun_of: Option<String>,
    /// Jobs (by workflow path and job id) reused from an earlier run.
    pub reuse: HashMap<(String, String), ReusedJob>,
    /// Local reusable workflows by path (`root` joined with the relative path) whose text
    /// is known (a re-run's recorded ones): called as recorded, not as the files are now.
    pub workflow_texts: HashMap<PathBuf, String>,
}

impl RunRequest {
    /// A request with defaults for everything but the repository and the event.
    pub fn new(root: PathBuf, event_name: impl Into<String>) -> Self {
        RunRequest {
            root,
            event_name: event_name.into(),
            event: serde_json::json!({}),
            workflows: WorkflowFiles::Find(vec![]),
            actor: None,
            secrets: IndexMap::new(),
            vars: IndexMap::new(),
            env: IndexMap::new(),
            inputs: IndexMap::new(),
            options: RunOptions::default(),
            gates: GateSource::RepoConfig {
                print_events: false,
            },
            invocation: serde_json::Value::Null,
            rerun_of: None,
            reuse: HashMap::new(),
            workflow_texts: HashMap::new(),
        }
    }
}

/// How the run executes (the engine's knobs; none changes what the workflows mean).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `runs-on` label → image or host.
    pub platforms: IndexMap<String, Placement>,
    /// Every job on the host whatever its `runs-on`.
    pub all_host: bool,
    /// Jobs at once (default: the number of CPUs).
    pub max_jobs: Option<usize>,
    /// Only these jobs and the jobs they need.
    pub only_jobs: Vec<String>,
    /// Only matrix legs with these `(key, value)`s.
    pub matrix_filters: Vec<(String, String)>,
    /// Run in the repository directory itself instead of a copy.
    pub bind: bool,
    /// Keep job workspaces after the run.
    pub keep_work: bool,
    /// Where actions and reusable workflows come from.
    pub resolver: ResolverConfig,
    /// Image name → local image (`--image NAME=LOCAL`, `images:` of `.gantry/config.yml`).
    pub images: IndexMap<String, String>,
    /// Signal escalation when cancelling a step (default GitHub's).
    pub kill: Option<KillPolicy>,
    /// The environment host steps start from (`None`: this process's own). A server gives
    /// a clean one, so its own tokens never reach a job.
    pub host_env: Option<IndexMap<String, String>>,
    /// Job slots and concurrency groups shared with other runs (a server's executor).
    pub shared: Option<SharedLimits>,
    /// The most any job may run (a server's `limits.job_timeout_minutes`).
    pub job_timeout_cap: Option<JobTimeoutCap>,
    /// Job trees prepared and released on blocking threads (see
    /// `RunConfig::blocking_job_dirs`).
    pub blocking_job_dirs: bool,
}

/// Which workflow files the run considers.
#[derive(Clone)]
pub enum WorkflowFiles {
    /// Files and directories (relative ones to the repository); empty: `.github/workflows`.
    Find(Vec<PathBuf>),
    /// Texts given (a re-run's recorded ones, or a server's from the forge).
    Given(Vec<WorkflowSource>),
}

/// Builds a run's gates once its event stream exists (see [`GateSource::GivenWithEvents`]).
pub type GatesWithEvents = Arc<dyn Fn(&EventBus) -> Arc<dyn DeliveryGates> + Send + Sync>;

/// Where the run's environment gates come from.
#[derive(Clone)]
pub enum GateSource {
    /// The repository's `.gantry/config.yml` (environments, health checks, rollback,
    /// Slack); without the file every environment is open. `print_events`: delivery events
    /// also go to stderr (a terminal user).
    RepoConfig { print_events: bool },
    /// The caller's own gates (the server takes protection rules from its configuration).
    Given(Arc<dyn DeliveryGates>),
    /// The caller's own gates, built once the run's event stream exists, so that they can
    /// send delivery events (health measurements, rollbacks) into it. Called once, before
    /// the first job.
    GivenWithEvents(GatesWithEvents),
}

/// A workflow file to load: the name diagnostics give it, the path the run knows it by,
/// and its text (`None`: unreadable, loaded from `display` to say why).
#[derive(Debug, Clone)]
pub struct WorkflowSource {
    pub display: String,
    pub rel_path: String,
    pub text: Option<String>,
}

impl WorkflowSource {
    /// The file at `path`, known to the run as `rel_path`.
    pub fn read(path: &Path, rel_path: String) -> Self {
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
