//! `-q` still prints every failure's cause, once: job set-up failures (a missing image, a
//! service that never becomes healthy, an action that does not resolve) are reported like
//! failed steps — the job, what failed and what to do — on the terminal and in the run
//! record (`events.jsonl` holds the error annotation).

use std::path::Path;

use gantry_tests::*;

/// The latest run's record: its `events.jsonl` and logs, as text.
fn record_text(repo: &Path) -> String {
    let runs = repo.join(".gantry/runs");
    let mut dirs: Vec<_> = std::fs::read_dir(&runs)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("events.jsonl").exists())
        .collect();
    dirs.sort();
    let dir = dirs.last().expect("no run record").clone();
    all_files(&dir)
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "jsonl" || e == "log"))
        .map(|f| std::fs::read_to_string(f).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `wf` with `-q`; the output must show `cause` and name what to do (`fix`), the
/// failure's message (`once`) exactly once, and the record must hold the cause too.
fn quiet_failure(wf: &str, extra: &[&str], cause: &str, fix: &str, once: &str) {
    let repo = git_repo_with(&[(".github/workflows/ci.yml", wf)]);
    let mut args = vec!["run", "-q"];
    args.extend_from_slice(extra);
    let out = gantry(repo.path(), &args);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains(cause), "-q hid the cause '{cause}': {all}");
    assert!(all.contains(fix), "-q hid what to do '{fix}': {all}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.matches(once).count(),
        1,
        "'{once}' is not printed exactly once: {all}"
    );
    let recorded = record_text(repo.path());
    assert!(
        recorded.contains(cause),
        "the run record lacks '{cause}': {recorded}"
    );
}

#[test]
fn a_missing_image_is_shown_with_q() {
    if !docker_daemon_ready("-q missing image") {
        return;
    }
    quiet_failure(
        "on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n    container: gantry/no-such-image:0\n    \
         steps:\n      - run: echo never\n",
        &[],
        "gantry/no-such-image:0",
        "job set-up failed",
        "image 'gantry/no-such-image:0' is not available locally",
    );
}

#[test]
fn an_unhealthy_service_is_shown_with_q() {
    if !docker_ready(&["gantry/busybox"]) {
        return;
    }
    quiet_failure(
        "on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n    services:\n      db:\n        \
         image: gantry/busybox\n        options: >-\n          --health-cmd \"exit 1\" \
         --health-interval 1s --health-retries 1 --health-start-period 0s\n    steps:\n      \
         - run: echo never\n",
        &["--host"],
        "service 'db' exited",
        "job set-up failed",
        "before becoming healthy",
    );
}

#[test]
fn an_action_that_does_not_resolve_is_shown_with_q() {
    let cache = tempfile::tempdir().unwrap();
    let cache_arg = cache.path().display().to_string();
    quiet_failure(
        "on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n      \
         - uses: nobody-here/no-such-action@v1\n",
        &["--host", "--offline", "--action-cache", &cache_arg],
        "nobody-here/no-such-action@v1",
        "offline",
        "cannot resolve the action",
    );
}
