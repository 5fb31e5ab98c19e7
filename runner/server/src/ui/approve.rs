//! Deployment reviews from the web UI: which environments a run waits on, who may decide,
//! and [`decide`], the one function the form posts to.
//!
//! Until the server's approval gate (`gate.rs`, `pending_deployments` API) is merged,
//! `decide` applies the API's rules itself (reviewer listed in the config, write role,
//! self-review refused when the environment says so, one decision per reviewer) and records
//! the decision with `Store::record_approval`. After the merge it is to call the gate's
//! function instead, so both paths keep one rule set.

use std::time::Duration;

use crate::config::{Repository, Role, User};
use crate::state::{App, LiveEvent};
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
    pub prevent_self_review: bool,
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

/// Jobs that have not started and whose environment has reviewers configured wait for
/// them until enough approvals (or one rejection) are recorded.
pub async fn pending(
    app: &App,
    repo: &Repository,
    run: &RunRecord,
) -> Result<Vec<Pending>, StoreError> {
    let jobs = app.store.run_jobs(run.id, run.run_attempt).await?;
    let decisions = app.store.approvals(run.id).await?;
    let mut out: Vec<Pending> = Vec::new();
    for j in jobs
        .iter()
        .filter(|j| j.status == "waiting" || j.status == "queued")
    {
        let Some(env_name) = &j.environment else {
            continue;
        };
        let Some(env) = repo.environments.get(env_name) else {
            continue;
        };
        if env.reviewers.is_empty() && env.required_approvals == 0 {
            continue;
        }
        let mine: Vec<_> = decisions
            .iter()
            .filter(|d| d.job_id == j.id && &d.environment == env_name)
            .collect();
        if mine.iter().any(|d| d.state == "rejected") {
            continue;
        }
        let mut approved_by: Vec<String> = mine
            .iter()
            .filter(|d| d.state == "approved")
            .map(|d| d.reviewer.clone())
            .collect();
        approved_by.dedup();
        let required = env.required_approvals.max(1);
        let still_needed = required.saturating_sub(approved_by.len() as u32);
        if still_needed == 0 {
            continue;
        }
        match out.iter_mut().find(|p| &p.environment == env_name) {
            Some(p) => p.job_ids.push(j.id),
            None => out.push(Pending {
                environment: env_name.clone(),
                job_ids: vec![j.id],
                reviewers: env.reviewers.clone(),
                required,
                approved_by,
                still_needed,
                wait_timer: env.wait_timer,
                waiting_since: j.created_at.clone(),
                prevent_self_review: env.prevent_self_review,
            }),
        }
    }
    Ok(out)
}

/// Why `user` may not decide `p` for `run`, or Ok when they may.
pub fn may_decide(p: &Pending, run: &RunRecord, user: &User) -> Result<(), String> {
    if user.role < Role::Write {
        return Err("Reviewing a deployment needs write access.".into());
    }
    if !p.reviewers.iter().any(|r| r == &user.login) {
        return Err(format!(
            "{} is not a reviewer of the {} environment.",
            user.login, p.environment
        ));
    }
    if p.prevent_self_review && run.actor == user.login {
        return Err(format!(
            "The {} environment does not let the person who triggered the run approve it.",
            p.environment
        ));
    }
    if p.approved_by.contains(&user.login) {
        return Err(format!(
            "{} has already approved this deployment.",
            user.login
        ));
    }
    Ok(())
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
    let all = pending(app, repo, run).await?;
    let Some(p) = all.iter().find(|p| p.environment == environment) else {
        return Err(DecideError::NotWaiting(format!(
            "Run {} is not waiting for a review of the {environment} environment.",
            run.id
        )));
    };
    may_decide(p, run, user).map_err(DecideError::Refused)?;
    let state = if approve { "approved" } else { "rejected" };
    for job in &p.job_ids {
        app.store
            .record_approval(run.id, *job, environment, &user.login, state, comment)
            .await?;
    }
    app.announce(LiveEvent::Approval { run_id: run.id });
    Ok(())
}
