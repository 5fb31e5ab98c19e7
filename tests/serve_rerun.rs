//! "Re-run failed jobs" on the real `gantry serve`: only the failed job runs again; the
//! job that succeeded is not executed a second time, and its outputs reach the re-run job
//! through `needs` exactly as in the first attempt (as on GitHub).

#[path = "serve_support.rs"]
mod serve_support;

use octocrab::models::workflows::Run;
use serve_support::*;

const ZERO: &str = "0000000000000000000000000000000000000000";

fn workflow(state: &std::path::Path) -> String {
    let s = state.display();
    format!(
        r#"name: ci
on: push
jobs:
  build:
    runs-on: self-hosted
    outputs:
      v: ${{{{ steps.o.outputs.v }}}}
    steps:
      - id: o
        run: |
          v="built-$$-$(date +%s%N)"
          echo "v=$v" >> "$GITHUB_OUTPUT"
          echo "$v" >> "{s}/builds"
  flaky:
    runs-on: self-hosted
    needs: build
    steps:
      - run: |
          test -f "{s}/fixed"
          echo "flaky got ${{{{ needs.build.outputs.v }}}}"
"#
    )
}

async fn run_status(s: &Server, id: u64) -> Run {
    s.octocrab(READER_TOKEN)
        .workflows("acme", "shop")
        .get(id.into())
        .await
        .expect("get run")
}

async fn completed(s: &Server, id: u64, attempt: u64) -> Run {
    wait_for("the run to complete", || async {
        let path = format!("/repos/acme/shop/actions/runs/{id}");
        let j: serde_json::Value = s.octocrab(READER_TOKEN).get(path, None::<&()>).await.ok()?;
        let done = j["status"] == "completed" && j["run_attempt"].as_u64() == Some(attempt);
        if done {
            Some(run_status(s, id).await)
        } else {
            None
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_failed_jobs_runs_only_the_failed_job_with_the_recorded_outputs() {
    let state = tempfile::tempdir().unwrap();
    let bare = BareRepo::new();
    let sha = bare.commit(
        "main",
        &[(".github/workflows/ci.yml", &workflow(state.path()))],
        "ci",
    );
    let s = Server::start_with(&config_yaml(&bare.url(), None), &[]);
    let body = serde_json::to_vec(&github_push(
        "acme/shop",
        "refs/heads/main",
        ZERO,
        &sha,
        "ci",
    ))
    .unwrap();
    let (st, text) = deliver(&s.base, "github", "push", &guid(), &body, Some(SECRET)).await;
    assert_eq!(st, 202, "{text}");
    let run = run_of(&s, &sha).await.id.0;
    let first = completed(&s, run, 1).await;
    assert_eq!(
        first.conclusion.as_deref(),
        Some("failure"),
        "{}",
        s.output()
    );
    let builds = std::fs::read_to_string(state.path().join("builds")).unwrap();
    assert_eq!(builds.lines().count(), 1);
    let built = builds.trim().to_string();

    std::fs::write(state.path().join("fixed"), "").unwrap();
    let path = format!("/repos/acme/shop/actions/runs/{run}/rerun-failed-jobs");
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
        .expect("re-run failed jobs");
    let second = completed(&s, run, 2).await;
    assert_eq!(
        second.conclusion.as_deref(),
        Some("success"),
        "{}",
        s.output()
    );
    let builds = std::fs::read_to_string(state.path().join("builds")).unwrap();
    assert_eq!(
        builds.lines().count(),
        1,
        "the job that succeeded did not run again: {builds}"
    );

    let jobs = s
        .octocrab(READER_TOKEN)
        .workflows("acme", "shop")
        .list_jobs(run.into())
        .send()
        .await
        .unwrap()
        .items;
    let flaky = jobs.iter().find(|j| j.name == "flaky").expect("flaky job");
    let log = job_log(&s, flaky).await;
    assert!(
        log.contains(&format!("flaky got {built}")),
        "the re-run job sees the first attempt's outputs:\n{log}"
    );
}
