//! Verification after a deploy job: health check, rollback (`run:` script and
//! `strategy: previous` through the redeploy hook), and the deployment history in SQLite.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Reply, Server, request};
use gantry_delivery::Delivery;
use gantry_delivery::config::{
    DeliveryConfig, EnvironmentConfig, HealthCheckConfig, HttpProbe, OnFailure, ProbeConfig,
    ProbeKind, RollbackConfig,
};
use gantry_delivery::history::{DeploymentRecord, History, status};
use gantry_delivery::rollback::Redeploy;
use gantry_engine::events::{EventBus, RunEvent};
use gantry_engine::gate::{DeliveryGates, DeploymentOutcome, DeploymentRequest, Verification};
use indexmap::IndexMap;
use tokio_util::sync::CancellationToken;

fn staging(health_url: String, rollback: Option<RollbackConfig>) -> EnvironmentConfig {
    let mut env = EnvironmentConfig::new("staging");
    let mut probe = HttpProbe::get(&health_url);
    probe.expect_status = vec![200];
    probe.json_path = Some("$.status".into());
    probe.expect = Some(gantry_delivery::config::Expect::parse("ok").unwrap());
    probe.timeout = Duration::from_millis(500);
    env.health_check = Some(HealthCheckConfig {
        initial_delay: Duration::ZERO,
        interval: Duration::from_millis(20),
        count: 2,
        deadline: Some(Duration::from_secs(10)),
        probes: vec![ProbeConfig {
            name: "api".into(),
            kind: ProbeKind::Http(probe),
            failure_limit: 0,
            error_limit: 4,
        }],
        on_failure: OnFailure::Rollback,
    });
    env.rollback = rollback;
    env.vars.insert("APP".into(), "shop".into());
    env.secrets = vec!["DEPLOY_TOKEN".into()];
    env
}

async fn build(
    dir: &std::path::Path,
    env: EnvironmentConfig,
    redeploy: Option<Arc<dyn Redeploy>>,
) -> (Delivery, gantry_engine::events::Subscription) {
    let mut config = DeliveryConfig::default();
    config.environments.insert(env.name.clone(), env);
    let bus = EventBus::new();
    let rx = bus.subscribe();
    let mut secrets = IndexMap::new();
    secrets.insert("DEPLOY_TOKEN".to_string(), "tok-very-secret".to_string());
    let mut b = Delivery::builder(dir, config)
        .history(History::open_repo(dir).await.unwrap())
        .secrets(secrets)
        .run_events(bus)
        .poll_interval(Duration::from_millis(20));
    if let Some(r) = redeploy {
        b = b.redeploy(r);
    }
    (b.build(), rx)
}

async fn deploy(d: &Delivery, run: &str, image: &str) -> (DeploymentRequest, Verification) {
    let req = request(run, "staging", "refs/heads/develop", "dave");
    d.admit(&req, CancellationToken::new()).await.unwrap();
    let mut outputs = IndexMap::new();
    outputs.insert("image".to_string(), image.to_string());
    let v = d
        .verify(&DeploymentOutcome {
            request: req.clone(),
            job_result: "success".into(),
            outputs,
            url: Some("http://staging.local/".into()),
        })
        .await;
    (req, v)
}

#[tokio::test]
async fn healthy_deploy_then_broken_deploy_rolls_back_with_a_script() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(vec![Reply::new(200, r#"{"status":"ok"}"#)]).await;
    let script = "echo \"env=$GANTRY_ENVIRONMENT prev=$GANTRY_PREVIOUS_SHA failed=$GANTRY_FAILED_SHA outputs=$GANTRY_PREVIOUS_OUTPUTS app=$APP\" > rollback.log\necho rolled back with $DEPLOY_TOKEN";
    let (d, mut rx) = build(
        dir.path(),
        staging(srv.url("/health"), Some(RollbackConfig::Run(script.into()))),
        None,
    )
    .await;

    let (good, v) = deploy(&d, "run-1", "shop:v1").await;
    assert!(matches!(v, Verification::Passed), "{v:?}");

    // The second commit breaks /health; after the rollback it answers ok again.
    srv.set(vec![
        Reply::new(500, r#"{"status":"broken"}"#),
        Reply::new(200, r#"{"status":"ok"}"#),
    ]);
    let (bad, v) = deploy(&d, "run-2", "shop:v2").await;
    let Verification::Failed { message } = v else {
        panic!("expected a failure")
    };
    assert_eq!(
        message,
        format!(
            "deployed {}, health failed (probe `api`: 1 failed measurement(s), limit 0), rolled back to {} (healthy)",
            &bad.sha[..7],
            &good.sha[..7]
        )
    );
    let log = std::fs::read_to_string(dir.path().join("rollback.log")).unwrap();
    assert!(log.contains("env=staging"), "{log}");
    assert!(log.contains(&format!("prev={}", good.sha)), "{log}");
    assert!(log.contains(&format!("failed={}", bad.sha)), "{log}");
    assert!(log.contains(r#"outputs={"image":"shop:v1"}"#), "{log}");
    assert!(log.contains("app=shop"), "{log}");

    // The rollback's output is streamed, masked.
    let mut lines = Vec::new();
    let mut names = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        if let RunEvent::RollbackOutput { line, .. } = &*ev {
            lines.push(line.clone());
        }
        names.push(ev.type_name());
    }
    assert_eq!(lines, vec!["rolled back with ***".to_string()]);
    assert!(names.iter().any(|n| n == "health_measurement"));
    assert!(names.iter().any(|n| n == "rolled_back"));

    // History: newest first.
    let h = d.history().unwrap();
    let list = h.list(Some("staging"), 10).await.unwrap();
    assert_eq!(list.len(), 2);
    let (newest, oldest) = (&list[0], &list[1]);
    assert_eq!(newest.status, status::ROLLED_BACK);
    assert_eq!(newest.sha, bad.sha);
    assert_eq!(
        newest.outputs.get("image").map(String::as_str),
        Some("shop:v2")
    );
    assert!(!newest.health.as_ref().unwrap().passed);
    let rb = newest.rollback.as_ref().unwrap();
    assert_eq!(rb.strategy, "run");
    assert_eq!(rb.to_sha.as_deref(), Some(good.sha.as_str()));
    assert!(rb.health.as_ref().unwrap().passed);
    assert_eq!(rb.exit_code, Some(0));
    assert_eq!(oldest.status, status::SUCCEEDED);
    assert_eq!(oldest.url.as_deref(), Some("http://staging.local/"));
    assert_eq!(oldest.health.as_ref().unwrap().measurements.len(), 2);
    // The history survives a reopen (a new process) and is filterable.
    let h2 = History::open_repo(dir.path()).await.unwrap();
    assert_eq!(h2.list(None, 10).await.unwrap().len(), 2);
    assert!(h2.list(Some("production"), 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn failing_rollback_script_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(vec![Reply::new(500, "{}")]).await;
    let (d, _rx) = build(
        dir.path(),
        staging(
            srv.url("/health"),
            Some(RollbackConfig::Run("echo nope >&2; exit 7".into())),
        ),
        None,
    )
    .await;
    let (_req, v) = deploy(&d, "run-9", "shop:v9").await;
    let Verification::Failed { message } = v else {
        panic!()
    };
    assert!(
        message.contains("rollback failed: the rollback script failed (exit code 7): nope"),
        "{message}"
    );
    let rec = &d.history().unwrap().list(None, 1).await.unwrap()[0];
    assert_eq!(rec.status, status::FAILED);
    assert!(!rec.rollback.as_ref().unwrap().succeeded);
}

#[tokio::test]
async fn on_failure_fail_does_not_roll_back() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(vec![Reply::new(200, r#"{"status":"starting"}"#)]).await;
    let mut env = staging(
        srv.url("/health"),
        Some(RollbackConfig::Run("touch rolled".into())),
    );
    env.health_check.as_mut().unwrap().on_failure = OnFailure::Fail;
    let (d, _rx) = build(dir.path(), env, None).await;
    let (_req, v) = deploy(&d, "run-3", "shop:v3").await;
    let Verification::Failed { message } = v else {
        panic!()
    };
    assert!(message.contains("health failed: probe `api`"), "{message}");
    assert!(!dir.path().join("rolled").exists());
    let rec = &d.history().unwrap().list(None, 1).await.unwrap()[0];
    assert_eq!(rec.status, status::FAILED);
    assert!(rec.rollback.is_none());
}

#[tokio::test]
async fn failed_job_is_recorded_without_health_check() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(vec![Reply::new(200, r#"{"status":"ok"}"#)]).await;
    let (d, _rx) = build(dir.path(), staging(srv.url("/health"), None), None).await;
    let req = request("run-f", "staging", "refs/heads/develop", "dave");
    d.admit(&req, CancellationToken::new()).await.unwrap();
    let v = d
        .verify(&DeploymentOutcome {
            request: req,
            job_result: "failure".into(),
            outputs: IndexMap::new(),
            url: None,
        })
        .await;
    assert!(matches!(v, Verification::Passed));
    assert!(
        srv.requests().is_empty(),
        "no health check for a failed job"
    );
    let rec = &d.history().unwrap().list(None, 1).await.unwrap()[0];
    assert_eq!(rec.status, status::FAILED);
    assert_eq!(rec.message.as_deref(), Some("deploy job failure"));
}

/// The engine's side of `strategy: previous`, played by the test: "re-deploys" by making
/// the service healthy again and records what it was asked.
struct FakeEngine {
    srv: Server,
    calls: Mutex<Vec<(String, String)>>,
}

#[async_trait::async_trait]
impl Redeploy for FakeEngine {
    async fn recorded_inputs(&self, req: &DeploymentRequest) -> serde_json::Value {
        serde_json::json!({"job_id": req.job_id, "run": req.run_id, "token": "tok-very-secret"})
    }

    async fn redeploy(
        &self,
        req: &DeploymentRequest,
        previous: &DeploymentRecord,
        _admission: &gantry_engine::gate::Admission,
        output: &(dyn Fn(String) + Send + Sync),
    ) -> Result<(), gantry_delivery::rollback::RedeployError> {
        self.calls
            .lock()
            .unwrap()
            .push((req.sha.clone(), previous.sha.clone()));
        assert_eq!(
            previous.outputs.get("image").map(String::as_str),
            Some("shop:v1")
        );
        // The inputs recorded with the good deployment come back from the history.
        assert_eq!(previous.inputs["run"], "run-1", "{}", previous.inputs);
        assert_eq!(
            previous.inputs["token"], "***",
            "secrets are masked in the history"
        );
        output("redeploying".into());
        self.srv.set(vec![Reply::new(200, r#"{"status":"ok"}"#)]);
        Ok(())
    }
}

#[tokio::test]
async fn strategy_previous_uses_the_redeploy_hook() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(vec![Reply::new(200, r#"{"status":"ok"}"#)]).await;
    let engine = Arc::new(FakeEngine {
        srv: srv.clone(),
        calls: Mutex::new(Vec::new()),
    });
    let (d, _rx) = build(
        dir.path(),
        staging(srv.url("/health"), Some(RollbackConfig::Previous)),
        Some(engine.clone()),
    )
    .await;
    let (good, _) = deploy(&d, "run-1", "shop:v1").await;
    srv.set(vec![Reply::new(503, "{}")]);
    let (bad, v) = deploy(&d, "run-2", "shop:v2").await;
    let Verification::Failed { message } = v else {
        panic!()
    };
    assert!(
        message.ends_with(&format!("rolled back to {} (healthy)", &good.sha[..7])),
        "{message}"
    );
    assert_eq!(
        engine.calls.lock().unwrap().clone(),
        vec![(bad.sha.clone(), good.sha.clone())]
    );
    let rec = &d.history().unwrap().list(None, 1).await.unwrap()[0];
    assert_eq!(rec.status, status::ROLLED_BACK);
    assert_eq!(rec.rollback.as_ref().unwrap().strategy, "previous");
}

#[tokio::test]
async fn strategy_previous_without_hook_or_previous_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(vec![Reply::new(503, "{}")]).await;
    let (d, _rx) = build(
        dir.path(),
        staging(srv.url("/health"), Some(RollbackConfig::Previous)),
        None,
    )
    .await;
    let (_r, v) = deploy(&d, "run-1", "shop:v1").await;
    let Verification::Failed { message } = v else {
        panic!()
    };
    assert!(
        message.contains("no previous successful deployment"),
        "{message}"
    );

    srv.set(vec![Reply::new(200, r#"{"status":"ok"}"#)]);
    deploy(&d, "run-2", "shop:v2").await;
    srv.set(vec![Reply::new(503, "{}")]);
    let (_r, v) = deploy(&d, "run-3", "shop:v3").await;
    let Verification::Failed { message } = v else {
        panic!()
    };
    assert!(
        message.contains("needs the engine's redeploy hook"),
        "{message}"
    );
}

#[tokio::test]
async fn approvals_and_rejections_are_in_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = EnvironmentConfig::new("production");
    env.reviewers = vec!["alice".into(), "bob".into()];
    env.required_approvals = 2;
    let (d, _rx) = build(dir.path(), env, None).await;
    let d = Arc::new(d);

    let req = request("run-a", "production", "refs/heads/main", "dave");
    let (d2, r2) = (d.clone(), req.clone());
    let h = tokio::spawn(async move { d2.admit(&r2, CancellationToken::new()).await });
    while d.approvals().pending().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    d.approvals()
        .decide(
            "run-a",
            "production",
            "alice",
            true,
            Some("tests green".into()),
        )
        .unwrap();
    d.approvals()
        .decide("run-a", "production", "bob", true, None)
        .unwrap();
    h.await.unwrap().unwrap();
    d.verify(&DeploymentOutcome {
        request: req,
        job_result: "success".into(),
        outputs: IndexMap::new(),
        url: Some("https://shop.example/?t=tok-very-secret".into()),
    })
    .await;

    let req = request("run-b", "production", "refs/heads/main", "dave");
    let (d2, r2) = (d.clone(), req.clone());
    let h = tokio::spawn(async move { d2.admit(&r2, CancellationToken::new()).await });
    while d.approvals().pending().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    d.approvals()
        .decide(
            "run-b",
            "production",
            "bob",
            false,
            Some("not today".into()),
        )
        .unwrap();
    assert!(h.await.unwrap().is_err());

    let list = d
        .history()
        .unwrap()
        .list(Some("production"), 10)
        .await
        .unwrap();
    assert_eq!(list.len(), 2);
    let rejected = &list[0];
    assert_eq!(rejected.status, status::REJECTED);
    assert_eq!(rejected.approvals.len(), 1);
    assert_eq!(rejected.approvals[0].by, "bob");
    assert!(!rejected.approvals[0].approved);
    assert_eq!(rejected.approvals[0].comment.as_deref(), Some("not today"));
    let ok = &list[1];
    assert_eq!(ok.status, status::SUCCEEDED);
    let who: Vec<_> = ok
        .approvals
        .iter()
        .map(|a| (a.by.as_str(), a.comment.as_deref()))
        .collect();
    assert_eq!(who, vec![("alice", Some("tests green")), ("bob", None)]);
    assert!(ok.approvals[0].at <= ok.approvals[1].at);
    // A url containing a secret is dropped, as GitHub does.
    assert_eq!(ok.url, None);
}
