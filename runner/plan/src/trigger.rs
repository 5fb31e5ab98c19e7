//! Does an event trigger a workflow, and why (not)? GHA-SEMANTICS §2.1–2.5, §2.8.

use gantry_workflow::{EventTrigger, Spanned, Workflow};
use serde_json::Value as J;

use crate::filters::{self, MAX_CHANGED_FILES};

/// An event as the planner sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Event {
    /// `push`, `pull_request`, …
    pub name: String,
    /// The activity type (`opened`, `completed`, …).
    pub action: Option<String>,
    /// The full ref (`refs/heads/main`, `refs/tags/v1`, `refs/pull/5/merge`).
    pub ref_: Option<String>,
    /// Pull requests and merge groups: the base branch (short or full name).
    pub base_ref: Option<String>,
    /// Pull requests: the head branch.
    pub head_ref: Option<String>,
    /// Changed files (paths from the repository root); `None` when unknown, in which case
    /// path filters are not evaluated.
    pub changed_paths: Option<Vec<String>>,
    /// The event payload (`github.event`).
    pub payload: J,
    /// `schedule`: the cron string that fired.
    pub schedule: Option<String>,
    /// `workflow_run`: the name of the triggering workflow.
    pub workflow_name: Option<String>,
}

fn full_branch_ref(r: &str) -> String {
    if r.starts_with("refs/") {
        r.to_string()
    } else {
        format!("refs/heads/{r}")
    }
}

fn short(r: &str) -> &str {
    r.strip_prefix("refs/heads/")
        .or_else(|| r.strip_prefix("refs/tags/"))
        .unwrap_or(r)
}

fn s(v: &J, path: &[&str]) -> Option<String> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    match cur {
        J::String(s) => Some(s.clone()),
        J::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Event {
    /// A bare event of any name.
    pub fn named(name: &str) -> Event {
        Event {
            name: name.to_string(),
            payload: J::Object(Default::default()),
            ..Default::default()
        }
    }

    /// A push of `ref_` (`refs/heads/x`, `refs/tags/v1`, or a bare branch name).
    pub fn push(ref_: &str, paths: Option<Vec<String>>) -> Event {
        let r = full_branch_ref(ref_);
        Event {
            payload: serde_json::json!({ "ref": r }),
            ref_: Some(r),
            changed_paths: paths,
            ..Event::named("push")
        }
    }

    /// A `pull_request` event with activity type `action` from `head` into `base`.
    pub fn pull_request(action: &str, base: &str, head: &str, paths: Option<Vec<String>>) -> Event {
        Event {
            action: Some(action.to_string()),
            base_ref: Some(short(base).to_string()),
            head_ref: Some(short(head).to_string()),
            changed_paths: paths,
            payload: serde_json::json!({
                "action": action,
                "pull_request": { "base": { "ref": short(base) }, "head": { "ref": short(head) } }
            }),
            ..Event::named("pull_request")
        }
    }

    /// Derives action, refs, changed files, schedule and workflow name from a GitHub (or
    /// Gitea) webhook payload (§10.2, §10.3).
    pub fn from_payload(name: &str, payload: J) -> Event {
        let mut ev = Event::named(name);
        ev.action = s(&payload, &["action"]).map(|a| {
            // Gitea sends `synchronized` (§10.4).
            if a == "synchronized" {
                "synchronize".into()
            } else {
                a
            }
        });
        match name {
            "push" => {
                ev.ref_ = s(&payload, &["ref"]);
                if let Some(commits) = payload.get("commits").and_then(J::as_array) {
                    let mut files: Vec<String> = Vec::new();
                    let mut any_list = false;
                    for c in commits {
                        for key in ["added", "removed", "modified"] {
                            if let Some(list) = c.get(key).and_then(J::as_array) {
                                any_list = true;
                                for f in list.iter().filter_map(J::as_str) {
                                    if !files.iter().any(|x| x == f) {
                                        files.push(f.to_string());
                                    }
                                }
                            }
                        }
                    }
                    if any_list {
                        ev.changed_paths = Some(files);
                    }
                }
            }
            "pull_request"
            | "pull_request_target"
            | "pull_request_review"
            | "pull_request_review_comment" => {
                ev.base_ref = s(&payload, &["pull_request", "base", "ref"]);
                ev.head_ref = s(&payload, &["pull_request", "head", "ref"]);
                let number =
                    s(&payload, &["number"]).or_else(|| s(&payload, &["pull_request", "number"]));
                ev.ref_ = if name == "pull_request_target" {
                    ev.base_ref.as_deref().map(full_branch_ref)
                } else {
                    number.map(|n| format!("refs/pull/{n}/merge"))
                };
            }
            "merge_group" => {
                ev.base_ref = s(&payload, &["merge_group", "base_ref"]);
                ev.ref_ = s(&payload, &["merge_group", "head_ref"]);
            }
            "workflow_run" => {
                ev.workflow_name = s(&payload, &["workflow_run", "name"]);
                ev.ref_ =
                    s(&payload, &["workflow_run", "head_branch"]).map(|b| full_branch_ref(&b));
            }
            "schedule" => ev.schedule = s(&payload, &["schedule"]),
            "release" => {
                ev.ref_ = s(&payload, &["release", "tag_name"]).map(|t| format!("refs/tags/{t}"));
            }
            "workflow_dispatch" => ev.ref_ = s(&payload, &["ref"]).map(|r| full_branch_ref(&r)),
            _ => {}
        }
        ev.payload = payload;
        ev
    }
}

/// The answer of [`matches`]: whether the workflow runs, and a one-line reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub matched: bool,
    pub reason: String,
}

impl Match {
    fn yes(reason: impl Into<String>) -> Match {
        Match {
            matched: true,
            reason: reason.into(),
        }
    }
    fn no(reason: impl Into<String>) -> Match {
        Match {
            matched: false,
            reason: reason.into(),
        }
    }
}

/// Activity types that fire when `types` is omitted; `None` means every type.
pub fn default_types(event: &str) -> Option<&'static [&'static str]> {
    match event {
        "pull_request" | "pull_request_target" => Some(&["opened", "synchronize", "reopened"]),
        _ => None,
    }
}

fn check_types(t: &EventTrigger, ev: &Event) -> Result<(), String> {
    let Some(action) = &ev.action else {
        return Ok(());
    };
    match &t.types {
        Some(types) => {
            if types.iter().any(|x| x.value == *action) {
                Ok(())
            } else {
                Err(format!(
                    "activity type '{action}' not in types {}",
                    filters::show(types)
                ))
            }
        }
        None => match default_types(&ev.name) {
            Some(d) if !d.contains(&action.as_str()) => Err(format!(
                "activity type '{action}' not in the default types [{}]",
                d.join(", ")
            )),
            _ => Ok(()),
        },
    }
}

/// Checks an include list and an ignore list against one name.
fn check_names(
    kind: &str,
    name: &str,
    include: &Option<Vec<Spanned<String>>>,
    ignore: &Option<Vec<Spanned<String>>>,
) -> Result<(), String> {
    if let Some(list) = include {
        let pats = filters::compile(list).map_err(|e| e.to_string())?;
        if !filters::include_list(&pats, &[name]) {
            let k = if kind == "tag" { "tags" } else { "branches" };
            return Err(format!(
                "{kind} '{name}' not in {k} {}",
                filters::show(list)
            ));
        }
    }
    if let Some(list) = ignore {
        let pats = filters::compile(list).map_err(|e| e.to_string())?;
        if !filters::ignore_list(&pats, &[name]) {
            let k = if kind == "tag" { "tags" } else { "branches" };
            return Err(format!(
                "{kind} '{name}' is ignored by {k}-ignore {}",
                filters::show(list)
            ));
        }
    }
    Ok(())
}

fn check_paths(t: &EventTrigger, ev: &Event) -> Result<Option<String>, String> {
    if t.paths.is_none() && t.paths_ignore.is_none() {
        return Ok(None);
    }
    let Some(paths) = &ev.changed_paths else {
        return Ok(Some(
            "path filters not checked: changed files unknown".into(),
        ));
    };
    let items: Vec<&str> = paths
        .iter()
        .take(MAX_CHANGED_FILES)
        .map(String::as_str)
        .collect();
    if items.is_empty() {
        return Err("no changed files".into());
    }
    if let Some(list) = &t.paths {
        let pats = filters::compile(list).map_err(|e| e.to_string())?;
        match filters::first_included(&pats, &items) {
            None => {
                return Err(format!(
                    "no changed file matches paths {}",
                    filters::show(list)
                ));
            }
            Some(f) if t.paths_ignore.is_none() => {
                return Ok(Some(format!("'{f}' matches paths {}", filters::show(list))));
            }
            _ => {}
        }
    }
    if let Some(list) = &t.paths_ignore {
        let pats = filters::compile(list).map_err(|e| e.to_string())?;
        match filters::first_not_ignored(&pats, &items) {
            None => {
                return Err(format!(
                    "every changed file is ignored by paths-ignore {}",
                    filters::show(list)
                ));
            }
            Some(f) => return Ok(Some(format!("'{f}' is not ignored"))),
        }
    }
    Ok(None)
}

fn check(t: &EventTrigger, ev: &Event) -> Result<String, String> {
    check_types(t, ev)?;
    let mut why: Vec<String> = Vec::new();
    match ev.name.as_str() {
        "push" => {
            let Some(r) = ev.ref_.as_deref() else {
                // Nothing to match filters against (e.g. a local run outside a repository).
                why.push("ref unknown: branch, tag and path filters not checked".into());
                return Ok(why.join("; "));
            };
            let has_b = t.branches.is_some() || t.branches_ignore.is_some();
            let has_t = t.tags.is_some() || t.tags_ignore.is_some();
            if let Some(tag) = r.strip_prefix("refs/tags/") {
                if has_b && !has_t {
                    return Err(format!(
                        "tag '{tag}' pushed, but only branch filters are set"
                    ));
                }
                check_names("tag", tag, &t.tags, &t.tags_ignore)?;
                why.push(format!("push of tag '{tag}'"));
                // Path filters are not evaluated for tag pushes.
                return Ok(why.join("; "));
            }
            let branch = short(r);
            if has_t && !has_b {
                return Err(format!(
                    "branch '{branch}' pushed, but only tag filters are set"
                ));
            }
            check_names("branch", branch, &t.branches, &t.branches_ignore)?;
            why.push(format!("push to branch '{branch}'"));
        }
        "pull_request" | "pull_request_target" | "merge_group"
            if t.branches.is_some() || t.branches_ignore.is_some() =>
        {
            match ev.base_ref.as_deref().map(short) {
                Some(base) => {
                    check_names("branch", base, &t.branches, &t.branches_ignore)?;
                    why.push(format!("base branch '{base}'"));
                }
                None => why.push("base branch unknown: branch filters not checked".into()),
            }
        }
        "workflow_run" => {
            if let Some(wfs) = &t.workflows {
                let name = ev
                    .workflow_name
                    .as_deref()
                    .ok_or("workflow_run event without a workflow name")?;
                let pats = filters::compile(wfs).map_err(|e| e.to_string())?;
                if !wfs.iter().any(|w| w.value == name) && !filters::include_list(&pats, &[name]) {
                    return Err(format!(
                        "workflow '{name}' not in workflows {}",
                        filters::show(wfs)
                    ));
                }
                why.push(format!("workflow '{name}'"));
            }
            if t.branches.is_some() || t.branches_ignore.is_some() {
                let b = ev
                    .ref_
                    .as_deref()
                    .map(short)
                    .ok_or("workflow_run event without a branch")?;
                check_names("branch", b, &t.branches, &t.branches_ignore)?;
            }
        }
        "schedule" => {
            if let Some(c) = &ev.schedule {
                if !t.cron.iter().any(|x| x.value == *c) {
                    let list: Vec<&str> = t.cron.iter().map(|c| c.value.as_str()).collect();
                    return Err(format!(
                        "schedule '{c}' is not one of [{}]",
                        list.join(", ")
                    ));
                }
                why.push(format!("schedule '{c}'"));
            }
        }
        _ => {}
    }
    if matches!(
        ev.name.as_str(),
        "push" | "pull_request" | "pull_request_target"
    ) && let Some(p) = check_paths(t, ev)?
    {
        why.push(p);
    }
    if let Some(a) = &ev.action {
        why.push(format!("type '{a}'"));
    }
    Ok(why.join("; "))
}

/// Does `ev` trigger `wf`? Across events the rule is OR (only `ev.name` is looked at);
/// within the event every filter must pass.
pub fn matches(wf: &Workflow, ev: &Event) -> Match {
    let Some(t) = wf.on.events.get(&ev.name) else {
        let names: Vec<&str> = wf.on.events.keys().map(String::as_str).collect();
        return Match::no(format!(
            "not triggered by '{}' (on: {})",
            ev.name,
            names.join(", ")
        ));
    };
    match check(t, ev) {
        Ok(why) if why.is_empty() => Match::yes(format!("on: {}", ev.name)),
        Ok(why) => Match::yes(format!("on: {} ({why})", ev.name)),
        Err(e) => Match::no(e),
    }
}
