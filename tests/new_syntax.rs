//! End-to-end tests of newer GitHub syntax (issue 14): `parallel:` step groups and the
//! `$/` self-repository references for reusable workflows and actions, in real git
//! repositories run on the host.

use gantry_tests::*;

fn events(out: &std::process::Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Index of the step named `name` (from `step_started`).
fn step_index(ev: &[serde_json::Value], name: &str) -> u64 {
    ev.iter()
        .find(|e| e["type"] == "step_started" && e["name"] == name)
        .and_then(|e| e["step"].as_u64())
        .unwrap_or_else(|| panic!("no step '{name}'"))
}

fn step_conclusion(ev: &[serde_json::Value], name: &str) -> String {
    ev.iter()
        .find(|e| e["type"] == "step_finished" && e["name"] == name)
        .and_then(|e| e["conclusion"].as_str())
        .unwrap_or_else(|| panic!("no finished step '{name}'"))
        .to_string()
}

/// Log text of step `step`.
fn step_log(ev: &[serde_json::Value], step: u64) -> String {
    ev.iter()
        .filter(|e| e["type"] == "log" && e["step"].as_u64() == Some(step))
        .filter_map(|e| e["line"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A member that records its start, waits (bounded) until its sibling has started too,
/// then records its end: run one after the other, the first member would never see the
/// second one's start file.
fn member(me: &str, other: &str) -> String {
    format!(
        r#"        - name: member {me}
          id: {me}
          run: |
            date +%s%N > "$RUNNER_TEMP/{me}.start"
            for i in $(seq 1 200); do
              [ -f "$RUNNER_TEMP/{other}.start" ] && break
              sleep 0.05
            done
            test -f "$RUNNER_TEMP/{other}.start" || {{ echo "{me} never saw {other} start"; exit 1; }}
            echo "line-from-{me}"
            echo "v=from-{me}" >> "$GITHUB_OUTPUT"
            echo "ENV_{me}=set-by-{me}" >> "$GITHUB_ENV"
            date +%s%N > "$RUNNER_TEMP/{me}.end"
"#
    )
}

#[test]
fn parallel_members_overlap_and_later_steps_see_their_results() {
    let wf = format!(
        r#"name: par
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: echo before
      - name: both
        parallel:
{}{}      - name: after
        run: |
          test "${{{{ steps.a.outputs.v }}}}" = from-a
          test "${{{{ steps.b.outputs.v }}}}" = from-b
          test "$ENV_a" = set-by-a
          test "$ENV_b" = set-by-b
          # each started before the other ended
          test "$(cat "$RUNNER_TEMP/a.start")" -lt "$(cat "$RUNNER_TEMP/b.end")"
          test "$(cat "$RUNNER_TEMP/b.start")" -lt "$(cat "$RUNNER_TEMP/a.end")"
"#,
        member("a", "b"),
        member("b", "a")
    );
    let r = git_repo_with(&[(".github/workflows/par.yml", &wf)]);
    let v = gantry(r.path(), &["validate", ".github/workflows/par.yml"]);
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
    let out = gantry(r.path(), &["run", "--host", "--json"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    let ev = events(&out);
    for name in ["both", "member a", "member b", "after"] {
        assert_eq!(step_conclusion(&ev, name), "success", "{name}: {all}");
    }
    // Each member's lines are logged under its own step, not its sibling's.
    let (a, b) = (step_index(&ev, "member a"), step_index(&ev, "member b"));
    assert_ne!(a, b);
    assert!(step_log(&ev, a).contains("line-from-a"), "{all}");
    assert!(!step_log(&ev, a).contains("line-from-b"), "{all}");
    assert!(step_log(&ev, b).contains("line-from-b"), "{all}");
    assert!(
        step_log(&ev, step_index(&ev, "both")).contains("Running 2 steps in parallel"),
        "{all}"
    );
}

#[test]
fn a_failing_member_fails_the_group_but_its_sibling_finishes() {
    let wf = r#"name: par
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - parallel:
          - name: fails
            run: exit 3
          - name: slow
            run: |
              sleep 0.5
              touch "$RUNNER_TEMP/slow.done"
          - name: tolerated
            continue-on-error: true
            run: exit 4
      - name: skipped after failure
        run: echo must-not-run
      - name: always
        if: always()
        run: test -f "$RUNNER_TEMP/slow.done"
"#;
    let r = git_repo_with(&[(".github/workflows/par.yml", wf)]);
    let out = gantry(r.path(), &["run", "--host", "--json"]);
    let all = text(&out);
    assert_ne!(out.status.code(), Some(0), "{all}");
    let ev = events(&out);
    assert_eq!(
        step_conclusion(&ev, "Parallel (3 steps)"),
        "failure",
        "{all}"
    );
    assert_eq!(step_conclusion(&ev, "fails"), "failure");
    assert_eq!(step_conclusion(&ev, "slow"), "success");
    assert_eq!(step_conclusion(&ev, "tolerated"), "success");
    assert_eq!(step_conclusion(&ev, "skipped after failure"), "skipped");
    assert_eq!(step_conclusion(&ev, "always"), "success", "{all}");
    assert!(!all.contains("must-not-run"));
    let job = ev
        .iter()
        .find(|e| e["type"] == "job_finished")
        .expect("job_finished");
    assert_eq!(job["result"], "failure");
}

const PLAN: &str = r#"name: plan
on:
  workflow_call:
    outputs:
      said:
        value: ${{ jobs.p.outputs.said }}
jobs:
  p:
    runs-on: ubuntu-latest
    outputs:
      said: ${{ steps.g.outputs.said }}
    steps:
      - id: g
        uses: $/.github/actions/greet
"#;

const GREET: &str = r#"name: greet
runs:
  using: composite
  steps:
    - id: s
      shell: bash
      run: echo "said=hello-from-greet" >> "$GITHUB_OUTPUT"
outputs:
  said:
    value: ${{ steps.s.outputs.said }}
"#;

#[test]
fn self_repository_workflow_and_action_without_checkout() {
    let caller = r#"name: caller
on: push
jobs:
  plan:
    uses: $/.github/workflows/plan.yml
  direct:
    runs-on: ubuntu-latest
    steps:
      - id: g
        uses: $/.github/actions/greet
      - run: test "${{ steps.g.outputs.said }}" = hello-from-greet
  check:
    needs: plan
    runs-on: ubuntu-latest
    steps:
      - run: test "${{ needs.plan.outputs.said }}" = hello-from-greet
"#;
    let r = git_repo_with(&[
        (".github/workflows/caller.yml", caller),
        (".github/workflows/plan.yml", PLAN),
        (".github/actions/greet/action.yml", GREET),
    ]);
    let v = gantry(r.path(), &["validate", ".github/workflows"]);
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
    let out = gantry(r.path(), &["run", "--host", "--json"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    let ev = events(&out);
    let results: Vec<(String, String)> = ev
        .iter()
        .filter(|e| e["type"] == "job_finished")
        .map(|e| {
            (
                e["name"].as_str().unwrap().into(),
                e["result"].as_str().unwrap().into(),
            )
        })
        .collect();
    for name in ["plan / p", "direct", "check"] {
        assert!(
            results.iter().any(|(n, r)| n == name && r == "success"),
            "{name}: {results:?}"
        );
    }
}

#[test]
fn bad_self_paths_point_at_the_line() {
    let wf = r#"name: bad
on: push
jobs:
  a:
    runs-on: ubuntu-latest
    steps:
      - uses: $/../elsewhere
  b:
    uses: $/.github/workflows/plan.yml@v1
"#;
    let r = git_repo_with(&[(".github/workflows/bad.yml", wf)]);
    let v = gantry(r.path(), &["validate", ".github/workflows/bad.yml"]);
    let all = text(&v);
    assert_ne!(v.status.code(), Some(0), "{all}");
    assert!(all.contains("bad.yml:7:15"), "{all}");
    assert!(all.contains("$/../elsewhere"), "snippet: {all}");
    assert!(all.contains("bad.yml:9:11"), "{all}");

    // A well-formed `$/` path that is not in the repository fails the step at its line.
    let wf = r#"name: missing
on: push
jobs:
  a:
    runs-on: ubuntu-latest
    steps:
      - uses: $/.github/actions/nope
"#;
    let r = git_repo_with(&[(".github/workflows/missing.yml", wf)]);
    let out = gantry(r.path(), &["run", "--host"]);
    let all = text(&out);
    assert_ne!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("missing.yml:7:15"), "{all}");
    assert!(
        all.contains("the workflow's repository at the run's commit"),
        "{all}"
    );
}
