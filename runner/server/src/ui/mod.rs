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

/// A user's or owner's `html_url`: the repositories list (what the viewer may see).
async fn owner_page() -> axum::response::Redirect {
    axum::response::Redirect::to("/")
}

/// A repository's `html_url`: its runs.
async fn repository_page(
    axum::extract::Path((owner, repo)): axum::extract::Path<(String, String)>,
) -> axum::response::Redirect {
    axum::response::Redirect::to(&format!(
        "/{}/{}/actions",
        view::urlencode(&owner),
        view::urlencode(&repo)
    ))
}
