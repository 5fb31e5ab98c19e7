//! GitHub's Actions REST API under `/api/v3` (as GitHub Enterprise Server): the same
//! paths, methods, status codes and JSON shapes, so octocrab and scripts written for GitHub
//! work against Gantry. Tokens are the configured users'; `read` may look, `write` may
//! cancel, re-run and dispatch, `admin` may also read the delivery log.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as J, json};

use crate::api_json;
use crate::config::{Repository, Role, User};
use crate::state::App;
use crate::store_runs::RunFilter;
use crate::trigger::{self, Incoming, TriggerError};

/// An API refusal in GitHub's error shape.
pub struct ApiError {
    status: StatusCode,
    body: J,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: &str) -> ApiError {
        ApiError {
            status,
            body: api_json::error(message, None),
        }
    }
    pub(crate) fn unprocessable(message: &str, errors: Option<J>) -> ApiError {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: api_json::error(message, errors),
        }
    }
    pub(crate) fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "Not Found")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        tracing::error!("store: {e}");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the run store is unavailable",
        )
    }
}

pub(crate) type ApiResult = Result<Response, ApiError>;

/// The user a request's `Authorization: Bearer …` / `token …` header names.
pub fn authenticate<'a>(app: &'a App, headers: &HeaderMap) -> Result<&'a User, ApiError> {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Requires authentication",
        ));
    };
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .or_else(|| value.strip_prefix("token "))
        .map(str::trim);
    token
        .and_then(|t| app.cfg.user_by_token(t))
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "Bad credentials"))
}

/// The user and repository of a `/repos/{owner}/{repo}/…` request that needs `role`.
/// An unknown repository is 404 whatever the role, so a token cannot probe for names.
pub(crate) fn authorize<'a>(
    app: &'a App,
    headers: &HeaderMap,
    owner: &str,
    repo: &str,
    role: Role,
) -> Result<(&'a User, &'a Repository), ApiError> {
    let user = authenticate(app, headers)?;
    let repository = app
        .cfg
        .repository(&format!("{owner}/{repo}"))
        .ok_or_else(ApiError::not_found)?;
    if user.role < role {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            &format!("Must have {} access to this repository.", role.as_str()),
        ));
    }
    Ok((user, repository))
}

/// `per_page` (1–100, default 30) and `page` (from 1).
pub(crate) fn paging(q: &HashMap<String, String>) -> Result<(i64, i64), ApiError> {
    let num = |k: &str, default: i64| -> Result<i64, ApiError> {
        match q.get(k) {
            None => Ok(default),
            Some(v) => v.parse::<i64>().map_err(|_| {
                ApiError::unprocessable(
                    &format!("Invalid request.\n\n'{k}' must be a number."),
                    None,
                )
            }),
        }
    };
    Ok((num("page", 1)?.max(1), num("per_page", 30)?.clamp(1, 100)))
}

/// GitHub's `Link` header for page `page` of `total` items.
pub(crate) fn link_header(
    url: &str,
    q: &HashMap<String, String>,
    page: i64,
    per: i64,
    total: i64,
) -> String {
    let last = ((total + per - 1) / per).max(1);
    let mut rest: Vec<(&String, &String)> = q
        .iter()
        .filter(|(k, _)| k.as_str() != "page" && k.as_str() != "per_page")
        .collect();
    rest.sort();
    let extra: String = rest.iter().map(|(k, v)| format!("&{k}={v}")).collect();
    let link = |p: i64, rel: &str| format!("<{url}?per_page={per}&page={p}{extra}>; rel=\"{rel}\"");
    let mut parts = Vec::new();
    if page > 1 {
        parts.push(link(page - 1, "prev"));
    }
    if page < last {
        parts.push(link(page + 1, "next"));
        parts.push(link(last, "last"));
    }
    if page > 1 {
        parts.push(link(1, "first"));
    }
    parts.join(", ")
}

/// Where `Link` URLs point: the configured external URL, unless the client reached the
/// server under another host (a direct connection), in which case links follow it.
fn link_base(app: &App, headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let configured = app.cfg.url.split("://").nth(1).unwrap_or_default();
    match host {
        Some(h) if h != configured && !h.is_empty() => format!("http://{h}"),
        _ => app.cfg.url.clone(),
    }
}

pub(crate) fn paged(body: J, link: String) -> Response {
    let mut resp = Json(body).into_response();
    if !link.is_empty()
        && let Ok(v) = HeaderValue::from_str(&link)
    {
        resp.headers_mut().insert(header::LINK, v);
    }
    resp
}

pub async fn list_runs(
    State(app): State<Arc<App>>,
    Path((owner, repo)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult {
    runs_page(&app, &headers, &owner, &repo, None, &q).await
}

pub async fn list_workflow_runs(
    State(app): State<Arc<App>>,
    Path((owner, repo, workflow)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult {
    let (_, r) = authorize(&app, &headers, &owner, &repo, Role::Read)?;
    let id = workflow_id(&app, &r.name, &workflow).await?;
    runs_page(&app, &headers, &owner, &repo, Some(id), &q).await
}

async fn workflow_id(app: &App, repo: &str, given: &str) -> Result<i64, ApiError> {
    let all = app.store.workflows(repo).await?;
    all.iter()
        .find(|w| w.id.to_string() == given || w.path.rsplit('/').next() == Some(given))
        .map(|w| w.id)
        .ok_or_else(ApiError::not_found)
}

async fn runs_page(
    app: &App,
    headers: &HeaderMap,
    owner: &str,
    repo: &str,
    workflow_id: Option<i64>,
    q: &HashMap<String, String>,
) -> ApiResult {
    let (_, r) = authorize(app, headers, owner, repo, Role::Read)?;
    let (page, per) = paging(q)?;
    let filter = RunFilter {
        workflow_id,
        status: q.get("status").cloned(),
        branch: q.get("branch").cloned(),
        event: q.get("event").cloned(),
        actor: q.get("actor").cloned(),
        head_sha: q.get("head_sha").cloned(),
    };
    let (total, runs) = app.store.list_runs(&r.name, &filter, page, per).await?;
    let base = &app.cfg.url;
    let body = json!({
        "total_count": total,
        "workflow_runs": runs.iter().map(|x| api_json::run(base, x)).collect::<Vec<_>>(),
    });
    let links = link_base(app, headers);
    let url = match workflow_id {
        Some(w) => format!("{links}/api/v3/repos/{}/actions/workflows/{w}/runs", r.name),
        None => format!("{links}/api/v3/repos/{}/actions/runs", r.name),
    };
    Ok(paged(body, link_header(&url, q, page, per, total)))
}

pub async fn list_workflows(
    State(app): State<Arc<App>>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let (_, r) = authorize(&app, &headers, &owner, &repo, Role::Read)?;
    let all = app.store.workflows(&r.name).await?;
    Ok(Json(json!({
        "total_count": all.len(),
        "workflows": all.iter().map(|w| api_json::workflow(&app.cfg.url, w)).collect::<Vec<_>>(),
    }))
    .into_response())
}

pub async fn get_run(
    State(app): State<Arc<App>>,
    Path((owner, repo, run_id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let (_, r) = authorize(&app, &headers, &owner, &repo, Role::Read)?;
    let run = find_run(&app, &r.name, &run_id).await?;
    Ok(Json(api_json::run(&app.cfg.url, &run)).into_response())
}

pub(crate) async fn find_run(
    app: &App,
    repo: &str,
    id: &str,
) -> Result<crate::store_runs::RunRecord, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::not_found())?;
    app.store
        .get_run(repo, id)
        .await?
        .ok_or_else(ApiError::not_found)
}

pub async fn run_jobs(
    State(app): State<Arc<App>>,
    Path((owner, repo, run_id)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult {
    let (_, r) = authorize(&app, &headers, &owner, &repo, Role::Read)?;
    let run = find_run(&app, &r.name, &run_id).await?;
    let attempts: Vec<i64> = match q.get("filter").map(String::as_str) {
        None | Some("latest") => vec![run.run_attempt],
        Some("all") => (1..=run.run_attempt).rev().collect(),
        Some(other) => {
            return Err(ApiError::unprocessable(
                &format!("Invalid request.\n\nfilter '{other}' is not one of latest, all."),
                None,
            ));
        }
    };
    jobs_page(&app, &headers, &run, &attempts, &q).await
}

pub async fn attempt_jobs(
    State(app): State<Arc<App>>,
    Path((owner, repo, run_id, attempt)): Path<(String, String, String, i64)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult {
    let (_, r) = authorize(&app, &headers, &owner, &repo, Role::Read)?;
    let run = find_run(&app, &r.name, &run_id).await?;
    if attempt < 1 || attempt > run.run_attempt {
        return Err(ApiError::not_found());
    }
    jobs_page(&app, &headers, &run, &[attempt], &q).await
}

async fn jobs_page(
    app: &App,
    headers: &HeaderMap,
    run: &crate::store_runs::RunRecord,
    attempts: &[i64],
    q: &HashMap<String, String>,
) -> ApiResult {
    let (page, per) = paging(q)?;
    let mut all = Vec::new();
    for a in attempts {
        all.extend(app.store.run_jobs(run.id, *a).await?);
    }
    let total = all.len() as i64;
    let mut jobs = Vec::new();
    for j in all
        .iter()
        .skip(((page - 1) * per) as usize)
        .take(per as usize)
    {
        let steps = app.store.job_steps(j.id).await?;
        jobs.push(api_json::job(&app.cfg.url, run, j, &steps));
    }
    let url = format!(
        "{}/api/v3/repos/{}/actions/runs/{}/jobs",
        link_base(app, headers),
        run.repo,
        run.id
    );
    Ok(paged(
        json!({ "total_count": total, "jobs": jobs }),
        link_header(&url, q, page, per, total),
    ))
}

pub async fn get_job(
    State(app): State<Arc<App>>,
    Path((owner, repo, job_id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let (_, r) = authorize(&app, &headers, &owner, &repo, Role::Read)?;
    let (run, job) = find_job(&app, &r.name, &job_id).await?;
    let steps = app.store.job_steps(job.id).await?;
    Ok(Json(api_json::job(&app.cfg.url, &run, &job, &steps)).into_response())
}

async fn find_job(
    app: &App,
    repo: &str,
    id: &str,
) -> Result<(crate::store_runs::RunRecord, crate::store_runs::JobRecord), ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::not_found())?;
    let job = app
        .store
        .get_job(repo, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let run = find_run(app, repo, &job.run_id.to_string()).await?;
    Ok((run, job))
}

/// The job's log as plain text (masked when it was stored; readable while it runs).
pub async fn job_logs(
    State(app): State<Arc<App>>,
    Path((owner, repo, job_id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let (_, r) = authorize(&app, &headers, &owner, &repo, Role::Read)?;
    let (_, job) = find_job(&app, &r.name, &job_id).await?;
    let text = app.store.job_log(job.id).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

pub async fn cancel_run(
    State(app): State<Arc<App>>,
    Path((owner, repo, run_id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let (_, r) = authorize(&app, &headers, &owner, &repo, Role::Write)?;
    let run = find_run(&app, &r.name, &run_id).await?;
    if !app.store.cancel_run(run.id).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "Cannot cancel a workflow run that is completed.",
        ));
    }
    // A run executing here is stopped as Ctrl-C stops `gantry run` (its processes and
    // containers); the engine's events then record its jobs cancelled.
    app.cancel_running(run.id);
    app.announce(crate::state::LiveEvent::Run {
        repo: r.name.clone(),
        run_id: run.id,
    });
    Ok((StatusCode::ACCEPTED, Json(json!({}))).into_response())
}

pub async fn rerun(
    State(app): State<Arc<App>>,
    Path((owner, repo, run_id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    rerun_with(&app, &headers, &owner, &repo, &run_id, false).await
}

pub async fn rerun_failed(
    State(app): State<Arc<App>>,
    Path((owner, repo, run_id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    rerun_with(&app, &headers, &owner, &repo, &run_id, true).await
}

async fn rerun_with(
    app: &App,
    headers: &HeaderMap,
    owner: &str,
    repo: &str,
    run_id: &str,
    failed_only: bool,
) -> ApiResult {
    let (user, r) = authorize(app, headers, owner, repo, Role::Write)?;
    let run = find_run(app, &r.name, run_id).await?;
    match app.store.rerun(run.id, &user.login, failed_only).await? {
        Some(_) => {
            app.runs_queued.notify_one();
            Ok((StatusCode::CREATED, Json(json!({}))).into_response())
        }
        None => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "This workflow run is not completed and cannot be re-run.",
        )),
    }
}

/// The body as a JSON object, or GitHub's 400 for text that is not JSON.
pub(crate) fn json_object(body: &Bytes) -> Result<serde_json::Map<String, J>, ApiError> {
    match serde_json::from_slice::<J>(body) {
        Ok(J::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::unprocessable(
            "Invalid request.\n\nThe body must be a JSON object.",
            None,
        )),
        Err(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "Problems parsing JSON",
        )),
    }
}

pub(crate) fn missing_field(resource: &str, field: &str) -> ApiError {
    ApiError::unprocessable(
        &format!("Invalid request.\n\n\"{field}\" wasn't supplied."),
        Some(json!([{ "resource": resource, "field": field, "code": "missing_field" }])),
    )
}

/// `POST /repos/{o}/{r}/actions/workflows/{id or file}/dispatches` `{ref, inputs}`: 204.
pub async fn dispatch_workflow(
    State(app): State<Arc<App>>,
    Path((owner, repo, workflow)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let (user, r) = authorize(&app, &headers, &owner, &repo, Role::Write)?;
    let body = json_object(&body)?;
    let git_ref = match body.get("ref") {
        Some(J::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => {
            return Err(ApiError::unprocessable(
                "Invalid request.\n\nFor 'properties/ref', it is not a string.",
                Some(
                    json!([{ "resource": "WorkflowDispatch", "field": "ref", "code": "invalid" }]),
                ),
            ));
        }
        None => return Err(missing_field("WorkflowDispatch", "ref")),
    };
    let inputs = match body.get("inputs") {
        None | Some(J::Null) => serde_json::Map::new(),
        Some(J::Object(m)) => m.clone(),
        Some(_) => {
            return Err(ApiError::unprocessable(
                "Invalid request.\n\nFor 'properties/inputs', it is not an object.",
                None,
            ));
        }
    };
    let file = if workflow.chars().all(|c| c.is_ascii_digit()) {
        let all = app.store.workflows(&r.name).await?;
        let w = all
            .iter()
            .find(|w| w.id.to_string() == workflow)
            .ok_or_else(ApiError::not_found)?;
        w.path.rsplit('/').next().unwrap_or_default().to_string()
    } else {
        workflow.clone()
    };
    let full_ref = if git_ref.starts_with("refs/") {
        git_ref.clone()
    } else {
        format!("refs/heads/{git_ref}")
    };
    let payload = json!({
        "ref": full_ref, "inputs": inputs, "workflow": file,
        "repository": api_json::repository(&app.cfg.url, &r.name),
        "sender": api_json::user(&app.cfg.url, &user.login),
    });
    let inc = Incoming {
        event: "workflow_dispatch".into(),
        payload,
        sha: None,
        head_branch: full_ref
            .strip_prefix("refs/heads/")
            .or_else(|| full_ref.strip_prefix("refs/tags/"))
            .unwrap_or(&full_ref)
            .to_string(),
        git_ref: full_ref,
        extra_refs: Vec::new(),
        actor: user.login.clone(),
        before: None,
        title: None,
        delivery_id: None,
        only_workflow: Some(file),
    };
    queue_dispatch(&app, r, inc, true).await
}

/// Queues the dispatched runs. `must_run`: a workflow_dispatch that starts nothing (an
/// invalid workflow file) is an error; a repository_dispatch nobody listens to is not.
async fn queue_dispatch(
    app: &Arc<App>,
    r: &Repository,
    inc: Incoming,
    must_run: bool,
) -> ApiResult {
    match trigger::queue(app, r, inc).await {
        Ok(trigger::Outcome::Queued { .. }) => Ok(StatusCode::NO_CONTENT.into_response()),
        Ok(trigger::Outcome::NoMatch(why) | trigger::Outcome::Skipped(why)) if must_run => {
            Err(ApiError::unprocessable(&why, None))
        }
        Ok(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(TriggerError::NoWorkflow(_)) => Err(ApiError::not_found()),
        Err(TriggerError::Invalid(m)) => Err(ApiError::unprocessable(&m, None)),
        Err(e @ TriggerError::Inputs(_)) => Err(ApiError::unprocessable(&e.to_string(), None)),
        Err(TriggerError::Mirror(crate::mirror::MirrorError::MissingCommit(c))) => Err(
            ApiError::unprocessable(&format!("No ref found for: {c}"), None),
        ),
        Err(TriggerError::Mirror(e)) => {
            tracing::error!("mirror of {}: {e}", r.name);
            Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "the repository could not be fetched",
            ))
        }
        Err(TriggerError::Store(e)) => Err(e.into()),
    }
}

/// `POST /repos/{o}/{r}/dispatches` `{event_type, client_payload}`: 204; runs the default
/// branch's workflows that listen to `repository_dispatch` (of that type).
pub async fn repository_dispatch(
    State(app): State<Arc<App>>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let (user, r) = authorize(&app, &headers, &owner, &repo, Role::Write)?;
    let body = json_object(&body)?;
    let event_type = match body.get("event_type") {
        Some(J::String(s)) if !s.is_empty() && s.chars().count() <= 100 => s.clone(),
        Some(_) => {
            return Err(ApiError::unprocessable(
                "Invalid request.\n\n'event_type' must be a string of 1 to 100 characters.",
                Some(
                    json!([{ "resource": "RepositoryDispatch", "field": "event_type", "code": "invalid" }]),
                ),
            ));
        }
        None => return Err(missing_field("RepositoryDispatch", "event_type")),
    };
    let client_payload = match body.get("client_payload") {
        None | Some(J::Null) => json!({}),
        Some(J::Object(m)) if m.len() <= 10 => J::Object(m.clone()),
        Some(J::Object(_)) => {
            return Err(ApiError::unprocessable(
                "Invalid request.\n\nNo more than 10 properties are allowed; 'client_payload' has more.",
                None,
            ));
        }
        Some(_) => {
            return Err(ApiError::unprocessable(
                "Invalid request.\n\nFor 'properties/client_payload', it is not an object.",
                None,
            ));
        }
    };
    let payload = json!({
        "action": event_type, "client_payload": client_payload,
        "repository": api_json::repository(&app.cfg.url, &r.name),
        "sender": api_json::user(&app.cfg.url, &user.login),
    });
    let inc = Incoming {
        event: "repository_dispatch".into(),
        payload,
        sha: None,
        git_ref: trigger::DEFAULT_BRANCH.into(),
        extra_refs: Vec::new(),
        actor: user.login.clone(),
        before: None,
        head_branch: String::new(),
        title: Some(event_type),
        delivery_id: None,
        only_workflow: None,
    };
    queue_dispatch(&app, r, inc, false).await
}

/// Gantry's own: the webhook delivery log (admin only), newest first.
pub async fn deliveries(
    State(app): State<Arc<App>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult {
    let user = authenticate(&app, &headers)?;
    if user.role < Role::Admin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Must have admin access to read deliveries.",
        ));
    }
    let (_, per) = paging(&q)?;
    let all = app.store.deliveries(per).await?;
    Ok(Json(json!({ "total_count": all.len(), "deliveries": all })).into_response())
}
