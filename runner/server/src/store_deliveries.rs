//! Processing accepted deliveries durably: an accepted delivery's row keeps its payload
//! (written by the INSERT that claims it, see [`Store::admit_delivery`]) until the outcome
//! is recorded, and the outcome of one that queues runs commits with the runs. A server
//! that starts processes the rows still `accepted`; nothing is lost between the webhook's
//! answer and its runs, and no delivery queues its runs twice.
//!
//! The look-ups below read through the read pool: they only say what may need processing
//! (on SQLite they do not queue behind the webhook's writes); the guarded outcome decides.

use sqlx::Row;

use crate::store::{Result, Store, now};
use crate::store_runs::NewRun;

/// An accepted delivery not processed yet, with what processing it needs.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDelivery {
    /// The row id.
    pub id: i64,
    pub forge: String,
    pub delivery_id: String,
    pub event: String,
    pub repo: String,
    /// The verified payload's JSON text; `None` only for rows a server before migration 9
    /// wrote (the migration marks those `interrupted`).
    pub payload: Option<String>,
}

impl Store {
    /// Records the outcome of an accepted delivery through `exec` (the pool, or the
    /// transaction that queued its runs), dropping its payload. False when the row was
    /// not `accepted` any more: another task or server recorded an outcome first.
    pub(crate) async fn finish_delivery_on<'c, E>(
        &self,
        exec: E,
        id: i64,
        result: &str,
        reason: &str,
        run_ids: &[i64],
    ) -> Result<bool>
    where
        E: sqlx::Executor<'c, Database = sqlx::Any>,
    {
        let done = sqlx::query(
            "UPDATE deliveries SET result = $1, reason = $2, run_ids = $3, payload = NULL, \
             processed_at = $4 WHERE id = $5 AND result = 'accepted'",
        )
        .bind(result)
        .bind(reason)
        .bind(serde_json::to_string(run_ids).unwrap_or_else(|_| "[]".into()))
        .bind(now())
        .bind(id)
        .execute(exec)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Queues an accepted delivery's runs and records it `queued` with `reason`, in one
    /// transaction: a crash leaves either both or neither. `None` (and nothing queued)
    /// when the delivery had been processed already.
    pub async fn queue_delivery_runs(
        &self,
        id: i64,
        runs: &[NewRun],
        reason: &str,
    ) -> Result<Option<Vec<i64>>> {
        let mut tx = self.pool.begin().await?;
        let ids = self.insert_runs(&mut tx, runs).await?;
        // Last, so that on PostgreSQL a second processor of the same delivery waits on
        // this row's lock only briefly and then finds it processed.
        if !self
            .finish_delivery_on(&mut *tx, id, "queued", reason, &ids)
            .await?
        {
            tx.rollback().await?;
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(ids))
    }

    /// The row ids of accepted deliveries not processed yet, oldest first.
    pub async fn unprocessed_deliveries(&self) -> Result<Vec<i64>> {
        let rows = sqlx::query(
            "SELECT id FROM deliveries WHERE result = 'accepted' ORDER BY received_at, id",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Accepted delivery `id` with its payload, while it is not processed.
    pub async fn stored_delivery(&self, id: i64) -> Result<Option<StoredDelivery>> {
        let row = sqlx::query(
            "SELECT id, forge, delivery_id, event, repo, payload FROM deliveries \
             WHERE id = $1 AND result = 'accepted'",
        )
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| {
            Ok(StoredDelivery {
                id: r.try_get(0)?,
                forge: r.try_get(1)?,
                delivery_id: r.try_get::<Option<String>, _>(2)?.unwrap_or_default(),
                event: r.try_get::<Option<String>, _>(3)?.unwrap_or_default(),
                repo: r.try_get::<Option<String>, _>(4)?.unwrap_or_default(),
                payload: r.try_get(5)?,
            })
        })
        .transpose()
    }

    /// The row that claimed `delivery_id` of `forge`, when it is still not processed (a
    /// redelivery of it then gets it processed).
    pub async fn unprocessed_claim(&self, forge: &str, delivery_id: &str) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT id FROM deliveries WHERE forge = $1 AND delivery_id = $2 AND claimed = 1 \
             AND result = 'accepted'",
        )
        .bind(forge)
        .bind(delivery_id)
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| Ok(r.try_get(0)?)).transpose()
    }
}
