//! What the gate trusts: environment names and reviewer logins in any case, request files
//! edited by hand (a forged "approved", extra reviewers, a reviewer counted twice),
//! requests left by a run that died while it waited, and which secrets the gate withholds
//! from jobs.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::request;
use gantry_delivery::approval::{
    ApprovalState, ApprovalStore, DecideError, Decision, PendingApproval, Waiter, verdict,
};
use gantry_delivery::config::{DeliveryConfig, EnvironmentConfig};
use gantry_delivery::{Delivery, parse_config_with};
use gantry_engine::gate::DeliveryGates;
use indexmap::IndexMap;
use tokio_util::sync::CancellationToken;

fn production() -> EnvironmentConfig {
    let mut env = EnvironmentConfig::new("production");
    env.reviewers = vec!["Alice".into(), "bob".into(), "carol".into()];
    env.required_approvals = 2;
    env.prevent_self_review = true;
    env.branches = Some(vec!["main".into()]);
    env.secrets = vec!["DEPLOY_TOKEN".into()];
    env
}

fn delivery(dir: &std::path::Path) -> Arc<Delivery> {
    let mut config = DeliveryConfig::default();
    config
        .environments
        .insert("production".into(), production());
    let mut secrets = IndexMap::new();
    secrets.insert("deploy_token".to_string(), "tok-s3cr3t".to_string());
    secrets.insert("REPO_TOKEN".to_string(), "repo-tok".to_string());
    Arc::new(
        Delivery::builder(dir, config)
            .secrets(secrets)
            .poll_interval(Duration::from_millis(20))
            .build(),
    )
}

async fn wait_pending(store: &ApprovalStore, run: &str) -> PendingApproval {
    for _ in 0..300 {
        if let Some(p) = store.pending().into_iter().find(|p| p.run_id == run) {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no pending approval for {run}");
}

fn decision(by: &str, approved: bool) -> Decision {
    Decision {
        by: by.into(),
        approved,
        comment: None,
        at: chrono::Utc::now(),
    }
}

#[tokio::test]
async fn another_case_of_the_environment_gets_its_rules_and_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let d = delivery(dir.path());
    // Branch rules apply to `PRODUCTION` too.
    let err = d
        .admit(
            &request("r1", "PRODUCTION", "refs/heads/feature", "dave"),
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert!(
        err.reason
            .contains("may not deploy to environment `production`"),
        "{err}"
    );

    let d2 = d.clone();
    let h = tokio::spawn(async move {
        d2.admit(
            &request("r2", "Production", "refs/heads/main", "dave"),
            CancellationToken::new(),
        )
        .await
    });
    let p = wait_pending(d.approvals(), "r2").await;
    assert_eq!(p.environment, "production");
    assert_eq!(p.reviewers, production().reviewers);
    // Decisions find the request under any spelling of the environment.
    d.approvals()
        .decide("r2", "PRODUCTION", "ALICE", true, None)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!h.is_finished(), "one of two approvals admitted");
    let now = d
        .approvals()
        .decide("r2", "production", "Bob", true, None)
        .unwrap();
    // Recorded under the configured spelling.
    let who: Vec<&str> = now.decisions.iter().map(|d| d.by.as_str()).collect();
    assert_eq!(who, ["Alice", "bob"]);
    let adm = tokio::time::timeout(Duration::from_secs(5), h)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // The secret was given as `deploy_token`: names compare case-insensitively.
    assert_eq!(
        adm.secrets.get("DEPLOY_TOKEN").map(String::as_str),
        Some("tok-s3cr3t")
    );
    assert!(!adm.secrets.contains_key("REPO_TOKEN"));
}

#[test]
fn reviewer_logins_compare_case_insensitively() {
    let dir = tempfile::tempdir().unwrap();
    let store = ApprovalStore::for_repo(dir.path());
    let env = production();
    store
        .create(&PendingApproval {
            run_id: "9".into(),
            environment: "production".into(),
            job: "deploy".into(),
            workflow: "ship".into(),
            actor: "alice".into(),
            git_ref: "refs/heads/main".into(),
            sha: "abc".into(),
            reviewers: env.reviewers.clone(),
            required_approvals: 2,
            prevent_self_review: true,
            since: chrono::Utc::now(),
            state: ApprovalState::Pending,
            decisions: vec![],
            waiter: Some(Waiter::current()),
        })
        .unwrap();
    // The actor `alice` is the reviewer `Alice`.
    let e = store
        .decide("9", "production", "ALICE", true, None)
        .unwrap_err();
    assert!(matches!(e, DecideError::SelfReview { .. }), "{e}");
    store.decide("9", "production", "bob", true, None).unwrap();
    let e = store
        .decide("9", "production", "BOB", true, None)
        .unwrap_err();
    assert!(matches!(e, DecideError::AlreadyDecided { .. }), "{e}");
    let now = store.get("9", "production").unwrap();
    assert_eq!(now.state, ApprovalState::Pending);
    assert_eq!(now.approvals(), 1);
}

#[test]
fn the_verdict_counts_only_what_the_current_rules_allow() {
    let env = production();
    let mut req = PendingApproval {
        run_id: "1".into(),
        environment: "production".into(),
        job: "deploy".into(),
        workflow: "ship".into(),
        actor: "mallory".into(),
        git_ref: "refs/heads/main".into(),
        sha: "abc".into(),
        // What a forger writes: themselves as the reviewer, one approval, approved.
        reviewers: vec!["mallory".into()],
        required_approvals: 1,
        prevent_self_review: false,
        since: chrono::Utc::now(),
        state: ApprovalState::Approved,
        decisions: vec![
            decision("mallory", true),
            decision("bob", true),
            decision("BOB", true),
            decision("alice", true),
        ],
        waiter: None,
    };
    // The real actor is alice: her approval is a self-review and does not count.
    let v = verdict(&req, &env, "alice");
    assert_eq!(v.state, ApprovalState::Pending);
    assert_eq!(v.approvals(), 1);
    assert!(v.ignored_reason(0).unwrap().contains("not a reviewer"));
    assert!(v.ignored_reason(1).is_none());
    assert!(v.ignored_reason(2).unwrap().contains("already decided"));
    assert!(v.ignored_reason(3).unwrap().contains("may not review"));

    // A non-reviewer's rejection does not reject; a reviewer's does.
    req.decisions = vec![decision("mallory", false), decision("carol", true)];
    assert_eq!(verdict(&req, &env, "dave").state, ApprovalState::Pending);
    req.decisions.push(decision("Bob", false));
    let v = verdict(&req, &env, "dave");
    assert_eq!(v.state, ApprovalState::Rejected);
    assert_eq!(v.rejection().unwrap().by, "bob");

    req.decisions = vec![decision("carol", true), decision("alice", true)];
    assert_eq!(verdict(&req, &env, "dave").state, ApprovalState::Approved);
}

#[tokio::test]
async fn a_forged_approved_file_does_not_admit_and_real_reviewers_still_can() {
    let dir = tempfile::tempdir().unwrap();
    let d = delivery(dir.path());
    let d2 = d.clone();
    let h = tokio::spawn(async move {
        d2.admit(
            &request("r5", "production", "refs/heads/main", "dave"),
            CancellationToken::new(),
        )
        .await
    });
    wait_pending(d.approvals(), "r5").await;
    d.approvals()
        .update("r5", "production", |f| {
            f.state = ApprovalState::Approved;
            f.reviewers = vec!["mallory".into()];
            f.required_approvals = 1;
            f.decisions = vec![decision("mallory", true), decision("carol", true)];
            true
        })
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!h.is_finished(), "a forged file admitted the job");
    // The gate put its rules and the pending state back.
    let file = d.approvals().get("r5", "production").unwrap();
    assert_eq!(file.state, ApprovalState::Pending);
    assert_eq!(file.reviewers, production().reviewers);
    assert_eq!(file.required_approvals, 2);
    // So a real reviewer's decision is accepted and, with carol's, admits.
    d.approvals()
        .decide("r5", "production", "bob", true, None)
        .unwrap();
    let adm = tokio::time::timeout(Duration::from_secs(5), h)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(adm.secrets.contains_key("DEPLOY_TOKEN"));
}

fn dead_waiter() -> Waiter {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let mut w = Waiter::current();
    w.pid = child.id();
    child.wait().unwrap();
    w
}

#[test]
fn decisions_on_a_dead_run_are_refused_and_the_request_abandoned() {
    let dir = tempfile::tempdir().unwrap();
    let store = ApprovalStore::for_repo(dir.path());
    let mk = |run: &str| PendingApproval {
        run_id: run.into(),
        environment: "production".into(),
        job: "deploy".into(),
        workflow: "ship".into(),
        actor: "dave".into(),
        git_ref: "refs/heads/main".into(),
        sha: "abc".into(),
        reviewers: vec!["bob".into()],
        required_approvals: 1,
        prevent_self_review: false,
        since: chrono::Utc::now(),
        state: ApprovalState::Pending,
        decisions: vec![],
        waiter: Some(dead_waiter()),
    };
    store.create(&mk("3")).unwrap();
    let e = store
        .decide("3", "production", "bob", true, None)
        .unwrap_err();
    assert!(matches!(e, DecideError::Abandoned { .. }), "{e}");
    assert!(e.to_string().contains("run 3 no longer waits"), "{e}");
    let now = store.get("3", "production").unwrap();
    assert_eq!(now.state, ApprovalState::Abandoned);
    assert!(now.decisions.is_empty());

    // A sweep marks dead runs' requests and leaves live ones pending.
    store.create(&mk("4")).unwrap();
    let mut live = mk("5");
    live.waiter = Some(Waiter::current());
    store.create(&live).unwrap();
    let swept: Vec<String> = store
        .sweep_abandoned()
        .into_iter()
        .map(|p| p.run_id)
        .collect();
    assert_eq!(swept, ["4"]);
    let pending: Vec<String> = store.pending().into_iter().map(|p| p.run_id).collect();
    assert_eq!(pending, ["5"]);
}

#[test]
fn environment_secrets_are_withheld_and_names_are_unique_in_any_case() {
    let dir = tempfile::tempdir().unwrap();
    let d = delivery(dir.path());
    assert!(d.withholds_secret("DEPLOY_TOKEN"));
    assert!(d.withholds_secret("deploy_token"));
    assert!(!d.withholds_secret("REPO_TOKEN"));

    let text = "environments:\n  production:\n    reviewers: [bob]\n  Production:\n    reviewers: [mallory]\n";
    let (cfg, diags) = parse_config_with(".gantry/config.yml", text, gantry_workflow::parse_tree);
    assert!(cfg.is_none());
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!((diags[0].span.line, diags[0].span.col), (4, 3));
    assert!(
        diags[0]
            .message
            .contains("the same environment as `production`"),
        "{}",
        diags[0]
    );
}
