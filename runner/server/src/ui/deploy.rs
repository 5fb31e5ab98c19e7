//! A repository's deployments, per environment, newest first, with who reviewed them.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Html;
use indexmap::IndexMap;
use maud::html;

use super::auth;
use super::view::{self, UiError};
use crate::config::Role;
use crate::state::App;
use crate::store::{ApprovalRecord, DeploymentRecord};

pub async fn page(
    State(app): State<Arc<App>>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Html<String>, UiError> {
    let here = format!("/{owner}/{repo}/deployments");
    let v = auth::require(&app, &headers, &here).await?;
    let r = view::repository(&app, &v, &owner, &repo, Role::Read)?;
    let all = app.store.deployments(&r.name).await?;
    // Configured environments first (in config order), then any others deployments name.
    let mut by_env: IndexMap<String, Vec<(DeploymentRecord, Vec<ApprovalRecord>)>> = r
        .environments
        .keys()
        .map(|k| (k.clone(), Vec::new()))
        .collect();
    for d in all {
        let reviews = app
            .store
            .approvals(d.run_id)
            .await?
            .into_iter()
            .filter(|a| a.environment == d.environment)
            .collect();
        by_env
            .entry(d.environment.clone())
            .or_default()
            .push((d, reviews));
    }
    let body = html! {
        nav.crumbs { a href="/" { "Repositories" } " / " a href={"/" (r.name) "/actions"} { (r.name) } " / " strong { "Deployments" } }
        h1 { "Deployments" }
        @for (env, list) in &by_env {
            section.env {
                h2 { (env) }
                @if list.is_empty() { p.muted { "No deployments yet." } }
                @else {
                    table.runs {
                        thead { tr { th { "State" } th { "Version" } th { "Ref" } th { "Run" } th { "By" } th { "Reviews" } th { "When" } } }
                        tbody {
                            @for (d, reviews) in list {
                                tr {
                                    td { (view::status_icon(&d.state)) " " (d.state) }
                                    td { code { (view::short_sha(&d.sha)) } }
                                    td { code { (d.git_ref) } }
                                    td { a href={"/" (r.name) "/actions/runs/" (d.run_id)} { "run " (d.run_id) } }
                                    td { (d.creator) }
                                    td {
                                        @for a in reviews { div { (a.state) " by " (a.reviewer) " " span.muted { (view::time(&a.created_at)) } } }
                                        @if reviews.is_empty() { span.muted { "—" } }
                                    }
                                    td { (view::time(&d.created_at)) }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if by_env.is_empty() { p.muted { "This repository has no environments." } }
    };
    Ok(view::page(
        &format!("Deployments · {}", r.name),
        Some(&v),
        body,
    ))
}
