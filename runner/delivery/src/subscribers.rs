//! The deployment history and Slack as subscribers of the run's event stream. The gate
//! never writes the history or calls Slack itself: it emits [`RunEvent`]s (masked) and
//! these subscribers turn them into records and messages.
//!
//! - **History**: every `deployment_recorded` event carries the whole record; the
//!   subscriber saves it (and the counted approvals, once per deployment).
//! - **Slack**: a `deployment_recorded` event with a `notice` becomes the deployment's
//!   message (`approval_requested` with the reviewers and command of the
//!   `approval_pending` event before it). A message that cannot be delivered is a
//!   `notification_warning` event, never a failed run.
//!
//! Ordering: the gate reads the history too (a rollback returns to the last successful
//! deployment, recorded by an earlier deployment), and callers read it as soon as
//! `admit` / `verify` return. So after emitting a record the gate waits for
//! [`DeliverySubscribers::flush`]: the subscriber has handled every event emitted before
//! the flush (the bus queues an event for each subscriber when it is emitted, so they are
//! all in this subscriber's queue when the flush request arrives). The gate waits for the
//! subscribers to be done, as it waited for Slack before; it never looks at what Slack
//! answered.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use gantry_engine::events::{RunEvent, Subscription};
use tokio::sync::{mpsc, oneshot};

use crate::events::{EventSink, short};
use crate::health::HealthReport;
use crate::history::{DeploymentRecord, History};
use crate::notify::slack::SlackNotifier;
use crate::notify::{Notification, RunInfo, Status};

/// What a `deployment_recorded` event's `notice` says (see [`RunEvent::DeploymentRecorded`]).
pub mod notice {
    /// After `approval_pending` for the same environment and job.
    pub const APPROVAL_REQUESTED: &str = "approval_requested";
    pub const REFUSED: &str = "refused";
    pub const JOB_FAILED: &str = "job_failed";
    pub const UNHEALTHY: &str = "unhealthy";
    pub const SUCCEEDED: &str = "succeeded";
    pub const ROLLED_BACK: &str = "rolled_back";
    pub const ROLLBACK_FAILED: &str = "rollback_failed";
}

/// The record's message for a deploy job that did not succeed (`result`: `failure`,
/// `cancelled`); [`job_result_of`] reads the result back for the message.
pub(crate) fn job_failed_message(result: &str) -> String {
    format!("deploy job {result}")
}

fn job_result_of(message: &str) -> &str {
    message.strip_prefix("deploy job ").unwrap_or(message)
}

/// The running history and Slack subscribers of one run (one per event stream: every
/// [`crate::Delivery`] of a run shares them, or each would write and send twice).
pub struct DeliverySubscribers {
    flush_tx: mpsc::UnboundedSender<oneshot::Sender<()>>,
    /// The task, when built outside a tokio runtime: started by the first flush (the
    /// events emitted until then wait in its subscription).
    unstarted: Mutex<Option<(Task, Subscription, FlushRx)>>,
    notifier: Option<Arc<SlackNotifier>>,
    run_urls: Arc<Mutex<HashMap<String, String>>>,
}

impl DeliverySubscribers {
    /// Starts the subscriber task on `sub` (subscribe before the gate emits). `warnings`
    /// is where an undelivered message is said. The task ends with the stream.
    pub fn start(
        sub: Subscription,
        history: Option<History>,
        notifier: Option<SlackNotifier>,
        warnings: EventSink,
    ) -> Arc<DeliverySubscribers> {
        let (flush_tx, flush_rx) = mpsc::unbounded_channel();
        let notifier = notifier.map(Arc::new);
        let run_urls = Arc::new(Mutex::new(HashMap::new()));
        let task = Task {
            history,
            approvals_saved: HashSet::new(),
            notifier: notifier.clone(),
            run_urls: run_urls.clone(),
            warnings,
            pending: HashMap::new(),
        };
        let unstarted = match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(task.run(sub, flush_rx));
                None
            }
            Err(_) => Some((task, sub, flush_rx)),
        };
        Arc::new(DeliverySubscribers {
            flush_tx,
            unstarted: Mutex::new(unstarted),
            notifier,
            run_urls,
        })
    }

    /// Waits until every event emitted before this call has been handled (records saved,
    /// messages sent or warned about). Returns at once when the stream has ended.
    pub async fn flush(&self) {
        let unstarted = self.unstarted.lock().unwrap().take();
        if let Some((task, sub, flush_rx)) = unstarted {
            tokio::spawn(task.run(sub, flush_rx));
        }
        let (tx, rx) = oneshot::channel();
        if self.flush_tx.send(tx).is_ok() {
            let _ = rx.await;
        }
    }

    pub fn notifier(&self) -> Option<&SlackNotifier> {
        self.notifier.as_deref()
    }

    /// A link to the run shown in messages.
    pub fn set_run_url(&self, run_id: &str, url: &str) {
        self.run_urls
            .lock()
            .unwrap()
            .insert(run_id.into(), url.into());
    }
}

type FlushRx = mpsc::UnboundedReceiver<oneshot::Sender<()>>;

struct Task {
    history: Option<History>,
    /// Deployments whose approvals are in the history (they are added once).
    approvals_saved: HashSet<String>,
    notifier: Option<Arc<SlackNotifier>>,
    run_urls: Arc<Mutex<HashMap<String, String>>>,
    warnings: EventSink,
    /// (environment, job) → the last `approval_pending` (reviewers, required count,
    /// command), for the `approval_requested` record after it.
    pending: HashMap<(String, String), (Vec<String>, u32, String)>,
}

impl Task {
    async fn run(mut self, mut sub: Subscription, mut flush_rx: FlushRx) {
        loop {
            tokio::select! {
                biased;
                ev = sub.recv() => match ev {
                    Some(ev) => self.handle(&ev).await,
                    None => break,
                },
                Some(ack) = flush_rx.recv() => {
                    // Everything emitted before the flush request is queued already.
                    while let Ok(ev) = sub.try_recv() {
                        self.handle(&ev).await;
                    }
                    let _ = ack.send(());
                }
            }
        }
    }

    async fn handle(&mut self, ev: &RunEvent) {
        match ev {
            RunEvent::DeploymentRecorded {
                repository,
                notice,
                commit_message,
                record,
                ..
            } => {
                let rec = match serde_json::from_value::<DeploymentRecord>(record.clone()) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!("deployment history: an unreadable record: {e}");
                        return;
                    }
                };
                self.save(&rec).await;
                if let Some(n) = notice
                    && self.notifier.is_some()
                {
                    let run = self.run_info(&rec, repository, commit_message.clone());
                    let n = self.deployment_notification(&rec, run, n);
                    self.send(n).await;
                }
            }
            RunEvent::ApprovalPending {
                environment,
                job,
                reviewers,
                required_approvals,
                command,
            } => {
                self.pending.insert(
                    (environment.clone(), job.clone()),
                    (reviewers.clone(), *required_approvals, command.clone()),
                );
            }
            _ => {}
        }
    }

    async fn save(&mut self, rec: &DeploymentRecord) {
        let Some(h) = &self.history else { return };
        if let Err(e) = h.save(rec).await {
            tracing::warn!("deployment history: {e}");
        }
        if !rec.approvals.is_empty()
            && self.approvals_saved.insert(rec.id.clone())
            && let Err(e) = h.add_approvals(&rec.id, &rec.approvals).await
        {
            tracing::warn!("deployment history: {e}");
        }
    }

    async fn send(&self, n: Notification) {
        if let Some(notifier) = &self.notifier
            && let Err(e) = notifier.notify(&n).await
        {
            tracing::warn!("{e}");
            self.warnings.emit(RunEvent::NotificationWarning {
                message: e.to_string(),
            });
        }
    }

    fn run_info(
        &self,
        rec: &DeploymentRecord,
        repository: &str,
        commit_message: Option<String>,
    ) -> RunInfo {
        RunInfo {
            repository: repository.to_string(),
            git_ref: rec.git_ref.clone(),
            sha: rec.sha.clone(),
            commit_message,
            actor: rec.actor.clone(),
            workflow: rec.workflow.clone(),
            run_id: rec.run_id.clone(),
            run_url: self.run_urls.lock().unwrap().get(&rec.run_id).cloned(),
            job: Some(rec.job.clone()),
            environment: Some(rec.environment.clone()),
            duration: None,
        }
    }

    /// The message of a deployment's news.
    fn deployment_notification(
        &mut self,
        rec: &DeploymentRecord,
        run: RunInfo,
        notice: &str,
    ) -> Notification {
        let env = &rec.environment;
        let sha = short(&rec.sha);
        let message = rec.message.clone().unwrap_or_default();
        let figures = rec.health.as_ref().map(HealthReport::summary);
        let (event, status, title, health, details) = match notice {
            notice::APPROVAL_REQUESTED => {
                let (reviewers, required, command) = self
                    .pending
                    .remove(&(env.clone(), rec.job.clone()))
                    .unwrap_or_default();
                return Notification {
                    event: "approval_requested".into(),
                    status: Status::Waiting,
                    title: format!("Deployment to {env} waits for {required} approval(s)"),
                    run,
                    approval_command: Some(command),
                    health: None,
                    details: Some(format!("Reviewers: {}", reviewers.join(", "))),
                };
            }
            notice::REFUSED => (
                "deployment_failed",
                Status::Failure,
                format!("Deployment to {env} refused"),
                None,
                Some(message),
            ),
            notice::JOB_FAILED => (
                "deployment_failed",
                Status::Failure,
                format!("Deployment of {sha} to {env} failed"),
                None,
                Some(format!(
                    "The deploy job's result: {}",
                    job_result_of(&message)
                )),
            ),
            notice::UNHEALTHY => (
                "deployment_failed",
                Status::Failure,
                format!("Deployment of {sha} to {env} is unhealthy"),
                figures,
                Some(message),
            ),
            notice::SUCCEEDED => (
                "deployment_succeeded",
                Status::Success,
                format!("Deployed {sha} to {env}"),
                figures,
                rec.url.as_ref().map(|u| format!("<{u}|{u}>")),
            ),
            notice::ROLLED_BACK => (
                "rolled_back",
                Status::Failure,
                format!("{env} rolled back"),
                figures,
                Some(message),
            ),
            _ => (
                "deployment_failed",
                Status::Failure,
                format!("{env}: rollback failed"),
                figures,
                Some(message),
            ),
        };
        Notification {
            event: event.into(),
            status,
            title,
            run,
            approval_command: None,
            health,
            details,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::Decision;
    use gantry_engine::events::EventBus;

    fn recorded(rec: &DeploymentRecord) -> RunEvent {
        RunEvent::DeploymentRecorded {
            environment: rec.environment.clone(),
            repository: "acme/shop".into(),
            notice: None,
            commit_message: None,
            record: serde_json::to_value(rec).unwrap(),
        }
    }

    #[tokio::test]
    async fn records_on_the_stream_are_in_the_history_once_flushed_and_approvals_once() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open_repo(dir.path()).await.unwrap();
        let bus = EventBus::new();
        let subs = DeliverySubscribers::start(
            bus.subscribe(),
            Some(history.clone()),
            None,
            EventSink::new(bus.clone(), crate::notify::masker(Vec::new())),
        );
        let mut rec = DeploymentRecord::new(
            "staging",
            "7",
            "ci",
            "deploy",
            "abc",
            "refs/heads/main",
            "dave",
        );
        rec.approvals = vec![Decision {
            by: "alice".into(),
            approved: true,
            comment: None,
            at: chrono::Utc::now(),
        }];
        rec.status = crate::history::status::DEPLOYING.into();
        bus.emit(recorded(&rec));
        rec.status = crate::history::status::SUCCEEDED.into();
        bus.emit(recorded(&rec));
        subs.flush().await;
        let list = history.list(None, 10).await.unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].status, crate::history::status::SUCCEEDED);
        assert_eq!(list[0].approvals.len(), 1, "approvals are added once");
        bus.close();
        // A flush after the end of the stream returns at once.
        subs.flush().await;
    }
}
