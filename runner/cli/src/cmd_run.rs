//! `gantry run [EVENT]`: assemble a run from flags (act-compatible names where they
//! overlap), start the reporters, run, save (`gantry rerun` is in `cmd_rerun.rs`).
//!
//! Exit codes: 0 success, 1 the workflow failed or was cancelled, 2 bad input.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use gantry_engine::actions::{ActionResolver, GitCredentials, ResolverConfig};
use gantry_engine::backend::KillPolicy;
use gantry_engine::context::parse_dotenv;
use gantry_engine::events::{EventBus, RunEvent, Status};
use gantry_engine::run::{Platform, RunConfig, WorkflowEntry};
use gantry_engine::store::{self, RunStore, WorkflowText};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::cmd_rerun::WorkflowSource;
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

fn collect_workflow_files(paths: &[PathBuf], root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let defaults = [root.join(".github/workflows")];
    let list: Vec<PathBuf> = if paths.is_empty() {
        defaults.to_vec()
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
            let mut here: Vec<PathBuf> = std::fs::read_dir(&p)
                .with_context(|| format!("reading {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && matches!(f.extension().and_then(|e| e.to_str()), Some("yml" | "yaml"))
                })
                .collect();
            here.sort();
            files.extend(here);
        } else if p.is_file() {
            files.push(p);
        } else {
            bail!(BadInput(format!(
                "no workflow file or directory at {}",
                p.display()
            )));
        }
    }
    for f in &files {
        gantry_engine::actions::resolve::repository_file_beneath(root, f).map_err(BadInput)?;
    }
    Ok(files)
}

fn rel_to(root: &Path, p: &Path) -> String {
    let rp = p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let rr = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    rp.strip_prefix(&rr)
        .map(|r| r.display().to_string())
        .unwrap_or_else(|_| p.display().to_string())
}

pub(crate) struct Prepared {
    pub(crate) cfg: RunConfig,
    pub(crate) args: RunArgs,
    /// The text of each workflow that runs, as parsed (kept in the run record).
    pub(crate) sources: Vec<WorkflowText>,
    /// The run this one re-runs.
    pub(crate) rerun_of: Option<String>,
}

pub(crate) fn prepare(
    args: RunArgs,
    extra_secrets: IndexMap<String, String>,
) -> anyhow::Result<Prepared> {
    prepare_from(args, extra_secrets, None)
}

/// [`prepare`] with the workflow files given (a re-run's recorded ones) instead of found.
pub(crate) fn prepare_from(
    args: RunArgs,
    extra_secrets: IndexMap<String, String>,
    recorded: Option<Vec<WorkflowSource>>,
) -> anyhow::Result<Prepared> {
    let root = match &args.workdir {
        Some(d) => d.clone(),
        None => std::env::current_dir()?,
    };
    let root = root
        .canonicalize()
        .map_err(|e| BadInput(format!("{}: {e}", root.display())))?;
    let event_name = args.event.clone().unwrap_or_else(|| "push".into());
    let event: serde_json::Value = match &args.event_file {
        Some(f) => {
            let p = if f.is_absolute() || f.exists() {
                f.clone()
            } else {
                root.join(f)
            };
            let text = std::fs::read_to_string(&p)
                .map_err(|e| BadInput(format!("{}: {e}", f.display())))?;
            serde_json::from_str(&text).map_err(|e| BadInput(format!("{}: {e}", f.display())))?
        }
        None => serde_json::json!({}),
    };
    let mut secrets = IndexMap::new();
    if let Some(f) = &args.secret_file {
        secrets.extend(dotenv_file(f, &root)?);
    }
    secrets.extend(flags::secrets(&args.secret, |k| std::env::var(k).ok())?);
    secrets.extend(extra_secrets);
    let mut vars = IndexMap::new();
    if let Some(f) = &args.var_file {
        vars.extend(dotenv_file(f, &root)?);
    }
    vars.extend(kv(&args.var, '=', "--var")?);
    let mut env = IndexMap::new();
    if let Some(f) = &args.env_file {
        env.extend(dotenv_file(f, &root)?);
    }
    env.extend(kv(&args.env, '=', "--env")?);
    let mut inputs = IndexMap::new();
    if let Some(f) = &args.input_file {
        inputs.extend(dotenv_file(f, &root)?);
    }
    inputs.extend(kv(&args.input, '=', "--input")?);
    let mut platforms = IndexMap::new();
    for (k, v) in kv(&args.platform, '=', "-P")? {
        let p = if v.eq_ignore_ascii_case("host") || v == "-self-hosted" {
            Platform::Host
        } else {
            Platform::Image(v)
        };
        platforms.insert(k, p);
    }
    let matrix_filters = flags::matrix_filters(&args.matrix)?;

    // Workflows triggered by the event: event name, activity types and branch/tag filters
    // (GitHub's rules, in gantry-plan). Without a payload ref, the repository's HEAD is the
    // pushed ref. Path filters are not evaluated locally (no "before" commit is known).
    let mut trigger = gantry_plan::trigger::Event::from_payload(&event_name, event.clone());
    if trigger.ref_.is_none() && event_name != "pull_request" && event_name != "pull_request_target"
    {
        let head = gantry_engine::context::GitInfo::discover(&root).git_ref;
        if !head.is_empty() {
            trigger.ref_ = Some(head);
        }
    }
    let sources = match recorded {
        Some(s) => s,
        None => collect_workflow_files(&args.workflows, &root)?
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
        bail!(BadInput(errors.join("\n")));
    }
    if workflows.is_empty() {
        for why in &not_triggered {
            eprintln!("gantry: skipped {why}");
        }
    } else {
        flags::check_matrix_filters(&workflows, &matrix_filters)?;
    }
    let images = flags::images(&args.image, &root)?;
    let mut cfg = RunConfig::new(root, workflows);
    cfg.images = images;
    cfg.event_name = event_name;
    cfg.event = event;
    cfg.actor = args.actor.clone();
    cfg.secrets = secrets;
    cfg.vars = vars;
    cfg.env = env;
    cfg.inputs = inputs;
    cfg.platforms = platforms;
    cfg.all_host = args.host;
    if let Some(n) = args.max_jobs {
        cfg.max_jobs = n.max(1);
    }
    cfg.only_jobs = args.jobs_filter.clone();
    cfg.matrix_filters = matrix_filters
        .into_iter()
        .map(|f| (f.key, f.value))
        .collect();
    cfg.bind = args.bind;
    cfg.keep_work = args.keep_work;
    cfg.resolver = Arc::new(ActionResolver::new(resolver_config(&args, &cfg.secrets)?));
    if let Some(t) = args.term_after {
        cfg.kill = KillPolicy {
            term_after: std::time::Duration::from_secs_f64(t.max(0.0)),
            kill_after: std::time::Duration::from_secs_f64((t / 3.0).max(0.1)),
        };
    }
    for id in &cfg.only_jobs {
        if !cfg
            .workflows
            .iter()
            .any(|w| w.workflow.jobs.contains_key(id))
        {
            bail!(BadInput(format!(
                "no job '{id}' in the workflows for this event"
            )));
        }
    }
    Ok(Prepared {
        cfg,
        args,
        sources: ran,
        rerun_of: None,
    })
}

fn dry_run(cfg: &RunConfig) -> i32 {
    println!("event {} in {}", cfg.event_name, cfg.root.display());
    for w in &cfg.workflows {
        println!("{} ({})", w.workflow.display_name(), w.rel_path);
        for (id, job) in &w.workflow.jobs {
            if !cfg.only_jobs.is_empty() && !cfg.only_jobs.contains(id) {
                continue;
            }
            let needs: Vec<&str> = job.needs.iter().map(|n| n.value.as_str()).collect();
            let labels: Vec<&str> = job
                .runs_on
                .as_ref()
                .map(|r| r.labels.iter().map(|l| l.value.as_str()).collect())
                .unwrap_or_default();
            println!(
                "  job {id}: runs-on [{}]{}{} — {} step(s)",
                labels.join(", "),
                if needs.is_empty() {
                    String::new()
                } else {
                    format!(", needs [{}]", needs.join(", "))
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
    0
}

pub(crate) async fn execute(mut p: Prepared, json: bool, quiet: bool) -> anyhow::Result<i32> {
    if p.cfg.workflows.is_empty() {
        eprintln!("gantry: no workflow is triggered by '{}'", p.cfg.event_name);
        return Ok(0);
    }
    let store = RunStore::new(&p.cfg.root);
    let (id, number, dir) = store.allocate().context("creating the run directory")?;
    p.cfg.run_id = id.clone();
    p.cfg.run_number = number;
    crate::cmd_rerun::save_run_record(&dir, &mut p)?;

    // Needs per job id, for the critical path.
    let mut needs: HashMap<String, Vec<String>> = HashMap::new();
    for w in &p.cfg.workflows {
        for (id, j) in &w.workflow.jobs {
            needs.insert(
                id.clone(),
                j.needs.iter().map(|n| n.value.clone()).collect(),
            );
        }
    }

    let bus = EventBus::new();
    let writer = store::spawn_writer(dir.clone(), bus.subscribe_batched());
    let reporter = if json {
        gantry_engine::reporter::json::spawn(bus.subscribe_batched())
    } else {
        terminal::spawn(
            bus.subscribe_batched(),
            terminal::Options { quiet, color: true },
        )
    };
    // Step summaries for summary.md.
    let mut sums_sub = bus.subscribe();
    let sums = tokio::spawn(async move {
        let mut out: Vec<(String, String)> = Vec::new();
        while let Some(ev) = sums_sub.recv().await {
            if let RunEvent::StepSummary { job, markdown, .. } = &*ev {
                out.push((job.to_string(), markdown.clone()));
            }
        }
        out
    });

    // SIGINT, SIGTERM, SIGHUP: cancel the run, then escalate (see signals.rs).
    let cancel = CancellationToken::new();
    let signals = crate::signals::StopOnSignals::install(cancel.clone())?;
    let run_report = delivery(&mut p, &bus, json).await?;
    let started = Instant::now();
    let root = p.cfg.root.clone();
    let outcome = gantry_engine::run::execute(p.cfg, bus.clone(), cancel).await;
    drop(signals);
    bus.close();
    drop(bus);
    if let Some(h) = run_report {
        let _ = h.await;
    }
    let step_sums = sums.await.unwrap_or_default();
    let _ = writer.join();
    let _ = reporter.join();
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => bail!(BadInput(e)),
    };
    let critical = store::critical_path(&outcome.jobs, &needs);
    let summary = store::write_summary(
        &dir,
        &id,
        &outcome,
        gantry_engine::events::millis(started.elapsed()),
        critical,
        &step_sums,
    )?;
    if !json {
        terminal::print_summary(&summary, true);
        println!("saved in {}", rel_to(&root, &dir));
    }
    Ok(match outcome.result {
        Status::Success | Status::Skipped => 0,
        _ => 1,
    })
}

/// Delivery rules from `.gantry/config.yml` (environment gates, health checks, rollback,
/// Slack): sets the run's gates, sends delivery events into the run's event stream, wires
/// `strategy: previous` ([`crate::redeploy::RunRedeploy`]) and starts the run-level Slack
/// reporter (its task ends with the event stream). Without the file every environment is
/// open and nothing is returned.
async fn delivery(
    p: &mut Prepared,
    bus: &EventBus,
    json: bool,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let builder = match gantry_delivery::from_repo(&p.cfg.root, gantry_workflow::parse_tree).await {
        Ok(Some(b)) => b,
        Ok(None) => return Ok(None),
        Err(diags) => {
            let text = diags.iter().map(|d| d.to_string()).collect::<Vec<_>>();
            bail!(BadInput(text.join("\n")));
        }
    };
    let redeploy = crate::redeploy::RunRedeploy::new(&p.cfg, &p.args, bus.subscribe());
    let delivery = Arc::new(
        builder
            .secrets(p.cfg.secrets.clone())
            .print_events(!json)
            .run_events(bus.clone())
            .redeploy(redeploy)
            .build(),
    );
    p.cfg.gates = delivery.clone();
    let actor = p
        .cfg
        .actor
        .clone()
        .unwrap_or_else(|| gantry_engine::context::GitInfo::discover(&p.cfg.root).actor);
    let ctx = gantry_delivery::RunReportContext {
        actor,
        run_url: None,
    };
    Ok(Some(gantry_delivery::spawn_run_reporter(
        delivery,
        bus.subscribe(),
        ctx,
    )))
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
            let p = prepare(args, IndexMap::new())?;
            if dry {
                return Ok(dry_run(&p.cfg));
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
