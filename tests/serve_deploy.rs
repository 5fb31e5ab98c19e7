//! A deploy job on the real `gantry serve` (SQLite) waits for its reviewer: a real bare
//! repository, signed GitHub push webhooks from alice, octocrab as bob/alice/carol. The
//! launcher runs the jobs on the host; the server's gate holds `deploy` until bob decides
//! through GitHub's REST endpoints, then releases the environment's secret to that job only.

#[path = "serve_support.rs"]
mod serve_support;

use std::time::Duration;

use octocrab::models::workflows::{Conclusion, Job, Status};
use serde_json::{Value as J, json};
use serve_support::*;
use sha2::{Digest, Sha256};

const ZERO: &str = "0000000000000000000000000000000000000000";
/// The production environment's secret; the server reads it from `DEPLOY_TOKEN`.
const DEPLOY_TOKEN: &str = "deploy-token-value-51b7";

/// The standard config with production's secret, and alice (the pusher) able to push.
fn config(repo_url: &str) -> String {
    let base = config_yaml(repo_url, None);
    let marker = "        branches: [main]\n";
    assert!(base.contains(marker), "the standard config changed");
    base.replacen(
        marker,
        "        branches: [main]\n        secrets: { DEPLOY_TOKEN: \"${DEPLOY_TOKEN}\" }\n",
        1,
    )
}

/// `gantry serve` with `DEPLOY_TOKEN` in its environment. The child inherits it from this
/// process; every test sets the same value before its first server starts.
fn start(repo_url: &str) -> Server {
    static SET: std::sync::Once = std::sync::Once::new();
    SET.call_once(|| unsafe {
        std::env::set_var("DEPLOY_TOKEN", DEPLOY_TOKEN);
        // A variable of the server's own that no config entry names: host steps must not
        // inherit it either (tokens, database URLs live in such variables).
        std::env::set_var("GANTRY_SERVER_PRIVATE", "server-private-51b7");
    });
    Server::start_with(&config(repo_url), &[])
}

/// A GitHub push of `after` by alice.
async fn push(s: &Server, before: &str, after: &str, msg: &str) {
    let mut body = github_push("acme/shop", "refs/heads/main", before, after, msg);
    body["sender"]["login"] = json!("alice");
    body["pusher"] = json!({ "name": "alice", "email": "alice@example.test" });
    let body = serde_json::to_vec(&body).unwrap();
    let (st, text) = deliver(&s.base, "github", "push", &guid(), &body, Some(SECRET)).await;
    assert_eq!(st, 202, "{text}");
}

async fn jobs(s: &Server, id: u64) -> Vec<Job> {
    s.octocrab(READER_TOKEN)
        .workflows("acme", "shop")
        .list_jobs(id.into())
        .send()
        .await
        .expect("list jobs")
        .items
}

async fn job_named(s: &Server, id: u64, name: &str) -> Job {
    let all = jobs(s, id).await;
    all.iter()
        .find(|j| j.name == name)
        .cloned()
        .unwrap_or_else(|| panic!("no job {name} in {:?}", all.iter().map(|j| &j.name)))
}

async fn job_log(s: &Server, job: &Job) -> String {
    let resp = reqwest::Client::new()
        .get(format!(
            "{}/api/v3/repos/acme/shop/actions/jobs/{}/logs",
            s.base, job.id
        ))
        .bearer_auth(READER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

/// A GET of our API as `token`: the JSON, or the status and GitHub's message.
async fn get(s: &Server, token: &str, path: &str) -> J {
    s.octocrab(token)
        .get(path, None::<&()>)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// POST of a review decision: the JSON, or the status and message of the refusal.
async fn decide(s: &Server, token: &str, run: u64, body: J) -> Result<J, (u16, String)> {
    let path = format!("/repos/acme/shop/actions/runs/{run}/pending_deployments");
    match s.octocrab(token).post(path, Some(&body)).await {
        Ok(v) => Ok(v),
        Err(octocrab::Error::GitHub { source, .. }) => {
            Err((source.status_code.as_u16(), source.message))
        }
        Err(e) => panic!("review request failed: {e}"),
    }
}

/// Waits until the run shows `waiting` with its pending deployment; that deployment as
/// `token` sees it.
async fn pending_as(s: &Server, token: &str, run: u64) -> J {
    run_until(s, run, 120, "the run to wait", |r| r.status == "waiting").await;
    let path = format!("/repos/acme/shop/actions/runs/{run}/pending_deployments");
    let list = get(s, token, &path).await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "one pending deployment: {list:?}");
    list[0].clone()
}

fn decision(env_id: &J, state: &str, comment: &str) -> J {
    json!({ "environment_ids": [env_id], "state": state, "comment": comment })
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// `build` says whether it sees the environment's secret (it must not); `deploy` at
/// production prints the secret's length and digest, and the secret itself (masked).
const DEPLOY_WORKFLOW: &str = r#"name: Deploy
on: push
jobs:
  build:
    runs-on: self-hosted
    steps:
      - run: |
          if [ -n "$T" ]; then echo "build: token is set"; else echo "build: token is unset"; fi
          echo "build: server-only ${GANTRY_SERVER_PRIVATE:-unset}"
          if [ -n "${DEPLOY_TOKEN:-}" ]; then
            echo "build: DEPLOY_TOKEN is in the process environment"
          else
            echo "build: no DEPLOY_TOKEN in the process environment"
          fi
        env:
          T: ${{ secrets.DEPLOY_TOKEN }}
  deploy:
    needs: build
    runs-on: self-hosted
    environment: production
    steps:
      - run: |
          echo "token length ${#T}"
          echo "token sha256 $(printf %s "$T" | sha256sum | cut -d' ' -f1)"
          echo "token echoed [$T]"
        env:
          T: ${{ secrets.DEPLOY_TOKEN }}
"#;

/// The second commit: a build step that echoes the secret, and a delivery config that
/// tries to drop production's reviewers (the server's rules do not come from commits).
const DEPLOY_WORKFLOW_ECHO: &str = r#"name: Deploy
on: push
jobs:
  build:
    runs-on: self-hosted
    steps:
      - run: |
          if [ -n "$T" ]; then echo "build: token is set"; else echo "build: token is unset"; fi
          if [ -n "${DEPLOY_TOKEN:-}" ]; then
            echo "build: DEPLOY_TOKEN is in the process environment"
          else
            echo "build: no DEPLOY_TOKEN in the process environment"
          fi
        env:
          T: ${{ secrets.DEPLOY_TOKEN }}
      - run: echo "build echoes [${{ secrets.DEPLOY_TOKEN }}]"
  deploy:
    needs: build
    runs-on: self-hosted
    environment: production
    steps:
      - run: echo "deploy length ${#T}"
        env:
          T: ${{ secrets.DEPLOY_TOKEN }}
"#;

const NO_REVIEWERS_CONFIG: &str = r#"environments:
  production:
    reviewers: []
    required_approvals: 0
"#;

/// Bob's approval after alice's refused one: the deploy job runs with the secret, the
/// run succeeds, approvals and the deployment are recorded. Then a commit that rewrites
/// `.gantry/config.yml` still waits for bob, and no job before the gate sees the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_waits_for_bob_and_a_commit_cannot_drop_him() {
    let bare = BareRepo::new();
    let sha = bare.commit(
        "main",
        &[(".github/workflows/deploy.yml", DEPLOY_WORKFLOW)],
        "deploy",
    );
    let s = start(&bare.url());
    push(&s, ZERO, &sha, "deploy").await;
    let run = run_of(&s, &sha).await.id.0;

    let seen_by_alice = pending_as(&s, ADMIN_TOKEN, run).await;
    assert_eq!(seen_by_alice["environment"]["name"], "production");
    assert_eq!(seen_by_alice["current_user_can_approve"], false);
    let reviewers: Vec<&str> = seen_by_alice["reviewers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["reviewer"]["login"].as_str())
        .collect();
    assert_eq!(reviewers, ["bob"]);
    let seen_by_bob = pending_as(&s, WRITER_TOKEN, run).await;
    assert_eq!(seen_by_bob["current_user_can_approve"], true);
    let env_id = seen_by_bob["environment"]["id"].clone();
    assert_eq!(job_named(&s, run, "deploy").await.status, Status::Waiting);
    let build = job_named(&s, run, "build").await;
    assert_eq!(build.conclusion, Some(Conclusion::Success));
    let log = job_log(&s, &build).await;
    assert!(
        log.contains("build: token is unset"),
        "a job before the gate has no environment secret:\n{log}"
    );
    assert!(
        log.contains("build: server-only unset"),
        "host steps inherit only the basics of the server's environment:\n{log}"
    );
    assert!(
        log.contains("build: no DEPLOY_TOKEN in the process environment"),
        "{log}"
    );

    // alice pushed: she may not approve her own deployment (nor is she a reviewer).
    let (status, message) = decide(&s, ADMIN_TOKEN, run, decision(&env_id, "approved", "mine"))
        .await
        .expect_err("alice's approval was accepted");
    assert_eq!(status, 422, "{message}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = run_until(&s, run, 120, "the run to still wait", |_| true).await;
    assert_eq!(
        r.status, "waiting",
        "alice's refused approval released nothing"
    );
    assert_eq!(job_named(&s, run, "deploy").await.status, Status::Waiting);

    decide(
        &s,
        WRITER_TOKEN,
        run,
        decision(&env_id, "approved", "ship it, bob"),
    )
    .await
    .expect("bob's approval");
    let done = run_until(&s, run, 120, "the run to complete", |r| {
        r.status == "completed"
    })
    .await;
    assert_eq!(
        done.conclusion.as_deref(),
        Some("success"),
        "{}",
        s.output()
    );
    let deploy = job_named(&s, run, "deploy").await;
    assert_eq!(deploy.conclusion, Some(Conclusion::Success));
    let log = job_log(&s, &deploy).await;
    assert!(
        log.contains(&format!("token length {}", DEPLOY_TOKEN.len())),
        "the deploy step got the environment secret:\n{log}"
    );
    assert!(
        log.contains(&format!("token sha256 {}", sha256_hex(DEPLOY_TOKEN))),
        "{log}"
    );
    assert!(log.contains("token echoed [***]"), "{log}");
    assert!(!log.contains(DEPLOY_TOKEN), "{log}");

    let approvals = get(
        &s,
        READER_TOKEN,
        &format!("/repos/acme/shop/actions/runs/{run}/approvals"),
    )
    .await;
    let approvals = approvals.as_array().unwrap();
    assert_eq!(
        approvals.len(),
        1,
        "only bob's decision counts: {approvals:?}"
    );
    assert_eq!(approvals[0]["user"]["login"], "bob");
    assert_eq!(approvals[0]["state"], "approved");
    assert_eq!(approvals[0]["comment"], "ship it, bob");

    let deployments = get(&s, READER_TOKEN, "/repos/acme/shop/deployments").await;
    let deployments = deployments.as_array().unwrap();
    assert_eq!(deployments.len(), 1, "{deployments:?}");
    let d = &deployments[0];
    assert_eq!(d["sha"], sha.as_str());
    assert_eq!(d["environment"], "production");
    assert_eq!(d["ref"], "main");
    assert_eq!(d["state"], "success", "{d}");
    let statuses = get(
        &s,
        READER_TOKEN,
        &format!("/repos/acme/shop/deployments/{}/statuses", d["id"]),
    )
    .await;
    let states: Vec<&str> = statuses
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["state"].as_str())
        .collect();
    assert!(states.contains(&"success"), "{states:?}");

    // Second push: the commit drops production's reviewers in its own delivery config and
    // echoes the secret in a job before the gate.
    let sha2 = bare.commit(
        "main",
        &[
            (".github/workflows/deploy.yml", DEPLOY_WORKFLOW_ECHO),
            (".gantry/config.yml", NO_REVIEWERS_CONFIG),
        ],
        "no reviewers",
    );
    push(&s, &sha, &sha2, "no reviewers").await;
    let run2 = run_of(&s, &sha2).await.id.0;
    let pending = pending_as(&s, WRITER_TOKEN, run2).await;
    assert_eq!(pending["current_user_can_approve"], true);
    assert_eq!(pending["reviewers"][0]["reviewer"]["login"], "bob");
    assert_eq!(job_named(&s, run2, "deploy").await.status, Status::Waiting);
    let build = job_named(&s, run2, "build").await;
    let log = job_log(&s, &build).await;
    assert!(log.contains("build: token is unset"), "{log}");
    assert!(log.contains("build echoes []"), "{log}");
    assert!(
        log.contains("build: no DEPLOY_TOKEN in the process environment"),
        "{log}"
    );
    decide(
        &s,
        WRITER_TOKEN,
        run2,
        decision(&pending["environment"]["id"], "approved", "ok"),
    )
    .await
    .expect("bob's approval");
    let done = run_until(&s, run2, 120, "the second run to complete", |r| {
        r.status == "completed"
    })
    .await;
    assert_eq!(
        done.conclusion.as_deref(),
        Some("success"),
        "{}",
        s.output()
    );
    let log = job_log(&s, &job_named(&s, run2, "deploy").await).await;
    assert!(
        log.contains(&format!("deploy length {}", DEPLOY_TOKEN.len())),
        "{log}"
    );
    assert!(!s.output().contains(DEPLOY_TOKEN));
}

/// Bob's rejection with a comment fails the deploy job; its log carries the comment, the
/// run fails, the deployment is recorded failed and the step never ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejection_fails_the_deploy_with_the_comment() {
    let bare = BareRepo::new();
    let sha = bare.commit(
        "main",
        &[(".github/workflows/deploy.yml", DEPLOY_WORKFLOW)],
        "deploy",
    );
    let s = start(&bare.url());
    push(&s, ZERO, &sha, "deploy").await;
    let run = run_of(&s, &sha).await.id.0;
    let pending = pending_as(&s, WRITER_TOKEN, run).await;
    let comment = "not on a Friday";
    decide(
        &s,
        WRITER_TOKEN,
        run,
        decision(&pending["environment"]["id"], "rejected", comment),
    )
    .await
    .expect("bob's rejection");
    let done = run_until(&s, run, 120, "the run to complete", |r| {
        r.status == "completed"
    })
    .await;
    assert_eq!(
        done.conclusion.as_deref(),
        Some("failure"),
        "{}",
        s.output()
    );
    let deploy = job_named(&s, run, "deploy").await;
    assert_eq!(deploy.conclusion, Some(Conclusion::Failure));
    let log = job_log(&s, &deploy).await;
    assert!(
        log.contains(&format!("deployment rejected by bob: {comment}")),
        "the log says who rejected and why:\n{log}"
    );
    assert!(
        !log.contains("token length"),
        "the step did not run:\n{log}"
    );
    let approvals = get(
        &s,
        READER_TOKEN,
        &format!("/repos/acme/shop/actions/runs/{run}/approvals"),
    )
    .await;
    assert_eq!(approvals[0]["state"], "rejected");
    assert_eq!(approvals[0]["comment"], comment);
    let deployments = get(&s, READER_TOKEN, "/repos/acme/shop/deployments").await;
    assert_eq!(deployments[0]["state"], "failure", "{deployments}");
}
