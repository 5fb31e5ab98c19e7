//! A run: the configuration `gantry run` assembles, the state shared by every job of the
//! run, and [`execute`], which runs the selected workflows' jobs and reports the result.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gantry_expr::Value;
use gantry_workflow::Workflow;
use indexmap::IndexMap;
use tokio_util::sync::CancellationToken;

use crate::backend::{BackendRegistry, KillPolicy, Placement};
use crate::events::{EventBus, RunEvent, Status, millis};
use crate::gate::{DeliveryGates, NoGates};
use crate::github_contexts::{GitInfo, RunFacts};
use crate::workspace::Snapshot;

/// A job reused from an earlier run (`gantry rerun --failed`).
#[derive(Debug, Clone)]
pub struct ReusedJob {
    pub result: Status,
    pub outputs: IndexMap<String, String>,
}

/// A workflow selected for the run, with its path relative to the repository.
#[derive(Debug, Clone)]
pub struct WorkflowEntry {
    pub workflow: Workflow,
    /// Path relative to the repository root (for `github.workflow_ref`).
    pub rel_path: String,
}

/// The workflow a job belongs to and what its jobs see. A top-level workflow sees its own
/// `inputs` and the run's secrets; a called workflow (GHA-SEMANTICS §2.7) sees the inputs
/// and secrets of the call, and keeps the caller's `github` context.
pub struct Scope {
    pub workflow: Arc<Workflow>,
    /// Index of the top-level workflow in [`RunConfig::workflows`] (its `github.workflow`,
    /// its path in job records).
    pub top: usize,
    pub inputs: Value,
    pub secrets: IndexMap<String, String>,
    /// `""` at top level, `"<caller key>/"` inside a call (job keys, unique per run).
    pub key_prefix: String,
    /// `""` or `"<caller name> / "` (display names: `caller / callee`).
    pub name_prefix: String,
    /// `""` or `"<caller id>/"` (job ids in records and events; `rerun --failed`).
    pub id_prefix: String,
    /// Repository root that `./.github/workflows/...` calls are resolved against.
    pub repo_root: PathBuf,
    /// Nesting level: 1 for a top-level workflow (GitHub allows 10).
    pub level: usize,
    /// Distinct workflows called in this top-level workflow's tree (GitHub allows 50).
    pub called: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl Scope {
    /// The scope of the top-level workflow `index`.
    pub fn top(cfg: &RunConfig, index: usize, inputs: Value) -> Self {
        Scope {
            workflow: Arc::new(cfg.workflows[index].workflow.clone()),
            top: index,
            inputs,
            secrets: cfg.secrets.clone(),
            key_prefix: String::new(),
            name_prefix: String::new(),
            id_prefix: String::new(),
            repo_root: cfg.root.clone(),
            level: 1,
            called: Arc::default(),
        }
    }
}

/// Everything a run needs; built by `gantry run` (or a test).
pub struct RunConfig {
    /// Repository root (`--workdir`, default the current directory).
    pub root: PathBuf,
    pub workflows: Vec<WorkflowEntry>,
    pub event_name: String,
    pub event: serde_json::Value,
    /// `--actor` (default: git's user.name).
    pub actor: Option<String>,
    pub secrets: IndexMap<String, String>,
    pub vars: IndexMap<String, String>,
    /// `--env` / `--env-file`: added to the `env` context below workflow `env`.
    pub env: IndexMap<String, String>,
    /// `--input K=V` (over the event payload's `inputs`).
    pub inputs: IndexMap<String, String>,
    /// `-P label=image|host`: where jobs with these `runs-on` labels run.
    pub platforms: IndexMap<String, Placement>,
    /// `--host`: every label on the host.
    pub all_host: bool,
    /// `--image NAME=LOCAL` and `.gantry/config.yml` `images:`: the local image to use for
    /// an image a workflow names (job container, service, `-P` image, `docker://` action).
    pub images: IndexMap<String, String>,
    /// `--jobs N`.
    pub max_jobs: usize,
    /// `-j JOB` (with its needs).
    pub only_jobs: Vec<String>,
    /// `--matrix K:V`.
    pub matrix_filters: Vec<(String, String)>,
    /// `--bind`: run in the user's working tree instead of a copy.
    pub bind: bool,
    pub kill: KillPolicy,
    pub gates: Arc<dyn DeliveryGates>,
    /// Run id and number (allocated by the run store).
    pub run_id: String,
    pub run_number: u64,
    /// Jobs (by `workflow path` + `job id`) to reuse instead of running.
    pub reuse: HashMap<(String, String), ReusedJob>,
    /// Keep job workspaces after the run (default: removed when the job ends).
    pub keep_work: bool,
    /// Finds actions and reusable workflows (`--action-source`, `--offline`, `--no-builtin`).
    pub resolver: Arc<crate::actions::ActionResolver>,
    /// Local reusable workflows by path (`root` joined with `.github/workflows/…`): the
    /// texts to run instead of reading the files, so that a run and its re-runs call what
    /// the run record holds.
    pub workflow_texts: HashMap<PathBuf, String>,
    /// The environment host steps start from. `None`: this process's own (what a user at
    /// the keyboard expects of `gantry run`). A server passes a clean one, so its tokens,
    /// webhook secrets and database URL never reach a job.
    pub host_env: Option<IndexMap<String, String>>,
    /// Limits shared with other runs (a server's executor): job slots instead of
    /// `max_jobs`, concurrency groups spanning runs. `None`: this run's own.
    pub shared: Option<SharedLimits>,
    /// Plan only: the scheduler queues and starts every job in order, but each job
    /// succeeds at once without running a step (`gantry run --dry-run`'s job order, the
    /// plan agreement test).
    pub plan_only: bool,
    /// Wraps the local job executor (`None`: jobs run on it directly). Tests put a
    /// serializing layer here; a dispatcher to remote agents would go here too.
    pub wrap_executor: Option<crate::executor::WrapExecutor>,
    /// The most any job may run (a server's limit): a longer `timeout-minutes` is cut to
    /// it. `None`: a job's own timeout holds.
    pub job_timeout_cap: Option<JobTimeoutCap>,
    /// Prepare and release job trees (snapshot copies, the workspace's `.git`, pruning,
    /// the `/proc` scan) on blocking threads, so the async workers stay free: what a
    /// server wants. A one-run CLI keeps them inline: two thread hand-offs per job cost
    /// P6 (1,000 no-op jobs) about 10 % and buy it nothing.
    pub blocking_job_dirs: bool,
}

/// GitHub's `timeout-minutes` when a job gives none (GHA-SEMANTICS §5.6).
pub const DEFAULT_JOB_TIMEOUT_MINUTES: f64 = 360.0;

/// GitHub's `cancel-timeout-minutes` when a job gives none (GHA-SEMANTICS §1.3).
pub const DEFAULT_CANCEL_TIMEOUT_MINUTES: f64 = 5.0;

/// A limit on every job's timeout (see [`RunConfig::job_timeout_cap`]).
#[derive(Debug, Clone, PartialEq)]
pub struct JobTimeoutCap {
    /// Minutes (fractions allowed).
    pub minutes: f64,
    /// What a job's log calls the limit (`the server's job_timeout_minutes`).
    pub setting: String,
}

/// Job slots and concurrency groups several runs share (see [`RunConfig::shared`]).
#[derive(Clone)]
pub struct SharedLimits {
    pub job_slots: Arc<tokio::sync::Semaphore>,
    pub groups: Arc<crate::concurrency::Groups>,
}

impl std::fmt::Debug for SharedLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let free = self.job_slots.available_permits();
        f.debug_struct("SharedLimits")
            .field("free_job_slots", &free)
            .finish()
    }
}

impl RunConfig {
    /// The local image for `image` (its `--image`/`images:` mapping, else itself).
    pub fn local_image(&self, image: &str) -> String {
        self.images
            .get(image.trim())
            .cloned()
            .unwrap_or_else(|| image.to_string())
    }

    /// A configuration with defaults for everything but the repository and workflows.
    pub fn new(root: PathBuf, workflows: Vec<WorkflowEntry>) -> Self {
        RunConfig {
            root,
            workflows,
            event_name: "push".into(),
            event: serde_json::json!({}),
            actor: None,
            secrets: IndexMap::new(),
            vars: IndexMap::new(),
            env: IndexMap::new(),
            inputs: IndexMap::new(),
            platforms: IndexMap::new(),
            all_host: false,
            images: IndexMap::new(),
            max_jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
            only_jobs: vec![],
            matrix_filters: vec![],
            bind: false,
            kill: KillPolicy::default(),
            gates: Arc::new(NoGates),
            run_id: "0".into(),
            run_number: 0,
            reuse: HashMap::new(),
            keep_work: false,
            resolver: Arc::new(crate::actions::ActionResolver::new(Default::default())),
            workflow_texts: HashMap::new(),
            host_env: None,
            shared: None,
            plan_only: false,
            wrap_executor: None,
            job_timeout_cap: None,
            blocking_job_dirs: false,
        }
    }

    /// A job's timeout from its `timeout-minutes` (`None`: absent or not positive, so
    /// GitHub's 360), cut to [`Self::job_timeout_cap`]; when cut, also the line that says
    /// so in the job's log.
    pub fn job_timeout(&self, asked: Option<f64>) -> (Duration, Option<String>) {
        let own = asked
            .filter(|m| m.is_finite() && *m > 0.0)
            .unwrap_or(DEFAULT_JOB_TIMEOUT_MINUTES);
        let cap = self
            .job_timeout_cap
            .as_ref()
            .filter(|c| c.minutes.is_finite() && c.minutes > 0.0 && c.minutes < own);
        // A huge `timeout-minutes` (1e300) is no duration: it waits for ever.
        let dur = |m: f64| Duration::try_from_secs_f64(m * 60.0).unwrap_or(Duration::MAX);
        match cap {
            None => (dur(own), None),
            Some(c) => {
                let default = if asked.is_some() { "" } else { ", the default" };
                let note = format!(
                    "The job's timeout-minutes ({}{default}) is above {} ({}): the job is \
                     cancelled after {} minutes.",
                    gantry_expr::format_number(own),
                    c.setting,
                    gantry_expr::format_number(c.minutes),
                    gantry_expr::format_number(c.minutes),
                );
                (dur(c.minutes), Some(note))
            }
        }
    }

    /// How long a job's clean-up may run after its cancellation, from its
    /// `cancel-timeout-minutes` (absent or not positive: GitHub's 5), never longer than
    /// [`Self::job_timeout_cap`]; also the minutes as the job's log names them.
    pub fn cancel_timeout(&self, asked: Option<f64>) -> (Duration, String) {
        let own = asked
            .filter(|m| m.is_finite() && *m > 0.0)
            .unwrap_or(DEFAULT_CANCEL_TIMEOUT_MINUTES);
        let m = match &self.job_timeout_cap {
            Some(c) if c.minutes.is_finite() && c.minutes > 0.0 => own.min(c.minutes),
            _ => own,
        };
        let d = Duration::try_from_secs_f64(m * 60.0).unwrap_or(Duration::MAX);
        (d, gantry_expr::format_number(m))
    }
}

/// State shared by every job of a run.
pub struct RunShared {
    pub cfg: RunConfig,
    pub facts: RunFacts,
    pub bus: EventBus,
    pub process_env: IndexMap<String, String>,
    pub work_root: PathBuf,
    pub snapshot: Snapshot,
    /// Job directory trees parked for reuse by later jobs of the run.
    pub job_dirs: crate::job::dirs::JobDirs,
    /// Where jobs run (`host`, `docker`), each backend connected on first use.
    pub backends: BackendRegistry,
    /// Fired by Ctrl-C (or [`RunHandle::cancel`]).
    pub cancel: CancellationToken,
    /// `inputs` context per workflow index.
    pub inputs: Vec<Value>,
    /// Every secret value (for masking outputs that cross jobs).
    pub secret_masker: crate::shared_masker::Masker,
    /// Environment secrets, out of `cfg.secrets` until the gate admits a job of their
    /// environment; kept here only so every job masks them.
    pub withheld_secrets: IndexMap<String, String>,
    /// `vars` as every job starts with them (an environment's are added on admission).
    pub run_vars: Arc<IndexMap<String, String>>,
    pub event_json: String,
    /// Programs found on PATH (shells, node) during the run.
    pub programs: crate::shell::ProgramCache,
    /// Spare inodes for steps' scripts and file-command files (`envfile::spare`): the
    /// pool's one owner; each job's step runner reaches it through its `Leftovers`.
    pub spares: Arc<crate::envfile::spare::SparePool>,
}

impl RunShared {
    /// A job's masker: every secret of the run, environment secrets withheld from the job
    /// included (they are masked wherever they turn up), and `secrets`, the job's own (a
    /// reusable-workflow call's may be derived values).
    pub fn job_masker(&self, secrets: &IndexMap<String, String>) -> crate::shared_masker::Masker {
        let mut m = crate::shared_masker::Masker::with_secrets(
            self.cfg
                .secrets
                .values()
                .chain(self.withheld_secrets.values()),
        );
        for v in secrets.values() {
            m.add_secret(v);
        }
        m
    }
}

/// The end of a run.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub result: Status,
    /// Per job instance: key, job id, workflow path, display name, result, outputs, duration.
    pub jobs: Vec<JobRecord>,
}

#[derive(Debug, Clone)]
pub struct JobRecord {
    pub key: String,
    pub job_id: String,
    pub workflow: String,
    pub name: String,
    pub result: Status,
    pub continue_on_error: bool,
    pub outputs: IndexMap<String, String>,
    pub duration_ms: u64,
}

/// The `inputs` context of each workflow (resolved and checked by
/// [`gantry_plan::workflow_inputs`]; the session reported its warnings).
fn inputs_of(cfg: &RunConfig) -> Result<Vec<Value>, String> {
    let given = gantry_plan::given_inputs(&cfg.event, &cfg.inputs);
    cfg.workflows
        .iter()
        .map(|w| {
            gantry_plan::workflow_inputs(&w.workflow, &cfg.event_name, &given)
                .map(|r| {
                    Value::from_json(&serde_json::Value::Object(r.values.into_iter().collect()))
                })
                .map_err(|e| format!("{}: {e}", w.rel_path))
        })
        .collect()
}

/// Takes the secrets the gates withhold (environment secrets) out of the run-wide ones.
fn withhold_environment_secrets(cfg: &mut RunConfig) -> IndexMap<String, String> {
    let (withheld, run_wide) = std::mem::take(&mut cfg.secrets)
        .into_iter()
        .partition(|(name, _)| cfg.gates.withholds_secret(name));
    cfg.secrets = run_wide;
    withheld
}

/// Gantry's own environment for host steps, without the withheld secrets (`-s NAME`
/// reads a secret from a variable of that name, which host steps would inherit).
fn process_env_without(
    env: impl IntoIterator<Item = (String, String)>,
    withheld: &IndexMap<String, String>,
) -> IndexMap<String, String> {
    env.into_iter()
        .filter(|(k, v)| {
            !withheld.keys().any(|n| n.eq_ignore_ascii_case(k))
                && !withheld.values().any(|s| !s.is_empty() && s == v)
        })
        .collect()
}

/// Runs the configured workflows to the end. Events go to `bus` (subscribe before calling).
/// `cancel` cancels the run like Ctrl-C does.
pub async fn execute(
    mut cfg: RunConfig,
    bus: EventBus,
    cancel: CancellationToken,
) -> anyhow_like::Result<RunOutcome> {
    let started = Instant::now();
    let git = GitInfo::discover(&cfg.root);
    let actor = cfg.actor.clone().unwrap_or_else(|| git.actor.clone());
    let facts = RunFacts {
        run_id: cfg.run_id.clone(),
        run_number: cfg.run_number,
        event_name: cfg.event_name.clone(),
        event: cfg.event.clone(),
        git,
        actor,
        event_ctx: Default::default(),
        github_base: Default::default(),
    };
    let snapshot = Snapshot::scan(&cfg.root, cfg.bind)
        .map_err(|e| format!("cannot read the repository at {}: {e}", cfg.root.display()))?;
    let work_root = snapshot.root.join(".gantry").join("work").join(&cfg.run_id);
    let withheld_secrets = withhold_environment_secrets(&mut cfg);
    let process_env = match cfg.host_env.take() {
        Some(clean) => process_env_without(clean, &withheld_secrets),
        None => process_env_without(std::env::vars(), &withheld_secrets),
    };
    let inputs = inputs_of(&cfg)?;
    let secret_masker = crate::shared_masker::Masker::with_secrets(
        cfg.secrets.values().chain(withheld_secrets.values()),
    );
    let event_json = serde_json::to_string_pretty(&cfg.event).unwrap_or_else(|_| "{}".into());
    let (git_ref, sha, repository) = {
        let (r, _, _) = facts.refs();
        (r, facts.git.sha.clone(), facts.git.repository.clone())
    };
    bus.emit(RunEvent::RunStarted {
        run_id: cfg.run_id.clone(),
        workflows: cfg.workflows.iter().map(|w| w.rel_path.clone()).collect(),
        event: cfg.event_name.clone(),
        repository,
        sha,
        git_ref,
        time: chrono::Utc::now().to_rfc3339(),
    });
    let shared = Arc::new(RunShared {
        facts,
        bus: bus.clone(),
        process_env,
        job_dirs: crate::job::dirs::JobDirs::new(&work_root),
        work_root,
        snapshot,
        backends: BackendRegistry::local(crate::backend::host::default_backend()),
        cancel,
        inputs,
        secret_masker,
        withheld_secrets,
        run_vars: Arc::new(cfg.vars.clone()),
        event_json,
        programs: Default::default(),
        spares: Default::default(),
        cfg,
    });
    let jobs = crate::scheduler::run_all(shared.clone()).await;
    let cancelled = shared.cancel.is_cancelled();
    let result = if jobs
        .iter()
        .any(|j| j.result == Status::Failure && !j.continue_on_error)
    {
        Status::Failure
    } else if cancelled || jobs.iter().any(|j| j.result == Status::Cancelled) {
        Status::Cancelled
    } else {
        Status::Success
    };
    if !shared.cfg.keep_work && !shared.cfg.bind {
        let _ = std::fs::remove_dir_all(&shared.work_root);
    } else {
        // Under --bind the work root stays (tool cache); the parked trees do not.
        shared.job_dirs.clear();
    }
    bus.emit(RunEvent::RunFinished {
        run_id: shared.cfg.run_id.clone(),
        result,
        duration_ms: millis(started.elapsed()),
    });
    Ok(RunOutcome { result, jobs })
}

/// Minimal error plumbing without pulling anyhow into the engine.
pub mod anyhow_like {
    pub type Result<T> = std::result::Result<T, String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cap_cuts_longer_job_timeouts_and_says_so() {
        let mut cfg = RunConfig::new(PathBuf::from("."), vec![]);
        assert_eq!(cfg.job_timeout(None), (Duration::from_secs(360 * 60), None));
        assert_eq!(cfg.job_timeout(Some(0.5)), (Duration::from_secs(30), None));
        // Not a duration: waits for ever rather than panicking.
        assert_eq!(cfg.job_timeout(Some(1e300)).0, Duration::MAX);
        cfg.job_timeout_cap = Some(JobTimeoutCap {
            minutes: 0.05,
            setting: "the server's job_timeout_minutes".into(),
        });
        let (t, note) = cfg.job_timeout(Some(100.0));
        assert_eq!(t, Duration::from_secs(3));
        assert_eq!(
            note.as_deref(),
            Some(
                "The job's timeout-minutes (100) is above the server's job_timeout_minutes \
                 (0.05): the job is cancelled after 0.05 minutes."
            )
        );
        let (t, note) = cfg.job_timeout(None);
        assert_eq!(t, Duration::from_secs(3));
        assert!(note.unwrap().contains("(360, the default)"));
        assert_eq!(
            cfg.job_timeout(Some(0.01)),
            (Duration::from_millis(600), None)
        );
    }

    #[test]
    fn cancel_timeout_defaults_to_five_minutes_and_a_cap_bounds_it() {
        let mut cfg = RunConfig::new(PathBuf::from("."), vec![]);
        assert_eq!(
            cfg.cancel_timeout(None),
            (Duration::from_secs(300), "5".into())
        );
        assert_eq!(cfg.cancel_timeout(Some(0.0)).0, Duration::from_secs(300));
        assert_eq!(
            cfg.cancel_timeout(Some(f64::NAN)).0,
            Duration::from_secs(300)
        );
        assert_eq!(cfg.cancel_timeout(Some(0.5)).0, Duration::from_secs(30));
        assert_eq!(cfg.cancel_timeout(Some(1e300)).0, Duration::MAX);
        cfg.job_timeout_cap = Some(JobTimeoutCap {
            minutes: 0.05,
            setting: "the server's job_timeout_minutes".into(),
        });
        assert_eq!(
            cfg.cancel_timeout(Some(1e300)),
            (Duration::from_secs(3), "0.05".into())
        );
        assert_eq!(cfg.cancel_timeout(Some(0.01)).0, Duration::from_millis(600));
    }
}
