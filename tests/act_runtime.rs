//! act's runtime cases (`../shared/conformance/act-runtime`): every case in host mode
//! (all labels on the host, actor `nektos/act`), and the same cases in Docker mode with
//! Gantry's Debian image. Prints `act-runtime <mode>: passed/total` and the failures.

use std::path::Path;
use std::sync::Mutex;

use gantry_tests::*;

struct Case {
    name: String,
    path: String,
    event: String,
    expect_success: bool,
    args: Vec<String>,
    excludes: Vec<String>,
}

fn load_cases(dir: &Path) -> Vec<Case> {
    let text = std::fs::read_to_string(dir.join("cases.tsv")).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let get = |i: usize| f.get(i).copied().unwrap_or("").to_string();
            Case {
                name: get(0),
                path: get(1),
                event: get(2),
                expect_success: get(3) == "success",
                args: get(4).split_whitespace().map(String::from).collect(),
                excludes: get(5)
                    .split('\t')
                    .filter_map(|c| c.strip_prefix("output-excludes:"))
                    .map(String::from)
                    .collect(),
            }
        })
        .collect()
}

/// Cases Gantry fails on purpose because GitHub rejects them too, each with the text of the
/// error GitHub gives (GitHub's own reader tests and the conformance vectors say so):
/// - `uses-workflow` passes `secrets: {secret: ...}` to a workflow that declares no
///   secrets (GitHub: "Invalid secret, ... is not defined in the referenced workflow.",
///   reader test `errors-reusable-workflow-job-secrets-undefined`); the other three calls
///   of the case run.
/// - `workflow_call_inputs` declares `workflow_call` inputs without `type` (GitHub:
///   "Required property is missing: type", the vector for this very file).
const KNOWN_REJECTED: &[(&str, &str)] = &[
    (
        "uses-workflow",
        "Invalid secret, secret is not defined in the referenced workflow.",
    ),
    ("workflow_call_inputs", "Required property is missing: type"),
];

/// Whether a failed case is one of [`KNOWN_REJECTED`], failing for the documented reason.
fn known_rejection(name: &str, output: &str) -> bool {
    KNOWN_REJECTED
        .iter()
        .any(|(case, why)| *case == name && output.contains(why))
}

/// Runs every case with `mode_args`; returns (passed, total, failures). Failures for the
/// documented reasons of [`KNOWN_REJECTED`] are counted neither as passed nor as failures.
fn run_cases(repo: &Path, cases: &[Case], mode_args: &[&str]) -> (usize, usize, Vec<String>) {
    let failures = Mutex::new(Vec::new());
    let passed = Mutex::new(0usize);
    let next = Mutex::new(0usize);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap();
                        let i = *n;
                        *n += 1;
                        i
                    };
                    let Some(c) = cases.get(i) else { break };
                    let mut args: Vec<&str> =
                        vec!["run", &c.event, "-W", &c.path, "--actor", "nektos/act"];
                    args.extend(mode_args);
                    args.extend(c.args.iter().map(|s| s.as_str()));
                    let out = gantry(repo, &args);
                    let code = out.status.code();
                    let all = text(&out);
                    let mut problems = Vec::new();
                    match (c.expect_success, code) {
                        (true, Some(0)) | (false, Some(1)) => {}
                        _ => problems.push(format!(
                            "expected {}, exit code {code:?}",
                            if c.expect_success {
                                "success"
                            } else {
                                "failure"
                            }
                        )),
                    }
                    for t in &c.excludes {
                        if all.contains(t.as_str()) {
                            problems.push(format!("output contains {t:?}"));
                        }
                    }
                    if problems.is_empty() {
                        *passed.lock().unwrap() += 1;
                    } else if known_rejection(&c.name, &all) {
                        println!("  known rejection (as GitHub): {}", c.name);
                    } else {
                        let tail: Vec<&str> = all
                            .lines()
                            .rev()
                            .take(12)
                            .collect::<Vec<_>>()
                            .into_iter()
                            .rev()
                            .collect();
                        failures.lock().unwrap().push(format!(
                            "{}: {}\n      {}",
                            c.name,
                            problems.join("; "),
                            tail.join("\n      ")
                        ));
                    }
                }
            });
        }
    });
    let p = *passed.lock().unwrap();
    (p, cases.len(), failures.into_inner().unwrap())
}

fn setup() -> Option<(tempfile::TempDir, Vec<Case>)> {
    let shared = shared_dir("the act-runtime cases")?;
    let dir = shared.join("conformance/act-runtime");
    let cases = load_cases(&dir);
    let repo = git_repo_from(&dir.join("workspace"));
    Some((repo, cases))
}

#[test]
fn act_runtime_host() {
    let Some((repo, cases)) = setup() else { return };
    let (passed, total, failures) = run_cases(repo.path(), &cases, &["--host"]);
    println!("act-runtime host: {passed}/{total}");
    for f in &failures {
        println!("  FAIL {f}");
    }
    // Every case passes but the ones GitHub rejects too (KNOWN_REJECTED).
    assert!(failures.is_empty(), "act-runtime host: {passed}/{total}");
    assert_eq!(passed + KNOWN_REJECTED.len(), total, "act-runtime host");
}

#[test]
fn act_runtime_docker() {
    if !docker_available() {
        assert!(
            !docker_required(),
            "GANTRY_REQUIRE_DOCKER=1 but no Docker daemon"
        );
        eprintln!("SKIPPED: no Docker daemon; act-runtime Docker mode not run");
        return;
    }
    let image = "gantry/debian:bookworm";
    if !image_exists(image) {
        assert!(
            !docker_required(),
            "GANTRY_REQUIRE_DOCKER=1 but {image} is missing (run docker/build-images.sh)"
        );
        eprintln!(
            "SKIPPED: {image} is missing (run 'gantry image build'); act-runtime Docker mode not run"
        );
        return;
    }
    let Some((repo, cases)) = setup() else { return };
    let p = format!("ubuntu-latest={image}");
    let (passed, total, failures) = run_cases(
        repo.path(),
        &cases,
        &[
            "-P",
            &p,
            "-P",
            &format!("self-hosted={image}"),
            "--kill-after",
            "1",
        ],
    );
    println!("act-runtime docker: {passed}/{total}");
    for f in &failures {
        println!("  FAIL {f}");
    }
    assert!(failures.is_empty(), "act-runtime docker: {passed}/{total}");
    assert_eq!(passed + KNOWN_REJECTED.len(), total, "act-runtime docker");
}
