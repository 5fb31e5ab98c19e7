//! The run-level reporter (`run_succeeded` / `run_failed` from the run's event stream) and
//! delivery events forwarded into the run's event bus, against a local recording Slack.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Reply, Server, request};
use gantry_delivery::config::{
    DeliveryConfig, EnvironmentConfig, HealthCheckConfig, HttpProbe, OnFailure, ProbeConfig,
    ProbeKind, SlackConfig,
};
use gantry_delivery::{Delivery, RunReportContext, spawn_run_reporter};
use gantry_engine::events::{EventBus, RunEvent, Status};
use gantry_engine::gate::{DeliveryGates, DeploymentOutcome};
use indexmap::IndexMap;
use tokio_util::sync::CancellationToken;

fn run_events(bus: &EventBus, result: Status) {
    bus.emit(RunEvent::RunStarted {
        run_id: "run-7".into(),
        workflows: vec![".github/workflows/cd.yml".into()],
        event: "push".into(),
        repository: "acme/shop".into(),
        sha: "0123456789abcdef0123456789abcdef01234567".into(),
        git_ref: "refs/heads/main".into(),
        time: "2026-11-22T10:00:00Z".into(),
    });
    for (job, r) in [("test", Status::Success), ("deploy", result)] {
        bus.emit(RunEvent::JobQueued {
            job: job.into(),
            job_id: job.into(),
            name: job.into(),
            workflow: ".github/workflows/cd.yml".into(),
            needs: vec![],
        });
        bus.emit(RunEvent::JobFinished {
            job: job.into(),
            name: job.into(),
            result: r,
            duration_ms: 10,
            outputs: IndexMap::new(),
            reused: false,
            continue_on_error: false,
        });
    }
    bus.emit(RunEvent::RunFinished {
        run_id: "run-7".into(),
        result,
        duration_ms: 95_000,
    });
    bus.close();
}

fn slack_config(target: SlackConfig) -> DeliveryConfig {
    let mut c = DeliveryConfig::default();
    c.notifications.slack = Some(target);
    c
}

#[tokio::test]
async fn run_failed_via_webhook_lists_failed_jobs_and_masks() {
    let srv = Server::slack(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = slack_config(SlackConfig {
        webhook_url: Some(srv.url("/hook")),
        ..Default::default()
    });
    let mut secrets = IndexMap::new();
    secrets.insert("T".to_string(), "acme/shop".to_string());
    let d = Arc::new(Delivery::builder(dir.path(), cfg).secrets(secrets).build());
    let bus = EventBus::new();
    let h = spawn_run_reporter(
        d,
        bus.subscribe(),
        RunReportContext {
            actor: "carol".into(),
            run_url: Some("http://gantry.local/runs/7".into()),
        },
    );
    run_events(&bus, Status::Failure);
    h.await.unwrap();
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 1);
    let body = reqs[0].json();
    let text = body["text"].as_str().unwrap();
    assert!(
        text.contains("❌ Run #run-7 of .github/workflows/cd.yml failed"),
        "{text}"
    );
    assert!(text.contains("main@0123456 by carol"), "{text}");
    assert!(text.contains("Failed jobs: deploy"), "{text}");
    assert!(
        !text.contains("acme/shop"),
        "the secret value is masked: {text}"
    );
    assert_eq!(body["attachments"][0]["color"], "danger");
    let att = body["attachments"][0]["blocks"].to_string();
    assert!(att.contains("*Duration*\\n1m35s"), "{att}");
    assert!(att.contains("http://gantry.local/runs/7"), "{att}");
}

/// A server's run-level delivery holds no environment secret to use, but masks them all.
#[tokio::test]
async fn run_message_masks_values_given_only_to_mask() {
    let srv = Server::slack(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = slack_config(SlackConfig {
        webhook_url: Some(srv.url("/hook")),
        ..Default::default()
    });
    let d = Delivery::builder(dir.path(), cfg)
        .also_mask(["acme/shop".to_string()])
        .build();
    let bus = EventBus::new();
    let h = spawn_run_reporter(Arc::new(d), bus.subscribe(), RunReportContext::default());
    run_events(&bus, Status::Failure);
    h.await.unwrap();
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 1);
    let all = reqs[0].json().to_string();
    assert!(all.contains("Failed jobs: deploy"), "{all}");
    assert!(!all.contains("acme/shop"), "masked: {all}");
}

#[tokio::test]
async fn run_succeeded_filtered_out_sends_nothing() {
    let srv = Server::slack(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = slack_config(SlackConfig {
        webhook_url: Some(srv.url("/hook")),
        events: vec!["run_failed".into()],
        ..Default::default()
    });
    let d = Arc::new(Delivery::builder(dir.path(), cfg).build());
    let bus = EventBus::new();
    let h = spawn_run_reporter(d, bus.subscribe(), RunReportContext::default());
    run_events(&bus, Status::Success);
    h.await.unwrap();
    assert!(srv.requests().is_empty());
}

#[tokio::test]
async fn web_api_run_result_replies_in_the_deployment_thread() {
    let slack = Server::slack(vec![]).await;
    let health = Server::start(vec![Reply::new(200, r#"{"status":"ok"}"#)]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = slack_config(SlackConfig {
        bot_token: Some("xoxb-1".into()),
        channel: Some("#deploys".into()),
        api_url: Some(slack.url("/api")),
        ..Default::default()
    });
    let mut env = EnvironmentConfig::new("staging");
    env.health_check = Some(HealthCheckConfig {
        initial_delay: Duration::ZERO,
        interval: Duration::from_millis(10),
        count: 1,
        deadline: None,
        probes: vec![ProbeConfig {
            name: "api".into(),
            kind: ProbeKind::Http(HttpProbe::get(&health.url("/health"))),
            failure_limit: 0,
            error_limit: 0,
        }],
        on_failure: OnFailure::Fail,
    });
    cfg.environments.insert("staging".into(), env);
    let bus = EventBus::new();
    let mut sub = bus.subscribe();
    let d = Arc::new(
        Delivery::builder(dir.path(), cfg)
            .run_events(bus.clone())
            .build(),
    );
    let h = spawn_run_reporter(d.clone(), bus.subscribe(), RunReportContext::default());
    // A deployment inside run-7, then the run's end.
    let req = request("run-7", "staging", "refs/heads/main", "carol");
    d.admit(&req, CancellationToken::new()).await.unwrap();
    d.verify(&DeploymentOutcome {
        request: req,
        job_result: "success".into(),
        outputs: IndexMap::new(),
        url: None,
    })
    .await;
    run_events(&bus, Status::Success);
    h.await.unwrap();

    let reqs = slack.requests();
    let paths: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/api/chat.postMessage",
            "/api/chat.update",
            "/api/chat.postMessage"
        ]
    );
    let root_ts = reqs[1].json()["ts"].as_str().unwrap().to_string();
    assert!(!root_ts.is_empty());
    assert_eq!(reqs[2].json()["thread_ts"], root_ts.as_str());
    assert!(
        reqs[2].json()["text"]
            .as_str()
            .unwrap()
            .contains("succeeded")
    );

    // The deployment's events went into the run's stream, before run_finished.
    let mut types = Vec::new();
    while let Some(ev) = sub.recv().await {
        types.push(
            serde_json::to_value(&*ev).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let pos = |t: &str| types.iter().position(|x| x == t);
    assert!(pos("health_measurement").is_some(), "{types:?}");
    assert!(pos("deployment_succeeded").unwrap() < pos("run_finished").unwrap());
}
