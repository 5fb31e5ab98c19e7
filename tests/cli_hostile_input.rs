//! The `gantry` binary against hostile files and flags: each gets a clear error and exit
//! code (1 for a bad file, 2 for bad flags), never a panic (101) or a silent success.

use gantry_tests::{gantry, git_repo_with, text};

const MATRIX_WF: &str = "on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n    strategy:\n      matrix:\n        os: [linux, macos, windows]\n    steps:\n      - run: echo leg-${{ matrix.os }}\n";

#[test]
fn validate_reports_an_error_at_column_70000_without_panicking() {
    let pad = "x".repeat(70_000);
    let wf = format!(
        "{{on: push, jobs: {{build: {{runs-on: ubuntu-latest, env: {{PAD: {pad}}}, bogus-key: 1, steps: [{{run: echo}}]}}}}}}\n"
    );
    let col = wf.find("bogus-key").unwrap() + 1;
    let repo = git_repo_with(&[(".github/workflows/min.yml", &wf)]);
    let out = gantry(repo.path(), &["validate"]);
    let all = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        &all[..all.len().min(2_000)]
    );
    assert!(
        !all.contains("panicked"),
        "{}",
        &all[..all.len().min(2_000)]
    );
    assert!(
        all.contains(&format!("min.yml:1:{col}: error: ")),
        "{}",
        &all[..all.len().min(2_000)]
    );
    assert!(all.contains("bogus-key") && all.len() < 5_000, "{all}");
}

#[test]
fn validate_reports_invalid_utf8_and_a_second_document_where_they_are() {
    let repo = git_repo_with(&[(
        ".github/workflows/two.yml",
        "on: push\njobs:\n  a:\n    runs-on: x\n    steps: [{run: echo}]\n---\non: pull_request\n",
    )]);
    std::fs::write(
        repo.path().join(".github/workflows/bad.yml"),
        b"on: push\njobs:\n  a:\n    runs-on: ub\xffuntu\n",
    )
    .unwrap();
    let out = gantry(repo.path(), &["validate"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("bad.yml:4:16: error: invalid UTF-8"), "{all}");
    assert!(
        all.contains("two.yml:6:1: error: a second YAML document"),
        "{all}"
    );
}

#[test]
fn run_refuses_empty_and_unset_secret_names() {
    let repo = git_repo_with(&[(".github/workflows/m.yml", MATRIX_WF)]);
    let out = gantry(repo.path(), &["run", "--host", "-s", "=x"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("-s '=x': the secret name before '=' is empty"));
    let out = gantry(
        repo.path(),
        &["run", "--host", "-s", "GANTRY_TEST_SURELY_UNSET_K"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("the environment variable GANTRY_TEST_SURELY_UNSET_K is not set"),
        "{}",
        text(&out)
    );
}

#[test]
fn run_matrix_filters_are_checked_and_repeated_keys_are_alternatives() {
    let repo = git_repo_with(&[(".github/workflows/m.yml", MATRIX_WF)]);
    let out = gantry(repo.path(), &["run", "--host", "--matrix", "os:windos"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(
            "--matrix os:windos selects no matrix leg: 'os' is one of 'linux', 'macos', 'windows'"
        ),
        "{}",
        text(&out)
    );
    let out = gantry(
        repo.path(),
        &[
            "run", "--host", "--json", "--matrix", "os:linux", "--matrix", "os:macos",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let logs: Vec<String> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["type"] == "log")
        .filter_map(|e| e["line"].as_str().map(str::to_string))
        .filter(|l| l.starts_with("leg-"))
        .collect();
    let mut logs = logs;
    logs.sort();
    assert_eq!(logs, ["leg-linux", "leg-macos"], "{stdout}");
}
