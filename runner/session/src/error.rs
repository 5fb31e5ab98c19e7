//! What can stop a run from being prepared or executed.

use std::path::PathBuf;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The repository directory does not exist or cannot be resolved.
    #[error("{}: {source}", path.display())]
    Repository {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A workflow path given is neither a file nor a directory.
    #[error("no workflow file or directory at {}", path.display())]
    NoWorkflowFile { path: PathBuf },
    /// A workflow directory cannot be listed.
    #[error("{0}")]
    WorkflowPath(String),
    /// A workflow file leads out of the repository.
    #[error(transparent)]
    WorkflowRefused(#[from] gantry_engine::actions::resolve::FileRefused),
    /// The workflows' error diagnostics, one a line (each names its file and position).
    #[error("{0}")]
    Workflows(String),
    /// `-j JOB` names no job of the triggered workflows.
    #[error("no job '{0}' in the workflows for this event")]
    UnknownJob(String),
    /// An input is missing, of the wrong type or not one of its options (`workflow`
    /// names the file).
    #[error("{workflow}: {source}")]
    Inputs {
        workflow: String,
        source: gantry_plan::InputError,
    },
    /// `.gantry/config.yml` has errors (one a line).
    #[error("{0}")]
    DeliveryConfig(String),
    /// No workflow is triggered by the event (check [`crate::PreparedRun::is_empty`]).
    #[error("no workflow is triggered by '{0}'")]
    NothingTriggered(String),
    /// The engine refused to run (for example an unreadable repository).
    #[error("{0}")]
    Run(String),
    /// The run store failed to record the run.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SessionError {
    /// Whether the request was at fault (a usage error, exit code 2 on the command line)
    /// rather than the machine (the store).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, SessionError::Store(_))
    }
}
