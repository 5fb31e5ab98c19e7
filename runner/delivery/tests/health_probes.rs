//! Health analysis against real HTTP servers on 127.0.0.1 and real commands: status,
//! JSON path, expected value and regex, latency, timeouts, transport errors, failure and
//! error limits counted apart, deadline, command probes.

mod common;

use std::time::Duration;

use common::{Reply, Server, closed_port_url};
use gantry_delivery::config::{Expect, HealthCheckConfig, HttpProbe, ProbeConfig, ProbeKind};
use gantry_delivery::health::{Phase, ProbeContext, analyze};

fn http(name: &str, url: String, f: impl FnOnce(&mut HttpProbe)) -> ProbeConfig {
    let mut p = HttpProbe::get(&url);
    p.timeout = Duration::from_millis(500);
    f(&mut p);
    ProbeConfig {
        name: name.into(),
        kind: ProbeKind::Http(p),
        failure_limit: 0,
        error_limit: 4,
    }
}

fn check(count: u32, probes: Vec<ProbeConfig>) -> HealthCheckConfig {
    HealthCheckConfig {
        initial_delay: Duration::ZERO,
        interval: Duration::from_millis(30),
        count,
        deadline: Some(Duration::from_secs(20)),
        probes,
        ..Default::default()
    }
}

#[tokio::test]
async fn http_status_json_path_and_value() {
    let srv = Server::start(vec![Reply::new(
        200,
        r#"{"status":"ok","db":{"replicas":[3]}}"#,
    )])
    .await;
    let probes = vec![
        http("api", srv.url("/health"), |p| {
            p.expect_status = vec![200];
            p.json_path = Some("$.status".into());
            p.expect = Some(Expect::parse("ok").unwrap());
        }),
        http("replicas", srv.url("/health"), |p| {
            p.json_path = Some("$.db.replicas[0]".into());
            p.expect = Some(Expect::parse("/^[1-9]$/").unwrap());
        }),
    ];
    let mut live = 0;
    let r = analyze(&check(3, probes), &ProbeContext::default(), |_| live += 1).await;
    assert!(r.passed, "{}", r.summary());
    assert_eq!(live, 6);
    assert_eq!(r.measurements.len(), 6);
    let m = &r.measurements[0];
    assert_eq!(m.phase, Phase::Successful);
    assert_eq!(m.status, Some(200));
    assert_eq!(m.value.as_deref(), Some("ok"));
    assert_eq!(r.measurements[1].value.as_deref(), Some("3"));
    assert_eq!(r.probes[0].successes, 3);
    // Measurements carry increasing times.
    assert!(r.measurements[0].at <= r.measurements[5].at);
    assert_eq!(srv.requests().len(), 6);
}

#[tokio::test]
async fn wrong_value_fails_beyond_failure_limit() {
    let srv = Server::start(vec![
        Reply::new(200, r#"{"status":"ok"}"#),
        Reply::new(200, r#"{"status":"degraded"}"#),
        Reply::new(200, r#"{"status":"ok"}"#),
        Reply::new(200, r#"{"status":"degraded"}"#),
    ])
    .await;
    let mut probe = http("api", srv.url("/health"), |p| {
        p.json_path = Some("$.status".into());
        p.expect = Some(Expect::parse("ok").unwrap());
    });
    probe.failure_limit = 1;
    let r = analyze(&check(6, vec![probe]), &ProbeContext::default(), |_| {}).await;
    assert!(!r.passed);
    // One failure tolerated, the second fails the analysis at measurement 4.
    assert_eq!(r.measurements.len(), 4);
    assert_eq!(r.probes[0].failures, 2);
    assert_eq!(r.measurements[1].phase, Phase::Failed);
    assert_eq!(r.measurements[1].value.as_deref(), Some("degraded"));
    let reason = r.reason.unwrap();
    assert!(
        reason.contains("2 failed measurement(s), limit 1"),
        "{reason}"
    );
}

#[tokio::test]
async fn unexpected_status_is_a_failure_not_an_error() {
    let srv = Server::start(vec![Reply::new(503, "down")]).await;
    let probe = http("api", srv.url("/health"), |p| {
        p.expect_status = vec![200, 204]
    });
    let r = analyze(&check(3, vec![probe]), &ProbeContext::default(), |_| {}).await;
    assert!(!r.passed);
    let m = &r.measurements[0];
    assert_eq!(m.phase, Phase::Failed);
    assert_eq!(m.status, Some(503));
    assert!(m.message.as_deref().unwrap().contains("expected 200, 204"));
    assert_eq!(r.probes[0].errors, 0);
}

#[tokio::test]
async fn non_json_body_and_missing_path_fail() {
    let srv = Server::start(vec![
        Reply::new(200, "<html>"),
        Reply::new(200, r#"{"x":1}"#),
    ])
    .await;
    let mut probe = http("api", srv.url("/health"), |p| {
        p.json_path = Some("$.status".into())
    });
    probe.failure_limit = 5;
    let r = analyze(&check(2, vec![probe]), &ProbeContext::default(), |_| {}).await;
    assert!(r.passed, "within the failure limit");
    assert_eq!(r.probes[0].failures, 2);
    assert!(
        r.measurements[0]
            .message
            .as_deref()
            .unwrap()
            .contains("not JSON")
    );
    assert!(
        r.measurements[1]
            .message
            .as_deref()
            .unwrap()
            .contains("no value at $.status")
    );
}

#[tokio::test]
async fn transport_errors_are_counted_apart_and_consecutively() {
    // Connection refused every time: errors, not failures; more than error_limit (2)
    // consecutive errors fail the analysis.
    let mut probe = http("down", closed_port_url(), |_| {});
    probe.error_limit = 2;
    probe.failure_limit = 0;
    let r = analyze(&check(10, vec![probe]), &ProbeContext::default(), |_| {}).await;
    assert!(!r.passed);
    assert_eq!(r.probes[0].errors, 3);
    assert_eq!(r.probes[0].failures, 0);
    assert_eq!(r.measurements.len(), 3);
    assert!(r.measurements.iter().all(|m| m.phase == Phase::Error));
    assert!(
        r.reason
            .unwrap()
            .contains("3 consecutive error(s), limit 2")
    );
}

#[tokio::test]
async fn timeouts_are_errors_and_latency_is_recorded() {
    let srv = Server::start(vec![
        Reply::new(200, "ok").delay(Duration::from_millis(150)),
        Reply::new(200, "ok").delay(Duration::from_millis(900)),
        Reply::new(200, "ok").delay(Duration::from_millis(10)),
    ])
    .await;
    let mut probe = http("slow", srv.url("/health"), |p| {
        p.timeout = Duration::from_millis(400);
        p.expect = Some(Expect::parse("ok").unwrap());
    });
    probe.error_limit = 1;
    let r = analyze(&check(3, vec![probe]), &ProbeContext::default(), |_| {}).await;
    assert!(r.passed, "{}", r.summary());
    assert!(
        r.measurements[0].latency_ms >= 150,
        "{:?}",
        r.measurements[0]
    );
    assert_eq!(r.measurements[1].phase, Phase::Error);
    assert!(
        r.measurements[1]
            .message
            .as_deref()
            .unwrap()
            .contains("timeout")
    );
    assert_eq!(r.measurements[2].phase, Phase::Successful);
    assert_eq!(r.probes[0].errors, 1);
}

#[tokio::test]
async fn deadline_cuts_the_analysis() {
    let srv = Server::start(vec![Reply::new(200, "ok")]).await;
    let mut hc = check(100, vec![http("api", srv.url("/"), |_| {})]);
    hc.interval = Duration::from_millis(100);
    hc.deadline = Some(Duration::from_millis(350));
    let r = analyze(&hc, &ProbeContext::default(), |_| {}).await;
    assert!(!r.passed);
    assert!(
        r.reason.as_deref().unwrap().contains("deadline"),
        "{:?}",
        r.reason
    );
    assert!(r.measurements.len() < 10);

    // count: 0 measures until the deadline and passes.
    hc.count = 0;
    let r = analyze(&hc, &ProbeContext::default(), |_| {}).await;
    assert!(r.passed, "{:?}", r.reason);
    assert!(r.measurements.len() >= 2);
}

#[tokio::test]
async fn initial_delay_and_interval_are_honoured() {
    let srv = Server::start(vec![Reply::new(200, "ok")]).await;
    let mut hc = check(3, vec![http("api", srv.url("/"), |_| {})]);
    hc.initial_delay = Duration::from_millis(200);
    hc.interval = Duration::from_millis(100);
    let start = std::time::Instant::now();
    let r = analyze(&hc, &ProbeContext::default(), |_| {}).await;
    assert!(r.passed);
    assert!(start.elapsed() >= Duration::from_millis(400));
    let gap = r.measurements[1].at - r.measurements[0].at;
    assert!(gap.num_milliseconds() >= 100, "{gap}");
}

#[tokio::test]
async fn command_probes_use_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("smoke.sh"), "echo checking $GANTRY_ENVIRONMENT\n[ -f ok ] || { echo missing ok >&2; exit 3; }\necho fine\n").unwrap();
    let mut ctx = ProbeContext {
        workdir: dir.path().to_path_buf(),
        ..Default::default()
    };
    ctx.env
        .insert("GANTRY_ENVIRONMENT".into(), "staging".into());
    let probe = ProbeConfig {
        name: "smoke".into(),
        kind: ProbeKind::Run("sh ./smoke.sh".into()),
        failure_limit: 0,
        error_limit: 4,
    };
    let r = analyze(&check(1, vec![probe.clone()]), &ctx, |_| {}).await;
    assert!(!r.passed);
    let m = &r.measurements[0];
    assert_eq!(m.phase, Phase::Failed);
    assert!(
        m.message
            .as_deref()
            .unwrap()
            .contains("exit code 3: missing ok"),
        "{m:?}"
    );

    std::fs::write(dir.path().join("ok"), "").unwrap();
    let r = analyze(&check(2, vec![probe]), &ctx, |_| {}).await;
    assert!(r.passed, "{}", r.summary());
    assert_eq!(r.measurements[0].value.as_deref(), Some("fine"));
}

#[tokio::test]
async fn recorded_values_are_masked() {
    let srv = Server::start(vec![Reply::new(200, r#"{"token":"hunter2-secret"}"#)]).await;
    let probe = http("api", srv.url("/"), |p| {
        p.json_path = Some("$.token".into())
    });
    let ctx = ProbeContext {
        mask: gantry_delivery::notify::masker(vec!["hunter2-secret".to_string()]),
        ..Default::default()
    };
    let r = analyze(&check(1, vec![probe]), &ctx, |_| {}).await;
    assert_eq!(r.measurements[0].value.as_deref(), Some("***"));
}
