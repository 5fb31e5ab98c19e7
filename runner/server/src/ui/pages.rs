//! The repositories page and a repository's runs (newest first, filters, paging).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Html;
use maud::html;

use super::auth;
use super::view::{self, UiError};
use crate::config::Role;
use crate::state::App;
use crate::store_runs::RunFilter;

const PER_PAGE: i64 = 25;

pub async fn repositories(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Html<String>, UiError> {
    let v = auth::require(&app, &headers, "/").await?;
    // Every configured repository is visible to every user with a role (read and up),
    // as in the API.
    let mut rows = Vec::new();
    for r in &app.cfg.repositories {
        let (total, latest) = app
            .store
            .list_runs(&r.name, &RunFilter::default(), 1, 1)
            .await?;
        rows.push((r, total, latest.into_iter().next()));
    }
    let body = html! {
        h1 { "Repositories" }
        ul.cards {
            @for (r, total, latest) in &rows {
                li.card {
                    a.title href={"/" (r.name) "/actions"} { (r.name) }
                    span.muted { (r.forge.as_str()) " · " (total) " runs" }
                    @if let Some(l) = latest {
                        span {
                            (view::status_icon(view::shown_status(&l.status, l.conclusion.as_deref())))
                            " " a href={"/" (r.name) "/actions/runs/" (l.id)} { (l.name) " #" (l.run_number) }
                        }
                    }
                    a.muted href={"/" (r.name) "/deployments"} { "Deployments" }
                }
            }
        }
    };
    Ok(view::page("Repositories", Some(&v), body))
}

pub async fn runs(
    State(app): State<Arc<App>>,
    Path((owner, repo)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Html<String>, UiError> {
    let here = format!("/{owner}/{repo}/actions");
    let v = auth::require(&app, &headers, &here).await?;
    let r = view::repository(&app, &v, &owner, &repo, Role::Read)?;
    let pick = |k: &str| q.get(k).filter(|s| !s.is_empty()).cloned();
    let workflows = app.store.workflows(&r.name).await?;
    let workflow_id = pick("workflow").and_then(|w| {
        workflows
            .iter()
            .find(|x| x.id.to_string() == w || x.path.ends_with(&format!("/{w}")))
            .map(|x| x.id)
    });
    let filter = RunFilter {
        workflow_id,
        status: pick("status"),
        branch: pick("branch"),
        event: pick("event"),
        ..RunFilter::default()
    };
    let page: i64 = q
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let (total, runs) = app
        .store
        .list_runs(&r.name, &filter, page, PER_PAGE)
        .await?;
    let last = ((total + PER_PAGE - 1) / PER_PAGE).max(1);
    let page_link = |p: i64| {
        let mut q2 = q.clone();
        q2.insert("page".into(), p.to_string());
        format!(
            "{here}?{}",
            serde_urlencoded::to_string(&q2).unwrap_or_default()
        )
    };
    let body = html! {
        nav.crumbs { a href="/" { "Repositories" } " / " (r.name) " / " strong { "Actions" }
            " · " a href={"/" (r.name) "/deployments"} { "Deployments" } }
        h1 { "All workflow runs" }
        form.filters method="get" action=(here) {
            label { "Status "
                select name="status" {
                    option value="" { "any" }
                    @for s in ["queued", "in_progress", "waiting", "completed", "success", "failure", "cancelled", "skipped"] {
                        option value=(s) selected[filter.status.as_deref() == Some(s)] { (s) }
                    }
                }
            }
            label { "Branch " input type="text" name="branch" value=[filter.branch.as_deref()] size="12"; }
            label { "Event " input type="text" name="event" value=[filter.event.as_deref()] size="12"; }
            label { "Workflow "
                select name="workflow" {
                    option value="" { "any" }
                    @for w in &workflows {
                        option value=(w.id) selected[workflow_id == Some(w.id)] { (w.name) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
        p.muted { (total) " runs" }
        div #live data-live={"/" (r.name) "/actions/live"} {
            table.runs {
                thead { tr { th { span.sr { "Status" } } th { "Run" } th { "Event" } th { "Branch" }
                    th { "Commit" } th { "Actor" } th { "Started" } th { "Duration" } } }
                tbody {
                    @for run in &runs {
                        @let st = view::shown_status(&run.status, run.conclusion.as_deref());
                        tr class={"run st-row-" (st)} {
                            td { (view::status_icon(st)) }
                            td {
                                a href={"/" (r.name) "/actions/runs/" (run.id)} { strong { (run.display_title) } }
                                br; span.muted { (run.name) " #" (run.run_number) }
                            }
                            td { (run.event) }
                            td { code { (run.head_branch) } }
                            td { code { (view::short_sha(&run.head_sha)) } }
                            td { (run.actor) }
                            td { (view::time(&run.run_started_at)) }
                            td { (view::duration(Some(&run.run_started_at),
                                   (run.status == "completed").then_some(run.updated_at.as_str()))) }
                        }
                    }
                    @if runs.is_empty() { tr { td colspan="8" { "No runs match." } } }
                }
            }
        }
        nav.paging aria-label="Pages" {
            @if page > 1 { a rel="prev" href=(page_link(page - 1)) { "← Newer" } }
            span { "Page " (page) " of " (last) }
            @if page < last { a rel="next" href=(page_link(page + 1)) { "Older →" } }
        }
    };
    Ok(view::page(&format!("Actions · {}", r.name), Some(&v), body))
}
