//! Runs, attempts, jobs and steps in the store, in the terms of GitHub's Actions API
//! (`status` queued/in_progress/waiting/completed, `conclusion` success/failure/cancelled/…).

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::store::{Result, Store, now};

/// A run to create: what the webhook or the API asked for.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub repo: String,
    pub workflow_path: String,
    pub workflow_name: String,
    pub display_title: String,
    pub event: String,
    pub head_branch: String,
    pub head_sha: String,
    pub git_ref: String,
    pub actor: String,
    /// `{id, tree_id, message, timestamp, author{name,email}, committer{…}}`.
    pub head_commit: serde_json::Value,
    pub payload: serde_json::Value,
    pub delivery_id: Option<String>,
    pub jobs: Vec<NewJob>,
}

/// One job of a new run (a plan node: a job, or one matrix leg).
#[derive(Debug, Clone)]
pub struct NewJob {
    pub key: String,
    pub name: String,
    pub needs: Vec<String>,
    pub labels: Vec<String>,
    pub environment: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub id: i64,
    pub repo: String,
    pub workflow_id: i64,
    pub workflow_path: String,
    pub run_number: i64,
    pub name: String,
    pub display_title: String,
    pub event: String,
    pub head_branch: String,
    pub head_sha: String,
    pub git_ref: String,
    pub actor: String,
    pub status: String,
    pub conclusion: Option<String>,
    pub run_attempt: i64,
    pub head_commit: serde_json::Value,
    pub created_at: String,
    pub updated_at: String,
    pub run_started_at: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: i64,
    pub run_id: i64,
    pub attempt: i64,
    pub key: String,
    pub name: String,
    pub needs: Vec<String>,
    pub labels: Vec<String>,
    pub environment: Option<String>,
    pub status: String,
    pub conclusion: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub runner_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    pub number: i64,
    pub name: String,
    pub status: String,
    pub conclusion: Option<String>,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
}

/// Filters of `GET /repos/{o}/{r}/actions/runs`.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub workflow_id: Option<i64>,
    /// A status or a conclusion, as GitHub accepts both here.
    pub status: Option<String>,
    pub branch: Option<String>,
    pub event: Option<String>,
    pub actor: Option<String>,
    pub head_sha: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowRecord {
    pub id: i64,
    pub repo: String,
    pub path: String,
    pub name: String,
    pub state: String,
    pub created_at: String,
    pub updated_at: String,
}

const RUN_COLS: &str = "r.id, r.repo, r.workflow_id, w.path, r.run_number, r.name, \
    r.display_title, r.event, r.head_branch, r.head_sha, r.git_ref, r.actor, r.status, \
    r.conclusion, r.run_attempt, r.head_commit, r.created_at, r.updated_at, r.run_started_at";

const JOB_COLS: &str = "id, run_id, attempt, job_key, name, needs, labels, environment, \
    status, conclusion, created_at, started_at, completed_at, runner_name";

impl Store {
    /// The workflow's id, registering the file the first time it runs (inside `tx`: the
    /// run that needs it commits with it).
    async fn workflow_id(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        repo: &str,
        path: &str,
        name: &str,
    ) -> Result<i64> {
        let row = sqlx::query("SELECT id FROM workflows WHERE repo = $1 AND path = $2")
            .bind(repo)
            .bind(path)
            .fetch_optional(&mut **tx)
            .await?;
        if let Some(r) = row {
            sqlx::query(
                "UPDATE workflows SET name = $1, updated_at = $2 WHERE repo = $3 AND path = $4",
            )
            .bind(name)
            .bind(now())
            .bind(repo)
            .bind(path)
            .execute(&mut **tx)
            .await?;
            return Ok(r.try_get(0)?);
        }
        let id = self.next_id(&mut **tx, "workflows").await?;
        let t = now();
        sqlx::query(
            "INSERT INTO workflows (id, repo, path, name, state, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'active', $5, $5) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(repo)
        .bind(path)
        .bind(name)
        .bind(t)
        .execute(&mut **tx)
        .await?;
        let row = sqlx::query("SELECT id FROM workflows WHERE repo = $1 AND path = $2")
            .bind(repo)
            .bind(path)
            .fetch_one(&mut **tx)
            .await?;
        Ok(row.try_get(0)?)
    }

    pub async fn workflows(&self, repo: &str) -> Result<Vec<WorkflowRecord>> {
        let rows = sqlx::query(
            "SELECT id, repo, path, name, state, created_at, updated_at FROM workflows \
             WHERE repo = $1 ORDER BY id",
        )
        .bind(repo)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(WorkflowRecord {
                    id: r.try_get(0)?,
                    repo: r.try_get(1)?,
                    path: r.try_get(2)?,
                    name: r.try_get(3)?,
                    state: r.try_get(4)?,
                    created_at: r.try_get(5)?,
                    updated_at: r.try_get(6)?,
                })
            })
            .collect()
    }

    /// Creates a queued run with its first attempt and its jobs, in one transaction.
    pub async fn create_run(&self, run: &NewRun) -> Result<i64> {
        let ids = self.create_runs(std::slice::from_ref(run)).await?;
        Ok(ids[0])
    }

    /// Creates queued runs, each with its first attempt and its jobs, all in one
    /// transaction (an event's runs are queued together or not at all).
    pub async fn create_runs(&self, runs: &[NewRun]) -> Result<Vec<i64>> {
        let mut tx = self.pool.begin().await?;
        let ids = self.insert_runs(&mut tx, runs).await?;
        tx.commit().await?;
        Ok(ids)
    }

    /// Inserts queued runs (workflow, run, first attempt, jobs) inside `tx`.
    pub(crate) async fn insert_runs(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        runs: &[NewRun],
    ) -> Result<Vec<i64>> {
        let mut ids = Vec::with_capacity(runs.len());
        for run in runs {
            ids.push(self.insert_run(tx, run).await?);
        }
        Ok(ids)
    }

    async fn insert_run(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        run: &NewRun,
    ) -> Result<i64> {
        let workflow_id = self
            .workflow_id(tx, &run.repo, &run.workflow_path, &run.workflow_name)
            .await?;
        let id = self.next_id(&mut **tx, "runs").await?;
        let number = self
            .next_id(&mut **tx, &format!("run_number:{workflow_id}"))
            .await?;
        let t = now();
        sqlx::query(
            "INSERT INTO runs (id, repo, workflow_id, run_number, name, display_title, event, \
             head_branch, head_sha, git_ref, actor, status, conclusion, run_attempt, head_commit, \
             payload, delivery_id, created_at, updated_at, run_started_at) VALUES ($1, $2, $3, \
             $4, $5, $6, $7, $8, $9, $10, $11, 'queued', NULL, 1, $12, $13, $14, $15, $15, $15)",
        )
        .bind(id)
        .bind(&run.repo)
        .bind(workflow_id)
        .bind(number)
        .bind(&run.workflow_name)
        .bind(&run.display_title)
        .bind(&run.event)
        .bind(&run.head_branch)
        .bind(&run.head_sha)
        .bind(&run.git_ref)
        .bind(&run.actor)
        .bind(run.head_commit.to_string())
        .bind(run.payload.to_string())
        .bind(run.delivery_id.as_deref())
        .bind(&t)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO attempts (run_id, attempt, actor, status, conclusion, created_at) \
             VALUES ($1, 1, $2, 'queued', NULL, $3)",
        )
        .bind(id)
        .bind(&run.actor)
        .bind(&t)
        .execute(&mut **tx)
        .await?;
        for job in &run.jobs {
            self.insert_job(tx, id, 1, job, &t).await?;
        }
        Ok(id)
    }

    pub(crate) async fn insert_job(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        run_id: i64,
        attempt: i64,
        job: &NewJob,
        t: &str,
    ) -> Result<i64> {
        let job_id = self.next_id(&mut **tx, "jobs").await?;
        sqlx::query(
            "INSERT INTO jobs (id, run_id, attempt, job_key, name, needs, labels, environment, \
             status, conclusion, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', \
             NULL, $9)",
        )
        .bind(job_id)
        .bind(run_id)
        .bind(attempt)
        .bind(&job.key)
        .bind(&job.name)
        .bind(serde_json::to_string(&job.needs).unwrap_or_default())
        .bind(serde_json::to_string(&job.labels).unwrap_or_default())
        .bind(job.environment.as_deref())
        .bind(t)
        .execute(&mut **tx)
        .await?;
        Ok(job_id)
    }

    /// A repository's runs, newest first, one page (`page` from 1), and the total count.
    pub async fn list_runs(
        &self,
        repo: &str,
        f: &RunFilter,
        page: i64,
        per_page: i64,
    ) -> Result<(i64, Vec<RunRecord>)> {
        let mut cond = String::from("r.repo = $1");
        let mut args: Vec<String> = vec![repo.to_string()];
        let mut push = |cond: &mut String, sql: &str, v: &str| {
            args.push(v.to_string());
            cond.push_str(&sql.replace("$?", &format!("${}", args.len())));
        };
        if let Some(s) = &f.status {
            push(&mut cond, " AND (r.status = $? OR r.conclusion = $?)", s);
        }
        if let Some(b) = &f.branch {
            push(&mut cond, " AND r.head_branch = $?", b);
        }
        if let Some(e) = &f.event {
            push(&mut cond, " AND r.event = $?", e);
        }
        if let Some(a) = &f.actor {
            push(&mut cond, " AND r.actor = $?", a);
        }
        if let Some(h) = &f.head_sha {
            push(&mut cond, " AND r.head_sha = $?", h);
        }
        if let Some(w) = f.workflow_id {
            push(
                &mut cond,
                " AND CAST(r.workflow_id AS TEXT) = $?",
                &w.to_string(),
            );
        }
        let count_sql = format!("SELECT COUNT(*) FROM runs r WHERE {cond}");
        let mut q = sqlx::query(&count_sql);
        for a in &args {
            q = q.bind(a);
        }
        let total: i64 = q.fetch_one(&self.read).await?.try_get(0)?;
        let sql = format!(
            "SELECT {RUN_COLS} FROM runs r JOIN workflows w ON w.id = r.workflow_id \
             WHERE {cond} ORDER BY r.id DESC LIMIT {per_page} OFFSET {}",
            (page - 1).max(0) * per_page
        );
        let mut q = sqlx::query(&sql);
        for a in &args {
            q = q.bind(a);
        }
        let rows = q.fetch_all(&self.read).await?;
        let runs = rows.iter().map(run_from_row).collect::<Result<Vec<_>>>()?;
        Ok((total, runs))
    }

    pub async fn get_run(&self, repo: &str, id: i64) -> Result<Option<RunRecord>> {
        let sql = format!(
            "SELECT {RUN_COLS} FROM runs r JOIN workflows w ON w.id = r.workflow_id \
             WHERE r.repo = $1 AND r.id = $2"
        );
        let row = sqlx::query(&sql)
            .bind(repo)
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// Runs by status across repositories (for `/metrics`).
    pub async fn run_counts(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT status, COUNT(*) FROM runs GROUP BY status ORDER BY status")
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// The jobs of one attempt of a run.
    pub async fn run_jobs(&self, run_id: i64, attempt: i64) -> Result<Vec<JobRecord>> {
        let sql =
            format!("SELECT {JOB_COLS} FROM jobs WHERE run_id = $1 AND attempt = $2 ORDER BY id");
        let rows = sqlx::query(&sql)
            .bind(run_id)
            .bind(attempt)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(job_from_row).collect()
    }

    /// A job, if it belongs to a run of `repo`.
    pub async fn get_job(&self, repo: &str, job_id: i64) -> Result<Option<JobRecord>> {
        let sql = format!(
            "SELECT {JOB_COLS} FROM jobs WHERE id = $1 AND run_id IN \
             (SELECT id FROM runs WHERE repo = $2)"
        );
        let row = sqlx::query(&sql)
            .bind(job_id)
            .bind(repo)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    pub async fn job_steps(&self, job_id: i64) -> Result<Vec<StepRecord>> {
        let rows = sqlx::query(
            "SELECT number, name, status, conclusion, started_at, completed_at FROM steps \
             WHERE job_id = $1 ORDER BY number",
        )
        .bind(job_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StepRecord {
                    number: r.try_get(0)?,
                    name: r.try_get(1)?,
                    status: r.try_get(2)?,
                    conclusion: r.try_get(3)?,
                    started_at: r.try_get(4)?,
                    completed_at: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// Records a step's state (inserted on first sight, updated after).
    pub async fn set_step(&self, job_id: i64, step: &StepRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO steps (job_id, number, name, status, conclusion, started_at, \
             completed_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (job_id, number) DO \
             UPDATE SET status = excluded.status, conclusion = excluded.conclusion, \
             started_at = excluded.started_at, completed_at = excluded.completed_at",
        )
        .bind(job_id)
        .bind(step.number)
        .bind(&step.name)
        .bind(&step.status)
        .bind(step.conclusion.as_deref())
        .bind(step.started_at.as_deref())
        .bind(step.completed_at.as_deref())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Moves a job to `status` (and `conclusion` when it completes), stamping the times.
    pub async fn set_job_status(
        &self,
        job_id: i64,
        status: &str,
        conclusion: Option<&str>,
    ) -> Result<()> {
        let t = now();
        sqlx::query(
            "UPDATE jobs SET status = $1, conclusion = $2, \
             started_at = CASE WHEN $1 = 'in_progress' AND started_at IS NULL THEN $3 ELSE started_at END, \
             completed_at = CASE WHEN $1 = 'completed' THEN $3 ELSE completed_at END WHERE id = $4",
        )
        .bind(status)
        .bind(conclusion)
        .bind(&t)
        .bind(job_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn set_run_status(
        &self,
        run_id: i64,
        status: &str,
        conclusion: Option<&str>,
    ) -> Result<()> {
        let t = now();
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE runs SET status = $1, conclusion = $2, updated_at = $3 WHERE id = $4")
            .bind(status)
            .bind(conclusion)
            .bind(&t)
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE attempts SET status = $1, conclusion = $2 WHERE run_id = $3 AND attempt = \
             (SELECT run_attempt FROM runs WHERE id = $3)",
        )
        .bind(status)
        .bind(conclusion)
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Cancels a run that has not completed: the run and its unfinished jobs become
    /// `completed`/`cancelled`. False when it had already completed.
    pub async fn cancel_run(&self, run_id: i64) -> Result<bool> {
        let t = now();
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(
            "UPDATE runs SET status = 'completed', conclusion = 'cancelled', updated_at = $1 \
             WHERE id = $2 AND status <> 'completed'",
        )
        .bind(&t)
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE jobs SET status = 'completed', conclusion = 'cancelled', completed_at = $1 \
             WHERE run_id = $2 AND status <> 'completed'",
        )
        .bind(&t)
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE attempts SET status = 'completed', conclusion = 'cancelled' \
             WHERE run_id = $1 AND status <> 'completed'",
        )
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Starts a new attempt of a completed run: every job again, or (`failed_only`) the jobs
    /// that did not succeed and the jobs that need them. Returns the new attempt number, or
    /// `None` when the run has not completed.
    pub async fn rerun(&self, run_id: i64, actor: &str, failed_only: bool) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT run_attempt, status FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let (attempt, status): (i64, String) = (row.try_get(0)?, row.try_get(1)?);
        if status != "completed" {
            return Ok(None);
        }
        let jobs = self.run_jobs(run_id, attempt).await?;
        let selected = select_for_rerun(&jobs, failed_only);
        let next = attempt + 1;
        let t = now();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE runs SET run_attempt = $1, status = 'queued', conclusion = NULL, \
             updated_at = $2, run_started_at = $2 WHERE id = $3",
        )
        .bind(next)
        .bind(&t)
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO attempts (run_id, attempt, actor, status, conclusion, created_at) \
             VALUES ($1, $2, $3, 'queued', NULL, $4)",
        )
        .bind(run_id)
        .bind(next)
        .bind(actor)
        .bind(&t)
        .execute(&mut *tx)
        .await?;
        for j in jobs.iter().filter(|j| selected.contains(&j.key)) {
            let job = NewJob {
                key: j.key.clone(),
                name: j.name.clone(),
                needs: j.needs.clone(),
                labels: j.labels.clone(),
                environment: j.environment.clone(),
            };
            self.insert_job(&mut tx, run_id, next, &job, &t).await?;
        }
        tx.commit().await?;
        Ok(Some(next))
    }

    /// Queued runs, oldest first (what an executor picks up).
    pub async fn queued_runs(&self, limit: i64) -> Result<Vec<(String, i64)>> {
        let rows =
            sqlx::query("SELECT repo, id FROM runs WHERE status = 'queued' ORDER BY id LIMIT $1")
                .bind(limit)
                .fetch_all(&self.read)
                .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}

/// Job keys a re-run includes: all, or the unsuccessful ones plus everything that
/// (transitively) needs them, as GitHub's "re-run failed jobs" does.
fn select_for_rerun(jobs: &[JobRecord], failed_only: bool) -> Vec<String> {
    if !failed_only {
        return jobs.iter().map(|j| j.key.clone()).collect();
    }
    let mut keys: Vec<String> = jobs
        .iter()
        .filter(|j| !matches!(j.conclusion.as_deref(), Some("success") | Some("skipped")))
        .map(|j| j.key.clone())
        .collect();
    loop {
        let before = keys.len();
        for j in jobs {
            if !keys.contains(&j.key) && j.needs.iter().any(|n| keys.contains(n)) {
                keys.push(j.key.clone());
            }
        }
        if keys.len() == before {
            return keys;
        }
    }
}

fn run_from_row(r: &AnyRow) -> Result<RunRecord> {
    let head_commit: String = r.try_get(15)?;
    Ok(RunRecord {
        id: r.try_get(0)?,
        repo: r.try_get(1)?,
        workflow_id: r.try_get(2)?,
        workflow_path: r.try_get(3)?,
        run_number: r.try_get(4)?,
        name: r.try_get(5)?,
        display_title: r.try_get(6)?,
        event: r.try_get(7)?,
        head_branch: r.try_get(8)?,
        head_sha: r.try_get(9)?,
        git_ref: r.try_get(10)?,
        actor: r.try_get(11)?,
        status: r.try_get(12)?,
        conclusion: r.try_get(13)?,
        run_attempt: r.try_get(14)?,
        head_commit: serde_json::from_str(&head_commit).unwrap_or_default(),
        created_at: r.try_get(16)?,
        updated_at: r.try_get(17)?,
        run_started_at: r.try_get(18)?,
    })
}

fn job_from_row(r: &AnyRow) -> Result<JobRecord> {
    let needs: String = r.try_get(5)?;
    let labels: String = r.try_get(6)?;
    Ok(JobRecord {
        id: r.try_get(0)?,
        run_id: r.try_get(1)?,
        attempt: r.try_get(2)?,
        key: r.try_get(3)?,
        name: r.try_get(4)?,
        needs: serde_json::from_str(&needs).unwrap_or_default(),
        labels: serde_json::from_str(&labels).unwrap_or_default(),
        environment: r.try_get(7)?,
        status: r.try_get(8)?,
        conclusion: r.try_get(9)?,
        created_at: r.try_get(10)?,
        started_at: r.try_get(11)?,
        completed_at: r.try_get(12)?,
        runner_name: r.try_get(13)?,
    })
}
