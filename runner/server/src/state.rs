//! What every request handler shares: the config, the store, per-repository mirror locks,
//! and the stream of live changes that open pages follow.

use std::collections::HashMap;
use std::sync::Arc;

use gantry_engine::concurrency::Groups;
use gantry_engine::run::SharedLimits;
use tokio::sync::{Mutex, Notify, Semaphore, broadcast};
use tokio_util::sync::CancellationToken;

use crate::config::ServerConfig;
use crate::store::Store;

/// A change worth showing at once on open pages (the web UI's server-sent events). Sent
/// after the change is in the store, so a page that reloads on it reads the new state.
/// Log text is masked before it is sent, as before it is stored.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// A run was queued, started, finished, cancelled or re-run.
    Run { repo: String, run_id: i64 },
    /// A job or one of its steps changed status.
    Job { run_id: i64, job_id: i64 },
    /// A chunk of a job's log, stored under `seq` (the SSE event id, for `Last-Event-ID`).
    Log {
        job_id: i64,
        seq: i64,
        text: Arc<str>,
    },
    /// A deployment review was requested, decided or abandoned.
    Approval { run_id: i64 },
}

pub struct App {
    pub cfg: ServerConfig,
    pub store: Store,
    /// One fetch at a time into a repository's mirror.
    mirror_locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Woken when a run is queued (for the run launcher).
    pub runs_queued: Notify,
    /// Live changes; receivers that fall behind get `Lagged` and reload from the store.
    pub live: broadcast::Sender<LiveEvent>,
    /// Runs executing now, by run id: the token that stops one (API cancel, shutdown).
    pub running: std::sync::Mutex<HashMap<i64, CancellationToken>>,
    /// Figures of the executor for `/metrics` (job durations, pickup latency).
    pub exec_metrics: crate::exec_metrics::ExecMetrics,
    /// `executor.capacity` job slots, shared by every run executing here.
    pub job_slots: Arc<Semaphore>,
    /// Job-level concurrency groups, one set per repository, shared by its runs.
    job_groups: std::sync::Mutex<HashMap<String, Arc<Groups>>>,
    /// Workflow-level concurrency groups across runs.
    pub run_groups: crate::concurrency::RunGroups,
    /// Accepted deliveries this server is processing (a stop waits for them a little).
    pub processing: crate::processing::InFlight,
}

impl App {
    pub fn new(cfg: ServerConfig, store: Store) -> Arc<App> {
        Arc::new(App {
            store,
            mirror_locks: Mutex::new(HashMap::new()),
            runs_queued: Notify::new(),
            live: broadcast::channel(4096).0,
            running: std::sync::Mutex::new(HashMap::new()),
            exec_metrics: Default::default(),
            job_slots: Arc::new(Semaphore::new(cfg.executor_capacity.max(1))),
            job_groups: Default::default(),
            run_groups: Default::default(),
            processing: Default::default(),
            cfg,
        })
    }

    /// What the runs of `repo` share: the server's job slots, the repository's job-level
    /// concurrency groups.
    pub fn limits_for(&self, repo: &str) -> SharedLimits {
        let groups = self
            .job_groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(repo.to_string())
            .or_default()
            .clone();
        SharedLimits {
            job_slots: self.job_slots.clone(),
            groups,
        }
    }

    /// Tell open pages about a change (no receivers is fine).
    pub fn announce(&self, event: LiveEvent) {
        let _ = self.live.send(event);
    }

    /// Stops a run that executes here, as Ctrl-C stops `gantry run`. False when it does
    /// not execute on this server (queued, finished).
    pub fn cancel_running(&self, run_id: i64) -> bool {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        match running.get(&run_id) {
            Some(t) => {
                t.cancel();
                true
            }
            None => false,
        }
    }

    pub async fn mirror_lock(&self, repo: &str) -> Arc<Mutex<()>> {
        self.mirror_locks
            .lock()
            .await
            .entry(repo.to_string())
            .or_default()
            .clone()
    }
}
