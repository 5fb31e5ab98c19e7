//! The run store in SQL (sqlx's `Any` driver): SQLite embedded in the data directory by
//! default, PostgreSQL at scale, one set of migrations for both. Runs and their jobs live in
//! `store_runs`; this module opens the database and keeps deliveries, logs, approvals,
//! deployments and artifacts.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Row};

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, StoreError>;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "run store",
        include_str!("../migrations/0001_run_store.sql"),
    ),
    (3, "reviews", include_str!("../migrations/0003_reviews.sql")),
    (
        4,
        "web sessions",
        include_str!("../migrations/0004_web_sessions.sql"),
    ),
    (
        5,
        "run reports",
        include_str!("../migrations/0005_run_reports.sql"),
    ),
    (
        6,
        "job outputs",
        include_str!("../migrations/0006_job_outputs.sql"),
    ),
    (
        7,
        "delivery claims",
        include_str!("../migrations/0007_delivery_claims.sql"),
    ),
    (
        8,
        "log chunk sizes",
        include_str!("../migrations/0008_log_chunk_sizes.sql"),
    ),
    (
        9,
        "delivery payloads",
        include_str!("../migrations/0009_delivery_payloads.sql"),
    ),
];

/// Delivery row ids are taken from their counter this many at a time: recording a
/// delivery is then one statement, not a counter round trip and an insert. Blocks keep
/// ids unique across server processes sharing a database; a restart leaves a gap.
const DELIVERY_ID_BLOCK: i64 = 64;

/// Read-only SQLite connections beside the writer: the API's and the UI's reads. WAL lets
/// them read while the writer writes; more than the two cores can keep busy buys nothing.
const SQLITE_READERS: u32 = 4;

/// The store: a connection pool to SQLite or PostgreSQL.
#[derive(Clone)]
pub struct Store {
    /// Every write, and reads that decide a write (SQLite: the one writer connection).
    pub(crate) pool: AnyPool,
    /// Reads outside a transaction (the API, the UI, the live pages, `/metrics`). SQLite:
    /// read-only connections of their own, so a page never queues behind webhook and event
    /// writes; a read starts a snapshot after every commit made before it, so a handler
    /// reading back what it just wrote sees it. PostgreSQL and in-memory SQLite: `pool`.
    pub(crate) read: AnyPool,
    /// Delivery row ids not handed out yet (see [`DELIVERY_ID_BLOCK`]).
    delivery_ids: Arc<Mutex<Range<i64>>>,
}

/// The migrator of `migrations` (all of [`MIGRATIONS`] but in tests of a migration).
fn migrator(migrations: &'static [(i64, &'static str, &'static str)]) -> Migrator {
    Migrator {
        migrations: Cow::Owned(
            migrations
                .iter()
                .map(|(v, d, sql)| {
                    Migration::new(
                        *v,
                        Cow::Borrowed(*d),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect(),
        ),
        ignore_missing: false,
        locking: true,
        no_tx: false,
    }
}

/// The current time as GitHub writes it: `2026-01-02T03:04:05Z`.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// One webhook delivery, as recorded (refused ones too).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeliveryRecord {
    pub id: i64,
    pub forge: String,
    pub delivery_id: Option<String>,
    pub event: Option<String>,
    pub repo: Option<String>,
    /// `accepted`, `duplicate`, `ignored`, `unsigned`, `forged`, `unknown_repository`,
    /// `oversized`, `bad_payload`, then after processing `queued`, `skipped`, `no_match`,
    /// `failed` (`interrupted`: left unprocessed by a server before migration 9).
    pub result: String,
    pub status_code: i64,
    pub reason: String,
    pub run_ids: Vec<i64>,
    pub received_at: String,
}

/// What [`Store::admit_delivery`] made of a verified delivery: its row id either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// First time this delivery id was seen: recorded with the result asked for.
    New(i64),
    /// A redelivery: recorded as `duplicate`; nothing may start.
    Duplicate(i64),
}

/// An approval or rejection of a pending deployment.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ApprovalRecord {
    pub id: i64,
    pub run_id: i64,
    pub job_id: i64,
    pub environment: String,
    pub reviewer: String,
    pub state: String,
    pub comment: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeploymentRecord {
    pub id: i64,
    pub repo: String,
    pub environment: String,
    pub run_id: i64,
    pub job_id: i64,
    pub sha: String,
    pub git_ref: String,
    pub creator: String,
    pub state: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ArtifactRecord {
    pub id: i64,
    pub run_id: i64,
    pub name: String,
    pub size_in_bytes: i64,
    pub created_at: String,
    pub expires_at: String,
}

/// Lines of a stored chunk as the job page numbers them: a chunk's end always ends a line.
pub(crate) fn chunk_lines(text: &str) -> usize {
    let newlines = text.bytes().filter(|&b| b == b'\n').count();
    newlines + usize::from(!text.is_empty() && !text.ends_with('\n'))
}

/// One row of the delivery log, as written.
struct DeliveryRow<'a> {
    forge: &'a str,
    delivery_id: Option<&'a str>,
    event: Option<&'a str>,
    repo: Option<&'a str>,
    result: &'a str,
    status_code: u16,
    reason: &'a str,
    /// What processing needs later (accepted deliveries only): the payload's JSON text.
    payload: Option<&'a str>,
}

impl ArtifactRecord {
    /// From a row of `id, run_id, name, size_in_bytes, created_at, expires_at`.
    pub(crate) fn from_row(r: &sqlx::any::AnyRow) -> Result<Self> {
        use sqlx::Row;
        Ok(ArtifactRecord {
            id: r.try_get(0)?,
            run_id: r.try_get(1)?,
            name: r.try_get(2)?,
            size_in_bytes: r.try_get(3)?,
            created_at: r.try_get(4)?,
            expires_at: r.try_get(5)?,
        })
    }
}

impl Store {
    /// Connects to `url` (`sqlite://…` or `postgres://…`) and applies the migrations.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        if let Some(path) = url.strip_prefix("sqlite://") {
            let file = path.split('?').next().unwrap_or(path);
            if let Some(dir) = std::path::Path::new(file).parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir)?;
            }
        }
        let sqlite = url.starts_with("sqlite:");
        let pool = AnyPoolOptions::new()
            // SQLite takes one writer at a time; more connections only wait on its lock.
            .max_connections(if sqlite { 1 } else { 8 })
            // A ping before every use costs SQLite a round trip to its connection's thread
            // (one per statement outside a transaction) and tests nothing: the file is not
            // a network peer. PostgreSQL's connections can die, so they are pinged.
            .test_before_acquire(!sqlite)
            // SQLite: a write-ahead log, synced at checkpoints rather than at every commit
            // (durable across a crash of the server; a power loss may lose the last
            // transactions, never corrupt the file).
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA synchronous = NORMAL")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(|source| StoreError::Connect {
                url: redact_url(url),
                source,
            })?;
        let migrator = migrator(MIGRATIONS);
        migrator.run(&pool).await?;
        let read = match sqlite.then(|| sqlite_read_url(url)).flatten() {
            // Opened after the migrations: the file exists and is in WAL mode, which is a
            // property of the file (read-only connections could not set it).
            Some(read_url) => AnyPoolOptions::new()
                .max_connections(SQLITE_READERS)
                .test_before_acquire(false)
                .connect(&read_url)
                .await
                .map_err(|source| StoreError::Connect {
                    url: redact_url(&read_url),
                    source,
                })?,
            None => pool.clone(),
        };
        Ok(Store {
            pool,
            read,
            delivery_ids: Arc::default(),
        })
    }

    /// The next id of a kind (`runs`, `jobs`, …): a counter row, since the two databases
    /// spell auto-increment differently.
    pub(crate) async fn next_id<'c, E>(&self, exec: E, kind: &str) -> Result<i64>
    where
        E: sqlx::Executor<'c, Database = sqlx::Any>,
    {
        let row = sqlx::query(
            "INSERT INTO counters (name, next_value) VALUES ($1, 1) \
             ON CONFLICT (name) DO UPDATE SET next_value = counters.next_value + 1 \
             RETURNING next_value",
        )
        .bind(kind)
        .fetch_one(exec)
        .await?;
        Ok(row.try_get::<i64, _>(0)?)
    }

    // ---- deliveries -------------------------------------------------------------

    /// Records a delivery and returns its row id.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_delivery(
        &self,
        forge: &str,
        delivery_id: Option<&str>,
        event: Option<&str>,
        repo: Option<&str>,
        result: &str,
        status_code: u16,
        reason: &str,
    ) -> Result<i64> {
        let row = DeliveryRow {
            forge,
            delivery_id,
            event,
            repo,
            result,
            status_code,
            reason,
            payload: None,
        };
        Ok(self.insert_delivery(&row, false).await?.unwrap_or_default())
    }

    /// A new delivery row id: from the block in hand, else from a new block of the counter.
    async fn delivery_row_id(&self) -> Result<i64> {
        let taken = {
            let mut ids = self.delivery_ids.lock().unwrap_or_else(|e| e.into_inner());
            ids.next()
        };
        if let Some(id) = taken {
            return Ok(id);
        }
        let row = sqlx::query(
            "INSERT INTO counters (name, next_value) VALUES ('deliveries', $1) \
             ON CONFLICT (name) DO UPDATE SET next_value = counters.next_value + $1 \
             RETURNING next_value",
        )
        .bind(DELIVERY_ID_BLOCK)
        .fetch_one(&self.pool)
        .await?;
        let last: i64 = row.try_get(0)?;
        let first = last - DELIVERY_ID_BLOCK + 1;
        // Requests racing here each took a block of their own; the one stored last is
        // kept and the rest of the other is skipped (a gap, never a duplicate).
        *self.delivery_ids.lock().unwrap_or_else(|e| e.into_inner()) = first + 1..last + 1;
        Ok(first)
    }

    /// Inserts one row of the delivery log and returns its id. `claim`: the row also
    /// claims its delivery id (one autocommitted statement, so the claim never commits
    /// without its record); `None` when the id was claimed before and nothing was written.
    async fn insert_delivery(&self, d: &DeliveryRow<'_>, claim: bool) -> Result<Option<i64>> {
        let id = self.delivery_row_id().await?;
        let columns = "INSERT INTO deliveries (id, forge, delivery_id, event, repo, result, \
                       status_code, reason, run_ids, received_at, claimed, payload)";
        let sql = if claim {
            // A claim made before migration 7 is in `delivery_ids`.
            format!(
                "{columns} SELECT $1, $2, $3, $4, $5, $6, $7, $8, '[]', $9, 1, $10 \
                 WHERE NOT EXISTS (SELECT 1 FROM delivery_ids WHERE forge = $2 AND delivery_id = $3) \
                 ON CONFLICT (forge, delivery_id) WHERE claimed = 1 DO NOTHING RETURNING id"
            )
        } else {
            format!(
                "{columns} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '[]', $9, NULL, $10) \
                 RETURNING id"
            )
        };
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(d.forge)
            .bind(d.delivery_id)
            .bind(d.event)
            .bind(d.repo)
            .bind(d.result)
            .bind(d.status_code as i64)
            .bind(d.reason)
            .bind(now())
            .bind(d.payload)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|_| id))
    }

    /// A verified delivery: claims its id and records it with `result`, `status_code`,
    /// `reason` and (for a delivery still to be processed) its `payload` in one statement
    /// (the webhook's answer waits on one commit), or, when the id was claimed before (a
    /// redelivery), records it as `duplicate` with `duplicate_reason` (no payload kept).
    #[allow(clippy::too_many_arguments)]
    pub async fn admit_delivery(
        &self,
        forge: &str,
        delivery_id: &str,
        event: &str,
        repo: &str,
        result: &str,
        status_code: u16,
        reason: &str,
        duplicate_reason: &str,
        payload: Option<&str>,
    ) -> Result<Admission> {
        let mut row = DeliveryRow {
            forge,
            delivery_id: Some(delivery_id),
            event: Some(event),
            repo: Some(repo),
            result,
            status_code,
            reason,
            payload,
        };
        if let Some(id) = self.insert_delivery(&row, true).await? {
            return Ok(Admission::New(id));
        }
        (row.result, row.status_code, row.reason) = ("duplicate", 200, duplicate_reason);
        row.payload = None;
        let id = self.insert_delivery(&row, false).await?;
        Ok(Admission::Duplicate(id.unwrap_or_default()))
    }

    /// The outcome of processing an accepted delivery that queued no run (`skipped`,
    /// `no_match`, `failed`; [`Store::queue_delivery_runs`] records `queued`): drops its
    /// payload. False when it was not `accepted` any more (processed already).
    pub async fn finish_delivery(
        &self,
        id: i64,
        result: &str,
        reason: &str,
        run_ids: &[i64],
    ) -> Result<bool> {
        self.finish_delivery_on(&self.pool, id, result, reason, run_ids)
            .await
    }

    /// Deliveries, newest first.
    pub async fn deliveries(&self, limit: i64) -> Result<Vec<DeliveryRecord>> {
        let rows = sqlx::query(
            "SELECT id, forge, delivery_id, event, repo, result, status_code, reason, run_ids, \
             received_at FROM deliveries ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    /// Delivery counts by result (for `/metrics`).
    pub async fn delivery_counts(&self) -> Result<Vec<(String, i64)>> {
        let rows =
            sqlx::query("SELECT result, COUNT(*) FROM deliveries GROUP BY result ORDER BY result")
                .fetch_all(&self.read)
                .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    // ---- logs ---------------------------------------------------------------------

    /// Appends log text to a job, masked with the engine's masker (its encodings and
    /// multi-line rules) before it is written: what the store holds is served as is.
    pub async fn append_log(
        &self,
        job_id: i64,
        text: &str,
        masker: &gantry_engine::masker::Masker,
    ) -> Result<i64> {
        let text = masker.mask_text(text);
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM log_chunks WHERE job_id = $1")
            .bind(job_id)
            .fetch_one(&mut *tx)
            .await?;
        let seq: i64 = row.try_get(0)?;
        sqlx::query(
            "INSERT INTO log_chunks (job_id, seq, body, bytes, lines) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(job_id)
        .bind(seq + 1)
        .bind(text.as_ref())
        .bind(text.len() as i64)
        .bind(chunk_lines(&text) as i64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(seq + 1)
    }

    /// The job's log so far (readable while the job runs).
    pub async fn job_log(&self, job_id: i64) -> Result<String> {
        let rows = sqlx::query("SELECT body FROM log_chunks WHERE job_id = $1 ORDER BY seq")
            .bind(job_id)
            .fetch_all(&self.read)
            .await?;
        let mut out = String::new();
        for r in rows {
            out.push_str(&r.try_get::<String, _>(0)?);
        }
        Ok(out)
    }

    // ---- approvals, deployments, artifacts ------------------------------------------

    pub async fn record_approval(
        &self,
        run_id: i64,
        job_id: i64,
        environment: &str,
        reviewer: &str,
        state: &str,
        comment: &str,
    ) -> Result<i64> {
        let id = self.next_id(&self.pool, "approvals").await?;
        sqlx::query(
            "INSERT INTO approvals (id, run_id, job_id, environment, reviewer, state, comment, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(run_id)
        .bind(job_id)
        .bind(environment)
        .bind(reviewer)
        .bind(state)
        .bind(comment)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    pub async fn approvals(&self, run_id: i64) -> Result<Vec<ApprovalRecord>> {
        let rows = sqlx::query(
            "SELECT id, run_id, job_id, environment, reviewer, state, comment, created_at \
             FROM approvals WHERE run_id = $1 ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ApprovalRecord {
                    id: r.try_get(0)?,
                    run_id: r.try_get(1)?,
                    job_id: r.try_get(2)?,
                    environment: r.try_get(3)?,
                    reviewer: r.try_get(4)?,
                    state: r.try_get(5)?,
                    comment: r.try_get(6)?,
                    created_at: r.try_get(7)?,
                })
            })
            .collect()
    }

    /// Records a deployment (state `waiting`, `in_progress`, `success`, `failure`, …).
    #[allow(clippy::too_many_arguments)]
    pub async fn record_deployment(
        &self,
        repo: &str,
        environment: &str,
        run_id: i64,
        job_id: i64,
        sha: &str,
        git_ref: &str,
        creator: &str,
        state: &str,
    ) -> Result<i64> {
        let id = self.next_id(&self.pool, "deployments").await?;
        let t = now();
        sqlx::query(
            "INSERT INTO deployments (id, repo, environment, run_id, job_id, sha, git_ref, \
             creator, state, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        )
        .bind(id)
        .bind(repo)
        .bind(environment)
        .bind(run_id)
        .bind(job_id)
        .bind(sha)
        .bind(git_ref)
        .bind(creator)
        .bind(state)
        .bind(t)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    pub async fn set_deployment_state(&self, id: i64, state: &str) -> Result<()> {
        sqlx::query("UPDATE deployments SET state = $1, updated_at = $2 WHERE id = $3")
            .bind(state)
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A repository's deployments, newest first.
    pub async fn deployments(&self, repo: &str) -> Result<Vec<DeploymentRecord>> {
        let rows = sqlx::query(
            "SELECT id, repo, environment, run_id, job_id, sha, git_ref, creator, state, \
             created_at, updated_at FROM deployments WHERE repo = $1 ORDER BY id DESC",
        )
        .bind(repo)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeploymentRecord {
                    id: r.try_get(0)?,
                    repo: r.try_get(1)?,
                    environment: r.try_get(2)?,
                    run_id: r.try_get(3)?,
                    job_id: r.try_get(4)?,
                    sha: r.try_get(5)?,
                    git_ref: r.try_get(6)?,
                    creator: r.try_get(7)?,
                    state: r.try_get(8)?,
                    created_at: r.try_get(9)?,
                    updated_at: r.try_get(10)?,
                })
            })
            .collect()
    }

    pub async fn record_artifact(
        &self,
        run_id: i64,
        name: &str,
        size_in_bytes: i64,
        expires_at: &str,
    ) -> Result<i64> {
        let id = self.next_id(&self.pool, "artifacts").await?;
        sqlx::query(
            "INSERT INTO artifacts (id, run_id, name, size_in_bytes, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(run_id)
        .bind(name)
        .bind(size_in_bytes)
        .bind(now())
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    pub async fn artifacts(&self, run_id: i64) -> Result<Vec<ArtifactRecord>> {
        let rows = sqlx::query(
            "SELECT id, run_id, name, size_in_bytes, created_at, expires_at FROM artifacts \
             WHERE run_id = $1 ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(ArtifactRecord::from_row).collect()
    }
}

fn delivery_from_row(r: &AnyRow) -> Result<DeliveryRecord> {
    let run_ids: String = r.try_get(8)?;
    Ok(DeliveryRecord {
        id: r.try_get(0)?,
        forge: r.try_get(1)?,
        delivery_id: r.try_get(2)?,
        event: r.try_get(3)?,
        repo: r.try_get(4)?,
        result: r.try_get(5)?,
        status_code: r.try_get(6)?,
        reason: r.try_get(7)?,
        run_ids: serde_json::from_str(&run_ids).unwrap_or_default(),
        received_at: r.try_get(9)?,
    })
}

/// The URL of read-only connections to the same SQLite file (`mode=ro` in place of the
/// URL's mode); `None` for an in-memory database, where another pool would be another
/// database.
pub(crate) fn sqlite_read_url(url: &str) -> Option<String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let path = base
        .strip_prefix("sqlite://")
        .or_else(|| base.strip_prefix("sqlite:"))?;
    let params: Vec<&str> = query.split('&').filter(|kv| !kv.is_empty()).collect();
    if path.is_empty() || path == ":memory:" || params.contains(&"mode=memory") {
        return None;
    }
    let mut params: Vec<&str> = params
        .into_iter()
        .filter(|kv| !kv.starts_with("mode="))
        .collect();
    params.push("mode=ro");
    Some(format!("{base}?{}", params.join("&")))
}

/// The URL without its password, for error messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}://{}:***@{}", &url[..s], user, &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "store_delivery_tests.rs"]
mod delivery_tests;
