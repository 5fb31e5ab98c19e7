//! The run store: every run is saved under `<repo>/.gantry/runs/<id>/`:
//!
//! - `run.json`: how the run was started (event, workflows, flags; secret values are never
//!   stored, only their names);
//! - `events.jsonl`: every event except log lines, one JSON object a line;
//! - `logs/<job>/<step>.log` (`setup.log` for job-level text): the masked log of each step;
//! - `summary.json` / `summary.md`: the result and every job's result, duration and outputs
//!   (used by `gantry rerun --failed`).
//!
//! Run ids are increasing numbers (`1`, `2`, …); the directory is created atomically.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::events::{BatchedSubscription, RunEvent, Status};
use crate::run::{JobRecord, RunOutcome};
use crate::workspace::sanitize;

/// `<repo>/.gantry/runs`.
#[derive(Debug, Clone)]
pub struct RunStore {
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

impl RunStore {
    pub fn new(repo_root: &Path) -> Self {
        RunStore {
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

/// Consumes `sub` on a thread, writing `events.jsonl` and the step logs under `dir`.
pub fn spawn_writer(
    dir: PathBuf,
    mut sub: BatchedSubscription,
) -> std::thread::JoinHandle<io::Result<()>> {
    std::thread::spawn(move || {
        let mut events = BufWriter::with_capacity(1 << 16, File::create(dir.join("events.jsonl"))?);
        let logs_dir = dir.join("logs");
        let mut logs: HashMap<(String, Option<usize>), BufWriter<File>> = HashMap::new();
        while let Some(ev) = sub.blocking_recv() {
            match &*ev {
                RunEvent::Log {
                    job, step, text, ..
                } => {
                    let k = (job.to_string(), *step);
                    if !logs.contains_key(&k) {
                        let jd = logs_dir.join(sanitize(job));
                        std::fs::create_dir_all(&jd)?;
                        let name = match step {
                            Some(s) => format!("{}.log", s + 1),
                            None => "setup.log".to_string(),
                        };
                        logs.insert(
                            k.clone(),
                            BufWriter::with_capacity(1 << 16, File::create(jd.join(name))?),
                        );
                    }
                    if let Some(w) = logs.get_mut(&k) {
                        w.write_all(text.as_bytes())?;
                    }
                }
                other => {
                    serde_json::to_writer(&mut events, other)?;
                    events.write_all(b"\n")?;
                    if let RunEvent::JobFinished { job, .. } = other {
                        // Close the job's logs.
                        let job = job.to_string();
                        let keys: Vec<_> =
                            logs.keys().filter(|(j, _)| *j == job).cloned().collect();
                        for k in keys {
                            if let Some(mut w) = logs.remove(&k) {
                                w.flush()?;
                            }
                        }
                    }
                }
            }
        }
        for (_, mut w) in logs.drain() {
            w.flush()?;
        }
        events.flush()
    })
}

/// The critical path: the chain of `needs` whose summed durations is the longest.
pub fn critical_path(jobs: &[JobRecord], needs: &HashMap<String, Vec<String>>) -> Vec<String> {
    // Per job id: the longest leg duration and the key of that leg.
    let mut by_id: IndexMap<String, (u64, String)> = IndexMap::new();
    for j in jobs {
        let e = by_id.entry(j.job_id.clone()).or_insert((0, j.key.clone()));
        if j.duration_ms >= e.0 {
            *e = (j.duration_ms, j.key.clone());
        }
    }
    let mut memo: HashMap<String, (u64, Vec<String>)> = HashMap::new();
    fn longest(
        id: &str,
        by_id: &IndexMap<String, (u64, String)>,
        needs: &HashMap<String, Vec<String>>,
        memo: &mut HashMap<String, (u64, Vec<String>)>,
        depth: usize,
    ) -> (u64, Vec<String>) {
        if let Some(v) = memo.get(id) {
            return v.clone();
        }
        let (d, key) = by_id.get(id).cloned().unwrap_or((0, id.to_string()));
        let mut best = (0, vec![]);
        if depth < 10_000 {
            for n in needs.get(id).into_iter().flatten() {
                let c = longest(n, by_id, needs, memo, depth + 1);
                if c.0 > best.0 || best.1.is_empty() {
                    best = c;
                }
            }
        }
        let mut path = best.1;
        path.push(key);
        let r = (best.0 + d, path);
        memo.insert(id.to_string(), r.clone());
        r
    }
    let mut best: (u64, Vec<String>) = (0, vec![]);
    for id in by_id.keys() {
        let c = longest(id, &by_id, needs, &mut memo, 0);
        if c.0 > best.0 || best.1.is_empty() {
            best = c;
        }
    }
    best.1
}

/// Writes `summary.json` and `summary.md`.
pub fn write_summary(
    dir: &Path,
    run_id: &str,
    outcome: &RunOutcome,
    duration_ms: u64,
    critical: Vec<String>,
    step_summaries: &[(String, String)],
) -> io::Result<RunSummary> {
    let summary = RunSummary {
        run_id: run_id.to_string(),
        result: outcome.result,
        duration_ms,
        jobs: outcome
            .jobs
            .iter()
            .map(|j| JobSummary {
                key: j.key.clone(),
                job_id: j.job_id.clone(),
                workflow: j.workflow.clone(),
                name: j.name.clone(),
                result: j.result,
                continue_on_error: j.continue_on_error,
                outputs: j.outputs.clone(),
                duration_ms: j.duration_ms,
            })
            .collect(),
        critical_path: critical,
    };
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(&summary).map_err(io::Error::other)?,
    )?;
    let mut md = format!(
        "# Run {run_id}: {}\n\n| job | result | duration |\n|---|---|---|\n",
        summary.result
    );
    for j in &summary.jobs {
        md.push_str(&format!(
            "| {} | {} | {:.1}s |\n",
            j.name.replace('|', "\\|"),
            j.result,
            j.duration_ms as f64 / 1000.0
        ));
    }
    if !summary.critical_path.is_empty() {
        md.push_str(&format!(
            "\nCritical path: {}\n",
            summary.critical_path.join(" → ")
        ));
    }
    for (job, text) in step_summaries {
        md.push_str(&format!("\n## {job}\n\n{text}\n"));
    }
    std::fs::write(dir.join("summary.md"), md)?;
    Ok(summary)
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
        let store = RunStore::new(tmp.path());
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
