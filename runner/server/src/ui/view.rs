//! What every page shares: the layout, refusals as pages, status icons and times, and the
//! role check (the API's rule: an unknown repository is 404 whatever the role).

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};

use super::auth::Viewer;
use crate::config::{Repository, Role};
use crate::state::App;

/// A request the UI refuses or cannot answer, shown as a page with a clear reason.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    #[error("sign in first")]
    SignIn(String),
    #[error("bad credentials in the Authorization header")]
    BadCredentials,
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Forbidden(String),
    #[error("refused: {0}")]
    Csrf(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("the run store is unavailable")]
    Store(#[from] crate::store::StoreError),
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let status = match &self {
            UiError::SignIn(next) => {
                let to = format!("/login?next={}", urlencode(next));
                return Redirect::to(&to).into_response();
            }
            UiError::BadCredentials => StatusCode::UNAUTHORIZED,
            UiError::NotFound => StatusCode::NOT_FOUND,
            UiError::Forbidden(_) | UiError::Csrf(_) => StatusCode::FORBIDDEN,
            UiError::Conflict(_) => StatusCode::CONFLICT,
            UiError::Store(e) => {
                tracing::error!("store: {e}");
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        let body = html! {
            section.refusal {
                h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
                p { (self.to_string()) }
                p { a href="/" { "Repositories" } }
            }
        };
        (status, page(&status.to_string(), None, body)).into_response()
    }
}

pub fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|e| e[1..].to_string())
        .unwrap_or_default()
}

/// The page around `body`. `viewer` adds the signed-in user and the sign-out form.
pub fn page(title: &str, viewer: Option<&Viewer>, body: Markup) -> Html<String> {
    let m = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · Gantry" }
                link rel="stylesheet" href="/-/ui.css";
                script src="/-/ui.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "Gantry" }
                    @if let Some(v) = viewer {
                        span.who { (v.user.login) " · " (v.user.role.as_str()) }
                        @if v.csrf.is_some() {
                            form.inline method="post" action="/logout" {
                                (csrf_input(v))
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main #main { (body) }
            }
        }
    };
    Html(m.into_string())
}

pub fn csrf_input(v: &Viewer) -> Markup {
    html! { @if let Some(t) = &v.csrf { input type="hidden" name="_csrf" value=(t); } }
}

/// The configured repository `owner/repo` if the viewer has `role` on it.
pub fn repository<'a>(
    app: &'a App,
    v: &Viewer,
    owner: &str,
    repo: &str,
    role: Role,
) -> Result<&'a Repository, UiError> {
    let r = app
        .cfg
        .repository(&format!("{owner}/{repo}"))
        .ok_or(UiError::NotFound)?;
    if v.user.role < role {
        return Err(UiError::Forbidden(format!(
            "This needs {} access to {}; you have {}.",
            role.as_str(),
            r.name,
            v.user.role.as_str()
        )));
    }
    Ok(r)
}

/// The status GitHub shows: the conclusion once completed, else the status.
pub fn shown_status<'a>(status: &'a str, conclusion: Option<&'a str>) -> &'a str {
    match (status, conclusion) {
        ("completed", Some(c)) => c,
        (s, _) => s,
    }
}

/// An icon with its status as text for screen readers and without colour.
pub fn status_icon(status: &str) -> Markup {
    let glyph = match status {
        "success" => "✓",
        "failure" | "startup_failure" | "timed_out" => "✗",
        "cancelled" => "⊘",
        "skipped" | "neutral" => "⤼",
        "in_progress" => "◐",
        "waiting" | "action_required" => "‖",
        _ => "○",
    };
    html! { span class={"st st-" (status)} title=(status) role="img" aria-label=(status) { (glyph) } }
}

fn parse_time(t: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|d| d.with_timezone(&chrono::Utc))
}

/// `1h 2m`, `3m 4s`, `5s` between two stored times (the end defaults to now).
pub fn duration(start: Option<&str>, end: Option<&str>) -> String {
    let Some(s) = start.and_then(parse_time) else {
        return "—".into();
    };
    let e = end.and_then(parse_time).unwrap_or_else(chrono::Utc::now);
    let secs = (e - s).num_seconds().max(0);
    match secs {
        s if s >= 3600 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m {}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// A stored time as a `<time>` element (UTC, machine-readable for the script).
pub fn time(t: &str) -> Markup {
    let shown = t.replace('T', " ").trim_end_matches('Z').to_string();
    html! { time datetime=(t) { (shown) " UTC" } }
}

pub fn short_sha(sha: &str) -> &str {
    &sha[..sha.len().min(7)]
}
