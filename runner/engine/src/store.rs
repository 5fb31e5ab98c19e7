//! The run store: every run is saved under `<repo>/.gantry/runs/<id>/`:
//!
//! - `run.json`: how the run was started (event, workflows, flags; secret values are never
//!   stored, only their names);
//! - `events.jsonl`: every event except log lines, one JSON object a line;
//! - `logs/<job>/<step>.log` (`setup.log` for job-level text): the masked log of each step;
//! - `summary.json` / `summary.md`: the result and every job's result, duration and outputs
//!   (used by `gantry rerun --failed`), the critical path and the step summaries, built from
//!   the events ([`SummaryBuilder`]) by the writer once `run_finished` was seen;
//! - `workflows/`: copies of the workflow files the run used (and the local ones they call)
//!   that were not as committed.
//!
//! This module is the layout; `gantry-session`'s `LocalRunStore` is the run store that
//! writes it (as an event subscriber). Run ids are increasing numbers (`1`, `2`, …); the directory is created atomically.
//! A crash leaves a usable record: `events.jsonl` and the logs are extended by whole lines
//! ([`writer`]), the JSON files are replaced whole ([`write_atomically`]), and readers skip a
//! cut last line and rebuild a missing summary from the events ([`reader`]).

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::events::Status;

mod reader;
mod summary;
mod workflows;
mod writer;

pub use reader::{RebuiltSummary, RecordError, RecordedEvents, read_events, summary_from_events};
pub use summary::{SummaryBuilder, critical_path, write_summary};
pub use workflows::{
    RecordedSources, RecordedWorkflow, WorkflowText, record_workflows, recorded_workflow_text,
};
pub use writer::{FLUSH_INTERVAL, spawn_writer};

/// `<repo>/.gantry/runs`: the local run records (the session's local `RunStore` writes
/// them, `gantry rerun` reads them).
#[derive(Debug, Clone)]
pub struct LocalRuns {
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobSummary {
    pub key: String,
    pub job_id: String,
    pub workflow: String,
    pub name: String,
    pub result: Status,
    #[serde(default)]
    pub continue_on_error: bool,
    pub outputs: IndexMap<String, String>,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSummary {
    pub run_id: String,
    pub result: Status,
    pub duration_ms: u64,
    pub jobs: Vec<JobSummary>,
    /// Job keys on the critical path (longest chain of needs by duration).
    #[serde(default)]
    pub critical_path: Vec<String>,
}

impl LocalRuns {
    pub fn new(repo_root: &Path) -> Self {
        LocalRuns {
            dir: repo_root.join(".gantry").join("runs"),
        }
    }

    fn ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                    .collect()
            })
            .unwrap_or_default();
        ids.sort_unstable();
        ids
    }

    /// Creates the directory of a new run: `(id, number, dir)`.
    pub fn allocate(&self) -> io::Result<(String, u64, PathBuf)> {
        std::fs::create_dir_all(&self.dir)?;
        if let Some(state) = self.dir.parent() {
            ignore_state_dir(state);
        }
        let mut n = self.ids().last().copied().unwrap_or(0) + 1;
        loop {
            let dir = self.dir.join(n.to_string());
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok((n.to_string(), n, dir)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => n += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// The most recent run id.
    pub fn latest(&self) -> Option<String> {
        self.ids().last().map(|n| n.to_string())
    }

    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    pub fn load_summary(&self, id: &str) -> io::Result<RunSummary> {
        let text = std::fs::read_to_string(self.run_dir(id).join("summary.json"))?;
        serde_json::from_str(&text).map_err(io::Error::other)
    }

    /// The summary of run `id`: `summary.json`, or for a run that did not finish (no
    /// summary) one rebuilt from `events.jsonl` with its unfinished jobs as failures.
    pub fn summary_or_rebuilt(&self, id: &str) -> Result<RebuiltSummary, RecordError> {
        let dir = self.run_dir(id);
        match self.load_summary(id) {
            Ok(summary) => Ok(RebuiltSummary {
                summary,
                unfinished: vec![],
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let events = read_events(&dir.join("events.jsonl"))?;
                Ok(summary_from_events(id, &events.events))
            }
            Err(source) => Err(RecordError::Io {
                path: dir.join("summary.json"),
                source,
            }),
        }
    }
}

/// Replaces `path` with `bytes` whole: written beside it, then renamed over it, so a crash
/// leaves the old file or the new one, never half of one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RecordError> {
    let io_error = |source| RecordError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(io_error)?;
    std::fs::rename(&tmp, path).map_err(io_error)
}

/// What `.gantry/.gitignore` says: everything Gantry keeps there is local state except the
/// configuration, which is source.
pub const STATE_GITIGNORE: &str = "# Written by gantry: run records, work directories, caches, approvals and deployment\n\
# history are local state. The configuration (config.yml) is source: keep it tracked.\n\
*\n\
!config.yml\n";

/// Writes `.gantry/.gitignore` unless there is one. Without it `git status` lists the run
/// state, and every run's workspace scan (libgit2 status with untracked files) walked all
/// earlier runs and work directories: a run's start grew with the history.
fn ignore_state_dir(state: &Path) {
    if let Ok(mut f) = File::options()
        .write(true)
        .create_new(true)
        .open(state.join(".gitignore"))
    {
        let _ = f.write_all(STATE_GITIGNORE.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run state stays out of `git status` (and so out of the workspace scan), while the
    /// configuration next to it can still be tracked; a user's own `.gitignore` is kept.
    #[test]
    fn run_state_is_ignored_by_git_but_config_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(tmp.path()).unwrap();
        let store = LocalRuns::new(tmp.path());
        let (_, _, dir) = store.allocate().unwrap();
        std::fs::write(dir.join("events.jsonl"), "{}\n").unwrap();
        std::fs::write(tmp.path().join(".gantry/config.yml"), "environments: {}\n").unwrap();
        let mut opts = git2::StatusOptions::new();
        opts.include_untracked(true).recurse_untracked_dirs(true);
        let paths: Vec<String> = repo
            .statuses(Some(&mut opts))
            .unwrap()
            .iter()
            .filter_map(|s| s.path().ok().map(str::to_string))
            .collect();
        assert_eq!(paths, vec![".gantry/config.yml".to_string()]);

        std::fs::write(tmp.path().join(".gantry/.gitignore"), "mine\n").unwrap();
        store.allocate().unwrap();
        let kept = std::fs::read_to_string(tmp.path().join(".gantry/.gitignore")).unwrap();
        assert_eq!(kept, "mine\n");
    }
}
