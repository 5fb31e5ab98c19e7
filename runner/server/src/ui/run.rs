//! A run's page (summary, approval banner, job graph, jobs, annotations, step summaries,
//! artifacts) and its buttons:
//! cancel, re-run, re-run failed jobs (the store operations the API uses, same roles).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;

use super::approve;
use super::approve_form;
use super::auth;
use super::graph;
use super::report;
use super::view::{self, UiError};
use crate::config::Role;
use crate::state::{App, LiveEvent};
use crate::store_runs::RunRecord;

pub async fn find_run(app: &App, repo: &str, id: &str) -> Result<RunRecord, UiError> {
    let id: i64 = id.parse().map_err(|_| UiError::NotFound)?;
    app.store.get_run(repo, id).await?.ok_or(UiError::NotFound)
}

pub async fn page(
    State(app): State<Arc<App>>,
    Path((owner, repo, run_id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Html<String>, UiError> {
    let here = format!("/{owner}/{repo}/actions/runs/{run_id}");
    let v = auth::require(&app, &headers, &here).await?;
    let r = view::repository(&app, &v, &owner, &repo, Role::Read)?;
    let run = find_run(&app, &r.name, &run_id).await?;
    let jobs = app.store.run_jobs(run.id, run.run_attempt).await?;
    let artifacts = app.store.artifacts(run.id).await?;
    let annotations = app.store.run_annotations(run.id).await?;
    let summaries = app.store.run_summaries(run.id).await?;
    let pending = approve::pending(&app, r, &run, &v.user).await?;
    let base = format!("/{}/actions/runs/{}", r.name, run.id);
    let href = |id: i64| format!("{base}/job/{id}");
    let st = view::shown_status(&run.status, run.conclusion.as_deref());
    let writer = v.user.role >= Role::Write;
    let body = html! {
        nav.crumbs { a href="/" { "Repositories" } " / " a href={"/" (r.name) "/actions"} { (r.name) } " / run " (run.id) }
        div #live data-live={"/" (r.name) "/actions/live?run=" (run.id)} {
            div #summary data-swap="" {
                h1 { (view::status_icon(st)) " " (run.display_title) }
                p.muted {
                    (run.name) " #" (run.run_number) " · attempt " (run.run_attempt) " · " (run.event)
                    " on " code { (run.head_branch) } " · " code { (view::short_sha(&run.head_sha)) }
                    " · by " (run.actor) " · started " (view::time(&run.run_started_at))
                    " · " (view::duration(Some(&run.run_started_at), (run.status == "completed").then_some(run.updated_at.as_str())))
                    " · " span.status data-status=(st) { (st) }
                }
                @if writer {
                    div.buttons {
                        @if run.status != "completed" {
                            form.inline method="post" action={(base) "/cancel"} { (view::csrf_input(&v)) button.danger type="submit" { "Cancel run" } }
                        } @else {
                            form.inline method="post" action={(base) "/rerun"} { (view::csrf_input(&v)) button type="submit" { "Re-run all jobs" } }
                            @if matches!(st, "failure" | "cancelled") {
                                form.inline method="post" action={(base) "/rerun-failed"} { (view::csrf_input(&v)) button type="submit" { "Re-run failed jobs" } }
                            }
                        }
                    }
                }
            }
            (approve_form::banner(&pending, &v, &format!("{base}/review")))
            section #graph data-swap="" {
                h2 { "Jobs" }
                div.graph-wrap { (graph::svg(&jobs, &href)) }
                ul.jobs {
                    @for j in &jobs {
                        @let js = view::shown_status(&j.status, j.conclusion.as_deref());
                        li { (view::status_icon(js)) " " a href=(href(j.id)) { (j.name) }
                            span.muted { " " (view::duration(j.started_at.as_deref(), j.completed_at.as_deref())) }
                            @if let Some(e) = &j.environment { " " span.tag { "env: " (e) } } }
                    }
                }
            }
            (report::annotations(&annotations, &jobs, &href))
            (report::summaries(&summaries, &jobs))
            (report::artifacts(&artifacts, &base))
        }
    };
    Ok(view::page(
        &format!("{} #{}", run.name, run.run_number),
        Some(&v),
        body,
    ))
}

async fn act(
    app: &App,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
    (owner, repo, run_id): (String, String, String),
    what: Action,
) -> Result<Response, UiError> {
    let v = auth::check_post(app, headers, form).await?;
    let r = view::repository(app, &v, &owner, &repo, Role::Write)?;
    let run = find_run(app, &r.name, &run_id).await?;
    match what {
        Action::Cancel => {
            if !app.store.cancel_run(run.id).await? {
                return Err(UiError::Conflict(
                    "Cannot cancel a workflow run that is completed.".into(),
                ));
            }
        }
        Action::Rerun { failed_only } => {
            if app
                .store
                .rerun(run.id, &v.user.login, failed_only)
                .await?
                .is_none()
            {
                return Err(UiError::Conflict(
                    "This workflow run is not completed and cannot be re-run.".into(),
                ));
            }
            app.runs_queued.notify_one();
        }
    }
    app.announce(LiveEvent::Run {
        repo: r.name.clone(),
        run_id: run.id,
    });
    Ok(Redirect::to(&format!("/{}/actions/runs/{}", r.name, run.id)).into_response())
}

enum Action {
    Cancel,
    Rerun { failed_only: bool },
}

type RunPath = Path<(String, String, String)>;

pub async fn cancel(
    State(app): State<Arc<App>>,
    Path(p): RunPath,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, UiError> {
    act(&app, &headers, &form, p, Action::Cancel).await
}

pub async fn rerun(
    State(app): State<Arc<App>>,
    Path(p): RunPath,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, UiError> {
    act(
        &app,
        &headers,
        &form,
        p,
        Action::Rerun { failed_only: false },
    )
    .await
}

pub async fn rerun_failed(
    State(app): State<Arc<App>>,
    Path(p): RunPath,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, UiError> {
    act(
        &app,
        &headers,
        &form,
        p,
        Action::Rerun { failed_only: true },
    )
    .await
}
