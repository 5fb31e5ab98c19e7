//! The seam between the engine and continuous-delivery rules (`.gantry/config.yml`):
//! environment gates before a job starts and health checks / rollback after it.
//! The engine calls these hooks; the delivery module implements them. With no config,
//! [`NoGates`] lets every job through.

use async_trait::async_trait;
use indexmap::IndexMap;

/// What the engine knows about a job that references an `environment:`.
#[derive(Debug, Clone)]
pub struct DeploymentRequest {
    pub run_id: String,
    pub workflow: String,
    pub job_id: String,
    /// Display name of the job instance (with matrix values).
    pub job_name: String,
    pub environment: String,
    /// Full ref (`refs/heads/main`) and commit of the run.
    pub git_ref: String,
    pub sha: String,
    pub actor: String,
    pub repository: String,
}

/// The gate's answer: proceed with these extra secrets and vars (environment-scoped,
/// released only now), or refuse with a reason that fails the job.
#[derive(Debug, Clone, Default)]
pub struct Admission {
    pub secrets: IndexMap<String, String>,
    pub vars: IndexMap<String, String>,
}

/// Why a gate did not admit a job: the job fails, or is cancelled when the kind says the
/// run was cancelled while it waited. `reason` is what the job's log and the run record
/// say (masked by the gate).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Refusal {
    pub kind: RefusalKind,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The ref may not deploy to the environment (branch and tag rules).
    Blocked,
    /// A reviewer rejected the deployment.
    Rejected,
    /// No decision came in time.
    TimedOut,
    /// The run was cancelled while the job waited at the gate.
    Cancelled,
    /// The gate could not decide (its store or configuration failed); nothing is admitted.
    Unavailable,
}

impl Refusal {
    pub fn new(kind: RefusalKind, reason: impl Into<String>) -> Self {
        Refusal {
            kind,
            reason: reason.into(),
        }
    }
}

/// After the job of an environment finished (successfully): outputs and url to record.
#[derive(Debug, Clone)]
pub struct DeploymentOutcome {
    pub request: DeploymentRequest,
    pub job_result: String,
    pub outputs: IndexMap<String, String>,
    pub url: Option<String>,
}

/// The verdict of post-deploy verification. `Failed` fails the job with the message
/// (e.g. "deployed abc123, health failed, rolled back to def456 (healthy)").
#[derive(Debug, Clone)]
pub enum Verification {
    /// No health check configured or it passed.
    Passed,
    Failed {
        message: String,
    },
}

#[async_trait]
pub trait DeliveryGates: Send + Sync {
    /// Called before a job with `environment:` starts: branch policy, approvals, wait timer.
    /// May wait for a long time (approvals); must return promptly when `cancel` fires.
    async fn admit(
        &self,
        req: &DeploymentRequest,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<Admission, Refusal>;

    /// Called after such a job finished: record the deployment, run health checks, roll
    /// back when configured.
    async fn verify(&self, outcome: &DeploymentOutcome) -> Verification;

    /// Whether the run's secret `name` belongs to an environment. Such a secret is taken
    /// out of the run-wide secrets before any job starts (no `secrets.*`, no process env)
    /// and reaches a job only through [`Admission::secrets`]; it is still masked in every
    /// job's output.
    fn withholds_secret(&self, _name: &str) -> bool {
        false
    }
}

/// No delivery configuration: every environment is open, nothing is verified.
pub struct NoGates;

#[async_trait]
impl DeliveryGates for NoGates {
    async fn admit(
        &self,
        _req: &DeploymentRequest,
        _cancel: tokio_util::sync::CancellationToken,
    ) -> Result<Admission, Refusal> {
        Ok(Admission::default())
    }

    async fn verify(&self, _outcome: &DeploymentOutcome) -> Verification {
        Verification::Passed
    }
}
