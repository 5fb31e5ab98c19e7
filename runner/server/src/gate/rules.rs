//! The protection rules of a server environment, judged by the delivery crate's pure rule
//! evaluation (branch/tag policy, distinct reviewers, required count, self-review), so that
//! `gantry run` and `gantry serve` decide the same way. Decisions come from the store, the
//! actor from the run record (the pusher or dispatcher), the rules from the server config.

use chrono::{DateTime, Utc};
use gantry_delivery::approval::{ApprovalState, Decision, PendingApproval, Verdict, verdict};
use gantry_delivery::config::EnvironmentConfig;

use crate::config::{Environment, Repository};
use crate::store::ApprovalRecord;
use crate::store_reviews::ReviewRecord;
use crate::store_runs::RunRecord;

/// The repository's environment of that name, compared case-insensitively as GitHub does;
/// returns the configured spelling.
pub fn environment<'a>(repo: &'a Repository, name: &str) -> Option<(&'a str, &'a Environment)> {
    repo.environments
        .get_key_value(name)
        .or_else(|| {
            repo.environments
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
        })
        .map(|(k, v)| (k.as_str(), v))
}

/// The server environment in the delivery crate's terms (rules only: the server never
/// takes health checks or reviewers from a commit).
pub fn policy(name: &str, env: &Environment) -> EnvironmentConfig {
    let mut p = EnvironmentConfig::new(name);
    p.reviewers = env.reviewers.clone();
    p.required_approvals = env.required_approvals.max(1);
    p.prevent_self_review = env.prevent_self_review;
    p.wait_timer = (!env.wait_timer.is_zero()).then_some(env.wait_timer);
    // Empty lists on the server mean "no restriction"; the delivery crate spells that None.
    if !env.branches.is_empty() || !env.tags.is_empty() {
        p.branches = Some(env.branches.clone());
        p.tags = Some(env.tags.clone());
    }
    p.secrets = env.secrets.keys().cloned().collect();
    p.vars = env.vars.clone();
    p
}

fn decision(a: &ApprovalRecord) -> Decision {
    Decision {
        by: a.reviewer.clone(),
        approved: a.state == "approved",
        comment: (!a.comment.is_empty()).then(|| a.comment.clone()),
        at: DateTime::parse_from_rfc3339(&a.created_at)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|_| Utc::now()),
    }
}

fn pending(
    run: &RunRecord,
    review: &ReviewRecord,
    p: &EnvironmentConfig,
    decisions: &[Decision],
) -> PendingApproval {
    PendingApproval {
        run_id: run.id.to_string(),
        environment: review.environment.clone(),
        job: review.job_id.to_string(),
        workflow: run.workflow_path.clone(),
        actor: run.actor.clone(),
        git_ref: run.git_ref.clone(),
        sha: run.head_sha.clone(),
        reviewers: p.reviewers.clone(),
        required_approvals: p.required_approvals,
        prevent_self_review: p.prevent_self_review,
        since: Utc::now(),
        state: ApprovalState::Pending,
        decisions: decisions.to_vec(),
        waiter: None,
    }
}

/// What the recorded decisions amount to under the current rules.
pub fn judge(
    p: &EnvironmentConfig,
    run: &RunRecord,
    review: &ReviewRecord,
    recorded: &[ApprovalRecord],
) -> Verdict {
    let decisions: Vec<Decision> = recorded.iter().map(decision).collect();
    verdict(&pending(run, review, p, &decisions), p, &run.actor)
}

/// Why a decision by `login` would not count (not a reviewer, the run's own actor under
/// `prevent_self_review`, already decided); `None` when it would.
pub fn refusal(
    p: &EnvironmentConfig,
    run: &RunRecord,
    review: &ReviewRecord,
    recorded: &[ApprovalRecord],
    login: &str,
) -> Option<String> {
    let mut decisions: Vec<Decision> = recorded.iter().map(decision).collect();
    decisions.push(Decision {
        by: login.to_string(),
        approved: true,
        comment: None,
        at: Utc::now(),
    });
    let v = verdict(&pending(run, review, p, &decisions), p, &run.actor);
    v.ignored_reason(decisions.len() - 1).map(str::to_string)
}

/// The message a rejection fails the job with.
pub fn rejection_message(v: &Verdict) -> Option<String> {
    v.rejection().map(|d| match &d.comment {
        Some(c) => format!("deployment rejected by {}: {c}", d.by),
        None => format!("deployment rejected by {}", d.by),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn env(reviewers: &[&str], branches: &[&str]) -> Environment {
        Environment {
            reviewers: reviewers.iter().map(|s| s.to_string()).collect(),
            required_approvals: 1,
            prevent_self_review: true,
            wait_timer: Duration::ZERO,
            branches: branches.iter().map(|s| s.to_string()).collect(),
            tags: Vec::new(),
            secrets: Default::default(),
            vars: Default::default(),
        }
    }

    fn run(actor: &str) -> RunRecord {
        RunRecord {
            id: 7,
            repo: "acme/shop".into(),
            workflow_id: 1,
            workflow_path: ".github/workflows/ci.yml".into(),
            run_number: 1,
            name: "CI".into(),
            display_title: "x".into(),
            event: "push".into(),
            head_branch: "main".into(),
            head_sha: "a".repeat(40),
            git_ref: "refs/heads/main".into(),
            actor: actor.into(),
            status: "waiting".into(),
            conclusion: None,
            run_attempt: 1,
            head_commit: serde_json::json!({}),
            created_at: String::new(),
            updated_at: String::new(),
            run_started_at: String::new(),
        }
    }

    fn review() -> ReviewRecord {
        ReviewRecord {
            id: 1,
            run_id: 7,
            job_id: 3,
            environment: "production".into(),
            state: "waiting".into(),
            requested_at: "2026-01-01T00:00:00Z".into(),
            decided_at: None,
        }
    }

    fn decided(by: &str, state: &str) -> ApprovalRecord {
        ApprovalRecord {
            id: 1,
            run_id: 7,
            job_id: 3,
            environment: "production".into(),
            reviewer: by.into(),
            state: state.into(),
            comment: "because".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn empty_branch_lists_mean_any_ref() {
        let open = policy("production", &env(&["bob"], &[]));
        assert!(open.check_ref("refs/heads/anything/at/all").is_ok());
        let main_only = policy("production", &env(&["bob"], &["main"]));
        assert!(main_only.check_ref("refs/heads/main").is_ok());
        assert!(main_only.check_ref("refs/tags/v1").is_err());
    }

    #[test]
    fn refusals_name_the_reason() {
        let p = policy("production", &env(&["bob", "dave"], &[]));
        let (run, review) = (run("dave"), review());
        assert_eq!(refusal(&p, &run, &review, &[], "bob"), None);
        assert!(
            refusal(&p, &run, &review, &[], "dave")
                .unwrap()
                .contains("triggered the run")
        );
        assert!(
            refusal(&p, &run, &review, &[], "erin")
                .unwrap()
                .contains("not a reviewer")
        );
        let once = [decided("bob", "approved")];
        assert!(
            refusal(&p, &run, &review, &once, "BOB")
                .unwrap()
                .contains("already decided")
        );
    }

    #[test]
    fn a_counted_rejection_carries_its_comment() {
        let p = policy("production", &env(&["bob"], &[]));
        let (run, review) = (run("alice"), review());
        let v = judge(&p, &run, &review, &[decided("bob", "rejected")]);
        assert_eq!(v.state, ApprovalState::Rejected);
        assert_eq!(
            rejection_message(&v).unwrap(),
            "deployment rejected by bob: because"
        );
        // A rejection by someone who is not a reviewer does not count.
        let v = judge(&p, &run, &review, &[decided("mallory", "rejected")]);
        assert_eq!(rejection_message(&v), None);
        assert_eq!(v.state, ApprovalState::Pending);
    }
}
