//! Deployment reviews on the server: the gate the run launcher gets from
//! `gantry_server::gate::for_run`, driven through GitHub's REST endpoints with octocrab
//! against the real axum router on 127.0.0.1 and a real store (SQLite; PostgreSQL once).
//! Jobs do not execute here: each test calls `admit` in a task, as the engine does before a
//! job with `environment:` starts, and decides through the API.

#[path = "serve_support.rs"]
mod serve_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use gantry_engine::gate::{
    Admission, DeliveryGates, DeploymentOutcome, DeploymentRequest, Refusal, RefusalKind,
};
use gantry_server::state::App;
use gantry_server::store_runs::{NewJob, NewRun, RunRecord};
use gantry_server::{Store, gate};
use serde_json::{Value as J, json};
use serve_support::*;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const DAVE_TOKEN: &str = "tok-dave-90e1";
const ERIN_TOKEN: &str = "tok-erin-4c7f";
const DEPLOY_TOKEN: &str = "deploy-token-value-6d3a";

/// alice admin, bob/dave/erin write, carol read. production: bob, carol and dave review,
/// one approval, no self-review, main only. staging: two of bob and dave. timed: bob and
/// a 3 s wait timer.
fn config(repo_url: &str) -> String {
    format!(
        r#"listen: 127.0.0.1:0
url: http://ci.example.test
data: ./data
users:
  - {{ login: alice, token: "${{ALICE_TOKEN}}", role: admin }}
  - {{ login: bob, token: "${{BOB_TOKEN}}", role: write }}
  - {{ login: carol, token: "${{CAROL_TOKEN}}", role: read }}
  - {{ login: dave, token: "${{DAVE_TOKEN}}", role: write }}
  - {{ login: erin, token: "${{ERIN_TOKEN}}", role: write }}
repositories:
  - name: acme/shop
    url: {repo_url}
    forge: github
    webhook_secret: "${{HOOK_SECRET}}"
    secrets: {{ APP_SECRET: "${{APP_SECRET}}" }}
    environments:
      production:
        reviewers: [bob, carol, dave]
        required_approvals: 1
        prevent_self_review: true
        branches: [main]
        secrets: {{ DEPLOY_TOKEN: "${{DEPLOY_TOKEN}}" }}
        vars: {{ TARGET: prod-eu }}
      staging:
        reviewers: [bob, dave]
        required_approvals: 2
      timed:
        reviewers: [bob]
        wait_timer: 3s
  - name: acme/other
    url: {repo_url}
    forge: github
    webhook_secret: "${{HOOK_SECRET}}"
"#
    )
}

fn env_lookup(name: &str) -> Option<String> {
    match name {
        "DAVE_TOKEN" => Some(DAVE_TOKEN.into()),
        "ERIN_TOKEN" => Some(ERIN_TOKEN.into()),
        "DEPLOY_TOKEN" => Some(DEPLOY_TOKEN.into()),
        _ => env_vars()
            .into_iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string()),
    }
}

/// The server library on a free port with its store; the router is the real one.
struct Rig {
    app: Arc<App>,
    base: String,
    _dir: tempfile::TempDir,
    _bare: BareRepo,
}

async fn rig(database: Option<&str>) -> Rig {
    rig_with(BareRepo::new(), database).await
}

async fn rig_with(bare: BareRepo, database: Option<&str>) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let cfg = gantry_server::config::parse(
        "gantry-server.yml",
        &config(&bare.url()),
        dir.path(),
        &env_lookup,
    )
    .unwrap_or_else(|e| panic!("{}", e.rendered));
    let url = database.map(str::to_string).unwrap_or_else(|| {
        format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("data/gantry.db").display()
        )
    });
    let store = Store::open(&url).await.unwrap();
    let app = App::new(cfg, store);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = gantry_server::server::router(app.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Rig {
        app,
        base: format!("http://{addr}"),
        _dir: dir,
        _bare: bare,
    }
}

/// A decision's answer: the JSON on success, or the status and GitHub's message.
type Answer = Result<J, (u16, String)>;

fn answer(r: octocrab::Result<J>) -> Answer {
    match r {
        Ok(v) => Ok(v),
        Err(octocrab::Error::GitHub { source, .. }) => {
            Err((source.status_code.as_u16(), source.message))
        }
        Err(e) => panic!("request failed: {e}"),
    }
}

impl Rig {
    fn octo(&self, token: &str) -> octocrab::Octocrab {
        octocrab::Octocrab::builder()
            .base_uri(format!("{}/api/v3", self.base))
            .unwrap()
            .personal_token(token.to_string())
            .build()
            .unwrap()
    }

    /// A queued run of `actor` on `branch` with a deploy job at `environment`.
    async fn run(&self, branch: &str, actor: &str, environment: &str, sha: &str) -> RunRecord {
        let id = self
            .app
            .store
            .create_run(&NewRun {
                repo: "acme/shop".into(),
                workflow_path: ".github/workflows/ci.yml".into(),
                workflow_name: "CI".into(),
                display_title: "ship it".into(),
                event: "push".into(),
                head_branch: branch.into(),
                head_sha: sha.into(),
                git_ref: format!("refs/heads/{branch}"),
                actor: actor.into(),
                head_commit: json!({ "id": sha, "message": "ship it" }),
                payload: json!({}),
                delivery_id: None,
                jobs: vec![NewJob {
                    key: "deploy".into(),
                    name: "deploy".into(),
                    needs: vec![],
                    labels: vec!["ubuntu-latest".into()],
                    environment: Some(environment.into()),
                }],
            })
            .await
            .unwrap();
        self.app
            .store
            .set_run_status(id, "in_progress", None)
            .await
            .unwrap();
        self.app
            .store
            .get_run("acme/shop", id)
            .await
            .unwrap()
            .unwrap()
    }

    /// What the engine does before the deploy job starts: ask the run's gate, in a task.
    fn admit(
        &self,
        run: &RunRecord,
        environment: &str,
    ) -> (
        Arc<dyn DeliveryGates>,
        JoinHandle<Result<Admission, Refusal>>,
        CancellationToken,
    ) {
        let gates = gate::for_run(self.app.clone(), run, None);
        let req = request(run, environment);
        let cancel = CancellationToken::new();
        let (g, c) = (gates.clone(), cancel.clone());
        let task = tokio::spawn(async move { g.admit(&req, c).await });
        (gates, task, cancel)
    }

    async fn get(&self, token: &str, path: &str) -> Answer {
        answer(self.octo(token).get(path, None::<&()>).await)
    }

    async fn pending(&self, token: &str, run_id: i64) -> Vec<J> {
        let v = self
            .get(
                token,
                &format!("/repos/acme/shop/actions/runs/{run_id}/pending_deployments"),
            )
            .await
            .unwrap();
        v.as_array().unwrap().clone()
    }

    /// Polls until the run has a pending deployment (the gate recorded its review).
    async fn wait_pending(&self, run_id: i64) -> Vec<J> {
        let start = Instant::now();
        loop {
            let p = self.pending(ADMIN_TOKEN, run_id).await;
            if !p.is_empty() {
                return p;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no pending deployment"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn decide(&self, token: &str, run_id: i64, body: J) -> Answer {
        answer(
            self.octo(token)
                .post(
                    format!("/repos/acme/shop/actions/runs/{run_id}/pending_deployments"),
                    Some(&body),
                )
                .await,
        )
    }

    /// `GET …/runs/{id}/approvals`, as a read-only user.
    async fn approvals(&self, run_id: i64) -> J {
        let path = format!("/repos/acme/shop/actions/runs/{run_id}/approvals");
        self.get(READER_TOKEN, &path).await.unwrap()
    }

    /// A decision the server must refuse: its status and message.
    async fn refused(&self, token: &str, run_id: i64, body: J) -> (u16, String) {
        self.decide(token, run_id, body)
            .await
            .expect_err("the decision was accepted")
    }

    async fn run_status(&self, run_id: i64) -> String {
        let v = self
            .get(
                ADMIN_TOKEN,
                &format!("/repos/acme/shop/actions/runs/{run_id}"),
            )
            .await
            .unwrap();
        v["status"].as_str().unwrap().to_string()
    }
}

fn request(run: &RunRecord, environment: &str) -> DeploymentRequest {
    DeploymentRequest {
        run_id: run.id.to_string(),
        workflow: "CI".into(),
        job_id: "deploy".into(),
        job_name: "deploy".into(),
        environment: environment.into(),
        git_ref: run.git_ref.clone(),
        sha: run.head_sha.clone(),
        actor: run.actor.clone(),
        repository: run.repo.clone(),
    }
}

fn approve(env_id: &J, comment: &str) -> J {
    json!({ "environment_ids": [env_id], "state": "approved", "comment": comment })
}

/// The task has not finished after a moment (the gate still holds the job).
async fn still_held(task: &JoinHandle<Result<Admission, Refusal>>) {
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!task.is_finished(), "the gate let the job through");
}

async fn finished(task: JoinHandle<Result<Admission, Refusal>>) -> Result<Admission, Refusal> {
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("the gate did not decide")
        .unwrap()
}

fn sha() -> String {
    "c0ffee".repeat(6) + "beef"
}

/// The whole review of a production deploy: who may approve, refusals, the approval, the
/// release of the environment's secrets, the record of who approved and the deployment.
async fn review_production(r: &Rig) {
    let run = r.run("main", "dave", "production", &sha()).await;
    let (gates, task, _cancel) = r.admit(&run, "production");
    assert!(gates.withholds_secret("DEPLOY_TOKEN"));
    assert!(gates.withholds_secret("deploy_token"));
    assert!(!gates.withholds_secret("APP_SECRET"));

    let pending = r.wait_pending(run.id).await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    let p = &pending[0];
    assert_eq!(p["environment"]["name"], "production");
    let env_id = p["environment"]["id"].clone();
    assert!(env_id.as_u64().is_some(), "{p}");
    assert_eq!(p["wait_timer"], 0);
    assert_eq!(p["wait_timer_started_at"], J::Null);
    let logins: Vec<&str> = p["reviewers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            assert_eq!(x["type"], "User");
            x["reviewer"]["login"].as_str().unwrap()
        })
        .collect();
    assert_eq!(logins, ["bob", "carol", "dave"]);
    assert_eq!(r.run_status(run.id).await, "waiting");
    let jobs = r
        .get(
            ADMIN_TOKEN,
            &format!("/repos/acme/shop/actions/runs/{}/jobs", run.id),
        )
        .await
        .unwrap();
    assert_eq!(jobs["jobs"][0]["status"], "waiting");

    // current_user_can_approve per user: bob yes; dave is the actor (self-review), carol
    // may only read, erin and alice are not reviewers.
    for (token, can) in [
        (WRITER_TOKEN, true),
        (DAVE_TOKEN, false),
        (READER_TOKEN, false),
        (ERIN_TOKEN, false),
        (ADMIN_TOKEN, false),
    ] {
        let p = r.pending(token, run.id).await;
        assert_eq!(p[0]["current_user_can_approve"], can, "token {token}");
    }

    // Refusals, and nothing recorded by them.
    let (st, msg) = r
        .refused(DAVE_TOKEN, run.id, approve(&env_id, "mine"))
        .await;
    assert_eq!(st, 422, "{msg}");
    assert!(msg.contains("dave triggered the run"), "{msg}");
    let (st, msg) = r
        .refused(READER_TOKEN, run.id, approve(&env_id, "ro"))
        .await;
    assert_eq!(st, 403, "{msg}");
    let (st, msg) = r
        .refused(ERIN_TOKEN, run.id, approve(&env_id, "not mine"))
        .await;
    assert_eq!(st, 422, "{msg}");
    assert!(msg.contains("erin is not a reviewer"), "{msg}");
    let (st, _) = r
        .refused(WRITER_TOKEN, run.id, approve(&json!(12345), "wrong env"))
        .await;
    assert_eq!(st, 422);
    let (st, msg) = r
        .refused(
            WRITER_TOKEN,
            run.id,
            json!({ "environment_ids": [env_id], "state": "maybe", "comment": "" }),
        )
        .await;
    assert_eq!(st, 422);
    assert!(msg.contains("state"), "{msg}");
    let (st, _) = r
        .refused(
            WRITER_TOKEN,
            run.id,
            json!({ "state": "approved", "comment": "" }),
        )
        .await;
    assert_eq!(st, 422);
    // A repository the server does not have, or that the run is not of, is 404.
    for repo in ["acme/nope", "acme/other"] {
        let path = format!("/repos/{repo}/actions/runs/{}/pending_deployments", run.id);
        let (st, _) = r.get(WRITER_TOKEN, &path).await.unwrap_err();
        assert_eq!(st, 404, "{repo}");
    }
    still_held(&task).await;
    let approvals = r.approvals(run.id).await;
    assert_eq!(approvals, json!([]));

    // bob approves: the job is admitted with the environment's secrets and vars.
    let deployments = r
        .decide(WRITER_TOKEN, run.id, approve(&env_id, "ship it"))
        .await
        .unwrap();
    assert_eq!(deployments[0]["environment"], "production", "{deployments}");
    let adm = finished(task).await.expect("admitted");
    assert_eq!(
        adm.secrets.get("DEPLOY_TOKEN").map(String::as_str),
        Some(DEPLOY_TOKEN)
    );
    assert!(!adm.secrets.contains_key("APP_SECRET"));
    assert_eq!(adm.vars.get("TARGET").map(String::as_str), Some("prod-eu"));
    assert_eq!(r.run_status(run.id).await, "in_progress");
    assert!(r.pending(ADMIN_TOKEN, run.id).await.is_empty());

    // Who approved, when, with what comment.
    let approvals = r.approvals(run.id).await;
    let a = &approvals[0];
    assert_eq!(approvals.as_array().unwrap().len(), 1, "{approvals}");
    assert_eq!(a["user"]["login"], "bob");
    assert_eq!(a["state"], "approved");
    assert_eq!(a["comment"], "ship it");
    assert_eq!(a["environments"][0]["id"], env_id);
    assert!(a["created_at"].as_str().unwrap().ends_with('Z'), "{a}");

    // The deployment: sha, ref, creator, and its statuses as the job goes on.
    let outcome = DeploymentOutcome {
        request: request(&run, "production"),
        job_result: "success".into(),
        outputs: Default::default(),
        url: None,
    };
    gates.verify(&outcome).await;
    let list = r
        .get(
            READER_TOKEN,
            "/repos/acme/shop/deployments?environment=production",
        )
        .await
        .unwrap();
    let d = &list[0];
    assert_eq!(d["sha"], sha());
    assert_eq!(d["ref"], "main");
    assert_eq!(d["creator"]["login"], "dave");
    assert_eq!(d["state"], "success");
    let statuses = r
        .get(
            READER_TOKEN,
            &format!("/repos/acme/shop/deployments/{}/statuses", d["id"]),
        )
        .await
        .unwrap();
    let states: Vec<&str> = statuses
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["success", "in_progress", "waiting"]);

    // The environment with its protection rules, under the same id.
    let env = r
        .get(READER_TOKEN, "/repos/acme/shop/environments/production")
        .await
        .unwrap();
    assert_eq!(env["id"], env_id);
    let kinds: Vec<&str> = env["protection_rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["required_reviewers", "branch_policy"]);
    assert_eq!(env["protection_rules"][0]["prevent_self_review"], true);
    let all = r
        .get(READER_TOKEN, "/repos/acme/shop/environments")
        .await
        .unwrap();
    assert_eq!(all["total_count"], 3);
    let (st, _) = r
        .get(READER_TOKEN, "/repos/acme/shop/environments/nowhere")
        .await
        .unwrap_err();
    assert_eq!(st, 404);
    // No secret value in anything the API said.
    for text in [
        env.to_string(),
        all.to_string(),
        list.to_string(),
        approvals.to_string(),
    ] {
        assert!(!text.contains(DEPLOY_TOKEN) && !text.contains(APP_SECRET));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewer_admits_after_refusing_others_sqlite() {
    let r = rig(None).await;
    review_production(&r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewer_admits_after_refusing_others_postgres() {
    let Some(pg) = postgres() else {
        return;
    };
    let r = rig(Some(&pg.url)).await;
    review_production(&r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_reviewer_twice_counts_once() {
    let r = rig(None).await;
    let run = r.run("main", "alice", "staging", &sha()).await;
    let (_gates, task, _cancel) = r.admit(&run, "staging");
    let env_id = r.wait_pending(run.id).await[0]["environment"]["id"].clone();
    r.decide(WRITER_TOKEN, run.id, approve(&env_id, "one"))
        .await
        .unwrap();
    let p = r.pending(WRITER_TOKEN, run.id).await;
    assert_eq!(p[0]["current_user_can_approve"], false);
    let (st, msg) = r
        .refused(WRITER_TOKEN, run.id, approve(&env_id, "two"))
        .await;
    assert_eq!(st, 422);
    assert!(msg.contains("bob has already decided"), "{msg}");
    still_held(&task).await;
    assert_eq!(r.run_status(run.id).await, "waiting");
    r.decide(DAVE_TOKEN, run.id, approve(&env_id, "second reviewer"))
        .await
        .unwrap();
    finished(task).await.expect("admitted by two reviewers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wait_timer_holds_after_approval() {
    let r = rig(None).await;
    let run = r.run("main", "alice", "timed", &sha()).await;
    let start = Instant::now();
    let (_gates, task, _cancel) = r.admit(&run, "timed");
    let p = r.wait_pending(run.id).await;
    assert_eq!(p[0]["wait_timer"], 1, "3 s shows as its minute: {p:?}");
    assert!(p[0]["wait_timer_started_at"].is_string(), "{p:?}");
    r.decide(
        WRITER_TOKEN,
        run.id,
        approve(&p[0]["environment"]["id"], "ok"),
    )
    .await
    .unwrap();
    still_held(&task).await;
    finished(task).await.expect("admitted after the timer");
    assert!(start.elapsed() >= Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_fails_the_job_with_the_comment() {
    let r = rig(None).await;
    let run = r.run("main", "alice", "production", &sha()).await;
    let (_gates, task, _cancel) = r.admit(&run, "production");
    let env_id = r.wait_pending(run.id).await[0]["environment"]["id"].clone();
    r.decide(
        DAVE_TOKEN,
        run.id,
        json!({ "environment_ids": [env_id], "state": "rejected", "comment": "not during the freeze" }),
    )
    .await
    .unwrap();
    let err = finished(task).await.unwrap_err();
    assert_eq!(err.kind, RefusalKind::Rejected);
    assert!(err.reason.contains("rejected by dave"), "{err}");
    assert!(err.reason.contains("not during the freeze"), "{err}");
    assert!(r.pending(ADMIN_TOKEN, run.id).await.is_empty());
    let list = r
        .get(READER_TOKEN, "/repos/acme/shop/deployments")
        .await
        .unwrap();
    assert_eq!(list[0]["state"], "failure");
    let approvals = r.approvals(run.id).await;
    assert_eq!(approvals[0]["state"], "rejected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_branch_not_allowed_is_refused_without_a_review() {
    let r = rig(None).await;
    let run = r.run("feature/x", "alice", "production", &sha()).await;
    let (_gates, task, _cancel) = r.admit(&run, "PRODUCTION");
    let err = finished(task).await.unwrap_err();
    assert_eq!(err.kind, RefusalKind::Blocked);
    assert!(
        err.reason
            .contains("branch `feature/x` may not deploy to environment `production`"),
        "{err}"
    );
    assert!(r.pending(ADMIN_TOKEN, run.id).await.is_empty());
    assert!(r.app.store.reviews(run.id, false).await.unwrap().is_empty());
    let list = r
        .get(READER_TOKEN, "/repos/acme/shop/deployments")
        .await
        .unwrap();
    assert_eq!(list, json!([]));
    assert_eq!(r.run_status(run.id).await, "in_progress");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_run_ends_the_wait() {
    let r = rig(None).await;
    let run = r.run("main", "alice", "production", &sha()).await;
    let (_gates, task, cancel) = r.admit(&run, "production");
    r.wait_pending(run.id).await;
    cancel.cancel();
    let err = finished(task).await.unwrap_err();
    assert_eq!(err.kind, RefusalKind::Cancelled, "{err}");
    let reviews = r.app.store.reviews(run.id, false).await.unwrap();
    assert_eq!(reviews[0].state, "cancelled");
    assert!(r.pending(ADMIN_TOKEN, run.id).await.is_empty());
}

/// The commit being deployed carries a `.gantry/config.yml` that drops production's
/// reviewers and opens every branch, plus a forged approval file: the server's rules hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_cannot_change_its_own_reviewers() {
    let bare = BareRepo::new();
    let forged = r#"environments:
  production:
    reviewers: []
    required_approvals: 0
    prevent_self_review: false
    branches: ["**"]
"#;
    let approval = r#"{"state":"approved","decisions":[{"by":"bob","approved":true,"at":"2026-01-01T00:00:00Z"}]}"#;
    let files = [
        (".gantry/config.yml", forged),
        (".gantry/approvals/1--production.json", approval),
        (".github/workflows/ci.yml", CI_WORKFLOW),
    ];
    let main_sha = bare.commit("main", &files, "drop the reviewers");
    let feature_sha = bare.commit("feature/x", &files, "and open every branch");
    let r = rig_with(bare, None).await;

    let run = r.run("main", "alice", "production", &main_sha).await;
    let (_gates, task, _cancel) = r.admit(&run, "production");
    let p = r.wait_pending(run.id).await;
    assert_eq!(p[0]["reviewers"].as_array().unwrap().len(), 3);
    still_held(&task).await;
    let env = r
        .get(READER_TOKEN, "/repos/acme/shop/environments/production")
        .await
        .unwrap();
    assert_eq!(
        env["protection_rules"][0]["reviewers"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    r.decide(
        WRITER_TOKEN,
        run.id,
        approve(&p[0]["environment"]["id"], "ok"),
    )
    .await
    .unwrap();
    finished(task).await.expect("admitted by a server reviewer");

    let run = r
        .run("feature/x", "alice", "production", &feature_sha)
        .await;
    let (_gates, task, _cancel) = r.admit(&run, "production");
    let err = finished(task).await.unwrap_err();
    assert_eq!(err.kind, RefusalKind::Blocked);
    assert!(err.reason.contains("may not deploy"), "{err}");
}
