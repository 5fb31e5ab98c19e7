//! What every request handler shares: the config, the store, per-repository mirror locks,
//! and the stream of live changes that open pages follow.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{Mutex, Notify, broadcast};

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
}

impl App {
    pub fn new(cfg: ServerConfig, store: Store) -> Arc<App> {
        Arc::new(App {
            cfg,
            store,
            mirror_locks: Mutex::new(HashMap::new()),
            runs_queued: Notify::new(),
            live: broadcast::channel(4096).0,
        })
    }

    /// Tell open pages about a change (no receivers is fine).
    pub fn announce(&self, event: LiveEvent) {
        let _ = self.live.send(event);
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
