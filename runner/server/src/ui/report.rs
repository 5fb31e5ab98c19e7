//! What a run reports on its page besides the graph: annotations, step summaries (safe
//! Markdown), artifacts with download links; and the artifact download itself (same
//! roles as the API's `…/artifacts/{id}/zip`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{Markup, PreEscaped, html};

use super::auth;
use super::markdown;
use super::view::{self, UiError};
use crate::config::Role;
use crate::state::App;
use crate::store::ArtifactRecord;
use crate::store_reports::{AnnotationRecord, SummaryRecord};
use crate::store_runs::JobRecord;

fn level_icon(level: &str) -> Markup {
    let (glyph, label) = match level {
        "failure" => ("✗", "error"),
        "warning" => ("⚠", "warning"),
        _ => ("ℹ", "notice"),
    };
    html! { span class={"lvl lvl-" (level)} title=(label) role="img" aria-label=(label) { (glyph) } }
}

/// The annotations of the attempt's jobs (level, job, file:line, title, message).
pub fn annotations(
    list: &[AnnotationRecord],
    jobs: &[JobRecord],
    href: &dyn Fn(i64) -> String,
) -> Markup {
    let names: HashMap<i64, &str> = jobs.iter().map(|j| (j.id, j.name.as_str())).collect();
    let shown: Vec<&AnnotationRecord> = list
        .iter()
        .filter(|a| names.contains_key(&a.job_id))
        .collect();
    html! {
        section #annotations data-swap="" {
            h2 { "Annotations" }
            @if shown.is_empty() { p.muted { "None." } }
            @else {
                ul.annotations {
                    @for a in &shown {
                        li class={"annotation lvl-" (a.level)} {
                            (level_icon(&a.level)) " "
                            a href=(href(a.job_id)) { (names[&a.job_id]) }
                            @if let Some(p) = &a.path {
                                " " code.where { (p) @if let Some(l) = a.start_line { ":" (l) @if let Some(c) = a.start_column { ":" (c) } } }
                            }
                            @if let Some(t) = &a.title { " " strong { (t) } }
                            div.message { (a.message) }
                        }
                    }
                }
            }
        }
    }
}

/// The step summaries of the attempt's jobs, rendered from Markdown with raw HTML
/// escaped and unsafe URLs dropped (`markdown::render`).
pub fn summaries(list: &[SummaryRecord], jobs: &[JobRecord]) -> Markup {
    let names: HashMap<i64, &str> = jobs.iter().map(|j| (j.id, j.name.as_str())).collect();
    let mut by_job: Vec<(i64, Vec<&SummaryRecord>)> = Vec::new();
    for s in list.iter().filter(|s| names.contains_key(&s.job_id)) {
        match by_job.last_mut() {
            Some((id, v)) if *id == s.job_id => v.push(s),
            _ => by_job.push((s.job_id, vec![s])),
        }
    }
    html! {
        @if !by_job.is_empty() {
            section #summaries data-swap="" {
                @for (job, parts) in &by_job {
                    article.summary {
                        h2 { (names[job]) " summary" }
                        @for s in parts { div.markdown { (PreEscaped(markdown::render(&s.markdown))) } }
                    }
                }
            }
        }
    }
}

/// The run's artifacts with their download links.
pub fn artifacts(list: &[ArtifactRecord], base: &str) -> Markup {
    html! {
        section #artifacts data-swap="" {
            h2 { "Artifacts" }
            @if list.is_empty() { p.muted { "None." } }
            ul.artifacts {
                @for a in list {
                    li {
                        a.artifact href={(base) "/artifacts/" (a.id)} download={(a.name) ".zip"} { (a.name) }
                        " " span.muted { (a.size_in_bytes) " bytes, expires " (view::time(&a.expires_at)) }
                    }
                }
            }
        }
    }
}

/// `GET /{owner}/{repo}/actions/runs/{run}/artifacts/{id}`: the artifact's zip.
pub async fn download(
    State(app): State<Arc<App>>,
    Path((owner, repo, run_id, id)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, UiError> {
    let here = format!("/{owner}/{repo}/actions/runs/{run_id}/artifacts/{id}");
    let v = auth::require(&app, &headers, &here).await?;
    let r = view::repository(&app, &v, &owner, &repo, Role::Read)?;
    let id: i64 = id.parse().map_err(|_| UiError::NotFound)?;
    let a = app
        .store
        .repo_artifact(&r.name, id)
        .await?
        .filter(|a| a.run_id.to_string() == run_id)
        .ok_or(UiError::NotFound)?;
    crate::api_reports::zip_response(&app, &a)
        .await
        .ok_or(UiError::NotFound)
}
