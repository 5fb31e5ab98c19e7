//! The web UI of `gantry serve`: server-rendered pages (maud) over the run store, one CSS
//! and one JS file embedded in the binary, live updates over server-sent events. Pages
//! read the store only, so what any process writes there shows up (see `live`).

pub mod approve;
mod approve_form;
mod assets;
mod auth;
mod deploy;
mod graph;
mod live;
mod log;
mod log_render;
mod markdown;
mod pages;
mod report;
mod run;
mod view;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Redirect;
use axum::routing::{get, post};

use crate::state::App;

pub use auth::{Viewer, session_cookie_name};

/// Every page and form of the UI (merged into the server's router).
pub fn routes() -> Router<Arc<App>> {
    let run = "/{owner}/{repo}/actions/runs/{run}";
    Router::new()
        .route("/", get(pages::repositories))
        .route("/-/ui.css", get(assets::css))
        .route("/-/ui.js", get(assets::js))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/{owner}/{repo}/actions", get(pages::runs))
        .route("/{owner}/{repo}/actions/live", get(live::watch))
        .route("/{owner}/{repo}/deployments", get(deploy::page))
        .route(run, get(run::page))
        .route(&format!("{run}/cancel"), post(run::cancel))
        .route(&format!("{run}/rerun"), post(run::rerun))
        .route(&format!("{run}/rerun-failed"), post(run::rerun_failed))
        .route(&format!("{run}/review"), post(approve_form::post))
        .route(&format!("{run}/job/{{job}}"), get(log::page))
        .route(&format!("{run}/job/{{job}}/stream"), get(log::stream))
        .route(&format!("{run}/job/{{job}}/raw"), get(log::raw))
        .route(&format!("{run}/artifacts/{{id}}"), get(report::download))
        // What the API's `html_url`s of users and repositories name (GitHub's profile and
        // repository pages): the pages that show them here.
        .route("/{owner}", get(owner_page))
        .route("/{owner}/{repo}", get(repository_page))
}

/// A user's or owner's `html_url`: the repositories list (what the viewer may see). Only
/// for names the config knows: anything else (a browser's `/favicon.ico`) stays a 404,
/// so it never passes through the sign-in page.
async fn owner_page(
    State(app): State<Arc<App>>,
    Path(owner): Path<String>,
) -> Result<Redirect, StatusCode> {
    let known = app.cfg.users.iter().any(|u| u.login == owner)
        || app
            .cfg
            .repositories
            .iter()
            .any(|r| r.name.split('/').next() == Some(owner.as_str()));
    known
        .then(|| Redirect::to("/"))
        .ok_or(StatusCode::NOT_FOUND)
}

/// A repository's `html_url`: its runs (a 404 for repositories the server does not serve).
async fn repository_page(
    State(app): State<Arc<App>>,
    Path((owner, repo)): Path<(String, String)>,
) -> Result<Redirect, StatusCode> {
    let r = app
        .cfg
        .repository(&format!("{owner}/{repo}"))
        .ok_or(StatusCode::NOT_FOUND)?;
    Ok(Redirect::to(&format!("/{}/actions", r.name)))
}
