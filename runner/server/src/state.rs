//! What every request handler shares: the config, the store, per-repository mirror locks.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{Mutex, Notify};

use crate::config::ServerConfig;
use crate::store::Store;

pub struct App {
    pub cfg: ServerConfig,
    pub store: Store,
    /// One fetch at a time into a repository's mirror.
    mirror_locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Woken when a run is queued (for the run launcher).
    pub runs_queued: Notify,
}

impl App {
    pub fn new(cfg: ServerConfig, store: Store) -> Arc<App> {
        Arc::new(App {
            cfg,
            store,
            mirror_locks: Mutex::new(HashMap::new()),
            runs_queued: Notify::new(),
        })
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
