//! The server's `limits:` on the real `gantry serve` (SQLite, host jobs, signed GitHub
//! pushes, octocrab): a job's own `timeout-minutes` above `job_timeout_minutes` is cut to
//! it (the job is cancelled at the cap, its processes gone, its log says so once), and a
//! run waiting for a deployment review is cancelled at `run_timeout_minutes` with the
//! reason in its log, its annotations and on its page.

#[path = "serve_support.rs"]
mod serve_support;

use std::time::{Duration, Instant};

use octocrab::models::workflows::{Conclusion, Status};
use serde_json::Value as J;
use serve_support::*;

/// The standard config with `limits:` added.
fn config(repo_url: &str, limits: &str) -> String {
    let base = config_yaml(repo_url, None);
    assert!(!base.contains("limits:"), "the standard config changed");
    format!("{base}limits: {limits}\n")
}

/// A step that would sleep 30 s (its pid in `pid_file`) in a job that allows 100 minutes.
fn sleepy_workflow(pid_file: &std::path::Path) -> String {
    format!(
        r#"name: CI
on: push
jobs:
  slow:
    runs-on: self-hosted
    timeout-minutes: 100
    steps:
      - run: echo "before the sleep"
      - run: |
          sleep 30 &
          echo $! > {pid}
          wait
          echo "slept to the end"
"#,
        pid = pid_file.display()
    )
}

/// `job_timeout_minutes: 0.05` (3 s) caps `timeout-minutes: 100`: the job is cancelled
/// after about 3 s, long before its 30 s sleep ends, and the sleep is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_cancelled_at_the_servers_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let pid_file = tmp.path().join("sleep.pid");
    let bare = BareRepo::new();
    let sha = bare.commit(
        "main",
        &[(".github/workflows/ci.yml", &sleepy_workflow(&pid_file))],
        "sleepy",
    );
    let s = Server::start_with(&config(&bare.url(), "{ job_timeout_minutes: 0.05 }"), &[]);
    push(&s, ZERO, &sha, "sleepy").await;
    let run = run_of(&s, &sha).await;
    let pid = read_pid(&pid_file).await;
    let started = Instant::now();
    let run = run_until(&s, run.id.0, 25, "the capped job to end", |r| {
        r.status == "completed"
    })
    .await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "the cap (3 s) did not stop the 30 s step: {took:?}"
    );
    assert_eq!(
        run.conclusion.as_deref(),
        Some("cancelled"),
        "{}",
        s.output()
    );
    wait_for("the step's sleep to be stopped", || async {
        (!pid_alive(pid)).then_some(())
    })
    .await;

    let jobs = jobs(&s, run.id.0).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        jobs[0].conclusion,
        Some(Conclusion::Cancelled),
        "{:?}",
        jobs[0]
    );
    let log = job_log(&s, &jobs[0]).await;
    let note = "The job's timeout-minutes (100) is above the server's job_timeout_minutes \
                (0.05): the job is cancelled after 0.05 minutes.";
    assert_eq!(log.matches(note).count(), 1, "the cap is said once:\n{log}");
    assert!(
        log.contains("has exceeded the maximum execution time of 0.05 minutes"),
        "{log}"
    );
    assert!(log.contains("before the sleep"), "{log}");
    assert!(
        !log.contains("slept to the end"),
        "the step was stopped:\n{log}"
    );
}

/// A job within the cap runs as it asks, without the note.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_within_the_cap_is_not_touched() {
    let wf = r#"name: CI
on: push
jobs:
  quick:
    runs-on: self-hosted
    timeout-minutes: 1
    steps:
      - run: sleep 1 && echo "quick done"
"#;
    let bare = BareRepo::new();
    let sha = bare.commit("main", &[(".github/workflows/ci.yml", wf)], "quick");
    let s = Server::start_with(&config(&bare.url(), "{ job_timeout_minutes: 2 }"), &[]);
    push(&s, ZERO, &sha, "quick").await;
    let run = completed(&s, run_of(&s, &sha).await.id.0).await;
    assert_eq!(run.conclusion.as_deref(), Some("success"), "{}", s.output());
    let log = job_log(&s, &jobs(&s, run.id.0).await[0]).await;
    assert!(log.contains("quick done"), "{log}");
    assert!(!log.contains("job_timeout_minutes"), "{log}");
}

const DEPLOY_WORKFLOW: &str = r#"name: Deploy
on: push
jobs:
  build:
    runs-on: self-hosted
    steps:
      - run: echo "built"
  deploy:
    needs: build
    runs-on: self-hosted
    environment: production
    steps:
      - run: echo "deployed"
"#;

async fn get_json(s: &Server, path: &str) -> J {
    s.octocrab(READER_TOKEN)
        .get(path, None::<&()>)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// `run_timeout_minutes: 0.1` (6 s): the deploy job waits for bob, who never decides; at
/// the run timeout the run is cancelled, the wait ends, and the reason is in the job's
/// log, its annotations and on the run's page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_waiting_for_a_review_is_cancelled_at_the_run_timeout() {
    let bare = BareRepo::new();
    let sha = bare.commit(
        "main",
        &[(".github/workflows/deploy.yml", DEPLOY_WORKFLOW)],
        "deploy",
    );
    let s = Server::start_with(&config(&bare.url(), "{ run_timeout_minutes: 0.1 }"), &[]);
    let pushed = Instant::now();
    push(&s, ZERO, &sha, "deploy").await;
    let id = run_of(&s, &sha).await.id.0;
    run_until(&s, id, 30, "the run to wait for bob", |r| {
        r.status == "waiting"
    })
    .await;
    let pending = get_json(
        &s,
        &format!("/repos/acme/shop/actions/runs/{id}/pending_deployments"),
    )
    .await;
    assert_eq!(pending.as_array().map(Vec::len), Some(1), "{pending}");

    let run = run_until(&s, id, 40, "the run timeout", |r| r.status == "completed").await;
    let took = pushed.elapsed();
    assert!(took >= Duration::from_secs(6), "cancelled early: {took:?}");
    assert_eq!(
        run.conclusion.as_deref(),
        Some("cancelled"),
        "{}",
        s.output()
    );

    let reason = "the run exceeded the server's run_timeout_minutes (0.1)";
    let jobs = jobs(&s, id).await;
    let deploy = jobs
        .iter()
        .find(|j| j.name == "deploy")
        .expect("deploy job");
    let build = jobs.iter().find(|j| j.name == "build").expect("build job");
    assert_eq!(build.conclusion, Some(Conclusion::Success));
    assert_eq!(deploy.status, Status::Completed);
    assert_eq!(deploy.conclusion, Some(Conclusion::Cancelled), "{deploy:?}");
    let log = job_log(&s, deploy).await;
    assert_eq!(log.matches(reason).count(), 1, "{log}");
    assert!(!log.contains("deployed"), "{log}");
    assert!(
        !job_log(&s, build).await.contains(reason),
        "a finished job's log is left alone"
    );

    // The wait ended: nothing pending, the deployment no longer waits.
    let pending = get_json(
        &s,
        &format!("/repos/acme/shop/actions/runs/{id}/pending_deployments"),
    )
    .await;
    assert_eq!(pending.as_array().map(Vec::len), Some(0), "{pending}");
    let deployments = get_json(&s, "/repos/acme/shop/deployments").await;
    let dep = &deployments.as_array().expect("deployments")[0];
    let statuses = get_json(
        &s,
        &format!("/repos/acme/shop/deployments/{}/statuses", dep["id"]),
    )
    .await;
    assert_eq!(statuses[0]["state"], "inactive", "{statuses}");

    // The reason as the API's annotations and the run's page show it.
    let notes = get_json(
        &s,
        &format!("/repos/acme/shop/check-runs/{}/annotations", deploy.id),
    )
    .await;
    let notes: Vec<&J> = notes
        .as_array()
        .expect("annotations")
        .iter()
        .filter(|n| n["title"] == "Run timeout")
        .collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["annotation_level"], "failure");
    assert_eq!(notes[0]["message"], reason);
    let page = reqwest::Client::new()
        .get(format!("{}/acme/shop/actions/runs/{id}", s.base))
        .bearer_auth(READER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("cancelled"), "{html}");
    assert!(html.contains(reason), "the page shows why:\n{html}");
    assert!(
        s.output().contains(reason),
        "the server's log says why:\n{}",
        s.output()
    );
}
