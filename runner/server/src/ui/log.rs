//! A job's page: steps with durations, and its log. The page holds one window of the log
//! (≤ `WINDOW` bytes of chunks, the tail by default, earlier/later windows by link), so a
//! 100 MB log is never loaded whole; the live tail arrives over SSE, one event per stored
//! chunk with the chunk's `seq` as event id (so `Last-Event-ID` resumes where it broke).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::sse::Event;
use axum::response::{Html, IntoResponse, Response};
use futures_util::stream;
use maud::html;
use sqlx::Row;

use super::approve;
use super::approve_form;
use super::auth;
use super::live;
use super::log_render;
use super::run::find_run;
use super::view::{self, UiError};
use crate::config::Role;
use crate::state::{App, LiveEvent};
use crate::store::StoreError;
use crate::store_runs::JobRecord;

/// Bytes of log text one page shows at most.
pub const WINDOW: i64 = 512 * 1024;
/// Chunks read per query when streaming.
const BATCH: i64 = 64;
/// Chunk sizes read per query when finding a window.
const SIZE_BATCH: i64 = 256;

/// Lines in the job's chunks with `seq` below `before`, summed from each chunk's stored
/// line count (the `log_chunk_sizes` index: no chunk's text is read).
async fn lines_before(app: &App, job: i64, before: i64) -> Result<u64, StoreError> {
    let row = sqlx::query(
        "SELECT CAST(COALESCE(SUM(lines), 0) AS BIGINT) FROM log_chunks \
         WHERE job_id = $1 AND seq < $2",
    )
    .bind(job)
    .bind(before)
    .fetch_one(&app.store.read)
    .await?;
    Ok(row.try_get::<i64, _>(0)?.max(0) as u64)
}

/// `(seq, body)` of chunks with `from <= seq <= to`, in order.
async fn chunks(
    app: &App,
    job: i64,
    from: i64,
    to: i64,
    limit: i64,
) -> Result<Vec<(i64, String)>, StoreError> {
    let rows = sqlx::query(
        "SELECT seq, body FROM log_chunks WHERE job_id = $1 AND seq >= $2 AND seq <= $3 \
         ORDER BY seq LIMIT $4",
    )
    .bind(job)
    .bind(from)
    .bind(to)
    .bind(limit)
    .fetch_all(&app.store.read)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// The seq range of the window and the last seq: forward from `from`, else back from
/// `before` (default: the tail), adding stored chunk sizes up to `WINDOW`. The sizes come
/// from the index in batches, so the cost follows the window, not the length of the log.
async fn window(
    app: &App,
    job: i64,
    from: Option<i64>,
    before: Option<i64>,
) -> Result<(i64, i64, i64), StoreError> {
    let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM log_chunks WHERE job_id = $1")
        .bind(job)
        .fetch_one(&app.store.read)
        .await?;
    let max: i64 = row.try_get(0)?;
    let forward = from.is_some();
    let sql = if forward {
        "SELECT seq, bytes FROM log_chunks WHERE job_id = $1 AND seq >= $2 \
         ORDER BY seq LIMIT $3"
    } else {
        "SELECT seq, bytes FROM log_chunks WHERE job_id = $1 AND seq < $2 \
         ORDER BY seq DESC LIMIT $3"
    };
    // The next batch starts at `cursor` (inclusive going forward, exclusive going back).
    let mut cursor = from.unwrap_or_else(|| before.unwrap_or(i64::MAX));
    let (mut total, mut seqs) = (0, Vec::new());
    'batches: loop {
        let rows = sqlx::query(sql)
            .bind(job)
            .bind(cursor)
            .bind(SIZE_BATCH)
            .fetch_all(&app.store.read)
            .await?;
        for r in &rows {
            let (seq, len): (i64, i64) = (r.try_get(0)?, r.try_get(1)?);
            if total + len > WINDOW && !seqs.is_empty() {
                break 'batches;
            }
            total += len;
            seqs.push(seq);
            cursor = if forward { seq + 1 } else { seq };
        }
        if (rows.len() as i64) < SIZE_BATCH {
            break;
        }
    }
    let lo = seqs.iter().copied().min().unwrap_or(max + 1);
    let hi = seqs.iter().copied().max().unwrap_or(max);
    Ok((lo, hi, max))
}

async fn find_job(app: &App, repo: &str, run_id: i64, job: &str) -> Result<JobRecord, UiError> {
    let id: i64 = job.parse().map_err(|_| UiError::NotFound)?;
    let j = app
        .store
        .get_job(repo, id)
        .await?
        .ok_or(UiError::NotFound)?;
    if j.run_id != run_id {
        return Err(UiError::NotFound);
    }
    Ok(j)
}

type JobPath = Path<(String, String, String, String)>;

pub async fn page(
    State(app): State<Arc<App>>,
    Path((owner, repo, run_id, job_id)): JobPath,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Html<String>, UiError> {
    let here = format!("/{owner}/{repo}/actions/runs/{run_id}/job/{job_id}");
    let v = auth::require(&app, &headers, &here).await?;
    let r = view::repository(&app, &v, &owner, &repo, Role::Read)?;
    let run = find_run(&app, &r.name, &run_id).await?;
    let job = find_job(&app, &r.name, run.id, &job_id).await?;
    let steps = app.store.job_steps(job.id).await?;
    let num = |k: &str| q.get(k).and_then(|s| s.parse::<i64>().ok());
    let (lo, hi, max) = window(&app, job.id, num("from"), num("before")).await?;
    let mut text = String::new();
    for (_, body) in chunks(&app, job.id, lo, hi, i64::MAX).await? {
        text.push_str(&body);
        if !body.is_empty() && !body.ends_with('\n') {
            text.push('\n');
        }
    }
    let first_line = lines_before(&app, job.id, lo).await? + 1;
    let (rendered, _) = log_render::lines(first_line, &text);
    let pending: Vec<_> = approve::pending(&app, r, &run, &v.user)
        .await?
        .into_iter()
        .filter(|p| p.job_ids.contains(&job.id))
        .collect();
    let base = format!("/{}/actions/runs/{}", r.name, run.id);
    let at_tail = hi >= max;
    let st = view::shown_status(&job.status, job.conclusion.as_deref());
    let body = html! {
        nav.crumbs { a href="/" { "Repositories" } " / " a href={"/" (r.name) "/actions"} { (r.name) }
            " / " a href=(base) { (run.name) " #" (run.run_number) } " / " (job.name) }
        div #live data-live={"/" (r.name) "/actions/live?run=" (run.id)} {
            (approve_form::banner(&pending, &v, &format!("{base}/review")))
            div #jobhead data-swap="" {
                h1 { (view::status_icon(st)) " " (job.name) }
                p.muted { span.status data-status=(st) { (st) } " · "
                    (view::duration(job.started_at.as_deref(), job.completed_at.as_deref()))
                    @if let Some(e) = &job.environment { " · environment " (e) } }
                ol.steps {
                    @for s in &steps {
                        @let ss = view::shown_status(&s.status, s.conclusion.as_deref());
                        li { details {
                            summary { (view::status_icon(ss)) " " (s.name) " "
                                span.muted { (view::duration(s.started_at.as_deref(), s.completed_at.as_deref())) } }
                            p.muted { "Step " (s.number) ": " (ss)
                                @if let Some(t) = &s.started_at { ", started " (view::time(t)) }
                                @if let Some(t) = &s.completed_at { ", finished " (view::time(t)) } }
                        } }
                    }
                    @if steps.is_empty() { li.muted { "No steps reported yet." } }
                }
            }
        }
        section.log aria-label="Log" {
            div.logbar {
                label.sr for="logsearch" { "Search the log" }
                input #logsearch type="search" placeholder="Search log (/)" hidden;
                a href={(base) "/job/" (job.id) "/raw"} download { "Raw log" }
                @if lo > 1 { a rel="prev" href={"?before=" (lo)} { "↑ Earlier output" } }
                @if !at_tail { a rel="next" href={"?from=" (hi + 1)} { "Later output ↓" } a href="?" { "Tail" } }
            }
            pre #log data-stream=[at_tail.then(|| format!("{base}/job/{}/stream?after={hi}", job.id))]
                data-done=[(job.status == "completed").then_some("1")] { (rendered) }
            @if text.is_empty() { p.muted #nolog { "No output yet." } }
        }
    };
    Ok(view::page(
        &format!("{} · {}", job.name, run.name),
        Some(&v),
        body,
    ))
}

/// The live tail: chunks after `Last-Event-ID` (or `?after=`), then new ones as they are
/// stored; ends (event `end`) once the job has completed and everything was sent.
pub async fn stream(
    State(app): State<Arc<App>>,
    Path((owner, repo, run_id, job_id)): JobPath,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, UiError> {
    let v = auth::require(&app, &headers, "/").await?;
    let r = view::repository(&app, &v, &owner, &repo, Role::Read)?;
    let run = find_run(&app, &r.name, &run_id).await?;
    let job = find_job(&app, &r.name, run.id, &job_id).await?;
    let resume = headers
        .get("last-event-id")
        .and_then(|h| h.to_str().ok())
        .and_then(|s| s.parse::<i64>().ok());
    let after = resume
        .or_else(|| q.get("after").and_then(|s| s.parse().ok()))
        .unwrap_or(0);
    let next_line = lines_before(&app, job.id, after + 1).await? + 1;
    let rx = app.live.subscribe();
    let repo_name = r.name.clone();
    let state = (app, rx, after, next_line, false);
    let events = stream::unfold(state, move |(app, mut rx, after, line, woke)| {
        let repo_name = repo_name.clone();
        async move {
            let job_id = job.id;
            if after == i64::MIN {
                return None;
            }
            let mut woke = woke;
            loop {
                if woke {
                    wake_for(&mut rx, job_id).await;
                }
                woke = true;
                let got = match chunks(&app, job_id, after + 1, i64::MAX, BATCH).await {
                    Ok(g) => g,
                    Err(e) => {
                        tracing::warn!("log stream: {e}");
                        continue;
                    }
                };
                if let Some((seq, body)) = got.into_iter().next() {
                    let (html, next) = log_render::lines(line, &body);
                    let ev = Event::default()
                        .id(seq.to_string())
                        .event("log")
                        .data(html.into_string());
                    return Some((Ok::<_, Infallible>(ev), (app, rx, seq, next, false)));
                }
                let done = matches!(app.store.get_job(&repo_name, job_id).await, Ok(Some(j)) if j.status == "completed");
                if done {
                    let ev = Event::default().event("end").data("completed");
                    return Some((Ok(ev), (app, rx, i64::MIN, line, true)));
                }
            }
        }
    });
    Ok(live::sse_response(events))
}

/// Waits for a chunk of this job (or anything of another process, via the poll).
async fn wake_for(rx: &mut tokio::sync::broadcast::Receiver<LiveEvent>, job: i64) {
    let deadline = tokio::time::Instant::now() + live::POLL;
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                Ok(LiveEvent::Log { job_id, .. }) if job_id == job => return,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    tokio::time::sleep_until(deadline).await;
                    return;
                }
            },
            _ = tokio::time::sleep_until(deadline) => return,
        }
    }
}

/// The whole (masked) log as a download, streamed from the store in batches of chunks.
pub async fn raw(
    State(app): State<Arc<App>>,
    Path((owner, repo, run_id, job_id)): JobPath,
    headers: HeaderMap,
) -> Result<Response, UiError> {
    let here = format!("/{owner}/{repo}/actions/runs/{run_id}/job/{job_id}/raw");
    let v = auth::require(&app, &headers, &here).await?;
    let r = view::repository(&app, &v, &owner, &repo, Role::Read)?;
    let run = find_run(&app, &r.name, &run_id).await?;
    let job = find_job(&app, &r.name, run.id, &job_id).await?;
    let body = stream::unfold((app, 0i64, false), move |(app, after, done)| async move {
        if done {
            return None;
        }
        match chunks(&app, job.id, after + 1, i64::MAX, BATCH).await {
            Ok(got) if got.is_empty() => None,
            Ok(got) => {
                let last = got.last().map_or(after, |c| c.0);
                let text: String = got.into_iter().map(|c| c.1).collect();
                Some((Ok::<_, std::io::Error>(text), (app, last, false)))
            }
            Err(e) => Some((
                Err(std::io::Error::other(e.to_string())),
                (app, after, true),
            )),
        }
    });
    let name = format!("attachment; filename=\"job-{}.log\"", job.id);
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "text/plain; charset=utf-8".to_string(),
            ),
            (header::CONTENT_DISPOSITION, name),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The window as it was found before chunk sizes were stored: from every chunk.
    fn reference(sizes: &[i64], from: Option<i64>, before: Option<i64>) -> (i64, i64, i64) {
        let sizes: Vec<(i64, i64)> = (1..).zip(sizes.iter().copied()).collect();
        let max = sizes.last().map_or(0, |s| s.0);
        let mut total = 0;
        let mut seqs = Vec::new();
        let mut pick = |iter: &mut dyn Iterator<Item = &(i64, i64)>| {
            for (seq, len) in iter {
                if total + len > WINDOW && !seqs.is_empty() {
                    break;
                }
                total += len;
                seqs.push(*seq);
            }
        };
        match from {
            Some(f) => pick(&mut sizes.iter().filter(|s| s.0 >= f)),
            None => pick(
                &mut sizes
                    .iter()
                    .rev()
                    .filter(|s| s.0 < before.unwrap_or(i64::MAX)),
            ),
        }
        let lo = seqs.iter().copied().min().unwrap_or(max + 1);
        let hi = seqs.iter().copied().max().unwrap_or(max);
        (lo, hi, max)
    }

    #[tokio::test]
    async fn windows_and_line_numbers_from_the_stored_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
        let store = crate::store::Store::open(&url).await.unwrap();
        let app = App::new(crate::ServerConfig::embedded_default(), store);
        let masker = gantry_engine::masker::Masker::new();
        // Job 1: big chunks; job 2: small ones (windows span several batches); job 3: one
        // chunk over the window; job 4: nothing.
        let jobs: [(i64, Vec<String>); 4] = [
            (
                1,
                (0..10).map(|i| format!("{i}\n").repeat(100_000)).collect(),
            ),
            (2, (0..1200).map(|i| format!("line {i}\nmore")).collect()),
            (3, vec!["x".repeat(WINDOW as usize + 10)]),
            (4, Vec::new()),
        ];
        for (job, chunks) in &jobs {
            for c in chunks {
                app.store.append_log(*job, c, &masker).await.unwrap();
            }
            let sizes: Vec<i64> = chunks.iter().map(|c| c.len() as i64).collect();
            let n = sizes.len() as i64;
            for (from, before) in [
                (None, None),
                (Some(1), None),
                (Some(n / 2), None),
                (None, Some(n)),
                (None, Some(n / 3)),
                (Some(n + 5), None),
            ] {
                let got = window(&app, *job, from, before).await.unwrap();
                assert_eq!(
                    got,
                    reference(&sizes, from, before),
                    "job {job} {from:?} {before:?}"
                );
                let lines: usize = chunks[..(got.0 - 1).clamp(0, n) as usize]
                    .iter()
                    .map(|c| crate::store::chunk_lines(c))
                    .sum();
                assert_eq!(lines_before(&app, *job, got.0).await.unwrap(), lines as u64);
            }
        }
    }
}
