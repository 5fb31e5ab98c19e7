//! The JSON shapes of GitHub's Actions REST API (field names as GitHub and octocrab spell
//! them), built from store records.

use serde_json::{Value as J, json};

use crate::store_runs::{JobRecord, RunRecord, StepRecord, WorkflowRecord};

/// Stable small ids for users and repositories, derived from their names (GitHub's are
/// database ids; clients only need them to be numbers that do not change).
pub fn name_id(name: &str) -> u64 {
    // FNV-1a, folded to 31 bits so every client's integer type holds it.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.to_ascii_lowercase().bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    (h & 0x7fff_ffff).max(1)
}

/// A user object (`actor`, `owner`) with the fields GitHub always sends.
pub fn user(base: &str, login: &str) -> J {
    let api = format!("{base}/api/v3/users/{login}");
    json!({
        "login": login, "id": name_id(login), "node_id": format!("U_{}", name_id(login)),
        "avatar_url": format!("{base}/avatars/{login}"), "gravatar_id": "",
        "url": api, "html_url": format!("{base}/{login}"),
        "followers_url": format!("{api}/followers"),
        "following_url": format!("{api}/following{{/other_user}}"),
        "gists_url": format!("{api}/gists{{/gist_id}}"),
        "starred_url": format!("{api}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{api}/subscriptions"),
        "organizations_url": format!("{api}/orgs"),
        "repos_url": format!("{api}/repos"),
        "events_url": format!("{api}/events{{/privacy}}"),
        "received_events_url": format!("{api}/received_events"),
        "type": "User", "site_admin": false,
    })
}

pub fn repository(base: &str, full_name: &str) -> J {
    let (owner, name) = full_name.split_once('/').unwrap_or(("", full_name));
    json!({
        "id": name_id(full_name), "node_id": format!("R_{}", name_id(full_name)),
        "name": name, "full_name": full_name, "private": true,
        "owner": user(base, owner),
        "html_url": format!("{base}/{full_name}"),
        "url": format!("{base}/api/v3/repos/{full_name}"),
    })
}

pub fn workflow(base: &str, w: &WorkflowRecord) -> J {
    let file = w.path.rsplit('/').next().unwrap_or(&w.path);
    json!({
        "id": w.id, "node_id": format!("W_{}", w.id), "name": w.name, "path": w.path,
        "state": w.state, "created_at": w.created_at, "updated_at": w.updated_at,
        "url": format!("{base}/api/v3/repos/{}/actions/workflows/{}", w.repo, w.id),
        // The runs of this workflow (GitHub links the file; the server has no code view).
        "html_url": format!("{base}/{}/actions?workflow={file}", w.repo),
        "badge_url": format!("{base}/{}/workflows/{file}/badge.svg", w.repo),
    })
}

pub fn run(base: &str, r: &RunRecord) -> J {
    let api = format!("{base}/api/v3/repos/{}/actions/runs/{}", r.repo, r.id);
    let repo = repository(base, &r.repo);
    let previous = (r.run_attempt > 1).then(|| format!("{api}/attempts/{}", r.run_attempt - 1));
    json!({
        "id": r.id, "name": r.name, "node_id": format!("WFR_{}", r.id),
        "head_branch": r.head_branch, "head_sha": r.head_sha, "path": r.workflow_path,
        "display_title": r.display_title, "run_number": r.run_number, "event": r.event,
        "status": r.status, "conclusion": r.conclusion, "workflow_id": r.workflow_id,
        "check_suite_id": r.id, "check_suite_node_id": format!("CS_{}", r.id),
        "url": api, "html_url": format!("{base}/{}/actions/runs/{}", r.repo, r.id),
        "pull_requests": [], "created_at": r.created_at, "updated_at": r.updated_at,
        "actor": user(base, &r.actor), "triggering_actor": user(base, &r.actor),
        "run_attempt": r.run_attempt, "referenced_workflows": [],
        "run_started_at": r.run_started_at,
        "jobs_url": format!("{api}/jobs"), "logs_url": format!("{api}/logs"),
        "check_suite_url": format!("{base}/api/v3/repos/{}/check-suites/{}", r.repo, r.id),
        "artifacts_url": format!("{api}/artifacts"), "cancel_url": format!("{api}/cancel"),
        "rerun_url": format!("{api}/rerun"), "previous_attempt_url": previous,
        "workflow_url": format!("{base}/api/v3/repos/{}/actions/workflows/{}", r.repo, r.workflow_id),
        "head_commit": r.head_commit,
        "repository": repo, "head_repository": repo,
    })
}

pub fn job(base: &str, run: &RunRecord, j: &JobRecord, steps: &[StepRecord]) -> J {
    let api = format!("{base}/api/v3/repos/{}/actions/jobs/{}", run.repo, j.id);
    let steps: Vec<J> = steps
        .iter()
        .map(|s| {
            json!({
                "name": s.name, "status": s.status, "conclusion": s.conclusion,
                "number": s.number, "started_at": s.started_at, "completed_at": s.completed_at,
            })
        })
        .collect();
    json!({
        "id": j.id, "run_id": j.run_id, "workflow_name": run.name,
        "head_branch": run.head_branch,
        "run_url": format!("{base}/api/v3/repos/{}/actions/runs/{}", run.repo, run.id),
        "run_attempt": j.attempt, "node_id": format!("CR_{}", j.id), "head_sha": run.head_sha,
        "url": api, "html_url": format!("{base}/{}/actions/runs/{}/job/{}", run.repo, run.id, j.id),
        "status": j.status, "conclusion": j.conclusion, "created_at": j.created_at,
        // GitHub fills `started_at` for queued jobs too (with the creation time).
        "started_at": j.started_at.clone().unwrap_or_else(|| j.created_at.clone()),
        "completed_at": j.completed_at, "name": j.name, "steps": steps,
        "check_run_url": format!("{base}/api/v3/repos/{}/check-runs/{}", run.repo, j.id),
        "labels": j.labels, "runner_id": null, "runner_name": j.runner_name,
        "runner_group_id": null, "runner_group_name": null,
    })
}

/// GitHub's error body: `{"message", "documentation_url"}` (and `errors` for 422).
pub fn error(message: &str, errors: Option<J>) -> J {
    let mut v = json!({
        "message": message,
        "documentation_url": "https://docs.github.com/enterprise-server@3.14/rest/actions",
    });
    if let Some(e) = errors {
        v["errors"] = e;
    }
    v
}
