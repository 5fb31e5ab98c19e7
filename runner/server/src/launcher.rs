//! The run launcher of `gantry serve`: takes queued runs from the store, oldest first, at
//! most `executor.capacity` at a time, checks each out from the repository's mirror and
//! executes it with the engine, the store subscribed to its events.
//!
//! On start it first closes the runs a dead server left `in_progress` (see
//! [`store_exec::close_interrupted`]); on shutdown it cancels what runs, as Ctrl-C does in
//! `gantry run`, and waits until that is recorded.

use std::collections::HashMap;
use std::sync::Arc;

use indexmap::IndexMap;
use std::time::Duration;

use gantry_engine::backend::Placement;
use gantry_engine::events::EventBus;
use gantry_engine::masker::Masker;
use gantry_session::{GateSource, RunRequest, Session, WorkflowFiles, WorkflowSource};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::concurrency::RunGroup;
use crate::config::{LabelTarget, Repository};
use crate::gate::delivery::RunDelivery;
use crate::state::{App, LiveEvent};
use crate::store_exec;
use crate::store_runs::RunRecord;
use crate::store_session::SqlRunStore;
use crate::{mirror, workspace};

/// How often the queue is looked at without a wake-up (a run queued by another server
/// process sharing the database, a missed notification).
const POLL: Duration = Duration::from_secs(2);
/// How long shutdown waits for cancelled runs to be recorded.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("repository {0} is not in the server config")]
    UnknownRepository(String),
    #[error(transparent)]
    Mirror(#[from] mirror::MirrorError),
    #[error(transparent)]
    Workspace(#[from] workspace::WorkspaceError),
    #[error("{path} is not in commit {sha}")]
    MissingWorkflow { path: String, sha: String },
    #[error("{path} at {sha} is not a valid workflow:\n{problems}")]
    InvalidWorkflow {
        path: String,
        sha: String,
        problems: String,
    },
    #[error("the run could not start: {0}")]
    Engine(String),
    #[error("the repository's .gantry/config.yml is not valid:\n{0}")]
    DeliveryConfig(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("checkout task: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// The running launcher; [`Launcher::shutdown`] stops it.
pub struct Launcher {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Launcher {
    /// Sweeps what a dead server left, then starts queued runs until shutdown.
    pub fn start(app: Arc<App>) -> Launcher {
        let stop = CancellationToken::new();
        let task = tokio::spawn(run_queue(app, stop.clone()));
        Launcher { stop, task }
    }

    /// Stops taking runs, cancels the running ones and waits until they are recorded.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn run_queue(app: Arc<App>, stop: CancellationToken) {
    sweep(&app).await;
    // Runs at once; their jobs share the server's `executor.capacity` job slots.
    let capacity = app.cfg.executor_capacity.max(1);
    let slots = Arc::new(Semaphore::new(capacity));
    let mut runs = JoinSet::new();
    let mut groups = HashMap::new();
    loop {
        if let Err(e) = start_queued(&app, &slots, &mut runs, &mut groups).await {
            tracing::error!("reading the run queue: {e}");
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = app.runs_queued.notified() => {}
            // A run finished: a slot is free.
            Some(_) = runs.join_next(), if !runs.is_empty() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
    // Shutdown: stop every run as Ctrl-C would; the engine records them cancelled.
    let tokens: Vec<CancellationToken> = app
        .running
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .cloned()
        .collect();
    for t in tokens {
        t.cancel();
    }
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while runs.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("runs still stopping after {SHUTDOWN_GRACE:?}; the next start closes them");
    }
}

/// Closes the runs a dead server left open (restart safety); queued runs stay queued.
async fn sweep(app: &Arc<App>) {
    let open = match app.store.runs_in_progress().await {
        Ok(o) => o,
        Err(e) => {
            tracing::error!("reading interrupted runs: {e}");
            return;
        }
    };
    for (repo, id) in open {
        tracing::warn!(run_id = id, %repo, "{}", store_exec::SERVER_STOPPED);
        if let Err(e) = store_exec::close_interrupted(app, &repo, id).await {
            tracing::error!(run_id = id, "closing an interrupted run: {e}");
        }
        let _ = std::fs::remove_dir_all(workspace::work_dir(&app.cfg.data, id));
    }
}

/// How many queued runs one look at the queue considers.
const QUEUE_WINDOW: i64 = 256;

/// Starts queued runs, oldest first, while a slot is free. A run of a workflow-level
/// concurrency group starts only when its group runs nothing ([`crate::concurrency`]);
/// the groups see every queued run, also when no slot is free, so a newer run replaces
/// an older pending one at once.
async fn start_queued(
    app: &Arc<App>,
    slots: &Arc<Semaphore>,
    runs: &mut JoinSet<()>,
    groups: &mut HashMap<i64, Option<RunGroup>>,
) -> Result<(), crate::store::StoreError> {
    for (repo, id) in app.store.queued_runs(QUEUE_WINDOW).await? {
        let Some(run) = app.store.get_run(&repo, id).await? else {
            continue;
        };
        let group = match groups.get(&id) {
            Some(g) => g.clone(),
            None => {
                let g = group_of(app, &run).await;
                groups.insert(id, g.clone());
                g
            }
        };
        if let Some(g) = &group {
            let entry = app.run_groups.enter(&repo, g, id);
            if let Some(old) = entry.cancel_pending {
                cancel_by_group(app, &repo, old, g, false).await?;
                groups.remove(&old);
            }
            if let Some(running) = entry.cancel_running {
                cancel_by_group(app, &repo, running, g, true).await?;
            }
            if !entry.may_start {
                continue;
            }
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue;
        };
        if !app.store.claim_run(id).await? {
            continue;
        }
        groups.remove(&id);
        if let Some(g) = &group {
            app.run_groups.started(&repo, g, id);
        }
        app.exec_metrics
            .run_picked_up(seconds_since(&run.run_started_at));
        app.announce(LiveEvent::Run {
            repo: repo.clone(),
            run_id: id,
        });
        let cancel = CancellationToken::new();
        app.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, cancel.clone());
        let app = app.clone();
        runs.spawn(async move {
            let timer = crate::limits::start_run_timer(app.clone(), run.clone(), cancel.clone());
            let result = execute_run(app.clone(), &run, cancel).await;
            timer.abort();
            if let Err(e) = result {
                tracing::error!(run_id = run.id, "{e}");
                if let Err(e2) = fail_run(&app, &run, &e.to_string()).await {
                    tracing::error!(run_id = run.id, "recording the failure: {e2}");
                }
            }
            app.running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&run.id);
            if let Some(g) = &group {
                app.run_groups.left(&run.repo, g, run.id);
            }
            drop(permit);
        });
    }
    Ok(())
}

/// The workflow-level concurrency group of a queued run, from its workflow at its commit.
async fn group_of(app: &Arc<App>, run: &RunRecord) -> Option<RunGroup> {
    let repo = app.cfg.repository(&run.repo)?;
    let mirror_dir = mirror::mirror_dir(&app.cfg.data, &repo.name);
    let dirs = repo.forge.workflow_dirs();
    let (sha, path) = (run.head_sha.clone(), run.workflow_path.clone());
    // Under the mirror's lock: a repack after a fetch replaces the packs being read.
    let lock = app.mirror_lock(&repo.name).await;
    let _held = lock.lock().await;
    let text = tokio::task::spawn_blocking(move || {
        let bare = git2::Repository::open_bare(&mirror_dir).ok()?;
        mirror::workflows_at(&bare, &sha, dirs)
            .ok()?
            .into_iter()
            .find(|f| f.path == path)
            .map(|f| f.text)
    })
    .await
    .ok()??;
    let workflow = gantry_workflow::parse_workflow(&run.workflow_path, &text).value?;
    workflow.concurrency.as_ref()?;
    let payload = app.store.run_payload(run.id).await.ok()?;
    crate::concurrency::run_group(&workflow, run, &payload, &repo.vars)
}

/// Cancels run `id` for its concurrency group: a pending (queued) run in the store, a
/// running one (`cancel-in-progress`) also in the executor, as the API's cancel does. The
/// reason goes into the run's first job log, as GitHub shows it.
async fn cancel_by_group(
    app: &Arc<App>,
    repo: &str,
    id: i64,
    group: &RunGroup,
    running: bool,
) -> Result<(), crate::store::StoreError> {
    let line = crate::concurrency::cancelled_line(&group.name);
    tracing::info!(run_id = id, "{line}");
    if let Some(run) = app.store.get_run(repo, id).await?
        && let Some(job) = app.store.run_jobs(id, run.run_attempt).await?.first()
    {
        app.store
            .append_log(job.id, &format!("##[error]{line}\n"), &Masker::new())
            .await?;
    }
    if app.store.cancel_run(id).await? {
        app.announce(LiveEvent::Run {
            repo: repo.to_string(),
            run_id: id,
        });
    }
    if running {
        app.cancel_running(id);
    } else {
        app.run_groups.left(repo, group, id);
    }
    Ok(())
}

fn seconds_since(rfc3339: &str) -> f64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| {
            (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                .to_std()
                .unwrap_or_default()
                .as_secs_f64()
        })
        .unwrap_or(0.0)
}

/// Executes a queued run through the run session (`gantry-session`), as `gantry run`
/// does: checkout, workflow from the commit's tree, secrets and variables of the
/// repository, `runs-on` labels and job slots of the server config, the server's gates
/// (protection rules from the server config; health checks, rollback and Slack from the
/// commit's `.gantry/config.yml`), the SQL store recording the events.
pub async fn execute_run(
    app: Arc<App>,
    run: &RunRecord,
    cancel: CancellationToken,
) -> Result<(), LaunchError> {
    let repo = app
        .cfg
        .repository(&run.repo)
        .ok_or_else(|| LaunchError::UnknownRepository(run.repo.clone()))?
        .clone();
    let (ws, text) = checkout(&app, &repo, run).await?;
    let run_url = run_url(&app, run);
    let history = history(&app, &repo.name).await;
    // An invalid `.gantry/config.yml` adds nothing (protection never depended on it).
    let delivery = match RunDelivery::load(&ws.root, &repo, history, run.id.to_string(), run_url) {
        Ok(d) => d.map(Arc::new),
        Err(e) => {
            tracing::warn!(run_id = run.id, "{}", LaunchError::DeliveryConfig(e.0));
            None
        }
    };

    let mut req = RunRequest::new(ws.root.clone(), run.event.clone());
    req.event = app.store.run_payload(run.id).await?;
    req.workflows = WorkflowFiles::Given(vec![WorkflowSource {
        display: run.workflow_path.clone(),
        rel_path: run.workflow_path.clone(),
        text: Some(text),
    }]);
    req.actor = Some(run.actor.clone());
    req.secrets = repo
        .secrets
        .iter()
        .map(|(k, v)| (k.clone(), v.expose().to_string()))
        .collect();
    // Environment secrets too: the gate withholds them (`withholds_secret`), so the engine
    // takes them out of the run-wide secrets and out of the server's own environment that
    // host steps inherit (the server reads them from its environment). Jobs get them only
    // through the gate's admission.
    for env in repo.environments.values() {
        for (k, v) in &env.secrets {
            req.secrets.insert(k.clone(), v.expose().to_string());
        }
    }
    req.vars = repo.vars.clone();
    req.options.platforms = app
        .cfg
        .labels
        .iter()
        .map(|(label, target)| {
            let p = match target {
                LabelTarget::Host => Placement::host(),
                LabelTarget::Docker(image) => Placement::image(image.clone()),
            };
            (label.clone(), p)
        })
        .collect();
    req.options.max_jobs = Some(app.cfg.executor_capacity.max(1));
    req.options.shared = Some(app.limits_for(&run.repo));
    req.options.host_env = Some(host_step_env(std::env::vars()));
    req.options.job_timeout_cap = Some(crate::limits::job_timeout_cap(&app));
    // The server's workers answer webhooks and pages while jobs start and end.
    req.options.blocking_job_dirs = true;
    req.invocation = serde_json::json!({ "server_run": run.id, "attempt": run.run_attempt });
    // "Re-run failed jobs": the jobs this attempt does not list keep their results.
    req.reuse = app.store.reused_jobs(run.id, run.run_attempt).await?;
    let reporter: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>> = Arc::default();
    let gates = {
        let (app, record, delivery, reporter) =
            (app.clone(), run.clone(), delivery.clone(), reporter.clone());
        move |bus: &EventBus| {
            if let Some(d) = &delivery {
                *reporter.lock().unwrap() = Some(d.attach(bus, &record.actor));
            }
            crate::gate::for_run(app.clone(), &record, delivery.clone())
        }
    };
    req.gates = GateSource::GivenWithEvents(Arc::new(gates));

    // Every secret value the run may print, environment secrets included.
    let masker = Arc::new(Masker::new());
    masker.add_secrets(repo.secrets.values().map(|s| s.expose()));
    // The mirror's token never reaches a job; masked all the same, should a URL show it.
    masker.add_secrets(repo.token.iter().map(|s| s.expose()));
    for env in repo.environments.values() {
        masker.add_secrets(env.secrets.values().map(|s| s.expose()));
    }
    let store = SqlRunStore {
        app: app.clone(),
        run: run.clone(),
        masker,
    };
    let prepared = Session::prepare(req).map_err(|e| LaunchError::Engine(e.to_string()))?;
    let outcome = prepared.execute(&store, Vec::new(), cancel).await;
    // The run-level Slack message (it ends with the event stream).
    let pending = reporter.lock().unwrap().take();
    if let Some(h) = pending {
        let _ = h.await;
    }
    // Removing the checkout is blocking file-system work: not on a worker that answers HTTP.
    let _ = tokio::task::spawn_blocking(move || drop(ws)).await;
    outcome
        .map(|_| ())
        .map_err(|e| LaunchError::Engine(e.to_string()))
}

/// The run's page on the server (`url:` of the server config): the link in Slack.
pub fn run_url(app: &App, run: &RunRecord) -> String {
    format!(
        "{}/{}/actions/runs/{}",
        app.cfg.url.trim_end_matches('/'),
        run.repo,
        run.id
    )
}

/// The repository's deployment history on the server (`data/history/<owner>/<name>.db`):
/// what a rollback returns to, what the history's records of each deployment keep.
async fn history(app: &App, repo: &str) -> Option<gantry_delivery::history::History> {
    let dir = app.cfg.data.join("history");
    let file = dir.join(format!("{}.db", repo.replace('/', "__")));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        tracing::warn!("deployment history of {repo} disabled: {e}");
        return None;
    }
    let url = format!("sqlite://{}?mode=rwc", file.display());
    match gantry_delivery::history::History::connect(&url).await {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!("deployment history of {repo} disabled: {e}");
            None
        }
    }
}

/// The run's workspace at its commit and the text of its workflow from that commit.
async fn checkout(
    app: &Arc<App>,
    repo: &Repository,
    run: &RunRecord,
) -> Result<(workspace::Workspace, String), LaunchError> {
    let lock = app.mirror_lock(&repo.name).await;
    let _held = lock.lock().await;
    let data = app.cfg.data.clone();
    let mirror_dir = mirror::mirror_dir(&data, &repo.name);
    let dirs = repo.forge.workflow_dirs();
    let origin = format!("{}/{}.git", app.cfg.url.trim_end_matches('/'), repo.name);
    let (id, sha, git_ref, path) = (
        run.id,
        run.head_sha.clone(),
        run.git_ref.clone(),
        run.workflow_path.clone(),
    );
    tokio::task::spawn_blocking(move || {
        let bare = git2::Repository::open_bare(&mirror_dir).map_err(mirror::MirrorError::from)?;
        let text = mirror::workflows_at(&bare, &sha, dirs)?
            .into_iter()
            .find(|f| f.path == path)
            .map(|f| f.text)
            .ok_or_else(|| LaunchError::MissingWorkflow {
                path: path.clone(),
                sha: sha.clone(),
            })?;
        let ws = workspace::checkout(&data, id, &mirror_dir, &sha, &git_ref, &origin)?;
        Ok((ws, text))
    })
    .await?
}

/// A run that could not start: its jobs fail, the first job's log says why, the run
/// completes as failed.
async fn fail_run(app: &App, run: &RunRecord, why: &str) -> Result<(), crate::store::StoreError> {
    let jobs = app.store.run_jobs(run.id, run.run_attempt).await?;
    let masker = Masker::new();
    for (i, job) in jobs.iter().enumerate() {
        if job.status == "completed" {
            continue;
        }
        if i == 0 {
            app.store
                .append_log(job.id, &format!("##[error]{why}\n"), &masker)
                .await?;
        }
        app.store
            .set_job_status(job.id, "completed", Some("failure"))
            .await?;
    }
    app.store
        .set_run_status(run.id, "completed", Some("failure"))
        .await?;
    app.announce(LiveEvent::Run {
        repo: run.repo.clone(),
        run_id: run.id,
    });
    Ok(())
}

/// What host steps inherit from the server's environment: the basics a shell and common
/// tools need, nothing else. The server's own variables (API tokens, webhook secrets, the
/// database URL, whatever `${NAME}` the config reads) never reach a job.
pub fn host_step_env(
    server_env: impl Iterator<Item = (String, String)>,
) -> IndexMap<String, String> {
    const PASSED: &[&str] = &[
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "DOCKER_HOST",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
    ];
    server_env
        .filter(|(k, _)| PASSED.contains(&k.as_str()) || k.starts_with("LC_"))
        .collect()
}
