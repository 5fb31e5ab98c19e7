//! The delivery side masks with the engine's masker: a secret that reaches a rollback
//! script's output, a health-check body or a Slack payload is hidden as given, in base64,
//! JSON-escaped, and line by line when the value spans lines. Real `sh` processes, a real
//! HTTP server on 127.0.0.1 for the probe, a recording fake Slack.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::{Reply, Server};
use gantry_delivery::config::{HttpProbe, ProbeConfig, ProbeKind};
use gantry_delivery::health::{ProbeContext, measure};
use gantry_delivery::notify::slack::{SlackNotifier, SlackTarget};
use gantry_delivery::notify::{Notification, RunInfo, Status, masker};
use gantry_delivery::rollback::run_script;
use indexmap::IndexMap;

/// A multi-line secret (a key file) with characters JSON escapes.
const SECRET: &str = "Pa55-w0rd/\"q\"\\z\nsecond-line-of-key";
/// A short one-line secret (the old masker skipped values under 3 characters too).
const TOKEN: &str = "tk-7Qz9";

fn forms() -> (String, String) {
    let b64 = base64::engine::general_purpose::STANDARD.encode(SECRET);
    let json = serde_json::to_string(SECRET).unwrap();
    (b64, json[1..json.len() - 1].to_string())
}

/// Fails when any piece of a secret, or one of its encoded forms, is in `text`.
fn assert_hidden(text: &str, what: &str) {
    let (b64, json) = forms();
    for piece in [
        "Pa55-w0rd",
        "second-line-of-key",
        b64.as_str(),
        &b64[..12],
        json.as_str(),
        TOKEN,
        &TOKEN[..4],
    ] {
        assert!(!text.contains(piece), "{what} shows {piece:?}:\n{text}");
    }
    assert!(text.contains("***"), "{what} masked nothing:\n{text}");
}

fn mask() -> gantry_delivery::notify::slack::Mask {
    masker([SECRET.to_string(), TOKEN.to_string()])
}

#[tokio::test]
async fn rollback_output_is_masked_in_every_form() {
    let (b64, json) = forms();
    let mut env = IndexMap::new();
    env.insert("B64".to_string(), b64);
    env.insert("JSON".to_string(), json);
    env.insert("RAW".to_string(), SECRET.to_string());
    env.insert("TOKEN".to_string(), TOKEN.to_string());
    let dir = tempfile::tempdir().unwrap();
    let mut lines = Vec::new();
    // printf, not echo: dash's echo would turn the JSON form's `\n` into a line break.
    let script = r#"printf 'b64=%s\njson=%s\nraw=%s\n' "$B64" "$JSON" "$RAW"; printf 'token=%s\n' "$TOKEN" >&2"#;
    let (code, result) = run_script(script, dir.path(), &env, mask(), |l| lines.push(l)).await;
    assert_eq!(code, Some(0), "{result:?}");
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert_hidden(&lines.join("\n"), "rollback output");
}

#[tokio::test]
async fn health_check_body_is_masked_in_every_form() {
    let (b64, json) = forms();
    let body = format!("{{\"t\":\"{json}\",\"b\":\"{b64}\",\"k\":\"{TOKEN}\"}}\n{SECRET}");
    assert!(body.len() < 200, "the probe keeps 200 characters of a body");
    let srv = Server::start(vec![Reply::new(200, &body)]).await;
    let mut p = HttpProbe::get(&srv.url("/health"));
    p.timeout = Duration::from_secs(5);
    let probe = ProbeConfig {
        name: "body".into(),
        kind: ProbeKind::Http(p),
        failure_limit: 0,
        error_limit: 0,
    };
    let ctx = ProbeContext {
        mask: mask(),
        ..Default::default()
    };
    let client = reqwest::Client::new();
    let m = measure(&probe, 0, Some(&client), &ctx).await;
    let value = m.value.clone().expect("the body is recorded as the value");
    assert!(value.contains("\"t\":"), "{value}");
    assert_hidden(&value, "health value");
}

#[tokio::test]
async fn slack_payload_is_masked_in_every_form_even_where_it_is_cut() {
    let (b64, json) = forms();
    let srv = Server::slack(vec![]).await;
    let notifier = SlackNotifier::new(
        SlackTarget::Webhook {
            url: srv.url("/services/T0/B0/hook"),
        },
        mask(),
    );
    // The details are cut after 2,899 characters: the token starts 5 before the cut.
    let head = format!("b64 {b64}\njson {json}\nraw {SECRET}\n");
    let details = format!("{head}{}{TOKEN} tail", "x".repeat(2_894 - head.len()));
    assert_eq!(details.find(TOKEN), Some(2_894));
    let n = Notification {
        event: "run_failed".into(),
        status: Status::Failure,
        title: format!("deploy failed: {TOKEN}"),
        run: RunInfo {
            repository: "acme/shop".into(),
            commit_message: Some(format!("rotate {SECRET}")),
            actor: "dave".into(),
            run_id: "7".into(),
            ..Default::default()
        },
        approval_command: None,
        health: Some(format!("body {{\"t\":\"{json}\"}}")),
        details: Some(details),
    };
    notifier.notify(&n).await.unwrap();
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 1);
    let mut strings = Vec::new();
    collect_strings(&reqs[0].json(), &mut strings);
    assert!(!strings.is_empty(), "{}", reqs[0].body);
    assert_hidden(&strings.join("\n"), "Slack payload");
    assert_hidden(&reqs[0].body, "Slack request body");
}

fn collect_strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_strings(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| collect_strings(x, out)),
        _ => {}
    }
}

/// Through the gate, end to end: a deploy whose health check answers with the secret in its
/// body, whose rollback script prints it (as given over two lines, base64, JSON-escaped)
/// and whose commit message carries it. Everything the gate puts on the run's event stream
/// and every Slack message (a recording server on 127.0.0.1) is masked. It fails when the
/// rollback runner's, the probe's or the notifier's masking goes; the sink's own masking of
/// events is a second layer these paths do not need (it is what masks `strategy: previous`
/// redeploy output), tested in `events.rs`.
#[tokio::test]
async fn the_gate_masks_its_events_and_its_slack_messages() {
    use gantry_delivery::Delivery;
    use gantry_delivery::config::{
        DeliveryConfig, EnvironmentConfig, HealthCheckConfig, OnFailure, RollbackConfig,
        SlackConfig,
    };
    use gantry_engine::events::EventBus;
    use gantry_engine::gate::{DeliveryGates, DeploymentOutcome, Verification};
    use tokio_util::sync::CancellationToken;

    let (b64, json) = forms();
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir.path())
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    git(&["init", "-q"]);
    git(&[
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        &format!("rotate {TOKEN}"),
    ]);
    let sha = git(&["rev-parse", "HEAD"]).trim().to_string();

    let body = format!("{{\"t\":\"{json}\",\"b\":\"{b64}\",\"k\":\"{TOKEN}\"}}");
    let health = Server::start(vec![Reply::new(500, &body)]).await;
    let slack = Server::slack(vec![]).await;
    let mut env = EnvironmentConfig::new("staging");
    let mut probe = HttpProbe::get(&health.url("/health"));
    probe.expect_status = vec![200];
    probe.timeout = Duration::from_secs(5);
    env.health_check = Some(HealthCheckConfig {
        initial_delay: Duration::ZERO,
        interval: Duration::from_millis(10),
        count: 1,
        deadline: Some(Duration::from_secs(10)),
        probes: vec![ProbeConfig {
            name: "api".into(),
            kind: ProbeKind::Http(probe),
            failure_limit: 0,
            error_limit: 0,
        }],
        on_failure: OnFailure::Rollback,
    });
    env.secrets = vec!["KEY".into(), "TOKEN".into()];
    env.vars.insert("B64".into(), b64.clone());
    env.vars.insert("JSON".into(), json.clone());
    // printf, not echo: dash's echo would turn the JSON form's `\n` into a line break.
    env.rollback = Some(RollbackConfig::Run(
        r#"printf 'raw=%s\nb64=%s\njson=%s\ntoken=%s\n' "$KEY" "$B64" "$JSON" "$TOKEN""#.into(),
    ));
    let mut config = DeliveryConfig::default();
    config.environments.insert("staging".into(), env);
    config.notifications.slack = Some(SlackConfig {
        webhook_url: Some(slack.url("/services/T0/B0/hook")),
        ..Default::default()
    });
    let mut secrets = IndexMap::new();
    secrets.insert("KEY".to_string(), SECRET.to_string());
    secrets.insert("TOKEN".to_string(), TOKEN.to_string());
    let bus = EventBus::new();
    let mut sub = bus.subscribe();
    let d = Delivery::builder(dir.path(), config)
        .secrets(secrets)
        .run_events(bus.clone())
        .build();

    let mut req = common::request("run-9", "staging", "refs/heads/main", "dave");
    req.sha = sha;
    d.admit(&req, CancellationToken::new()).await.unwrap();
    let v = d
        .verify(&DeploymentOutcome {
            request: req,
            job_result: "success".into(),
            outputs: IndexMap::new(),
            url: None,
        })
        .await;
    assert!(matches!(v, Verification::Failed { .. }), "{v:?}");
    bus.close();

    let mut events = Vec::new();
    let mut rollback_lines = 0;
    while let Some(ev) = sub.recv().await {
        if matches!(*ev, gantry_engine::events::RunEvent::RollbackOutput { .. }) {
            rollback_lines += 1;
        }
        events.push(serde_json::to_string(&*ev).unwrap());
    }
    // raw (two lines), b64, json, token.
    assert_eq!(rollback_lines, 5, "{events:#?}");
    let events = events.join("\n");
    assert!(events.contains("health_measurement"), "{events}");
    assert_hidden(&events, "the gate's events");

    let reqs = slack.requests();
    assert!(!reqs.is_empty(), "no Slack message was sent");
    let bodies: Vec<&str> = reqs.iter().map(|r| r.body.as_str()).collect();
    assert_hidden(&bodies.join("\n"), "the gate's Slack messages");
}
