//! A run's summary (`summary.json`, `summary.md`) as a function of its events: every
//! store builds it the same way, from `job_queued`, `job_finished`, `step_summary` and
//! `run_finished`, so nothing has to be handed to a store beside the event stream.

use std::collections::HashMap;
use std::io;
use std::path::Path;

use indexmap::IndexMap;

use super::{JobSummary, RebuiltSummary, RunSummary, write_atomically};
use crate::events::{RunEvent, Status};

/// Folds a run's events into its summary, one event at a time.
#[derive(Debug, Default)]
pub struct SummaryBuilder {
    /// Per job key, in queue order: its summary so far, its direct needs (job ids), and
    /// whether it finished.
    jobs: IndexMap<String, (JobSummary, Vec<String>, bool)>,
    /// Job keys in the order they finished (the order of the summary's jobs).
    finished: Vec<String>,
    /// `(job key, markdown)` of every step summary, in order.
    step_summaries: Vec<(String, String)>,
    /// From `run_finished`: run id, result, duration.
    end: Option<(String, Status, u64)>,
}

impl SummaryBuilder {
    pub fn observe(&mut self, ev: &RunEvent) {
        match ev {
            RunEvent::JobQueued {
                job,
                job_id,
                name,
                workflow,
                needs,
            } => {
                self.jobs.entry(job.to_string()).or_insert_with(|| {
                    let summary = JobSummary {
                        key: job.to_string(),
                        job_id: job_id.clone(),
                        workflow: workflow.clone(),
                        name: name.clone(),
                        // Until it finishes: a crashed job counts as failed.
                        result: Status::Failure,
                        continue_on_error: false,
                        outputs: IndexMap::new(),
                        duration_ms: 0,
                    };
                    (summary, needs.clone(), false)
                });
            }
            RunEvent::JobFinished {
                job,
                result,
                duration_ms,
                outputs,
                continue_on_error,
                ..
            } => {
                if let Some((j, _, finished)) = self.jobs.get_mut(job.as_str()) {
                    j.result = *result;
                    j.duration_ms = *duration_ms;
                    j.outputs = outputs.clone();
                    j.continue_on_error = *continue_on_error;
                    if !*finished {
                        self.finished.push(job.to_string());
                    }
                    *finished = true;
                }
            }
            RunEvent::StepSummary { job, markdown, .. } => {
                self.step_summaries
                    .push((job.to_string(), markdown.clone()));
            }
            RunEvent::RunFinished {
                run_id,
                result,
                duration_ms,
            } => self.end = Some((run_id.clone(), *result, *duration_ms)),
            _ => {}
        }
    }

    /// Whether `run_finished` was seen: only a finished run gets a `summary.json`.
    pub fn is_finished(&self) -> bool {
        self.end.is_some()
    }

    /// The step summaries, `(job key, markdown)`, for `summary.md`.
    pub fn step_summaries(&self) -> &[(String, String)] {
        &self.step_summaries
    }

    /// The summary of a finished run: its jobs in the order they finished, with the
    /// critical path. `None` before `run_finished`.
    pub fn finished_summary(&self) -> Option<RunSummary> {
        let (run_id, result, duration_ms) = self.end.clone()?;
        let jobs: Vec<JobSummary> = self
            .finished
            .iter()
            .filter_map(|k| self.jobs.get(k).map(|(j, _, _)| j.clone()))
            .collect();
        let needs: HashMap<String, Vec<String>> = self
            .jobs
            .values()
            .map(|(j, n, _)| (j.job_id.clone(), n.clone()))
            .collect();
        Some(RunSummary {
            critical_path: critical_path(&jobs, &needs),
            run_id,
            result,
            duration_ms,
            jobs,
        })
    }

    /// The summary of a run that may not have finished (killed, machine lost): jobs in
    /// queue order, every unfinished one a failure, and so the run unless its
    /// `run_finished` was recorded.
    pub fn rebuilt(self, run_id: &str) -> RebuiltSummary {
        let unfinished: Vec<String> = self
            .jobs
            .iter()
            .filter(|(_, (_, _, finished))| !finished)
            .map(|(k, _)| k.clone())
            .collect();
        let (result, duration_ms) = match self.end {
            Some((_, r, d)) if unfinished.is_empty() => (r, d),
            Some((_, _, d)) => (Status::Failure, d),
            None => (Status::Failure, 0),
        };
        RebuiltSummary {
            summary: RunSummary {
                run_id: run_id.to_string(),
                result,
                duration_ms,
                jobs: self.jobs.into_values().map(|(j, _, _)| j).collect(),
                critical_path: vec![],
            },
            unfinished,
        }
    }
}

/// The critical path: the chain of `needs` (job id → the job ids it needs) whose summed
/// durations is the longest, as job keys.
pub fn critical_path(jobs: &[JobSummary], needs: &HashMap<String, Vec<String>>) -> Vec<String> {
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

/// Writes `summary.md`, then `summary.json` (last: a run with `summary.json` is a
/// finished run to its readers).
pub fn write_summary(
    dir: &Path,
    summary: &RunSummary,
    step_summaries: &[(String, String)],
) -> io::Result<()> {
    let mut md = format!(
        "# Run {}: {}\n\n| job | result | duration |\n|---|---|---|\n",
        summary.run_id, summary.result
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
    write_atomically(&dir.join("summary.md"), md.as_bytes()).map_err(io::Error::other)?;
    let json = serde_json::to_string_pretty(summary).map_err(io::Error::other)?;
    write_atomically(&dir.join("summary.json"), json.as_bytes()).map_err(io::Error::other)
}
