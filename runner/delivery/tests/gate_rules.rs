//! Every gate rule: branch/tag policy, N of M approvals, self-review, rejection, timeout,
//! wait timer, cancellation, secrets released only after approval, concurrent deciders.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::request;
use gantry_delivery::Delivery;
use gantry_delivery::approval::{
    ApprovalPrompt, ApprovalState, ApprovalStore, DecideError, PendingApproval, PromptAnswer,
};
use gantry_delivery::config::{DeliveryConfig, EnvironmentConfig};
use gantry_engine::events::{EventBus, RunEvent};
use gantry_engine::gate::{DeliveryGates, RefusalKind};
use indexmap::IndexMap;
use tokio_util::sync::CancellationToken;

fn production() -> EnvironmentConfig {
    let mut env = EnvironmentConfig::new("production");
    env.reviewers = vec!["alice".into(), "bob".into(), "carol".into()];
    env.required_approvals = 1;
    env.prevent_self_review = true;
    env.branches = Some(vec!["main".into(), "release/*".into()]);
    env.tags = Some(vec!["v*".into()]);
    env.secrets = vec!["DEPLOY_TOKEN".into()];
    env.vars.insert("REGION".into(), "eu-west-1".into());
    env
}

fn delivery(
    dir: &std::path::Path,
    env: EnvironmentConfig,
) -> (Arc<Delivery>, gantry_engine::events::Subscription) {
    let mut config = DeliveryConfig::default();
    config.environments.insert(env.name.clone(), env);
    let bus = EventBus::new();
    let rx = bus.subscribe();
    let mut secrets = IndexMap::new();
    secrets.insert("DEPLOY_TOKEN".to_string(), "tok-s3cr3t-value".to_string());
    let d = Delivery::builder(dir, config)
        .secrets(secrets)
        .run_events(bus)
        .poll_interval(Duration::from_millis(20))
        .build();
    (Arc::new(d), rx)
}

async fn wait_pending(store: &ApprovalStore, run: &str) -> PendingApproval {
    for _ in 0..200 {
        if let Some(p) = store.pending().into_iter().find(|p| p.run_id == run) {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no pending approval for {run}");
}

#[tokio::test]
async fn branch_policy_is_checked_first() {
    let dir = tempfile::tempdir().unwrap();
    let (d, _rx) = delivery(dir.path(), production());
    let err = d
        .admit(
            &request("r1", "production", "refs/heads/feature/x", "dave"),
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, RefusalKind::Blocked);
    assert!(
        err.reason.contains("branch `feature/x` may not deploy"),
        "{err}"
    );
    assert!(err.reason.contains("main, release/*"), "{err}");
    // Refused before any approval was requested.
    assert!(d.approvals().pending().is_empty());

    // `*` does not cross `/`.
    let err = d
        .admit(
            &request("r2", "production", "refs/heads/release/1/hotfix", "dave"),
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert!(err.reason.contains("release/1/hotfix"), "{err}");
    // A tag outside `tags:`.
    let err = d
        .admit(
            &request("r3", "production", "refs/tags/nightly", "dave"),
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert!(err.reason.contains("tag `nightly`"), "{err}");

    // An allowed branch reaches the approval stage.
    let d2 = d.clone();
    let h = tokio::spawn(async move {
        d2.admit(
            &request("r4", "production", "refs/heads/release/1", "dave"),
            CancellationToken::new(),
        )
        .await
    });
    let p = wait_pending(d.approvals(), "r4").await;
    assert_eq!(p.environment, "production");
    d.approvals()
        .decide("r4", "production", "bob", true, None)
        .unwrap();
    assert!(h.await.unwrap().is_ok());
}

#[tokio::test]
async fn n_of_m_approvals_then_secrets_are_released() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = production();
    env.required_approvals = 2;
    let (d, mut rx) = delivery(dir.path(), env);
    let d2 = d.clone();
    let h = tokio::spawn(async move {
        d2.admit(
            &request("run-7", "production", "refs/heads/main", "dave"),
            CancellationToken::new(),
        )
        .await
    });
    let p = wait_pending(d.approvals(), "run-7").await;
    assert_eq!(p.required_approvals, 2);
    assert_eq!(
        p.approve_command(),
        "gantry approve run-7 production --as NAME"
    );

    let after_one = d
        .approvals()
        .decide("run-7", "production", "alice", true, Some("lgtm".into()))
        .unwrap();
    assert_eq!(after_one.state, ApprovalState::Pending);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!h.is_finished(), "one of two approvals must not admit");

    // Not a reviewer: refused, does not count.
    let e = d
        .approvals()
        .decide("run-7", "production", "mallory", true, None)
        .unwrap_err();
    assert!(matches!(e, DecideError::NotAReviewer { .. }), "{e}");
    // The same reviewer twice does not count twice.
    let e = d
        .approvals()
        .decide("run-7", "production", "alice", true, None)
        .unwrap_err();
    assert!(matches!(e, DecideError::AlreadyDecided { .. }), "{e}");

    let done = d
        .approvals()
        .decide("run-7", "production", "carol", true, None)
        .unwrap();
    assert_eq!(done.state, ApprovalState::Approved);
    let admission = tokio::time::timeout(Duration::from_secs(5), h)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        admission.secrets.get("DEPLOY_TOKEN").map(String::as_str),
        Some("tok-s3cr3t-value")
    );
    assert_eq!(
        admission.vars.get("REGION").map(String::as_str),
        Some("eu-west-1")
    );
    // The request file is gone once decided.
    assert!(d.approvals().pending().is_empty());

    let mut names = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        if let RunEvent::ApprovalPending { command, .. } = &*ev {
            assert!(command.contains("gantry approve run-7 production"));
        }
        names.push(ev.type_name());
    }
    assert_eq!(
        names.first().map(String::as_str),
        Some("approval_pending"),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n == "gate_admitted"), "{names:?}");
    assert_eq!(
        names.iter().filter(|n| **n == "approval_decided").count(),
        2,
        "{names:?}"
    );
}

#[tokio::test]
async fn self_review_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (d, _rx) = delivery(dir.path(), production());
    let d2 = d.clone();
    let h = tokio::spawn(async move {
        d2.admit(
            &request("run-s", "production", "refs/heads/main", "alice"),
            CancellationToken::new(),
        )
        .await
    });
    wait_pending(d.approvals(), "run-s").await;
    let e = d
        .approvals()
        .decide("run-s", "production", "alice", true, None)
        .unwrap_err();
    assert_eq!(
        e,
        DecideError::SelfReview {
            name: "alice".into()
        }
    );
    assert!(e.to_string().contains("prevent_self_review"));
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(!h.is_finished());
    d.approvals()
        .decide("run-s", "production", "bob", true, None)
        .unwrap();
    assert!(h.await.unwrap().is_ok());
}

#[tokio::test]
async fn self_review_allowed_when_not_prevented() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = production();
    env.prevent_self_review = false;
    let (d, _rx) = delivery(dir.path(), env);
    let d2 = d.clone();
    let h = tokio::spawn(async move {
        d2.admit(
            &request("run-s2", "production", "refs/heads/main", "alice"),
            CancellationToken::new(),
        )
        .await
    });
    wait_pending(d.approvals(), "run-s2").await;
    d.approvals()
        .decide("run-s2", "production", "alice", true, None)
        .unwrap();
    assert!(h.await.unwrap().is_ok());
}

#[tokio::test]
async fn rejection_fails_with_who_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = production();
    env.required_approvals = 2;
    let (d, _rx) = delivery(dir.path(), env);
    let d2 = d.clone();
    let h = tokio::spawn(async move {
        d2.admit(
            &request("run-r", "production", "refs/heads/main", "dave"),
            CancellationToken::new(),
        )
        .await
    });
    wait_pending(d.approvals(), "run-r").await;
    d.approvals()
        .decide("run-r", "production", "alice", true, None)
        .unwrap();
    let r = d
        .approvals()
        .decide(
            "run-r",
            "production",
            "bob",
            false,
            Some("change freeze until Monday".into()),
        )
        .unwrap();
    assert_eq!(r.state, ApprovalState::Rejected);
    let err = h.await.unwrap().unwrap_err();
    assert_eq!(err.kind, RefusalKind::Rejected);
    assert!(err.reason.contains("rejected by bob"), "{err}");
    assert!(err.reason.contains("change freeze until Monday"), "{err}");
}

#[tokio::test]
async fn approval_timeout_fails_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = production();
    env.approval_timeout = Duration::from_millis(300);
    let (d, _rx) = delivery(dir.path(), env);
    let start = Instant::now();
    let err = d
        .admit(
            &request("run-t", "production", "refs/heads/main", "dave"),
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(err.kind, RefusalKind::TimedOut);
    assert!(
        err.reason.contains("was not approved within 300ms"),
        "{err}"
    );
    // A late decision is refused.
    assert!(
        d.approvals()
            .decide("run-t", "production", "bob", true, None)
            .is_err()
    );
}

#[tokio::test]
async fn wait_timer_delays_after_approval() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = EnvironmentConfig::new("staging");
    env.wait_timer = Some(Duration::from_millis(400));
    let (d, mut rx) = delivery(dir.path(), env);
    let start = Instant::now();
    d.admit(
        &request("run-w", "staging", "refs/heads/develop", "dave"),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(400));
    let mut saw_timer = false;
    while let Ok(ev) = rx.try_recv() {
        saw_timer |= matches!(*ev, RunEvent::WaitTimerStarted { .. });
    }
    assert!(saw_timer);

    // And with reviewers: the timer starts only after approval.
    let mut env = production();
    env.wait_timer = Some(Duration::from_millis(300));
    let (d, _rx) = delivery(dir.path(), env);
    let d2 = d.clone();
    let h = tokio::spawn(async move {
        d2.admit(
            &request("run-w2", "production", "refs/heads/main", "dave"),
            CancellationToken::new(),
        )
        .await
    });
    wait_pending(d.approvals(), "run-w2").await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(!h.is_finished());
    let approved_at = Instant::now();
    d.approvals()
        .decide("run-w2", "production", "bob", true, None)
        .unwrap();
    h.await.unwrap().unwrap();
    assert!(approved_at.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn cancellation_stops_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let (d, _rx) = delivery(dir.path(), production());
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    let d2 = d.clone();
    let h = tokio::spawn(async move {
        d2.admit(
            &request("run-c", "production", "refs/heads/main", "dave"),
            c2,
        )
        .await
    });
    wait_pending(d.approvals(), "run-c").await;
    cancel.cancel();
    let err = tokio::time::timeout(Duration::from_secs(2), h)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind, RefusalKind::Cancelled);
    assert!(err.reason.contains("cancelled"), "{err}");
}

#[tokio::test]
async fn unknown_environment_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let (d, _rx) = delivery(dir.path(), production());
    let a = d
        .admit(
            &request("run-u", "preview", "refs/heads/anything", "dave"),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert!(a.secrets.is_empty());
}

/// A scripted prompt (no TTY needed).
struct Scripted(Mutex<Vec<PromptAnswer>>, Mutex<Vec<Option<String>>>);

#[async_trait::async_trait]
impl ApprovalPrompt for Scripted {
    async fn ask(&self, _req: &PendingApproval, note: Option<&str>) -> Option<PromptAnswer> {
        self.1.lock().unwrap().push(note.map(str::to_string));
        let mut a = self.0.lock().unwrap();
        if a.is_empty() {
            None
        } else {
            Some(a.remove(0))
        }
    }
}

#[tokio::test]
async fn interactive_prompt_decides_with_the_same_rules() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = DeliveryConfig::default();
    config
        .environments
        .insert("production".into(), production());
    let prompt = Arc::new(Scripted(
        Mutex::new(vec![
            PromptAnswer {
                by: "alice".into(),
                approved: true,
                comment: None,
            },
            PromptAnswer {
                by: "carol".into(),
                approved: true,
                comment: Some("ship it".into()),
            },
        ]),
        Mutex::new(Vec::new()),
    ));
    let d = Delivery::builder(dir.path(), config)
        .prompt(prompt.clone())
        .poll_interval(Duration::from_millis(20))
        .build();
    // alice is the actor: her answer is refused, the prompt asks again, carol approves.
    d.admit(
        &request("run-i", "production", "refs/heads/main", "alice"),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let notes = prompt.1.lock().unwrap().clone();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes[1]
            .as_deref()
            .unwrap_or("")
            .contains("prevent_self_review")
    );
}

#[test]
fn concurrent_deciders_lose_nothing() {
    // Many threads, each with its own open file (flock is per open file description, as
    // between processes), decide on one request at once.
    let dir = tempfile::tempdir().unwrap();
    let reviewers: Vec<String> = (0..12).map(|i| format!("r{i}")).collect();
    let store = ApprovalStore::for_repo(dir.path());
    store
        .create(&PendingApproval {
            run_id: "race".into(),
            environment: "production".into(),
            job: "deploy".into(),
            workflow: "w".into(),
            actor: "dave".into(),
            git_ref: "refs/heads/main".into(),
            sha: "abc".into(),
            reviewers: reviewers.clone(),
            required_approvals: 12,
            prevent_self_review: true,
            since: chrono::Utc::now(),
            state: ApprovalState::Pending,
            decisions: vec![],
            waiter: None,
        })
        .unwrap();
    let handles: Vec<_> = reviewers
        .iter()
        .cloned()
        .map(|r| {
            let s = ApprovalStore::for_repo(dir.path());
            std::thread::spawn(move || s.decide("race", "production", &r, true, None).unwrap())
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let p = store.get("race", "production").unwrap();
    assert_eq!(p.decisions.len(), 12);
    assert_eq!(p.state, ApprovalState::Approved);
}

#[tokio::test]
async fn concurrent_approve_and_reject_from_two_tasks() {
    for round in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let store = ApprovalStore::for_repo(dir.path());
        let run = format!("race{round}");
        store
            .create(&PendingApproval {
                run_id: run.clone(),
                environment: "production".into(),
                job: "deploy".into(),
                workflow: "w".into(),
                actor: "dave".into(),
                git_ref: "refs/heads/main".into(),
                sha: "abc".into(),
                reviewers: vec!["alice".into(), "bob".into()],
                required_approvals: 1,
                prevent_self_review: true,
                since: chrono::Utc::now(),
                state: ApprovalState::Pending,
                decisions: vec![],
                waiter: None,
            })
            .unwrap();
        let (s1, s2) = (store.clone(), store.clone());
        let (r1, r2) = (run.clone(), run.clone());
        let a =
            tokio::task::spawn_blocking(move || s1.decide(&r1, "production", "alice", true, None));
        let b = tokio::task::spawn_blocking(move || {
            s2.decide(&r2, "production", "bob", false, Some("no".into()))
        });
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        // Exactly one decision wins; the other sees a closed request.
        assert!(a.is_ok() ^ b.is_ok(), "{a:?} {b:?}");
        let p = store.get(&run, "production").unwrap();
        assert_eq!(p.decisions.len(), 1);
        let expected = if a.is_ok() {
            ApprovalState::Approved
        } else {
            ApprovalState::Rejected
        };
        assert_eq!(p.state, expected);
        let loser = if a.is_ok() { b } else { a };
        assert!(matches!(loser, Err(DecideError::NotPending(_))));
    }
}
