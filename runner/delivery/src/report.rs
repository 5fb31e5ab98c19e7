//! Run-level notifications (`run_succeeded`, `run_failed`): a reporter that subscribes to
//! the run's event stream like the terminal and JSON reporters do, and sends one Slack
//! message when the run ends. It only reads events; it never calls into the engine.

use std::sync::Arc;
use std::time::Duration;

use gantry_engine::events::{RunEvent, Status as RunStatus, Subscription};
use indexmap::IndexMap;

use crate::gate::Delivery;
use crate::notify::{Notification, RunInfo, Status};

/// What the event stream does not carry.
#[derive(Debug, Clone, Default)]
pub struct RunReportContext {
    /// `github.actor` of the run.
    pub actor: String,
    /// A link to the run (a "View run" button), when one exists.
    pub run_url: Option<String>,
}

/// What the reporter learned from the events of one run.
#[derive(Debug, Default)]
struct Seen {
    run_id: String,
    workflows: Vec<String>,
    repository: String,
    sha: String,
    git_ref: String,
    /// job key → display name.
    names: IndexMap<String, String>,
    failed: Vec<String>,
    cancelled: Vec<String>,
}

impl Seen {
    fn take(&mut self, ev: &RunEvent) -> Option<(RunStatus, u64)> {
        match ev {
            RunEvent::RunStarted {
                run_id,
                workflows,
                repository,
                sha,
                git_ref,
                ..
            } => {
                self.run_id = run_id.clone();
                self.workflows = workflows.clone();
                self.repository = repository.clone();
                self.sha = sha.clone();
                self.git_ref = git_ref.clone();
            }
            RunEvent::JobQueued { job, name, .. } => {
                self.names.insert(job.to_string(), name.clone());
            }
            RunEvent::JobFinished {
                job, name, result, ..
            } => {
                let name = if name.is_empty() {
                    self.names
                        .get(job.as_str())
                        .cloned()
                        .unwrap_or(job.to_string())
                } else {
                    name.clone()
                };
                match result {
                    RunStatus::Failure => self.failed.push(name),
                    RunStatus::Cancelled => self.cancelled.push(name),
                    _ => {}
                }
            }
            RunEvent::RunFinished {
                result,
                duration_ms,
                ..
            } => return Some((*result, *duration_ms)),
            _ => {}
        }
        None
    }
}

/// The notification for a finished run: `run_succeeded` for success (and a run whose jobs
/// were all skipped), `run_failed` for failure and cancellation, with the failed jobs.
fn run_notification(
    d: &Delivery,
    seen: &Seen,
    ctx: &RunReportContext,
    result: RunStatus,
    duration_ms: u64,
) -> Notification {
    let ok = matches!(result, RunStatus::Success | RunStatus::Skipped);
    let workflow = seen.workflows.join(", ");
    let word = match result {
        RunStatus::Success | RunStatus::Skipped => "succeeded",
        RunStatus::Failure => "failed",
        RunStatus::Cancelled => "was cancelled",
    };
    let mut details = Vec::new();
    if !seen.failed.is_empty() {
        details.push(format!("*Failed jobs:* {}", seen.failed.join(", ")));
    }
    if !seen.cancelled.is_empty() {
        details.push(format!("*Cancelled jobs:* {}", seen.cancelled.join(", ")));
    }
    Notification {
        event: if ok { "run_succeeded" } else { "run_failed" }.into(),
        status: if ok { Status::Success } else { Status::Failure },
        title: format!("Run #{} of {workflow} {word}", seen.run_id),
        run: RunInfo {
            repository: seen.repository.clone(),
            git_ref: seen.git_ref.clone(),
            sha: seen.sha.clone(),
            commit_message: d.commit_message(&seen.sha),
            actor: ctx.actor.clone(),
            workflow,
            run_id: seen.run_id.clone(),
            run_url: ctx.run_url.clone(),
            job: None,
            environment: None,
            duration: Some(Duration::from_millis(duration_ms)),
        },
        approval_command: None,
        health: None,
        details: (!details.is_empty()).then(|| details.join("\n")),
    }
}

/// Consumes `sub` (subscribe before the run starts) and sends `run_succeeded` /
/// `run_failed` through the delivery's Slack notifier when `run_finished` arrives. A
/// failed notification is a warning (`notification_warning`), never a failed run. The
/// task ends with the event stream; await it before the process exits.
pub fn spawn_run_reporter(
    delivery: Arc<Delivery>,
    mut sub: Subscription,
    ctx: RunReportContext,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen = Seen::default();
        while let Some(ev) = sub.recv().await {
            if let Some((result, duration_ms)) = seen.take(&ev) {
                if delivery.notifier().is_none() {
                    continue;
                }
                let n = run_notification(&delivery, &seen, &ctx, result, duration_ms);
                delivery.send(n).await;
            }
        }
    })
}
