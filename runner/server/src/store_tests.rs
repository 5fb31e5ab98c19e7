//! Tests of the store's delivery log and log chunks against a SQLite file.

use sqlx::Row;

use crate::store::{Admission, Store, chunk_lines};

async fn open(dir: &tempfile::TempDir) -> Store {
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
    Store::open(&url).await.unwrap()
}

async fn admit(s: &Store, id: &str) -> Admission {
    let (ok, dup) = ("accepted", "seen before");
    s.admit_delivery(
        "github",
        id,
        "push",
        "acme/shop",
        ok,
        202,
        "queued",
        dup,
        None,
    )
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
            None,
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

#[tokio::test]
async fn reads_do_not_queue_behind_an_open_write() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir).await;
    let masker = gantry_engine::masker::Masker::new();
    s.append_log(7, "committed\n", &masker).await.unwrap();
    // The writer's one connection is held by a transaction, as while the event recorder
    // writes: with a single pool every read below would wait for it.
    let mut tx = s.pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO log_chunks (job_id, seq, body, bytes, lines) VALUES (7, 2, 'open\n', 5, 1)",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    let read = tokio::time::timeout(std::time::Duration::from_secs(3), s.job_log(7))
        .await
        .expect("a read waited for the open write transaction")
        .unwrap();
    // A snapshot of what was committed: not the open transaction's row.
    assert_eq!(read, "committed\n");
    tx.commit().await.unwrap();
    assert_eq!(s.job_log(7).await.unwrap(), "committed\nopen\n");
}

#[tokio::test]
async fn a_read_right_after_a_write_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir).await;
    let masker = gantry_engine::masker::Masker::new();
    let mut want = String::new();
    for i in 0..200 {
        // Through both pools at once: the reads go to the read connections.
        admit(&s, &format!("r{i}")).await;
        let newest = s.deliveries(1).await.unwrap();
        assert_eq!(
            newest[0].delivery_id.as_deref(),
            Some(format!("r{i}").as_str())
        );
        let line = format!("line {i}\n");
        s.append_log(9, &line, &masker).await.unwrap();
        want.push_str(&line);
        assert_eq!(s.job_log(9).await.unwrap(), want);
    }
}

#[tokio::test]
async fn the_read_pool_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir).await;
    let err = sqlx::query("DELETE FROM deliveries")
        .execute(&s.read)
        .await
        .expect_err("a write through the read pool");
    assert!(err.to_string().contains("readonly"), "{err}");
}

#[tokio::test]
async fn an_in_memory_store_reads_what_it_wrote() {
    // A second pool on `:memory:` would be another, empty database.
    let s = Store::open("sqlite::memory:").await.unwrap();
    admit(&s, "m1").await;
    assert_eq!(s.deliveries(10).await.unwrap().len(), 1);
}

#[test]
fn read_urls_are_read_only_and_keep_the_other_parameters() {
    use crate::store::sqlite_read_url as r;
    assert_eq!(
        r("sqlite:///d/gantry.db?mode=rwc").as_deref(),
        Some("sqlite:///d/gantry.db?mode=ro")
    );
    assert_eq!(
        r("sqlite://g.db?cache=private&mode=rw").as_deref(),
        Some("sqlite://g.db?cache=private&mode=ro")
    );
    assert_eq!(r("sqlite://g.db").as_deref(), Some("sqlite://g.db?mode=ro"));
    assert_eq!(r("sqlite::memory:"), None);
    assert_eq!(r("sqlite://x.db?mode=memory"), None);
    assert_eq!(r("postgres://u@h/db"), None);
}
