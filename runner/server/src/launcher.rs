//! The run launcher of `gantry serve`: takes queued runs from the store, oldest first, at
//! most `executor.capacity` at a time, checks each out from the repository's mirror and
//! executes it with the engine, the store subscribed to its events.
//!
//! On start it first closes the runs a dead server left `in_progress` (see
//! [`store_exec::close_interrupted`]); on shutdown it cancels what runs, as Ctrl-C does in
//! `gantry run`, and waits until that is recorded.

use std::sync::Arc;

use indexmap::IndexMap;
use std::time::Duration;

use gantry_engine::events::EventBus;
use gantry_engine::mask::Masker;
use gantry_engine::run::{Platform, RunConfig, WorkflowEntry};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{LabelTarget, Repository};
use crate::state::{App, LiveEvent};
use crate::store_exec;
use crate::store_runs::RunRecord;
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
    let capacity = app.cfg.executor_capacity.max(1);
    let slots = Arc::new(Semaphore::new(capacity));
    let mut runs = JoinSet::new();
    loop {
        if let Err(e) = start_queued(&app, &slots, &mut runs, capacity).await {
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

/// Starts queued runs, oldest first, while a slot is free.
async fn start_queued(
    app: &Arc<App>,
    slots: &Arc<Semaphore>,
    runs: &mut JoinSet<()>,
    capacity: usize,
) -> Result<(), crate::store::StoreError> {
    if slots.available_permits() == 0 {
        return Ok(());
    }
    for (repo, id) in app.store.queued_runs(capacity as i64 * 4).await? {
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            break;
        };
        let Some(run) = app.store.get_run(&repo, id).await? else {
            continue;
        };
        if !app.store.claim_run(id).await? {
            continue;
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
            if let Err(e) = execute_run(app.clone(), &run, cancel).await {
                tracing::error!(run_id = run.id, "{e}");
                if let Err(e2) = fail_run(&app, &run, &e.to_string()).await {
                    tracing::error!(run_id = run.id, "recording the failure: {e2}");
                }
            }
            app.running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&run.id);
            drop(permit);
        });
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

/// Builds the run's configuration and executes it: checkout, workflow from the commit's
/// tree, secrets and variables of the repository, `runs-on` labels of the server config,
/// the server's gates; the store records the events. Everything between a queued run and
/// the engine is in this one function.
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
    let loaded = gantry_workflow::parse_workflow(&run.workflow_path, &text);
    let problems: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == gantry_workflow::Severity::Error)
        .map(|d| d.to_string())
        .collect();
    let workflow = match loaded.value {
        Some(w) if problems.is_empty() => w,
        _ => {
            return Err(LaunchError::InvalidWorkflow {
                path: run.workflow_path.clone(),
                sha: run.head_sha.clone(),
                problems: problems.join("\n"),
            });
        }
    };
    let mut cfg = RunConfig::new(
        ws.root.clone(),
        vec![WorkflowEntry {
            workflow,
            rel_path: run.workflow_path.clone(),
        }],
    );
    cfg.event_name = run.event.clone();
    cfg.event = app.store.run_payload(run.id).await?;
    cfg.actor = Some(run.actor.clone());
    cfg.secrets = repo
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
            cfg.secrets.insert(k.clone(), v.expose().to_string());
        }
    }
    cfg.vars = repo.vars.clone();
    cfg.platforms = app
        .cfg
        .labels
        .iter()
        .map(|(label, target)| {
            let p = match target {
                LabelTarget::Host => Platform::Host,
                LabelTarget::Docker(image) => Platform::Image(image.clone()),
            };
            (label.clone(), p)
        })
        .collect();
    cfg.max_jobs = app.cfg.executor_capacity.max(1);
    cfg.run_id = run.id.to_string();
    cfg.run_number = u64::try_from(run.run_number).unwrap_or(0);
    cfg.gates = crate::gate::for_run(app.clone(), run);
    cfg.host_env = Some(host_step_env(std::env::vars()));

    // Every secret value the run may print, environment secrets included.
    let masker = Arc::new(Masker::new());
    masker.add_secrets(repo.secrets.values().map(|s| s.expose()));
    for env in repo.environments.values() {
        masker.add_secrets(env.secrets.values().map(|s| s.expose()));
    }
    let bus = EventBus::new();
    let recorder = tokio::spawn(store_exec::record_events(
        app.clone(),
        run.repo.clone(),
        run.id,
        run.run_attempt,
        masker,
        bus.subscribe(),
    ));
    let outcome = gantry_engine::run::execute(cfg, bus.clone(), cancel).await;
    bus.close();
    drop(bus);
    let _ = recorder.await;
    drop(ws);
    outcome.map(|_| ()).map_err(LaunchError::Engine)
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
