//! Deployment reviews from the web UI: which environments a run waits on, whether the
//! viewer may decide, and [`decide`], the one function the form posts to. The list and the
//! rules are the API's (`api_deploy`: the gate's waiting reviews judged by `gate::rules`),
//! so a page and `POST …/pending_deployments` refuse exactly the same people.

use std::time::Duration;

use crate::api_deploy;
use crate::config::{Repository, Role, User};
use crate::state::App;
use crate::store::StoreError;
use crate::store_runs::RunRecord;

/// An environment a run's jobs wait on, with what the banner shows.
#[derive(Debug, Clone)]
pub struct Pending {
    pub environment: String,
    pub job_ids: Vec<i64>,
    pub reviewers: Vec<String>,
    pub required: u32,
    pub approved_by: Vec<String>,
    pub still_needed: u32,
    pub wait_timer: Duration,
    pub waiting_since: String,
    /// Why the viewer may not decide; `None` when the Approve/Reject form is theirs.
    pub viewer_refusal: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    NotWaiting(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why `viewer` may not decide on these reviews (role first, then the gate's rules).
async fn refusal(
    app: &App,
    run: &RunRecord,
    name: &str,
    env: &crate::config::Environment,
    reviews: &[crate::store_reviews::ReviewRecord],
    viewer: &User,
) -> Result<Option<String>, StoreError> {
    if viewer.role < Role::Write {
        return Ok(Some("Reviewing a deployment needs write access.".into()));
    }
    api_deploy::may_not_review(app, run, name, env, reviews, &viewer.login).await
}

/// The run's waiting reviews, one per environment, as the viewer sees them.
pub async fn pending(
    app: &App,
    repo: &Repository,
    run: &RunRecord,
    viewer: &User,
) -> Result<Vec<Pending>, StoreError> {
    let mut out = Vec::new();
    for (name, env, reviews) in api_deploy::waiting(app, repo, run).await? {
        let mut approved_by: Vec<String> = Vec::new();
        if let Some(first) = reviews.first() {
            for d in app.store.review_decisions(first).await? {
                if d.state == "approved" && !approved_by.contains(&d.reviewer) {
                    approved_by.push(d.reviewer);
                }
            }
        }
        let required = env.required_approvals.max(1);
        let still_needed = required.saturating_sub(approved_by.len() as u32);
        // Approved enough: the gate admits the job as soon as it wakes (or when the wait
        // timer ends, which the banner still shows).
        if still_needed == 0 && env.wait_timer.is_zero() {
            continue;
        }
        out.push(Pending {
            environment: name.to_string(),
            job_ids: reviews.iter().map(|r| r.job_id).collect(),
            reviewers: env.reviewers.clone(),
            required,
            still_needed,
            approved_by,
            wait_timer: env.wait_timer,
            waiting_since: reviews
                .first()
                .map(|r| r.requested_at.clone())
                .unwrap_or_default(),
            viewer_refusal: refusal(app, run, name, env, &reviews, viewer).await?,
        });
    }
    Ok(out)
}

/// Approves or rejects the run's deployment to `environment` as `user`.
pub async fn decide(
    app: &App,
    repo: &Repository,
    run: &RunRecord,
    user: &User,
    environment: &str,
    approve: bool,
    comment: &str,
) -> Result<(), DecideError> {
    let all = api_deploy::waiting(app, repo, run).await?;
    let Some((name, env, reviews)) = all
        .iter()
        .find(|(n, _, _)| n.eq_ignore_ascii_case(environment))
    else {
        return Err(DecideError::NotWaiting(format!(
            "Run {} is not waiting for a review of the {environment} environment.",
            run.id
        )));
    };
    if let Some(why) = refusal(app, run, name, env, reviews, user).await? {
        return Err(DecideError::Refused(why));
    }
    let state = if approve { "approved" } else { "rejected" };
    api_deploy::record_decision(
        app,
        run,
        &[(name, reviews.as_slice())],
        &user.login,
        state,
        comment,
    )
    .await?;
    Ok(())
}
