//! End-to-end tests of newer GitHub syntax (issue 14): `parallel:` step groups, background
//! steps with `wait`, `wait-all` and `cancel`, and the `$/` self-repository references for
//! reusable workflows and actions, in real git repositories run on the host.

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

/// Waits (bounded) for `$RUNNER_TEMP/<name>`, failing the step if it never appears.
fn await_file(name: &str) -> String {
    format!(
        r#"for i in $(seq 1 200); do [ -f "$RUNNER_TEMP/{name}" ] && break; sleep 0.05; done
          test -f "$RUNNER_TEMP/{name}" || {{ echo "{name} never appeared"; exit 1; }}"#
    )
}

#[test]
fn a_background_step_runs_beside_later_steps_and_wait_takes_its_results_back() {
    let wf = format!(
        r#"name: bg
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - name: server
        id: server
        background: true
        run: |
          echo "v=from-server" >> "$GITHUB_OUTPUT"
          echo "ENV_S=set-by-server" >> "$GITHUB_ENV"
          touch "$RUNNER_TEMP/server.up"
          {client_done}
      - name: client
        run: |
          {server_up}
          # not taken back before the wait
          test -z "${{{{ steps.server.outputs.v }}}}"
          test -z "$ENV_S"
          touch "$RUNNER_TEMP/client.done"
      - wait: server
      - name: after
        run: |
          test "${{{{ steps.server.outputs.v }}}}" = from-server
          test "${{{{ steps.server.conclusion }}}}" = success
          test "$ENV_S" = set-by-server
"#,
        client_done = await_file("client.done"),
        server_up = await_file("server.up"),
    );
    let r = git_repo_with(&[(".github/workflows/bg.yml", &wf)]);
    let v = gantry(r.path(), &["validate", ".github/workflows/bg.yml"]);
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
    let out = gantry(r.path(), &["run", "--host", "--json"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    let ev = events(&out);
    for name in ["server", "client", "Wait for server", "after"] {
        assert_eq!(step_conclusion(&ev, name), "success", "{name}: {all}");
    }
    // The background step keeps its place in the job's numbering.
    assert_eq!(step_index(&ev, "server"), 0);
    assert_eq!(step_index(&ev, "Wait for server"), 2);
}

#[test]
fn a_failed_background_step_fails_its_wait_and_cancel_stops_one_without_failing() {
    let wf = r#"name: bg
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - name: bad
        id: bad
        background: true
        run: exit 3
      - name: monitor
        id: monitor
        background: true
        run: |
          sleep 120 &
          echo $! > "$RUNNER_TEMP/monitor.pid"
          wait
          echo "monitor ran to its end"
      - name: meanwhile
        run: sleep 0.3
      - name: stop monitor
        cancel: monitor
      - name: wait bad
        wait: bad
      - name: skipped after failure
        run: echo must-not-run
      - name: always
        if: always()
        run: |
          test "${{ steps.monitor.outcome }}" = cancelled
          test "${{ steps.bad.outcome }}" = failure
          ! kill -0 "$(cat "$RUNNER_TEMP/monitor.pid")" 2>/dev/null
"#;
    let r = git_repo_with(&[(".github/workflows/bg.yml", wf)]);
    let out = gantry(r.path(), &["run", "--host", "--json", "--kill-after", "1"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let ev = events(&out);
    assert_eq!(step_conclusion(&ev, "meanwhile"), "success", "{all}");
    assert_eq!(step_conclusion(&ev, "stop monitor"), "success", "{all}");
    assert_eq!(step_conclusion(&ev, "monitor"), "cancelled", "{all}");
    assert_eq!(step_conclusion(&ev, "wait bad"), "failure", "{all}");
    assert_eq!(
        step_conclusion(&ev, "skipped after failure"),
        "skipped",
        "{all}"
    );
    assert_eq!(step_conclusion(&ev, "always"), "success", "{all}");
    assert!(!all.contains("monitor ran to its end"), "{all}");
    assert!(
        step_log(&ev, step_index(&ev, "wait bad")).contains("background step #1 'bad' failed"),
        "{all}"
    );
}

#[test]
fn the_job_end_waits_for_background_steps_and_their_failures_count() {
    let wf = r#"name: bg
on: push
jobs:
  unwaited:
    runs-on: ubuntu-latest
    steps:
      - name: late failure
        background: true
        run: |
          sleep 0.3
          exit 5
      - name: tolerated
        background: true
        continue-on-error: true
        run: exit 6
      - run: echo foreground done
  tolerated-only:
    runs-on: ubuntu-latest
    steps:
      - name: tolerated
        background: true
        continue-on-error: true
        run: exit 6
      - run: echo foreground done
"#;
    let r = git_repo_with(&[(".github/workflows/bg.yml", wf)]);
    let out = gantry(r.path(), &["run", "--host", "--json"]);
    let all = text(&out);
    let ev = events(&out);
    let result = |job: &str| {
        ev.iter()
            .find(|e| e["type"] == "job_finished" && e["name"] == job)
            .and_then(|e| e["result"].as_str())
            .unwrap_or_else(|| panic!("no result for {job}: {all}"))
            .to_string()
    };
    assert_eq!(result("unwaited"), "failure", "{all}");
    assert_eq!(result("tolerated-only"), "success", "{all}");
    assert!(
        all.contains("background step #1 'late failure' failed"),
        "{all}"
    );
}

#[test]
fn a_mask_added_by_a_background_step_hides_the_value_in_other_steps() {
    let wf = format!(
        r#"name: bg
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - name: masker
        background: true
        run: |
          echo "::add-mask::bg-only-value-4711"
          touch "$RUNNER_TEMP/masked"
          sleep 1
      - name: printer
        run: |
          {masked}
          sleep 0.3
          echo "printed: bg-only-value-4711"
"#,
        masked = await_file("masked")
    );
    let r = git_repo_with(&[(".github/workflows/bg.yml", &wf)]);
    let out = gantry(r.path(), &["run", "--host", "--json"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("printed: ***"), "{all}");
    assert!(!all.contains("bg-only-value-4711"), "{all}");
    let events = std::fs::read_to_string(r.path().join(".gantry/runs/1/events.jsonl")).unwrap();
    assert!(
        !events.contains("bg-only-value-4711"),
        "the run record holds it"
    );
}

#[test]
fn wait_and_cancel_must_name_an_earlier_background_step() {
    let wf = "name: bg\non: push\njobs:\n  b:\n    runs-on: ubuntu-latest\n    steps:\n      - id: fg\n        run: echo hi\n      - wait: fg\n      - cancel: nowhere\n";
    let r = git_repo_with(&[(".github/workflows/bg.yml", wf)]);
    let v = gantry(r.path(), &["validate", ".github/workflows/bg.yml"]);
    let all = text(&v);
    assert_ne!(v.status.code(), Some(0), "{all}");
    assert!(
        all.contains("'fg' is not the id of an earlier step with `background: true`"),
        "{all}"
    );
    assert!(all.contains("bg.yml:9:15"), "wait's line and column: {all}");
    assert!(all.contains("'nowhere' is not the id"), "{all}");
}

/// `n` members of a `parallel:` group that each record how many steps run at that moment
/// (entries of `$RUNNER_TEMP/running`) in `$RUNNER_TEMP/counts`.
fn counting_members(n: usize) -> String {
    let mut members = String::new();
    for k in 0..n {
        members.push_str(&format!(
            r#"          - name: m{k}
            run: |
              mkdir -p "$RUNNER_TEMP/running/m{k}"
              ls "$RUNNER_TEMP/running" | wc -l >> "$RUNNER_TEMP/counts"
              sleep 0.5
              rmdir "$RUNNER_TEMP/running/m{k}"
"#
        ));
    }
    members
}

/// The `check` step after [`counting_members`]: `members` counts recorded, at most 10
/// steps at once and at least `at_least`.
fn counts_check(members: usize, at_least: usize) -> String {
    format!(
        r#"      - name: check
        run: |
          max=$(sort -n "$RUNNER_TEMP/counts" | tail -1)
          echo "most at once: $max"
          test "$(wc -l < "$RUNNER_TEMP/counts")" -eq {members}
          test "$max" -le 10
          test "$max" -ge {at_least}
"#
    )
}

#[test]
fn a_parallel_group_runs_at_most_ten_members_at_once() {
    let members = counting_members(12);
    let wf = format!(
        r#"name: par
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: mkdir -p "$RUNNER_TEMP/running"
      - name: twelve
        parallel:
{members}{check}"#,
        check = counts_check(12, 2)
    );
    let r = git_repo_with(&[(".github/workflows/par.yml", &wf)]);
    let out = gantry(r.path(), &["run", "--host", "--json"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert_eq!(step_conclusion(&events(&out), "check"), "success", "{all}");
}

#[test]
fn background_steps_and_parallel_members_share_the_ten_slots() {
    // Four background steps hold four of GitHub's ten slots while an eight-member group
    // runs: counted apart, twelve steps would run at once.
    let mut bg = String::new();
    for k in 0..4 {
        bg.push_str(&format!(
            r#"      - name: bg{k}
        background: true
        run: |
          mkdir -p "$RUNNER_TEMP/running/bg{k}"
          sleep 2
          rmdir "$RUNNER_TEMP/running/bg{k}"
"#
        ));
    }
    let members = counting_members(8);
    let wf = format!(
        r#"name: shared
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: mkdir -p "$RUNNER_TEMP/running"
{bg}      - name: four started
        run: |
          for i in $(seq 1 100); do
            [ "$(ls "$RUNNER_TEMP/running" | wc -l)" -ge 4 ] && exit 0
            sleep 0.05
          done
          exit 1
      - name: eight
        parallel:
{members}      - wait-all:
{check}"#,
        check = counts_check(8, 7)
    );
    let r = git_repo_with(&[(".github/workflows/shared.yml", &wf)]);
    let out = gantry(r.path(), &["run", "--host", "--json"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    let ev = events(&out);
    assert_eq!(step_conclusion(&ev, "check"), "success", "{all}");
    let group = step_log(&ev, step_index(&ev, "eight"));
    assert!(
        group.contains("4 background steps are running (10 steps at most run at once)"),
        "{group}"
    );
}
