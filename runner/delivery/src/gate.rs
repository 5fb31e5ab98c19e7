//! [`Delivery`]: the engine's [`DeliveryGates`] built from `.gantry/config.yml`.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use gantry_engine::gate::{
    Admission, DeliveryGates, DeploymentOutcome, DeploymentRequest, Refusal, RefusalKind,
    Verification,
};
use indexmap::IndexMap;
use tokio_util::sync::CancellationToken;

use crate::approval::{ApprovalPrompt, ApprovalStore, PendingApproval, PromptAnswer};
pub use crate::builder::{DeliveryBuilder, slack_target};
use crate::config::{DeliveryConfig, EnvironmentConfig, OnFailure, RollbackConfig};
use crate::events::{EventSink, short};
use crate::health::{self, HealthReport, ProbeContext};
use crate::history::{DeploymentRecord, History, RollbackRecord, status};
use crate::notify::slack::{Mask, SlackNotifier};
use crate::notify::{self, Notification};
use crate::rollback::{self, Redeploy};
use crate::subscribers::{DeliverySubscribers, job_failed_message, notice};
use gantry_engine::events::RunEvent;

mod wait;

type Key = (String, String, String);

/// Continuous delivery rules for one repository.
pub struct Delivery {
    pub(crate) config: DeliveryConfig,
    pub(crate) root: PathBuf,
    pub(crate) store: ApprovalStore,
    /// Read only (a rollback's previous deployment); records are written by the history
    /// subscriber of [`DeliverySubscribers`].
    pub(crate) history: Option<History>,
    pub(crate) sink: EventSink,
    /// The history and Slack subscribers of the run's event stream (set by the builder).
    pub(crate) subscribers: Option<Arc<DeliverySubscribers>>,
    /// The stream the builder made when given none; closed when the delivery is dropped,
    /// which ends its subscribers.
    pub(crate) own_bus: Option<gantry_engine::events::EventBus>,
    pub(crate) prompt: Option<Arc<dyn ApprovalPrompt>>,
    pub(crate) secrets: IndexMap<String, String>,
    pub(crate) mask: Mask,
    pub(crate) redeploy: Option<Arc<dyn Redeploy>>,
    pub(crate) poll_interval: Duration,
    pub(crate) active: Mutex<HashMap<Key, (DeploymentRecord, Admission)>>,
}

impl Drop for Delivery {
    fn drop(&mut self) {
        // Ends the subscribers of a stream only this delivery emitted to.
        if let Some(bus) = &self.own_bus {
            bus.close();
        }
    }
}

type PromptFuture = Pin<Box<dyn Future<Output = Option<PromptAnswer>> + Send>>;

impl Delivery {
    /// `root` is the repository (where `.gantry/` lives).
    pub fn builder(root: impl Into<PathBuf>, config: DeliveryConfig) -> DeliveryBuilder {
        let root = root.into();
        DeliveryBuilder {
            bus: None,
            notifier: None,
            subscribers: None,
            also_mask: Vec::new(),
            d: Delivery {
                store: ApprovalStore::for_repo(&root),
                root,
                config,
                history: None,
                sink: EventSink::default(),
                subscribers: None,
                own_bus: None,
                prompt: None,
                secrets: IndexMap::new(),
                mask: notify::masker(Vec::new()),
                redeploy: None,
                poll_interval: Duration::from_millis(500),
                active: Mutex::new(HashMap::new()),
            },
        }
    }

    pub fn config(&self) -> &DeliveryConfig {
        &self.config
    }

    /// The request with the environment's configured spelling: environment names are
    /// case-insensitive, so `PRODUCTION` gets production's rules, approvals and history.
    fn canonical(&self, req: &DeploymentRequest) -> DeploymentRequest {
        let mut req = req.clone();
        if let Some(env) = self.config.environment(&req.environment) {
            req.environment = env.name.clone();
        }
        req
    }

    pub fn approvals(&self) -> &ApprovalStore {
        &self.store
    }

    pub fn history(&self) -> Option<&History> {
        self.history.as_ref()
    }

    pub fn notifier(&self) -> Option<&SlackNotifier> {
        self.subscribers.as_ref()?.notifier()
    }

    /// The history and Slack subscribers this delivery emits to (to share them with the
    /// other deliveries of the run: [`DeliveryBuilder::subscribers`]).
    pub fn subscribers(&self) -> Option<&Arc<DeliverySubscribers>> {
        self.subscribers.as_ref()
    }

    /// A link to the run shown in messages.
    pub fn set_run_url(&self, run_id: &str, url: &str) {
        if let Some(s) = &self.subscribers {
            s.set_run_url(run_id, url);
        }
    }

    /// Sends a run-level message (the run reporter) through the Slack subscriber's notifier.
    pub(crate) async fn send(&self, n: Notification) {
        if let Some(notifier) = self.notifier()
            && let Err(e) = notifier.notify(&n).await
        {
            tracing::warn!("{e}");
            self.sink.emit(RunEvent::NotificationWarning {
                message: e.to_string(),
            });
        }
    }

    /// The subject line of a commit of the repository (`None` when git cannot tell).
    pub(crate) fn commit_message(&self, sha: &str) -> Option<String> {
        std::process::Command::new("git")
            .arg("-C")
            .arg(&self.root)
            .args(["log", "-1", "--format=%s", sha])
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
    }

    /// Emits the record (the history subscriber saves it; with a `notice`, Slack says
    /// it), then `then`, and waits until the subscribers have handled both: the history
    /// holds the record before the gate goes on (a later rollback reads it back) and
    /// before `admit` / `verify` return.
    pub(super) async fn record(
        &self,
        req: &DeploymentRequest,
        rec: &DeploymentRecord,
        notice: Option<&str>,
        then: Option<RunEvent>,
    ) {
        match serde_json::to_value(rec) {
            // The commit's subject is read here, not by the subscriber, so that this
            // delivery's sink masks it (with this environment's secrets too).
            Ok(record) => self.sink.emit(RunEvent::DeploymentRecorded {
                environment: req.environment.clone(),
                repository: req.repository.clone(),
                notice: notice.map(str::to_string),
                commit_message: notice
                    .filter(|_| self.notifier().is_some())
                    .and_then(|_| self.commit_message(&rec.sha)),
                record,
            }),
            Err(e) => tracing::warn!("deployment history: {e}"),
        }
        if let Some(ev) = then {
            self.sink.emit(ev);
        }
        if let Some(s) = &self.subscribers {
            s.flush().await;
        }
    }

    async fn refuse(
        &self,
        req: &DeploymentRequest,
        mut rec: DeploymentRecord,
        st: &str,
        reason: String,
    ) -> Refusal {
        rec.status = st.into();
        rec.message = Some(reason.clone());
        let refused = RunEvent::GateRefused {
            environment: req.environment.clone(),
            reason: reason.clone(),
        };
        self.record(req, &rec, Some(notice::REFUSED), Some(refused))
            .await;
        let kind = match st {
            status::BLOCKED => RefusalKind::Blocked,
            status::REJECTED => RefusalKind::Rejected,
            status::TIMED_OUT => RefusalKind::TimedOut,
            status::CANCELLED => RefusalKind::Cancelled,
            _ => RefusalKind::Unavailable,
        };
        Refusal::new(kind, reason)
    }

    fn ask(&self, req: &PendingApproval, note: Option<String>) -> Option<PromptFuture> {
        let p = self.prompt.clone()?;
        let r = req.clone();
        Some(Box::pin(async move { p.ask(&r, note.as_deref()).await }))
    }

    fn probe_context(&self, env: &EnvironmentConfig, sha: &str, url: Option<&str>) -> ProbeContext {
        let mut vars = env.vars.clone();
        vars.insert("GANTRY_ENVIRONMENT".into(), env.name.clone());
        vars.insert("GANTRY_SHA".into(), sha.into());
        if let Some(u) = url {
            vars.insert("GANTRY_DEPLOYMENT_URL".into(), u.into());
        }
        ProbeContext {
            workdir: self.root.clone(),
            env: vars,
            mask: self.mask.clone(),
            command_timeout: Duration::from_secs(300),
        }
    }

    async fn health(
        &self,
        req: &DeploymentRequest,
        env: &EnvironmentConfig,
        sha: &str,
        url: Option<&str>,
        after_rollback: bool,
    ) -> Option<HealthReport> {
        let hc = env.health_check.as_ref()?;
        self.sink.emit(RunEvent::HealthCheckStarted {
            environment: req.environment.clone(),
            after_rollback,
        });
        let ctx = self.probe_context(env, sha, url);
        let report =
            health::analyze(hc, &ctx, |m| self.sink.emit(m.to_event(&req.environment))).await;
        self.sink.emit(RunEvent::HealthCheckFinished {
            environment: req.environment.clone(),
            after_rollback,
            passed: report.passed,
            summary: report.summary(),
        });
        Some(report)
    }

    /// Rolls back and checks health again; returns the record of it.
    async fn roll_back(
        &self,
        req: &DeploymentRequest,
        env: &EnvironmentConfig,
        rec: &DeploymentRecord,
        admission: &Admission,
    ) -> RollbackRecord {
        let previous = match &self.history {
            Some(h) => h.last_successful(&env.name, &rec.id).await.ok().flatten(),
            None => None,
        };
        self.sink.emit(RunEvent::RollbackStarted {
            environment: req.environment.clone(),
            to_sha: previous.as_ref().map(|p| p.sha.clone()),
        });
        let mut out = RollbackRecord {
            strategy: String::new(),
            to_sha: previous.as_ref().map(|p| p.sha.clone()),
            to_run_id: previous.as_ref().map(|p| p.run_id.clone()),
            succeeded: false,
            exit_code: None,
            health: None,
            message: String::new(),
            at: Utc::now(),
        };
        let result = match env.rollback.as_ref() {
            Some(RollbackConfig::Run(script)) => {
                out.strategy = "run".into();
                let mut vars = env.vars.clone();
                vars.extend(admission.secrets.clone());
                vars.extend(rollback::rollback_env(
                    &env.name,
                    &rec.sha,
                    &req.run_id,
                    previous.as_ref(),
                ));
                let (code, res) =
                    rollback::run_script(script, &self.root, &vars, self.mask.clone(), |line| {
                        self.sink.emit(RunEvent::RollbackOutput {
                            environment: req.environment.clone(),
                            line,
                        })
                    })
                    .await;
                out.exit_code = code;
                res
            }
            Some(RollbackConfig::Previous) => {
                out.strategy = "previous".into();
                match (&previous, &self.redeploy) {
                    (None, _) => Err("no previous successful deployment to roll back to".into()),
                    (Some(_), None) => Err("`strategy: previous` needs the engine's redeploy hook, which this runner does not provide".into()),
                    (Some(p), Some(r)) => {
                        let sink = self.sink.clone();
                        let environment = req.environment.clone();
                        let output = move |line: String| {
                            sink.emit(RunEvent::RollbackOutput {
                                environment: environment.clone(),
                                line,
                            })
                        };
                        r.redeploy(req, p, admission, &output)
                            .await
                            .map_err(|e| e.to_string())
                    }
                }
            }
            None => Err("no rollback configured".into()),
        };
        match result {
            Ok(()) => {
                out.succeeded = true;
                let to = previous.as_ref().map(|p| p.sha.clone()).unwrap_or_default();
                let url = previous.as_ref().and_then(|p| p.url.clone());
                let report = self.health(req, env, &to, url.as_deref(), true).await;
                let health_word = match &report {
                    Some(r) if r.passed => "healthy".to_string(),
                    Some(r) => format!("still unhealthy: {}", r.reason.clone().unwrap_or_default()),
                    None => "not checked".to_string(),
                };
                out.health = report;
                out.message = format!(
                    "rolled back to {} ({health_word})",
                    if to.is_empty() {
                        "the previous version".to_string()
                    } else {
                        short(&to).to_string()
                    }
                );
            }
            Err(e) => {
                out.message = format!("rollback failed: {e}");
            }
        }
        out
    }
}

#[async_trait]
impl DeliveryGates for Delivery {
    async fn admit(
        &self,
        req: &DeploymentRequest,
        cancel: CancellationToken,
    ) -> Result<Admission, Refusal> {
        let req = &self.canonical(req);
        let default_env = EnvironmentConfig::new(&req.environment);
        let env = self
            .config
            .environment(&req.environment)
            .unwrap_or(&default_env);
        let mut rec = DeploymentRecord::new(
            &req.environment,
            &req.run_id,
            &req.workflow,
            &req.job_name,
            &req.sha,
            &req.git_ref,
            &req.actor,
        );
        if let Err(reason) = env.check_ref(&req.git_ref) {
            let reason = reason.to_string();
            return Err(self.refuse(req, rec, status::BLOCKED, reason).await);
        }
        if env.needs_approval() {
            rec.status = status::WAITING.into();
            self.store.sweep_abandoned();
            let result = self.wait_for_approval(req, env, &rec, &cancel).await;
            // History keeps the decisions that counted under the rules, nothing else.
            let decided = self
                .store
                .get(&req.run_id, &req.environment)
                .ok()
                .map(|d| crate::approval::verdict(&d, env, &req.actor).counted);
            // The history subscriber adds them with the next record.
            if let Some(counted) = decided {
                rec.approvals = counted;
            }
            self.store.remove(&req.run_id, &req.environment);
            if let Err((st, reason)) = result {
                return Err(self.refuse(req, rec, st, reason).await);
            }
        }
        if let Some(wait) = env.wait_timer.filter(|w| !w.is_zero()) {
            self.sink.emit(RunEvent::WaitTimerStarted {
                environment: req.environment.clone(),
                seconds: wait.as_secs(),
            });
            tokio::select! {
                _ = cancel.cancelled() => {
                    return Err(self.refuse(req, rec, status::CANCELLED, format!("deployment to `{}` cancelled during the wait timer", req.environment)).await);
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
        let mut admission = Admission::default();
        for name in &env.secrets {
            let value = self
                .secrets
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name));
            match value {
                Some((_, v)) => {
                    admission.secrets.insert(name.clone(), v.clone());
                }
                None => tracing::warn!(
                    "environment `{}` lists secret {name}, which is not set",
                    env.name
                ),
            }
        }
        admission.vars = env.vars.clone();
        rec.status = status::DEPLOYING.into();
        let admitted = RunEvent::GateAdmitted {
            environment: req.environment.clone(),
        };
        self.record(req, &rec, None, Some(admitted)).await;
        self.active.lock().unwrap().insert(
            (
                req.run_id.clone(),
                req.job_id.clone(),
                req.environment.clone(),
            ),
            (rec, admission.clone()),
        );
        Ok(admission)
    }

    fn withholds_secret(&self, name: &str) -> bool {
        self.config.is_environment_secret(name)
    }

    async fn verify(&self, outcome: &DeploymentOutcome) -> Verification {
        let req = &self.canonical(&outcome.request);
        let default_env = EnvironmentConfig::new(&req.environment);
        let env = self
            .config
            .environment(&req.environment)
            .unwrap_or(&default_env);
        let key = (
            req.run_id.clone(),
            req.job_id.clone(),
            req.environment.clone(),
        );
        let (mut rec, admission) = self.active.lock().unwrap().remove(&key).unwrap_or_else(|| {
            (
                DeploymentRecord::new(
                    &req.environment,
                    &req.run_id,
                    &req.workflow,
                    &req.job_name,
                    &req.sha,
                    &req.git_ref,
                    &req.actor,
                ),
                Admission::default(),
            )
        });
        rec.outputs = outcome
            .outputs
            .iter()
            .map(|(k, v)| (k.clone(), (self.mask)(v)))
            .collect();
        // GitHub drops an environment url that contains a secret.
        rec.url = outcome.url.clone().filter(|u| (self.mask)(u) == *u);
        if let Some(r) = &self.redeploy {
            rec.inputs = r.recorded_inputs(req).await;
            notify::slack::mask_json(&mut rec.inputs, &*self.mask);
        }
        if outcome.job_result != "success" {
            rec.status = status::FAILED.into();
            let message = job_failed_message(&outcome.job_result);
            rec.message = Some(message.clone());
            let failed = RunEvent::DeploymentFailed {
                environment: req.environment.clone(),
                sha: req.sha.clone(),
                message,
            };
            self.record(req, &rec, Some(notice::JOB_FAILED), Some(failed))
                .await;
            return Verification::Passed;
        }
        let report = self
            .health(req, env, &req.sha, rec.url.as_deref(), false)
            .await;
        let failed_report = match report {
            None => None,
            Some(r) if r.passed => {
                rec.health = Some(r);
                None
            }
            Some(r) => Some(r),
        };
        let Some(report) = failed_report else {
            rec.status = status::SUCCEEDED.into();
            let succeeded = RunEvent::DeploymentSucceeded {
                environment: req.environment.clone(),
                sha: req.sha.clone(),
                url: rec.url.clone(),
            };
            self.record(req, &rec, Some(notice::SUCCEEDED), Some(succeeded))
                .await;
            return Verification::Passed;
        };
        rec.health = Some(report.clone());
        let on_failure = env
            .health_check
            .as_ref()
            .map(|h| h.on_failure)
            .unwrap_or(OnFailure::Fail);
        let reason = report.reason.clone().unwrap_or_else(|| "failed".into());
        if on_failure == OnFailure::Fail || env.rollback.is_none() {
            let message = format!(
                "deployed {} to {}, health failed: {reason}",
                short(&req.sha),
                req.environment
            );
            rec.status = status::FAILED.into();
            rec.message = Some(message.clone());
            let failed = RunEvent::DeploymentFailed {
                environment: req.environment.clone(),
                sha: req.sha.clone(),
                message: message.clone(),
            };
            self.record(req, &rec, Some(notice::UNHEALTHY), Some(failed))
                .await;
            return Verification::Failed { message };
        }
        let rb = self.roll_back(req, env, &rec, &admission).await;
        let message = format!(
            "deployed {}, health failed ({reason}), {}",
            short(&req.sha),
            rb.message
        );
        rec.status = if rb.succeeded {
            status::ROLLED_BACK
        } else {
            status::FAILED
        }
        .into();
        rec.message = Some(message.clone());
        let event = RunEvent::RolledBack {
            environment: req.environment.clone(),
            failed_sha: req.sha.clone(),
            to_sha: rb.to_sha.clone(),
            healthy: rb.health.as_ref().map(|h| h.passed),
            message: message.clone(),
        };
        let news = if rb.succeeded {
            notice::ROLLED_BACK
        } else {
            notice::ROLLBACK_FAILED
        };
        rec.rollback = Some(rb);
        self.record(req, &rec, Some(news), Some(event)).await;
        Verification::Failed { message }
    }
}
