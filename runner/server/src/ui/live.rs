//! Live pages: a server-sent event stream that says "changed" when what a page shows has
//! changed in the store. It is woken by `App::live` (changes made in this process) and by
//! a one-second poll (changes written by any other process on the same database); the
//! page's script then re-reads itself and swaps the parts marked `data-swap`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use sqlx::Row;
use tokio::sync::broadcast;

use super::auth;
use super::view::{self, UiError};
use crate::config::Role;
use crate::state::{App, LiveEvent};

/// How often the store is re-read when nothing in this process announced a change.
pub const POLL: Duration = Duration::from_secs(1);

/// A summary of what a runs list (and, with `run`, a run page) shows; equal summaries mean
/// nothing visible changed.
async fn fingerprint(app: &App, repo: &str, run: Option<i64>) -> Result<String, sqlx::Error> {
    let row =
        sqlx::query("SELECT COUNT(*), COALESCE(MAX(updated_at), '') FROM runs WHERE repo = $1")
            .bind(repo)
            .fetch_one(&app.store.read)
            .await?;
    let mut fp = format!(
        "{}|{}",
        row.try_get::<i64, _>(0)?,
        row.try_get::<String, _>(1)?
    );
    if let Some(id) = run {
        let rows = sqlx::query(
            "SELECT j.id, j.status, COALESCE(j.conclusion, ''), \
             (SELECT COUNT(*) FROM steps s WHERE s.job_id = j.id AND s.status = 'completed') \
             FROM jobs j WHERE j.run_id = $1 ORDER BY j.id",
        )
        .bind(id)
        .fetch_all(&app.store.read)
        .await?;
        for r in rows {
            fp.push_str(&format!(
                "|{}:{}:{}:{}",
                r.try_get::<i64, _>(0)?,
                r.try_get::<String, _>(1)?,
                r.try_get::<String, _>(2)?,
                r.try_get::<i64, _>(3)?
            ));
        }
        let a = sqlx::query("SELECT COUNT(*) FROM approvals WHERE run_id = $1")
            .bind(id)
            .fetch_one(&app.store.read)
            .await?;
        fp.push_str(&format!("|a{}", a.try_get::<i64, _>(0)?));
    }
    Ok(fp)
}

/// Waits for the next wake-up: an announced change or the poll interval.
pub async fn wake(rx: &mut broadcast::Receiver<LiveEvent>) {
    tokio::select! {
        r = rx.recv() => { if let Err(broadcast::error::RecvError::Closed) = r { tokio::time::sleep(POLL).await } }
        _ = tokio::time::sleep(POLL) => {}
    }
}

/// An SSE response with heartbeats, and told not to be buffered by a proxy.
pub fn sse_response<S>(events: S) -> Response
where
    S: futures_util::Stream<Item = Result<Event, Infallible>> + Send + 'static,
{
    let mut resp = Sse::new(events)
        .keep_alive(
            KeepAlive::new()
                .interval(Duration::from_secs(15))
                .text("heartbeat"),
        )
        .into_response();
    let h = resp.headers_mut();
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    resp
}

pub async fn watch(
    State(app): State<Arc<App>>,
    Path((owner, repo)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, UiError> {
    let v = auth::require(&app, &headers, "/").await?;
    let name = view::repository(&app, &v, &owner, &repo, Role::Read)?
        .name
        .clone();
    let run: Option<i64> = q.get("run").and_then(|r| r.parse().ok());
    let first = fingerprint(&app, &name, run)
        .await
        .map_err(crate::store::StoreError::from)?;
    let rx = app.live.subscribe();
    let events = stream::unfold((app, rx, first), move |(app, mut rx, last)| {
        let name = name.clone();
        async move {
            loop {
                wake(&mut rx).await;
                match fingerprint(&app, &name, run).await {
                    Ok(fp) if fp != last => {
                        let ev = Event::default().event("change").data("changed");
                        return Some((Ok(ev), (app, rx, fp)));
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("live page: {e}"),
                }
            }
        }
    });
    Ok(sse_response(events))
}
