//! Accepted deliveries keep their payload until processed, are processed once, and
//! migration 9 on a database a server before it left (SQLite file).

use sqlx::Row;

use super::{MIGRATIONS, migrator};
use crate::store::{Admission, Store};
use crate::store_runs::{NewJob, NewRun, RunFilter};

fn url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display())
}

const PAYLOAD: &str = r#"{"ref":"refs/heads/main","after":"abc"}"#;

async fn accept(s: &Store, id: &str, payload: Option<&str>) -> Admission {
    s.admit_delivery(
        "github",
        id,
        "push",
        "acme/shop",
        "accepted",
        202,
        "push accepted",
        "seen before",
        payload,
    )
    .await
    .unwrap()
}

fn run(delivery: &str) -> NewRun {
    NewRun {
        repo: "acme/shop".into(),
        workflow_path: ".github/workflows/ci.yml".into(),
        workflow_name: "CI".into(),
        display_title: "t".into(),
        event: "push".into(),
        head_branch: "main".into(),
        head_sha: "a".repeat(40),
        git_ref: "refs/heads/main".into(),
        actor: "dev".into(),
        head_commit: serde_json::json!({}),
        payload: serde_json::json!({}),
        delivery_id: Some(delivery.into()),
        jobs: vec![NewJob {
            key: "build".into(),
            name: "build".into(),
            needs: vec![],
            labels: vec!["self-hosted".into()],
            environment: None,
        }],
    }
}

async fn stored_payload(s: &Store, id: i64) -> Option<String> {
    sqlx::query("SELECT payload FROM deliveries WHERE id = $1")
        .bind(id)
        .fetch_one(&s.pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

async fn run_total(s: &Store) -> i64 {
    s.list_runs("acme/shop", &RunFilter::default(), 1, 30)
        .await
        .unwrap()
        .0
}

#[tokio::test]
async fn an_accepted_delivery_keeps_its_payload_until_its_runs_are_queued_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&url(&dir)).await.unwrap();
    let Admission::New(first) = accept(&s, "d1", Some(PAYLOAD)).await else {
        panic!("new delivery refused")
    };
    let Admission::New(second) = accept(&s, "d2", Some("{}")).await else {
        panic!("new delivery refused")
    };
    // A redelivery keeps no payload and is not waiting to be processed.
    let Admission::Duplicate(dup) = accept(&s, "d1", Some(PAYLOAD)).await else {
        panic!("redelivery admitted")
    };
    assert_eq!(stored_payload(&s, dup).await, None);
    assert_eq!(
        s.unprocessed_deliveries().await.unwrap(),
        [first, second],
        "oldest first"
    );
    let stored = s.stored_delivery(first).await.unwrap().unwrap();
    assert_eq!(
        (
            stored.forge.as_str(),
            stored.delivery_id.as_str(),
            stored.event.as_str(),
            stored.repo.as_str(),
            stored.payload.as_deref()
        ),
        ("github", "d1", "push", "acme/shop", Some(PAYLOAD))
    );
    assert_eq!(
        s.unprocessed_claim("github", "d1").await.unwrap(),
        Some(first)
    );
    assert_eq!(s.unprocessed_claim("gitea", "d1").await.unwrap(), None);

    // Queueing the runs records the outcome and drops the payload, in one transaction.
    let ids = s
        .queue_delivery_runs(first, &[run("d1"), run("d1")], "ci.yml: on: push")
        .await
        .unwrap()
        .expect("first processing queues");
    assert_eq!(ids.len(), 2);
    assert_eq!(stored_payload(&s, first).await, None);
    assert_eq!(s.stored_delivery(first).await.unwrap(), None);
    assert_eq!(s.unprocessed_claim("github", "d1").await.unwrap(), None);
    let rec = s.deliveries(10).await.unwrap();
    let rec = rec.iter().find(|d| d.id == first).unwrap();
    assert_eq!((rec.result.as_str(), &rec.run_ids), ("queued", &ids));
    let processed_at: Option<String> =
        sqlx::query("SELECT processed_at FROM deliveries WHERE id = $1")
            .bind(first)
            .fetch_one(&s.pool)
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
    assert!(processed_at.is_some_and(|t| t.ends_with('Z')));

    // Processing it again (a second processor, a redelivery) queues nothing.
    assert_eq!(
        s.queue_delivery_runs(first, &[run("d1")], "again")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        run_total(&s).await,
        2,
        "the second queueing was rolled back"
    );
    assert!(
        !s.finish_delivery(first, "failed", "late", &[])
            .await
            .unwrap()
    );

    // An outcome without runs drops the payload too.
    assert!(
        s.finish_delivery(second, "no_match", "ci.yml: branch", &[])
            .await
            .unwrap()
    );
    assert_eq!(stored_payload(&s, second).await, None);
    assert!(s.unprocessed_deliveries().await.unwrap().is_empty());
}

#[tokio::test]
async fn migration_9_releases_deliveries_an_older_server_left_unprocessed() {
    let dir = tempfile::tempdir().unwrap();
    let url = url(&dir);
    sqlx::any::install_default_drivers();
    {
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        migrator(&MIGRATIONS[..MIGRATIONS.len() - 1])
            .run(&pool)
            .await
            .unwrap();
        let insert = |id: i64, delivery: &'static str, result: &'static str, claimed: bool| {
            let pool = pool.clone();
            async move {
                sqlx::query(
                    "INSERT INTO deliveries (id, forge, delivery_id, event, repo, result, \
                     status_code, reason, run_ids, received_at, claimed) VALUES ($1, 'github', \
                     $2, 'push', 'acme/shop', $3, 202, 'r', '[]', '2026-01-01T00:00:00Z', $4)",
                )
                .bind(id)
                .bind(delivery)
                .bind(result)
                .bind(claimed.then_some(1i64))
                .execute(&pool)
                .await
                .unwrap();
            }
        };
        // Lost: accepted, never processed, no run.
        insert(1, "lost", "accepted", true).await;
        // Lost before migration 7: its claim is in `delivery_ids`.
        insert(2, "older", "accepted", false).await;
        sqlx::query("INSERT INTO delivery_ids (forge, delivery_id) VALUES ('github', 'older')")
            .execute(&pool)
            .await
            .unwrap();
        // Its runs were queued; only the outcome was not recorded.
        insert(3, "queued", "accepted", true).await;
        sqlx::query(
            "INSERT INTO runs (id, repo, workflow_id, run_number, name, display_title, event, \
             head_branch, head_sha, git_ref, actor, status, run_attempt, head_commit, payload, \
             delivery_id, created_at, updated_at, run_started_at) VALUES (1, 'acme/shop', 1, 1, \
             'CI', 't', 'push', 'main', 'x', 'refs/heads/main', 'dev', 'queued', 1, '{}', '{}', \
             'queued', 't', 't', 't')",
        )
        .execute(&pool)
        .await
        .unwrap();
        insert(4, "done", "no_match", true).await;
        sqlx::query("INSERT INTO counters (name, next_value) VALUES ('deliveries', 4)")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
    let s = Store::open(&url).await.unwrap();
    let log = s.deliveries(10).await.unwrap();
    let result = |id: i64| log.iter().find(|d| d.id == id).unwrap().result.clone();
    assert_eq!(
        [result(1), result(2), result(3), result(4)],
        ["interrupted", "interrupted", "queued", "no_match"]
    );
    assert!(s.unprocessed_deliveries().await.unwrap().is_empty());
    // The lost ones' ids are free again: the forge's redelivery is processed.
    assert!(matches!(
        accept(&s, "lost", Some("{}")).await,
        Admission::New(_)
    ));
    assert!(matches!(
        accept(&s, "older", Some("{}")).await,
        Admission::New(_)
    ));
    // One that queued runs, or was processed, stays claimed.
    assert!(matches!(
        accept(&s, "queued", Some("{}")).await,
        Admission::Duplicate(_)
    ));
    assert!(matches!(
        accept(&s, "done", Some("{}")).await,
        Admission::Duplicate(_)
    ));
}
