//! Concurrency groups (workflow- and job-level) and the executor's job pool across runs
//! on the real `gantry serve` (SQLite):
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

// Job-level groups across runs: the engine's groups are one per repository, shared by
// every run the server executes. The job of the first push waits for a file the test
// creates; each step writes when it started and ended (nanoseconds), so the order is
// measured, not assumed.

fn job_group_workflow(dir: &std::path::Path, cancel_in_progress: bool) -> String {
    format!(
        r#"name: job-groups
on: push
jobs:
  work:
    runs-on: self-hosted
    concurrency:
      group: deploy-${{{{ github.repository }}}}
      cancel-in-progress: {cancel_in_progress}
    steps:
      - run: |
          date +%s%N > "{dir}/start-$(cat v)"
          if [ "$(cat v)" = 1 ]; then
            while [ ! -f "{dir}/go" ]; do sleep 0.1; done
          fi
          date +%s%N > "{dir}/end-$(cat v)"
"#,
        dir = dir.display()
    )
}

fn stamp(dir: &std::path::Path, name: &str) -> Option<u128> {
    std::fs::read_to_string(dir.join(name))
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

async fn job_status(s: &Server, run: u64) -> (String, Option<String>) {
    let jobs = jobs(s, run).await;
    assert_eq!(jobs.len(), 1);
    let v = serde_json::to_value(&jobs[0]).unwrap();
    (
        v["status"].as_str().unwrap_or_default().to_string(),
        v["conclusion"].as_str().map(str::to_string),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_group_queues_the_next_runs_job_until_the_first_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let wf = job_group_workflow(tmp.path(), false);
    let bare = BareRepo::new();
    let s = Server::start_with(&config_yaml(&bare.url(), None), &[]);
    let sha1 = bare.commit("main", &[(".github/workflows/j.yml", &wf), ("v", "1")], "1");
    push(&s, ZERO, &sha1).await;
    let run1 = run_of(&s, &sha1).await.id.0;
    wait_for("run 1's step to start", || async {
        stamp(tmp.path(), "start-1").map(|_| ())
    })
    .await;

    let sha2 = bare.commit("main", &[("v", "2")], "2");
    push(&s, &sha1, &sha2).await;
    let run2 = run_of(&s, &sha2).await.id.0;
    // Run 2 starts (capacity 2, no workflow-level group), its job waits in the group.
    until(&s, run2, "run 2 to start", |r| r.status == "in_progress").await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(
        stamp(tmp.path(), "start-2").is_none(),
        "run 2's job started while run 1's held the group\n{}",
        s.output()
    );
    assert_eq!(job_status(&s, run2).await.0, "queued");
    assert_eq!(job_status(&s, run1).await.0, "in_progress");

    std::fs::write(tmp.path().join("go"), "").unwrap();
    until(&s, run1, "run 1 to succeed", |r| completed_as(r, "success")).await;
    until(&s, run2, "run 2 to succeed", |r| completed_as(r, "success")).await;
    let end1 = stamp(tmp.path(), "end-1").unwrap();
    let start2 = stamp(tmp.path(), "start-2").unwrap();
    assert!(
        start2 >= end1,
        "run 2's job started {start2} before run 1's ended {end1}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_group_with_cancel_in_progress_cancels_the_older_runs_job() {
    let tmp = tempfile::tempdir().unwrap();
    let wf = job_group_workflow(tmp.path(), true);
    let bare = BareRepo::new();
    let s = Server::start_with(&config_yaml(&bare.url(), None), &[]);
    let sha1 = bare.commit("main", &[(".github/workflows/j.yml", &wf), ("v", "1")], "1");
    push(&s, ZERO, &sha1).await;
    let run1 = run_of(&s, &sha1).await.id.0;
    wait_for("run 1's step to start", || async {
        stamp(tmp.path(), "start-1").map(|_| ())
    })
    .await;

    let sha2 = bare.commit("main", &[("v", "2")], "2");
    push(&s, &sha1, &sha2).await;
    let run2 = run_of(&s, &sha2).await.id.0;
    until(&s, run1, "run 1 to be cancelled", |r| {
        completed_as(r, "cancelled")
    })
    .await;
    until(&s, run2, "run 2 to succeed", |r| completed_as(r, "success")).await;
    assert_eq!(
        job_status(&s, run1).await,
        ("completed".into(), Some("cancelled".into()))
    );
    assert!(
        stamp(tmp.path(), "end-1").is_none(),
        "run 1's step was stopped"
    );
    assert!(stamp(tmp.path(), "end-2").is_some());
}

/// `executor.capacity` is one pool of job slots across runs: two runs of two parallel
/// jobs each, capacity 2, never more than two steps at once (a pool per run would run
/// four).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_executor_pool_is_shared_by_the_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let step = format!(
        r#"      - run: |
          date +%s%N > "{dir}/$GITHUB_SHA-$GITHUB_JOB.start"
          sleep 1.5
          date +%s%N > "{dir}/$GITHUB_SHA-$GITHUB_JOB.end"
"#,
        dir = tmp.path().display()
    );
    let wf = format!(
        "name: pool\non: push\njobs:\n  a:\n    runs-on: self-hosted\n    steps:\n{step}  b:\n    runs-on: self-hosted\n    steps:\n{step}"
    );
    let bare = BareRepo::new();
    let s = Server::start_with(&config_yaml(&bare.url(), None), &[]);
    let sha1 = bare.commit("main", &[(".github/workflows/p.yml", &wf), ("v", "1")], "1");
    let sha2 = bare.commit("main", &[("v", "2")], "2");
    push(&s, ZERO, &sha1).await;
    push(&s, &sha1, &sha2).await;
    let run1 = run_of(&s, &sha1).await.id.0;
    let run2 = run_of(&s, &sha2).await.id.0;
    until(&s, run1, "run 1 to succeed", |r| completed_as(r, "success")).await;
    until(&s, run2, "run 2 to succeed", |r| completed_as(r, "success")).await;

    let mut spans = Vec::new();
    for sha in [&sha1, &sha2] {
        for job in ["a", "b"] {
            let start = stamp(tmp.path(), &format!("{sha}-{job}.start")).unwrap();
            let end = stamp(tmp.path(), &format!("{sha}-{job}.end")).unwrap();
            spans.push((start, end));
        }
    }
    // The most steps running at one instant: at each start, count the spans covering it.
    let most = spans
        .iter()
        .map(|(t, _)| spans.iter().filter(|(s, e)| s <= t && t < e).count())
        .max()
        .unwrap();
    assert!(
        most <= 2,
        "{most} jobs ran at once with capacity 2: {spans:?}"
    );
}
