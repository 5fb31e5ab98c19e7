//! Images by the names workflows use: a workflow whose job container and service are
//! `postgres:15` runs with `--image postgres:15=gantry/postgres:15` (or the same mapping in
//! `.gantry/config.yml` `images:`) against a real Postgres: psql in the job container
//! creates a table in the service's database and reads it back. Without the mapping, the
//! error names the mapping option wherever the image is missing (and `-P` for a label's
//! image); a bad `images:` entry is refused at its file:line:col.

use gantry_tests::*;

const WORKFLOW: &str = r#"on: push
jobs:
  db:
    runs-on: ubuntu-latest
    container: postgres:15
    services:
      pg:
        image: postgres:15
        env:
          POSTGRES_PASSWORD: pw
          POSTGRES_USER: ci
          POSTGRES_DB: app
        options: >-
          --health-cmd "pg_isready -U ci -d app"
          --health-interval 1s
          --health-retries 60
    steps:
      - run: |
          export PGPASSWORD=pw
          psql -h pg -U ci -d app -v ON_ERROR_STOP=1 -c "create table t (v text); insert into t values ('from-gantry');"
          echo "ROW=$(psql -h pg -U ci -d app -tA -c 'select v from t')"
"#;

#[test]
fn postgres_15_service_runs_from_the_mapped_local_image() {
    if !docker_ready(&["gantry/postgres:15"]) {
        return;
    }
    let repo = git_repo_with(&[(".github/workflows/ci.yml", WORKFLOW)]);
    let out = gantry(
        repo.path(),
        &["run", "--image", "postgres:15=gantry/postgres:15"],
    );
    let t = text(&out);
    assert!(out.status.success(), "run failed:\n{t}");
    assert!(
        t.contains("ROW=from-gantry"),
        "no row read back from Postgres:\n{t}"
    );
}

#[test]
fn images_key_in_the_config_file_maps_too() {
    if !docker_ready(&["gantry/postgres:15"]) {
        return;
    }
    let repo = git_repo_with(&[
        (".github/workflows/ci.yml", WORKFLOW),
        (
            ".gantry/config.yml",
            "images:\n  postgres:15: gantry/postgres:15\n",
        ),
    ]);
    let out = gantry(repo.path(), &["run"]);
    let t = text(&out);
    assert!(out.status.success(), "run failed:\n{t}");
    assert!(t.contains("ROW=from-gantry"), "{t}");
}

#[test]
fn unmapped_image_error_names_the_mapping_option() {
    if !docker_daemon_ready("unmapped image error") {
        return;
    }
    let wf = "on: push\njobs:\n  db:\n    runs-on: ubuntu-latest\n    container: gantry-test/no-such-image:15\n    steps:\n      - run: echo RAN\n";
    let repo = git_repo_with(&[(".github/workflows/ci.yml", wf)]);
    let out = gantry(repo.path(), &["run"]);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("gantry-test/no-such-image:15"), "{t}");
    assert!(
        t.contains("--image gantry-test/no-such-image:15=LOCAL"),
        "the error does not name --image:\n{t}"
    );
    assert!(t.contains("images:"), "{t}");
}

/// Jobs whose images are missing in each place a job names one: a service, the image a
/// `-P` label maps to, a `docker://` step and a container action.
const EVERY_PATH: &str = r#"on: push
jobs:
  svc:
    runs-on: ubuntu-latest
    services:
      db:
        image: gantry/no-such-svc:1
    steps:
      - run: echo RAN
  plat:
    runs-on: self-hosted
    steps:
      - run: echo RAN
  step:
    runs-on: ubuntu-latest
    steps:
      - uses: docker://gantry-test/no-such-step:2
  act:
    runs-on: ubuntu-latest
    steps:
      - uses: ./.github/actions/dact
"#;

const DOCKER_ACTION: &str =
    "name: dact\nruns:\n  using: docker\n  image: docker://gantry/no-such-act:3\n";

/// Wherever an image is missing, the error (and preflight's finding) names `--image` for
/// that name, and `-P` where a label chose the image; Gantry's own names (`gantry/…`)
/// too, not only `gantry image build`.
#[test]
fn every_missing_image_names_the_option_that_chooses_one() {
    if !docker_daemon_ready("missing image hints") {
        return;
    }
    let repo = git_repo_with(&[
        (".github/workflows/ci.yml", EVERY_PATH),
        (".github/actions/dact/action.yml", DOCKER_ACTION),
    ]);
    let plat = ["-P", "self-hosted=gantry-test/no-such-plat:4"];
    let out = gantry(repo.path(), &["run", plat[0], plat[1]]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(!t.contains("RAN"), "{t}");
    for (job, image) in [
        ("svc", "gantry/no-such-svc:1"),
        ("plat", "gantry-test/no-such-plat:4"),
        ("step", "gantry-test/no-such-step:2"),
        ("act", "gantry/no-such-act:3"),
    ] {
        let prefix = format!("[{job}]");
        let error = t
            .lines()
            .find(|l| l.starts_with(&prefix) && l.contains("is not available locally"))
            .unwrap_or_else(|| panic!("no missing-image error for {job}:\n{t}"));
        assert!(error.contains(image), "{error}");
        assert!(
            error.contains(&format!("--image {image}=LOCAL")),
            "{job}: the error does not name --image:\n{error}"
        );
        if job == "plat" {
            assert!(error.contains("-P LABEL=IMAGE"), "{error}");
        }
    }

    // Preflight gives the same advice before anything runs.
    let out = gantry(
        repo.path(),
        &[
            "validate",
            "--preflight",
            plat[0],
            plat[1],
            ".github/workflows",
        ],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let finding = |image: &str| {
        t.lines()
            .find(|l| l.contains(&format!("image {image}:")))
            .unwrap_or_else(|| panic!("no finding for {image}:\n{t}"))
            .to_string()
    };
    let svc = finding("gantry/no-such-svc:1");
    assert!(svc.contains("--image gantry/no-such-svc:1=LOCAL"), "{svc}");
    let label = finding("gantry-test/no-such-plat:4");
    assert!(
        label.contains("--image gantry-test/no-such-plat:4=LOCAL"),
        "{label}"
    );
    assert!(label.contains("-P LABEL=IMAGE"), "{label}");
}

#[test]
fn bad_images_entry_is_refused_where_it_is() {
    let repo = git_repo_with(&[
        (
            ".github/workflows/ci.yml",
            "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo\n",
        ),
        (
            ".gantry/config.yml",
            "images:\n  postgres:15: [gantry/postgres:15]\n",
        ),
    ]);
    let out = gantry(repo.path(), &["run"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("config.yml:2:"), "no file:line:col:\n{t}");
    assert!(t.contains("images.postgres:15: expected a string"), "{t}");
}
