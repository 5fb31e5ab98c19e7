//! How the delivery gate reports what it does: as engine [`RunEvent`]s on the run's one
//! event stream (`approval_pending`, `gate_refused`, `health_measurement`,
//! `deployment_succeeded`, `rollback_output`, ...), masked with the engine's masker before
//! they leave the gate. There is no delivery-side event type or channel: the terminal, the
//! JSON reporter, the run store and [`spawn_printer`] (stderr lines for a CLI) subscribe to
//! the same stream as for every other event.

use gantry_engine::events::{EventBus, RunEvent, Subscription};

use crate::health::Measurement;
use crate::notify::slack::{Mask, mask_json};

/// Where the gate's events go: the run's event bus, each event masked first.
#[derive(Clone, Default)]
pub struct EventSink {
    pub(crate) bus: Option<(EventBus, Mask)>,
}

impl EventSink {
    pub fn new(bus: EventBus, mask: Mask) -> Self {
        EventSink {
            bus: Some((bus, mask)),
        }
    }

    /// Emits `ev` with every string in it masked (through its JSON form, so no field is
    /// forgotten when a variant grows one). Without a bus the event is only traced.
    pub fn emit(&self, ev: RunEvent) {
        let Some((bus, mask)) = &self.bus else {
            tracing::debug!(event = ev.type_name(), "delivery event (no event stream)");
            return;
        };
        bus.emit(masked(ev, &**mask));
    }
}

/// `ev` with every string masked.
pub fn masked(ev: RunEvent, mask: &(dyn Fn(&str) -> String + Send + Sync)) -> RunEvent {
    let Ok(mut v) = serde_json::to_value(&ev) else {
        return ev;
    };
    mask_json(&mut v, mask);
    // Masking changes only string values; should it break the event's shape (a secret
    // equal to a variant's name), say so rather than emit the fields unmasked.
    serde_json::from_value(v).unwrap_or(RunEvent::NotificationWarning {
        message: "a delivery event could not be masked and was dropped".into(),
    })
}

/// A one-line human description of a delivery event; `None` for other events.
pub fn describe(ev: &RunEvent) -> Option<String> {
    use RunEvent::*;
    Some(match ev {
        ApprovalPending {
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
        } => format!("✘ {environment}: {reason}"),
        WaitTimerStarted {
            environment,
            seconds,
        } => format!("⏳ {environment}: wait timer {seconds}s"),
        GateAdmitted { environment } => format!("▶ {environment}: deployment admitted"),
        HealthCheckStarted {
            environment,
            after_rollback,
        } => format!(
            "♥ {environment}: health check{}",
            if *after_rollback {
                " after rollback"
            } else {
                ""
            }
        ),
        HealthMeasurement { .. } => format!("  {}", Measurement::from_event(ev)?.line()),
        HealthCheckFinished {
            environment,
            passed,
            summary,
            ..
        } => format!(
            "♥ {environment}: health {} — {summary}",
            if *passed { "passed" } else { "failed" },
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
        _ => return None,
    })
}

/// Prints delivery events as lines on stderr (a CLI whose terminal reporter does not show
/// them): every one with `all`, otherwise only `notification_warning` (a notification
/// that could not be sent is always said, also with `--json`). The events are masked
/// already. The task ends with the stream.
pub fn spawn_printer(mut sub: Subscription, all: bool) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(ev) = sub.recv().await {
            if !all && !matches!(&*ev, RunEvent::NotificationWarning { .. }) {
                continue;
            }
            if let Some(line) = describe(&ev) {
                eprintln!("{line}");
            }
        }
    })
}

pub fn short(sha: &str) -> &str {
    &sha[..sha.len().min(7)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measurement(value: &str) -> RunEvent {
        RunEvent::HealthMeasurement {
            environment: "staging".into(),
            probe: "api".into(),
            index: 2,
            phase: "failed".into(),
            status: Some(500),
            value: Some(value.into()),
            latency_ms: 7,
            message: Some(format!("got {value}")),
            time: chrono::Utc::now().to_rfc3339(),
        }
    }

    #[tokio::test]
    async fn the_sink_masks_every_field_and_keeps_the_order() {
        let bus = EventBus::new();
        let mut sub = bus.subscribe();
        let sink = EventSink::new(bus.clone(), crate::notify::masker(["s3cret-token".into()]));
        sink.emit(measurement("token=s3cret-token"));
        sink.emit(RunEvent::RollbackOutput {
            environment: "staging".into(),
            line: "echo s3cret-token".into(),
        });
        sink.emit(RunEvent::RolledBack {
            environment: "prod".into(),
            failed_sha: "abc".into(),
            to_sha: Some("def".into()),
            healthy: Some(true),
            message: "rolled back".into(),
        });
        bus.close();
        let mut seen = Vec::new();
        while let Some(e) = sub.recv().await {
            seen.push(serde_json::to_value(&*e).unwrap());
        }
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0]["type"], "health_measurement");
        assert_eq!(seen[0]["phase"], "failed");
        assert_eq!(seen[0]["status"], 500);
        assert_eq!(seen[0]["value"], "token=***");
        assert_eq!(seen[0]["message"], "got token=***");
        assert_eq!(seen[1]["line"], "echo ***");
        assert_eq!(seen[2]["to_sha"], "def");
    }

    #[test]
    fn only_delivery_events_are_described() {
        assert!(describe(&measurement("x")).unwrap().contains("api"));
        let log = RunEvent::RunFinished {
            run_id: "1".into(),
            result: gantry_engine::events::Status::Success,
            duration_ms: 1,
        };
        assert!(describe(&log).is_none());
    }
}
