//! Rollback: a `run:` script with the environment's context, or `strategy: previous`
//! through an engine hook that re-runs the deploy job at the last good commit.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;

use async_trait::async_trait;
use gantry_engine::gate::{Admission, DeploymentRequest};
use indexmap::IndexMap;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::history::DeploymentRecord;

/// The engine's side of `strategy: previous` (the CLI implements it with the engine's
/// run machinery; the delivery crate never reaches into the engine).
///
/// At every deployment, [`Redeploy::recorded_inputs`] says what the runner needs to run
/// that deploy job again later (the workflow, the job id, the outputs of the jobs it needs,
/// the run's inputs and vars; never secrets); the history stores it with the deployment.
/// [`Redeploy::redeploy`] re-runs the deploy job at `previous.sha` with `previous.inputs`,
/// with the environment's admission (secrets, vars) of the current deployment, streaming
/// its output lines to `output`, and reports whether the job succeeded.
#[async_trait]
pub trait Redeploy: Send + Sync {
    async fn recorded_inputs(&self, _request: &DeploymentRequest) -> serde_json::Value {
        serde_json::Value::Null
    }

    async fn redeploy(
        &self,
        request: &DeploymentRequest,
        previous: &DeploymentRecord,
        admission: &Admission,
        output: &(dyn Fn(String) + Send + Sync),
    ) -> Result<(), RedeployError>;
}

/// Why a redeploy of the previous deployment did not put it back.
#[derive(Debug, thiserror::Error)]
pub enum RedeployError {
    /// The previous deployment cannot be run again as recorded (no recorded inputs, its
    /// workflow no longer triggered by the recorded event, its commit not checked out).
    #[error("{0}")]
    Unavailable(String),
    /// The redeploy ran, and its job ended otherwise than `success`.
    #[error("the redeploy of job `{job}` at {sha} ended with {result}")]
    JobFailed {
        job: String,
        sha: String,
        result: String,
    },
}

/// The environment variables a rollback script sees (besides the environment's vars and
/// released secrets).
pub fn rollback_env(
    environment: &str,
    failed_sha: &str,
    run_id: &str,
    previous: Option<&DeploymentRecord>,
) -> IndexMap<String, String> {
    let mut env = IndexMap::new();
    env.insert("GANTRY_ENVIRONMENT".into(), environment.to_string());
    env.insert("GANTRY_FAILED_SHA".into(), failed_sha.to_string());
    env.insert("GANTRY_RUN_ID".into(), run_id.to_string());
    env.insert(
        "GANTRY_PREVIOUS_SHA".into(),
        previous.map(|p| p.sha.clone()).unwrap_or_default(),
    );
    env.insert(
        "GANTRY_PREVIOUS_RUN_ID".into(),
        previous.map(|p| p.run_id.clone()).unwrap_or_default(),
    );
    env.insert(
        "GANTRY_PREVIOUS_OUTPUTS".into(),
        previous
            .map(|p| serde_json::to_string(&p.outputs).unwrap_or_else(|_| "{}".into()))
            .unwrap_or_else(|| "{}".into()),
    );
    env
}

/// Runs a rollback script with `sh -e -c` in `workdir`; every output line (masked) goes
/// to `on_line`. Returns the exit code (`None` when killed or not started) and whether it
/// succeeded.
pub async fn run_script(
    script: &str,
    workdir: &Path,
    env: &IndexMap<String, String>,
    mask: Arc<dyn Fn(&str) -> String + Send + Sync>,
    mut on_line: impl FnMut(String),
) -> (Option<i32>, Result<(), String>) {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-e")
        .arg("-c")
        .arg(script)
        .current_dir(workdir)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return (
                None,
                Err(format!("could not start the rollback script: {e}")),
            );
        }
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        let tx = tx.clone();
        readers.push(tokio::spawn(async move {
            let mut lines = BufReader::new(out).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                let _ = tx.send(l);
            }
        }));
    }
    if let Some(err) = child.stderr.take() {
        let tx = tx.clone();
        readers.push(tokio::spawn(async move {
            let mut lines = BufReader::new(err).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                let _ = tx.send(l);
            }
        }));
    }
    drop(tx);
    let mut last = None;
    while let Some(line) = rx.recv().await {
        let masked = mask(&line);
        last = Some(masked.clone());
        on_line(masked);
    }
    let status = child.wait().await;
    match status {
        Ok(s) if s.success() => (s.code(), Ok(())),
        Ok(s) => (
            s.code(),
            Err(format!(
                "the rollback script failed ({}){}",
                s.code()
                    .map(|c| format!("exit code {c}"))
                    .unwrap_or_else(|| "killed".into()),
                last.map(|l| format!(": {l}")).unwrap_or_default()
            )),
        ),
        Err(e) => (None, Err(format!("waiting for the rollback script: {e}"))),
    }
}
