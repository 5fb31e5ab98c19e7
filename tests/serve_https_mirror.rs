//! `gantry serve` mirrors a repository served over HTTPS with a token: the real binary, a
//! real HTTPS git server on loopback (`git http-backend` behind TLS with a test CA, see
//! https_git_server.rs; its `private/` repositories need the token), signed GitHub push
//! webhooks. With the repository's `token:` the push runs its workflow; without it, with
//! a CA the server does not trust, or for a repository that does not exist, the delivery
//! is recorded `failed` with a reason that says authentication, certificate or not found.
//! The token is looked for, and absent, in the server's stderr, every API answer (runs,
//! jobs, logs, the delivery log), the job's workspace `.git/config` and environment, and
//! every file under the server's directory (database, mirror).

#[path = "serve_support.rs"]
mod serve_support;

#[path = "https_git_server.rs"]
#[allow(dead_code)]
mod https_git_server;

use std::path::Path;

use https_git_server::GitServer;
use serve_support::*;

/// A host job that copies what its workspace's git knows, and its environment, to `out`.
fn workflow(out: &Path) -> String {
    format!(
        r#"name: CI
on: push
jobs:
  build:
    runs-on: self-hosted
    steps:
      - run: |
          echo "checked out $(git rev-parse HEAD)"
          cp .git/config "{out}/git-config"
          git remote -v > "{out}/remotes"
          env > "{out}/env"
"#,
        out = out.display()
    )
}

/// A config with `repos` (name, url, token line or none), all GitHub.
fn config(repos: &[(&str, String, bool)]) -> String {
    let mut text = String::from(
        "listen: 127.0.0.1:0\nurl: http://ci.example.test\ndata: ./data\nusers:\n  \
         - { login: alice, token: \"${ALICE_TOKEN}\", role: admin }\n  \
         - { login: carol, token: \"${CAROL_TOKEN}\", role: read }\nrepositories:\n",
    );
    for (name, url, token) in repos {
        text.push_str(&format!(
            "  - name: {name}\n    url: {url}\n    forge: github\n    webhook_secret: \"${{HOOK_SECRET}}\"\n"
        ));
        if *token {
            text.push_str("    token: \"${SHOP_GIT_TOKEN}\"\n");
        }
    }
    text.push_str("labels:\n  self-hosted: host\nexecutor: { capacity: 2 }\n");
    text
}

/// The server's environment: the CA (or another one), the token, no user git
/// configuration (so no credential helper answers for the token).
fn start(cfg: &str, ca: &Path, token: &str, home: &Path) -> Server {
    let ca = ca.display().to_string();
    let home_s = home.display().to_string();
    let xdg = home.join(".config").display().to_string();
    Server::start_with_env(
        cfg,
        &[],
        &[
            ("SSL_CERT_FILE", &ca),
            ("SHOP_GIT_TOKEN", token),
            ("HOME", &home_s),
            ("XDG_CONFIG_HOME", &xdg),
            ("GIT_CONFIG_NOSYSTEM", "1"),
        ],
    )
}

/// Delivers a signed push of `sha` to `repo`'s main; the delivery's record once processed.
async fn push_to(s: &Server, repo: &str, sha: &str) -> serde_json::Value {
    let body = github_push(repo, "refs/heads/main", ZERO, sha, "first");
    let body = serde_json::to_vec(&body).unwrap();
    let id = guid();
    let (st, text) = deliver(&s.base, "github", "push", &id, &body, Some(SECRET)).await;
    assert_eq!(st, 202, "{text}");
    wait_for("the delivery to be processed", || async {
        deliveries(&s.base)
            .await
            .into_iter()
            .find(|d| d["delivery_id"] == id.as_str() && d["result"] != "accepted")
    })
    .await
}

/// Every API answer about `repo`'s runs, their jobs and logs, and the delivery log, as text.
async fn api_answers(s: &Server, repo: &str) -> String {
    let client = reqwest::Client::new();
    let get = |path: String| {
        let client = client.clone();
        async move {
            client
                .get(format!("{}/api/v3/{path}", s.base))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let mut out = String::new();
    let runs = get(format!("repos/{repo}/actions/runs")).await;
    let v: serde_json::Value = serde_json::from_str(&runs).unwrap();
    out.push_str(&runs);
    for run in v["workflow_runs"].as_array().cloned().unwrap_or_default() {
        let id = run["id"].as_i64().unwrap();
        out.push_str(&get(format!("repos/{repo}/actions/runs/{id}")).await);
        let jobs = get(format!("repos/{repo}/actions/runs/{id}/jobs")).await;
        let jv: serde_json::Value = serde_json::from_str(&jobs).unwrap();
        out.push_str(&jobs);
        for job in jv["jobs"].as_array().cloned().unwrap_or_default() {
            let jid = job["id"].as_i64().unwrap();
            out.push_str(&get(format!("repos/{repo}/actions/jobs/{jid}/logs")).await);
        }
    }
    out.push_str(&get("gantry/deliveries?per_page=100".into()).await);
    out
}

/// A runtime for the server side of a test; the git server is started outside it (it
/// has its own).
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_push_to_an_https_repository_with_a_token_runs_and_the_token_stays_out() {
    let git = GitServer::start();
    runtime().block_on(token_run(&git));
}

async fn token_run(git: &GitServer) {
    let out = tempfile::tempdir().unwrap();
    let src = BareRepo::new();
    let sha = src.commit(
        "main",
        &[(".github/workflows/ci.yml", &workflow(out.path()))],
        "first",
    );
    git.publish(src.dir.path(), "private", "shop");
    let url = format!("https://127.0.0.1:{}/private/shop.git", git.port);
    let home = tempfile::tempdir().unwrap();
    let s = start(
        &config(&[("acme/shop", url.clone(), true)]),
        &git.ca_file,
        &git.token,
        home.path(),
    );

    let d = push_to(&s, "acme/shop", &sha).await;
    assert_eq!(d["result"], "queued", "{d}\n{}", s.output());
    let run = run_of(&s, &sha).await;
    let run = completed(&s, run.id.0).await;
    assert_eq!(run.conclusion.as_deref(), Some("success"), "{}", s.output());
    let jobs = jobs(&s, run.id.0).await;
    let log = job_log(&s, &jobs[0]).await;
    assert!(log.contains(&format!("checked out {sha}")), "{log}");
    assert!(
        git.requests
            .lock()
            .unwrap()
            .iter()
            .any(|(p, auth)| p.starts_with("/private/shop.git") && *auth),
        "the token was sent"
    );

    // The job's repository: origin is the server's URL for the repository, no token.
    let cfg = std::fs::read_to_string(out.path().join("git-config")).unwrap();
    assert!(
        cfg.contains("url = \"http://ci.example.test/acme/shop.git\""),
        "{cfg}"
    );
    assert!(!cfg.contains(&git.token), "{cfg}");
    assert!(
        !cfg.contains("127.0.0.1"),
        "the clone URL is not in the job:\n{cfg}"
    );
    let remotes = std::fs::read_to_string(out.path().join("remotes")).unwrap();
    assert!(!remotes.contains(&git.token), "{remotes}");
    let env = std::fs::read_to_string(out.path().join("env")).unwrap();
    assert!(
        !env.contains(&git.token),
        "the job's environment holds the token"
    );

    let answers = api_answers(&s, "acme/shop").await;
    assert!(answers.contains(&sha), "the answers are about the run");
    assert!(
        !answers.contains(&git.token),
        "an API answer holds the token"
    );
    assert!(!s.output().contains(&git.token), "{}", s.output());
    let work = s.dir.path().join("data/work").join(run.id.0.to_string());
    wait_for("the run's workspace to be removed", || async {
        (!work.exists()).then_some(())
    })
    .await;
    let bytes = all_bytes(s.dir.path());
    assert!(
        !bytes_contain(&bytes, &git.token),
        "a file of the server holds the token"
    );
    assert!(
        s.dir.path().join("data/mirrors/acme+shop.git").is_dir(),
        "the mirror was searched too"
    );
}

#[test]
fn mirror_fetch_failures_say_authentication_not_found_and_certificate() {
    let git = GitServer::start();
    runtime().block_on(failures(&git));
}

async fn failures(git: &GitServer) {
    let out = tempfile::tempdir().unwrap();
    let src = BareRepo::new();
    let sha = src.commit(
        "main",
        &[(".github/workflows/ci.yml", &workflow(out.path()))],
        "first",
    );
    git.publish(src.dir.path(), "private", "shop");
    git.publish(src.dir.path(), "acme", "open");
    let base = format!("https://127.0.0.1:{}", git.port);
    let home = tempfile::tempdir().unwrap();
    let cfg = config(&[
        ("acme/shop", format!("{base}/private/shop.git"), false),
        ("acme/gone", format!("{base}/acme/missing.git"), false),
        ("acme/open", format!("{base}/acme/open.git"), false),
    ]);
    let s = start(&cfg, &git.ca_file, &git.token, home.path());

    let d = push_to(&s, "acme/shop", &sha).await;
    assert_eq!(d["result"], "failed", "{d}");
    let reason = d["reason"].as_str().unwrap();
    assert!(
        reason.contains("authentication required") && reason.contains("token:"),
        "{reason}"
    );
    assert!(
        reason.contains("/private/shop.git"),
        "names the URL: {reason}"
    );
    let d = push_to(&s, "acme/gone", &sha).await;
    assert_eq!(d["result"], "failed", "{d}");
    assert!(
        d["reason"]
            .as_str()
            .unwrap()
            .contains("repository not found"),
        "{d}"
    );
    // A public repository over HTTPS needs no token.
    let d = push_to(&s, "acme/open", &sha).await;
    assert_eq!(d["result"], "queued", "{d}\n{}", s.output());
    let none = s.octocrab(READER_TOKEN);
    let runs = none.workflows("acme", "shop").list_all_runs().send().await;
    assert_eq!(
        runs.unwrap().items.len(),
        0,
        "nothing ran for the refused fetch"
    );
    drop(s);

    // A CA that did not sign the server's certificate.
    let s = start(&cfg, &git.wrong_ca_file, &git.token, home.path());
    let d = push_to(&s, "acme/open", &sha).await;
    assert_eq!(d["result"], "failed", "{d}");
    let reason = d["reason"].as_str().unwrap();
    assert!(
        reason.contains("certificate not trusted") && reason.contains("SSL_CERT_FILE"),
        "{reason}"
    );
}
