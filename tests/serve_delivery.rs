//! Delivery on the real `gantry serve` (SQLite), as in `gantry run`: a push runs a deploy
//! job whose environment the commit's `.gantry/config.yml` gives a health check (a service
//! on 127.0.0.1 answering unhealthy), a rollback script and Slack (a recording server on
//! 127.0.0.1). The server runs the health check, rolls back, tells Slack with links to its
//! own run page (`url:` of the server config), and records the verdict and the rollback as
//! deployment statuses behind GitHub's REST paths. The commit's own reviewers count for
//! nothing: protection comes from the server config only.

#[path = "serve_support.rs"]
mod serve_support;

use std::sync::Arc;

use gantry_tests::http::{Recorder, Request};
use serde_json::{Value as J, json};
use serve_support::*;

const ZERO: &str = "0000000000000000000000000000000000000000";

const WORKFLOW: &str = r#"name: cd
on: push
jobs:
  deploy:
    runs-on: self-hosted
    environment: staging
    steps:
      - run: echo "deploying $GITHUB_SHA"
"#;

fn repo_config(health_url: &str, slack_url: &str) -> String {
    format!(
        r#"environments:
  staging:
    reviewers: [mallory]
    health_check:
      interval: 50ms
      count: 2
      probes:
        - name: api
          http: {{ url: "{health_url}", expect_status: [200] }}
      on_failure: rollback
    rollback:
      run: echo "rolling back $GANTRY_FAILED_SHA in $GANTRY_ENVIRONMENT"
notifications:
  slack:
    webhook_url: "{slack_url}"
"#
    )
}

async fn api_get(s: &Server, path: &str) -> J {
    s.octocrab(READER_TOKEN)
        .get(path, None::<&()>)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unhealthy_deploy_rolls_back_tells_slack_and_records_statuses() {
    let slack = Recorder::slack();
    let health = Recorder::start(Arc::new(|_r: &Request, _| {
        (503, r#"{"status":"down"}"#.into())
    }));
    let bare = BareRepo::new();
    let config = repo_config(&health.url("/health"), &slack.url("/services/T1/B2/hook"));
    let sha = bare.commit(
        "main",
        &[
            (".github/workflows/cd.yml", WORKFLOW),
            (".gantry/config.yml", &config),
        ],
        "deploy",
    );
    let s = Server::start_with(&config_yaml(&bare.url(), None), &[]);
    let body = serde_json::to_vec(&github_push(
        "acme/shop",
        "refs/heads/main",
        ZERO,
        &sha,
        "deploy",
    ))
    .unwrap();
    let (st, text) = deliver(&s.base, "github", "push", &guid(), &body, Some(SECRET)).await;
    assert_eq!(st, 202, "{text}");
    let run = run_of(&s, &sha).await.id.0;
    let done = wait_for("the run to complete", || async {
        let r = s
            .octocrab(READER_TOKEN)
            .workflows("acme", "shop")
            .get(run.into())
            .await
            .ok()?;
        (r.status == "completed").then_some(r)
    })
    .await;
    assert_eq!(
        done.conclusion.as_deref(),
        Some("failure"),
        "an unhealthy deployment fails its job:\n{}",
        s.output()
    );
    assert!(
        health.requests().len() >= 2,
        "the health check measured the service: {:?}",
        health.requests()
    );

    // The deployment's statuses: created, in progress, the health verdict, the rollback.
    let deployments = api_get(&s, "/repos/acme/shop/deployments?environment=staging").await;
    let list = deployments.as_array().expect("a deployment list");
    assert_eq!(list.len(), 1, "{deployments}");
    let id = list[0]["id"].as_i64().unwrap();
    assert_eq!(list[0]["sha"], sha);
    let statuses = api_get(&s, &format!("/repos/acme/shop/deployments/{id}/statuses")).await;
    let statuses = statuses.as_array().unwrap();
    let states: Vec<&str> = statuses
        .iter()
        .filter_map(|s| s["state"].as_str())
        .collect();
    // Newest first, as GitHub lists them.
    assert_eq!(states[..2], ["inactive", "failure"], "{statuses:?}");
    let verdict = statuses[1]["description"].as_str().unwrap();
    assert!(verdict.starts_with("health check failed"), "{verdict}");
    assert!(verdict.contains("api"), "the probe is named: {verdict}");
    let rollback = statuses[0]["description"].as_str().unwrap();
    assert!(rollback.starts_with("rolled back"), "{rollback}");

    // Slack: the rollback and the failed run, each linking the server's run page.
    let run_page = format!("http://ci.example.test/acme/shop/actions/runs/{run}");
    let reqs = wait_for("Slack's run message", || async {
        let reqs = slack.requests();
        (reqs.len() >= 2).then_some(reqs)
    })
    .await;
    let bodies: Vec<String> = reqs.iter().map(|r| r.body.to_string()).collect();
    assert!(
        reqs.iter().all(|r| r.path == "/services/T1/B2/hook"),
        "{bodies:?}"
    );
    let rolled = bodies
        .iter()
        .find(|b| b.contains("rolled back"))
        .unwrap_or_else(|| panic!("no rollback message: {bodies:?}"));
    assert!(rolled.contains(&run_page), "{rolled}");
    let failed = bodies
        .iter()
        .find(|b| b.contains("failed") && !b.contains("rolled back"))
        .unwrap_or_else(|| panic!("no run-failed message: {bodies:?}"));
    assert!(failed.contains(&run_page), "{failed}");

    // The commit named a reviewer for staging; the server config protects nothing there,
    // so no review was ever pending.
    let reviews = api_get(
        &s,
        &format!("/repos/acme/shop/actions/runs/{run}/approvals"),
    )
    .await;
    assert_eq!(reviews, json!([]), "{reviews}");
}
