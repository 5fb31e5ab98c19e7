//! What happens to an accepted delivery after the webhook's answer: its runs are planned
//! (mirror fetch, workflows at the commit) and queued in the transaction that records the
//! delivery's outcome. The delivery's row holds its payload until then, so a delivery
//! whose processing was interrupted (`kill -9`, a stop that did not wait long enough, a
//! store error) is processed again when a server starts ([`recover`]) or when the forge
//! redelivers it ([`redelivered`]); the outcome's guard (`result = 'accepted'`) makes sure
//! its runs are queued once.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::config::{Forge, Repository};
use crate::state::App;
use crate::store::StoreError;
use crate::store_deliveries::StoredDelivery;
use crate::trigger::{self, Incoming, Planned};

/// How long a stopping server waits for the deliveries it is processing; what is not done
/// by then is processed when a server starts again.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// **Test-only.** When set to a path, processing a delivery first writes `PATH.held`, then
/// waits until `PATH` exists. The end-to-end tests use it to stop or kill the server
/// while a delivery is accepted but not processed; nothing else should set it.
pub const TEST_HOLD_ENV: &str = "GANTRY_TEST_HOLD_DELIVERY";

/// The deliveries this server is processing, by row id.
#[derive(Default)]
pub struct InFlight {
    ids: Mutex<HashSet<i64>>,
    idle: Notify,
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.ids.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until nothing is being processed, for at most `limit`; false if something
    /// still is.
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.lock().is_empty() {
                return true;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.lock().is_empty();
            }
        }
    }

    /// How many deliveries are being processed now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// This server processes delivery row `id` while this lives.
pub struct Processing {
    app: Arc<App>,
    id: i64,
}

impl Processing {
    /// `None` when this server is processing that delivery already.
    pub fn begin(app: &Arc<App>, id: i64) -> Option<Processing> {
        app.processing.lock().insert(id).then(|| Processing {
            app: app.clone(),
            id,
        })
    }
}

impl Drop for Processing {
    fn drop(&mut self) {
        let mut ids = self.app.processing.lock();
        ids.remove(&self.id);
        if ids.is_empty() {
            self.app.processing.idle.notify_waiters();
        }
    }
}

/// See [`TEST_HOLD_ENV`].
async fn test_hold() {
    let Some(path) = std::env::var_os(TEST_HOLD_ENV).map(PathBuf::from) else {
        return;
    };
    let mut held = path.clone().into_os_string();
    held.push(".held");
    let _ = std::fs::write(&held, b"");
    while !path.exists() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Plans and queues accepted delivery `held`'s runs and records its outcome (with the
/// runs, in one transaction, when there are any).
pub async fn process(
    app: &Arc<App>,
    repo: &Repository,
    mut incoming: Incoming,
    delivery: String,
    held: Processing,
) {
    test_hold().await;
    let row = held.id;
    incoming.delivery_id = Some(delivery);
    let planned = trigger::plan_runs(app, repo, incoming).await;
    let recorded = match planned {
        Ok(Planned::Runs { runs, reason }) => {
            match app.store.queue_delivery_runs(row, &runs, &reason).await {
                Ok(Some(ids)) => {
                    app.runs_queued.notify_one();
                    tracing::info!(repo = %repo.name, result = "queued", runs = ?ids, reason = %reason, "delivery processed");
                    Ok(true)
                }
                Ok(None) => Ok(false),
                Err(e) => Err(e),
            }
        }
        Ok(Planned::Skipped(reason)) => finish(app, repo, row, "skipped", &reason).await,
        Ok(Planned::NoMatch(reason)) => finish(app, repo, row, "no_match", &reason).await,
        Err(e) => finish(app, repo, row, "failed", &e.to_string()).await,
    };
    match recorded {
        Ok(true) => {}
        Ok(false) => tracing::info!(
            repo = %repo.name,
            delivery = row,
            "delivery was processed elsewhere first; nothing queued here"
        ),
        // Still `accepted` with its payload: processed at the next start or redelivery.
        Err(e) => tracing::error!("recording a delivery's outcome: {e}"),
    }
    drop(held);
}

async fn finish(
    app: &App,
    repo: &Repository,
    row: i64,
    result: &str,
    reason: &str,
) -> Result<bool, StoreError> {
    tracing::info!(repo = %repo.name, result, reason = %reason, "delivery processed");
    app.store.finish_delivery(row, result, reason, &[]).await
}

/// Processes a stored delivery (from [`recover`] or [`redelivered`]): its repository from
/// the config as it is now, its payload read again as when it arrived.
async fn process_stored(app: &Arc<App>, stored: StoredDelivery, held: Processing) {
    let row = stored.id;
    let refused = |why: String| async move {
        tracing::warn!(delivery = row, "stored delivery not processed: {why}");
        if let Err(e) = app.store.finish_delivery(row, "failed", &why, &[]).await {
            tracing::error!("recording a delivery's outcome: {e}");
        }
    };
    let forge = Forge::parse(&stored.forge);
    let repo = app
        .cfg
        .repository(&stored.repo)
        .filter(|r| Some(r.forge) == forge);
    let Some(repo) = repo.cloned() else {
        let why = format!(
            "repository {} is no longer configured on this server for {}",
            stored.repo, stored.forge
        );
        return refused(why).await;
    };
    let Some(text) = stored.payload.as_deref() else {
        return refused("no payload was kept".into()).await;
    };
    let incoming = serde_json::from_str(text)
        .map_err(|e| format!("stored payload is not JSON: {e}"))
        .and_then(|p| trigger::from_webhook(repo.forge, &stored.event, p));
    match incoming {
        Ok(Some(incoming)) => {
            let delivery = stored.delivery_id.clone();
            process(app, &repo, incoming, delivery, held).await;
        }
        Ok(None) => refused(format!("event '{}' starts nothing", stored.event)).await,
        Err(e) => refused(e).await,
    }
}

/// Processes, oldest first, every delivery left accepted but not processed (by a server
/// that was killed or stopped first). Run at start-up, before the server serves.
pub async fn recover(app: &Arc<App>) -> Result<usize, StoreError> {
    let ids = app.store.unprocessed_deliveries().await?;
    let mut done = 0;
    for id in ids {
        let Some(held) = Processing::begin(app, id) else {
            continue;
        };
        // Another server on the database may have processed it meanwhile.
        let Some(stored) = app.store.stored_delivery(id).await? else {
            continue;
        };
        tracing::info!(
            delivery = %stored.delivery_id,
            repo = %stored.repo,
            "processing a delivery left unprocessed by the last server"
        );
        process_stored(app, stored, held).await;
        done += 1;
    }
    Ok(done)
}

/// A redelivery of `delivery_id` (recorded as a duplicate): when the first copy is still
/// not processed and this server is not processing it, it is processed now (a server
/// sharing the database took it and stopped). A processed delivery starts nothing.
pub async fn redelivered(app: Arc<App>, forge: Forge, delivery_id: String) {
    let claim = app
        .store
        .unprocessed_claim(forge.as_str(), &delivery_id)
        .await;
    let id = match claim {
        Ok(Some(id)) => id,
        Ok(None) => return,
        Err(e) => return tracing::error!("reading a delivery's claim: {e}"),
    };
    let Some(held) = Processing::begin(&app, id) else {
        return;
    };
    match app.store.stored_delivery(id).await {
        Ok(Some(stored)) => {
            tracing::info!(delivery = %delivery_id, "redelivered before it was processed: processing it");
            process_stored(&app, stored, held).await;
        }
        Ok(None) => {}
        Err(e) => tracing::error!("reading a stored delivery: {e}"),
    }
}
