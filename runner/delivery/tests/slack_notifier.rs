//! Slack payloads against a local recording HTTP server: incoming webhook, Web API with
//! one thread per run, filters, mentions, masking, retries on 429 and 5xx, and a failing
//! notification that only warns.

mod common;

use std::time::{Duration, Instant};

use common::{Reply, Server, request};
use gantry_delivery::Delivery;
use gantry_delivery::config::{DeliveryConfig, EnvironmentConfig, SlackConfig};
use gantry_delivery::notify::slack::{RetryPolicy, SlackNotifier, SlackTarget};
use gantry_delivery::notify::{Notification, RunInfo, Status, masker};
use gantry_engine::events::{EventBus, RunEvent};
use gantry_engine::gate::DeliveryGates;
use indexmap::IndexMap;
use tokio_util::sync::CancellationToken;

fn run_info(run: &str) -> RunInfo {
    RunInfo {
        repository: "acme/shop".into(),
        git_ref: "refs/heads/main".into(),
        sha: "0123456789abcdef0123456789abcdef01234567".into(),
        commit_message: Some("Fix checkout totals".into()),
        actor: "dave".into(),
        workflow: "deploy".into(),
        run_id: run.into(),
        run_url: Some("http://gantry.local/runs/42".into()),
        job: Some("deploy-production".into()),
        environment: Some("production".into()),
        duration: Some(Duration::from_secs(95)),
    }
}

fn note(event: &str, status: Status, run: &str) -> Notification {
    Notification {
        event: event.into(),
        status,
        title: format!("{event} title"),
        run: run_info(run),
        approval_command: None,
        health: None,
        details: None,
    }
}

fn quick() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn webhook_payload_has_fields_colour_text_and_mentions() {
    let srv = Server::slack(vec![]).await;
    let n = SlackNotifier::new(
        SlackTarget::Webhook {
            url: srv.url("/services/T0/B0/hook"),
        },
        masker(vec![]),
    )
    .with_mentions(vec!["U123".into(), "S456".into(), "here".into()]);
    let mut failed = note("deployment_failed", Status::Failure, "42");
    failed.health = Some("api: 3/6 ok, 3 failed (limit 1)".into());
    n.notify(&failed).await.unwrap();
    n.notify(&note("deployment_succeeded", Status::Success, "42"))
        .await
        .unwrap();

    let reqs = srv.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].path, "/services/T0/B0/hook");
    let body = reqs[0].json();
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with("<@U123> <!subteam^S456> <!here> ❌ deployment_failed title"),
        "{text}"
    );
    assert!(text.contains("acme/shop main@0123456 by dave"), "{text}");
    assert!(text.contains("health: api: 3/6 ok"), "{text}");
    assert_eq!(body["attachments"][0]["color"], "danger");
    assert_eq!(body["blocks"][0]["type"], "header");
    let all = body.to_string();
    for needle in [
        "*Repository*\\nacme/shop",
        "*Ref*\\nmain",
        "`0123456` Fix checkout totals",
        "*Actor*\\ndave",
        "*Workflow*\\ndeploy #42",
        "*Job*\\ndeploy-production",
        "*Environment*\\nproduction",
        "*Duration*\\n1m35s",
        "*Status*\\nfailure",
        "*Health*",
        "View run",
        "http://gantry.local/runs/42",
    ] {
        assert!(all.contains(needle), "missing {needle} in {all}");
    }
    // No mentions on success; colour good.
    let ok = reqs[1].json();
    assert_eq!(ok["attachments"][0]["color"], "good");
    assert!(!ok.to_string().contains("<@U123>"));
}

#[tokio::test]
async fn event_filter_and_masking() {
    let srv = Server::slack(vec![]).await;
    let n = SlackNotifier::new(
        SlackTarget::Webhook {
            url: srv.url("/hook"),
        },
        masker(vec!["xoxp-super-secret".to_string()]),
    )
    .with_events(vec!["run_failed".into()]);
    assert!(!n.wants("run_succeeded"));
    n.notify(&note("run_succeeded", Status::Success, "1"))
        .await
        .unwrap();
    let mut f = note("run_failed", Status::Failure, "1");
    f.details = Some("curl -H 'Authorization: xoxp-super-secret' failed".into());
    f.approval_command = Some("gantry approve 1 production --as NAME".into());
    n.notify(&f).await.unwrap();
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 1, "run_succeeded is filtered out");
    assert!(!reqs[0].body.contains("xoxp-super-secret"));
    assert!(reqs[0].body.contains("Authorization: ***"));
    assert!(
        reqs[0]
            .body
            .contains("gantry approve 1 production --as NAME")
    );
}

#[tokio::test]
async fn web_api_threads_replies_and_updates_per_run() {
    let srv = Server::slack(vec![]).await;
    let n = SlackNotifier::new(
        SlackTarget::Api {
            token: "xoxb-test-token".into(),
            channel: "#deploys".into(),
            base_url: srv.url("/api"),
        },
        masker(vec!["xoxb-test-token".to_string()]),
    );
    n.notify(&note("approval_requested", Status::Waiting, "run-1"))
        .await
        .unwrap();
    n.notify(&note("deployment_succeeded", Status::Success, "run-1"))
        .await
        .unwrap();
    n.notify(&note("approval_requested", Status::Waiting, "run-2"))
        .await
        .unwrap();
    n.notify(&note("run_failed", Status::Failure, "run-1"))
        .await
        .unwrap();

    let reqs = srv.requests();
    let paths: Vec<_> = reqs.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "/api/chat.postMessage",
            "/api/chat.postMessage",
            "/api/chat.postMessage",
            "/api/chat.update",
            "/api/chat.postMessage"
        ]
    );
    assert!(
        reqs.iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer xoxb-test-token"))
    );
    let root1 = reqs[0].json();
    assert_eq!(root1["channel"], "#deploys");
    assert!(root1.get("thread_ts").is_none());
    // The fake answers ts 1700000000.000001 for the first message, .000003 for run-2's.
    assert_eq!(reqs[1].json()["thread_ts"], "1700000000.000001");
    assert_eq!(reqs[1].json()["channel"], "C0TEST");
    assert!(
        reqs[2].json().get("thread_ts").is_none(),
        "another run, another thread"
    );
    let upd = reqs[3].json();
    assert_eq!(upd["ts"], "1700000000.000001");
    assert_eq!(upd["attachments"][0]["color"], "danger");
    assert_eq!(reqs[4].json()["thread_ts"], "1700000000.000001");
}

#[tokio::test]
async fn retries_on_429_with_retry_after() {
    let srv = Server::slack(vec![
        Reply::new(429, "rate limited").header("Retry-After", "1"),
    ])
    .await;
    let n = SlackNotifier::new(
        SlackTarget::Webhook {
            url: srv.url("/hook"),
        },
        masker(vec![]),
    )
    .with_retry(quick());
    let start = Instant::now();
    n.notify(&note("run_failed", Status::Failure, "1"))
        .await
        .unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(950),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(srv.requests().len(), 2);
}

#[tokio::test]
async fn retries_on_5xx_with_backoff_then_gives_up() {
    let srv = Server::slack(vec![
        Reply::new(500, "oops"),
        Reply::new(502, "bad gateway"),
    ])
    .await;
    let n = SlackNotifier::new(
        SlackTarget::Webhook {
            url: srv.url("/hook"),
        },
        masker(vec![]),
    )
    .with_retry(quick());
    n.notify(&note("run_failed", Status::Failure, "1"))
        .await
        .unwrap();
    assert_eq!(srv.requests().len(), 3);

    let srv = Server::start(vec![Reply::new(503, "down")]).await;
    let n = SlackNotifier::new(
        SlackTarget::Webhook {
            url: srv.url("/hook"),
        },
        masker(vec![]),
    )
    .with_retry(quick());
    let err = n
        .notify(&note("run_failed", Status::Failure, "1"))
        .await
        .unwrap_err();
    assert!(err.0.contains("after 4 attempts"), "{err}");
    assert_eq!(srv.requests().len(), 4);

    // A 4xx other than 429 is not retried.
    let srv = Server::start(vec![Reply::new(404, "no_service")]).await;
    let n = SlackNotifier::new(
        SlackTarget::Webhook {
            url: srv.url("/hook"),
        },
        masker(vec![]),
    )
    .with_retry(quick());
    let err = n
        .notify(&note("run_failed", Status::Failure, "1"))
        .await
        .unwrap_err();
    assert!(err.0.contains("404"), "{err}");
    assert_eq!(srv.requests().len(), 1);
}

#[tokio::test]
async fn web_api_error_is_reported() {
    let srv = Server::start(vec![Reply::new(
        200,
        r#"{"ok":false,"error":"channel_not_found"}"#,
    )])
    .await;
    let n = SlackNotifier::new(
        SlackTarget::Api {
            token: "xoxb-1".into(),
            channel: "C1".into(),
            base_url: srv.url("/api"),
        },
        masker(vec![]),
    );
    let err = n
        .notify(&note("run_failed", Status::Failure, "1"))
        .await
        .unwrap_err();
    assert!(err.0.contains("channel_not_found"), "{err}");
}

#[tokio::test]
async fn the_gate_notifies_through_config_and_a_failing_slack_only_warns() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::slack(vec![]).await;
    let mut env = EnvironmentConfig::new("production");
    env.reviewers = vec!["alice".into()];
    let mut config = DeliveryConfig::default();
    config.environments.insert("production".into(), env);
    config.notifications.slack = Some(SlackConfig {
        webhook_url: Some(format!("{}/${{{{ secrets.HOOK_PATH }}}}", srv.url(""))),
        events: vec!["approval_requested".into(), "deployment_failed".into()],
        ..Default::default()
    });
    let mut secrets = IndexMap::new();
    secrets.insert(
        "HOOK_PATH".to_string(),
        "services/T/B/secretpath".to_string(),
    );
    let d = std::sync::Arc::new(
        Delivery::builder(dir.path(), config.clone())
            .secrets(secrets)
            .poll_interval(Duration::from_millis(20))
            .build(),
    );
    let d2 = d.clone();
    let h = tokio::spawn(async move {
        d2.admit(
            &request("77", "production", "refs/heads/main", "dave"),
            CancellationToken::new(),
        )
        .await
    });
    while d.approvals().pending().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    d.approvals()
        .decide("77", "production", "alice", true, None)
        .unwrap();
    h.await.unwrap().unwrap();
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/services/T/B/secretpath");
    let text = reqs[0].json()["text"].as_str().unwrap().to_string();
    assert!(
        text.contains("approve with `gantry approve 77 production --as NAME`"),
        "{text}"
    );

    // Slack down: the deploy still goes through, with a warning event.
    let dead = common::closed_port_url();
    config.notifications.slack = Some(SlackConfig {
        webhook_url: Some(dead),
        ..Default::default()
    });
    config
        .environments
        .get_mut("production")
        .unwrap()
        .reviewers
        .clear();
    let bus = EventBus::new();
    let mut rx = bus.subscribe();
    let n = SlackNotifier::new(
        gantry_delivery::gate::slack_target(
            config.notifications.slack.as_ref().unwrap(),
            &IndexMap::new(),
        )
        .unwrap(),
        masker(vec![]),
    )
    .with_retry(RetryPolicy {
        max_retries: 1,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
    });
    let d = Delivery::builder(dir.path(), config)
        .notifier(n)
        .run_events(bus)
        .build();
    let mut refused = request("78", "production", "refs/heads/main", "dave");
    refused.git_ref = "refs/heads/main".into();
    d.admit(&refused, CancellationToken::new()).await.unwrap();
    d.verify(&gantry_engine::gate::DeploymentOutcome {
        request: refused,
        job_result: "failure".into(),
        outputs: IndexMap::new(),
        url: None,
    })
    .await;
    let mut warned = false;
    while let Ok(ev) = rx.try_recv() {
        warned |= matches!(*ev, RunEvent::NotificationWarning { .. });
    }
    assert!(warned);
}
