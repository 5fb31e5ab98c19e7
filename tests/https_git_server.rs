//! A real HTTPS git server on loopback for the remote-action tests: git's own
//! `git http-backend` (smart HTTP, CGI) behind a TLS listener (hyper + tokio-rustls) whose
//! certificate is signed by a test CA made with rcgen. Repositories whose owner is
//! `private` need HTTP Basic authentication with the server's token; every request's path
//! and whether it carried credentials are recorded.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use tokio::io::AsyncWriteExt;

pub struct GitServer {
    pub port: u16,
    /// PEM of the CA that signed the server certificate.
    pub ca_file: PathBuf,
    /// PEM of another CA (signs nothing the server shows).
    pub wrong_ca_file: PathBuf,
    /// Repositories live at `<root>/<owner>/<repo>.git`.
    pub root: PathBuf,
    pub token: String,
    /// (path, had an Authorization header).
    pub requests: Arc<Mutex<Vec<(String, bool)>>>,
    _dir: tempfile::TempDir,
    _rt: tokio::runtime::Runtime,
}

impl GitServer {
    pub fn start() -> GitServer {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repos");
        std::fs::create_dir_all(&root).unwrap();
        let (ca_pem, cert_der, key_der) = certificates();
        let (wrong_pem, _, _) = certificates();
        let ca_file = dir.path().join("ca.pem");
        let wrong_ca_file = dir.path().join("wrong-ca.pem");
        std::fs::write(&ca_file, ca_pem).unwrap();
        std::fs::write(&wrong_ca_file, wrong_pem).unwrap();

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert_der], key_der)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let token = format!("tok-{}", std::process::id());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(State {
            root: root.clone(),
            token: token.clone(),
            requests: requests.clone(),
        });
        rt.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let state = state.clone();
                tokio::spawn(async move {
                    // A client refusing our certificate ends the handshake: nothing to serve.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, std::convert::Infallible>(state.serve(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        GitServer {
            port,
            ca_file,
            wrong_ca_file,
            root,
            token,
            requests,
            _dir: dir,
            _rt: rt,
        }
    }

    /// `https://127.0.0.1:<port>/{owner}/{repo}.git`, an `--action-source` template.
    pub fn template(&self) -> String {
        format!("https://127.0.0.1:{}/{{owner}}/{{repo}}.git", self.port)
    }

    /// Publishes the git repository at `src` as `<owner>/<repo>.git` (a bare clone).
    pub fn publish(&self, src: &Path, owner: &str, repo: &str) {
        let dest = self.root.join(owner).join(format!("{repo}.git"));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        let st = std::process::Command::new("git")
            .args(["clone", "-q", "--bare"])
            .arg(src)
            .arg(&dest)
            .status()
            .unwrap();
        assert!(st.success(), "git clone --bare {}", src.display());
    }
}

struct State {
    root: PathBuf,
    token: String,
    requests: Arc<Mutex<Vec<(String, bool)>>>,
}

impl State {
    async fn serve(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_string();
        let auth = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        self.requests
            .lock()
            .unwrap()
            .push((path.clone(), auth.is_some()));
        if path.starts_with("/private/") {
            use base64::Engine;
            let want = base64::engine::general_purpose::STANDARD
                .encode(format!("x-access-token:{}", self.token));
            if auth.as_deref() != Some(&format!("Basic {want}")) {
                return Response::builder()
                    .status(StatusCode::UNAUTHORIZED)
                    .header("WWW-Authenticate", "Basic realm=\"git\"")
                    .body(Full::new(Bytes::from_static(b"authentication required\n")))
                    .unwrap();
            }
        }
        let method = req.method().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let content_type = req
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let gzip = req
            .headers()
            .get(hyper::header::CONTENT_ENCODING)
            .is_some_and(|v| v == "gzip");
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let mut cmd = tokio::process::Command::new("git");
        cmd.arg("http-backend")
            .env("GIT_PROJECT_ROOT", &self.root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("PATH_INFO", &path)
            .env("QUERY_STRING", &query)
            .env("REQUEST_METHOD", &method)
            .env("CONTENT_TYPE", &content_type)
            .env("CONTENT_LENGTH", body.len().to_string())
            .env("REMOTE_ADDR", "127.0.0.1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        if gzip {
            cmd.env("HTTP_CONTENT_ENCODING", "gzip");
        }
        let mut child = cmd.spawn().expect("git http-backend");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&body).await.unwrap();
        drop(stdin);
        let out = child.wait_with_output().await.unwrap();
        cgi_response(&out.stdout)
    }
}

/// A CGI answer (headers, blank line, body) as an HTTP response.
fn cgi_response(raw: &[u8]) -> Response<Full<Bytes>> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4))
        .or_else(|| {
            raw.windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, i + 2))
        })
        .unwrap_or((raw.len(), raw.len()));
    let head = String::from_utf8_lossy(&raw[..split.0]);
    let mut res = Response::builder();
    for line in head.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("status") {
            let code: u16 = v.split(' ').next().unwrap().parse().unwrap();
            res = res.status(code);
        } else {
            res = res.header(k.trim(), v);
        }
    }
    res.body(Full::new(Bytes::copy_from_slice(&raw[split.1..])))
        .unwrap()
}

/// (CA certificate PEM, server certificate DER for 127.0.0.1/localhost, server key DER).
fn certificates() -> (
    String,
    rustls::pki_types::CertificateDer<'static>,
    rustls::pki_types::PrivateKeyDer<'static>,
) {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Gantry test CA");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let mut leaf =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).unwrap();
    (
        ca_cert.pem(),
        leaf_cert.der().clone(),
        rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
    )
}
