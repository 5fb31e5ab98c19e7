//! Events the delivery gate emits while it works. The engine may forward them into the
//! run's event stream (reporters show them live); the Slack notifier consumes the same
//! names (`approval_requested`, `deployment_succeeded`, ...).

use serde::Serialize;

use crate::health::{HealthReport, Measurement};

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum DeliveryEvent {
    /// Waiting for reviewers; `command` approves from another terminal.
    ApprovalRequested {
        run_id: String,
        environment: String,
        job: String,
        reviewers: Vec<String>,
        required_approvals: u32,
        command: String,
    },
    /// One reviewer decided (or a decision was refused: `accepted: false`).
    ApprovalDecided {
        run_id: String,
        environment: String,
        by: String,
        approved: bool,
        comment: Option<String>,
        accepted: bool,
        message: String,
    },
    /// The gate refused the job (branch policy, rejection, timeout).
    GateRefused {
        run_id: String,
        environment: String,
        reason: String,
    },
    WaitTimerStarted {
        run_id: String,
        environment: String,
        seconds: u64,
    },
    /// The job may start.
    Admitted { run_id: String, environment: String },
    HealthCheckStarted {
        run_id: String,
        environment: String,
        after_rollback: bool,
    },
    /// One probe measurement (shown live).
    HealthMeasurement {
        run_id: String,
        environment: String,
        measurement: Measurement,
    },
    HealthCheckFinished {
        run_id: String,
        environment: String,
        after_rollback: bool,
        report: HealthReport,
    },
    DeploymentSucceeded {
        run_id: String,
        environment: String,
        sha: String,
        url: Option<String>,
    },
    DeploymentFailed {
        run_id: String,
        environment: String,
        sha: String,
        message: String,
    },
    RollbackStarted {
        run_id: String,
        environment: String,
        to_sha: Option<String>,
    },
    /// A line of output of the rollback script.
    RollbackOutput {
        run_id: String,
        environment: String,
        line: String,
    },
    RolledBack {
        run_id: String,
        environment: String,
        failed_sha: String,
        to_sha: Option<String>,
        healthy: Option<bool>,
        message: String,
    },
    /// A notification could not be delivered (never fails the run).
    NotificationWarning { message: String },
}

impl DeliveryEvent {
    /// The snake_case name (as used by `notifications.slack.events`).
    pub fn name(&self) -> &'static str {
        match self {
            DeliveryEvent::ApprovalRequested { .. } => "approval_requested",
            DeliveryEvent::ApprovalDecided { .. } => "approval_decided",
            DeliveryEvent::GateRefused { .. } => "gate_refused",
            DeliveryEvent::WaitTimerStarted { .. } => "wait_timer_started",
            DeliveryEvent::Admitted { .. } => "admitted",
            DeliveryEvent::HealthCheckStarted { .. } => "health_check_started",
            DeliveryEvent::HealthMeasurement { .. } => "health_measurement",
            DeliveryEvent::HealthCheckFinished { .. } => "health_check_finished",
            DeliveryEvent::DeploymentSucceeded { .. } => "deployment_succeeded",
            DeliveryEvent::DeploymentFailed { .. } => "deployment_failed",
            DeliveryEvent::RollbackStarted { .. } => "rollback_started",
            DeliveryEvent::RollbackOutput { .. } => "rollback_output",
            DeliveryEvent::RolledBack { .. } => "rolled_back",
            DeliveryEvent::NotificationWarning { .. } => "notification_warning",
        }
    }
}

/// Where events go: an optional unbounded channel, the run's event bus (as
/// [`to_run_event`] converts them, masked, in emission order) and a log line.
#[derive(Clone, Default)]
pub struct EventSink {
    tx: Option<tokio::sync::mpsc::UnboundedSender<DeliveryEvent>>,
    pub(crate) bus: Option<(gantry_engine::events::EventBus, crate::notify::slack::Mask)>,
    /// Print human-readable lines to stderr (for a CLI without a reporter).
    pub print: bool,
}

impl EventSink {
    pub fn new(tx: Option<tokio::sync::mpsc::UnboundedSender<DeliveryEvent>>) -> Self {
        EventSink {
            tx,
            bus: None,
            print: false,
        }
    }

    pub fn emit(&self, ev: DeliveryEvent) {
        // A notification that could not be sent is always said (stderr), also with `--json`.
        if self.print || matches!(ev, DeliveryEvent::NotificationWarning { .. }) {
            let line = describe(&ev);
            match &self.bus {
                Some((_, mask)) => eprintln!("{}", mask(&line)),
                None => eprintln!("{line}"),
            }
        }
        tracing::debug!(event = ev.name(), "delivery event");
        if let Some((bus, mask)) = &self.bus
            && let Some(r) = to_run_event(&ev, &**mask)
        {
            bus.emit(r);
        }
        if let Some(tx) = &self.tx {
            let _ = tx.send(ev);
        }
    }
}

/// A one-line human description of an event.
pub fn describe(ev: &DeliveryEvent) -> String {
    use DeliveryEvent::*;
    match ev {
        ApprovalRequested {
            environment,
            required_approvals,
            reviewers,
            command,
            ..
        } => format!(
            "⏸ {environment}: waiting for {required_approvals} approval(s) from {}; run: {command}",
            reviewers.join(", ")
        ),
        ApprovalDecided {
            environment,
            by,
            approved,
            accepted,
            message,
            ..
        } => {
            if *accepted {
                format!(
                    "{} {environment}: {by} {}",
                    if *approved { "✔" } else { "✘" },
                    if *approved { "approved" } else { "rejected" }
                )
            } else {
                format!("! {environment}: decision by {by} refused: {message}")
            }
        }
        GateRefused {
            environment,
            reason,
            ..
        } => format!("✘ {environment}: {reason}"),
        WaitTimerStarted {
            environment,
            seconds,
            ..
        } => format!("⏳ {environment}: wait timer {seconds}s"),
        Admitted { environment, .. } => format!("▶ {environment}: deployment admitted"),
        HealthCheckStarted {
            environment,
            after_rollback,
            ..
        } => format!(
            "♥ {environment}: health check{}",
            if *after_rollback {
                " after rollback"
            } else {
                ""
            }
        ),
        HealthMeasurement { measurement: m, .. } => format!("  {}", m.line()),
        HealthCheckFinished {
            environment,
            report,
            ..
        } => format!(
            "♥ {environment}: health {} — {}",
            if report.passed { "passed" } else { "failed" },
            report.summary()
        ),
        DeploymentSucceeded {
            environment, sha, ..
        } => format!("✔ {environment}: deployed {}", short(sha)),
        DeploymentFailed {
            environment,
            message,
            ..
        } => format!("✘ {environment}: {message}"),
        RollbackStarted {
            environment,
            to_sha,
            ..
        } => format!(
            "↩ {environment}: rolling back to {}",
            to_sha
                .as_deref()
                .map(short)
                .unwrap_or("(no previous deployment)")
        ),
        RollbackOutput { line, .. } => format!("  | {line}"),
        RolledBack { message, .. } => format!("↩ {message}"),
        NotificationWarning { message } => format!("warning: {message}"),
    }
}

pub fn short(sha: &str) -> &str {
    &sha[..sha.len().min(7)]
}

/// The run-event form of a delivery event, for the run's event stream (`events.jsonl`,
/// `--json`): approvals, health measurements, deployment outcomes and rollbacks. Every
/// string passes through `mask`. Other delivery events (gate progress, rollback output)
/// stay on the delivery channel.
pub fn to_run_event(
    ev: &DeliveryEvent,
    mask: &(dyn Fn(&str) -> String + Send + Sync),
) -> Option<gantry_engine::events::RunEvent> {
    use gantry_engine::events::RunEvent as R;
    let m = |s: &str| mask(s);
    let mo = |s: &Option<String>| s.as_deref().map(mask);
    Some(match ev {
        DeliveryEvent::ApprovalRequested {
            environment,
            job,
            reviewers,
            required_approvals,
            command,
            ..
        } => R::ApprovalPending {
            environment: m(environment),
            job: m(job),
            reviewers: reviewers.iter().map(|r| m(r)).collect(),
            required_approvals: *required_approvals,
            command: m(command),
        },
        DeliveryEvent::ApprovalDecided {
            environment,
            by,
            approved,
            comment,
            accepted,
            message,
            ..
        } => R::ApprovalDecided {
            environment: m(environment),
            by: m(by),
            approved: *approved,
            accepted: *accepted,
            comment: mo(comment),
            message: m(message),
        },
        DeliveryEvent::HealthMeasurement {
            environment,
            measurement: x,
            ..
        } => R::HealthMeasurement {
            environment: m(environment),
            probe: m(&x.probe),
            index: x.index,
            phase: match x.phase {
                crate::health::Phase::Successful => "successful",
                crate::health::Phase::Failed => "failed",
                crate::health::Phase::Error => "error",
            }
            .into(),
            status: x.status,
            value: mo(&x.value),
            latency_ms: x.latency_ms,
            message: mo(&x.message),
            time: x.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        },
        DeliveryEvent::DeploymentSucceeded {
            environment,
            sha,
            url,
            ..
        } => R::DeploymentSucceeded {
            environment: m(environment),
            sha: sha.clone(),
            url: mo(url),
        },
        DeliveryEvent::DeploymentFailed {
            environment,
            sha,
            message,
            ..
        } => R::DeploymentFailed {
            environment: m(environment),
            sha: sha.clone(),
            message: m(message),
        },
        DeliveryEvent::RolledBack {
            environment,
            failed_sha,
            to_sha,
            healthy,
            message,
            ..
        } => R::RolledBack {
            environment: m(environment),
            failed_sha: failed_sha.clone(),
            to_sha: to_sha.clone(),
            healthy: *healthy,
            message: m(message),
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Phase;
    use gantry_engine::events::{EventBus, RunEvent};

    fn measurement(value: &str) -> Measurement {
        Measurement {
            probe: "api".into(),
            index: 2,
            at: chrono::Utc::now(),
            phase: Phase::Failed,
            status: Some(500),
            value: Some(value.into()),
            latency_ms: 7,
            message: Some(format!("got {value}")),
        }
    }

    #[test]
    fn run_events_are_masked_and_only_the_public_ones() {
        let mask = crate::notify::masker(vec!["s3cret-token".to_string()]);
        let ev = DeliveryEvent::HealthMeasurement {
            run_id: "1".into(),
            environment: "staging".into(),
            measurement: measurement("token=s3cret-token"),
        };
        let r = to_run_event(&ev, &*mask).unwrap();
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["type"], "health_measurement");
        assert_eq!(j["phase"], "failed");
        assert_eq!(j["status"], 500);
        assert_eq!(j["index"], 2);
        assert_eq!(j["value"], "token=***");
        assert_eq!(j["message"], "got token=***");
        // Gate progress and rollback output stay on the delivery channel.
        let quiet = DeliveryEvent::RollbackOutput {
            run_id: "1".into(),
            environment: "staging".into(),
            line: "x".into(),
        };
        assert!(to_run_event(&quiet, &*mask).is_none());
    }

    #[tokio::test]
    async fn the_sink_emits_into_the_bus_in_order() {
        let bus = EventBus::new();
        let mut sub = bus.subscribe();
        let mut sink = EventSink::new(None);
        sink.bus = Some((bus.clone(), crate::notify::masker(Vec::new())));
        sink.emit(DeliveryEvent::DeploymentFailed {
            run_id: "1".into(),
            environment: "prod".into(),
            sha: "abc".into(),
            message: "boom".into(),
        });
        sink.emit(DeliveryEvent::RolledBack {
            run_id: "1".into(),
            environment: "prod".into(),
            failed_sha: "abc".into(),
            to_sha: Some("def".into()),
            healthy: Some(true),
            message: "rolled back".into(),
        });
        bus.close();
        let mut seen = Vec::new();
        while let Some(e) = sub.recv().await {
            seen.push(match &*e {
                RunEvent::DeploymentFailed { message, .. } => message.clone(),
                RunEvent::RolledBack { to_sha, .. } => to_sha.clone().unwrap(),
                other => panic!("unexpected {other:?}"),
            });
        }
        assert_eq!(seen, ["boom", "def"]);
    }
}
