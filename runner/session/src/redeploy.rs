//! `rollback: { strategy: previous }`: the delivery gate asks the session to run a deploy
//! job again at the last good deployment's commit. This runs it like `gantry run -j JOB`
//! (the run's own request, narrowed) in a detached git worktree at that commit, with the jobs it needs
//! reused from the recorded outputs (as `gantry rerun` reuses jobs), the recorded inputs,
//! vars and env, and the environment's admission of the current deployment (no second
//! approval; health is checked by the gate afterwards).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use gantry_delivery::history::DeploymentRecord;
use gantry_delivery::rollback::{Redeploy, RedeployError};
use gantry_engine::events::{JobOrigins, RunEvent, Status, Subscription};
use gantry_engine::gate::{
    Admission, DeliveryGates, DeploymentOutcome, DeploymentRequest, Refusal, Verification,
};
use gantry_engine::run::{ReusedJob, RunConfig};
use indexmap::IndexMap;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::prepare::Session;
use crate::request::{GateSource, RunRequest, WorkflowFiles};

type Outputs = IndexMap<String, String>;

/// The redeploy hook of one run.
pub(crate) struct RunRedeploy {
    /// The run's request (its root canonical): options and secrets of the redeploy.
    request: RunRequest,
    /// (workflow path, job id) → the job ids it needs, directly.
    needs: HashMap<(String, String), Vec<String>>,
    /// (workflow path, job id) → outputs of its successful legs, from the run's events.
    outputs: Arc<Mutex<HashMap<(String, String), Outputs>>>,
}

impl RunRedeploy {
    /// From the configuration of the run about to start; `sub` is a subscription to its
    /// events (the job outputs to record come from there).
    pub(crate) fn new(
        request: &RunRequest,
        cfg: &RunConfig,
        sub: Subscription,
    ) -> Arc<RunRedeploy> {
        let mut needs = HashMap::new();
        for w in &cfg.workflows {
            for (id, j) in &w.workflow.jobs {
                needs.insert(
                    (w.rel_path.clone(), id.clone()),
                    j.needs.iter().map(|n| n.value.clone()).collect(),
                );
            }
        }
        let outputs = Arc::new(Mutex::new(HashMap::new()));
        tokio::spawn(collect_outputs(sub, outputs.clone()));
        Arc::new(RunRedeploy {
            request: request.clone(),
            needs,
            outputs,
        })
    }

    /// Every job `job` needs, transitively.
    fn needed(&self, workflow: &str, job: &str) -> Vec<String> {
        let mut seen = HashSet::new();
        let mut stack = vec![job.to_string()];
        while let Some(j) = stack.pop() {
            for n in self
                .needs
                .get(&(workflow.to_string(), j))
                .cloned()
                .unwrap_or_default()
            {
                if seen.insert(n.clone()) {
                    stack.push(n);
                }
            }
        }
        let mut v: Vec<String> = seen.into_iter().collect();
        v.sort();
        v
    }
}

async fn collect_outputs(
    mut sub: Subscription,
    into: Arc<Mutex<HashMap<(String, String), Outputs>>>,
) {
    let mut origins = JobOrigins::default();
    while let Some(ev) = sub.recv().await {
        let origin = origins.track(&ev);
        if let (
            Some(k),
            RunEvent::JobFinished {
                result: Status::Success,
                outputs,
                ..
            },
        ) = (origin, &*ev)
        {
            let mut m = into.lock().unwrap();
            m.entry(k.clone()).or_default().extend(outputs.clone());
        }
    }
}

fn map_of(v: &Value) -> IndexMap<String, String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Admits the redeployed job with the current deployment's admission; verification is
/// the caller's (the gate checks health after the redeploy).
struct Readmit(Admission);

#[async_trait]
impl DeliveryGates for Readmit {
    async fn admit(
        &self,
        _req: &DeploymentRequest,
        _cancel: CancellationToken,
    ) -> Result<Admission, Refusal> {
        Ok(self.0.clone())
    }

    async fn verify(&self, _outcome: &DeploymentOutcome) -> Verification {
        Verification::Passed
    }
}

/// A detached worktree of the repository at a commit, removed on drop.
struct Worktree {
    repo: PathBuf,
    dir: PathBuf,
}

impl Worktree {
    fn add(repo: &Path, sha: &str) -> Result<Worktree, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir = std::env::temp_dir().join(format!(
            "gantry-redeploy-{}-{nanos}",
            &sha[..sha.len().min(12)]
        ));
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(["worktree", "add", "--detach", "--quiet"])
            .arg(&dir)
            .arg(sha)
            .output()
            .map_err(|e| format!("cannot run git to check out {sha}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "git worktree add {} {sha} failed: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Worktree {
            repo: repo.to_path_buf(),
            dir,
        })
    }
}

impl Drop for Worktree {
    fn drop(&mut self) {
        let _ = std::process::Command::new("git")
            .arg("-C")
            .arg(&self.repo)
            .args(["worktree", "remove", "--force"])
            .arg(&self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::process::Command::new("git")
            .arg("-C")
            .arg(&self.repo)
            .args(["worktree", "prune"])
            .output();
    }
}

#[async_trait]
impl Redeploy for RunRedeploy {
    /// The workflow, the job, the event, the run's inputs, vars and env, and the outputs
    /// of every job the deploy job needs (the gate masks secrets before storing).
    async fn recorded_inputs(&self, req: &DeploymentRequest) -> Value {
        // The jobs the deploy job needs finished before it started; let the collector
        // catch up with the event stream.
        tokio::task::yield_now().await;
        let outputs = self.outputs.lock().unwrap().clone();
        let mut needs = serde_json::Map::new();
        for n in self.needed(&req.workflow, &req.job_id) {
            let o = outputs
                .get(&(req.workflow.clone(), n.clone()))
                .cloned()
                .unwrap_or_default();
            needs.insert(n, json!(o));
        }
        json!({
            "workflow": req.workflow,
            "job_id": req.job_id,
            "event_name": self.request.event_name,
            "event": self.request.event,
            "inputs": self.request.inputs,
            "vars": self.request.vars,
            "env": self.request.env,
            "needs": needs,
        })
    }

    async fn redeploy(
        &self,
        req: &DeploymentRequest,
        previous: &DeploymentRecord,
        admission: &Admission,
        output: &(dyn Fn(String) + Send + Sync),
    ) -> Result<(), RedeployError> {
        let rec = &previous.inputs;
        let (Some(workflow), Some(job_id)) = (rec["workflow"].as_str(), rec["job_id"].as_str())
        else {
            return Err(RedeployError::Unavailable(format!(
                "the deployment of {} (run {}) has no recorded inputs to redeploy with",
                &previous.sha[..previous.sha.len().min(7)],
                previous.run_id
            )));
        };
        let wt =
            Worktree::add(&self.request.root, &previous.sha).map_err(RedeployError::Unavailable)?;
        output(format!(
            "redeploying job `{job_id}` of {workflow} at {} (run {})",
            &previous.sha[..previous.sha.len().min(7)],
            previous.run_id
        ));
        // The event as recorded, at the previous deployment's ref.
        let mut event = rec["event"].clone();
        if !event.is_object() {
            event = json!({});
        }
        event["ref"] = json!(previous.git_ref);

        let mut request = self.request.clone();
        request.root = wt.dir.clone();
        request.workflows = WorkflowFiles::Find(vec![wt.dir.join(workflow)]);
        request.options.only_jobs = vec![job_id.to_string()];
        request.event_name = rec["event_name"].as_str().unwrap_or("push").to_string();
        request.event = event;
        request.inputs = map_of(&rec["inputs"]);
        request.vars = map_of(&rec["vars"]);
        request.env = map_of(&rec["env"]);
        request.gates = GateSource::Given(Arc::new(Readmit(admission.clone())));
        request.rerun_of = None;
        request.workflow_texts = HashMap::new();
        request.reuse = HashMap::new();
        if let Some(needs) = rec["needs"].as_object() {
            for (id, outputs) in needs {
                request.reuse.insert(
                    (workflow.to_string(), id.clone()),
                    ReusedJob {
                        result: Status::Success,
                        outputs: map_of(outputs),
                    },
                );
            }
        }
        let prepared =
            Session::prepare(request).map_err(|e| RedeployError::Unavailable(e.to_string()))?;
        if prepared.is_empty() {
            return Err(RedeployError::Unavailable(format!(
                "{workflow} at {} is not triggered by its recorded event",
                &previous.sha[..7.min(previous.sha.len())]
            )));
        }
        let result = prepared
            .execute_within(&req.run_id, output)
            .await
            .map_err(|e| RedeployError::Unavailable(e.to_string()))?;
        match result {
            Status::Success => Ok(()),
            other => Err(RedeployError::JobFailed {
                job: job_id.to_string(),
                sha: previous.sha[..7.min(previous.sha.len())].to_string(),
                result: other.to_string(),
            }),
        }
    }
}
