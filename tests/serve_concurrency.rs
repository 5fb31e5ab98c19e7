//! Workflow-level concurrency groups across runs on the real `gantry serve` (SQLite):
//! pushes of a real bare repository, signed GitHub webhooks, statuses read through the
//! REST API with octocrab. A group holds one running and one pending run; a newer pending
//! run replaces (cancels) the older one; `cancel-in-progress` cancels the running one.
//! The first run's step waits for a file the test creates, so the order is the test's,
//! not the clock's.

#[path = "serve_support.rs"]
mod serve_support;

use octocrab::models::workflows::Run;
use serve_support::*;

const ZERO: &str = "0000000000000000000000000000000000000000";

fn workflow(release: &std::path::Path, cancel_in_progress: bool) -> String {
    format!(
        r#"name: deploy
on: push
concurrency:
  group: Deploy-${{{{ github.ref }}}}
  cancel-in-progress: {cancel_in_progress}
jobs:
  work:
    runs-on: self-hosted
    steps:
      - run: |
          while [ ! -f "{}" ]; do sleep 0.1; done
          echo "worked on $GITHUB_SHA"
"#,
        release.display()
    )
}

async fn push(s: &Server, before: &str, after: &str) {
    let body = github_push("acme/shop", "refs/heads/main", before, after, "change");
    let body = serde_json::to_vec(&body).unwrap();
    let (st, text) = deliver(&s.base, "github", "push", &guid(), &body, Some(SECRET)).await;
    assert_eq!(st, 202, "{text}");
}

async fn run_status(s: &Server, id: u64) -> Run {
    s.octocrab(READER_TOKEN)
        .workflows("acme", "shop")
        .get(id.into())
        .await
        .expect("get run")
}

async fn until(s: &Server, id: u64, what: &str, pred: impl Fn(&Run) -> bool) -> Run {
    wait_for(what, || async {
        let r = run_status(s, id).await;
        pred(&r).then_some(r)
    })
    .await
}

fn completed_as(r: &Run, conclusion: &str) -> bool {
    r.status == "completed" && r.conclusion.as_deref() == Some(conclusion)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_pending_run_replaces_the_older_one() {
    let release = tempfile::tempdir().unwrap();
    let flag = release.path().join("go");
    let wf = workflow(&flag, false);
    let bare = BareRepo::new();
    let s = Server::start_with(&config_yaml(&bare.url(), None), &[]);
    let sha1 = bare.commit("main", &[(".github/workflows/d.yml", &wf), ("v", "1")], "1");
    push(&s, ZERO, &sha1).await;
    let run1 = run_of(&s, &sha1).await.id.0;
    until(&s, run1, "run 1 to start", |r| r.status == "in_progress").await;

    let sha2 = bare.commit("main", &[("v", "2")], "2");
    push(&s, &sha1, &sha2).await;
    let run2 = run_of(&s, &sha2).await.id.0;
    let sha3 = bare.commit("main", &[("v", "3")], "3");
    push(&s, &sha2, &sha3).await;
    let run3 = run_of(&s, &sha3).await.id.0;

    // Run 2 was pending; run 3 replaced it. Run 1 runs on, run 3 waits for it.
    until(&s, run2, "run 2 to be cancelled", |r| {
        completed_as(r, "cancelled")
    })
    .await;
    assert_eq!(run_status(&s, run1).await.status, "in_progress");
    assert_eq!(
        run_status(&s, run3).await.status,
        "queued",
        "{}",
        s.output()
    );

    std::fs::write(&flag, "").unwrap();
    until(&s, run1, "run 1 to succeed", |r| completed_as(r, "success")).await;
    until(&s, run3, "run 3 to succeed", |r| completed_as(r, "success")).await;
    assert!(completed_as(&run_status(&s, run2).await, "cancelled"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_in_progress_cancels_the_running_run() {
    let release = tempfile::tempdir().unwrap();
    let flag = release.path().join("never");
    let wf = workflow(&flag, true);
    let bare = BareRepo::new();
    let s = Server::start_with(&config_yaml(&bare.url(), None), &[]);
    let sha1 = bare.commit("main", &[(".github/workflows/d.yml", &wf), ("v", "1")], "1");
    push(&s, ZERO, &sha1).await;
    let run1 = run_of(&s, &sha1).await.id.0;
    until(&s, run1, "run 1 to start", |r| r.status == "in_progress").await;

    // The second run's step must not wait: it has its own workflow text.
    let done = tempfile::tempdir().unwrap();
    let flag2 = done.path().join("go");
    std::fs::write(&flag2, "").unwrap();
    let sha2 = bare.commit(
        "main",
        &[
            (".github/workflows/d.yml", &workflow(&flag2, true)),
            ("v", "2"),
        ],
        "2",
    );
    push(&s, &sha1, &sha2).await;
    let run2 = run_of(&s, &sha2).await.id.0;
    until(&s, run1, "run 1 to be cancelled", |r| {
        completed_as(r, "cancelled")
    })
    .await;
    until(&s, run2, "run 2 to succeed", |r| completed_as(r, "success")).await;
}
