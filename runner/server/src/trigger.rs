//! From "this event happened in this repository" to queued runs: each forge's payload in
//! GitHub's terms, the mirror fetched, the workflows read from the commit's tree, matched
//! with the plan crate's trigger rules, planned, and stored with their jobs.

use std::sync::Arc;

use gantry_plan::{Event, PlanOptions};
use serde_json::{Value as J, json};

use crate::config::{Forge, Repository};
use crate::mirror::{self, CommitInfo};
use crate::state::App;
use crate::store_runs::NewRun;

const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

/// `Incoming::git_ref` for "the repository's default branch" (`repository_dispatch`).
pub const DEFAULT_BRANCH: &str = "HEAD";

/// An event in GitHub's terms, ready to be matched against a repository's workflows.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// `push`, `pull_request`, `workflow_dispatch`, `repository_dispatch`.
    pub event: String,
    /// The payload as GitHub would send it (`github.event`).
    pub payload: J,
    /// The commit to read workflows from; `None`: the tip of `git_ref`.
    pub sha: Option<String>,
    /// `refs/heads/main`, `refs/tags/v1`, `refs/pull/5/merge`.
    pub git_ref: String,
    /// Refs to fetch besides branches and tags (a pull request's head).
    pub extra_refs: Vec<String>,
    pub actor: String,
    /// `push`: the commit before the push, for `paths` filters.
    pub before: Option<String>,
    pub head_branch: String,
    pub title: Option<String>,
    pub delivery_id: Option<String>,
    /// `workflow_dispatch`: only this workflow file (its base name).
    pub only_workflow: Option<String>,
}

/// What came of an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Queued { run_ids: Vec<i64>, reason: String },
    Skipped(String),
    NoMatch(String),
}

#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error(transparent)]
    Mirror(#[from] mirror::MirrorError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("workflow {0} not found at that ref")]
    NoWorkflow(String),
    #[error("{0}")]
    Invalid(String),
    /// The dispatch's inputs do not fit the workflow's declarations.
    #[error(transparent)]
    Inputs(#[from] gantry_plan::InputError),
}

fn s(v: &J, path: &[&str]) -> Option<String> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    match cur {
        J::String(x) => Some(x.clone()),
        J::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn short_ref(r: &str) -> String {
    r.strip_prefix("refs/heads/")
        .or_else(|| r.strip_prefix("refs/tags/"))
        .unwrap_or(r)
        .to_string()
}

/// The repository a forge's payload names (`owner/name`).
pub fn payload_repository(forge: Forge, payload: &J) -> Option<String> {
    match forge {
        Forge::Gitlab => s(payload, &["project", "path_with_namespace"]),
        _ => s(payload, &["repository", "full_name"]),
    }
}

/// Reads a forge's webhook into GitHub's terms. `Ok(None)`: an event Gantry does not run.
pub fn from_webhook(forge: Forge, event: &str, payload: J) -> Result<Option<Incoming>, String> {
    match forge {
        Forge::Gitlab => from_gitlab(event, payload),
        _ => from_github_like(event, payload),
    }
}

fn from_github_like(event: &str, payload: J) -> Result<Option<Incoming>, String> {
    let actor = s(&payload, &["sender", "login"])
        .or_else(|| s(&payload, &["pusher", "name"]))
        .or_else(|| s(&payload, &["pusher", "login"]))
        .unwrap_or_else(|| "unknown".into());
    match event {
        "push" => {
            let git_ref = s(&payload, &["ref"]).ok_or("push payload without 'ref'")?;
            let after = s(&payload, &["after"]).ok_or("push payload without 'after'")?;
            Ok(Some(Incoming {
                event: "push".into(),
                sha: Some(after),
                before: s(&payload, &["before"]),
                head_branch: short_ref(&git_ref),
                git_ref,
                extra_refs: Vec::new(),
                actor,
                title: None,
                delivery_id: None,
                only_workflow: None,
                payload,
            }))
        }
        "pull_request" => {
            let number = s(&payload, &["number"])
                .or_else(|| s(&payload, &["pull_request", "number"]))
                .ok_or("pull_request payload without 'number'")?;
            let sha = s(&payload, &["pull_request", "head", "sha"])
                .ok_or("pull_request payload without 'pull_request.head.sha'")?;
            let head = s(&payload, &["pull_request", "head", "ref"]).unwrap_or_default();
            // GitHub, Gitea and Forgejo all publish the head as refs/pull/N/head.
            Ok(Some(Incoming {
                event: "pull_request".into(),
                sha: Some(sha),
                before: None,
                head_branch: head,
                git_ref: format!("refs/pull/{number}/merge"),
                extra_refs: vec![format!("refs/pull/{number}/head")],
                actor,
                title: s(&payload, &["pull_request", "title"]),
                delivery_id: None,
                only_workflow: None,
                payload,
            }))
        }
        _ => Ok(None),
    }
}

fn from_gitlab(event: &str, payload: J) -> Result<Option<Incoming>, String> {
    let kind = s(&payload, &["object_kind"]).unwrap_or_default();
    let actor = s(&payload, &["user_username"])
        .or_else(|| s(&payload, &["user", "username"]))
        .unwrap_or_else(|| "unknown".into());
    let full_name = s(&payload, &["project", "path_with_namespace"]).unwrap_or_default();
    match (event, kind.as_str()) {
        ("Push Hook" | "Tag Push Hook", "push" | "tag_push") => {
            let git_ref = s(&payload, &["ref"]).ok_or("push payload without 'ref'")?;
            let after = s(&payload, &["after"]).ok_or("push payload without 'after'")?;
            let commits: Vec<J> = payload
                .get("commits")
                .and_then(J::as_array)
                .map(|cs| {
                    cs.iter()
                        .map(|c| {
                            json!({
                                "id": c.get("id"), "message": c.get("message"),
                                "timestamp": c.get("timestamp"),
                                "added": c.get("added"), "removed": c.get("removed"),
                                "modified": c.get("modified"),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            let gh = json!({
                "ref": git_ref, "before": payload.get("before"), "after": after,
                "deleted": after == ZERO_SHA,
                "head_commit": commits.last().cloned().unwrap_or(J::Null),
                "commits": commits,
                "repository": { "full_name": full_name },
                "sender": { "login": actor },
            });
            Ok(Some(Incoming {
                event: "push".into(),
                sha: Some(after),
                before: s(&payload, &["before"]),
                head_branch: short_ref(&git_ref),
                git_ref,
                extra_refs: Vec::new(),
                actor,
                title: None,
                delivery_id: None,
                only_workflow: None,
                payload: gh,
            }))
        }
        ("Merge Request Hook", "merge_request") => {
            let a = |k: &str| s(&payload, &["object_attributes", k]);
            let iid = a("iid").ok_or("merge request without 'object_attributes.iid'")?;
            let sha = s(&payload, &["object_attributes", "last_commit", "id"])
                .ok_or("merge request without 'object_attributes.last_commit.id'")?;
            let action = match a("action").as_deref() {
                Some("open") => "opened",
                Some("reopen") => "reopened",
                Some("update") if a("oldrev").is_some() => "synchronize",
                Some("update") => "edited",
                Some("close") | Some("merge") => "closed",
                // approved, unapproved, …: nothing GitHub's pull_request types run on.
                Some(_) => return Ok(None),
                None => return Err("merge request without 'object_attributes.action'".into()),
            };
            let head = a("source_branch").unwrap_or_default();
            let gh = json!({
                "action": action, "number": iid.parse::<i64>().unwrap_or_default(),
                "pull_request": {
                    "number": iid.parse::<i64>().unwrap_or_default(), "title": a("title"),
                    "head": { "ref": head, "sha": sha },
                    "base": { "ref": a("target_branch") },
                },
                "repository": { "full_name": full_name },
                "sender": { "login": actor },
            });
            Ok(Some(Incoming {
                event: "pull_request".into(),
                sha: Some(sha),
                before: None,
                head_branch: head,
                git_ref: format!("refs/merge-requests/{iid}/merge"),
                extra_refs: vec![format!("refs/merge-requests/{iid}/head")],
                actor,
                title: a("title"),
                delivery_id: None,
                only_workflow: None,
                payload: gh,
            }))
        }
        _ => Ok(None),
    }
}

/// GitHub's "skip" spellings in a commit message: `[skip ci]`, `[ci skip]`, `[no ci]`,
/// `[skip actions]`, `[actions skip]`, or a final `skip-checks: true` trailer.
pub fn skip_requested(message: &str) -> Option<&'static str> {
    const MARKS: &[&str] = &[
        "[skip ci]",
        "[ci skip]",
        "[no ci]",
        "[skip actions]",
        "[actions skip]",
    ];
    if let Some(m) = MARKS.iter().find(|m| message.contains(**m)) {
        return Some(m);
    }
    let trailer = message.trim_end().rsplit('\n').next().unwrap_or("").trim();
    let has_body = message.trim_end().contains("\n\n");
    (has_body && matches!(trailer, "skip-checks:true" | "skip-checks: true"))
        .then_some("skip-checks: true")
}

/// The runs an event would queue, before any is stored.
#[derive(Debug, Clone)]
pub enum Planned {
    Runs { runs: Vec<NewRun>, reason: String },
    Skipped(String),
    NoMatch(String),
}

/// Fetches the repository, reads the workflows at the event's commit and queues a run for
/// every workflow the event triggers (all in one transaction).
pub async fn queue(
    app: &Arc<App>,
    repo: &Repository,
    inc: Incoming,
) -> Result<Outcome, TriggerError> {
    match plan_runs(app, repo, inc).await? {
        Planned::Runs { runs, reason } => {
            let run_ids = app.store.create_runs(&runs).await?;
            app.runs_queued.notify_one();
            Ok(Outcome::Queued { run_ids, reason })
        }
        Planned::Skipped(why) => Ok(Outcome::Skipped(why)),
        Planned::NoMatch(why) => Ok(Outcome::NoMatch(why)),
    }
}

/// Fetches the repository, reads the workflows at the event's commit and plans a run for
/// every workflow the event triggers; stores nothing (the caller queues them, with what
/// else must commit with them).
pub async fn plan_runs(
    app: &Arc<App>,
    repo: &Repository,
    mut inc: Incoming,
) -> Result<Planned, TriggerError> {
    if inc.event == "push" && inc.sha.as_deref() == Some(ZERO_SHA) {
        return Ok(Planned::Skipped(format!("{} was deleted", inc.git_ref)));
    }
    let lock = app.mirror_lock(&repo.name).await;
    let guard = lock.lock().await;
    let dir = mirror::mirror_dir(&app.cfg.data, &repo.name);
    let (url, token) = (repo.url.clone(), repo.token.clone());
    let (extra, forge) = (inc.extra_refs.clone(), repo.forge);
    let (sha_in, ref_in, before) = (inc.sha.clone(), inc.git_ref.clone(), inc.before.clone());
    let forge_event = inc.event.clone();
    let read = tokio::task::spawn_blocking(move || -> Result<_, mirror::MirrorError> {
        let git = mirror::fetch(&dir, &url, token.as_ref(), &extra)?;
        let ref_out = if ref_in == DEFAULT_BRANCH {
            let b = mirror::default_branch(&git)
                .ok_or_else(|| mirror::MirrorError::MissingCommit("the default branch".into()))?;
            format!("refs/heads/{b}")
        } else {
            ref_in
        };
        let sha = match sha_in {
            Some(s) => s,
            None => mirror::resolve(&git, &ref_out)?,
        };
        let info = mirror::commit_info(&git, &sha)?;
        let files = mirror::workflows_at(&git, &sha, forge.workflow_dirs())?;
        let changed = match (forge_event.as_str(), before) {
            ("push", Some(b)) => {
                let before = (b != ZERO_SHA).then_some(b.as_str());
                mirror::pushed_paths(&git, &ref_out, before, &sha)
            }
            _ => None,
        };
        Ok((info, files, changed, ref_out))
    })
    .await
    .map_err(|e| TriggerError::Invalid(format!("mirror task: {e}")))?;
    drop(guard);
    let (info, files, changed, git_ref) = read?;
    // Shared with the planning tasks below.
    let files = Arc::new(files);
    if inc.git_ref == DEFAULT_BRANCH {
        inc.head_branch = git_ref.trim_start_matches("refs/heads/").to_string();
        inc.payload["branch"] = J::String(inc.head_branch.clone());
        inc.git_ref = git_ref;
    }
    if matches!(inc.event.as_str(), "push" | "pull_request")
        && let Some(mark) = skip_requested(&info.message)
    {
        return Ok(Planned::Skipped(format!("commit message has '{mark}'")));
    }
    let mut ev = Event::from_payload(&inc.event, inc.payload.clone());
    if ev.ref_.is_none() {
        ev.ref_ = Some(inc.git_ref.clone());
    }
    if inc.event == "push" {
        // The real diff of the pushed range, or unknown; never the payload's file lists.
        ev.changed_paths = changed;
    }
    let mut runs = Vec::new();
    let mut reasons = Vec::new();
    let mut found_only = false;
    for f in files.iter() {
        if let Some(only) = &inc.only_workflow {
            let base = f.path.rsplit('/').next().unwrap_or_default();
            if base != only {
                continue;
            }
            found_only = true;
        }
        let loaded = gantry_workflow::parse_workflow(&f.path, &f.text);
        let invalid = loaded.has_errors();
        let Some(wf) = loaded.value.filter(|_| !invalid) else {
            let n = loaded.diagnostics.len();
            reasons.push(format!("{}: invalid workflow ({n} problem(s))", f.path));
            continue;
        };
        let mut payload = inc.payload.clone();
        if inc.event == "workflow_dispatch" {
            payload["inputs"] = dispatch_inputs(&wf, &inc.payload)?;
        }
        let m = gantry_plan::matches(&wf, &ev);
        if !m.matched {
            reasons.push(format!("{}: {}", f.path, m.reason));
            continue;
        }
        let plan = match gantry_plan::plan(&wf, &PlanOptions::default()) {
            Ok(p) => p,
            Err(e) => {
                reasons.push(format!("{}: {e}", f.path));
                continue;
            }
        };
        let name = wf
            .name
            .as_ref()
            .map(|n| n.value.clone())
            .unwrap_or_else(|| f.path.clone());
        // File order, legs in leg order (as GitHub lists a run's jobs). Off the webhook's
        // worker: expanding calls parses their callees and may read the resolver cache.
        let jobs = {
            let files = files.clone();
            tokio::task::spawn_blocking(move || {
                // The cache the launcher's runs resolve through (the session's default).
                let cache = gantry_engine::actions::ResolverConfig::default().cache_root;
                let callees = crate::planned::Callees {
                    files: &files,
                    cache_root: Some(&cache),
                };
                crate::planned::rows(&wf, &plan, &callees)
            })
            .await
            .map_err(|e| TriggerError::Invalid(format!("planning task: {e}")))?
        };
        let run = NewRun {
            repo: repo.name.clone(),
            workflow_path: f.path.clone(),
            workflow_name: name,
            display_title: inc
                .title
                .clone()
                .unwrap_or_else(|| info.message.lines().next().unwrap_or_default().to_string()),
            event: inc.event.clone(),
            head_branch: inc.head_branch.clone(),
            head_sha: info.sha.clone(),
            git_ref: inc.git_ref.clone(),
            actor: inc.actor.clone(),
            head_commit: head_commit_json(&info),
            payload,
            delivery_id: inc.delivery_id.clone(),
            jobs,
        };
        reasons.push(format!("{}: {}", f.path, m.reason));
        runs.push(run);
    }
    if let Some(only) = &inc.only_workflow
        && !found_only
    {
        return Err(TriggerError::NoWorkflow(only.clone()));
    }
    let reason = if files.is_empty() {
        format!("no workflow files at {}", info.sha)
    } else {
        reasons.join("; ")
    };
    if runs.is_empty() {
        return Ok(Planned::NoMatch(reason));
    }
    Ok(Planned::Runs { runs, reason })
}

/// `workflow_dispatch` inputs checked against the workflow's declarations (required,
/// choice, boolean, number, undeclared) by the plan crate.
fn dispatch_inputs(wf: &gantry_workflow::Workflow, payload: &J) -> Result<J, TriggerError> {
    let Some(t) = wf.on.events.get("workflow_dispatch") else {
        return Err(TriggerError::Invalid(
            "Workflow does not have 'workflow_dispatch' trigger".into(),
        ));
    };
    // The payload's values as strings, as `gantry run --input` gives them.
    let given = gantry_plan::given_inputs(payload, &indexmap::IndexMap::new());
    let resolved = gantry_plan::resolve_inputs(&t.inputs, &given)?;
    Ok(J::Object(resolved.into_iter().collect()))
}

fn head_commit_json(c: &CommitInfo) -> J {
    let ts = chrono::DateTime::from_timestamp(c.time, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    json!({
        "id": c.sha, "tree_id": c.tree_id, "message": c.message, "timestamp": ts,
        "author": { "name": c.author_name, "email": c.author_email },
        "committer": { "name": c.committer_name, "email": c.committer_email },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_spellings() {
        assert_eq!(skip_requested("fix [skip ci]"), Some("[skip ci]"));
        assert_eq!(
            skip_requested("[actions skip] docs"),
            Some("[actions skip]")
        );
        assert_eq!(
            skip_requested("x\n\nskip-checks: true\n"),
            Some("skip-checks: true")
        );
        assert_eq!(skip_requested("skip-checks: true"), None);
        assert_eq!(skip_requested("fix the [skip] ci thing"), None);
    }

    #[test]
    fn gitlab_push_in_github_terms() {
        let p = json!({
            "object_kind": "push", "ref": "refs/heads/main", "before": ZERO_SHA,
            "after": "a".repeat(40), "user_username": "bob",
            "project": { "path_with_namespace": "acme/shop" },
            "commits": [{ "id": "a".repeat(40), "message": "m", "added": ["x"], "modified": [], "removed": [] }]
        });
        let inc = from_webhook(Forge::Gitlab, "Push Hook", p)
            .unwrap()
            .unwrap();
        assert_eq!(inc.event, "push");
        assert_eq!(inc.actor, "bob");
        assert_eq!(inc.payload["repository"]["full_name"], "acme/shop");
        assert_eq!(inc.payload["commits"][0]["added"][0], "x");
    }
}
