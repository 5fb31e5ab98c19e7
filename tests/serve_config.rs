//! `gantry serve --config`: every problem in `gantry-server.yml` is reported as
//! `file:line:col` with a snippet before the server starts, and no secret is printed.

use std::process::Command;

const BROKEN: &str = r#"listen: 127.0.0.1:0
colour: blue
users:
  - { login: alice, token: "${ALICE_TOKEN}", role: admin }
  - { login: bob, token: "${MISSING_TOKEN}", role: write }
  - { login: carol, token: "${CAROL_TOKEN}", role: superuser }
  - { login: dave, token: "literal-token", role: read }
repositories:
  - name: acme/shop
    url: file:///srv/git/shop.git
    forge: github
    webhook_secret: "${HOOK_SECRET}"
    environments:
      production:
        reviewers: [alice, mallory]
        required_approvals: 1
        wait_timer: soon
        branchez: [main]
  - name: acme/other
    url: ftp://nowhere
    forge: bitbucket
    webhook_secret: "${HOOK_SECRET}"
executor: { capacity: 0 }
limits: { job_timeout_minutes: 0, run_timeout_minutes: soon, cpus: 2 }
"#;

fn check(config: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gantry-server.yml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(gantry_tests::gantry_bin())
        .args(["serve", "--check", "--config"])
        .arg(&path)
        .env("ALICE_TOKEN", "alice-secret-token-1")
        .env("CAROL_TOKEN", "carol-secret-token-2")
        .env("HOOK_SECRET", "hook-secret-value-3")
        .env_remove("MISSING_TOKEN")
        .output()
        .unwrap();
    (out.status.success(), gantry_tests::text(&out))
}

#[test]
fn every_problem_is_reported_with_its_position() {
    let (ok, text) = check(BROKEN);
    assert!(!ok, "{text}");
    let expect = [
        ("2:1", "unknown key 'colour'"),
        ("5:26", "environment variable MISSING_TOKEN is not set"),
        ("6:52", "'superuser' is not a role"),
        ("7:27", "give the value as \"${NAME}\""),
        ("15:28", "reviewer 'mallory' is not a user of this server"),
        ("17:21", "'soon' is not a duration"),
        ("18:9", "unknown key 'branchez'"),
        (
            "20:10",
            "'ftp://nowhere' is not a file://, https:// or ssh clone URL",
        ),
        (
            "21:12",
            "'bitbucket' is not one of github, gitea, forgejo, gitlab",
        ),
        ("23:23", "executor.capacity: expected a whole number"),
        (
            "24:32",
            "limits.job_timeout_minutes: expected a number of minutes above 0",
        ),
        (
            "24:56",
            "limits.run_timeout_minutes: expected a number of minutes above 0",
        ),
        ("24:62", "limits: unknown key 'cpus'"),
    ];
    for (pos, msg) in expect {
        let line = text
            .lines()
            .find(|l| l.contains(msg))
            .unwrap_or_else(|| panic!("no '{msg}' in:\n{text}"));
        assert!(
            line.contains(&format!("gantry-server.yml:{pos}: error:")),
            "'{msg}' at the wrong place: {line}\n{text}"
        );
    }
    // A snippet with the offending line follows each header.
    assert!(text.contains("wait_timer: soon"), "{text}");
    assert!(text.contains("13 problem(s)"), "{text}");
    for secret in [
        "alice-secret-token-1",
        "carol-secret-token-2",
        "hook-secret-value-3",
    ] {
        assert!(!text.contains(secret), "a secret was printed:\n{text}");
    }
}

#[test]
fn the_issue_example_is_accepted() {
    let example = r#"listen: 127.0.0.1:8080
url: https://ci.example.com
data: ./gantry-data
database: postgres://ci@db/gantry
users:
  - { login: alice, token: "${ALICE_TOKEN}", role: admin }
  - { login: carol, token: "${CAROL_TOKEN}", role: write }
repositories:
  - name: acme/shop
    url: file:///srv/git/shop.git
    forge: github
    webhook_secret: "${HOOK_SECRET}"
    secrets: { APP_SECRET: "${HOOK_SECRET}" }
    vars: { REGION: eu-west-1 }
    environments:
      production:
        reviewers: [carol]
        required_approvals: 1
        prevent_self_review: true
        wait_timer: 0s
        branches: [main]
        secrets: { DEPLOY_TOKEN: "${ALICE_TOKEN}" }
labels:
  ubuntu-latest: docker://gantry/debian:bookworm
  self-hosted: host
executor: { capacity: 4 }
limits: { job_timeout_minutes: 360, run_timeout_minutes: 0.5 }
"#;
    let (ok, text) = check(example);
    assert!(ok, "{text}");
    assert!(
        text.contains("config ok (1 repositories, 2 users)"),
        "{text}"
    );
}
