//! The seeds' CI pipeline end to end, offline, in Docker mode: `workflows/seed-ci.yml` (test
//! against a PostgreSQL service built from Debian's package, build and push an image to a
//! local registry service with the built-in docker/metadata-action and build-push-action,
//! smoke-test the pushed image as a service, notify Slack) run with `gantry run push` in a
//! throw-away git copy, with a recording HTTP server on 127.0.0.1 standing in for Slack.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use gantry_tests::*;

const IMAGES: [(&str, &str); 3] = [
    ("gantry/debian:bookworm", "debian"),
    ("gantry/registry:latest", "registry"),
    ("gantry/postgres:15", "postgres"),
];

/// Builds the images the pipeline needs when missing (docker/build-images.sh; the postgres
/// image is not part of `all`). False (skip) without a daemon unless GANTRY_REQUIRE_DOCKER=1.
fn images_ready() -> bool {
    if !docker_daemon_ready("seed CI pipeline test") {
        return false;
    }
    let missing: Vec<&str> = IMAGES
        .iter()
        .filter(|(i, _)| !image_exists(i))
        .map(|(_, t)| *t)
        .collect();
    if missing.is_empty() {
        return true;
    }
    eprintln!("building missing images: docker/build-images.sh {missing:?}");
    let t = Instant::now();
    let st = Command::new("bash")
        .arg(workspace_root().join("docker/build-images.sh"))
        .args(&missing)
        .status()
        .expect("running docker/build-images.sh");
    eprintln!("images built in {:.0?}", t.elapsed());
    if !st.success() {
        assert!(
            !docker_required(),
            "GANTRY_REQUIRE_DOCKER=1 but docker/build-images.sh {missing:?} failed"
        );
        eprintln!("SKIPPED: seed CI pipeline test: docker/build-images.sh {missing:?} failed");
        return false;
    }
    true
}

fn docker_lines(args: &[&str]) -> Vec<String> {
    let out = Command::new("docker")
        .args(args)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

/// A git repository with what the pipeline needs: the workflow and the example app.
fn pipeline_repo() -> tempfile::TempDir {
    let root = workspace_root();
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("workflows/app")).unwrap();
    std::fs::copy(
        root.join("workflows/seed-ci.yml"),
        t.path().join("workflows/seed-ci.yml"),
    )
    .unwrap();
    for f in [
        "app.py",
        "test_app.py",
        "pgwire.py",
        "test_db.py",
        "serve.py",
        "Dockerfile",
    ] {
        std::fs::copy(
            root.join("workflows/app").join(f),
            t.path().join("workflows/app").join(f),
        )
        .unwrap_or_else(|e| panic!("copying workflows/app/{f}: {e}"));
    }
    commit_all(t.path());
    t
}

fn branch_of(repo: &Path) -> String {
    let r = git2::Repository::open(repo).unwrap();
    let head = r.head().unwrap();
    head.shorthand().unwrap().to_string()
}

#[test]
fn seed_ci_pipeline_runs_offline_end_to_end() {
    if !images_ready() {
        return;
    }
    let repo = pipeline_repo();
    let branch = branch_of(repo.path());
    let slack = gantry_tests::http::Recorder::slack();
    let hook = format!(
        "http://127.0.0.1:{}/services/T0SEED/B0SEED/seed-hook-secret",
        slack.port
    );
    let t = Instant::now();
    let child = Command::new(gantry_bin())
        .args([
            "run",
            "push",
            "-W",
            "workflows/seed-ci.yml",
            "--secret",
            &format!("SLACK_WEBHOOK_URL={hook}"),
        ])
        .current_dir(repo.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("GANTRY_LOG")
        .spawn()
        .expect("running gantry");
    // Everything Gantry creates is labelled with the creating process (gantry.pid).
    let pid_label = format!("label=gantry.pid={}", child.id());
    let out = child.wait_with_output().unwrap();
    let elapsed = t.elapsed();
    let log = text(&out);
    eprintln!("seed-ci pipeline ran in {elapsed:.1?}");

    // The images pushed by this run (named after the registry's random port) are removed
    // whatever the outcome; the registry itself was a job-scoped service.
    let pushed = docker_lines(&[
        "images",
        "--format",
        "{{.Repository}}:{{.Tag}}",
        "--filter",
        "reference=127.0.0.1:*/eterna/rules-engine",
    ]);
    for p in &pushed {
        let _ = Command::new("docker")
            .args(["rmi", "-f", p])
            .stdout(Stdio::null())
            .status();
    }
    let containers = docker_lines(&["ps", "-aq", "--filter", &pid_label]);
    let networks = docker_lines(&["network", "ls", "-q", "--filter", &pid_label]);

    assert_eq!(out.status.code(), Some(0), "seed-ci failed:\n{log}");
    // test: a real round trip to the postgres service (create, insert, select, aggregate).
    assert!(
        log.contains("postgres round trip: rows=3 sum=6 db=test_db user=eterna_user server=15."),
        "no postgres query result in the log:\n{log}"
    );
    assert!(log.contains("test_errors_are_reported"), "{log}");
    // build: the metadata-action tags, pushed and listed by the registry.
    let listing = log
        .lines()
        .find(|l| l.contains("registry tags: "))
        .unwrap_or_else(|| panic!("no registry listing in the log:\n{log}"));
    assert!(
        listing.contains("\"name\":\"eterna/rules-engine\"") && listing.contains(&branch),
        "the branch tag '{branch}' is not in the registry listing: {listing}"
    );
    let sha_tag = format!("{branch}-");
    assert!(
        listing.contains(&sha_tag),
        "no type=sha,prefix={{{{branch}}}}- tag in: {listing}"
    );
    assert!(log.contains("manifest HTTP 200"), "{log}");
    // smoke: the pushed image ran as a service and answered with its version.
    assert!(
        log.contains(&format!("\"version\": \"{branch}\"")),
        "smoke health answer missing:\n{log}"
    );
    assert!(log.contains("smoke ok: 127.0.0.1:"), "{log}");
    // Slack: one webhook call with the status and the image, the URL never printed.
    let calls = slack.requests();
    assert_eq!(calls.len(), 1, "Slack calls: {calls:?}");
    assert_eq!(calls[0].path, "/services/T0SEED/B0SEED/seed-hook-secret");
    let payload = calls[0].body.clone();
    let payload_text = payload.to_string();
    assert!(
        payload_text.contains("seed-ci success: 127.0.0.1:")
            && payload_text.contains("/eterna/rules-engine:"),
        "Slack payload: {payload_text}"
    );
    assert!(
        !log.contains("seed-hook-secret"),
        "the webhook secret leaked:\n{log}"
    );
    // Nothing left running: services, job containers and networks are gone.
    assert!(
        containers.is_empty() && networks.is_empty(),
        "left behind: containers {containers:?}, networks {networks:?}"
    );
    assert!(!pushed.is_empty(), "no image tagged for the local registry");
}
