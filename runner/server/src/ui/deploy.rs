//! A repository's deployments, per environment, newest first: who reviewed them, the
//! health-check verdict with its measurements, rollbacks and what they went back to.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Html;
use indexmap::IndexMap;
use maud::{Markup, html};

use super::auth;
use super::view::{self, UiError};
use crate::config::Role;
use crate::state::App;
use crate::store::{ApprovalRecord, DeploymentRecord};
use crate::store_reports::{HealthRecord, OutcomeRecord};

/// One deployment as the page shows it.
struct Shown {
    d: DeploymentRecord,
    reviews: Vec<ApprovalRecord>,
    health: Vec<HealthRecord>,
    outcomes: Vec<OutcomeRecord>,
}

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
    let mut by_env: IndexMap<String, Vec<Shown>> = r
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
        let health = app.store.health(d.run_id, &d.environment).await?;
        let outcomes = app.store.outcomes(d.run_id, &d.environment).await?;
        by_env
            .entry(d.environment.clone())
            .or_default()
            .push(Shown {
                d,
                reviews,
                health,
                outcomes,
            });
    }
    let body = html! {
        nav.crumbs { a href="/" { "Repositories" } " / " a href={"/" (r.name) "/actions"} { (r.name) } " / " strong { "Deployments" } }
        h1 { "Deployments" }
        @for (env, list) in &by_env {
            section.env id={"env-" (env)} {
                h2 { (env) }
                @if list.is_empty() { p.muted { "No deployments yet." } }
                @else {
                    table.runs {
                        thead { tr { th { "State" } th { "Version" } th { "Ref" } th { "Run" } th { "By" } th { "Reviews" } th { "Health" } th { "When" } } }
                        tbody {
                            @for Shown { d, reviews, health, outcomes } in list {
                                tr.deployment {
                                    td { (view::status_icon(&d.state)) " " (d.state) }
                                    td { code { (view::short_sha(&d.sha)) } }
                                    td { code { (d.git_ref) } }
                                    td { a href={"/" (r.name) "/actions/runs/" (d.run_id)} { "run " (d.run_id) } }
                                    td { (d.creator) }
                                    td {
                                        @for a in reviews { div { (a.state) " by " (a.reviewer) " " span.muted { (view::time(&a.created_at)) } } }
                                        @if reviews.is_empty() { span.muted { "—" } }
                                    }
                                    td.health { (verdict(health, outcomes)) }
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

/// The health-check verdict (from the deployment's outcome), the rollback and what it went
/// back to, and the measurements behind it.
fn verdict(health: &[HealthRecord], outcomes: &[OutcomeRecord]) -> Markup {
    let passed = health.iter().filter(|h| h.phase == "successful").count();
    html! {
        @for o in outcomes {
            div class={"verdict verdict-" (o.kind)} {
                @match o.kind.as_str() {
                    "succeeded" => { (view::status_icon("success")) " healthy" @if let Some(u) = &o.url { " " code { (u) } } },
                    "failed" => { (view::status_icon("failure")) " unhealthy: " (o.message) },
                    _ => {
                        (view::status_icon("cancelled")) " rolled back"
                        @if let Some(to) = &o.to_sha { " to " code.rollback-to { (view::short_sha(to)) } }
                        @match o.healthy {
                            Some(true) => { " (healthy after rollback)" },
                            Some(false) => { " (still unhealthy after rollback)" },
                            None => {},
                        }
                        @if !o.message.is_empty() { div.muted { (o.message) } }
                    },
                }
            }
        }
        @if !health.is_empty() {
            details.measurements {
                summary { (passed) " of " (health.len()) " measurements passed" }
                table.measures {
                    thead { tr { th { "Probe" } th { "#" } th { "Result" } th { "Status" } th { "Value" } th { "Latency" } th { "At" } } }
                    tbody {
                        @for h in health {
                            tr class={"m-" (h.phase)} {
                                td { (h.probe) } td { (h.seq) } td { (h.phase) }
                                td { @if let Some(s) = h.status_code { (s) } @else { "—" } }
                                td { @if let Some(v) = &h.value { (v) } @if let Some(m) = &h.message { " " span.muted { (m) } } }
                                td { (h.latency_ms) " ms" } td { (view::time(&h.measured_at)) }
                            }
                        }
                    }
                }
            }
        }
        @if outcomes.is_empty() && health.is_empty() { span.muted { "—" } }
    }
}
