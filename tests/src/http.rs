//! A recording HTTP/1.1 server on 127.0.0.1: the stand-in for remote services we cannot run
//! in tests (Slack's webhooks and Web API, a deployed service's health endpoint).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

/// One request a [`Recorder`] received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub auth: Option<String>,
    pub body: Value,
}

pub type Answer = Arc<dyn Fn(&Request, usize) -> (u16, String) + Send + Sync>;

/// A tiny HTTP/1.1 server on 127.0.0.1 that records every request and answers with
/// `answer(request, index)`.
pub struct Recorder {
    pub port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Recorder {
    pub fn start(answer: Answer) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let reqs = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let reqs = reqs.clone();
                let answer = answer.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &reqs, &answer);
                });
            }
        });
        Recorder { port, requests }
    }

    /// Slack: webhooks answer `ok`; the Web API answers `{"ok":true,"ts":..}` with a new
    /// ts per `chat.postMessage` (`1000.000001`, ...).
    pub fn slack() -> Recorder {
        Recorder::start(Arc::new(|r: &Request, i| {
            if r.path.starts_with("/api/") {
                let ts = r.body["ts"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("1000.{:06}", i + 1));
                (
                    200,
                    json!({"ok": true, "channel": "C0DEPLOY", "ts": ts}).to_string(),
                )
            } else {
                (200, "ok".into())
            }
        }))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, reqs: &Mutex<Vec<Request>>, answer: &Answer) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut len = 0usize;
    let mut auth = None;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            match k.to_ascii_lowercase().as_str() {
                "content-length" => len = v.trim().parse().unwrap_or(0),
                "authorization" => auth = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body)?;
    let req = Request {
        method,
        path,
        auth,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    let index = {
        let mut r = reqs.lock().unwrap();
        r.push(req.clone());
        r.len() - 1
    };
    let (status, text) = answer(&req, index);
    let mut s = stream;
    write!(
        s,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )?;
    s.flush()
}
