//! Shared by the `serve_*` tests: the real `gantry serve` binary on 127.0.0.1 (a free port),
//! bare repositories built with git2, webhook requests signed the way each forge signs them,
//! and PostgreSQL from the local `gantry/postgres:15` image.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const SECRET: &str = "hook-secret-0f9e8d";
pub const ADMIN_TOKEN: &str = "tok-admin-5b1c";
pub const WRITER_TOKEN: &str = "tok-writer-77aa";
pub const READER_TOKEN: &str = "tok-reader-31dd";
pub const APP_SECRET: &str = "app-secret-value-9c2e";

/// A running `gantry serve`; killed on drop. Its stderr is collected so tests can check
/// that no secret was ever printed.
pub struct Server {
    child: Child,
    pub base: String,
    pub dir: tempfile::TempDir,
    pub stderr: Arc<Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The standard config: one repository per forge (all served by `repo_url`), three users.
pub fn config_yaml(repo_url: &str, database: Option<&str>) -> String {
    let db = database
        .map(|d| format!("database: \"{d}\"\n"))
        .unwrap_or_default();
    format!(
        r#"listen: 127.0.0.1:0
url: http://ci.example.test
data: ./data
{db}users:
  - {{ login: alice, token: "${{ALICE_TOKEN}}", role: admin }}
  - {{ login: bob, token: "${{BOB_TOKEN}}", role: write }}
  - {{ login: carol, token: "${{CAROL_TOKEN}}", role: read }}
repositories:
  - name: acme/shop
    url: {repo_url}
    forge: github
    webhook_secret: "${{HOOK_SECRET}}"
    secrets: {{ APP_SECRET: "${{APP_SECRET}}" }}
    vars: {{ REGION: eu-west-1 }}
    environments:
      production:
        reviewers: [bob]
        required_approvals: 1
        prevent_self_review: true
        wait_timer: 0s
        branches: [main]
  - name: acme/tea
    url: {repo_url}
    forge: gitea
    webhook_secret: "${{HOOK_SECRET}}"
  - name: acme/forge
    url: {repo_url}
    forge: forgejo
    webhook_secret: "${{HOOK_SECRET}}"
  - name: acme/lab
    url: {repo_url}
    forge: gitlab
    webhook_secret: "${{HOOK_SECRET}}"
labels:
  ubuntu-latest: docker://gantry/debian:bookworm
  self-hosted: host
executor: {{ capacity: 2 }}
"#
    )
}

pub fn env_vars() -> Vec<(&'static str, &'static str)> {
    vec![
        ("ALICE_TOKEN", ADMIN_TOKEN),
        ("BOB_TOKEN", WRITER_TOKEN),
        ("CAROL_TOKEN", READER_TOKEN),
        ("HOOK_SECRET", SECRET),
        ("APP_SECRET", APP_SECRET),
    ]
}

impl Server {
    /// The server's own SQLite store, opened from this process (as a run executor in
    /// another process would write it).
    pub async fn store(&self) -> gantry_server::Store {
        let db = format!(
            "sqlite://{}?mode=rwc",
            self.dir.path().join("data/gantry.db").display()
        );
        gantry_server::Store::open(&db)
            .await
            .expect("the server's SQLite file")
    }

    /// A server that queues runs and executes none (`--no-executor`): the tests of
    /// webhooks and the API look at runs as they were queued.
    pub fn start(config: &str) -> Server {
        Server::start_with(config, &["--no-executor"])
    }

    /// A server with `extra` arguments after `serve --config FILE`.
    pub fn start_with(config: &str, extra: &[&str]) -> Server {
        Server::start_with_env(config, extra, &[])
    }

    /// [`Server::start_with`] with more environment variables (`XDG_CACHE_HOME`: the
    /// engine's action and workflow cache).
    pub fn start_with_env(config: &str, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("gantry-server.yml");
        std::fs::write(&cfg, config).unwrap();
        let mut cmd = Command::new(gantry_tests::gantry_bin());
        cmd.arg("serve")
            .arg("--config")
            .arg(&cfg)
            .args(extra)
            .current_dir(dir.path())
            .env("GANTRY_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env_vars().into_iter().chain(env.iter().copied()) {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start gantry serve");
        let stderr = child.stderr.take().unwrap();
        let collected = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = collected.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1)
                    && let Some(t) = tx.take()
                {
                    let addr = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    let _ = t.send(addr);
                }
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("gantry serve did not start:\n{}", collected.lock().unwrap());
            }
        };
        Server {
            child,
            base: format!("http://{addr}"),
            dir,
            stderr: collected,
        }
    }

    pub fn octocrab(&self, token: &str) -> octocrab::Octocrab {
        octocrab::Octocrab::builder()
            .base_uri(format!("{}/api/v3", self.base))
            .unwrap()
            .personal_token(token.to_string())
            .build()
            .unwrap()
    }

    /// `kill -9`: the server dies without recording anything.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit (up to 60 s); the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn output(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

/// A bare repository (made with git2) and the ability to push commits into it.
pub struct BareRepo {
    pub dir: tempfile::TempDir,
    pub repo: git2::Repository,
}

impl BareRepo {
    pub fn new() -> BareRepo {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(dir.path()).unwrap();
        repo.set_head("refs/heads/main").unwrap();
        BareRepo { dir, repo }
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.dir.path().display())
    }

    /// Commits `files` on top of `branch` (created from `main` when missing); returns the
    /// sha.
    pub fn commit(&self, branch: &str, files: &[(&str, &str)], message: &str) -> String {
        let r = &self.repo;
        let refname = format!("refs/heads/{branch}");
        let parent = r
            .find_reference(&refname)
            .or_else(|_| r.find_reference("refs/heads/main"))
            .ok()
            .and_then(|x| x.peel_to_commit().ok());
        let base = match &parent {
            Some(p) => p.tree().unwrap(),
            None => r
                .find_tree(r.treebuilder(None).unwrap().write().unwrap())
                .unwrap(),
        };
        let mut up = git2::build::TreeUpdateBuilder::new();
        for (path, text) in files {
            let blob = r.blob(text.as_bytes()).unwrap();
            up.upsert(*path, blob, git2::FileMode::Blob);
        }
        let tree = r.find_tree(up.create_updated(r, &base).unwrap()).unwrap();
        let sig = git2::Signature::now("Dev Eloper", "dev@example.test").unwrap();
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        let oid = r
            .commit(Some(&refname), &sig, &sig, message, &tree, &parents)
            .unwrap();
        oid.to_string()
    }

    pub fn tag(&self, name: &str, sha: &str) {
        let obj = self.repo.revparse_single(sha).unwrap();
        self.repo.tag_lightweight(name, &obj, false).unwrap();
    }
}

pub const CI_WORKFLOW: &str = r#"name: CI
on:
  push:
    branches: [main]
    tags: ['v*']
  pull_request:
  workflow_dispatch:
    inputs:
      level:
        type: choice
        options: [low, high]
        default: low
  repository_dispatch:
    types: [deploy-now]
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: echo build
  test:
    needs: build
    runs-on: [self-hosted]
    strategy:
      matrix:
        os: [a, b]
    steps:
      - run: echo test
  deploy:
    needs: test
    runs-on: ubuntu-latest
    environment: production
    steps:
      - run: echo deploy
"#;

pub fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A fresh delivery GUID in GitHub's format.
pub fn guid() -> String {
    let n = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    format!(
        "{:08x}-{:04x}-11ee-8c1a-{:012x}",
        (t >> 16) as u32,
        n as u16,
        t & 0xffff_ffff_ffff
    )
}

/// GitHub's push payload (the fields GitHub sends; `created_at`/`pushed_at` are integers
/// in push payloads, as GitHub sends them).
pub fn github_push(
    full_name: &str,
    git_ref: &str,
    before: &str,
    after: &str,
    msg: &str,
) -> serde_json::Value {
    let (owner, name) = full_name.split_once('/').unwrap();
    serde_json::json!({
        "ref": git_ref, "before": before, "after": after,
        "created": before.chars().all(|c| c == '0'), "deleted": false, "forced": false,
        "base_ref": null,
        "compare": format!("https://github.com/{full_name}/compare/{}...{}", &before[..12], &after[..12]),
        "commits": [{
            "id": after, "tree_id": "0".repeat(40), "distinct": true, "message": msg,
            "timestamp": "2026-12-02T07:00:00Z",
            "url": format!("https://github.com/{full_name}/commit/{after}"),
            "author": { "name": "Dev Eloper", "email": "dev@example.test", "username": "dev" },
            "committer": { "name": "Dev Eloper", "email": "dev@example.test", "username": "dev" },
            "added": [".github/workflows/ci.yml"], "removed": [], "modified": []
        }],
        "head_commit": {
            "id": after, "tree_id": "0".repeat(40), "distinct": true, "message": msg,
            "timestamp": "2026-12-02T07:00:00Z",
            "url": format!("https://github.com/{full_name}/commit/{after}"),
            "author": { "name": "Dev Eloper", "email": "dev@example.test", "username": "dev" },
            "committer": { "name": "Dev Eloper", "email": "dev@example.test", "username": "dev" },
            "added": [], "removed": [], "modified": []
        },
        "repository": {
            "id": 1296269, "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5", "name": name,
            "full_name": full_name, "private": false,
            "owner": { "name": owner, "email": null, "login": owner, "id": 1, "type": "Organization" },
            "html_url": format!("https://github.com/{full_name}"),
            "clone_url": format!("https://github.com/{full_name}.git"),
            "default_branch": "main", "created_at": 1700000000, "pushed_at": 1764658800
        },
        "pusher": { "name": "dev", "email": "dev@example.test" },
        "sender": { "login": "dev", "id": 583231, "type": "User", "site_admin": false }
    })
}

/// GitHub's `pull_request` payload.
pub fn github_pull_request(
    full_name: &str,
    action: &str,
    number: u64,
    head: &str,
    sha: &str,
    base: &str,
) -> serde_json::Value {
    serde_json::json!({
        "action": action, "number": number,
        "pull_request": {
            "url": format!("https://api.github.com/repos/{full_name}/pulls/{number}"),
            "id": 1, "number": number, "state": "open", "draft": false, "merged": false,
            "title": "Add a feature", "user": { "login": "dev", "id": 583231 },
            "merge_commit_sha": null,
            "head": { "label": format!("dev:{head}"), "ref": head, "sha": sha,
                      "repo": { "full_name": full_name, "fork": false } },
            "base": { "label": format!("acme:{base}"), "ref": base, "sha": "0".repeat(40),
                      "repo": { "full_name": full_name } }
        },
        "repository": { "id": 1296269, "name": full_name.split('/').nth(1), "full_name": full_name },
        "sender": { "login": "dev", "id": 583231, "type": "User" }
    })
}

/// Posts a webhook as `forge` sends it: headers and signature over the exact bytes.
pub async fn deliver(
    base: &str,
    forge: &str,
    event: &str,
    delivery: &str,
    body: &[u8],
    secret: Option<&str>,
) -> (u16, String) {
    try_deliver(base, forge, event, delivery, body, secret)
        .await
        .expect("webhook request")
}

/// [`deliver`] that returns the client's error: a server that refuses a body by its
/// length answers before reading it, and the client may then fail writing the rest.
pub async fn try_deliver(
    base: &str,
    forge: &str,
    event: &str,
    delivery: &str,
    body: &[u8],
    secret: Option<&str>,
) -> Result<(u16, String), reqwest::Error> {
    let client = reqwest::Client::new();
    let mut req = client
        .post(format!("{base}/hooks/{forge}"))
        .header("Content-Type", "application/json")
        .body(body.to_vec());
    let sig = secret.map(|s| hmac_hex(s, body));
    match forge {
        "github" => {
            req = req
                .header("User-Agent", "GitHub-Hookshot/6c6a4b1")
                .header("X-GitHub-Event", event)
                .header("X-GitHub-Delivery", delivery)
                .header("X-GitHub-Hook-ID", "4242");
            if let Some(s) = sig {
                req = req.header("X-Hub-Signature-256", format!("sha256={s}"));
            }
        }
        "gitea" | "forgejo" => {
            // Gitea sends its own headers and GitHub's and Gogs' copies.
            req = req
                .header("User-Agent", "Go-http-client/1.1")
                .header("X-Gitea-Event", event)
                .header("X-Gitea-Delivery", delivery)
                .header("X-Gogs-Event", event)
                .header("X-GitHub-Event", event)
                .header("X-GitHub-Delivery", delivery);
            if forge == "forgejo" {
                req = req
                    .header("X-Forgejo-Event", event)
                    .header("X-Forgejo-Delivery", delivery);
            }
            if let Some(s) = sig {
                req = req
                    .header("X-Gitea-Signature", s.clone())
                    .header("X-Hub-Signature-256", format!("sha256={s}"));
                if forge == "forgejo" {
                    req = req.header("X-Forgejo-Signature", s);
                }
            }
        }
        "gitlab" => {
            req = req
                .header("User-Agent", "GitLab/17.5.0")
                .header("X-Gitlab-Event", event)
                .header("X-Gitlab-Event-UUID", delivery)
                .header("X-Gitlab-Instance", "https://gitlab.example.test");
            if let Some(s) = secret {
                req = req.header("X-Gitlab-Token", s);
            }
        }
        other => panic!("unknown forge {other}"),
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await.unwrap_or_default()))
}

/// Polls `f` until it returns `Some`, for up to 30 s.
pub async fn wait_for<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The delivery log through the admin API.
pub async fn deliveries(base: &str) -> Vec<serde_json::Value> {
    let v: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/api/v3/gantry/deliveries?per_page=100"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["deliveries"].as_array().cloned().unwrap_or_default()
}

/// PostgreSQL in Docker from the local image; removed on drop.
pub struct Postgres {
    pub name: String,
    pub url: String,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Starts `gantry/postgres:15` and waits for `pg_isready`; `None` (a loud skip) without
/// Docker or the image, a failure under `GANTRY_REQUIRE_DOCKER=1`.
pub fn postgres() -> Option<Postgres> {
    if !gantry_tests::docker_ready(&["gantry/postgres:15"]) {
        return None;
    }
    let name = format!(
        "gantry-serve-pg-{}-{}",
        std::process::id(),
        guid().split('-').next().unwrap()
    );
    let st = Command::new("docker")
        .args([
            "run",
            "-d",
            "--rm",
            "--name",
            &name,
            "-e",
            "POSTGRES_PASSWORD=ci-pass",
            "-e",
            "POSTGRES_USER=ci",
            "-e",
            "POSTGRES_DB=gantry",
            "-p",
            "127.0.0.1::5432",
            "gantry/postgres:15",
        ])
        .stdout(Stdio::null())
        .status()
        .expect("docker run");
    assert!(st.success(), "docker run gantry/postgres:15 failed");
    let mut pg = Postgres {
        name: name.clone(),
        url: String::new(),
    };
    let port = Command::new("docker")
        .args(["port", &name, "5432/tcp"])
        .output()
        .expect("docker port");
    let port = String::from_utf8_lossy(&port.stdout);
    let port = port.trim().rsplit(':').next().unwrap().to_string();
    let start = Instant::now();
    loop {
        let ready = Command::new("docker")
            .args([
                "exec",
                &name,
                "pg_isready",
                "-U",
                "ci",
                "-d",
                "gantry",
                "-h",
                "127.0.0.1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "postgres did not become ready"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    pg.url = format!("postgres://ci:ci-pass@127.0.0.1:{port}/gantry");
    Some(pg)
}

/// The run of `sha` in acme/shop through the API (octocrab, read-only user), once it exists.
pub async fn run_of(s: &Server, sha: &str) -> octocrab::models::workflows::Run {
    let octo = s.octocrab(READER_TOKEN);
    wait_for(&format!("a run of {sha}"), || async {
        let runs = octo
            .workflows("acme", "shop")
            .list_all_runs()
            .send()
            .await
            .ok()?;
        runs.items.into_iter().find(|r| r.head_sha == sha)
    })
    .await
}

// Executing runs: pushes to acme/shop's main, polling a run, its jobs and logs, the
// processes its steps leave (`serve_exec`, `serve_limits`).

pub const ZERO: &str = "0000000000000000000000000000000000000000";

/// A signed GitHub push of `after` to acme/shop's main; the server must accept it.
pub async fn push(s: &Server, before: &str, after: &str, msg: &str) {
    let body = github_push("acme/shop", "refs/heads/main", before, after, msg);
    let body = serde_json::to_vec(&body).unwrap();
    let (st, text) = deliver(&s.base, "github", "push", &guid(), &body, Some(SECRET)).await;
    assert_eq!(st, 202, "{text}");
}

/// Polls run `id` of acme/shop until `pred` holds (up to `secs`).
pub async fn run_until(
    s: &Server,
    id: u64,
    secs: u64,
    what: &str,
    pred: impl Fn(&octocrab::models::workflows::Run) -> bool,
) -> octocrab::models::workflows::Run {
    let octo = s.octocrab(READER_TOKEN);
    let start = Instant::now();
    loop {
        let run = octo
            .workflows("acme", "shop")
            .get(id.into())
            .await
            .expect("get run");
        if pred(&run) {
            return run;
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}; run is {} / {:?}\n{}",
            run.status,
            run.conclusion,
            s.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Run `id` once it has completed (up to 120 s).
pub async fn completed(s: &Server, id: u64) -> octocrab::models::workflows::Run {
    run_until(s, id, 120, "the run to complete", |r| {
        r.status == "completed"
    })
    .await
}

/// The jobs of run `id` (latest attempt) through the API.
pub async fn jobs(s: &Server, id: u64) -> Vec<octocrab::models::workflows::Job> {
    s.octocrab(READER_TOKEN)
        .workflows("acme", "shop")
        .list_jobs(id.into())
        .send()
        .await
        .expect("list jobs")
        .items
}

/// The run page of run `id` of acme/shop, read with the reader's API token.
pub async fn run_page(s: &Server, id: u64) -> String {
    reqwest::Client::new()
        .get(format!("{}/acme/shop/actions/runs/{id}", s.base))
        .bearer_auth(READER_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A job's log through the API.
pub async fn job_log(s: &Server, job: &octocrab::models::workflows::Job) -> String {
    let resp = reqwest::Client::new()
        .get(format!(
            "{}/api/v3/repos/acme/shop/actions/jobs/{}/logs",
            s.base, job.id
        ))
        .bearer_auth(READER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

/// Whether process `pid` still runs (a zombie has exited; only its entry is left).
pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// The pid a step wrote into `path`, once it is there.
pub async fn read_pid(path: &std::path::Path) -> i32 {
    wait_for("the step's pid file", || async {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
    })
    .await
}

/// The newest run of acme/shop in `store`, once a webhook or dispatch has queued one.
pub async fn first_run(store: &gantry_server::Store) -> gantry_server::store_runs::RunRecord {
    wait_for("the queued run", || async {
        let (_, runs) = store
            .list_runs("acme/shop", &Default::default(), 1, 10)
            .await
            .ok()?;
        runs.into_iter().next()
    })
    .await
}

/// A server that executes nothing, with CI_WORKFLOW pushed to acme/shop's main and its run
/// queued: the server, its store (this process's connection), the run and its first job.
pub struct QueuedCi {
    pub bare: BareRepo,
    pub server: Server,
    pub store: gantry_server::Store,
    pub run: gantry_server::store_runs::RunRecord,
    pub first_job: i64,
}

pub async fn queued_ci() -> QueuedCi {
    let bare = BareRepo::new();
    let sha = bare.commit(
        "main",
        &[(".github/workflows/ci.yml", CI_WORKFLOW)],
        "first",
    );
    let server = Server::start(&config_yaml(&bare.url(), None));
    push(&server, ZERO, &sha, "first").await;
    let store = server.store().await;
    let run = first_run(&store).await;
    let first_job = store.run_jobs(run.id, 1).await.unwrap()[0].id;
    QueuedCi {
        bare,
        server,
        store,
        run,
        first_job,
    }
}

/// Every byte of every file under `dir` (to search a server's whole data directory for a
/// secret).
pub fn all_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(all_bytes(&p));
            } else if let Ok(b) = std::fs::read(&p) {
                out.extend(b);
            }
        }
    }
    out
}

/// Whether `needle` occurs in `hay`.
pub fn bytes_contain(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}
