//! The job-executor boundary: what the scheduler hands over once a job instance has been
//! admitted, and what comes back.
//!
//! The scheduler's side (`scheduler::admission`) evaluates the job-level keys it needs,
//! asks the delivery gate (branch rules, approvals, wait timer) and only then builds a
//! [`JobAssignment`]: plain, serializable data holding the job definition, its contexts
//! and the secrets released to it. An executor runs the assignment and reports the job's
//! `RunEvent`s on the run's stream and an [`ExecutedJob`]. Post-deploy verification
//! (health checks, rollback) and the job's `job_finished` event are the scheduler's again.
//! So an executor never decides a gate, and never holds an environment's secrets unless
//! the gate released them to this job.
//!
//! [`LocalExecutor`] runs jobs in this process (host and Docker backends). A remote agent
//! is another implementation: it would receive the assignment as JSON, and its receiving
//! side would mask the job's events with the values withheld from the job (environment
//! secrets of other environments), which the local executor masks in-process.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gantry_expr::Value;
use gantry_workflow::Workflow;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::events::{Status, Text};
use crate::github_contexts::StrategyFacts;
use crate::run::RunShared;

/// One admitted job instance, as data. Everything here may reach the executor: the
/// secrets are the scope's (the run's, or what a reusable-workflow call passed) plus the
/// environment's, released by the gate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobAssignment {
    /// The job instance's key, unique in the run (`build`, `test (linux, 20)`, `call/job`).
    pub key: Text,
    /// The job's id in [`JobAssignment::workflow`].
    pub job_id: String,
    /// Display name (matrix values and caller prefix included).
    pub name: String,
    /// The workflow the job is in (a called workflow inside a reusable-workflow call).
    /// Steps and job keys stay unevaluated templates, as in GitHub's job message.
    pub workflow: Arc<Workflow>,
    /// The top-level workflow: its display name (`github.workflow`) and path.
    pub top_workflow: TopWorkflow,
    /// Where `./` actions and local called workflows resolve: the repository root, or the
    /// checkout of a called workflow's repository.
    pub repo_root: PathBuf,
    pub matrix: Option<serde_json::Map<String, serde_json::Value>>,
    pub strategy: StrategyFacts,
    #[serde(with = "value_json")]
    pub inputs: Value,
    /// The `needs` context (direct needs' results and outputs).
    #[serde(with = "value_json")]
    pub needs: Value,
    /// `vars`: the run's, with the environment's over them once admitted.
    pub vars: Arc<IndexMap<String, String>>,
    /// `secrets`: the scope's, with the environment's released by the gate.
    pub secrets: IndexMap<String, String>,
    /// The environment the gate admitted the job to (`None`: no `environment:`).
    pub environment: Option<String>,
    /// `continue-on-error`, evaluated by the scheduler (it reports the job's end).
    pub continue_on_error: bool,
}

/// The top-level workflow of a job, for its `github` context and records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopWorkflow {
    pub name: String,
    /// Path relative to the repository root (`.github/workflows/ci.yml`).
    pub path: String,
}

/// What an executor reports when the job has ended (its events went to the stream).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecutedJob {
    pub result: Status,
    /// Job outputs (values that would be masked are already left out).
    pub outputs: IndexMap<String, String>,
    /// `environment.url`, evaluated after the steps (empty and masked values left out).
    pub environment_url: Option<String>,
    #[serde(with = "duration_ms")]
    pub duration: Duration,
}

impl ExecutedJob {
    /// A job that ended before it ran a step.
    pub fn ended(result: Status, duration: Duration) -> Self {
        ExecutedJob {
            result,
            outputs: IndexMap::new(),
            environment_url: None,
            duration,
        }
    }
}

/// Runs admitted jobs. Implementations: [`LocalExecutor`]; a remote agent later.
#[async_trait]
pub trait JobExecutor: Send + Sync {
    /// Runs `job` to its end. When `cancel` fires the job's processes and containers are
    /// stopped (SIGINT → SIGTERM → SIGKILL) and the result is `cancelled`.
    async fn execute(&self, job: JobAssignment, cancel: CancellationToken) -> ExecutedJob;
}

/// Wraps the run's local executor (tests put a serializing layer in between; a remote
/// dispatcher would replace it). See `RunConfig::wrap_executor`.
pub type WrapExecutor = Arc<dyn Fn(Arc<dyn JobExecutor>) -> Arc<dyn JobExecutor> + Send + Sync>;

/// Runs jobs in this process, on the run's host and Docker backends.
pub struct LocalExecutor {
    shared: Arc<RunShared>,
}

impl LocalExecutor {
    pub fn new(shared: Arc<RunShared>) -> Self {
        LocalExecutor { shared }
    }
}

#[async_trait]
impl JobExecutor for LocalExecutor {
    async fn execute(&self, job: JobAssignment, cancel: CancellationToken) -> ExecutedJob {
        crate::job::execute::run_assignment(self.shared.clone(), job, cancel).await
    }
}

/// The run's executor: the local one, wrapped when the configuration says so.
pub(crate) fn for_run(shared: &Arc<RunShared>) -> Arc<dyn JobExecutor> {
    let local: Arc<dyn JobExecutor> = Arc::new(LocalExecutor::new(shared.clone()));
    match &shared.cfg.wrap_executor {
        Some(wrap) => wrap(local),
        None => local,
    }
}

/// Expression values as their JSON form.
mod value_json {
    use gantry_expr::Value;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Value, s: S) -> Result<S::Ok, S::Error> {
        v.to_json().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        Ok(Value::from_json(&serde_json::Value::deserialize(d)?))
    }
}

mod duration_ms {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        (d.as_millis() as u64).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}
