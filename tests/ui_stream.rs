//! The job log's wire side on the real `gantry serve` (no browser): the SSE stream (one
//! event per stored chunk, ids that resume with `Last-Event-ID`, heartbeats, not buffered
//! by proxies, an end event), the raw download, and the pages of a log bigger than one
//! page's window. Log chunks are written through the store API into the server's SQLite
//! file, as the executor in another process would.

#[path = "serve_support.rs"]
mod serve_support;

use std::time::{Duration, Instant};

use gantry_engine::masker::Masker;
use serve_support::*;

/// One server-sent event: its id, type and data (comments kept apart).
#[derive(Debug, Default)]
struct Sse {
    id: Option<String>,
    event: String,
    data: String,
    comment: String,
}

/// Reads events off a streaming response.
struct SseReader {
    resp: reqwest::Response,
    buf: String,
}

impl SseReader {
    /// The next event or comment-only block, within `secs`.
    async fn next(&mut self, secs: u64) -> Sse {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut ev = Sse::default();
                for line in block.lines() {
                    if let Some(c) = line.strip_prefix(':') {
                        ev.comment.push_str(c.trim());
                    } else if let Some((k, v)) = line.split_once(':') {
                        let v = v.strip_prefix(' ').unwrap_or(v);
                        match k {
                            "id" => ev.id = Some(v.to_string()),
                            "event" => ev.event = v.to_string(),
                            "data" => ev.data.push_str(v),
                            _ => {}
                        }
                    }
                }
                return ev;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.resp.chunk())
                .await
                .unwrap_or_else(|_| panic!("no event within {secs} s; have {:?}", self.buf))
                .expect("the stream")
                .expect("the stream ended early");
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next event that is not a heartbeat.
    async fn next_event(&mut self, secs: u64) -> Sse {
        loop {
            let ev = self.next(secs).await;
            if !ev.event.is_empty() {
                return ev;
            }
        }
    }
}

async fn open_stream(url: &str, last_event_id: Option<&str>) -> SseReader {
    let mut req = reqwest::Client::new().get(url).bearer_auth(READER_TOKEN);
    if let Some(id) = last_event_id {
        req = req.header("Last-Event-ID", id);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    assert_eq!(h["content-type"], "text/event-stream");
    assert_eq!(h["x-accel-buffering"], "no", "proxies must not buffer it");
    assert_eq!(h["cache-control"], "no-cache");
    SseReader {
        resp,
        buf: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_stream_resumes_beats_and_ends() {
    let QueuedCi {
        server: s,
        store,
        run,
        first_job: job,
        bare: _bare,
    } = queued_ci().await;
    store
        .set_job_status(job, "in_progress", None)
        .await
        .unwrap();
    let m = Masker::new();
    for i in 1..=3 {
        store
            .append_log(job, &format!("line {i}\n"), &m)
            .await
            .unwrap();
    }
    let page = format!("{}/acme/shop/actions/runs/{}/job/{job}", s.base, run.id);
    let url = format!("{page}/stream");

    // From the start: one event per chunk, ids counting up, lines numbered from 1.
    let mut first = open_stream(&url, None).await;
    let mut ids = Vec::new();
    for n in 1..=3 {
        let ev = first.next_event(10).await;
        assert_eq!(ev.event, "log", "{ev:?}");
        assert!(ev.data.contains(&format!("line {n}")), "{ev:?}");
        assert!(
            ev.data.contains(&format!("id=\"L{n}\"")),
            "line number: {ev:?}"
        );
        ids.push(ev.id.expect("an event id"));
    }
    drop(first);

    // A dropped connection resumes after the last id it saw: no line twice, numbering
    // continued; a chunk stored now arrives on the open stream.
    let mut resumed = open_stream(&url, Some(&ids[1])).await;
    let ev = resumed.next_event(10).await;
    assert_eq!(ev.id.as_deref(), Some(ids[2].as_str()), "{ev:?}");
    assert!(
        ev.data.contains("line 3") && ev.data.contains("id=\"L3\""),
        "{ev:?}"
    );
    store.append_log(job, "line 4\n", &m).await.unwrap();
    let ev = resumed.next_event(10).await;
    assert!(
        ev.data.contains("line 4") && ev.data.contains("id=\"L4\""),
        "{ev:?}"
    );

    // Idle, the stream sends a heartbeat (every 15 s) so proxies keep it open.
    let beat = resumed.next(25).await;
    assert!(
        beat.event.is_empty() && beat.comment.contains("heartbeat"),
        "{beat:?}"
    );

    // The job completes: an end event, and the stream closes.
    store
        .set_job_status(job, "completed", Some("success"))
        .await
        .unwrap();
    let ev = resumed.next_event(10).await;
    assert_eq!(ev.event, "end", "{ev:?}");

    // The raw log: every line, as a download.
    let raw = reqwest::Client::new()
        .get(format!("{page}/raw"))
        .bearer_auth(READER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 200);
    assert!(
        raw.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment"),
        "a download"
    );
    assert_eq!(
        raw.text().await.unwrap(),
        "line 1\nline 2\nline 3\nline 4\n"
    );
}

/// A log bigger than a page's window: the page holds the tail and links earlier output,
/// which holds line 1 and links later output; the raw download has everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_log_pages_through_its_chunks() {
    let QueuedCi {
        server: s,
        store,
        run,
        first_job: job,
        bare: _bare,
    } = queued_ci().await;
    let m = Masker::new();
    // 2 MB in 32 chunks of 1,024 numbered lines of 64 bytes.
    let mut n = 0;
    for _ in 0..32 {
        let mut chunk = String::new();
        for _ in 0..1024 {
            n += 1;
            chunk.push_str(&format!("{:<63}\n", format!("row-{n:06}")));
        }
        store.append_log(job, &chunk, &m).await.unwrap();
    }
    store
        .set_job_status(job, "completed", Some("success"))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let page = format!("{}/acme/shop/actions/runs/{}/job/{job}", s.base, run.id);
    let get = |url: String| {
        let http = http.clone();
        async move {
            let r = http
                .get(&url)
                .bearer_auth(READER_TOKEN)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{url}");
            r.text().await.unwrap()
        }
    };
    let tail = get(page.clone()).await;
    assert!(tail.contains(&format!("row-{n:06}")), "the tail is shown");
    assert!(!tail.contains("row-000001 "), "not the whole log");
    assert!(tail.len() < 2 * 1024 * 1024, "{} bytes", tail.len());
    let earlier = href_of(&tail, "prev").expect("an Earlier output link");
    let first_page = get(format!("{page}{earlier}")).await;
    // Following "earlier" links reaches the start.
    let mut at = first_page;
    for _ in 0..8 {
        if at.contains("id=\"L1\"") {
            break;
        }
        let prev = href_of(&at, "prev").expect("earlier output until line 1");
        at = get(format!("{page}{prev}")).await;
    }
    assert!(
        at.contains("id=\"L1\"") && at.contains("row-000001"),
        "line 1 reached"
    );
    let later = href_of(&at, "next").expect("a Later output link");
    let next = get(format!("{page}{later}")).await;
    assert!(!next.contains("id=\"L1\""), "later output moves on");
    let raw = get(format!("{page}/raw")).await;
    assert_eq!(raw.lines().count(), n, "the raw log has every line");
}

/// The `href` of the link with `rel` on a page.
fn href_of(page: &str, rel: &str) -> Option<String> {
    let at = page.find(&format!("rel=\"{rel}\""))?;
    let tag_start = page[..at].rfind('<')?;
    let tag = &page[tag_start..tag_start + page[tag_start..].find('>')?];
    let h = tag.find("href=\"")? + 6;
    let end = tag[h..].find('"')?;
    Some(tag[h..h + end].replace("&amp;", "&"))
}
