//! Tests of the store's delivery log and log chunks against a SQLite file.

use sqlx::Row;

use crate::store::{Admission, Store, chunk_lines};

async fn open(dir: &tempfile::TempDir) -> Store {
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
    Store::open(&url).await.unwrap()
}

async fn admit(s: &Store, id: &str) -> Admission {
    let (ok, dup) = ("accepted", "seen before");
    s.admit_delivery("github", id, "push", "acme/shop", ok, 202, "queued", dup)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_delivery_id_is_claimed_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir).await;
    let Admission::New(first) = admit(&s, "d1").await else {
        panic!("first delivery refused")
    };
    let Admission::Duplicate(again) = admit(&s, "d1").await else {
        panic!("redelivery admitted")
    };
    assert_ne!(first, again);
    // Another forge's id space is its own.
    let other = s
        .admit_delivery(
            "gitea",
            "d1",
            "push",
            "acme/shop",
            "accepted",
            202,
            "q",
            "dup",
        )
        .await
        .unwrap();
    assert!(matches!(other, Admission::New(_)));
    // A refused delivery with that id claims nothing.
    s.record_delivery("github", Some("d2"), None, None, "forged", 401, "no")
        .await
        .unwrap();
    assert!(matches!(admit(&s, "d2").await, Admission::New(_)));
    let log = s.deliveries(10).await.unwrap();
    let results: Vec<&str> = log.iter().rev().map(|d| d.result.as_str()).collect();
    assert_eq!(
        results,
        ["accepted", "duplicate", "accepted", "forged", "accepted"]
    );
    assert_eq!(log.iter().find(|d| d.id == again).unwrap().status_code, 200);
}

#[tokio::test]
async fn claims_from_before_migration_7_still_count() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir).await;
    sqlx::query("INSERT INTO delivery_ids (forge, delivery_id) VALUES ('github', 'old')")
        .execute(&s.pool)
        .await
        .unwrap();
    assert!(matches!(admit(&s, "old").await, Admission::Duplicate(_)));
}

#[tokio::test]
async fn delivery_row_ids_are_unique_across_stores_on_one_database() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (open(&dir).await, open(&dir).await);
    let mut ids = Vec::new();
    for i in 0..150 {
        let s = if i % 3 == 0 { &b } else { &a };
        match admit(s, &format!("d{i}")).await {
            Admission::New(id) => ids.push(id),
            other => panic!("{other:?}"),
        }
    }
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n);
}

#[test]
fn lines_of_a_chunk() {
    assert_eq!(chunk_lines(""), 0);
    assert_eq!(chunk_lines("a"), 1);
    assert_eq!(chunk_lines("a\n"), 1);
    assert_eq!(chunk_lines("a\nb"), 2);
    assert_eq!(chunk_lines("\n\n"), 2);
}

#[tokio::test]
async fn chunks_keep_their_sizes_and_migration_8_counts_old_ones_alike() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir).await;
    let masker = gantry_engine::masker::Masker::new();
    let bodies = ["", "a", "a\n", "a\nb", "\n\n", "é\n"];
    for b in bodies {
        s.append_log(7, b, &masker).await.unwrap();
    }
    let sizes = || async {
        sqlx::query("SELECT bytes, lines FROM log_chunks WHERE job_id = 7 ORDER BY seq")
            .fetch_all(&s.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect::<Vec<(i64, i64)>>()
    };
    let stored = sizes().await;
    let want: Vec<(i64, i64)> = bodies
        .iter()
        .map(|b| (b.len() as i64, chunk_lines(b) as i64))
        .collect();
    assert_eq!(stored, want);
    // The migration's backfill gives chunks stored before it the same figures.
    let backfill = include_str!("../migrations/0008_log_chunk_sizes.sql");
    let update = backfill
        .split(';')
        .find(|st| st.contains("UPDATE log_chunks"))
        .unwrap();
    sqlx::query("UPDATE log_chunks SET bytes = -1, lines = -1")
        .execute(&s.pool)
        .await
        .unwrap();
    sqlx::query(update).execute(&s.pool).await.unwrap();
    assert_eq!(sizes().await, want);
}
