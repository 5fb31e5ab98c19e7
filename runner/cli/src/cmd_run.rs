//! `gantry run [EVENT]`: a run request from flags (act-compatible names where they
//! overlap), given to the run session (`gantry-session`) with the terminal or JSON
//! reporter and the local run store; `gantry rerun` is in `cmd_rerun.rs`.
//!
//! Exit codes: 0 success, 1 the workflow failed or was cancelled, 2 bad input.

use std::path::{Path, PathBuf};

use anyhow::bail;
use gantry_engine::actions::{GitCredentials, ResolverConfig};
use gantry_engine::backend::KillPolicy;
use gantry_engine::backend::Placement;
use gantry_engine::events::EventBus;
use gantry_engine::github_contexts::parse_dotenv;
use gantry_engine::run::RunConfig;
use gantry_session::{
    GateSource, LocalRunStore, Pending, PreparedRun, RunOptions, RunRequest, RunSubscriber,
    Session, SessionError, WorkflowFiles, WorkflowSource, rel_to,
};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::terminal;

mod flags;
use flags::kv;

#[derive(clap::Args, Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunArgs {
    /// Event to run (default: push).
    pub event: Option<String>,
    /// Workflow file or directory (repeatable; default .github/workflows).
    #[arg(short = 'W', long = "workflows")]
    pub workflows: Vec<PathBuf>,
    /// Run only this job and the jobs it needs (repeatable).
    #[arg(short = 'j', long = "job")]
    pub jobs_filter: Vec<String>,
    /// Event payload JSON file.
    #[arg(short = 'e', long = "event-file", visible_alias = "eventpath")]
    pub event_file: Option<PathBuf>,
    /// Secret: K=V, or K to read the value from the environment (repeatable).
    #[arg(short = 's', long = "secret")]
    #[serde(skip)]
    pub secret: Vec<String>,
    /// File of secrets (dotenv format).
    #[arg(long = "secret-file")]
    pub secret_file: Option<PathBuf>,
    /// Configuration variable K=V (repeatable).
    #[arg(long = "var")]
    pub var: Vec<String>,
    /// File of variables (dotenv format).
    #[arg(long = "var-file")]
    pub var_file: Option<PathBuf>,
    /// Environment variable K=V for every job (repeatable).
    #[arg(long = "env")]
    pub env: Vec<String>,
    /// File of environment variables (dotenv format).
    #[arg(long = "env-file")]
    pub env_file: Option<PathBuf>,
    /// Workflow input K=V (repeatable).
    #[arg(long = "input")]
    pub input: Vec<String>,
    /// File of inputs (dotenv format).
    #[arg(long = "input-file")]
    pub input_file: Option<PathBuf>,
    /// Platform mapping: LABEL=IMAGE or LABEL=host (repeatable).
    #[arg(short = 'P', long = "platform")]
    pub platform: Vec<String>,
    /// Use a local image for an image workflows name: NAME=LOCAL (repeatable), e.g.
    /// postgres:15=gantry/postgres:15 (job containers, services, docker:// actions).
    #[arg(long = "image", value_name = "NAME=LOCAL")]
    pub image: Vec<String>,
    /// Run every job on the host, whatever its runs-on.
    #[arg(long = "host")]
    pub host: bool,
    /// Only run matrix legs with K:V (repeatable).
    #[arg(long = "matrix")]
    pub matrix: Vec<String>,
    /// The actor (github.actor; default: git's user.name).
    #[arg(short = 'a', long = "actor")]
    pub actor: Option<String>,
    /// Maximum number of jobs running at once (default: number of CPUs).
    #[arg(long = "jobs")]
    pub max_jobs: Option<usize>,
    /// Plan and print what would run; run nothing.
    #[arg(short = 'n', long = "dry-run")]
    pub dry_run: bool,
    /// One JSON event per line on stdout.
    #[arg(long = "json")]
    pub json: bool,
    /// Show a step's output only when it fails.
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Repository directory (default: the current directory).
    #[arg(short = 'C', long = "workdir")]
    pub workdir: Option<PathBuf>,
    /// Run jobs directly in the working tree instead of a copy.
    #[arg(long = "bind")]
    pub bind: bool,
    /// Keep job workspaces under .gantry/work after the run.
    #[arg(long = "keep-work")]
    pub keep_work: bool,
    /// Where remote actions are fetched from: a URL template with {owner} and {repo}
    /// (repeatable, tried in order; default https://github.com/{owner}/{repo}).
    #[arg(long = "action-source", value_name = "URL-TEMPLATE")]
    pub action_source: Vec<String>,
    /// Never fetch actions: use built-ins, local paths and the action cache only.
    #[arg(long = "offline")]
    pub offline: bool,
    /// Turn a built-in action off and run the real one (owner/repo, or `all`; repeatable).
    #[arg(long = "no-builtin", value_name = "NAME")]
    pub no_builtin: Vec<String>,
    /// Action cache directory (default $XDG_CACHE_HOME/gantry/actions).
    #[arg(long = "action-cache", value_name = "DIR")]
    pub action_cache: Option<PathBuf>,
    /// Seconds between SIGINT and SIGTERM when cancelling a step (default 7.5).
    #[arg(long = "kill-after", hide = true)]
    pub term_after: Option<f64>,
}

/// A usage error: exit code 2.
#[derive(Debug)]
pub(crate) struct BadInput(pub(crate) String);
impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for BadInput {}

fn dotenv_file(path: &Path, root: &Path) -> anyhow::Result<IndexMap<String, String>> {
    let p = if path.is_absolute() {
        path.to_path_buf()
    } else {
        root.join(path)
    };
    let p = if p.exists() { p } else { path.to_path_buf() };
    let text =
        std::fs::read_to_string(&p).map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
    parse_dotenv(&text).map_err(|e| BadInput(format!("{}: {e}", path.display())).into())
}

/// A run request from `gantry run`'s flags, with `extra_secrets` over the flags' and the
/// workflow files given (a re-run's recorded ones) instead of found.
pub(crate) fn request_from_args(
    args: &RunArgs,
    extra_secrets: IndexMap<String, String>,
    recorded: Option<Vec<WorkflowSource>>,
) -> anyhow::Result<RunRequest> {
    let root = match &args.workdir {
        Some(d) => d.clone(),
        None => std::env::current_dir()?,
    };
    let root = root
        .canonicalize()
        .map_err(|e| BadInput(format!("{}: {e}", root.display())))?;
    let event_name = args.event.clone().unwrap_or_else(|| "push".into());
    let mut request = RunRequest::new(root.clone(), event_name);
    if let Some(f) = &args.event_file {
        let p = if f.is_absolute() || f.exists() {
            f.clone()
        } else {
            root.join(f)
        };
        let text =
            std::fs::read_to_string(&p).map_err(|e| BadInput(format!("{}: {e}", f.display())))?;
        request.event =
            serde_json::from_str(&text).map_err(|e| BadInput(format!("{}: {e}", f.display())))?;
    }
    if let Some(f) = &args.secret_file {
        request.secrets.extend(dotenv_file(f, &root)?);
    }
    request
        .secrets
        .extend(flags::secrets(&args.secret, |k| std::env::var(k).ok())?);
    request.secrets.extend(extra_secrets);
    if let Some(f) = &args.var_file {
        request.vars.extend(dotenv_file(f, &root)?);
    }
    request.vars.extend(kv(&args.var, '=', "--var")?);
    if let Some(f) = &args.env_file {
        request.env.extend(dotenv_file(f, &root)?);
    }
    request.env.extend(kv(&args.env, '=', "--env")?);
    if let Some(f) = &args.input_file {
        request.inputs.extend(dotenv_file(f, &root)?);
    }
    request.inputs.extend(kv(&args.input, '=', "--input")?);
    request.actor = args.actor.clone();
    request.workflows = match recorded {
        Some(s) => WorkflowFiles::Given(s),
        None => WorkflowFiles::Find(args.workflows.clone()),
    };
    request.options = run_options(args, &root, &request.secrets)?;
    request.gates = GateSource::RepoConfig {
        print_events: !args.json,
    };
    request.invocation = serde_json::to_value(args)?;
    Ok(request)
}

/// The execution options from the flags: every flag that sets a field of the engine's
/// `RunConfig` (through the session's `RunOptions`) is read here.
fn run_options(
    args: &RunArgs,
    root: &Path,
    secrets: &IndexMap<String, String>,
) -> anyhow::Result<RunOptions> {
    let mut o = RunOptions::default();
    for (k, v) in kv(&args.platform, '=', "-P")? {
        o.platforms.insert(k, Placement::from_flag(&v));
    }
    o.all_host = args.host;
    o.max_jobs = args.max_jobs;
    o.only_jobs = args.jobs_filter.clone();
    o.matrix_filters = flags::matrix_filters(&args.matrix)?
        .into_iter()
        .map(|f| (f.key, f.value))
        .collect();
    o.bind = args.bind;
    o.keep_work = args.keep_work;
    o.resolver = resolver_config(args, secrets)?;
    o.images = flags::images(&args.image, root)?;
    if let Some(t) = args.term_after {
        o.kill = Some(KillPolicy {
            term_after: std::time::Duration::from_secs_f64(t.max(0.0)),
            kill_after: std::time::Duration::from_secs_f64((t / 3.0).max(0.1)),
        });
    }
    Ok(o)
}

/// Prepares the run of `request` (usage errors exit 2), says which workflows the event
/// does not trigger when it triggers none, and checks `--matrix` against the workflows.
pub(crate) fn prepare(request: RunRequest, args: &RunArgs) -> anyhow::Result<PreparedRun> {
    let prepared = Session::prepare(request).map_err(session_error)?;
    for w in prepared.warnings() {
        eprintln!("gantry: warning: {w}");
    }
    if prepared.is_empty() {
        for why in prepared.not_triggered() {
            eprintln!("gantry: skipped {why}");
        }
    } else {
        let filters = flags::matrix_filters(&args.matrix)?;
        flags::check_matrix_filters(prepared.workflows(), &filters)?;
    }
    Ok(prepared)
}

/// A session error as the CLI reports it: bad input is a usage error (exit 2).
pub(crate) fn session_error(e: SessionError) -> anyhow::Error {
    if e.is_bad_input() {
        BadInput(e.to_string()).into()
    } else {
        e.into()
    }
}

/// `--dry-run`: the jobs each workflow's plan runs (`-j` with what it needs), in file
/// order, with their needs.
fn dry_run(cfg: &RunConfig) -> anyhow::Result<i32> {
    println!("event {} in {}", cfg.event_name, cfg.root.display());
    for w in &cfg.workflows {
        println!("{} ({})", w.workflow.display_name(), w.rel_path);
        let only_jobs: Vec<String> = cfg
            .only_jobs
            .iter()
            .filter(|j| w.workflow.jobs.contains_key(*j))
            .cloned()
            .collect();
        if !cfg.only_jobs.is_empty() && only_jobs.is_empty() {
            continue;
        }
        let opts = gantry_plan::PlanOptions {
            only_jobs,
            ..Default::default()
        };
        let plan = gantry_plan::plan(&w.workflow, &opts)
            .map_err(|e| BadInput(format!("{}: {e}", w.rel_path)))?;
        for (id, jp) in &plan.jobs {
            let job = &w.workflow.jobs[id];
            let labels: Vec<&str> = job
                .runs_on
                .as_ref()
                .map(|r| r.labels.iter().map(|l| l.value.as_str()).collect())
                .unwrap_or_default();
            println!(
                "  job {id}: runs-on [{}]{}{} — {} step(s)",
                labels.join(", "),
                if jp.needs.is_empty() {
                    String::new()
                } else {
                    format!(", needs [{}]", jp.needs.join(", "))
                },
                if job.strategy.as_ref().is_some_and(|s| s.matrix.is_some()) {
                    ", matrix"
                } else {
                    ""
                },
                job.steps.len()
            );
        }
    }
    Ok(0)
}

/// Runs `p` with the local run store, printing as the flags say; the exit code of the run.
pub(crate) async fn execute(p: PreparedRun, json: bool, quiet: bool) -> anyhow::Result<i32> {
    if p.is_empty() {
        eprintln!(
            "gantry: no workflow is triggered by '{}'",
            p.config().event_name
        );
        return Ok(0);
    }
    let root = p.config().root.clone();
    let store = LocalRunStore::new(&root);
    let reporter: Box<dyn RunSubscriber> = if json {
        Box::new(|bus: &EventBus| {
            Pending::Thread(gantry_engine::reporter::json::spawn(
                bus.subscribe_batched(),
            ))
        })
    } else {
        Box::new(move |bus: &EventBus| {
            Pending::Thread(terminal::spawn(
                bus.subscribe_batched(),
                terminal::Options { quiet, color: true },
            ))
        })
    };
    // SIGINT, SIGTERM, SIGHUP: cancel the run, then escalate (see signals.rs).
    let cancel = CancellationToken::new();
    let signals = crate::signals::StopOnSignals::install(cancel.clone())?;
    let result = p.execute(&store, vec![reporter], cancel).await;
    drop(signals);
    let result = result.map_err(session_error)?;
    if !json {
        terminal::print_summary(&result.summary, true);
        println!("saved in {}", rel_to(&root, &result.location));
    }
    Ok(if result.succeeded() { 0 } else { 1 })
}

pub(crate) fn exit_code(r: anyhow::Result<i32>) -> anyhow::Result<i32> {
    match r {
        Err(e) if e.downcast_ref::<BadInput>().is_some() => {
            eprintln!("gantry: {e}");
            Ok(2)
        }
        other => other,
    }
}

pub async fn run(args: RunArgs) -> anyhow::Result<i32> {
    exit_code(
        async {
            let json = args.json;
            let quiet = args.quiet;
            let dry = args.dry_run;
            let request = request_from_args(&args, IndexMap::new(), None)?;
            let p = prepare(request, &args)?;
            if dry {
                // The plan, then what the run would miss (reported; the exit code stays
                // the plan's: `gantry validate --preflight` fails on findings).
                let code = dry_run(p.config())?;
                crate::cmd_validate::print_preflight(p.config(), json).await;
                return Ok(code);
            }
            execute(p, json, quiet).await
        }
        .await,
    )
}

/// `--action-source`, `--offline`, `--no-builtin`, `--action-cache` as a resolver configuration.
fn resolver_config(
    args: &RunArgs,
    secrets: &IndexMap<String, String>,
) -> anyhow::Result<ResolverConfig> {
    let mut rc = ResolverConfig {
        credentials: GitCredentials::from_sources(|k| std::env::var(k).ok(), secrets),
        ..Default::default()
    };
    if !args.action_source.is_empty() {
        for s in &args.action_source {
            if !s.contains("{owner}") || !s.contains("{repo}") {
                bail!(
                    "--action-source '{s}': the template needs {{owner}} and {{repo}}, e.g. file:///srv/mirror/{{owner}}/{{repo}}.git"
                );
            }
        }
        rc.sources = args.action_source.clone();
    }
    if let Some(d) = &args.action_cache {
        rc.cache_root = d.clone();
    }
    rc.offline = args.offline;
    rc.no_builtin = args
        .no_builtin
        .iter()
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    Ok(rc)
}
