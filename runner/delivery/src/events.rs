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

/// Where events go: an optional unbounded channel (the engine wires it) plus a log line.
#[derive(Clone, Default)]
pub struct EventSink {
    tx: Option<tokio::sync::mpsc::UnboundedSender<DeliveryEvent>>,
    /// Print human-readable lines to stderr (for a CLI without a reporter).
    pub print: bool,
}

impl EventSink {
    pub fn new(tx: Option<tokio::sync::mpsc::UnboundedSender<DeliveryEvent>>) -> Self {
        EventSink { tx, print: false }
    }

    pub fn emit(&self, ev: DeliveryEvent) {
        if self.print {
            eprintln!("{}", describe(&ev));
        }
        tracing::debug!(event = ev.name(), "delivery event");
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
