//! The CLI entry points of `runner/cli/src/cmd_delivery.rs`, compiled here so they are
//! checked before the lead wires them into `main.rs`.

#[path = "../../cli/src/cmd_delivery.rs"]
#[allow(dead_code)]
mod cmd_delivery;

use std::path::PathBuf;

use cmd_delivery::{ApprovalsArgs, DecideArgs, DeploymentsArgs};
use gantry_delivery::approval::{ApprovalState, ApprovalStore, PendingApproval};

fn pending(dir: &std::path::Path) -> ApprovalStore {
    let store = ApprovalStore::for_repo(dir);
    store
        .create(&PendingApproval {
            run_id: "41".into(),
            environment: "production".into(),
            job: "deploy".into(),
            workflow: "deploy".into(),
            actor: "alice".into(),
            git_ref: "refs/heads/main".into(),
            sha: "abcdef0123".into(),
            reviewers: vec!["alice".into(), "bob".into()],
            required_approvals: 1,
            prevent_self_review: true,
            since: chrono::Utc::now(),
            state: ApprovalState::Pending,
            decisions: vec![],
            waiter: None,
        })
        .unwrap();
    store
}

fn decide(dir: &std::path::Path, name: &str) -> DecideArgs {
    DecideArgs {
        run: "41".into(),
        environment: "production".into(),
        name: name.into(),
        comment: Some("looks good".into()),
        repo: PathBuf::from(dir),
    }
}

#[tokio::test]
async fn approve_refuses_self_review_then_accepts_a_reviewer() {
    let dir = tempfile::tempdir().unwrap();
    let store = pending(dir.path());
    let code = cmd_delivery::approvals(ApprovalsArgs {
        repo: dir.path().into(),
        json: false,
    })
    .await
    .unwrap();
    assert_eq!(code, 0);
    assert_eq!(
        cmd_delivery::approve(decide(dir.path(), "alice"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.get("41", "production").unwrap().state,
        ApprovalState::Pending
    );
    assert_eq!(
        cmd_delivery::approve(decide(dir.path(), "bob"))
            .await
            .unwrap(),
        0
    );
    let p = store.get("41", "production").unwrap();
    assert_eq!(p.state, ApprovalState::Approved);
    assert_eq!(p.decisions[0].comment.as_deref(), Some("looks good"));
    // Unknown request: exit code 2.
    let mut other = decide(dir.path(), "bob");
    other.run = "999".into();
    assert_eq!(cmd_delivery::reject(other).await.unwrap(), 2);
}

#[tokio::test]
async fn reject_and_empty_history() {
    let dir = tempfile::tempdir().unwrap();
    let store = pending(dir.path());
    assert_eq!(
        cmd_delivery::reject(decide(dir.path(), "bob"))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store.get("41", "production").unwrap().state,
        ApprovalState::Rejected
    );
    let code = cmd_delivery::deployments(DeploymentsArgs {
        environment: None,
        limit: 10,
        json: false,
        repo: dir.path().into(),
    })
    .await
    .unwrap();
    assert_eq!(code, 0);
}

#[tokio::test]
async fn approve_decides_by_the_config_not_by_the_request_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".gantry")).unwrap();
    std::fs::write(
        dir.path().join(".gantry/config.yml"),
        "environments:\n  production:\n    reviewers: [bob]\n",
    )
    .unwrap();
    // The request file (from `pending`) lists alice and bob; the config only bob.
    let store = pending(dir.path());
    store
        .update("41", "production", |f| {
            f.reviewers.push("mallory".into());
            f.actor = "dave".into();
            true
        })
        .unwrap();
    let refused = cmd_delivery::approve(decide(dir.path(), "mallory"))
        .await
        .unwrap();
    assert_eq!(refused, 1, "a reviewer only the file names was accepted");
    let p = store.get("41", "production").unwrap();
    assert_eq!(p.reviewers, ["bob"]);
    assert!(p.decisions.is_empty());
    // In another case, a configured reviewer is accepted.
    let ok = cmd_delivery::approve(decide(dir.path(), "BOB"))
        .await
        .unwrap();
    assert_eq!(ok, 0);
    assert_eq!(
        store.get("41", "production").unwrap().state,
        ApprovalState::Approved
    );
}
