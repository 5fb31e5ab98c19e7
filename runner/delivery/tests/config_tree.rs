//! `.gantry/config.yml` conversion from hand-built positioned trees (the YAML loader is
//! `gantry_workflow`'s): every key of the issue, and positioned diagnostics.

use std::time::Duration;

use gantry_delivery::config::{
    Expect, OnFailure, ProbeKind, RollbackConfig, config_from_node, fnmatch, parse_duration,
};
use gantry_workflow::{Node, Span, Spanned};

fn at(line: u32, col: u32) -> Span {
    Span {
        offset: 0,
        len: 1,
        line,
        col,
    }
}
fn s(v: &str, l: u32, c: u32) -> Spanned<Node> {
    Spanned::new(Node::String(v.into()), at(l, c))
}
fn num(v: f64, l: u32, c: u32) -> Spanned<Node> {
    Spanned::new(Node::Number(v), at(l, c))
}
fn b(v: bool, l: u32, c: u32) -> Spanned<Node> {
    Spanned::new(Node::Bool(v), at(l, c))
}
fn seq(items: Vec<Spanned<Node>>, l: u32, c: u32) -> Spanned<Node> {
    Spanned::new(Node::Seq(items), at(l, c))
}
fn map(entries: Vec<(&str, u32, u32, Spanned<Node>)>, l: u32, c: u32) -> Spanned<Node> {
    Spanned::new(
        Node::Map(
            entries
                .into_iter()
                .map(|(k, kl, kc, v)| (Spanned::new(k.to_string(), at(kl, kc)), v))
                .collect(),
        ),
        at(l, c),
    )
}

/// The issue's example config.
fn example() -> Spanned<Node> {
    map(
        vec![
            (
                "environments",
                1,
                1,
                map(
                    vec![(
                        "production",
                        2,
                        3,
                        map(
                            vec![
                                (
                                    "reviewers",
                                    3,
                                    5,
                                    seq(vec![s("alice", 3, 17), s("bob", 3, 24)], 3, 16),
                                ),
                                ("required_approvals", 4, 5, num(1.0, 4, 25)),
                                ("prevent_self_review", 5, 5, b(true, 5, 26)),
                                ("wait_timer", 6, 5, s("30s", 6, 17)),
                                (
                                    "branches",
                                    7,
                                    5,
                                    seq(vec![s("main", 7, 16), s("release/*", 7, 22)], 7, 15),
                                ),
                                ("tags", 8, 5, seq(vec![s("v*", 8, 12)], 8, 11)),
                                ("approval_timeout", 9, 5, s("24h", 9, 23)),
                                (
                                    "secrets",
                                    10,
                                    5,
                                    seq(vec![s("DEPLOY_TOKEN", 10, 15)], 10, 14),
                                ),
                                (
                                    "vars",
                                    11,
                                    5,
                                    map(
                                        vec![
                                            ("REGION", 11, 12, s("eu", 11, 20)),
                                            ("REPLICAS", 11, 24, num(3.0, 11, 34)),
                                        ],
                                        11,
                                        11,
                                    ),
                                ),
                                (
                                    "health_check",
                                    12,
                                    5,
                                    map(
                                        vec![
                                            ("initial_delay", 13, 7, s("5s", 13, 22)),
                                            ("interval", 14, 7, s("10s", 14, 17)),
                                            ("count", 15, 7, num(6.0, 15, 14)),
                                            ("deadline", 16, 7, s("5m", 16, 17)),
                                            (
                                                "probes",
                                                17,
                                                7,
                                                seq(
                                                    vec![
                                                        map(
                                                            vec![
                                                                ("name", 18, 11, s("api", 18, 17)),
                                                                (
                                                                    "http",
                                                                    19,
                                                                    11,
                                                                    map(
                                                                        vec![
                                                                            (
                                                                                "url",
                                                                                19,
                                                                                19,
                                                                                s(
                                                                                    "https://api.example.com/health",
                                                                                    19,
                                                                                    24,
                                                                                ),
                                                                            ),
                                                                            (
                                                                                "method",
                                                                                19,
                                                                                60,
                                                                                s("GET", 19, 68),
                                                                            ),
                                                                            (
                                                                                "timeout",
                                                                                19,
                                                                                73,
                                                                                s("5s", 19, 82),
                                                                            ),
                                                                            (
                                                                                "expect_status",
                                                                                20,
                                                                                19,
                                                                                seq(
                                                                                    vec![num(
                                                                                        200.0, 20,
                                                                                        35,
                                                                                    )],
                                                                                    20,
                                                                                    34,
                                                                                ),
                                                                            ),
                                                                            (
                                                                                "json_path",
                                                                                20,
                                                                                41,
                                                                                s(
                                                                                    "$.status", 20,
                                                                                    52,
                                                                                ),
                                                                            ),
                                                                            (
                                                                                "expect",
                                                                                20,
                                                                                64,
                                                                                s("ok", 20, 72),
                                                                            ),
                                                                        ],
                                                                        19,
                                                                        17,
                                                                    ),
                                                                ),
                                                                (
                                                                    "failure_limit",
                                                                    21,
                                                                    11,
                                                                    num(1.0, 21, 26),
                                                                ),
                                                                (
                                                                    "error_limit",
                                                                    22,
                                                                    11,
                                                                    num(4.0, 22, 24),
                                                                ),
                                                            ],
                                                            18,
                                                            11,
                                                        ),
                                                        map(
                                                            vec![
                                                                (
                                                                    "name",
                                                                    23,
                                                                    11,
                                                                    s("smoke", 23, 17),
                                                                ),
                                                                (
                                                                    "run",
                                                                    24,
                                                                    11,
                                                                    s(
                                                                        "./scripts/smoke_tests.sh",
                                                                        24,
                                                                        16,
                                                                    ),
                                                                ),
                                                            ],
                                                            23,
                                                            11,
                                                        ),
                                                    ],
                                                    18,
                                                    9,
                                                ),
                                            ),
                                            ("on_failure", 25, 7, s("rollback", 25, 19)),
                                        ],
                                        13,
                                        7,
                                    ),
                                ),
                                (
                                    "rollback",
                                    26,
                                    5,
                                    map(
                                        vec![("run", 27, 7, s("./scripts/rollback.sh", 27, 12))],
                                        27,
                                        7,
                                    ),
                                ),
                            ],
                            3,
                            5,
                        ),
                    )],
                    2,
                    3,
                ),
            ),
            (
                "notifications",
                28,
                1,
                map(
                    vec![(
                        "slack",
                        29,
                        3,
                        map(
                            vec![
                                (
                                    "webhook_url",
                                    30,
                                    5,
                                    s("${{ secrets.SLACK_WEBHOOK_URL }}", 30, 18),
                                ),
                                (
                                    "events",
                                    31,
                                    5,
                                    seq(
                                        vec![
                                            s("run_failed", 31, 14),
                                            s("run_succeeded", 31, 26),
                                            s("approval_requested", 31, 41),
                                            s("deployment_succeeded", 32, 14),
                                            s("deployment_failed", 32, 36),
                                            s("rolled_back", 32, 55),
                                        ],
                                        31,
                                        13,
                                    ),
                                ),
                                (
                                    "mention_on_failure",
                                    33,
                                    5,
                                    seq(vec![s("U024BE7LH", 33, 26)], 33, 25),
                                ),
                            ],
                            30,
                            5,
                        ),
                    )],
                    29,
                    3,
                ),
            ),
        ],
        1,
        1,
    )
}

#[test]
fn the_issue_example_converts() {
    let (cfg, diags) = config_from_node(&example(), ".gantry/config.yml");
    assert!(diags.is_empty(), "{diags:?}");
    let cfg = cfg.unwrap();
    let p = cfg.environment("production").unwrap();
    assert_eq!(p.reviewers, vec!["alice", "bob"]);
    assert_eq!(p.required_approvals, 1);
    assert!(p.prevent_self_review);
    assert_eq!(p.wait_timer, Some(Duration::from_secs(30)));
    assert_eq!(p.approval_timeout, Duration::from_secs(24 * 3600));
    assert_eq!(
        p.branches.as_deref(),
        Some(&["main".to_string(), "release/*".to_string()][..])
    );
    assert_eq!(p.secrets, vec!["DEPLOY_TOKEN"]);
    assert_eq!(p.vars.get("REPLICAS").map(String::as_str), Some("3"));
    let hc = p.health_check.as_ref().unwrap();
    assert_eq!(
        (hc.initial_delay, hc.interval, hc.count),
        (Duration::from_secs(5), Duration::from_secs(10), 6)
    );
    assert_eq!(hc.deadline, Some(Duration::from_secs(300)));
    assert_eq!(hc.on_failure, OnFailure::Rollback);
    assert_eq!(hc.probes.len(), 2);
    let ProbeKind::Http(h) = &hc.probes[0].kind else {
        panic!()
    };
    assert_eq!(h.expect_status, vec![200]);
    assert_eq!(h.timeout, Duration::from_secs(5));
    assert!(matches!(&h.expect, Some(Expect::Value(v)) if v == "ok"));
    assert_eq!(
        (hc.probes[0].failure_limit, hc.probes[0].error_limit),
        (1, 4)
    );
    assert!(matches!(&hc.probes[1].kind, ProbeKind::Run(r) if r == "./scripts/smoke_tests.sh"));
    assert_eq!(hc.probes[1].error_limit, 4, "default error limit");
    assert!(matches!(&p.rollback, Some(RollbackConfig::Run(r)) if r == "./scripts/rollback.sh"));
    let slack = cfg.notifications.slack.as_ref().unwrap();
    assert_eq!(slack.events.len(), 6);
    assert_eq!(slack.mention_on_failure, vec!["U024BE7LH"]);
    assert!(p.check_ref("refs/heads/release/2.1").is_ok());
    assert!(p.check_ref("refs/tags/v1.0").is_ok());
    assert!(p.check_ref("refs/heads/develop").is_err());
}

#[test]
fn unknown_keys_and_wrong_types_are_positioned() {
    let tree = map(
        vec![
            (
                "environments",
                1,
                1,
                map(
                    vec![(
                        "production",
                        2,
                        3,
                        map(
                            vec![
                                ("reviewer", 3, 5, seq(vec![s("alice", 3, 16)], 3, 15)),
                                ("required_approvals", 4, 5, s("two", 4, 25)),
                                ("wait_timer", 5, 5, s("30 parsecs", 5, 17)),
                                ("prevent_self_review", 6, 5, s("yes", 6, 26)),
                                (
                                    "health_check",
                                    7,
                                    5,
                                    map(
                                        vec![
                                            (
                                                "probes",
                                                8,
                                                7,
                                                seq(
                                                    vec![map(
                                                        vec![("name", 9, 11, s("x", 9, 17))],
                                                        9,
                                                        11,
                                                    )],
                                                    8,
                                                    15,
                                                ),
                                            ),
                                            ("on_failure", 10, 7, s("panic", 10, 19)),
                                        ],
                                        8,
                                        7,
                                    ),
                                ),
                                (
                                    "rollback",
                                    11,
                                    5,
                                    map(vec![("strategy", 11, 15, s("yesterday", 11, 25))], 11, 15),
                                ),
                            ],
                            3,
                            5,
                        ),
                    )],
                    2,
                    3,
                ),
            ),
            (
                "notifications",
                12,
                1,
                map(
                    vec![(
                        "slack",
                        13,
                        3,
                        map(
                            vec![(
                                "events",
                                14,
                                5,
                                seq(vec![s("run_exploded", 14, 14)], 14, 13),
                            )],
                            14,
                            5,
                        ),
                    )],
                    13,
                    3,
                ),
            ),
        ],
        1,
        1,
    );
    let (cfg, diags) = config_from_node(&tree, ".gantry/config.yml");
    assert!(cfg.is_none());
    let lines: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
    let has = |needle: &str| lines.iter().any(|l| l.contains(needle));
    assert!(
        has(".gantry/config.yml:3:5: error: unknown key `reviewer` in environments.production"),
        "{lines:#?}"
    );
    assert!(
        has(
            ".gantry/config.yml:4:25: error: environments.production.required_approvals: expected a non-negative integer, found \"two\""
        ),
        "{lines:#?}"
    );
    assert!(
        has(".gantry/config.yml:5:17: error: environments.production.wait_timer: invalid duration"),
        "{lines:#?}"
    );
    assert!(
        has(
            ".gantry/config.yml:6:26: error: environments.production.prevent_self_review: expected true or false"
        ),
        "{lines:#?}"
    );
    assert!(
        has(
            ".gantry/config.yml:9:11: error: environments.production.health_check.probes[0]: a probe needs `http` or `run`"
        ),
        "{lines:#?}"
    );
    assert!(
        has(
            ".gantry/config.yml:10:19: error: environments.production.health_check.on_failure: expected `rollback` or `fail`"
        ),
        "{lines:#?}"
    );
    assert!(
        has(
            ".gantry/config.yml:11:25: error: environments.production.rollback.strategy: expected `previous`"
        ),
        "{lines:#?}"
    );
    assert!(
        has(
            ".gantry/config.yml:14:14: error: notifications.slack.events: unknown event `run_exploded`"
        ),
        "{lines:#?}"
    );
    assert!(
        has("notifications.slack: needs `webhook_url` or `bot_token` + `channel`"),
        "{lines:#?}"
    );
}

#[test]
fn more_approvals_than_reviewers_is_an_error() {
    let tree = map(
        vec![(
            "environments",
            1,
            1,
            map(
                vec![(
                    "prod",
                    2,
                    3,
                    map(
                        vec![
                            ("reviewers", 3, 5, seq(vec![s("alice", 3, 17)], 3, 16)),
                            ("required_approvals", 4, 5, num(2.0, 4, 25)),
                        ],
                        3,
                        5,
                    ),
                )],
                2,
                3,
            ),
        )],
        1,
        1,
    );
    let (_, diags) = config_from_node(&tree, "c.yml");
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].span.line, 4);
    assert!(
        diags[0]
            .message
            .contains("2 approvals required but only 1 reviewers")
    );
}

#[test]
fn durations() {
    assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86400)));
    assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172800)));
    assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
    assert!(parse_duration("5 minutes").is_err());
    assert!(parse_duration("m5").is_err());
    assert!(parse_duration("").is_err());
}

#[test]
fn fnmatch_star_does_not_cross_slash() {
    assert!(fnmatch("release/*", "release/1.2"));
    assert!(!fnmatch("release/*", "release/1/hotfix"));
    assert!(fnmatch("release/*/*", "release/1/hotfix"));
    assert!(fnmatch("release/**", "release/1/hotfix"));
    assert!(fnmatch("main", "main"));
    assert!(!fnmatch("main", "main2"));
    assert!(fnmatch("v?.*", "v1.0"));
    assert!(fnmatch("refs/pull/*/merge", "refs/pull/12/merge"));
    assert!(!fnmatch("*", "a/b"));
}

/// Stands in for `gantry_workflow`'s YAML tree loader: ignores the text, returns a tree.
fn fake_parser(path: &str, text: &str) -> gantry_workflow::Loaded<Spanned<Node>> {
    let tree = if text.contains("bad") {
        map(
            vec![(
                "environments",
                1,
                1,
                map(
                    vec![(
                        "prod",
                        2,
                        3,
                        map(vec![("reviewerz", 3, 5, seq(vec![], 3, 16))], 3, 5),
                    )],
                    2,
                    3,
                ),
            )],
            1,
            1,
        )
    } else {
        example()
    };
    let _ = path;
    gantry_workflow::Loaded {
        value: Some(tree),
        diagnostics: vec![],
    }
}

#[tokio::test]
async fn from_repo_and_validate() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        gantry_delivery::from_repo(dir.path(), fake_parser)
            .await
            .unwrap()
            .is_none()
    );
    std::fs::create_dir_all(dir.path().join(".gantry")).unwrap();
    let cfg = dir.path().join(".gantry/config.yml");
    std::fs::write(&cfg, "bad").unwrap();
    let diags = gantry_delivery::validate_config_with(&cfg, fake_parser);
    assert_eq!(diags.len(), 1);
    assert!(diags[0].to_string().ends_with(".gantry/config.yml:3:5: error: unknown key `reviewerz` in environments.prod (expected one of: reviewers, required_approvals, prevent_self_review, wait_timer, branches, tags, approval_timeout, secrets, vars, health_check, rollback)"), "{}", diags[0]);
    assert!(
        gantry_delivery::from_repo(dir.path(), fake_parser)
            .await
            .is_err()
    );
    std::fs::write(&cfg, "good").unwrap();
    let d = gantry_delivery::from_repo(dir.path(), fake_parser)
        .await
        .unwrap()
        .unwrap()
        .build();
    assert!(d.config().environment("production").is_some());
    assert!(d.history().is_some());
    assert!(dir.path().join(".gantry/deployments.db").exists());
}
