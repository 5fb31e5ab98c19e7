//! The one stream of run events. The engine emits [`RunEvent`]s on an [`EventBus`];
//! reporters (terminal, JSON lines, the run store) subscribe before the run starts and
//! consume them on their own tasks or threads. Reporters never call back into the engine.
//!
//! Log output travels in batches: one [`RunEvent::Log`] carries every complete line read
//! from one chunk of process output (already masked), so the hot path costs one event per
//! read, not one per line.

use std::sync::Arc;

use indexmap::IndexMap;
use serde::{Serialize, Serializer};

/// Shared immutable text (job keys, log batches) that serializes as a plain string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Text(pub Arc<str>);

impl Text {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text(Arc::from(s))
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Text(Arc::from(s))
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Text::from(s))
    }
}

/// Which stream a log batch came from. `Runner` is text written by Gantry itself (headers,
/// errors, backend progress).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
    Runner,
}

/// Result of a job, a step conclusion/outcome, or the whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Success,
    Failure,
    Cancelled,
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Failure => "failure",
            Status::Cancelled => "cancelled",
            Status::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "success" => Status::Success,
            "failure" => Status::Failure,
            "cancelled" => Status::Cancelled,
            "skipped" => Status::Skipped,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event of a run. Serialized with a `"type"` tag (`{"type":"job_started",...}`).
/// Every string that can carry user output is masked before the event is emitted.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunEvent {
    RunStarted {
        run_id: String,
        workflows: Vec<String>,
        event: String,
        repository: String,
        sha: String,
        #[serde(rename = "ref")]
        git_ref: String,
        /// RFC 3339.
        time: String,
    },
    RunFinished {
        run_id: String,
        result: Status,
        duration_ms: u64,
    },
    /// A job instance (matrix legs are separate instances) entered the plan.
    JobQueued {
        job: Text,
        job_id: String,
        name: String,
        workflow: String,
        needs: Vec<String>,
    },
    JobStarted {
        job: Text,
        name: String,
        backend: String,
    },
    JobFinished {
        job: Text,
        name: String,
        result: Status,
        duration_ms: u64,
        outputs: IndexMap<String, String>,
        /// Reused from an earlier run (`gantry rerun --failed`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        reused: bool,
        /// `continue-on-error` let this job fail without failing the run (kept in
        /// `summary.json`, which is built from the events).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        continue_on_error: bool,
    },
    StepStarted {
        job: Text,
        step: usize,
        name: String,
    },
    StepFinished {
        job: Text,
        step: usize,
        name: String,
        outcome: Status,
        conclusion: Status,
        duration_ms: u64,
    },
    /// Complete lines (each ending in `\n`), masked. `step` is `None` for job-level text
    /// (set up, services, tear down).
    Log {
        job: Text,
        step: Option<usize>,
        stream: Stream,
        text: Text,
    },
    Annotation {
        job: Text,
        step: Option<usize>,
        severity: String,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        file: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        line: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        col: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        title: Option<String>,
    },
    GroupStarted {
        job: Text,
        step: usize,
        title: String,
    },
    GroupEnded {
        job: Text,
        step: usize,
    },
    /// A job with `environment:` waits for its delivery gate (approvals, branch policy).
    /// Named `approval_requested` before delivery events joined this stream; old run
    /// records still load.
    #[serde(alias = "approval_requested")]
    GateEntered {
        job: Text,
        environment: String,
    },
    StepSummary {
        job: Text,
        step: usize,
        markdown: String,
    },
    /// Delivery (`.gantry/config.yml`; every delivery event is emitted by the delivery gate,
    /// masked): the gate waits for reviewers; `command` approves from another terminal.
    ApprovalPending {
        environment: String,
        job: String,
        reviewers: Vec<String>,
        required_approvals: u32,
        command: String,
    },
    /// Delivery: a reviewer's decision was recorded (`accepted`) or refused (`message`).
    ApprovalDecided {
        environment: String,
        by: String,
        approved: bool,
        accepted: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        message: String,
    },
    /// Delivery: one health-check measurement (`phase`: successful, failed, error).
    HealthMeasurement {
        environment: String,
        probe: String,
        index: u32,
        phase: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<String>,
        latency_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// RFC 3339.
        time: String,
    },
    DeploymentSucceeded {
        environment: String,
        sha: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
    },
    DeploymentFailed {
        environment: String,
        sha: String,
        message: String,
    },
    /// Delivery: the gate refused the job (branch policy, rejection, timeout).
    GateRefused {
        environment: String,
        reason: String,
    },
    /// Delivery: the environment's wait timer started.
    WaitTimerStarted {
        environment: String,
        seconds: u64,
    },
    /// Delivery: the gate let the job start.
    GateAdmitted {
        environment: String,
    },
    /// Delivery: a health check started (`after_rollback`: of the version rolled back to).
    HealthCheckStarted {
        environment: String,
        #[serde(default)]
        after_rollback: bool,
    },
    /// Delivery: a health check ended; `summary` holds its figures.
    HealthCheckFinished {
        environment: String,
        #[serde(default)]
        after_rollback: bool,
        passed: bool,
        summary: String,
    },
    /// Delivery: a rollback started (`to_sha`: the last healthy deployment, if any).
    RollbackStarted {
        environment: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to_sha: Option<String>,
    },
    /// Delivery: one line of output of the rollback script or redeploy.
    RollbackOutput {
        environment: String,
        line: String,
    },
    /// Delivery: a deployment's record changed. `record` is the delivery crate's
    /// `DeploymentRecord` as JSON (masked; opaque to the engine): the deployment history
    /// subscribes to it, and notifiers read the deployment's context (run, commit, actor,
    /// job, health, rollback) from it. `notice` names the news a notifier reports, when
    /// the change is news (`approval_requested`, `refused`, `job_failed`, `unhealthy`,
    /// `succeeded`, `rolled_back`, `rollback_failed`); `commit_message` is the commit's
    /// subject line for that news (read only when a notifier listens).
    DeploymentRecorded {
        environment: String,
        repository: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        notice: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        commit_message: Option<String>,
        record: serde_json::Value,
    },
    /// Delivery: a notification (Slack) could not be delivered; never fails the run.
    NotificationWarning {
        message: String,
    },
    /// Delivery: health failed and the environment was rolled back (`healthy`: the health
    /// check after the rollback; `None` when none ran).
    RolledBack {
        environment: String,
        failed_sha: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to_sha: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        healthy: Option<bool>,
        message: String,
    },
}

/// The workflow file and job id behind each job key of a run, learned from its
/// `JobQueued` events: what a subscriber needs to file a `JobFinished` under its job
/// (a reusable workflow's jobs have keys like `call/build` but their own workflow and id).
#[derive(Debug, Default)]
pub struct JobOrigins(std::collections::HashMap<String, (String, String)>);

impl JobOrigins {
    /// Notes a `JobQueued`; for any other event of a known job, its (workflow, job id).
    pub fn track(&mut self, ev: &RunEvent) -> Option<&(String, String)> {
        if let RunEvent::JobQueued {
            job,
            job_id,
            workflow,
            ..
        } = ev
        {
            self.0
                .insert(job.to_string(), (workflow.clone(), job_id.clone()));
            return None;
        }
        self.0.get(&**ev.job()?)
    }
}

impl RunEvent {
    /// The event's `"type"` (`"step_finished"`), from its serialized form: for tests and
    /// traces, not the hot path.
    pub fn type_name(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v["type"].as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// The job key of a job-scoped event.
    pub fn job(&self) -> Option<&Text> {
        match self {
            RunEvent::RunStarted { .. }
            | RunEvent::RunFinished { .. }
            | RunEvent::ApprovalPending { .. }
            | RunEvent::ApprovalDecided { .. }
            | RunEvent::HealthMeasurement { .. }
            | RunEvent::DeploymentSucceeded { .. }
            | RunEvent::DeploymentFailed { .. }
            | RunEvent::GateRefused { .. }
            | RunEvent::WaitTimerStarted { .. }
            | RunEvent::GateAdmitted { .. }
            | RunEvent::HealthCheckStarted { .. }
            | RunEvent::HealthCheckFinished { .. }
            | RunEvent::RollbackStarted { .. }
            | RunEvent::RollbackOutput { .. }
            | RunEvent::NotificationWarning { .. }
            | RunEvent::DeploymentRecorded { .. }
            | RunEvent::RolledBack { .. } => None,
            RunEvent::JobQueued { job, .. }
            | RunEvent::JobStarted { job, .. }
            | RunEvent::JobFinished { job, .. }
            | RunEvent::StepStarted { job, .. }
            | RunEvent::StepFinished { job, .. }
            | RunEvent::Log { job, .. }
            | RunEvent::Annotation { job, .. }
            | RunEvent::GroupStarted { job, .. }
            | RunEvent::GroupEnded { job, .. }
            | RunEvent::GateEntered { job, .. }
            | RunEvent::StepSummary { job, .. } => Some(job),
        }
    }
}

mod bus;
pub use bus::{BatchedSubscription, EventBus, Received, Subscription};

/// Milliseconds of a duration, saturating.
pub fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_with_type_tag() {
        let ev = RunEvent::StepFinished {
            job: "build".into(),
            step: 2,
            name: "Run make".into(),
            outcome: Status::Failure,
            conclusion: Status::Success,
            duration_ms: 12,
        };
        let j = serde_json::to_value(&ev).unwrap();
        assert_eq!(j["type"], "step_finished");
        assert_eq!(j["outcome"], "failure");
        assert_eq!(j["conclusion"], "success");
        let back: RunEvent = serde_json::from_value(j).unwrap();
        assert!(matches!(back, RunEvent::StepFinished { step: 2, .. }));
    }

    #[test]
    fn old_gate_records_still_load() {
        let old = r#"{"type":"approval_requested","job":"deploy","environment":"prod"}"#;
        let ev: RunEvent = serde_json::from_str(old).unwrap();
        assert!(matches!(&ev, RunEvent::GateEntered { environment, .. } if environment == "prod"));
        let j = serde_json::to_value(&ev).unwrap();
        assert_eq!(j["type"], "gate_entered");
    }
}
