//! Preflight (`gantry run --dry-run`, `gantry validate --preflight`): the missing pieces a
//! run would stop at are listed before anything runs, each with its job, step, what is
//! missing and what to do; the seeds' workflows (their YAML unchanged) show no false
//! errors and only the findings that come from the external services they name.

use std::collections::BTreeSet;
use std::path::Path;

use gantry_tests::*;

/// `(kind, job, subject)` of every `preflight:` line (JSON lines with `--json`).
fn findings(out: &std::process::Output) -> BTreeSet<(String, String, String)> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            let f = v.get("preflight")?;
            Some((
                f["kind"].as_str()?.to_string(),
                f["job"].as_str()?.to_string(),
                f["subject"].as_str()?.to_string(),
            ))
        })
        .collect()
}

const MISSING: &str = r#"on: push
jobs:
  build:
    runs-on: ubuntu-latest
    container: gantry/no-such-image:0
    steps:
      - uses: actions/checkout@v4
      - name: report
        uses: nobody-here/no-such-action@v1
      - run: echo "${{ secrets.API_KEY }}"
        env:
          T: ${{ secrets.GIVEN }}
"#;

#[test]
fn a_missing_image_action_and_secret_are_all_listed() {
    let repo = git_repo_with(&[(".github/workflows/ci.yml", MISSING)]);
    let cache = tempfile::tempdir().unwrap();
    let cache_arg = cache.path().display().to_string();
    let args = [
        "run",
        "--dry-run",
        "--json",
        "--offline",
        "--action-cache",
        &cache_arg,
        "-s",
        "GIVEN=x",
    ];
    let out = gantry(repo.path(), &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let want: BTreeSet<(String, String, String)> = [
        ("image", "build", "gantry/no-such-image:0"),
        ("action", "build", "nobody-here/no-such-action@v1"),
        ("secret", "build", "API_KEY"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(findings(&out), want, "{}", text(&out));
    assert!(!repo.path().join(".gantry/runs").exists(), "a dry run ran");

    // The human form names the step and what to do; `--image` maps the name.
    let out = gantry(
        repo.path(),
        &[
            "validate",
            "--preflight",
            "--offline",
            "-s",
            "GIVEN=x",
            ".github/workflows",
        ],
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("step #2 report: action nobody-here/no-such-action@v1"),
        "{all}"
    );
    assert!(
        all.contains("--image gantry/no-such-image:0=LOCAL"),
        "{all}"
    );
    assert!(all.contains("pass -s API_KEY=VALUE"), "{all}");
    assert!(all.contains("preflight: 3 missing pieces"), "{all}");
    if docker_ready(&["gantry/busybox"]) {
        let out = gantry(
            repo.path(),
            &[
                "validate",
                "--preflight",
                "--offline",
                "-s",
                "GIVEN=x",
                "-s",
                "API_KEY=y",
                "--image",
                "gantry/no-such-image:0=gantry/busybox",
                ".github/workflows",
            ],
        );
        let all = text(&out);
        assert!(all.contains("preflight: 1 missing piece"), "{all}");
        assert!(!all.contains("no-such-image"), "{all}");
    }
}

/// The workflows embedded in the seeds (```yaml blocks with `jobs:` and `runs-on:`).
fn seed_workflows(seeds: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(seeds)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        let stem = f.file_stem().unwrap().to_string_lossy().into_owned();
        let mut rest = text.as_str();
        let mut n = 0;
        while let Some(start) = rest.find("```yaml\n").or_else(|| rest.find("```yml\n")) {
            let body_start = start + rest[start..].find('\n').unwrap() + 1;
            let Some(len) = rest[body_start..].find("```") else {
                break;
            };
            let body = &rest[body_start..body_start + len];
            if body.contains("jobs:") && body.contains("runs-on") {
                out.push((format!("{stem}-{n}.yml"), body.to_string()));
                n += 1;
            }
            rest = &rest[body_start + len + 3..];
        }
    }
    out
}

#[test]
fn the_seeds_workflows_validate_and_dry_run_with_only_external_findings() {
    let Some(seeds) = shared_dir("seed workflows preflight") else {
        return;
    };
    let wfs = seed_workflows(&seeds.join("seeds"));
    assert!(!wfs.is_empty(), "no workflow found in the seeds");
    let files: Vec<(String, String)> = wfs
        .iter()
        .map(|(n, t)| (format!(".github/workflows/{n}"), t.clone()))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let repo = git_repo_with(&refs);
    // The seeds deploy from `main`: on any other branch their `push` triggers match
    // nothing, and a dry run that plans no job finds nothing.
    let head = git2::Repository::open(repo.path()).unwrap();
    let commit = head.head().unwrap().peel_to_commit().unwrap();
    head.branch("main", &commit, true).unwrap();
    head.set_head("refs/heads/main").unwrap();
    let out = gantry(repo.path(), &["validate"]);
    assert_eq!(out.status.code(), Some(0), "false errors: {}", text(&out));

    let cache = tempfile::tempdir().unwrap();
    let cache_arg = cache.path().display().to_string();
    let out = gantry(
        repo.path(),
        &[
            "run",
            "--dry-run",
            "--json",
            "--offline",
            "--action-cache",
            &cache_arg,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let planned = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("  job "))
        .count();
    assert_eq!(planned, 8, "the seeds' jobs are planned: {}", text(&out));
    let got = findings(&out);
    // Every finding comes from a service outside this machine, each with its reason.
    let expected: &[(&str, &str, &str, &str)] = EXPECTED;
    let want: BTreeSet<(String, String, String)> = expected
        .iter()
        .map(|(k, j, s, _why)| (k.to_string(), j.to_string(), s.to_string()))
        .collect();
    assert_eq!(got, want, "{}", text(&out));
}

/// `(kind, job, subject, why it is expected)`: what the seeds' workflows need from
/// services outside this machine (actions on GitHub not in the offline cache, images on
/// Docker Hub, the services' credentials). Built-in actions (checkout, setup-python,
/// docker/*, 8398a7/action-slack) are not findings.
const EXPECTED: &[(&str, &str, &str, &str)] = &[
    (
        "image",
        "test",
        "postgres:15",
        "Docker Hub image; mapped with --image in CI",
    ),
    (
        "action",
        "test",
        "codecov/codecov-action@v3",
        "GitHub action, offline",
    ),
    (
        "action",
        "test",
        "SonarSource/sonarcloud-github-action@master",
        "GitHub action, offline",
    ),
    (
        "action",
        "build",
        "google-github-actions/setup-gcloud@v0",
        "GitHub action, offline",
    ),
    (
        "action",
        "deploy",
        "imranismail/setup-kustomize@v1",
        "GitHub action, offline",
    ),
    ("secret", "(workflow env)", "RENDER_API_KEY", "Render's API"),
    (
        "secret",
        "(workflow env)",
        "RENDER_BACKEND_SERVICE_ID",
        "Render's API",
    ),
    (
        "secret",
        "deploy",
        "PRODUCTION_TOKEN",
        "the deployed service's token",
    ),
    ("secret", "deploy", "SLACK_WEBHOOK", "Slack"),
    ("secret", "test", "SONAR_TOKEN", "SonarCloud"),
    ("secret", "build", "GCP_PROJECT_ID", "Google Cloud"),
    ("secret", "build", "GCP_SA_KEY", "Google Cloud"),
];
