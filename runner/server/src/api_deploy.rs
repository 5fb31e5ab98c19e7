//! GitHub's deployment review, environments and deployments endpoints under `/api/v3`
//! (same paths and JSON shapes): the pending deployments of a run and the reviewers'
//! decisions on them, a run's approvals, the repository's environments with their
//! protection rules (from `gantry-server.yml` only), deployments and their statuses.
//!
//! Looking needs `read`; deciding needs `write` and being a reviewer of the environment
//! (and not the run's actor under `prevent_self_review`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value as J, json};

use crate::api::{
    ApiError, ApiResult, authorize, find_run, json_object, link_header, missing_field, paged,
    paging,
};
use crate::api_json::{self, name_id};
use crate::config::{Environment, Repository, Role};
use crate::gate::rules;
use crate::state::{App, LiveEvent};
use crate::store::{ApprovalRecord, DeploymentRecord, StoreError};
use crate::store_reviews::{DeploymentStatusRecord, ReviewRecord};
use crate::store_runs::RunRecord;

pub fn routes() -> Router<Arc<App>> {
    let repo = "/api/v3/repos/{owner}/{repo}";
    Router::new()
        .route(
            &format!("{repo}/actions/runs/{{run}}/pending_deployments"),
            get(pending_deployments).post(review_deployments),
        )
        .route(
            &format!("{repo}/actions/runs/{{run}}/approvals"),
            get(run_approvals),
        )
        .route(&format!("{repo}/environments"), get(environments))
        .route(&format!("{repo}/environments/{{name}}"), get(environment))
        .route(&format!("{repo}/deployments"), get(deployments))
        .route(&format!("{repo}/deployments/{{id}}"), get(deployment))
        .route(
            &format!("{repo}/deployments/{{id}}/statuses"),
            get(deployment_statuses),
        )
}

// ---- JSON shapes ---------------------------------------------------------------------

/// An environment's id: stable, derived from the repository and environment names.
pub fn environment_id(repo: &str, env: &str) -> u64 {
    name_id(&format!("{repo}/environments/{env}"))
}

/// The environment object of pending deployments and approvals.
fn environment_ref(base: &str, repo: &str, name: &str) -> J {
    let id = environment_id(repo, name);
    json!({
        "id": id, "node_id": format!("EN_{id}"), "name": name,
        "url": format!("{base}/api/v3/repos/{repo}/environments/{name}"),
        "html_url": format!("{base}/{repo}/deployments#env-{name}"),
    })
}

/// GitHub counts wait timers in minutes; a timer of seconds shows as the minute it is in.
fn wait_minutes(env: &Environment) -> u64 {
    env.wait_timer.as_secs().div_ceil(60)
}

fn reviewers(base: &str, env: &Environment) -> J {
    env.reviewers
        .iter()
        .map(|login| json!({ "type": "User", "reviewer": api_json::user(base, login) }))
        .collect()
}

/// The full environment object with `protection_rules` (GitHub's order: wait timer,
/// required reviewers, branch policy).
fn environment_full(base: &str, repo: &str, name: &str, env: &Environment) -> J {
    let mut v = environment_ref(base, repo, name);
    let id = environment_id(repo, name);
    let mut rules_json = Vec::new();
    if !env.wait_timer.is_zero() {
        rules_json.push(json!({
            "id": id * 10 + 1, "node_id": format!("GA_{id}_1"), "type": "wait_timer",
            "wait_timer": wait_minutes(env),
        }));
    }
    if !env.reviewers.is_empty() {
        rules_json.push(json!({
            "id": id * 10 + 2, "node_id": format!("GA_{id}_2"), "type": "required_reviewers",
            "prevent_self_review": env.prevent_self_review,
            "reviewers": reviewers(base, env),
        }));
    }
    let restricted = !env.branches.is_empty() || !env.tags.is_empty();
    if restricted {
        rules_json.push(json!({
            "id": id * 10 + 3, "node_id": format!("GA_{id}_3"), "type": "branch_policy",
        }));
    }
    v["created_at"] = json!("1970-01-01T00:00:00Z");
    v["updated_at"] = json!("1970-01-01T00:00:00Z");
    v["protection_rules"] = J::Array(rules_json);
    v["deployment_branch_policy"] = if restricted {
        json!({ "protected_branches": false, "custom_branch_policies": true })
    } else {
        J::Null
    };
    // Not part of GitHub's shape: the patterns themselves, and how many approvals count.
    v["branch_policies"] = json!({ "branches": env.branches, "tags": env.tags });
    v["required_approvals"] = json!(env.required_approvals.max(1));
    v
}

fn short_ref(git_ref: &str) -> &str {
    git_ref
        .strip_prefix("refs/heads/")
        .or_else(|| git_ref.strip_prefix("refs/tags/"))
        .unwrap_or(git_ref)
}

fn deployment_json(base: &str, d: &DeploymentRecord) -> J {
    let repo_api = format!("{base}/api/v3/repos/{}", d.repo);
    let url = format!("{repo_api}/deployments/{}", d.id);
    json!({
        "url": url, "id": d.id, "node_id": format!("DE_{}", d.id), "sha": d.sha,
        "ref": short_ref(&d.git_ref), "task": "deploy", "payload": {},
        "original_environment": d.environment, "environment": d.environment,
        "description": null, "creator": api_json::user(base, &d.creator),
        "created_at": d.created_at, "updated_at": d.updated_at,
        "statuses_url": format!("{url}/statuses"), "repository_url": repo_api,
        "transient_environment": false,
        "production_environment": d.environment.eq_ignore_ascii_case("production"),
        // Not part of GitHub's shape: the current state and the run that deployed.
        "state": d.state, "run_id": d.run_id,
    })
}

fn status_json(base: &str, d: &DeploymentRecord, s: &DeploymentStatusRecord) -> J {
    let repo_api = format!("{base}/api/v3/repos/{}", d.repo);
    let deployment_url = format!("{repo_api}/deployments/{}", d.id);
    json!({
        "url": format!("{deployment_url}/statuses/{}", s.id), "id": s.id,
        "node_id": format!("DES_{}", s.id), "state": s.state,
        "creator": api_json::user(base, &s.creator), "description": s.description,
        "environment": d.environment, "target_url": "",
        "log_url": format!("{base}/{}/actions/runs/{}", d.repo, d.run_id),
        "created_at": s.created_at, "updated_at": s.created_at,
        "deployment_url": deployment_url, "repository_url": repo_api, "environment_url": "",
    })
}

fn approval_json(base: &str, repo: &str, a: &ApprovalRecord) -> J {
    json!({
        "environments": [environment_ref(base, repo, &a.environment)],
        "state": a.state, "user": api_json::user(base, &a.reviewer), "comment": a.comment,
        // Not part of GitHub's shape: when the decision was made.
        "created_at": a.created_at,
    })
}

// ---- pending deployments ---------------------------------------------------------------

/// The run's waiting reviews with their environment's rules, one per environment (a
/// matrix of jobs at one environment is one pending deployment, as on GitHub). The web
/// UI's approval banner reads the same list.
pub(crate) async fn waiting<'a>(
    app: &App,
    repo: &'a Repository,
    run: &RunRecord,
) -> Result<Vec<(&'a str, &'a Environment, Vec<ReviewRecord>)>, StoreError> {
    let mut out: Vec<(&str, &Environment, Vec<ReviewRecord>)> = Vec::new();
    for review in app.store.reviews(run.id, true).await? {
        let Some((name, env)) = rules::environment(repo, &review.environment) else {
            continue;
        };
        match out.iter_mut().find(|(n, _, _)| *n == name) {
            Some((_, _, list)) => list.push(review),
            None => out.push((name, env, vec![review])),
        }
    }
    Ok(out)
}

/// Why `login` may not decide on these reviews; `None` when they may (the role is checked
/// by the caller).
pub(crate) async fn may_not_review(
    app: &App,
    run: &RunRecord,
    name: &str,
    env: &Environment,
    reviews: &[ReviewRecord],
    login: &str,
) -> Result<Option<String>, StoreError> {
    let p = rules::policy(name, env);
    for review in reviews {
        let recorded = app.store.review_decisions(review).await?;
        if let Some(why) = rules::refusal(&p, run, review, &recorded, login) {
            return Ok(Some(why));
        }
    }
    Ok(None)
}

/// `GET /repos/{o}/{r}/actions/runs/{id}/pending_deployments`.
async fn pending_deployments(
    State(app): State<Arc<App>>,
    Path((owner, repo, run_id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let (user, r) = authorize(&app, &headers, &owner, &repo, Role::Read)?;
    let run = find_run(&app, &r.name, &run_id).await?;
    let base = &app.cfg.url;
    let mut out = Vec::new();
    for (name, env, reviews) in waiting(&app, r, &run).await? {
        let can = user.role >= Role::Write
            && !env.reviewers.is_empty()
            && may_not_review(&app, &run, name, env, &reviews, &user.login)
                .await?
                .is_none();
        let started = (!env.wait_timer.is_zero()).then(|| reviews[0].requested_at.clone());
        out.push(json!({
            "environment": environment_ref(base, &r.name, name),
            "wait_timer": wait_minutes(env),
            "wait_timer_started_at": started,
            "current_user_can_approve": can,
            "reviewers": reviewers(base, env),
        }));
    }
    Ok(Json(J::Array(out)).into_response())
}

/// The body of a review: `{environment_ids: [int], state: approved|rejected, comment}`.
fn review_body(body: &Bytes) -> Result<(Vec<u64>, String, String), ApiError> {
    let m = json_object(body)?;
    let ids = match m.get("environment_ids") {
        None => return Err(missing_field("Deployment", "environment_ids")),
        Some(J::Array(a)) if !a.is_empty() => a
            .iter()
            .map(|v| v.as_u64())
            .collect::<Option<Vec<u64>>>()
            .ok_or_else(|| {
                ApiError::unprocessable(
                    "Invalid request.\n\nFor 'items', the environment ids must be integers.",
                    None,
                )
            })?,
        Some(_) => {
            return Err(ApiError::unprocessable(
                "Invalid request.\n\n'environment_ids' must be a non-empty array of integers.",
                None,
            ));
        }
    };
    let state = match m.get("state").and_then(J::as_str) {
        Some(s @ ("approved" | "rejected")) => s.to_string(),
        Some(other) => {
            return Err(ApiError::unprocessable(
                &format!(
                    "Invalid request.\n\n'state' must be \"approved\" or \"rejected\", not \"{other}\"."
                ),
                None,
            ));
        }
        None => return Err(missing_field("Deployment", "state")),
    };
    let comment = match m.get("comment") {
        Some(J::String(c)) => c.clone(),
        Some(_) => {
            return Err(ApiError::unprocessable(
                "Invalid request.\n\n'comment' must be a string.",
                None,
            ));
        }
        None => return Err(missing_field("Deployment", "comment")),
    };
    Ok((ids, state, comment))
}

/// `POST /repos/{o}/{r}/actions/runs/{id}/pending_deployments`: approve or reject the
/// run's waiting jobs of the given environments. Nothing is recorded unless the user may
/// decide on every one of them.
async fn review_deployments(
    State(app): State<Arc<App>>,
    Path((owner, repo, run_id)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let (user, r) = authorize(&app, &headers, &owner, &repo, Role::Write)?;
    let run = find_run(&app, &r.name, &run_id).await?;
    let (ids, state, comment) = review_body(&body)?;
    let all = waiting(&app, r, &run).await?;
    let mut chosen = Vec::new();
    for id in &ids {
        let Some(entry) = all
            .iter()
            .find(|(name, _, _)| environment_id(&r.name, name) == *id)
        else {
            return Err(ApiError::unprocessable(
                &format!(
                    "No pending deployment requests to approve or reject for environment id {id}."
                ),
                None,
            ));
        };
        chosen.push(entry);
    }
    for (name, env, reviews) in &chosen {
        if let Some(why) = may_not_review(&app, &run, name, env, reviews, &user.login).await? {
            return Err(ApiError::unprocessable(
                &format!("{why}; nothing was recorded."),
                None,
            ));
        }
    }
    let chosen: Vec<(&str, &[ReviewRecord])> = chosen
        .iter()
        .map(|(name, _, reviews)| (*name, reviews.as_slice()))
        .collect();
    let jobs = record_decision(&app, &run, &chosen, &user.login, &state, &comment).await?;
    let deployments: Vec<J> = app
        .store
        .deployments(&r.name)
        .await?
        .iter()
        .filter(|d| d.run_id == run.id && jobs.contains(&d.job_id))
        .map(|d| deployment_json(&app.cfg.url, d))
        .collect();
    Ok(Json(J::Array(deployments)).into_response())
}

/// Records `login`'s decision (`approved` or `rejected`) on the reviews of each chosen
/// environment and wakes the gate and open pages; returns the jobs decided on. The caller
/// has checked the role and [`may_not_review`] for every environment.
pub(crate) async fn record_decision(
    app: &App,
    run: &RunRecord,
    chosen: &[(&str, &[ReviewRecord])],
    login: &str,
    state: &str,
    comment: &str,
) -> Result<Vec<i64>, StoreError> {
    let mut jobs = Vec::new();
    for (name, reviews) in chosen {
        for review in *reviews {
            app.store
                .record_approval(run.id, review.job_id, name, login, state, comment)
                .await?;
            jobs.push(review.job_id);
        }
    }
    app.announce(LiveEvent::Approval { run_id: run.id });
    Ok(jobs)
}

/// `GET /repos/{o}/{r}/actions/runs/{id}/approvals`: every decision, oldest first.
async fn run_approvals(
    State(app): State<Arc<App>>,
    Path((owner, repo, run_id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let (_, r) = authorize(&app, &headers, &owner, &repo, Role::Read)?;
    let run = find_run(&app, &r.name, &run_id).await?;
    let out: Vec<J> = app
        .store
        .approvals(run.id)
        .await?
        .iter()
        .map(|a| approval_json(&app.cfg.url, &r.name, a))
        .collect();
    Ok(Json(J::Array(out)).into_response())
}

// ---- environments ----------------------------------------------------------------------

/// `GET /repos/{o}/{r}/environments`: `{total_count, environments}`.
async fn environments(
    State(app): State<Arc<App>>,
    Path((owner, repo)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult {
    let (_, r) = authorize(&app, &headers, &owner, &repo, Role::Read)?;
    let (page, per) = paging(&q)?;
    let all: Vec<J> = r
        .environments
        .iter()
        .map(|(name, env)| environment_full(&app.cfg.url, &r.name, name, env))
        .collect();
    let total = all.len() as i64;
    let items: Vec<J> = all
        .into_iter()
        .skip(((page - 1) * per) as usize)
        .take(per as usize)
        .collect();
    let url = format!("{}/api/v3/repos/{}/environments", app.cfg.url, r.name);
    Ok(paged(
        json!({ "total_count": total, "environments": items }),
        link_header(&url, &q, page, per, total),
    ))
}

/// `GET /repos/{o}/{r}/environments/{name}`.
async fn environment(
    State(app): State<Arc<App>>,
    Path((owner, repo, name)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let (_, r) = authorize(&app, &headers, &owner, &repo, Role::Read)?;
    let (name, env) = rules::environment(r, &name).ok_or_else(ApiError::not_found)?;
    Ok(Json(environment_full(&app.cfg.url, &r.name, name, env)).into_response())
}

// ---- deployments -----------------------------------------------------------------------

/// `GET /repos/{o}/{r}/deployments` (filters `sha`, `ref`, `environment`, `task`; paging).
async fn deployments(
    State(app): State<Arc<App>>,
    Path((owner, repo)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult {
    let (_, r) = authorize(&app, &headers, &owner, &repo, Role::Read)?;
    let (page, per) = paging(&q)?;
    let matches = |d: &DeploymentRecord| {
        q.get("sha").is_none_or(|s| *s == d.sha)
            && q.get("ref")
                .is_none_or(|s| *s == d.git_ref || s == short_ref(&d.git_ref))
            && q.get("environment")
                .is_none_or(|e| e.eq_ignore_ascii_case(&d.environment))
            && q.get("task").is_none_or(|t| t == "deploy")
    };
    let all: Vec<DeploymentRecord> = app
        .store
        .deployments(&r.name)
        .await?
        .into_iter()
        .filter(matches)
        .collect();
    let total = all.len() as i64;
    let items: Vec<J> = all
        .iter()
        .skip(((page - 1) * per) as usize)
        .take(per as usize)
        .map(|d| deployment_json(&app.cfg.url, d))
        .collect();
    let url = format!("{}/api/v3/repos/{}/deployments", app.cfg.url, r.name);
    Ok(paged(
        J::Array(items),
        link_header(&url, &q, page, per, total),
    ))
}

async fn find_deployment(app: &App, repo: &str, id: &str) -> Result<DeploymentRecord, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::not_found())?;
    app.store
        .deployments(repo)
        .await?
        .into_iter()
        .find(|d| d.id == id)
        .ok_or_else(ApiError::not_found)
}

/// `GET /repos/{o}/{r}/deployments/{id}`.
async fn deployment(
    State(app): State<Arc<App>>,
    Path((owner, repo, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let (_, r) = authorize(&app, &headers, &owner, &repo, Role::Read)?;
    let d = find_deployment(&app, &r.name, &id).await?;
    Ok(Json(deployment_json(&app.cfg.url, &d)).into_response())
}

/// `GET /repos/{o}/{r}/deployments/{id}/statuses`: newest first.
async fn deployment_statuses(
    State(app): State<Arc<App>>,
    Path((owner, repo, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let (_, r) = authorize(&app, &headers, &owner, &repo, Role::Read)?;
    let d = find_deployment(&app, &r.name, &id).await?;
    let out: Vec<J> = app
        .store
        .deployment_statuses(d.id)
        .await?
        .iter()
        .map(|s| status_json(&app.cfg.url, &d, s))
        .collect();
    Ok((StatusCode::OK, Json(J::Array(out))).into_response())
}
