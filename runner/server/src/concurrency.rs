//! Workflow-level concurrency groups across the runs of a repository (GHA-SEMANTICS §6.7):
//! a group holds at most one running and one pending run; a newer run entering a group
//! that has a pending one cancels that pending run and takes its place; with
//! `cancel-in-progress` it also cancels the running one. Group names compare
//! case-insensitively and span workflows. (Job-level groups are the engine's
//! [`gantry_engine::concurrency::Groups`], one per repository shared by its runs.)
//!
//! The pending run of a group is a queued run in the store, so a restart keeps it: the
//! launcher re-enters queued runs oldest first, and every older pending run was already
//! cancelled in the store when the newer one arrived.

use std::collections::HashMap;
use std::sync::Mutex;

use gantry_engine::expr_scope::Ctx;
use gantry_expr::Value;
use gantry_workflow::Workflow;

use crate::store_runs::RunRecord;

/// A run's group: its (lower-cased) name and whether it cancels the running run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunGroup {
    pub name: String,
    pub cancel_in_progress: bool,
}

/// What the launcher does with a queued run of a group.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Entry {
    /// The run may start now (the group runs nothing).
    pub may_start: bool,
    /// The older pending run it replaces: cancel it in the store.
    pub cancel_pending: Option<i64>,
    /// The running run `cancel-in-progress` stops.
    pub cancel_running: Option<i64>,
}

#[derive(Default)]
struct State {
    running: Option<i64>,
    pending: Option<i64>,
}

/// Every workflow-level group of the server, by repository and lower-cased name.
#[derive(Default)]
pub struct RunGroups {
    map: Mutex<HashMap<(String, String), State>>,
}

impl RunGroups {
    /// A queued run of `group` as the launcher sees it (oldest first, again on every look
    /// at the queue). The first time, it becomes the group's pending run.
    pub fn enter(&self, repo: &str, group: &RunGroup, run_id: i64) -> Entry {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let st = map
            .entry((repo.to_string(), group.name.clone()))
            .or_default();
        let mut entry = Entry::default();
        if st.running == Some(run_id) {
            return entry;
        }
        if st.pending != Some(run_id) {
            entry.cancel_pending = st.pending.replace(run_id);
            if group.cancel_in_progress {
                entry.cancel_running = st.running;
            }
        }
        entry.may_start = st.running.is_none();
        entry
    }

    /// The pending run `run_id` started.
    pub fn started(&self, repo: &str, group: &RunGroup, run_id: i64) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let st = map
            .entry((repo.to_string(), group.name.clone()))
            .or_default();
        if st.pending == Some(run_id) {
            st.pending = None;
        }
        st.running = Some(run_id);
    }

    /// Run `run_id` ended (finished, cancelled, or cancelled while pending).
    pub fn left(&self, repo: &str, group: &RunGroup, run_id: i64) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let key = (repo.to_string(), group.name.clone());
        if let Some(st) = map.get_mut(&key) {
            if st.running == Some(run_id) {
                st.running = None;
            }
            if st.pending == Some(run_id) {
                st.pending = None;
            }
            if st.running.is_none() && st.pending.is_none() {
                map.remove(&key);
            }
        }
    }
}

/// GitHub's log line for a run or job cancelled by its group.
pub fn cancelled_line(group: &str) -> String {
    format!("Canceling since a higher priority waiting request for '{group}' exists")
}

/// The workflow-level group of `run` (`concurrency:` evaluated with `github`, `inputs`
/// and `vars`, as GitHub does); `None` without one or when it evaluates to nothing.
pub fn run_group(
    workflow: &Workflow,
    run: &RunRecord,
    payload: &serde_json::Value,
    vars: &indexmap::IndexMap<String, String>,
) -> Option<RunGroup> {
    let c = workflow.concurrency.as_ref()?;
    let mut ctx = Ctx::new();
    let ref_name = run
        .git_ref
        .strip_prefix("refs/heads/")
        .or_else(|| run.git_ref.strip_prefix("refs/tags/"))
        .unwrap_or(&run.git_ref);
    let pr = &payload["pull_request"];
    let github = serde_json::json!({
        "workflow": workflow.display_name(),
        "workflow_ref": format!("{}/{}@{}", run.repo, run.workflow_path, run.git_ref),
        "repository": run.repo,
        "ref": run.git_ref,
        "ref_name": ref_name,
        "sha": run.head_sha,
        "event_name": run.event,
        "actor": run.actor,
        "run_id": run.id.to_string(),
        "run_number": run.run_number.to_string(),
        "head_ref": pr["head"]["ref"].as_str().unwrap_or(""),
        "base_ref": pr["base"]["ref"].as_str().unwrap_or(""),
        "event": payload,
    });
    ctx.set("github", Value::from_json(&github));
    ctx.set(
        "inputs",
        Value::from_json(payload.get("inputs").unwrap_or(&serde_json::json!({}))),
    );
    let vars: serde_json::Map<String, serde_json::Value> = vars
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    ctx.set("vars", Value::from_json(&serde_json::Value::Object(vars)));
    let name = ctx.eval_string(&c.value.group.value).ok()?;
    if name.is_empty() {
        return None;
    }
    let cancel_in_progress =
        gantry_engine::job::eval_bool(&c.value.cancel_in_progress, &ctx).unwrap_or(false);
    Some(RunGroup {
        name: name.to_lowercase(),
        cancel_in_progress,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(cip: bool) -> RunGroup {
        RunGroup {
            name: "deploy".into(),
            cancel_in_progress: cip,
        }
    }

    #[test]
    fn one_running_one_pending_newer_pending_replaces_older() {
        let groups = RunGroups::default();
        let e1 = groups.enter("a/b", &g(false), 1);
        assert!(e1.may_start);
        groups.started("a/b", &g(false), 1);
        let e2 = groups.enter("a/b", &g(false), 2);
        assert_eq!(e2, Entry::default(), "2 waits behind 1");
        // Seen again on the next look at the queue: still waiting, nothing cancelled.
        assert_eq!(groups.enter("a/b", &g(false), 2), Entry::default());
        let e3 = groups.enter("a/b", &g(false), 3);
        assert_eq!(e3.cancel_pending, Some(2));
        assert_eq!(e3.cancel_running, None);
        assert!(!e3.may_start);
        groups.left("a/b", &g(false), 1);
        assert!(groups.enter("a/b", &g(false), 3).may_start);
        // Other repositories have their own groups.
        assert!(groups.enter("a/c", &g(false), 4).may_start);
    }

    #[test]
    fn cancel_in_progress_stops_the_running_run() {
        let groups = RunGroups::default();
        groups.enter("a/b", &g(true), 1);
        groups.started("a/b", &g(true), 1);
        let e = groups.enter("a/b", &g(true), 2);
        assert_eq!(e.cancel_running, Some(1));
        assert!(!e.may_start, "2 starts once 1 has stopped");
        groups.left("a/b", &g(true), 1);
        assert!(groups.enter("a/b", &g(true), 2).may_start);
    }
}
