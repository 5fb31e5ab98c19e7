//! Where runs are recorded. A [`RunStore`] allocates a run and records how it was started
//! (the request, without secret values); everything else it keeps is derived from the
//! run's events, to which its recorder subscribes like any reporter. [`LocalRunStore`] is
//! the `.gantry/runs/<id>/` layout of `gantry run` and `gantry rerun` (the files are
//! described in `gantry_engine::store`); the server's SQL store is another implementation.

use std::path::{Path, PathBuf};

use gantry_engine::events::EventBus;
use gantry_engine::store::{self, LocalRuns, RecordError, RecordedSources, WorkflowText};
use serde::{Deserialize, Serialize};

use crate::execute::{Pending, RunSubscriber};

/// A store that failed to record a run.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("creating the run record in {}: {source}", path.display())]
    Allocate {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("{0}")]
    Other(String),
}

/// How a run was started, as a store records it before the first event.
pub struct RunStart<'a> {
    /// The repository directory (canonical).
    pub root: &'a Path,
    /// The caller's own record of the invocation (the CLI's flags).
    pub invocation: &'a serde_json::Value,
    /// The names of the secrets given (never their values).
    pub secret_names: Vec<String>,
    /// The workflow files that run, as parsed.
    pub workflows: &'a [WorkflowText],
    /// The local reusable workflows they call, as they will be called.
    pub called: &'a [WorkflowText],
    pub rerun_of: Option<&'a str>,
}

/// A run allocated in a store.
pub struct RunSlot {
    pub id: String,
    pub number: u64,
    /// Where the record is, for people (`.gantry/runs/3`, a URL).
    pub location: PathBuf,
    /// Records the run's events; attached before the run starts.
    pub recorder: Box<dyn RunSubscriber>,
}

pub trait RunStore: Send + Sync {
    /// Allocates a new run (its id and number) and records how it was started.
    fn begin(&self, start: &RunStart<'_>) -> Result<RunSlot, StoreError>;
}

/// What `run.json` holds (no secret values): read back by `gantry rerun`.
#[derive(Debug, Serialize, Deserialize)]
pub struct RunRecord {
    /// The invocation (the CLI's `RunArgs`, secrets skipped).
    pub args: serde_json::Value,
    pub secret_names: Vec<String>,
    pub root: PathBuf,
    /// The commit and the workflow files the run used (absent in records of older versions).
    #[serde(default)]
    pub sources: RecordedSources,
    /// The run this one re-ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<String>,
}

/// The local store: `<repo>/.gantry/runs/<id>/`.
pub struct LocalRunStore {
    runs: LocalRuns,
}

impl LocalRunStore {
    /// The store of the repository at `repo_root`.
    pub fn new(repo_root: &Path) -> Self {
        LocalRunStore {
            runs: LocalRuns::new(repo_root),
        }
    }
}

impl RunStore for LocalRunStore {
    fn begin(&self, start: &RunStart<'_>) -> Result<RunSlot, StoreError> {
        let (id, number, dir) = self
            .runs
            .allocate()
            .map_err(|source| StoreError::Allocate {
                path: self.runs.dir.clone(),
                source,
            })?;
        let sources = store::record_workflows(start.root, &dir, start.workflows, start.called)?;
        let record = RunRecord {
            args: start.invocation.clone(),
            secret_names: start.secret_names.clone(),
            root: start.root.to_path_buf(),
            sources,
            rerun_of: start.rerun_of.map(str::to_string),
        };
        let json =
            serde_json::to_string_pretty(&record).map_err(|e| StoreError::Other(e.to_string()))?;
        store::write_atomically(&dir.join("run.json"), json.as_bytes())?;
        let record_dir = dir.clone();
        let recorder = move |bus: &EventBus| {
            let writer = store::spawn_writer(record_dir, bus.subscribe_batched());
            Pending::Join(Box::new(move || match writer.join() {
                Ok(Err(e)) => tracing::warn!("writing the run record: {e}"),
                Err(_) => tracing::warn!("the run record writer panicked"),
                Ok(Ok(())) => {}
            }))
        };
        Ok(RunSlot {
            id,
            number,
            location: dir,
            recorder: Box::new(recorder),
        })
    }
}
