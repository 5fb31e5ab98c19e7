//! Remote actions and reusable workflows over HTTPS: `gantry run` fetches them with git2
//! (TLS through OpenSSL) from a real git server on loopback (`git http-backend` behind a
//! TLS listener whose certificate a test CA signs; see https_git_server.rs). The CA is
//! trusted through `SSL_CERT_FILE`, or through git's `http.sslCAInfo`; a wrong CA, a missing
//! repository and a private repository without a token fail with errors that say so and
//! name the reference and the URL; the token is sent but never printed. `actions/checkout`
//! of another repository goes over the same transport. Also `SSL_CERT_DIR`, git's credential
//! helper (`~/.gitconfig` and `GIT_CONFIG_GLOBAL`), and `HTTPS_PROXY`/`NO_PROXY` through a
//! loopback `CONNECT` proxy.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use gantry_tests::*;

#[path = "https_git_server.rs"]
mod https_git_server;
use https_git_server::GitServer;

const COMPOSITE: &str = r#"name: greet
inputs:
  who:
    default: world
outputs:
  greeting:
    value: ${{ steps.say.outputs.greeting }}
runs:
  using: composite
  steps:
    - id: say
      shell: bash
      run: |
        echo "REMOTE-HELLO-${{ inputs.who }}"
        echo "greeting=hello ${{ inputs.who }}" >> "$GITHUB_OUTPUT"
"#;

const CALLED: &str = r#"on:
  workflow_call:
    inputs:
      word:
        type: string
        required: true
jobs:
  inner:
    runs-on: ubuntu-latest
    steps:
      - run: echo "CALLED-WORKFLOW-${{ inputs.word }}"
"#;

const PRIVATE: &str = r#"name: private
runs:
  using: composite
  steps:
    - shell: bash
      run: echo PRIVATE-ACTION-RAN
"#;

/// The server with `acme/greet` (composite action, tag v1), `acme/flows` (reusable
/// workflow, tag v1) and `private/tool` (composite action, needs the token).
fn server() -> GitServer {
    let s = GitServer::start();
    for (owner, repo, files) in [
        ("acme", "greet", vec![("action.yml", COMPOSITE)]),
        (
            "acme",
            "flows",
            vec![(".github/workflows/called.yml", CALLED)],
        ),
        ("private", "tool", vec![("action.yml", PRIVATE)]),
    ] {
        let src = git_repo_with(&files);
        tag_head(src.path(), "v1");
        s.publish(src.path(), owner, repo);
    }
    s
}

fn tag_head(dir: &Path, name: &str) {
    let repo = git2::Repository::open(dir).unwrap();
    let head = repo.head().unwrap().peel_to_commit().unwrap();
    repo.tag_lightweight(name, head.as_object(), false).unwrap();
}

/// `gantry run --host --json` in a fresh repository holding `workflow`, with an empty HOME
/// (no user git configuration or credential helper) and a fresh action cache.
fn run(
    s: &GitServer,
    workflow: &str,
    env: &[(&str, &str)],
    home_gitconfig: Option<&str>,
) -> Output {
    run_with(s, workflow, env, home_gitconfig, &[])
}

/// [`run`] with more arguments for `gantry run` (`-s NAME`).
fn run_with(
    s: &GitServer,
    workflow: &str,
    env: &[(&str, &str)],
    home_gitconfig: Option<&str>,
    args: &[&str],
) -> Output {
    let repo = git_repo_with(&[(".github/workflows/ci.yml", workflow)]);
    let home = tempfile::tempdir().unwrap();
    if let Some(cfg) = home_gitconfig {
        std::fs::write(home.path().join(".gitconfig"), cfg).unwrap();
    }
    let cache = home.path().join("action-cache");
    let tpl = s.template();
    let mut cmd = Command::new(gantry_bin());
    cmd.args([
        "run",
        "--host",
        "--json",
        "--action-source",
        &tpl,
        "--action-cache",
    ])
    .arg(&cache)
    .args(args)
    .current_dir(repo.path())
    .stdin(Stdio::null())
    .env("HOME", home.path())
    .env("XDG_CONFIG_HOME", home.path().join(".config"))
    .env("GIT_CONFIG_NOSYSTEM", "1")
    .env_remove("GIT_CONFIG_GLOBAL")
    .env_remove("GANTRY_LOG")
    .env_remove("GANTRY_GIT_TOKEN")
    .env_remove("GITHUB_TOKEN")
    .env_remove("SSL_CERT_FILE")
    .env_remove("SSL_CERT_DIR")
    .env_remove("HTTPS_PROXY")
    .env_remove("https_proxy")
    .env_remove("NO_PROXY")
    .env_remove("no_proxy");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running gantry")
}

fn ca(s: &GitServer) -> String {
    s.ca_file.display().to_string()
}

const USES_BOTH: &str = r#"on: push
jobs:
  act:
    runs-on: ubuntu-latest
    outputs:
      greeting: ${{ steps.g.outputs.greeting }}
    steps:
      - id: g
        uses: acme/greet@v1
        with:
          who: tls
  call:
    uses: acme/flows/.github/workflows/called.yml@v1
    with:
      word: over-https
"#;

#[test]
fn remote_composite_action_and_reusable_workflow_over_https() {
    let s = server();
    let out = run(&s, USES_BOTH, &[("SSL_CERT_FILE", &ca(&s))], None);
    let t = text(&out);
    assert!(out.status.success(), "run failed:\n{t}");
    assert!(
        t.contains("REMOTE-HELLO-tls"),
        "composite action did not run:\n{t}"
    );
    assert!(
        t.contains("CALLED-WORKFLOW-over-https"),
        "reusable workflow did not run:\n{t}"
    );
    let reqs = s.requests.lock().unwrap().clone();
    for repo in ["/acme/greet.git/", "/acme/flows.git/"] {
        assert!(
            reqs.iter()
                .any(|(p, _)| p.starts_with(repo) && p.ends_with("git-upload-pack")),
            "no fetch of {repo} reached the server: {reqs:?}"
        );
    }
}

#[test]
fn git_config_ssl_ca_info_is_honoured() {
    let s = server();
    let cfg = format!("[http]\n\tsslCAInfo = {}\n", ca(&s));
    let wf = "on: push\njobs:\n  act:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: acme/greet@v1\n";
    let out = run(&s, wf, &[], Some(&cfg));
    let t = text(&out);
    assert!(out.status.success(), "run failed:\n{t}");
    assert!(t.contains("REMOTE-HELLO-world"), "{t}");
}

#[test]
fn wrong_ca_is_refused_with_a_certificate_error() {
    let s = server();
    let wf = "on: push\njobs:\n  act:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: acme/greet@v1\n";
    let wrong = s.wrong_ca_file.display().to_string();
    let out = run(&s, wf, &[("SSL_CERT_FILE", &wrong)], None);
    let t = text(&out);
    assert!(
        !out.status.success(),
        "run passed with an untrusted certificate:\n{t}"
    );
    assert!(
        t.contains("acme/greet@v1"),
        "error does not name the reference:\n{t}"
    );
    assert!(
        t.contains("TLS certificate not trusted"),
        "not a certificate error:\n{t}"
    );
    assert!(
        t.contains("SSL_CERT_FILE"),
        "no hint about SSL_CERT_FILE:\n{t}"
    );
    assert!(
        t.contains(&format!("https://127.0.0.1:{}/acme/greet.git", s.port)),
        "error does not name the URL:\n{t}"
    );
    assert!(!t.contains("REMOTE-HELLO"), "{t}");
}

#[test]
fn missing_repository_is_a_not_found_error() {
    let s = server();
    let wf = "on: push\njobs:\n  act:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: acme/nothing-here@v1\n";
    let out = run(&s, wf, &[("SSL_CERT_FILE", &ca(&s))], None);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("acme/nothing-here@v1"), "{t}");
    assert!(
        t.contains("repository not found"),
        "not a not-found error:\n{t}"
    );
    assert!(
        t.contains("/acme/nothing-here.git"),
        "error does not name the URL:\n{t}"
    );
}

const USES_PRIVATE: &str = "on: push\njobs:\n  act:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: private/tool@v1\n";

#[test]
fn private_repository_without_token_is_an_auth_error() {
    let s = server();
    let out = run(&s, USES_PRIVATE, &[("SSL_CERT_FILE", &ca(&s))], None);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("private/tool@v1"), "{t}");
    assert!(
        t.contains("authentication required"),
        "not an auth error:\n{t}"
    );
    assert!(t.contains("no credentials were offered"), "{t}");
    assert!(
        t.contains("GANTRY_GIT_TOKEN"),
        "no hint about the token:\n{t}"
    );
    assert!(!t.contains("PRIVATE-ACTION-RAN"), "{t}");
}

#[test]
fn private_repository_with_token_is_fetched_and_the_token_never_printed() {
    let s = server();
    let out = run(
        &s,
        USES_PRIVATE,
        &[("SSL_CERT_FILE", &ca(&s)), ("GANTRY_GIT_TOKEN", &s.token)],
        None,
    );
    let t = text(&out);
    assert!(
        out.status.success(),
        "run failed:\n{}",
        t.replace(&s.token, "<TOKEN>")
    );
    assert!(t.contains("PRIVATE-ACTION-RAN"), "{t}");
    assert!(!t.contains(&s.token), "the token appears in the output");
    let reqs = s.requests.lock().unwrap().clone();
    assert!(
        reqs.iter()
            .any(|(p, auth)| p.starts_with("/private/tool.git/") && *auth),
        "the token was never sent: {reqs:?}"
    );

    // A wrong token: refused once (not retried forever), said so, and not printed either.
    let bad = format!("{}-wrong", s.token);
    let out = run(
        &s,
        USES_PRIVATE,
        &[("SSL_CERT_FILE", &ca(&s)), ("GANTRY_GIT_TOKEN", &bad)],
        None,
    );
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("a token was offered and refused"), "{t}");
    assert!(!t.contains(&bad), "the wrong token appears in the output");
}

/// `actions/checkout` of another, private repository over HTTPS with `token:` from a
/// secret: the files arrive at `path:` as a repository of their own at the tag, the token
/// went with the request and is printed nowhere; without the token the step fails saying
/// why.
#[test]
fn checkout_of_another_repository_over_https_with_a_token() {
    let s = server();
    let url = format!("https://127.0.0.1:{}/private/tool.git", s.port);
    let workflow = format!(
        r#"on: push
jobs:
  co:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with:
          repository: {url}
          ref: v1
          path: tool
          token: ${{{{ secrets.TOOL_TOKEN }}}}
      - run: |
          grep -q PRIVATE-ACTION-RAN tool/action.yml
          test "$(git -C tool rev-parse HEAD)" = "$(git -C tool rev-parse 'v1^{{commit}}')"
          git -C tool ls-files | grep -qx action.yml
          echo CHECKED-OUT-OVER-HTTPS
"#
    );
    let out = run_with(
        &s,
        &workflow,
        &[("SSL_CERT_FILE", &ca(&s)), ("TOOL_TOKEN", &s.token)],
        None,
        &["-s", "TOOL_TOKEN"],
    );
    let t = text(&out);
    assert!(
        out.status.success(),
        "run failed:\n{}",
        t.replace(&s.token, "<TOKEN>")
    );
    assert!(t.contains("CHECKED-OUT-OVER-HTTPS"), "{t}");
    assert!(!t.contains(&s.token), "the token appears in the output");
    let reqs = s.requests.lock().unwrap().clone();
    assert!(
        reqs.iter()
            .any(|(p, auth)| p.starts_with("/private/tool.git/") && *auth),
        "the checkout never sent the token: {reqs:?}"
    );

    // No token: the step fails and says it was an authentication refusal.
    let out = run_with(
        &s,
        &workflow,
        &[("SSL_CERT_FILE", &ca(&s)), ("TOOL_TOKEN", "")],
        None,
        &["-s", "TOOL_TOKEN"],
    );
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(!t.contains("CHECKED-OUT-OVER-HTTPS"), "{t}");
    assert!(
        t.to_lowercase().contains("authentication"),
        "the error says what failed:\n{t}"
    );
}

/// The kinds `gantry-git` reports, asked of the library itself (what the resolver and
/// `actions/checkout` get): a missing repository, a private one without a token, and one
/// with the token.
#[test]
fn fetch_failures_have_their_kind() {
    use gantry_git::transport::{FetchFailure, GitCredentials};
    let s = server();
    // SAFETY: set once, before this process's first TLS connection (the CLI tests run
    // `gantry` in child processes and do not share it).
    unsafe { git2::opts::set_ssl_cert_file(&s.ca_file).unwrap() };
    let dir = tempfile::tempdir().unwrap();
    let repo = git2::Repository::init_bare(dir.path().join("m.git")).unwrap();
    let url = |p: &str| format!("https://127.0.0.1:{}/{p}", s.port);
    let none = GitCredentials::default();
    let e = gantry_git::fetch_into(&repo, &url("acme/nothing-here.git"), &none, "v1").unwrap_err();
    assert_eq!(e.kind, FetchFailure::NotFound, "{e}");
    let e = gantry_git::fetch_into(&repo, &url("private/tool.git"), &none, "v1").unwrap_err();
    assert_eq!(e.kind, FetchFailure::Authentication, "{e}");
    assert!(e.to_string().contains("no credentials were offered"), "{e}");
    let token = GitCredentials {
        any_host: Some(s.token.clone()),
        github: None,
    };
    gantry_git::fetch_into(&repo, &url("private/tool.git"), &token, "v1").unwrap();
    assert!(repo.find_reference("refs/tags/v1").is_ok());
}

/// `SSL_CERT_DIR`: a directory holding the test CA under its subject-hash name (made with
/// `openssl rehash`, as `update-ca-certificates` does) is trusted without `SSL_CERT_FILE`;
/// a directory holding only another CA is refused with a certificate error.
#[test]
fn ssl_cert_dir_with_the_hashed_ca_is_honoured() {
    let rehash = |dir: &Path| {
        Command::new("openssl")
            .arg("rehash")
            .arg(dir)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let probe = tempfile::tempdir().unwrap();
    if !rehash(probe.path()) {
        eprintln!("SKIPPED: SSL_CERT_DIR: no `openssl rehash` on this machine");
        return;
    }
    let s = server();
    let wf = "on: push\njobs:\n  act:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: acme/greet@v1\n";

    let good = tempfile::tempdir().unwrap();
    std::fs::copy(&s.ca_file, good.path().join("gantry-test-ca.pem")).unwrap();
    assert!(rehash(good.path()));
    let hashed = std::fs::read_dir(good.path())
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().ends_with(".0"));
    assert!(hashed, "openssl rehash made no <hash>.0 link");
    let dir = good.path().display().to_string();
    let out = run(&s, wf, &[("SSL_CERT_DIR", &dir)], None);
    let t = text(&out);
    assert!(out.status.success(), "run failed:\n{t}");
    assert!(t.contains("REMOTE-HELLO-world"), "{t}");

    let wrong = tempfile::tempdir().unwrap();
    std::fs::copy(&s.wrong_ca_file, wrong.path().join("other-ca.pem")).unwrap();
    assert!(rehash(wrong.path()));
    let dir = wrong.path().display().to_string();
    let out = run(&s, wf, &[("SSL_CERT_DIR", &dir)], None);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("TLS certificate not trusted"), "{t}");
    assert!(!t.contains("REMOTE-HELLO"), "{t}");
}

/// git's credential helper (`credential.helper` in the user's git configuration: a script
/// that answers `get` with a user name and password) authenticates the fetch of a private
/// repository when no token is set; the password is printed nowhere. A helper answering a
/// wrong password fails as an authentication error naming the helper.
#[test]
fn git_credential_helper_authenticates_a_private_fetch() {
    let s = server();
    let helpers = tempfile::tempdir().unwrap();
    let helper = |name: &str, password: &str| {
        let p = helpers.path().join(name);
        // Records each call's operation, so the test sees that the helper was asked.
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\necho \"$1\" >> '{}.calls'\n[ \"$1\" = get ] || exit 0\ncat >/dev/null\necho username=x-access-token\necho password={password}\n",
                p.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    };
    let good = helper("good-helper", &s.token);
    let cfg = format!("[credential]\n\thelper = {}\n", good.display());
    let out = run(&s, USES_PRIVATE, &[("SSL_CERT_FILE", &ca(&s))], Some(&cfg));
    let t = text(&out);
    assert!(
        out.status.success(),
        "run failed:\n{}",
        t.replace(&s.token, "<TOKEN>")
    );
    assert!(t.contains("PRIVATE-ACTION-RAN"), "{t}");
    assert!(
        !t.contains(&s.token),
        "the helper's password appears in the output"
    );
    let calls =
        std::fs::read_to_string(helpers.path().join("good-helper.calls")).unwrap_or_default();
    assert!(
        calls.lines().any(|l| l == "get"),
        "the helper was not asked: {calls:?}"
    );

    // The same helper named in a file given by GIT_CONFIG_GLOBAL (HOME has no .gitconfig):
    // git reads that file instead of ~/.gitconfig, and so does Gantry.
    let global = helpers.path().join("global.gitconfig");
    std::fs::write(&global, &cfg).unwrap();
    let global = global.display().to_string();
    let out = run(
        &s,
        USES_PRIVATE,
        &[("SSL_CERT_FILE", &ca(&s)), ("GIT_CONFIG_GLOBAL", &global)],
        None,
    );
    let t = text(&out);
    assert!(
        out.status.success(),
        "GIT_CONFIG_GLOBAL's helper was not used:\n{}",
        t.replace(&s.token, "<TOKEN>")
    );
    assert!(t.contains("PRIVATE-ACTION-RAN"), "{t}");
    assert!(
        !t.contains(&s.token),
        "the helper's password appears in the output"
    );

    let wrong = format!("{}-wrong", s.token);
    let bad = helper("bad-helper", &wrong);
    let cfg = format!("[credential]\n\thelper = {}\n", bad.display());
    let out = run(&s, USES_PRIVATE, &[("SSL_CERT_FILE", &ca(&s))], Some(&cfg));
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains("git's credential helper was offered and refused"),
        "{t}"
    );
    assert!(
        !t.contains(&wrong),
        "the wrong password appears in the output"
    );
    assert!(!t.contains("PRIVATE-ACTION-RAN"), "{t}");
}

/// An HTTP `CONNECT` proxy on loopback: records each tunnel's target and splices bytes.
struct ConnectProxy {
    port: u16,
    targets: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ConnectProxy {
    fn start() -> ConnectProxy {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let targets = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = targets.clone();
        std::thread::spawn(move || {
            for mut client in listener.incoming().flatten() {
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut b = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if client.read(&mut b).unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(b[0]);
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let mut words = head.split_whitespace();
                    let (Some("CONNECT"), Some(target)) = (words.next(), words.next()) else {
                        let _ = client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n");
                        return;
                    };
                    seen.lock().unwrap().push(target.to_string());
                    let Ok(upstream) = std::net::TcpStream::connect(target) else {
                        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
                        return;
                    };
                    let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
                    let (mut c2, mut u2) =
                        (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                    let (mut c1, mut u1) = (client, upstream);
                    let up = std::thread::spawn(move || {
                        let _ = std::io::copy(&mut c1, &mut u1);
                        let _ = u1.shutdown(std::net::Shutdown::Write);
                    });
                    let _ = std::io::copy(&mut u2, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Write);
                    let _ = up.join();
                });
            }
        });
        ConnectProxy { port, targets }
    }
}

/// `HTTPS_PROXY`: the fetch goes through a `CONNECT` tunnel of the proxy (the TLS inside it
/// still checked against `SSL_CERT_FILE`); with `NO_PROXY` naming the host it goes direct.
#[test]
fn https_proxy_tunnels_the_fetch_and_no_proxy_bypasses_it() {
    let s = server();
    let proxy = ConnectProxy::start();
    let wf = "on: push\njobs:\n  act:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: acme/greet@v1\n";
    let url = format!("http://127.0.0.1:{}", proxy.port);
    let out = run(
        &s,
        wf,
        &[("SSL_CERT_FILE", &ca(&s)), ("HTTPS_PROXY", &url)],
        None,
    );
    let t = text(&out);
    assert!(out.status.success(), "run failed through the proxy:\n{t}");
    assert!(t.contains("REMOTE-HELLO-world"), "{t}");
    let target = format!("127.0.0.1:{}", s.port);
    let tunnels = proxy.targets.lock().unwrap().clone();
    assert!(
        tunnels.contains(&target),
        "the fetch did not go through the proxy: {tunnels:?}"
    );

    let before = tunnels.len();
    let out = run(
        &s,
        wf,
        &[
            ("SSL_CERT_FILE", &ca(&s)),
            ("HTTPS_PROXY", &url),
            ("NO_PROXY", "127.0.0.1"),
        ],
        None,
    );
    let t = text(&out);
    assert!(out.status.success(), "run failed with NO_PROXY:\n{t}");
    assert!(t.contains("REMOTE-HELLO-world"), "{t}");
    let tunnels = proxy.targets.lock().unwrap().clone();
    assert_eq!(
        tunnels.len(),
        before,
        "NO_PROXY was not honoured: {tunnels:?}"
    );
}
