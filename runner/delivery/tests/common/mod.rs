//! Shared test helpers: real HTTP servers on 127.0.0.1 (axum) with scripted answers and
//! request recording, and deployment requests.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use gantry_engine::gate::DeploymentRequest;

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn new(status: u16, body: &str) -> Self {
        Reply {
            status,
            body: body.to_string(),
            delay: Duration::ZERO,
            headers: Vec::new(),
        }
    }
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
}

/// A recorded request.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub path: String,
    pub authorization: Option<String>,
    pub body: String,
}

impl Recorded {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Default)]
struct Inner {
    script: VecDeque<Reply>,
    /// Answer when the script is empty (the last scripted reply repeats otherwise).
    fallback: Option<Reply>,
    last: Option<Reply>,
    requests: Vec<Recorded>,
    ts: u64,
}

/// An HTTP server on 127.0.0.1 answering every path from a script and recording requests.
#[derive(Clone)]
pub struct Server {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl Server {
    /// Scripted server: replies in order, the last one repeating.
    pub async fn start(script: Vec<Reply>) -> Server {
        Self::start_with(script, None).await
    }

    /// A fake Slack (webhook and Web API): records requests; answers `ok` with a fresh
    /// `ts` once the script is exhausted.
    pub async fn slack(script: Vec<Reply>) -> Server {
        Self::start_with(script, Some(Reply::new(200, ""))).await
    }

    async fn start_with(script: Vec<Reply>, fallback: Option<Reply>) -> Server {
        let inner = Arc::new(Mutex::new(Inner {
            script: script.into(),
            fallback,
            ..Default::default()
        }));
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Server { addr, inner }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.lock().unwrap().requests.clone()
    }

    pub fn push(&self, r: Reply) {
        self.inner.lock().unwrap().script.push_back(r);
    }

    /// Replaces the script (e.g. a broken `/health` after a good one).
    pub fn set(&self, script: Vec<Reply>) {
        let mut i = self.inner.lock().unwrap();
        i.script = script.into();
        i.last = None;
    }
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = {
        let mut i = inner.lock().unwrap();
        i.requests.push(Recorded {
            path: uri.path().to_string(),
            authorization: headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        let next = i.script.pop_front();
        match next {
            Some(r) => {
                i.last = Some(r.clone());
                r
            }
            None => match (&i.fallback, &i.last) {
                (Some(f), _) => {
                    let mut f = f.clone();
                    if uri.path().contains("chat.") {
                        i.ts += 1;
                        f.body = format!(
                            r#"{{"ok":true,"channel":"C0TEST","ts":"1700000000.{:06}"}}"#,
                            i.ts
                        );
                    } else {
                        f.body = "ok".into();
                    }
                    f
                }
                (None, Some(l)) => l.clone(),
                (None, None) => Reply::new(200, "{}"),
            },
        }
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut resp = (
        StatusCode::from_u16(reply.status).unwrap(),
        reply.body.clone(),
    )
        .into_response();
    for (k, v) in &reply.headers {
        resp.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    resp
}

/// A loopback port nobody listens on (connection refused).
pub fn closed_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}/health")
}

pub fn request(run_id: &str, environment: &str, git_ref: &str, actor: &str) -> DeploymentRequest {
    DeploymentRequest {
        run_id: run_id.into(),
        workflow: "deploy".into(),
        job_id: "deploy".into(),
        job_name: "deploy".into(),
        environment: environment.into(),
        git_ref: git_ref.into(),
        sha: format!(
            "{:0<40}",
            run_id.replace(|c: char| !c.is_ascii_hexdigit(), "a")
        ),
        actor: actor.into(),
        repository: "acme/shop".into(),
    }
}
