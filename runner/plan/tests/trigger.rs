//! Event matching (§2.2, §2.4, §2.5, §2.8) on workflows parsed by the loader.

use gantry_plan::{Event, matches};
use gantry_workflow::{Workflow, parse_workflow};
use serde_json::json;

fn wf(on: &str) -> Workflow {
    let yaml = format!("on:\n{on}\njobs:\n  j:\n    runs-on: x\n    steps: [{{run: echo}}]\n");
    let l = parse_workflow("t.yml", &yaml);
    assert!(!l.has_errors(), "{yaml}\n{:?}", l.diagnostics);
    l.value.unwrap()
}

fn paths(p: &[&str]) -> Option<Vec<String>> {
    Some(p.iter().map(|s| s.to_string()).collect())
}

fn yes(w: &Workflow, ev: &Event) {
    let m = matches(w, ev);
    assert!(m.matched, "expected a match for {ev:?}: {}", m.reason);
}

fn no(w: &Workflow, ev: &Event, why: &str) {
    let m = matches(w, ev);
    assert!(!m.matched, "expected no match for {ev:?}: {}", m.reason);
    assert!(
        m.reason.contains(why),
        "reason {:?} should contain {why:?}",
        m.reason
    );
}

#[test]
fn push_branches_and_tags() {
    let w = wf("  push:\n    branches: [main, 'releases/**']");
    yes(&w, &Event::push("refs/heads/main", None));
    yes(&w, &Event::push("releases/v1/x", None));
    no(
        &w,
        &Event::push("refs/heads/dev", None),
        "branch 'dev' not in branches [main, releases/**]",
    );
    // only branch filters: tag pushes never fire
    no(
        &w,
        &Event::push("refs/tags/v1", None),
        "only branch filters",
    );

    let w = wf("  push:\n    tags: ['v[0-9]*']");
    yes(&w, &Event::push("refs/tags/v1.2", None));
    no(
        &w,
        &Event::push("refs/tags/x1", None),
        "tag 'x1' not in tags",
    );
    no(
        &w,
        &Event::push("refs/heads/main", None),
        "only tag filters",
    );

    // neither: both fire
    let w = wf("  push:");
    yes(&w, &Event::push("refs/heads/any", None));
    yes(&w, &Event::push("refs/tags/any", None));

    let w = wf("  push:\n    branches-ignore: ['dependabot/**']");
    no(
        &w,
        &Event::push("dependabot/npm/x", None),
        "ignored by branches-ignore",
    );
    yes(&w, &Event::push("main", None));

    let w = wf("  push:\n    branches: ['**', '!wip/**']");
    no(&w, &Event::push("wip/a", None), "not in branches");
    yes(&w, &Event::push("feat/a", None));
}

#[test]
fn push_paths() {
    let w = wf("  push:\n    branches: [main]\n    paths: ['src/**', '!src/**/*.md']");
    yes(
        &w,
        &Event::push("main", paths(&["README.md", "src/lib.rs"])),
    );
    no(
        &w,
        &Event::push("main", paths(&["src/docs/a.md", "README.md"])),
        "no changed file matches",
    );
    // branch filter and path filter must both pass
    no(
        &w,
        &Event::push("dev", paths(&["src/lib.rs"])),
        "branch 'dev'",
    );
    no(&w, &Event::push("main", paths(&[])), "no changed files");
    // unknown changed files: not evaluated
    yes(&w, &Event::push("main", None));

    let w = wf("  push:\n    paths-ignore: ['docs/**']");
    no(
        &w,
        &Event::push("main", paths(&["docs/a.md", "docs/b/c.md"])),
        "every changed file is ignored",
    );
    yes(&w, &Event::push("main", paths(&["docs/a.md", "src/x.rs"])));
    // paths are not evaluated for tag pushes
    yes(&w, &Event::push("refs/tags/v1", paths(&["docs/a.md"])));
}

#[test]
fn pull_request_types_and_base_branch() {
    let w = wf("  pull_request:\n    branches: [main]");
    yes(&w, &Event::pull_request("opened", "main", "feature", None));
    yes(
        &w,
        &Event::pull_request("synchronize", "refs/heads/main", "feature", None),
    );
    yes(
        &w,
        &Event::pull_request("reopened", "main", "feature", None),
    );
    no(
        &w,
        &Event::pull_request("closed", "main", "feature", None),
        "default types",
    );
    // branches match the BASE branch, not the head
    no(
        &w,
        &Event::pull_request("opened", "dev", "main", None),
        "branch 'dev' not in branches [main]",
    );

    let w = wf("  pull_request:\n    types: [closed, labeled]");
    yes(&w, &Event::pull_request("closed", "x", "y", None));
    no(
        &w,
        &Event::pull_request("opened", "x", "y", None),
        "not in types [closed, labeled]",
    );

    let w = wf("  pull_request_target:\n    paths: ['**.rs']");
    let mut ev = Event::pull_request("opened", "main", "f", paths(&["a/b.rs"]));
    ev.name = "pull_request_target".into();
    yes(&w, &ev);
}

#[test]
fn other_events() {
    let w = wf("  schedule:\n    - cron: '0 0 * * *'\n    - cron: '*/30 * * * *'");
    let mut ev = Event::named("schedule");
    yes(&w, &ev);
    ev.schedule = Some("*/30 * * * *".into());
    yes(&w, &ev);
    ev.schedule = Some("1 1 * * *".into());
    no(&w, &ev, "not one of");

    let w =
        wf("  workflow_run:\n    workflows: [CI]\n    types: [completed]\n    branches: [main]");
    let ev = Event::from_payload(
        "workflow_run",
        json!({"action": "completed", "workflow_run": {"name": "CI", "head_branch": "main"}}),
    );
    yes(&w, &ev);
    let ev = Event::from_payload(
        "workflow_run",
        json!({"action": "completed", "workflow_run": {"name": "Other", "head_branch": "main"}}),
    );
    no(&w, &ev, "workflow 'Other' not in workflows [CI]");

    let w = wf("  issues:\n    types: [opened]\n  workflow_dispatch:");
    yes(
        &w,
        &Event::from_payload("issues", json!({"action": "opened"})),
    );
    no(
        &w,
        &Event::from_payload("issues", json!({"action": "closed"})),
        "not in types",
    );
    yes(&w, &Event::named("workflow_dispatch"));
    no(
        &w,
        &Event::named("push"),
        "not triggered by 'push' (on: issues, workflow_dispatch)",
    );

    let w = wf("  [push, pull_request]");
    yes(&w, &Event::named("pull_request"));
}

#[test]
fn from_payload_derives_refs() {
    let ev = Event::from_payload(
        "push",
        json!({"ref": "refs/heads/main", "commits": [
            {"added": ["a.txt"], "removed": [], "modified": ["b.txt"]},
            {"added": [], "removed": ["a.txt"], "modified": ["c.txt"]}
        ]}),
    );
    assert_eq!(ev.ref_.as_deref(), Some("refs/heads/main"));
    assert_eq!(ev.changed_paths, paths(&["a.txt", "b.txt", "c.txt"]));

    let ev = Event::from_payload(
        "pull_request",
        json!({"action": "synchronized", "number": 7, "pull_request": {
            "base": {"ref": "main"}, "head": {"ref": "feat"}}}),
    );
    assert_eq!(ev.action.as_deref(), Some("synchronize"));
    assert_eq!(ev.ref_.as_deref(), Some("refs/pull/7/merge"));
    assert_eq!(ev.base_ref.as_deref(), Some("main"));
    assert_eq!(ev.head_ref.as_deref(), Some("feat"));

    let ev = Event::from_payload(
        "release",
        json!({"action": "published", "release": {"tag_name": "v2"}}),
    );
    assert_eq!(ev.ref_.as_deref(), Some("refs/tags/v2"));
    let ev = Event::from_payload("schedule", json!({"schedule": "0 0 * * *"}));
    assert_eq!(ev.schedule.as_deref(), Some("0 0 * * *"));
}
