//! Environment protection on the server: the rules of `gantry-server.yml` (never the
//! commit's), approvals by signed-in reviewers recorded in the store.
//!
//! The run launcher asks [`for_run`] for a run's gates. A job of a configured environment
//! is checked against the branch/tag rules, then (with reviewers or a wait timer) recorded
//! as a pending review: the job and the run show `waiting` until the reviewers decide
//! through the API (`api_deploy.rs`) and the wait timer has passed. Environment secrets and
//! vars are released only in the admission.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use gantry_delivery::approval::ApprovalState;
use gantry_engine::gate::{
    Admission, DeliveryGates, DeploymentOutcome, DeploymentRequest, Refusal, RefusalKind,
    Verification,
};
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{Environment, Repository};
use crate::state::{App, LiveEvent};
use crate::store::StoreError;
use crate::store_reviews::ReviewRecord;
use crate::store_runs::RunRecord;

pub mod delivery;
pub mod rules;

use delivery::RunDelivery;

/// How often a waiting gate re-reads the store even without a wake-up (decisions written
/// by another server process on the same database).
const POLL: Duration = Duration::from_secs(2);

/// The gates one run's jobs pass through (`RunConfig::gates`): the server's protection
/// rules, then what the repository's `.gantry/config.yml` adds (`delivery`: health checks,
/// rollback, Slack).
pub fn for_run(
    app: Arc<App>,
    run: &RunRecord,
    delivery: Option<Arc<RunDelivery>>,
) -> Arc<dyn DeliveryGates> {
    Arc::new(ServerGate {
        app,
        run: run.clone(),
        deployments: Mutex::new(HashMap::new()),
        delivery,
    })
}

/// The server's gate for one run.
pub struct ServerGate {
    app: Arc<App>,
    /// The run as the store has it: its actor (pusher or dispatcher) and ref are the ones
    /// the rules judge, not what the engine was told.
    run: RunRecord,
    /// Deployment ids by job instance name, from admission to verification.
    deployments: Mutex<HashMap<String, i64>>,
    /// Health checks, rollback and Slack of the repository's `.gantry/config.yml`.
    delivery: Option<Arc<RunDelivery>>,
}

/// Why a wait ended without admission.
enum Refused {
    Rejected(String),
    Cancelled,
    Store(StoreError),
}

impl From<StoreError> for Refused {
    fn from(e: StoreError) -> Refused {
        Refused::Store(e)
    }
}

fn store_failed(e: StoreError) -> Refusal {
    tracing::error!("deployment gate: store: {e}");
    Refusal::new(
        RefusalKind::Unavailable,
        "the run store is unavailable; the deployment was not admitted",
    )
}

impl ServerGate {
    fn repository(&self) -> Option<&Repository> {
        self.app.cfg.repository(&self.run.repo)
    }

    /// The store's id of the job the engine asks about (matrix legs by display name).
    async fn job_id(&self, req: &DeploymentRequest) -> Result<i64, Refusal> {
        let jobs = self
            .app
            .store
            .run_jobs(self.run.id, self.run.run_attempt)
            .await
            .map_err(store_failed)?;
        jobs.iter()
            .find(|j| j.name == req.job_name)
            .or_else(|| jobs.iter().find(|j| j.key == req.job_id))
            .map(|j| j.id)
            .ok_or_else(|| {
                Refusal::new(
                    RefusalKind::Unavailable,
                    format!(
                        "job `{}` is not recorded in run {}; the deployment was not admitted",
                        req.job_name, self.run.id
                    ),
                )
            })
    }

    async fn start_deployment(
        &self,
        req: &DeploymentRequest,
        environment: &str,
        job_id: i64,
        state: &str,
    ) -> Result<i64, StoreError> {
        let store = &self.app.store;
        let id = store
            .record_deployment(
                &self.run.repo,
                environment,
                self.run.id,
                job_id,
                &self.run.head_sha,
                &self.run.git_ref,
                &self.run.actor,
                state,
            )
            .await?;
        store
            .add_deployment_status(id, state, &self.run.actor, "")
            .await?;
        self.deployments
            .lock()
            .unwrap()
            .insert(req.job_name.clone(), id);
        Ok(id)
    }

    /// Waits until the review is approved by enough distinct reviewers and the wait timer
    /// has passed, or rejected, or the run is cancelled.
    async fn wait(
        &self,
        review: &ReviewRecord,
        env_name: &str,
        env: &Environment,
        cancel: &CancellationToken,
    ) -> Result<(), Refused> {
        // Subscribed before the first read, so a decision between the two still wakes us.
        let mut live = self.app.live.subscribe();
        let timer_ends = Instant::now() + env.wait_timer;
        let p = rules::policy(env_name, env);
        loop {
            let recorded = self.app.store.review_decisions(review).await?;
            let v = rules::judge(&p, &self.run, review, &recorded);
            if let Some(message) = rules::rejection_message(&v) {
                return Err(Refused::Rejected(message));
            }
            let approved = !p.needs_approval() || v.state == ApprovalState::Approved;
            let now = Instant::now();
            if approved && now >= timer_ends {
                return Ok(());
            }
            let nap = if approved {
                (timer_ends - now).min(POLL)
            } else {
                POLL
            };
            tokio::select! {
                _ = cancel.cancelled() => return Err(Refused::Cancelled),
                _ = woken(&mut live, self.run.id) => {}
                _ = tokio::time::sleep(nap) => {}
            }
        }
    }

    /// After a review ended: the job runs on (or fails), the run leaves `waiting` when no
    /// other review of it waits.
    async fn leave_waiting(&self, job_id: i64, job_proceeds: bool) -> Result<(), StoreError> {
        let store = &self.app.store;
        if job_proceeds {
            store.set_job_status(job_id, "in_progress", None).await?;
        }
        let still_waiting = !store.reviews(self.run.id, true).await?.is_empty();
        let run_status = store
            .get_run(&self.run.repo, self.run.id)
            .await?
            .map(|r| r.status);
        if !still_waiting && run_status.as_deref() == Some("waiting") {
            store
                .set_run_status(self.run.id, "in_progress", None)
                .await?;
        }
        Ok(())
    }

    async fn review(
        &self,
        req: &DeploymentRequest,
        env_name: &str,
        env: &Environment,
        job_id: i64,
        cancel: &CancellationToken,
    ) -> Result<(), Refusal> {
        let store = &self.app.store;
        let deployment = self
            .start_deployment(req, env_name, job_id, "waiting")
            .await
            .map_err(store_failed)?;
        // `waiting` first, so whoever sees the pending review also sees the run waiting.
        store
            .set_job_status(job_id, "waiting", None)
            .await
            .map_err(store_failed)?;
        store
            .set_run_status(self.run.id, "waiting", None)
            .await
            .map_err(store_failed)?;
        let review = store
            .request_review(self.run.id, job_id, env_name)
            .await
            .map_err(store_failed)?;
        self.announce();
        let outcome = self.wait(&review, env_name, env, cancel).await;
        let (state, deployment_state, result) = match outcome {
            Ok(()) => ("approved", "in_progress", Ok(())),
            Err(Refused::Rejected(m)) => (
                "rejected",
                "failure",
                Err(Refusal::new(RefusalKind::Rejected, m)),
            ),
            Err(Refused::Cancelled) => (
                "cancelled",
                "inactive",
                Err(Refusal::new(RefusalKind::Cancelled, "cancelled")),
            ),
            Err(Refused::Store(e)) => ("cancelled", "error", Err(store_failed(e))),
        };
        let ended = async {
            store.finish_review(review.id, state).await?;
            store
                .add_deployment_status(deployment, deployment_state, &self.run.actor, "")
                .await?;
            self.leave_waiting(job_id, result.is_ok()).await
        };
        let ended = ended.await;
        self.announce();
        ended.map_err(store_failed)?;
        result
    }

    fn announce(&self) {
        self.app.announce(LiveEvent::Approval {
            run_id: self.run.id,
        });
    }
}

/// Resolves on an approval change of `run_id` (or when the stream lagged or closed, so the
/// caller re-reads the store).
async fn woken(live: &mut broadcast::Receiver<LiveEvent>, run_id: i64) {
    loop {
        match live.recv().await {
            Ok(LiveEvent::Approval { run_id: r }) if r == run_id => return,
            Ok(_) => continue,
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}

/// The deployment statuses (GitHub's states, oldest first) of a verified deployment: its
/// health verdict, then the rollback when one ran (the deployment is no longer what runs:
/// `inactive`; `error` when the rollback failed).
fn delivery_statuses(
    record: Option<&gantry_delivery::history::DeploymentRecord>,
) -> Vec<(&'static str, String)> {
    let Some(r) = record else {
        return vec![("success", String::new())];
    };
    let health = r.health.as_ref();
    let mut out = vec![match health {
        Some(h) if h.passed => ("success", format!("health check passed: {}", h.summary())),
        Some(h) => (
            "failure",
            format!(
                "health check failed: {} ({})",
                h.reason.clone().unwrap_or_else(|| "unhealthy".into()),
                h.summary()
            ),
        ),
        None if r.status == gantry_delivery::history::status::SUCCEEDED => {
            ("success", String::new())
        }
        None => ("failure", r.message.clone().unwrap_or_default()),
    }];
    if let Some(rb) = &r.rollback {
        let state = if rb.succeeded { "inactive" } else { "error" };
        out.push((state, rb.message.clone()));
    }
    out
}

fn admission(env: &Environment) -> Admission {
    Admission {
        secrets: env
            .secrets
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_string()))
            .collect(),
        vars: env.vars.clone(),
    }
}

#[async_trait]
impl DeliveryGates for ServerGate {
    async fn admit(
        &self,
        req: &DeploymentRequest,
        cancel: CancellationToken,
    ) -> Result<Admission, Refusal> {
        // An environment the server config does not protect is open (GitHub creates it
        // on first reference); a commit cannot add or remove protection.
        let Some((env_name, env)) = self
            .repository()
            .and_then(|r| rules::environment(r, &req.environment))
        else {
            let Some(d) = &self.delivery else {
                return Ok(Admission::default());
            };
            // Unprotected, but the repository checks its health: a deployment to record.
            let job_id = self.job_id(req).await?;
            self.start_deployment(req, &req.environment, job_id, "in_progress")
                .await
                .map_err(store_failed)?;
            return d.for_environment(&req.environment).admit(req, cancel).await;
        };
        let p = rules::policy(env_name, env);
        p.check_ref(&self.run.git_ref)
            .map_err(|e| Refusal::new(RefusalKind::Blocked, e.to_string()))?;
        let job_id = self.job_id(req).await?;
        if p.needs_approval() || !env.wait_timer.is_zero() {
            self.review(req, env_name, env, job_id, &cancel).await?;
        } else {
            self.start_deployment(req, env_name, job_id, "in_progress")
                .await
                .map_err(store_failed)?;
        }
        let mut granted = admission(env);
        if let Some(d) = &self.delivery {
            // Protection is the server's (stripped from the repository's config): this
            // records the deployment in the history and keeps what verification needs.
            let repo_side = d.for_environment(env_name).admit(req, cancel).await?;
            let mut vars = repo_side.vars;
            vars.extend(granted.vars);
            granted.vars = vars;
        }
        Ok(granted)
    }

    async fn verify(&self, outcome: &DeploymentOutcome) -> Verification {
        let id = self
            .deployments
            .lock()
            .unwrap()
            .remove(&outcome.request.job_name);
        let Some(id) = id else {
            return Verification::Passed;
        };
        let job_state = match outcome.job_result.as_str() {
            "success" => "success",
            "cancelled" => "inactive",
            _ => "failure",
        };
        let (verdict, statuses) = match &self.delivery {
            Some(d) => {
                // Health checks and rollback (a successful job), Slack, history.
                let env = &outcome.request.environment;
                let v = d.for_environment(env).verify(outcome).await;
                let statuses = if outcome.job_result == "success" {
                    let record = d.record_of(env, &outcome.request.job_name).await;
                    delivery_statuses(record.as_ref())
                } else {
                    vec![(job_state, String::new())]
                };
                (v, statuses)
            }
            None => (Verification::Passed, vec![(job_state, String::new())]),
        };
        for (state, description) in statuses {
            if let Err(e) = self
                .app
                .store
                .add_deployment_status(id, state, &self.run.actor, &description)
                .await
            {
                tracing::error!("deployment {id}: store: {e}");
            }
        }
        self.announce();
        verdict
    }

    fn withholds_secret(&self, name: &str) -> bool {
        self.repository().is_some_and(|r| {
            r.environments
                .values()
                .any(|e| e.secrets.keys().any(|k| k.eq_ignore_ascii_case(name)))
        })
    }
}
