//! Interrupting what `gantry serve` executes, end to end: cancelling a Docker job from the
//! API stops and removes its container (`docker ps` is asked, not the server); `kill -9`
//! of the server mid-run on PostgreSQL, a restart on the same database, and a re-run of
//! the interrupted run through the API.

#[path = "serve_support.rs"]
mod serve_support;

use std::process::Command;

use octocrab::models::workflows::Conclusion;
use serve_support::*;

/// The full ids of the containers `docker ps` lists (`-a`: stopped ones too).
fn containers(all: bool) -> Vec<String> {
    let mut cmd = Command::new("docker");
    cmd.args(["ps", "--no-trunc", "--format", "{{.ID}}"]);
    if all {
        cmd.arg("-a");
    }
    let out = cmd.output().expect("docker ps");
    assert!(out.status.success(), "docker ps failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_from_the_api_stops_the_docker_job_and_its_container() {
    if !gantry_tests::docker_ready(&["gantry/debian:bookworm"]) {
        eprintln!("SKIPPED: Docker or gantry/debian:bookworm missing");
        return;
    }
    let wf = r#"name: CI
on: push
jobs:
  in-docker:
    runs-on: ubuntu-latest
    steps:
      - run: echo "before the wait"
      - run: |
          echo "cid=$(cat /etc/hostname)="
          sleep 300
          echo "slept to the end"
"#;
    let bare = BareRepo::new();
    let sha = bare.commit("main", &[(".github/workflows/ci.yml", wf)], "docker");
    let s = Server::start_with(&config_yaml(&bare.url(), None), &[]);
    push(&s, ZERO, &sha, "docker").await;
    let run = run_of(&s, &sha).await;
    // The log is readable while the job runs: it names the container.
    let short = wait_for("the step to name its container", || async {
        let jobs = jobs(&s, run.id.0).await;
        let log = job_log(&s, jobs.first()?).await;
        let id = log
            .split("cid=")
            .filter_map(|rest| rest.split_once('='))
            .map(|(id, _)| id.to_string())
            .find(|id| id.len() >= 12 && id.bytes().all(|b| b.is_ascii_hexdigit()))?;
        Some(id)
    })
    .await;
    let id = containers(false)
        .into_iter()
        .find(|c| c.starts_with(&short))
        .unwrap_or_else(|| panic!("container {short} is not running\n{}", s.output()));

    s.octocrab(WRITER_TOKEN)
        .actions()
        .cancel_workflow_run("acme", "shop", run.id)
        .await
        .expect("cancel");
    let run = completed(&s, run.id.0).await;
    assert_eq!(run.conclusion.as_deref(), Some("cancelled"));
    let jobs = jobs(&s, run.id.0).await;
    assert_eq!(
        jobs[0].conclusion,
        Some(Conclusion::Cancelled),
        "{:?}",
        jobs[0]
    );
    wait_for("the container to be gone", || async {
        (!containers(true).contains(&id)).then_some(())
    })
    .await;
    let log = job_log(&s, &jobs[0]).await;
    assert!(log.contains("before the wait"), "{log}");
    assert!(
        !log.contains("slept to the end"),
        "the step was stopped:\n{log}"
    );
}
