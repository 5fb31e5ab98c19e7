//! Who is looking: a session cookie made at sign-in from an API token of the config, or the
//! API's `Authorization` header (scripts, tests). Sessions live in the store with only the
//! SHA-256 of their id; every form carries the session's CSRF token and a POST from a
//! foreign origin is refused whatever it carries.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use sha2::{Digest, Sha256};
use sqlx::Row;
use subtle::ConstantTimeEq;

use super::view::{self, UiError};
use crate::config::User;
use crate::state::App;

const SESSION_COOKIE: &str = "gantry_session";
const LOGIN_COOKIE: &str = "gantry_login_csrf";
const SESSION_HOURS: i64 = 12;

pub fn session_cookie_name() -> &'static str {
    SESSION_COOKIE
}

/// The signed-in user of a request.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub user: User,
    /// The session's form token (None when the request came with an `Authorization` header,
    /// which a browser never attaches on its own, so it needs none).
    pub csrf: Option<String>,
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::getrandom(&mut b).expect("the system's random source");
    hex::encode(b)
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn secure(app: &App) -> &'static str {
    if app.cfg.url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

fn set_cookie(app: &App, name: &str, value: &str, path: &str, max_age: i64) -> HeaderValue {
    let v = format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
        secure(app)
    );
    HeaderValue::from_str(&v).expect("cookie text is ASCII")
}

/// The viewer, or None when nobody is signed in. A bad `Authorization` header is an error
/// (as in the API), not an anonymous request.
pub async fn viewer(app: &App, headers: &HeaderMap) -> Result<Option<Viewer>, UiError> {
    if headers.contains_key(header::AUTHORIZATION) {
        let user = crate::api::authenticate(app, headers).map_err(|_| UiError::BadCredentials)?;
        return Ok(Some(Viewer {
            user: user.clone(),
            csrf: None,
        }));
    }
    let Some(id) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let row = sqlx::query(
        "SELECT login, csrf, expires_at FROM web_sessions WHERE id_sha256 = $1 AND expires_at > $2",
    )
    .bind(sha256_hex(&id))
    .bind(crate::store::now())
    .fetch_optional(&app.store.read)
    .await
    .map_err(crate::store::StoreError::from)?;
    let Some(row) = row else { return Ok(None) };
    let login: String = row.try_get(0).map_err(crate::store::StoreError::from)?;
    // The config decides the role on every request; a user removed from it is signed out.
    let Some(user) = app.cfg.users.iter().find(|u| u.login == login) else {
        return Ok(None);
    };
    Ok(Some(Viewer {
        user: user.clone(),
        csrf: Some(row.try_get(1).map_err(crate::store::StoreError::from)?),
    }))
}

/// The viewer of a page that needs one (else: to the sign-in page, then back).
pub async fn require(app: &App, headers: &HeaderMap, here: &str) -> Result<Viewer, UiError> {
    viewer(app, headers)
        .await?
        .ok_or_else(|| UiError::SignIn(here.to_string()))
}

/// True when the request comes from our own pages: no `Origin` (not a browser's
/// cross-origin request) or one naming this server, and not marked cross-site.
fn same_origin(app: &App, headers: &HeaderMap) -> bool {
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    origin == app.cfg.url.trim_end_matches('/')
        || host.is_some_and(|h| origin == format!("http://{h}") || origin == format!("https://{h}"))
}

fn tokens_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The viewer of a form POST, after the origin and CSRF checks.
pub async fn check_post(
    app: &App,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Viewer, UiError> {
    if !same_origin(app, headers) {
        return Err(UiError::Csrf("the form was posted from another site"));
    }
    let v = viewer(app, headers)
        .await?
        .ok_or(UiError::SignIn("/".into()))?;
    if let Some(expected) = &v.csrf {
        let given = form.get("_csrf").map(String::as_str).unwrap_or("");
        if !tokens_equal(given, expected) {
            return Err(UiError::Csrf("the form's CSRF token is missing or wrong"));
        }
    }
    Ok(v)
}

/// Only our own paths (no `//host`, no scheme) are followed after sign-in.
fn safe_next(next: Option<&String>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.clone(),
        _ => "/".into(),
    }
}

pub async fn login_page(
    State(app): State<Arc<App>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    login_form(&app, &safe_next(q.get("next")), None)
}

fn login_form(app: &App, next: &str, problem: Option<&str>) -> Response {
    let csrf = random_hex(16);
    let body = html! {
        section.signin {
            h1 { "Sign in to Gantry" }
            @if let Some(p) = problem { p.flash.bad role="alert" { (p) } }
            form method="post" action="/login" {
                input type="hidden" name="_csrf" value=(csrf);
                input type="hidden" name="next" value=(next);
                label for="token" { "API token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
                p.hint { "A token of a user in the server's config (" code { "users:" } ")." }
                button.primary type="submit" { "Sign in" }
            }
        }
    };
    let mut resp = view::page("Sign in", None, body).into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(app, LOGIN_COOKIE, &csrf, "/login", 3600),
    );
    resp
}

pub async fn login(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, UiError> {
    if !same_origin(&app, &headers) {
        return Err(UiError::Csrf("the form was posted from another site"));
    }
    let given = form.get("_csrf").map(String::as_str).unwrap_or("");
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !tokens_equal(given, &expected) {
        return Err(UiError::Csrf("the form's CSRF token is missing or wrong"));
    }
    let next = safe_next(form.get("next"));
    let token = form.get("token").map(|t| t.trim()).unwrap_or("");
    let Some(user) = app.cfg.user_by_token(token) else {
        let mut r = login_form(&app, &next, Some("That token is not one of this server's."));
        *r.status_mut() = axum::http::StatusCode::UNAUTHORIZED;
        return Ok(r);
    };
    let id = random_hex(32);
    let expires = chrono::Utc::now() + chrono::Duration::hours(SESSION_HOURS);
    sqlx::query(
        "INSERT INTO web_sessions (id_sha256, login, csrf, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(sha256_hex(&id))
    .bind(&user.login)
    .bind(random_hex(16))
    .bind(crate::store::now())
    .bind(expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    .execute(&app.store.pool)
    .await
    .map_err(crate::store::StoreError::from)?;
    let mut resp = Redirect::to(&next).into_response();
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(&app, SESSION_COOKIE, &id, "/", SESSION_HOURS * 3600),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(&app, LOGIN_COOKIE, "", "/login", 0),
    );
    Ok(resp)
}

pub async fn logout(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, UiError> {
    check_post(&app, &headers, &form).await?;
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        sqlx::query("DELETE FROM web_sessions WHERE id_sha256 = $1")
            .bind(sha256_hex(&id))
            .execute(&app.store.pool)
            .await
            .map_err(crate::store::StoreError::from)?;
    }
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&app, SESSION_COOKIE, "", "/", 0),
    );
    Ok(resp)
}
