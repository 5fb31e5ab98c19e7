//! GitHub's artifact and check-run annotation endpoints under `/api/v3` (same paths and
//! JSON shapes): a run's artifacts, one artifact, its zip, a check run's (job's)
//! annotations. Looking needs `read`; an artifact or job of another repository is 404,
//! as an unknown repository is.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::stream;
use serde_json::{Value as J, json};
use tokio::io::AsyncReadExt;

use crate::api::{ApiError, ApiResult, authorize, find_run, link_header, paged, paging};
use crate::config::Role;
use crate::state::App;
use crate::store::ArtifactRecord;
use crate::store_reports::{AnnotationRecord, artifact_zip};
use crate::store_runs::RunRecord;

pub fn routes() -> Router<Arc<App>> {
    let repo = "/api/v3/repos/{owner}/{repo}";
    Router::new()
        .route(
            &format!("{repo}/actions/runs/{{run}}/artifacts"),
            get(run_artifacts),
        )
        .route(
            &format!("{repo}/actions/artifacts/{{id}}"),
            get(get_artifact),
        )
        .route(
            &format!("{repo}/actions/artifacts/{{id}}/zip"),
            get(artifact_zip_download),
        )
        .route(
            &format!("{repo}/check-runs/{{id}}/annotations"),
            get(check_run_annotations),
        )
}

/// GitHub's artifact object.
pub fn artifact_json(base: &str, run: &RunRecord, a: &ArtifactRecord) -> J {
    let api = format!(
        "{base}/api/v3/repos/{}/actions/artifacts/{}",
        run.repo, a.id
    );
    let expired =
        chrono::DateTime::parse_from_rfc3339(&a.expires_at).is_ok_and(|t| t < chrono::Utc::now());
    json!({
        "id": a.id, "node_id": format!("MDg6QXJ0aWZhY3Q{}", a.id), "name": a.name,
        "size_in_bytes": a.size_in_bytes, "url": api,
        "archive_download_url": format!("{api}/zip"), "expired": expired,
        "created_at": a.created_at, "updated_at": a.created_at, "expires_at": a.expires_at,
        "workflow_run": {
            "id": run.id, "repository_id": crate::api_json::name_id(&run.repo),
            "head_repository_id": crate::api_json::name_id(&run.repo),
            "head_branch": run.head_branch, "head_sha": run.head_sha,
        },
    })
}

/// GitHub's check-run annotation object (`path` is `.github` for one without a file).
pub fn annotation_json(a: &AnnotationRecord) -> J {
    json!({
        "path": a.path.as_deref().unwrap_or(".github"),
        "blob_href": "",
        "start_line": a.start_line.unwrap_or(1), "end_line": a.start_line.unwrap_or(1),
        "start_column": a.start_column, "end_column": a.start_column,
        "annotation_level": a.level, "title": a.title.as_deref().unwrap_or(""),
        "message": a.message, "raw_details": "",
    })
}

async fn run_artifacts(
    State(app): State<Arc<App>>,
    Path((owner, repo, run_id)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult {
    let (_, r) = authorize(&app, &headers, &owner, &repo, Role::Read)?;
    let run = find_run(&app, &r.name, &run_id).await?;
    let (page, per_page) = paging(&q)?;
    let all: Vec<ArtifactRecord> = app
        .store
        .artifacts(run.id)
        .await?
        .into_iter()
        .filter(|a| q.get("name").is_none_or(|n| *n == a.name))
        .collect();
    let total = all.len() as i64;
    let shown: Vec<J> = all
        .iter()
        .skip(((page - 1) * per_page) as usize)
        .take(per_page as usize)
        .map(|a| artifact_json(&app.cfg.url, &run, a))
        .collect();
    let path = format!("/api/v3/repos/{}/actions/runs/{}/artifacts", r.name, run.id);
    let url = format!("{}{path}", app.cfg.url.trim_end_matches('/'));
    let link = link_header(&url, &q, page, per_page, total);
    Ok(paged(
        json!({ "total_count": total, "artifacts": shown }),
        link,
    ))
}

/// The artifact `id` of repository `repo` and its run, or 404.
async fn find_artifact(
    app: &App,
    repo: &str,
    id: &str,
) -> Result<(RunRecord, ArtifactRecord), ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::not_found())?;
    let a = app
        .store
        .repo_artifact(repo, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let run = find_run(app, repo, &a.run_id.to_string()).await?;
    Ok((run, a))
}

async fn get_artifact(
    State(app): State<Arc<App>>,
    Path((owner, repo, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let (_, r) = authorize(&app, &headers, &owner, &repo, Role::Read)?;
    let (run, a) = find_artifact(&app, &r.name, &id).await?;
    Ok(Json(artifact_json(&app.cfg.url, &run, &a)).into_response())
}

/// GitHub answers with a redirect to a short-lived zip URL; Gantry answers the zip itself
/// (clients follow the redirect, so both end with the zip's bytes).
async fn artifact_zip_download(
    State(app): State<Arc<App>>,
    Path((owner, repo, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let (_, r) = authorize(&app, &headers, &owner, &repo, Role::Read)?;
    let (_, a) = find_artifact(&app, &r.name, &id).await?;
    zip_response(&app, &a)
        .await
        .ok_or_else(|| ApiError::new(StatusCode::GONE, "Artifact has expired"))
}

/// The artifact's zip as a streamed download (`None` when its file is gone).
pub async fn zip_response(app: &App, a: &ArtifactRecord) -> Option<Response> {
    let file = tokio::fs::File::open(artifact_zip(&app.cfg.data, a.run_id, a.id))
        .await
        .ok()?;
    let len = file.metadata().await.ok()?.len();
    let body = stream::unfold(file, |mut f| async move {
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(buf), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    let name: String = a
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Some(
        (
            [
                (header::CONTENT_TYPE, "application/zip".to_string()),
                (header::CONTENT_LENGTH, len.to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}.zip\""),
                ),
            ],
            Body::from_stream(body),
        )
            .into_response(),
    )
}

async fn check_run_annotations(
    State(app): State<Arc<App>>,
    Path((owner, repo, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let (_, r) = authorize(&app, &headers, &owner, &repo, Role::Read)?;
    let id: i64 = id.parse().map_err(|_| ApiError::not_found())?;
    let job = app
        .store
        .get_job(&r.name, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let list: Vec<J> = app
        .store
        .job_annotations(job.id)
        .await?
        .iter()
        .map(annotation_json)
        .collect();
    Ok(Json(J::Array(list)).into_response())
}
