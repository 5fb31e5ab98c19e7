//! The job rows a run is queued with: one per planned job or matrix leg, in file order, and
//! a reusable-workflow call in the same repository (`./.github/workflows/x.yml`, `$/…`)
//! replaced by its callee's jobs (`call / build`), as GitHub lists and draws them. The
//! engine's events take these rows by the same keys and names (`call/build`), so the run
//! page shows a call's jobs, and the edges into and out of them, before the call starts.
//! A call the server cannot read here (another repository, a matrix over the call, a
//! callee with errors) keeps one row for the caller; its jobs are added when they start.

use std::collections::HashMap;

use gantry_plan::{Plan, PlanOptions};
use gantry_workflow::Workflow;

use crate::mirror::WorkflowFile;
use crate::store_runs::NewJob;

/// GitHub's nesting limit of reusable workflows (the top one and nine called).
const MAX_DEPTH: usize = 10;

/// The most rows expanding calls may produce. A commit's workflows could call each other
/// many times per level (k calls, 10 levels: k^10 jobs); past this the calls stay one row
/// each, and the engine's own limits decide what runs.
const MAX_ROWS: usize = 1000;

/// The rows of `plan` (of `wf`), with local calls expanded from `files` (the workflows of
/// the commit).
pub fn rows(wf: &Workflow, plan: &Plan, files: &[WorkflowFile]) -> Vec<NewJob> {
    for max_depth in [MAX_DEPTH, 1] {
        let mut out = Vec::new();
        let level = Level {
            key_prefix: String::new(),
            name_prefix: String::new(),
            entry_needs: Vec::new(),
            depth: 1,
            max_depth,
        };
        if push_level(&mut out, wf, plan, files, &level).is_some() {
            return out;
        }
    }
    // Without expansion there is one row per planned leg, which the plan already bounds.
    Vec::new()
}

/// Where one workflow's jobs go among the rows.
struct Level {
    /// `call/` for the jobs of a call's callee (keys as the engine's `job_id`).
    key_prefix: String,
    /// `call / ` (names as the engine shows them).
    name_prefix: String,
    /// The caller's needs: what the callee's jobs without needs wait for.
    entry_needs: Vec<String>,
    depth: usize,
    max_depth: usize,
}

/// Pushes the rows of one workflow's plan; returns the keys its last jobs have (what a job
/// needing the whole call waits for), or `None` once expanding calls made more than
/// [`MAX_ROWS`] rows.
fn push_level(
    out: &mut Vec<NewJob>,
    wf: &Workflow,
    plan: &Plan,
    files: &[WorkflowFile],
    level: &Level,
) -> Option<Vec<String>> {
    let start = out.len();
    // Caller key → the keys of its callee's last jobs.
    let mut ends: HashMap<String, Vec<String>> = HashMap::new();
    for (job_id, jp) in &plan.jobs {
        let job = &wf.jobs[job_id];
        let key = format!("{}{job_id}", level.key_prefix);
        let mut needs: Vec<String> = jp
            .needs
            .iter()
            .map(|n| format!("{}{n}", level.key_prefix))
            .collect();
        if needs.is_empty() {
            needs = level.entry_needs.clone();
        }
        if let [node] = jp.nodes.as_slice()
            && level.depth < level.max_depth
            && let Some((callee, callee_plan)) = local_callee(wf, job_id, files)
        {
            let inner = Level {
                key_prefix: format!("{key}/"),
                name_prefix: format!("{}{} / ", level.name_prefix, plan.node(*node).name),
                entry_needs: needs,
                depth: level.depth + 1,
                max_depth: level.max_depth,
            };
            let last = push_level(out, &callee, &callee_plan, files, &inner)?;
            ends.insert(key, last);
            continue;
        }
        for &n in &jp.nodes {
            out.push(NewJob {
                key: key.clone(),
                name: format!("{}{}", level.name_prefix, plan.node(n).name),
                needs: needs.clone(),
                labels: job
                    .runs_on
                    .as_ref()
                    .map(|r| r.labels.iter().map(|l| l.value.clone()).collect())
                    .unwrap_or_default(),
                environment: job.environment.as_ref().map(|e| e.name.value.clone()),
            });
        }
        if level.max_depth > 1 && out.len() > MAX_ROWS {
            return None;
        }
    }
    // A job needing a call waits for the call's last jobs.
    for row in &mut out[start..] {
        if row.needs.iter().any(|n| ends.contains_key(n)) {
            row.needs = row
                .needs
                .iter()
                .flat_map(|n| ends.get(n).cloned().unwrap_or_else(|| vec![n.clone()]))
                .collect();
        }
    }
    // This workflow's last jobs: those no other job of it needs.
    let needed: Vec<&String> = plan.jobs.values().flat_map(|j| j.needs.iter()).collect();
    let last = plan
        .jobs
        .keys()
        .filter(|id| !needed.contains(id))
        .flat_map(|id| {
            let key = format!("{}{id}", level.key_prefix);
            ends.get(&key).cloned().unwrap_or_else(|| vec![key])
        })
        .collect();
    Some(last)
}

/// The callee of job `job_id` when it is a call of a workflow of this commit that parses
/// and plans, and the call has no matrix.
fn local_callee(wf: &Workflow, job_id: &str, files: &[WorkflowFile]) -> Option<(Workflow, Plan)> {
    let job = &wf.jobs[job_id];
    if job.strategy.is_some() {
        return None;
    }
    let uses = job.uses.as_ref()?.value.trim();
    let path = uses
        .strip_prefix("./")
        .or_else(|| uses.strip_prefix("$/"))?;
    let file = files.iter().find(|f| f.path == path)?;
    let loaded = gantry_workflow::parse_workflow(&file.path, &file.text);
    if loaded.has_errors() {
        return None;
    }
    let callee = loaded.value?;
    let plan = gantry_plan::plan(&callee, &PlanOptions::default()).ok()?;
    Some((callee, plan))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> WorkflowFile {
        WorkflowFile {
            path: path.into(),
            text: text.into(),
        }
    }

    fn rows_of(top: &str, files: &[WorkflowFile]) -> Vec<(String, String, Vec<String>)> {
        let wf = gantry_workflow::parse_workflow("ci.yml", top)
            .value
            .unwrap();
        let plan = gantry_plan::plan(&wf, &PlanOptions::default()).unwrap();
        rows(&wf, &plan, files)
            .into_iter()
            .map(|r| (r.key, r.name, r.needs))
            .collect()
    }

    const CALLED: &str = "on: workflow_call\njobs:\n  one:\n    runs-on: x\n    steps: [{run: a}]\n  two:\n    needs: one\n    strategy: {matrix: {n: [1, 2]}}\n    runs-on: x\n    steps: [{run: b}]\n";

    #[test]
    fn a_local_call_is_its_callees_jobs_with_the_edges_through_it() {
        let top = "on: push\njobs:\n  build:\n    runs-on: x\n    steps: [{run: a}]\n  call:\n    needs: build\n    uses: ./.github/workflows/called.yml\n  after:\n    needs: call\n    runs-on: x\n    steps: [{run: c}]\n";
        let files = [file(".github/workflows/called.yml", CALLED)];
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            rows_of(top, &files),
            vec![
                ("build".into(), "build".into(), vec![]),
                ("call/one".into(), "call / one".into(), s(&["build"])),
                ("call/two".into(), "call / two (1)".into(), s(&["call/one"])),
                ("call/two".into(), "call / two (2)".into(), s(&["call/one"])),
                ("after".into(), "after".into(), s(&["call/two"])),
            ]
        );
    }

    #[test]
    fn a_call_that_cannot_be_read_here_keeps_one_row() {
        let remote = "on: push\njobs:\n  call:\n    uses: acme/flows/.github/workflows/c.yml@v1\n";
        assert_eq!(
            rows_of(remote, &[]),
            vec![("call".into(), "call".into(), vec![])]
        );
        let missing = "on: push\njobs:\n  call:\n    uses: ./.github/workflows/gone.yml\n";
        assert_eq!(rows_of(missing, &[]).len(), 1);
        let matrix = "on: push\njobs:\n  call:\n    strategy: {matrix: {n: [1, 2]}}\n    uses: ./.github/workflows/called.yml\n";
        let files = [file(".github/workflows/called.yml", CALLED)];
        let r = rows_of(matrix, &files);
        assert!(r.iter().all(|(k, _, _)| k == "call"), "{r:?}");
    }

    #[test]
    fn calls_that_fan_out_past_the_row_limit_stay_one_row_each() {
        // Eight calls of itself per level, ten levels deep: 8^9 jobs if expanded.
        let mut fan = String::from("on: [push, workflow_call]\njobs:\n");
        for k in 0..8 {
            fan.push_str(&format!("  c{k}:\n    uses: ./.github/workflows/fan.yml\n"));
        }
        let files = [file(".github/workflows/fan.yml", &fan)];
        let r = rows_of(&fan, &files);
        let keys: Vec<&str> = r.iter().map(|(k, _, _)| k.as_str()).collect();
        assert_eq!(keys, ["c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7"]);
    }
}
