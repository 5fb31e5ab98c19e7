//! End-to-end tests of reusable workflows (`jobs.<id>.uses`): local and remote calls (the
//! remote one from a bare git repository served through `--action-source file://...`),
//! typed inputs with defaults, named and inherited secrets, outputs, a matrix over a call,
//! nested calls and GitHub's nesting limit.

use std::path::Path;

use gantry_tests::*;

fn events(out: &std::process::Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// (name, result) of every finished job.
fn finished(ev: &[serde_json::Value]) -> Vec<(String, String)> {
    ev.iter()
        .filter(|e| e["type"] == "job_finished")
        .map(|e| {
            (
                e["name"].as_str().unwrap_or("").to_string(),
                e["result"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn result_of(ev: &[serde_json::Value], name: &str) -> Option<String> {
    finished(ev)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, r)| r)
}

const CALLED: &str = r#"
name: called
on:
  workflow_call:
    inputs:
      text:
        type: string
        required: true
      flag:
        type: boolean
        required: true
      n:
        type: number
        required: true
      opt:
        type: string
        default: fallback-${{ github.event_name }}
    secrets:
      token:
        required: true
    outputs:
      echoed:
        value: ${{ jobs.second.outputs.out }}
      first-result:
        value: ${{ jobs.first.result }}
jobs:
  first:
    runs-on: ubuntu-latest
    outputs:
      v: ${{ steps.s.outputs.v }}
    steps:
      - id: s
        run: |
          test "${{ inputs.text }}" = hello
          test "${{ toJSON(inputs.flag) }}" = true
          test "${{ toJSON(inputs.n) }}" = "${{ inputs.n }}"
          test "${{ inputs.opt }}" = fallback-push
          test "${{ secrets.token }}" = "s3cret-Tk9"
          test "${{ github.workflow }}" = caller
          test -z "${{ env.CALLER_ENV }}"
          echo "v=${{ inputs.text }}-${{ inputs.n }}" >> "$GITHUB_OUTPUT"
  second:
    needs: first
    runs-on: ubuntu-latest
    outputs:
      out: ${{ steps.s.outputs.out }}
    steps:
      - id: s
        run: echo "out=${{ needs.first.outputs.v }}" >> "$GITHUB_OUTPUT"
"#;

const CALLER: &str = r#"
name: caller
on: push
env:
  CALLER_ENV: not-for-the-callee
jobs:
  named:
    uses: ./.github/workflows/called.yml
    with:
      text: hello
      flag: ${{ true }}
      n: 1
    secrets:
      token: ${{ secrets.TOKEN }}
  inherit:
    uses: ./.github/workflows/called.yml
    with:
      text: hello
      flag: true
      n: 2
    secrets: inherit
  legs:
    strategy:
      matrix:
        n: [3, 4]
    uses: ./.github/workflows/called.yml
    with:
      text: hello
      flag: true
      n: ${{ matrix.n }}
    secrets: inherit
  check:
    needs: [named, inherit, legs]
    runs-on: ubuntu-latest
    steps:
      - run: |
          test "${{ needs.named.outputs.echoed }}" = hello-1
          test "${{ needs.named.outputs.first-result }}" = success
          test "${{ needs.named.result }}" = success
          test "${{ needs.inherit.outputs.echoed }}" = hello-2
          case "${{ needs.legs.outputs.echoed }}" in hello-3|hello-4) ;; *) exit 1;; esac
"#;

#[test]
fn local_call_inputs_secrets_outputs_inherit_matrix() {
    let r = git_repo_with(&[
        (".github/workflows/called.yml", CALLED),
        (".github/workflows/caller.yml", CALLER),
    ]);
    // called.yml only triggers on workflow_call: a push runs caller.yml alone.
    let out = gantry(
        r.path(),
        &["run", "--host", "--json", "-s", "TOKEN=s3cret-Tk9"],
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(!all.contains("s3cret-Tk9"), "secret leaked: {all}");
    let ev = events(&out);
    for name in [
        "named / first",
        "named / second",
        "inherit / first",
        "inherit / second",
        "legs (3) / first",
        "legs (4) / second",
        "check",
    ] {
        assert_eq!(
            result_of(&ev, name).as_deref(),
            Some("success"),
            "{name}: {:?}",
            finished(&ev)
        );
    }
    // The caller itself is not a job of its own.
    assert!(result_of(&ev, "named").is_none(), "{:?}", finished(&ev));
    // Callee jobs carry the caller's id in their job id.
    assert!(
        ev.iter()
            .any(|e| e["type"] == "job_queued" && e["job_id"] == "named/second"),
        "no job_queued for named/second"
    );
}

#[test]
fn call_errors_fail_the_caller_with_a_message() {
    let r = git_repo_with(&[
        (".github/workflows/called.yml", CALLED),
        (
            ".github/workflows/caller.yml",
            r#"
name: caller
on: push
jobs:
  wrong-type:
    uses: ./.github/workflows/called.yml
    with:
      text: hello
      flag: ${{ 'maybe' }}
      n: 1
    secrets:
      token: x
  missing-secret:
    uses: ./.github/workflows/called.yml
    with:
      text: hello
      flag: true
      n: 1
  no-such-file:
    uses: ./.github/workflows/nope.yml
  dependent:
    needs: wrong-type
    runs-on: ubuntu-latest
    steps:
      - run: echo should not run
"#,
        ),
    ]);
    let out = gantry(r.path(), &["run", "--host", "--json"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let ev = events(&out);
    assert_eq!(result_of(&ev, "wrong-type").as_deref(), Some("failure"));
    assert_eq!(result_of(&ev, "missing-secret").as_deref(), Some("failure"));
    assert_eq!(result_of(&ev, "no-such-file").as_deref(), Some("failure"));
    assert_eq!(result_of(&ev, "dependent").as_deref(), Some("skipped"));
    assert!(all.contains("input 'flag' has the wrong type"), "{all}");
    assert!(
        all.contains("Secret token is required, but not provided while calling."),
        "{all}"
    );
    assert!(all.contains("no such workflow file"), "{all}");
}

/// `lK.yml` calls `l(K+1).yml` while `inputs.depth > K`, else runs a leaf job.
fn level_file(k: usize) -> (String, String) {
    (
        format!(".github/workflows/l{k}.yml"),
        format!(
            r#"
on:
  workflow_call:
    inputs:
      depth:
        type: number
        required: true
jobs:
  next:
    if: inputs.depth > {k}
    uses: ./.github/workflows/l{next}.yml
    with:
      depth: ${{{{ inputs.depth }}}}
  leaf:
    if: inputs.depth == {k}
    runs-on: ubuntu-latest
    steps:
      - run: echo "leaf at level {k}"
"#,
            next = k + 1
        ),
    )
}

#[test]
fn nesting_up_to_ten_levels_and_not_more() {
    let mut files: Vec<(String, String)> = (2..=11).map(level_file).collect();
    files.push((
        ".github/workflows/top.yml".into(),
        r#"
on: push
jobs:
  ok:
    uses: ./.github/workflows/l2.yml
    with:
      depth: 10
  too-deep:
    uses: ./.github/workflows/l2.yml
    with:
      depth: 11
"#
        .into(),
    ));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let r = git_repo_with(&refs);
    let out = gantry(r.path(), &["run", "--host", "--json"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let ev = events(&out);
    let leaf = format!("ok{} / leaf", " / next".repeat(8));
    assert_eq!(
        result_of(&ev, &leaf).as_deref(),
        Some("success"),
        "{:?}",
        finished(&ev)
    );
    let deep = format!("too-deep{}", " / next".repeat(9));
    assert_eq!(
        result_of(&ev, &deep).as_deref(),
        Some("failure"),
        "{:?}",
        finished(&ev)
    );
    assert!(all.contains("GitHub's limit of 10 levels"), "{all}");
}

/// A bare repository `<root>/acme/flows.git` holding `files`, tagged `v1`.
fn bare_repo(root: &Path, files: &[(&str, &str)]) {
    let src = git_repo_with(files);
    let repo = git2::Repository::open(src.path()).unwrap();
    let head = repo.head().unwrap().peel_to_commit().unwrap();
    repo.tag_lightweight("v1", head.as_object(), false).unwrap();
    let dst = root.join("acme/flows.git");
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    let bare = git2::Repository::init_bare(&dst).unwrap();
    let mut remote = bare
        .remote_anonymous(&format!("file://{}", src.path().display()))
        .unwrap();
    remote
        .fetch(
            &["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"],
            None,
            None,
        )
        .unwrap();
}

#[test]
fn remote_call_from_a_bare_repository_with_a_nested_local_call() {
    let tmp = tempfile::tempdir().unwrap();
    bare_repo(
        tmp.path(),
        &[
            (
                ".github/workflows/remote.yml",
                r#"
on:
  workflow_call:
    inputs:
      who:
        type: string
        default: world
    outputs:
      greeting:
        value: ${{ jobs.inner.outputs.greeting }}
jobs:
  inner:
    uses: ./.github/workflows/inner.yml
    with:
      who: ${{ inputs.who }}
"#,
            ),
            (
                ".github/workflows/inner.yml",
                r#"
on:
  workflow_call:
    inputs:
      who:
        type: string
        required: true
    outputs:
      greeting:
        value: ${{ jobs.say.outputs.greeting }}
jobs:
  say:
    runs-on: ubuntu-latest
    outputs:
      greeting: ${{ steps.s.outputs.g }}
    steps:
      - id: s
        run: echo "g=hello ${{ inputs.who }}" >> "$GITHUB_OUTPUT"
"#,
            ),
        ],
    );
    let r = git_repo_with(&[(
        ".github/workflows/ci.yml",
        r#"
on: push
jobs:
  remote:
    uses: acme/flows/.github/workflows/remote.yml@v1
    with:
      who: gantry
  check:
    needs: remote
    runs-on: ubuntu-latest
    steps:
      - run: test "${{ needs.remote.outputs.greeting }}" = "hello gantry"
"#,
    )]);
    let source = format!("file://{}/{{owner}}/{{repo}}.git", tmp.path().display());
    let cache = tmp.path().join("cache");
    let out = gantry(
        r.path(),
        &[
            "run",
            "--host",
            "--json",
            "--action-source",
            &source,
            "--action-cache",
            cache.to_str().unwrap(),
        ],
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    let ev = events(&out);
    assert_eq!(
        result_of(&ev, "remote / inner / say").as_deref(),
        Some("success"),
        "{:?}",
        finished(&ev)
    );
    assert_eq!(result_of(&ev, "check").as_deref(), Some("success"));
    // Offline from the warm cache: the same run needs no source.
    let out = gantry(
        r.path(),
        &[
            "run",
            "--host",
            "--offline",
            "--action-cache",
            cache.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn rerun_failed_reuses_the_callee_jobs_that_succeeded() {
    let marks = tempfile::tempdir().unwrap();
    let m = marks.path().display().to_string();
    let called = format!(
        r#"
on:
  workflow_call:
    outputs:
      o:
        value: ${{{{ jobs.a.outputs.v }}}}
jobs:
  a:
    runs-on: ubuntu-latest
    outputs:
      v: ${{{{ steps.s.outputs.v }}}}
    steps:
      - id: s
        run: |
          echo run >> {m}/a-runs
          echo v=from-a >> "$GITHUB_OUTPUT"
  b:
    needs: a
    runs-on: ubuntu-latest
    steps:
      - run: test -f {m}/ok
"#
    );
    let r = git_repo_with(&[
        (".github/workflows/called.yml", &called),
        (
            ".github/workflows/top.yml",
            r#"
on: push
jobs:
  call:
    uses: ./.github/workflows/called.yml
  after:
    needs: call
    runs-on: ubuntu-latest
    steps:
      - run: test "${{ needs.call.outputs.o }}" = from-a
"#,
        ),
    ]);
    let out = gantry(r.path(), &["run", "--host"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    std::fs::write(marks.path().join("ok"), "").unwrap();
    let out = gantry(r.path(), &["rerun", "--failed", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let ev = events(&out);
    assert!(
        ev.iter()
            .any(|e| e["type"] == "job_finished" && e["name"] == "call / a" && e["reused"] == true),
        "{:?}",
        finished(&ev)
    );
    assert_eq!(result_of(&ev, "call / b").as_deref(), Some("success"));
    let runs = std::fs::read_to_string(marks.path().join("a-runs")).unwrap();
    assert_eq!(runs.lines().count(), 1, "call / a ran again");
}

#[test]
fn more_than_fifty_distinct_called_workflows_is_an_error() {
    let mut files: Vec<(String, String)> = (1..=51)
        .map(|i| {
            (
                format!(".github/workflows/w{i}.yml"),
                "on: workflow_call\njobs:\n  j:\n    runs-on: ubuntu-latest\n    steps:\n      - run: \"true\"\n".to_string(),
            )
        })
        .collect();
    let mut top = String::from("on: push\njobs:\n");
    for i in 1..=51 {
        top.push_str(&format!(
            "  c{i}:\n    uses: ./.github/workflows/w{i}.yml\n"
        ));
    }
    // Calling one file twice counts once.
    top.push_str("  again:\n    uses: ./.github/workflows/w1.yml\n");
    files.push((".github/workflows/top.yml".into(), top));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let r = git_repo_with(&refs);
    let out = gantry(r.path(), &["run", "--host", "--json", "--jobs", "4"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let res = finished(&events(&out));
    let failed: Vec<&(String, String)> = res.iter().filter(|(_, r)| r == "failure").collect();
    let ok = res.iter().filter(|(_, r)| r == "success").count();
    assert_eq!(failed.len(), 1, "{res:?}");
    assert_eq!(ok, 51, "{res:?}");
    assert!(
        all.contains("more than 50 distinct reusable workflows"),
        "{all}"
    );
}
