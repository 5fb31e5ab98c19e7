//! Deployment history: SQLite under `.gantry/deployments.db` through sqlx's `Any` driver,
//! so the server can point the same code at Postgres. The SQL is portable: `TEXT` and
//! `BIGINT` columns, `$n` placeholders, times as RFC 3339 UTC text (sorts by time), JSON
//! documents in `TEXT`.

use std::path::Path;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::approval::Decision;
use crate::health::HealthReport;

/// Life cycle of a deployment record.
pub mod status {
    pub const WAITING: &str = "waiting";
    pub const BLOCKED: &str = "blocked";
    pub const REJECTED: &str = "rejected";
    pub const TIMED_OUT: &str = "timed_out";
    pub const CANCELLED: &str = "cancelled";
    pub const DEPLOYING: &str = "deploying";
    pub const SUCCEEDED: &str = "succeeded";
    pub const FAILED: &str = "failed";
    pub const ROLLED_BACK: &str = "rolled_back";
}

/// What a rollback did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RollbackRecord {
    /// `run` or `previous`.
    pub strategy: String,
    pub to_sha: Option<String>,
    pub to_run_id: Option<String>,
    pub succeeded: bool,
    pub exit_code: Option<i32>,
    pub health: Option<HealthReport>,
    pub message: String,
    pub at: DateTime<Utc>,
}

/// One deployment (one job of one run into one environment).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeploymentRecord {
    pub id: String,
    pub environment: String,
    pub run_id: String,
    pub workflow: String,
    pub job: String,
    pub sha: String,
    pub git_ref: String,
    pub actor: String,
    pub status: String,
    pub outputs: IndexMap<String, String>,
    pub url: Option<String>,
    pub health: Option<HealthReport>,
    pub rollback: Option<RollbackRecord>,
    pub message: Option<String>,
    pub approvals: Vec<Decision>,
    /// What the runner needs to run this deploy job again (`strategy: previous`): opaque
    /// JSON from [`crate::rollback::Redeploy::recorded_inputs`], masked; `null` if none.
    #[serde(default)]
    pub inputs: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl DeploymentRecord {
    pub fn new(
        environment: &str,
        run_id: &str,
        workflow: &str,
        job: &str,
        sha: &str,
        git_ref: &str,
        actor: &str,
    ) -> Self {
        let now = Utc::now();
        DeploymentRecord {
            id: format!(
                "{}-{}-{}-{}",
                now.format("%Y%m%d%H%M%S%6f"),
                run_id,
                job,
                environment
            ),
            environment: environment.into(),
            run_id: run_id.into(),
            workflow: workflow.into(),
            job: job.into(),
            sha: sha.into(),
            git_ref: git_ref.into(),
            actor: actor.into(),
            status: status::WAITING.into(),
            outputs: IndexMap::new(),
            url: None,
            health: None,
            rollback: None,
            message: None,
            approvals: Vec::new(),
            inputs: serde_json::Value::Null,
            created_at: now,
            updated_at: now,
        }
    }
}

fn ts(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn parse_ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS deployments (
        id TEXT PRIMARY KEY,
        environment TEXT NOT NULL,
        run_id TEXT NOT NULL,
        workflow TEXT NOT NULL,
        job TEXT NOT NULL,
        sha TEXT NOT NULL,
        git_ref TEXT NOT NULL,
        actor TEXT NOT NULL,
        status TEXT NOT NULL,
        outputs TEXT NOT NULL,
        url TEXT,
        health TEXT,
        health_passed BIGINT,
        rollback TEXT,
        message TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS deployments_by_env ON deployments (environment, created_at)",
    "CREATE TABLE IF NOT EXISTS deployment_approvals (
        deployment_id TEXT NOT NULL,
        reviewer TEXT NOT NULL,
        approved BIGINT NOT NULL,
        comment TEXT,
        decided_at TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS deployment_approvals_by_id ON deployment_approvals (deployment_id)",
    // A table of its own (not a column) so that databases made before it need no migration.
    "CREATE TABLE IF NOT EXISTS deployment_inputs (
        deployment_id TEXT PRIMARY KEY,
        inputs TEXT NOT NULL
    )",
];

/// The deployment history store.
#[derive(Clone, Debug)]
pub struct History {
    pool: AnyPool,
}

impl History {
    /// Opens (creating) `root/.gantry/deployments.db`.
    pub async fn open_repo(root: &Path) -> Result<History, sqlx::Error> {
        let dir = root.join(".gantry");
        std::fs::create_dir_all(&dir).map_err(sqlx::Error::Io)?;
        let path = dir.join("deployments.db");
        Self::connect(&format!("sqlite://{}?mode=rwc", path.display())).await
    }

    /// Connects to any database URL sqlx's `Any` driver knows (`sqlite:`, and `postgres:`
    /// when that driver is compiled in) and creates the tables.
    pub async fn connect(url: &str) -> Result<History, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .connect(url)
            .await?;
        Self::with_pool(pool).await
    }

    pub async fn with_pool(pool: AnyPool) -> Result<History, sqlx::Error> {
        for stmt in SCHEMA {
            sqlx::query(stmt).execute(&pool).await?;
        }
        Ok(History { pool })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Inserts or replaces a record (approvals are added with [`History::add_approvals`]).
    pub async fn save(&self, r: &DeploymentRecord) -> Result<(), sqlx::Error> {
        let outputs = serde_json::to_string(&r.outputs).unwrap_or_else(|_| "{}".into());
        let health = r
            .health
            .as_ref()
            .and_then(|h| serde_json::to_string(h).ok());
        let health_passed = r.health.as_ref().map(|h| h.passed as i64);
        let rollback = r
            .rollback
            .as_ref()
            .and_then(|x| serde_json::to_string(x).ok());
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM deployments WHERE id = $1")
            .bind(&r.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO deployments (id, environment, run_id, workflow, job, sha, git_ref, actor,
                status, outputs, url, health, health_passed, rollback, message, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        )
        .bind(&r.id)
        .bind(&r.environment)
        .bind(&r.run_id)
        .bind(&r.workflow)
        .bind(&r.job)
        .bind(&r.sha)
        .bind(&r.git_ref)
        .bind(&r.actor)
        .bind(&r.status)
        .bind(outputs)
        .bind(r.url.clone())
        .bind(health)
        .bind(health_passed)
        .bind(rollback)
        .bind(r.message.clone())
        .bind(ts(&r.created_at))
        .bind(ts(&Utc::now()))
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM deployment_inputs WHERE deployment_id = $1")
            .bind(&r.id)
            .execute(&mut *tx)
            .await?;
        if !r.inputs.is_null() {
            sqlx::query("INSERT INTO deployment_inputs (deployment_id, inputs) VALUES ($1, $2)")
                .bind(&r.id)
                .bind(r.inputs.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    async fn inputs_of(&self, id: &str) -> Result<serde_json::Value, sqlx::Error> {
        let rows = sqlx::query("SELECT inputs FROM deployment_inputs WHERE deployment_id = $1")
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        Ok(match rows.first() {
            Some(r) => serde_json::from_str(&r.try_get::<String, _>("inputs")?)
                .unwrap_or(serde_json::Value::Null),
            None => serde_json::Value::Null,
        })
    }

    pub async fn add_approvals(&self, id: &str, decisions: &[Decision]) -> Result<(), sqlx::Error> {
        for d in decisions {
            sqlx::query(
                "INSERT INTO deployment_approvals (deployment_id, reviewer, approved, comment, decided_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(&d.by)
            .bind(d.approved as i64)
            .bind(d.comment.clone())
            .bind(ts(&d.at))
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    async fn approvals_of(&self, id: &str) -> Result<Vec<Decision>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT reviewer, approved, comment, decided_at FROM deployment_approvals
             WHERE deployment_id = $1 ORDER BY decided_at",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Decision {
                    by: r.try_get("reviewer")?,
                    approved: r.try_get::<i64, _>("approved")? != 0,
                    comment: r.try_get("comment")?,
                    at: parse_ts(&r.try_get::<String, _>("decided_at")?),
                })
            })
            .collect()
    }

    fn from_row(r: &AnyRow) -> Result<DeploymentRecord, sqlx::Error> {
        let json = |col: &str| -> Result<Option<String>, sqlx::Error> { r.try_get(col) };
        Ok(DeploymentRecord {
            id: r.try_get("id")?,
            environment: r.try_get("environment")?,
            run_id: r.try_get("run_id")?,
            workflow: r.try_get("workflow")?,
            job: r.try_get("job")?,
            sha: r.try_get("sha")?,
            git_ref: r.try_get("git_ref")?,
            actor: r.try_get("actor")?,
            status: r.try_get("status")?,
            outputs: serde_json::from_str(&r.try_get::<String, _>("outputs")?).unwrap_or_default(),
            url: r.try_get("url")?,
            health: json("health")?.and_then(|h| serde_json::from_str(&h).ok()),
            rollback: json("rollback")?.and_then(|h| serde_json::from_str(&h).ok()),
            message: r.try_get("message")?,
            approvals: Vec::new(),
            inputs: serde_json::Value::Null,
            created_at: parse_ts(&r.try_get::<String, _>("created_at")?),
            updated_at: parse_ts(&r.try_get::<String, _>("updated_at")?),
        })
    }

    async fn fill(&self, rows: Vec<AnyRow>) -> Result<Vec<DeploymentRecord>, sqlx::Error> {
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut rec = Self::from_row(row)?;
            rec.approvals = self.approvals_of(&rec.id).await?;
            rec.inputs = self.inputs_of(&rec.id).await?;
            out.push(rec);
        }
        Ok(out)
    }

    const COLUMNS: &'static str = "id, environment, run_id, workflow, job, sha, git_ref, actor, status, outputs, url, health, rollback, message, created_at, updated_at";

    /// Newest first; all environments when `environment` is `None`.
    pub async fn list(
        &self,
        environment: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DeploymentRecord>, sqlx::Error> {
        let rows = match environment {
            Some(env) => {
                sqlx::query(&format!(
                    "SELECT {} FROM deployments WHERE environment = $1 ORDER BY created_at DESC LIMIT $2",
                    Self::COLUMNS
                ))
                .bind(env)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {} FROM deployments ORDER BY created_at DESC LIMIT $1",
                    Self::COLUMNS
                ))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        self.fill(rows).await
    }

    pub async fn get(&self, id: &str) -> Result<Option<DeploymentRecord>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM deployments WHERE id = $1",
            Self::COLUMNS
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(self.fill(rows).await?.into_iter().next())
    }

    /// The last successful deployment of `environment` other than `except_id`: what a
    /// rollback returns to.
    pub async fn last_successful(
        &self,
        environment: &str,
        except_id: &str,
    ) -> Result<Option<DeploymentRecord>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM deployments WHERE environment = $1 AND status = $2 AND id <> $3
             ORDER BY created_at DESC LIMIT 1",
            Self::COLUMNS
        ))
        .bind(environment)
        .bind(status::SUCCEEDED)
        .bind(except_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(self.fill(rows).await?.into_iter().next())
    }
}
