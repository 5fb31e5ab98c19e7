//! The SQL store as the run session's [`RunStore`]: the server allocated the run when the
//! webhook (or API call) queued it, so `begin` only hands back that id and the recorder,
//! which is `store_exec`'s event subscriber plus the job results and outputs a later
//! "re-run failed jobs" reuses.

use std::collections::HashMap;
use std::sync::Arc;

use gantry_engine::events::{EventBus, JobOrigins, RunEvent, Status, Subscription};
use gantry_engine::masker::Masker;
use gantry_engine::run::ReusedJob;
use gantry_session::{Pending, RunSlot, RunStart, RunStore, StoreError as SessionStoreError};
use indexmap::IndexMap;
use sqlx::Row;

use crate::state::App;
use crate::store::{Result, Store};
use crate::store_exec;
use crate::store_runs::RunRecord;

/// One queued run of the SQL store, as the session records it.
pub struct SqlRunStore {
    pub app: Arc<App>,
    pub run: RunRecord,
    /// Every secret value of the run: stored log text is masked again with it.
    pub masker: Arc<Masker>,
}

impl RunStore for SqlRunStore {
    fn begin(&self, _start: &RunStart<'_>) -> std::result::Result<RunSlot, SessionStoreError> {
        let (app, run, masker) = (self.app.clone(), self.run.clone(), self.masker.clone());
        let location = format!(
            "{}/{}/actions/runs/{}",
            app.cfg.url.trim_end_matches('/'),
            run.repo,
            run.id
        );
        let recorder = move |bus: &EventBus| {
            let outputs = tokio::spawn(record_outputs(
                app.clone(),
                run.id,
                run.run_attempt,
                bus.subscribe(),
            ));
            let events = tokio::spawn(store_exec::record_events(
                app,
                run.repo.clone(),
                run.id,
                run.run_attempt,
                masker,
                bus.subscribe(),
            ));
            Pending::Task(tokio::spawn(async move {
                let _ = outputs.await;
                let _ = events.await;
            }))
        };
        Ok(RunSlot {
            id: self.run.id.to_string(),
            number: u64::try_from(self.run.run_number).unwrap_or(0),
            location: location.into(),
            recorder: Box::new(recorder),
        })
    }
}

/// Records each finished job's result and outputs under its workflow and job id.
async fn record_outputs(app: Arc<App>, run_id: i64, attempt: i64, mut events: Subscription) {
    let mut origins = JobOrigins::default();
    while let Some(ev) = events.recv().await {
        let origin = origins.track(&ev);
        if let (
            Some((workflow, job_id)),
            RunEvent::JobFinished {
                job,
                result,
                outputs,
                ..
            },
        ) = (origin, &*ev)
        {
            let saved = app
                .store
                .save_job_outputs(run_id, attempt, workflow, job_id, *result, outputs)
                .await;
            if let Err(e) = saved {
                tracing::error!(run_id, "recording the outputs of {job}: {e}");
            }
        }
    }
}

impl Store {
    pub async fn save_job_outputs(
        &self,
        run_id: i64,
        attempt: i64,
        workflow: &str,
        job_id: &str,
        result: Status,
        outputs: &IndexMap<String, String>,
    ) -> Result<()> {
        let outputs = serde_json::to_string(outputs).unwrap_or_else(|_| "{}".into());
        sqlx::query(
            "INSERT INTO job_outputs (run_id, attempt, workflow, job_id, result, outputs) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(run_id)
        .bind(attempt)
        .bind(workflow)
        .bind(job_id)
        .bind(result.as_str())
        .bind(outputs)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// What attempt `attempt` of a run re-uses from the attempt before it: the jobs that
    /// succeeded (every leg) there and that this attempt does not list (a "re-run failed
    /// jobs" attempt lists only the failed jobs and their dependents). Empty for a first
    /// attempt and for a full re-run.
    pub async fn reused_jobs(
        &self,
        run_id: i64,
        attempt: i64,
    ) -> Result<HashMap<(String, String), ReusedJob>> {
        if attempt <= 1 {
            return Ok(HashMap::new());
        }
        let listed: Vec<String> = self
            .run_jobs(run_id, attempt)
            .await?
            .into_iter()
            .map(|j| j.key)
            .collect();
        let rows = sqlx::query(
            "SELECT workflow, job_id, result, outputs FROM job_outputs \
             WHERE run_id = $1 AND attempt = $2",
        )
        .bind(run_id)
        .bind(attempt - 1)
        .fetch_all(&self.read)
        .await?;
        let mut reused: HashMap<(String, String), ReusedJob> = HashMap::new();
        let mut failed: Vec<(String, String)> = Vec::new();
        for r in &rows {
            let key: (String, String) = (r.try_get(0)?, r.try_get(1)?);
            let result: String = r.try_get(2)?;
            let outputs: String = r.try_get(3)?;
            if listed.contains(&key.1) {
                continue;
            }
            if result != "success" && result != "skipped" {
                failed.push(key);
                continue;
            }
            let outputs: IndexMap<String, String> =
                serde_json::from_str(&outputs).unwrap_or_default();
            let entry = reused.entry(key).or_insert_with(|| ReusedJob {
                result: Status::Success,
                outputs: IndexMap::new(),
            });
            if result == "skipped" && entry.outputs.is_empty() {
                entry.result = Status::Skipped;
            } else {
                entry.result = Status::Success;
            }
            entry.outputs.extend(outputs);
        }
        for key in failed {
            reused.remove(&key);
        }
        Ok(reused)
    }
}
