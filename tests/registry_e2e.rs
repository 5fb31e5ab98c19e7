//! `docker/login-action` and `docker/build-push-action` against registries on loopback: a
//! refused push shows the registry's answer and the push's log in the output and the run
//! record (a `gantry/registry` with htpasswd, pushed to without a login; a port where
//! nothing listens), a push after a login succeeds with its log; and the Bearer token flow
//! of `login-action` against a small token-issuing registry stand-in (axum on 127.0.0.1).

use std::path::{Path, PathBuf};
use std::process::Command;

use gantry_tests::registry::registry_with_htpasswd;
use gantry_tests::*;

fn docker_or_skip(what: &str) -> bool {
    docker_ready(&["gantry/busybox:latest", "gantry/debian:bookworm"]) || {
        eprintln!("SKIPPED: {what}");
        false
    }
}

/// Run-record files (under `.gantry/runs`) holding every one of `needles`.
fn record_files_with(repo: &Path, needles: &[&str]) -> Vec<PathBuf> {
    all_files(&repo.join(".gantry/runs"))
        .into_iter()
        .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| needles.iter().all(|n| t.contains(n))))
        .collect()
}

/// Removes the image tags a test built, whatever happened.
struct Tags(Vec<String>);

impl Drop for Tags {
    fn drop(&mut self) {
        for t in &self.0 {
            let _ = Command::new("docker").args(["rmi", "-f", t]).output();
        }
    }
}

fn build_push_workflow(tag: &str, login: Option<(&str, u16)>) -> String {
    let login = match login {
        Some((user, port)) => format!(
            "      - uses: docker/login-action@v3\n        with:\n          registry: 127.0.0.1:{port}\n          username: {user}\n          password: ${{{{ secrets.REG_PASSWORD }}}}\n"
        ),
        None => String::new(),
    };
    format!(
        "on: push\njobs:\n  img:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n{login}      - uses: docker/build-push-action@v6\n        with:\n          context: .\n          push: true\n          tags: {tag}\n      - run: echo AFTER-PUSH\n"
    )
}

const DOCKERFILE: &str = "FROM gantry/busybox:latest\nRUN echo pushed-layer > /pushed.txt\n";

#[test]
fn a_refused_push_shows_the_registry_answer_and_the_push_log() {
    if !docker_or_skip("refused push") {
        return;
    }
    let (user, password) = ("push-user", "Pw-push-4c1d9e");
    let Some(reg) = registry_with_htpasswd(user, password) else {
        return;
    };
    let port: u16 = reg.port.parse().expect("registry port");
    let tag = format!("127.0.0.1:{port}/gantry-test/pushme:1");
    let _cleanup = Tags(vec![tag.clone()]);

    // No login: the registry answers 401, the daemon relays it.
    let repo = git_repo_with(&[
        (".github/workflows/ci.yml", &build_push_workflow(&tag, None)),
        ("Dockerfile", DOCKERFILE),
    ]);
    let out = gantry(repo.path(), &["run", "--host"]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(!all.contains("AFTER-PUSH"), "{all}");
    let answer = "no basic auth credentials";
    assert!(all.contains(answer), "no registry answer: {all}");
    let first = format!("The push refers to repository [127.0.0.1:{port}/gantry-test/pushme]");
    assert!(all.contains(&first), "no push log: {all}");
    assert!(all.contains("the push's log:"), "{all}");
    assert!(
        all.contains("no docker/login-action for 127.0.0.1:"),
        "no hint about the missing login: {all}"
    );
    // The build's log before the push is kept too.
    assert!(all.contains("echo pushed-layer"), "build log lost: {all}");
    assert!(
        !record_files_with(repo.path(), &[answer, &first]).is_empty(),
        "the run record lacks the push's log"
    );

    // With a login the same push succeeds and its log (the digest line) is in the output.
    let repo = git_repo_with(&[
        (
            ".github/workflows/ci.yml",
            &build_push_workflow(&tag, Some((user, port))),
        ),
        ("Dockerfile", DOCKERFILE),
    ]);
    let out = gantry(
        repo.path(),
        &["run", "--host", "-s", &format!("REG_PASSWORD={password}")],
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("AFTER-PUSH"), "{all}");
    assert!(all.contains(&first), "no push log: {all}");
    assert!(all.contains("digest: sha256:"), "no digest line: {all}");
    assert!(!all.contains(password), "the password leaked: {all}");
}

#[test]
fn a_push_to_a_port_where_nothing_listens_names_the_connection_error() {
    if !docker_or_skip("push to a closed port") {
        return;
    }
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tag = format!("127.0.0.1:{port}/gantry-test/nowhere:1");
    let _cleanup = Tags(vec![tag.clone()]);
    let repo = git_repo_with(&[
        (".github/workflows/ci.yml", &build_push_workflow(&tag, None)),
        ("Dockerfile", DOCKERFILE),
    ]);
    let out = gantry(repo.path(), &["run", "--host"]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("connection refused"), "{all}");
    assert!(
        all.contains(&format!("docker push {tag} failed:")),
        "the failure does not name the image: {all}"
    );
    assert!(
        !record_files_with(repo.path(), &["connection refused", "the push's log:"]).is_empty(),
        "the run record lacks the push's log"
    );
}

mod bearer {
    //! A registry stand-in that speaks the token flow: `/v2/` answers 401 with
    //! `WWW-Authenticate: Bearer realm=…/token,service=…`; `/token` issues a token only for
    //! the right Basic credentials (and the right `service`); `/v2/` accepts that token.
    use axum::Router;
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use base64::Engine;
    use std::collections::HashMap;

    pub const USER: &str = "tok-user";
    pub const PASSWORD: &str = "Pw-bearer-8a7e3f";
    /// Gets a token that `/v2/` then refuses.
    pub const STALE_USER: &str = "stale-user";
    pub const SERVICE: &str = "gantry-test-registry";
    const GOOD_TOKEN: &str = "tok-3b9c0e55";
    const STALE_TOKEN: &str = "tok-stale-1";

    fn unauthorized(port: u16, body: &str) -> Response {
        (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                format!("Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"{SERVICE}\""),
            )],
            body.to_string(),
        )
            .into_response()
    }

    fn basic(headers: &HeaderMap) -> Option<(String, String)> {
        let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let b = v.strip_prefix("Basic ")?;
        let raw = base64::engine::general_purpose::STANDARD.decode(b).ok()?;
        let s = String::from_utf8(raw).ok()?;
        let (u, p) = s.split_once(':')?;
        Some((u.to_string(), p.to_string()))
    }

    /// Starts the server on a thread; returns its port.
    pub fn start() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let v2 = move |headers: HeaderMap| async move {
                    let auth = headers
                        .get(header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    if auth == format!("Bearer {GOOD_TOKEN}") {
                        (StatusCode::OK, "{}").into_response()
                    } else if auth.is_empty() {
                        unauthorized(port, r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#)
                    } else {
                        unauthorized(port, r#"{"errors":[{"code":"UNAUTHORIZED","message":"token-not-valid-for-v2"}]}"#)
                    }
                };
                let token = |headers: HeaderMap,
                             axum::extract::Query(q): axum::extract::Query<
                    HashMap<String, String>,
                >| async move {
                    if q.get("service").map(String::as_str) != Some(SERVICE) {
                        return (StatusCode::BAD_REQUEST, "wrong-service").into_response();
                    }
                    match basic(&headers) {
                        Some((u, p)) if u == USER && p == PASSWORD => (
                            StatusCode::OK,
                            format!(r#"{{"token":"{GOOD_TOKEN}","expires_in":300}}"#),
                        )
                            .into_response(),
                        Some((u, _)) if u == STALE_USER => (
                            StatusCode::OK,
                            format!(r#"{{"access_token":"{STALE_TOKEN}"}}"#),
                        )
                            .into_response(),
                        // An echo of the password, as a careless service might: it must
                        // never reach the output.
                        Some((_, p)) => (
                            StatusCode::UNAUTHORIZED,
                            format!(r#"{{"details":"token-service-says-no to {p}"}}"#),
                        )
                            .into_response(),
                        None => (StatusCode::UNAUTHORIZED, "no-credentials").into_response(),
                    }
                };
                let app = Router::new()
                    .route("/v2/", get(v2))
                    .route("/token", get(token));
                let l = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(l, app).await.unwrap();
            });
        });
        port
    }
}

fn login_workflow(port: u16, user: &str) -> String {
    format!(
        "on: push\njobs:\n  login:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: docker/login-action@v3\n        with:\n          registry: 127.0.0.1:{port}\n          username: {user}\n          password: ${{{{ secrets.REG_PASSWORD }}}}\n      - run: echo AFTER-LOGIN\n"
    )
}

#[test]
fn login_action_gets_a_bearer_token_from_the_realm() {
    let port = bearer::start();
    let repo = git_repo_with(&[(
        ".github/workflows/ci.yml",
        &login_workflow(port, bearer::USER),
    )]);
    let secret = format!("REG_PASSWORD={}", bearer::PASSWORD);
    let good = gantry(repo.path(), &["run", "--host", "-s", &secret]);
    let all = text(&good);
    assert!(good.status.success(), "{all}");
    assert!(
        all.contains("Login Succeeded (Bearer token from the registry's realm"),
        "{all}"
    );
    assert!(all.contains("AFTER-LOGIN"), "{all}");
    assert!(
        !all.contains(bearer::PASSWORD),
        "the password leaked: {all}"
    );

    // The wrong password: the token service's answer, the password never shown.
    let wrong = "Wrong-bearer-55d0";
    let bad = gantry(
        repo.path(),
        &["run", "--host", "-s", &format!("REG_PASSWORD={wrong}")],
    );
    let all = text(&bad);
    assert!(!bad.status.success(), "{all}");
    assert!(
        all.contains(&format!(
            "the token service http://127.0.0.1:{port}/token refused the credentials of '{}'",
            bearer::USER
        )),
        "{all}"
    );
    assert!(
        all.contains("token-service-says-no"),
        "no service answer: {all}"
    );
    assert!(all.contains("401"), "{all}");
    assert!(!all.contains("AFTER-LOGIN"), "{all}");
    assert!(!all.contains(wrong), "the password leaked: {all}");

    // A token the registry does not accept.
    let repo2 = git_repo_with(&[(
        ".github/workflows/ci.yml",
        &login_workflow(port, bearer::STALE_USER),
    )]);
    let stale = gantry(repo2.path(), &["run", "--host", "-s", &secret]);
    let all = text(&stale);
    assert!(!stale.status.success(), "{all}");
    assert!(
        all.contains(&format!("refused the token for '{}'", bearer::STALE_USER))
            && all.contains("token-not-valid-for-v2"),
        "{all}"
    );

    for dir in [repo.path(), repo2.path()] {
        for f in all_files(&dir.join(".gantry")) {
            let t = std::fs::read(&f).unwrap_or_default();
            let t = String::from_utf8_lossy(&t);
            assert!(
                !t.contains(bearer::PASSWORD) && !t.contains(wrong),
                "{} holds a password",
                f.display()
            );
        }
    }
}
