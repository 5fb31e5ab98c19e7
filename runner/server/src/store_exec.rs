//! The run store as a subscriber of a run's events: jobs, steps, logs and the run's
//! conclusion written as the engine reports them, in GitHub's terms, each write followed by
//! a [`LiveEvent`]. Also the store statements only the executor needs (claiming a queued
//! run, the restart sweep).

use std::collections::HashMap;
use std::sync::Arc;

use gantry_engine::events::{RunEvent, Status, Subscription};
use gantry_engine::masker::Masker;
use sqlx::Row;

use crate::state::{App, LiveEvent};
use crate::store::{Result, Store, now};
use crate::store_reports;
use crate::store_runs::{JobRecord, NewJob, StepRecord};

/// Why a job that was running when the server died is failed on the next start.
pub const SERVER_STOPPED: &str = "the server stopped while this job ran";

impl Store {
    /// Moves a queued run to `in_progress` for this executor. False when another executor
    /// (or a cancel) got there first.
    pub async fn claim_run(&self, run_id: i64) -> Result<bool> {
        let t = now();
        let r = sqlx::query(
            "UPDATE runs SET status = 'in_progress', updated_at = $1 \
             WHERE id = $2 AND status = 'queued'",
        )
        .bind(&t)
        .bind(run_id)
        .execute(&self.pool)
        .await?;
        if r.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE attempts SET status = 'in_progress' WHERE run_id = $1 AND attempt = \
             (SELECT run_attempt FROM runs WHERE id = $1)",
        )
        .bind(run_id)
        .execute(&self.pool)
        .await?;
        Ok(true)
    }

    /// The event payload a run was queued with.
    pub async fn run_payload(&self, run_id: i64) -> Result<serde_json::Value> {
        let row = sqlx::query("SELECT payload FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_one(&self.read)
            .await?;
        let text: String = row.try_get(0)?;
        Ok(serde_json::from_str(&text).unwrap_or_default())
    }

    /// Adds a job the plan could not know when the run was queued (a dynamic matrix leg,
    /// a job of a called workflow).
    pub async fn add_job(&self, run_id: i64, attempt: i64, job: &NewJob) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let id = self
            .insert_job(&mut tx, run_id, attempt, job, &now())
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Gives the queued row `keep` to an engine job (`job`'s key, name and needs) and deletes
    /// the queued rows `drop`, in one transaction: a page never shows both the planned rows
    /// and the job that replaces them.
    pub async fn replace_planned(&self, keep: i64, job: &NewJob, drop: &[i64]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE jobs SET job_key = $1, name = $2, needs = $3 WHERE id = $4")
            .bind(&job.key)
            .bind(&job.name)
            .bind(serde_json::to_string(&job.needs).unwrap_or_default())
            .bind(keep)
            .execute(&mut *tx)
            .await?;
        for id in drop {
            // Only a row nothing ran in: it has no steps, log or review.
            sqlx::query("DELETE FROM jobs WHERE id = $1 AND status = 'queued'")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Marks a job started, unless the deployment gate already holds it `waiting`: the
    /// engine reports the start before it asks the gate, but the recorder may write that
    /// report after the gate's `waiting`; the gate itself sets `in_progress` on approval.
    pub async fn start_job(&self, job_id: i64) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET status = 'in_progress', \
             started_at = CASE WHEN started_at IS NULL THEN $1 ELSE started_at END \
             WHERE id = $2 AND status <> 'waiting'",
        )
        .bind(now())
        .bind(job_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn set_runner_name(&self, job_id: i64, runner: &str) -> Result<()> {
        sqlx::query("UPDATE jobs SET runner_name = $1 WHERE id = $2")
            .bind(runner)
            .bind(job_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Jobs by status across repositories (for `/metrics`).
    pub async fn job_counts(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT status, COUNT(*) FROM jobs GROUP BY status ORDER BY status")
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Runs a server left `in_progress` (it died or was killed): `(repo, id)`.
    pub async fn runs_in_progress(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT repo, id FROM runs WHERE status = 'in_progress' OR status = 'waiting' \
             ORDER BY id",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}

/// Closes a run a dead server left open: jobs that had started fail with
/// [`SERVER_STOPPED`] in their log (they are never run again by themselves: a started
/// deploy must not deploy twice), jobs that had not started are cancelled, and the run
/// completes as failed. It can be re-run through the API.
pub async fn close_interrupted(app: &App, repo: &str, run_id: i64) -> Result<()> {
    let store = &app.store;
    let attempt = store
        .get_run(repo, run_id)
        .await?
        .map_or(1, |r| r.run_attempt);
    let masker = Masker::new();
    for job in store.run_jobs(run_id, attempt).await? {
        if job.status == "completed" {
            continue;
        }
        if job.status == "queued" {
            store
                .set_job_status(job.id, "completed", Some("cancelled"))
                .await?;
        } else {
            for mut step in store.job_steps(job.id).await? {
                if step.status != "completed" {
                    step.status = "completed".into();
                    step.conclusion = Some("failure".into());
                    step.completed_at = Some(now());
                    store.set_step(job.id, &step).await?;
                }
            }
            store
                .append_log(job.id, &format!("##[error]{SERVER_STOPPED}\n"), &masker)
                .await?;
            store
                .set_job_status(job.id, "completed", Some("failure"))
                .await?;
        }
        app.announce(LiveEvent::Job {
            run_id,
            job_id: job.id,
        });
    }
    store
        .set_run_status(run_id, "completed", Some("failure"))
        .await?;
    app.announce(LiveEvent::Run {
        repo: repo.to_string(),
        run_id,
    });
    Ok(())
}

/// What the subscriber knows of one engine job.
struct JobState {
    id: i64,
    started: Option<std::time::Instant>,
    /// Step number → started time (RFC 3339).
    steps: HashMap<i64, String>,
}

/// Writes one run's events into the store until the event stream ends. `masker` holds
/// every secret value of the run: log text is masked again with it before it is stored
/// (the engine masks first; the store must never hold a secret even if a path missed).
pub async fn record_events(
    app: Arc<App>,
    repo: String,
    run_id: i64,
    attempt: i64,
    masker: Arc<Masker>,
    mut events: Subscription,
) {
    let mut rec = Recorder {
        app,
        repo,
        run_id,
        attempt,
        masker,
        rows: Vec::new(),
        jobs: HashMap::new(),
        artifacts: std::collections::HashSet::new(),
    };
    match rec.app.store.run_jobs(run_id, attempt).await {
        Ok(rows) => rec.rows = rows,
        Err(e) => tracing::error!(run_id, "reading the run's jobs: {e}"),
    }
    while let Some(ev) = events.recv().await {
        if let Err(e) = rec.apply(&ev).await {
            tracing::error!(run_id, "recording a run event: {e}");
        }
    }
    if let Err(e) = rec.finish_leftovers().await {
        tracing::error!(run_id, "closing the run's jobs: {e}");
    }
}

struct Recorder {
    app: Arc<App>,
    repo: String,
    run_id: i64,
    attempt: i64,
    masker: Arc<Masker>,
    /// The attempt's job rows; a row is taken by the first engine job that matches it.
    rows: Vec<JobRecord>,
    /// Engine job key → its row.
    jobs: HashMap<String, JobState>,
    /// The engine's ids of the artifacts already recorded.
    artifacts: std::collections::HashSet<u64>,
}

impl Recorder {
    fn run_changed(&self) {
        self.app.announce(LiveEvent::Run {
            repo: self.repo.clone(),
            run_id: self.run_id,
        });
    }

    /// A deployment outcome of this run (masked: messages may quote a command's output).
    fn outcome(
        &self,
        environment: &str,
        kind: &str,
        sha: &str,
        url: Option<&str>,
        message: &str,
    ) -> store_reports::OutcomeRecord {
        store_reports::OutcomeRecord {
            run_id: self.run_id,
            environment: environment.to_string(),
            kind: kind.into(),
            sha: sha.to_string(),
            to_sha: None,
            healthy: None,
            url: url.map(|u| self.masker.mask_text(u).into_owned()),
            message: self.masker.mask_text(message).into_owned(),
            created_at: now(),
        }
    }

    fn job_changed(&self, job_id: i64) {
        self.app.announce(LiveEvent::Job {
            run_id: self.run_id,
            job_id,
        });
    }

    /// The row for an engine job (`job_id` is the workflow's job id, `name` the leg's
    /// display name): the queued row of that job and name, else the first free row of that
    /// job, else a row planned for a call that ran otherwise ([`Recorder::stand_ins`]),
    /// else a new row.
    async fn row_for(&mut self, job_id: &str, name: &str, needs: &[String]) -> Result<i64> {
        let taken: Vec<i64> = self.jobs.values().map(|j| j.id).collect();
        let free = |r: &&JobRecord| r.key == job_id && !taken.contains(&r.id);
        let found = self
            .rows
            .iter()
            .filter(free)
            .find(|r| r.name == name)
            .or_else(|| self.rows.iter().find(free))
            .map(|r| r.id);
        if let Some(id) = found {
            return Ok(id);
        }
        let job = NewJob {
            key: job_id.to_string(),
            name: name.to_string(),
            needs: needs.to_vec(),
            labels: Vec::new(),
            environment: None,
        };
        if let [keep, drop @ ..] = self.stand_ins(job_id, name, &taken).as_slice() {
            self.app.store.replace_planned(*keep, &job, drop).await?;
            // `rows` keeps the kept row as planned: its caller name still tells which leg
            // took it.
            self.rows.retain(|r| !drop.contains(&r.id));
            self.run_changed();
            return Ok(*keep);
        }
        self.app
            .store
            .add_job(self.run_id, self.attempt, &job)
            .await
    }

    /// Free rows the engine job `job_id` (`name`) replaces, the one it takes first:
    /// - the row of the call it belongs to, when the server kept one row for a call it
    ///   could not expand (job `call/one` (`call (1) / one`) takes row `call (1)`; a matrix
    ///   known only at run time has one row `call` for all legs);
    /// - the rows planned for the callee of a caller that ends as a whole (skipped by its
    ///   `if:`, or the call failed): job `call` (`call`) takes `call / one` and the leg's
    ///   other planned rows go, as none of them will run.
    fn stand_ins(&self, job_id: &str, name: &str, taken: &[i64]) -> Vec<i64> {
        let free = |r: &&JobRecord| !taken.contains(&r.id);
        let callers: Vec<&JobRecord> = self
            .rows
            .iter()
            .filter(|r| job_id.starts_with(&format!("{}/", r.key)))
            .collect();
        if !callers.is_empty() {
            let leg = |r: &&&JobRecord| name.starts_with(&format!("{} / ", r.name));
            // A leg's row, once another job of that leg took it, is not for this job.
            let pick = if callers.iter().any(|r| leg(&r)) {
                callers.iter().filter(leg).find(|r| free(r))
            } else {
                callers.iter().find(|r| free(r))
            };
            return pick.map(|r| vec![r.id]).unwrap_or_default();
        }
        let inside = format!("{job_id}/");
        let planned: Vec<&JobRecord> = self
            .rows
            .iter()
            .filter(free)
            .filter(|r| r.key.starts_with(&inside))
            .collect();
        let leg = format!("{name} / ");
        let of_leg: Vec<i64> = planned
            .iter()
            .filter(|r| r.name.starts_with(&leg))
            .map(|r| r.id)
            .collect();
        if of_leg.is_empty() {
            // The whole matrix ended (its `if:` is false): every leg's rows.
            planned.iter().map(|r| r.id).collect()
        } else {
            of_leg
        }
    }

    async fn apply(&mut self, ev: &RunEvent) -> Result<()> {
        let store = &self.app.store;
        match ev {
            RunEvent::JobQueued {
                job,
                job_id,
                name,
                needs,
                ..
            } => {
                let id = self.row_for(job_id, name, needs).await?;
                self.jobs.insert(
                    job.to_string(),
                    JobState {
                        id,
                        started: None,
                        steps: HashMap::new(),
                    },
                );
                self.job_changed(id);
            }
            RunEvent::JobStarted { job, backend, .. } => {
                let Some(j) = self.jobs.get_mut(job.as_str()) else {
                    return Ok(());
                };
                j.started = Some(std::time::Instant::now());
                let id = j.id;
                store.start_job(id).await?;
                let runner = if backend.is_empty() {
                    "gantry"
                } else {
                    backend
                };
                store.set_runner_name(id, runner).await?;
                self.job_changed(id);
            }
            RunEvent::StepStarted { job, step, name } => {
                let Some(j) = self.jobs.get_mut(job.as_str()) else {
                    return Ok(());
                };
                let number = *step as i64 + 1;
                let t = now();
                j.steps.insert(number, t.clone());
                let id = j.id;
                let rec = StepRecord {
                    number,
                    name: name.clone(),
                    status: "in_progress".into(),
                    conclusion: None,
                    started_at: Some(t),
                    completed_at: None,
                };
                store.set_step(id, &rec).await?;
                self.job_changed(id);
            }
            RunEvent::StepFinished {
                job,
                step,
                name,
                conclusion,
                ..
            } => {
                let Some(j) = self.jobs.get(job.as_str()) else {
                    return Ok(());
                };
                let number = *step as i64 + 1;
                let t = now();
                let rec = StepRecord {
                    number,
                    name: name.clone(),
                    status: "completed".into(),
                    conclusion: Some(conclusion.as_str().into()),
                    started_at: Some(j.steps.get(&number).cloned().unwrap_or_else(|| t.clone())),
                    completed_at: Some(t),
                };
                store.set_step(j.id, &rec).await?;
                let id = j.id;
                // An `actions/upload-artifact` step leaves its files in the engine's
                // run store; the server keeps them (zipped) once the step ends.
                let data = self.app.cfg.data.clone();
                let added = store_reports::collect_artifacts(
                    store,
                    &data,
                    self.run_id,
                    &mut self.artifacts,
                )
                .await?;
                if added > 0 {
                    self.run_changed();
                }
                self.job_changed(id);
            }
            RunEvent::Annotation {
                job,
                severity,
                message,
                file,
                line,
                col,
                title,
                ..
            } => {
                let Some(j) = self.jobs.get(job.as_str()) else {
                    return Ok(());
                };
                let level = match severity.as_str() {
                    "error" => "failure",
                    "warning" => "warning",
                    _ => "notice",
                };
                let mask = |s: &str| self.masker.mask_text(s).into_owned();
                let a = store_reports::NewAnnotation {
                    level: level.into(),
                    message: mask(message),
                    title: title.as_deref().map(mask),
                    path: file.as_deref().map(mask),
                    start_line: *line,
                    start_column: *col,
                };
                store.record_annotation(self.run_id, j.id, &a).await?;
                self.job_changed(j.id);
            }
            RunEvent::StepSummary {
                job,
                step,
                markdown,
            } => {
                let Some(j) = self.jobs.get(job.as_str()) else {
                    return Ok(());
                };
                let md = self.masker.mask_text(markdown);
                store
                    .set_step_summary(self.run_id, j.id, *step as i64 + 1, &md)
                    .await?;
                self.job_changed(j.id);
            }
            RunEvent::HealthMeasurement {
                environment,
                probe,
                index,
                phase,
                status,
                value,
                latency_ms,
                message,
                time,
            } => {
                let mask = |s: &str| self.masker.mask_text(s).into_owned();
                let h = store_reports::HealthRecord {
                    run_id: self.run_id,
                    environment: environment.clone(),
                    probe: mask(probe),
                    seq: i64::from(*index),
                    phase: phase.clone(),
                    status_code: status.map(i64::from),
                    value: value.as_deref().map(mask),
                    latency_ms: i64::try_from(*latency_ms).unwrap_or(i64::MAX),
                    message: message.as_deref().map(mask),
                    measured_at: time.clone(),
                };
                store.record_health(&h).await?;
                self.run_changed();
            }
            RunEvent::DeploymentSucceeded {
                environment,
                sha,
                url,
            } => {
                let o = self.outcome(environment, "succeeded", sha, url.as_deref(), "");
                store.record_outcome(&o).await?;
                self.run_changed();
            }
            RunEvent::DeploymentFailed {
                environment,
                sha,
                message,
            } => {
                let o = self.outcome(environment, "failed", sha, None, message);
                store.record_outcome(&o).await?;
                self.run_changed();
            }
            RunEvent::RolledBack {
                environment,
                failed_sha,
                to_sha,
                healthy,
                message,
            } => {
                let mut o = self.outcome(environment, "rolled_back", failed_sha, None, message);
                o.to_sha = to_sha.clone();
                o.healthy = *healthy;
                store.record_outcome(&o).await?;
                self.run_changed();
            }
            RunEvent::Log { job, text, .. } => {
                let Some(j) = self.jobs.get(job.as_str()) else {
                    return Ok(());
                };
                let masked = self.masker.mask_text(text);
                let seq = store.append_log(j.id, &masked, &self.masker).await?;
                self.app.announce(LiveEvent::Log {
                    job_id: j.id,
                    seq,
                    text: Arc::from(masked.as_ref()),
                });
            }
            RunEvent::JobFinished { job, result, .. } => {
                let Some(j) = self.jobs.get(job.as_str()) else {
                    return Ok(());
                };
                if let Some(s) = j.started {
                    self.app
                        .exec_metrics
                        .job_finished(s.elapsed().as_secs_f64());
                }
                store
                    .set_job_status(j.id, "completed", Some(result.as_str()))
                    .await?;
                self.job_changed(j.id);
            }
            RunEvent::RunFinished { result, .. } => {
                // A run cancelled through the API stays cancelled, whatever its stopped
                // steps reported (as on GitHub).
                let cancelled = store
                    .get_run(&self.repo, self.run_id)
                    .await?
                    .is_some_and(|r| r.conclusion.as_deref() == Some("cancelled"));
                let conclusion = match result {
                    _ if cancelled => "cancelled",
                    Status::Skipped => "skipped",
                    other => other.as_str(),
                };
                store
                    .set_run_status(self.run_id, "completed", Some(conclusion))
                    .await?;
                self.app.announce(LiveEvent::Run {
                    repo: self.repo.clone(),
                    run_id: self.run_id,
                });
            }
            _ => {}
        }
        Ok(())
    }

    /// Rows no engine job took (a job the run never reached: the run failed to start, or
    /// was cancelled first) are closed, so no job stays queued under a completed run.
    async fn finish_leftovers(&mut self) -> Result<()> {
        let rows = self.app.store.run_jobs(self.run_id, self.attempt).await?;
        for r in rows.iter().filter(|r| r.status != "completed") {
            let conclusion = if r.status == "queued" {
                "skipped"
            } else {
                "cancelled"
            };
            self.app
                .store
                .set_job_status(r.id, "completed", Some(conclusion))
                .await?;
            self.job_changed(r.id);
        }
        Ok(())
    }
}
