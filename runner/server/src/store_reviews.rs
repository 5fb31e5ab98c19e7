//! Deployment reviews in the store: a job waiting at an environment's protection rules
//! (`reviews`), the decisions on it (rows of `approvals`, see `store.rs`), and the status
//! history of deployments (`deployment_statuses`).

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::store::{ApprovalRecord, Result, Store, now};

/// A job waiting for (or past) review at an environment.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReviewRecord {
    pub id: i64,
    pub run_id: i64,
    pub job_id: i64,
    pub environment: String,
    /// `waiting`, `approved`, `rejected` or `cancelled`.
    pub state: String,
    pub requested_at: String,
    pub decided_at: Option<String>,
}

/// One state a deployment went through (GitHub's deployment status).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeploymentStatusRecord {
    pub id: i64,
    pub deployment_id: i64,
    pub state: String,
    pub creator: String,
    pub description: String,
    pub created_at: String,
}

const REVIEW_COLS: &str = "id, run_id, job_id, environment, state, requested_at, decided_at";

fn review_from_row(r: &AnyRow) -> Result<ReviewRecord> {
    Ok(ReviewRecord {
        id: r.try_get(0)?,
        run_id: r.try_get(1)?,
        job_id: r.try_get(2)?,
        environment: r.try_get(3)?,
        state: r.try_get(4)?,
        requested_at: r.try_get(5)?,
        decided_at: r.try_get(6)?,
    })
}

impl Store {
    /// Records that `job_id` waits for review at `environment` (state `waiting`).
    pub async fn request_review(
        &self,
        run_id: i64,
        job_id: i64,
        environment: &str,
    ) -> Result<ReviewRecord> {
        let id = self.next_id(&self.pool, "reviews").await?;
        let t = now();
        sqlx::query(
            "INSERT INTO reviews (id, run_id, job_id, environment, state, requested_at) \
             VALUES ($1, $2, $3, $4, 'waiting', $5)",
        )
        .bind(id)
        .bind(run_id)
        .bind(job_id)
        .bind(environment)
        .bind(&t)
        .execute(&self.pool)
        .await?;
        Ok(ReviewRecord {
            id,
            run_id,
            job_id,
            environment: environment.to_string(),
            state: "waiting".into(),
            requested_at: t,
            decided_at: None,
        })
    }

    /// A run's reviews in request order; only the `waiting` ones with `waiting_only`.
    pub async fn reviews(&self, run_id: i64, waiting_only: bool) -> Result<Vec<ReviewRecord>> {
        let filter = if waiting_only {
            " AND state = 'waiting'"
        } else {
            ""
        };
        let rows = sqlx::query(&format!(
            "SELECT {REVIEW_COLS} FROM reviews WHERE run_id = $1{filter} ORDER BY id"
        ))
        .bind(run_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(review_from_row).collect()
    }

    /// Ends a waiting review (`approved`, `rejected`, `cancelled`); false when it was no
    /// longer waiting.
    pub async fn finish_review(&self, id: i64, state: &str) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE reviews SET state = $1, decided_at = $2 WHERE id = $3 AND state = 'waiting'",
        )
        .bind(state)
        .bind(now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// The decisions recorded on one review (its run, job and environment), oldest first.
    pub async fn review_decisions(&self, review: &ReviewRecord) -> Result<Vec<ApprovalRecord>> {
        Ok(self
            .approvals(review.run_id)
            .await?
            .into_iter()
            .filter(|a| a.job_id == review.job_id && a.environment == review.environment)
            .collect())
    }

    /// Appends a status to a deployment and makes it the deployment's state.
    pub async fn add_deployment_status(
        &self,
        deployment_id: i64,
        state: &str,
        creator: &str,
        description: &str,
    ) -> Result<i64> {
        let id = self.next_id(&self.pool, "deployment_statuses").await?;
        sqlx::query(
            "INSERT INTO deployment_statuses (id, deployment_id, state, creator, description, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(deployment_id)
        .bind(state)
        .bind(creator)
        .bind(description)
        .bind(now())
        .execute(&self.pool)
        .await?;
        self.set_deployment_state(deployment_id, state).await?;
        Ok(id)
    }

    /// A deployment's statuses, newest first (as GitHub lists them).
    pub async fn deployment_statuses(
        &self,
        deployment_id: i64,
    ) -> Result<Vec<DeploymentStatusRecord>> {
        let rows = sqlx::query(
            "SELECT id, deployment_id, state, creator, description, created_at \
             FROM deployment_statuses WHERE deployment_id = $1 ORDER BY id DESC",
        )
        .bind(deployment_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeploymentStatusRecord {
                    id: r.try_get(0)?,
                    deployment_id: r.try_get(1)?,
                    state: r.try_get(2)?,
                    creator: r.try_get(3)?,
                    description: r.try_get(4)?,
                    created_at: r.try_get(5)?,
                })
            })
            .collect()
    }
}
