//! Images by the names workflows use: a workflow whose job container and service are
//! `postgres:15` runs with `--image postgres:15=gantry/postgres:15` (or the same mapping in
//! `.gantry/config.yml` `images:`) against a real Postgres: psql in the job container
//! creates a table in the service's database and reads it back. Without the mapping, the
//! error names the mapping option; a bad `images:` entry is refused at its file:line:col.

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
