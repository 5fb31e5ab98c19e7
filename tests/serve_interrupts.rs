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

fn slow_unless_released(pid_file: &std::path::Path, release: &std::path::Path) -> String {
    format!(
        r#"name: CI
on: push
jobs:
  slow:
    runs-on: self-hosted
    steps:
      - run: echo "before the wait"
      - run: |
          if [ "$(cat mode)" = slow ] && [ ! -f "{release}" ]; then
            sleep 300 &
            echo $! > "{pid}"
            wait
          fi
          echo "mode $(cat mode) done"
"#,
        pid = pid_file.display(),
        release = release.display()
    )
}

/// The run's JSON once its attempt `attempt` has completed.
async fn attempt_completed(s: &Server, id: u64, attempt: u64) -> serde_json::Value {
    wait_for("the attempt to complete", || async {
        let path = format!("/repos/acme/shop/actions/runs/{id}");
        let j: serde_json::Value = s.octocrab(READER_TOKEN).get(path, None::<&()>).await.ok()?;
        (j["status"] == "completed" && j["run_attempt"].as_u64() == Some(attempt)).then_some(j)
    })
    .await
}

/// `kill -9` mid-step on PostgreSQL, restart on the same database (and data directory):
/// the started job is failed with the reason and what it logged is kept, the queued run
/// starts and succeeds, and the interrupted run re-run through the API succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_on_postgres_then_restart_and_rerun_the_interrupted_run() {
    let Some(pg) = postgres() else {
        eprintln!("SKIPPED: Docker or gantry/postgres:15 missing (GANTRY_REQUIRE_DOCKER=1 fails)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let pid_file = tmp.path().join("sleep.pid");
    let release = tmp.path().join("release");
    let data = tmp.path().join("data");
    let data_arg = data.display().to_string();
    let bare = BareRepo::new();
    let wf = slow_unless_released(&pid_file, &release);
    let slow = bare.commit(
        "main",
        &[(".github/workflows/ci.yml", &wf), ("mode", "slow")],
        "slow",
    );
    let config = config_yaml(&bare.url(), Some(&pg.url)).replace("capacity: 2", "capacity: 1");
    let mut s = Server::start_with(&config, &["--data", &data_arg]);
    push(&s, ZERO, &slow, "slow").await;
    let run1 = run_of(&s, &slow).await;
    let pid = read_pid(&pid_file).await;
    let fast = bare.commit("main", &[("mode", "fast")], "fast");
    push(&s, &slow, &fast, "fast").await;
    let run2 = run_of(&s, &fast).await;
    assert_eq!(run2.status, "queued");
    s.kill_hard();
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }

    let s = Server::start_with(&config, &["--data", &data_arg]);
    let run1 = completed(&s, run1.id.0).await;
    assert_eq!(
        run1.conclusion.as_deref(),
        Some("failure"),
        "{}",
        s.output()
    );
    let jobs1 = jobs(&s, run1.id.0).await;
    assert_eq!(jobs1[0].conclusion, Some(Conclusion::Failure));
    let log = job_log(&s, &jobs1[0]).await;
    assert!(
        log.contains("before the wait"),
        "what was recorded is kept:\n{log}"
    );
    assert!(
        log.contains("the server stopped while this job ran"),
        "{log}"
    );
    let run2 = completed(&s, run2.id.0).await;
    assert_eq!(
        run2.conclusion.as_deref(),
        Some("success"),
        "{}",
        s.output()
    );
    assert_eq!(
        log.matches("before the wait").count(),
        1,
        "not run again by itself"
    );

    // The re-run of the interrupted run: a new attempt of every job, which succeeds.
    std::fs::write(&release, "").unwrap();
    let path = format!("/repos/acme/shop/actions/runs/{}/rerun", run1.id.0);
    let _: serde_json::Value = s
        .octocrab(WRITER_TOKEN)
        .post(path, None::<&()>)
        .await
        .or_else(|e| match e {
            // GitHub answers 201 with an empty body.
            octocrab::Error::Serde { .. } | octocrab::Error::Json { .. } => {
                Ok(serde_json::json!({}))
            }
            e => Err(e),
        })
        .expect("re-run");
    let again = attempt_completed(&s, run1.id.0, 2).await;
    assert_eq!(again["conclusion"], "success", "{again}\n{}", s.output());
    let jobs = jobs(&s, run1.id.0).await;
    let log = job_log(&s, &jobs[0]).await;
    assert!(log.contains("mode slow done"), "{log}");
}
