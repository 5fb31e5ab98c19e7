//! End-to-end tests of continuous delivery in `gantry run` (`.gantry/config.yml`): run-level
//! Slack notifications (webhook, and Web API threads), delivery events in the run's event
//! stream (`events.jsonl`, `--json`, masked), `rollback: {strategy: previous}` redeploying
//! the last good commit of a real git repository, and the example pipeline in
//! `workflows/cd/` (Docker). Slack and the deployed service are local HTTP servers on
//! 127.0.0.1 that record what they receive.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gantry_tests::http::{Recorder, Request};
use gantry_tests::*;
use serde_json::{Value, json};

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (p, c) in files {
        let f = dir.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, c).unwrap();
    }
}

/// Commits every change in `dir` on top of HEAD; returns the new commit's sha.
fn commit(dir: &Path, message: &str) -> String {
    let repo = git2::Repository::open(dir).unwrap();
    let mut idx = repo.index().unwrap();
    idx.add_all(["*"].iter(), git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    idx.write().unwrap();
    let tree = repo.find_tree(idx.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("Test", "test@example.com").unwrap();
    let parent = repo.head().unwrap().peel_to_commit().unwrap();
    repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &[&parent])
        .unwrap()
        .to_string()
}

fn head(dir: &Path) -> String {
    let repo = git2::Repository::open(dir).unwrap();
    repo.head()
        .unwrap()
        .peel_to_commit()
        .unwrap()
        .id()
        .to_string()
}

fn run(dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["run", "push", "--host", "--offline", "-a", "carol"];
    all.extend_from_slice(args);
    gantry(dir, &all)
}

/// The newest run's `events.jsonl`.
fn events_jsonl_path(dir: &Path) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(".gantry/runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("events.jsonl"))
        .filter(|p| p.exists())
        .collect();
    files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    files.pop().expect("a run with events.jsonl")
}

fn events_jsonl(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(events_jsonl_path(dir))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const TWO_JOBS: &str = r#"
name: ship
on: push
jobs:
  fine:
    runs-on: ubuntu-latest
    steps:
      - run: echo fine
  broken:
    runs-on: ubuntu-latest
    steps:
      - run: exit 3
"#;

#[test]
fn run_failed_goes_to_the_slack_webhook_with_the_failed_jobs() {
    let slack = Recorder::slack();
    let config = "notifications:\n  slack:\n    webhook_url: ${{ secrets.SLACK_WEBHOOK_URL }}\n    mention_on_failure: [U024BE7LH]\n";
    let dir = git_repo_with(&[
        (".github/workflows/ship.yml", TWO_JOBS),
        (".gantry/config.yml", config),
    ]);
    let hook = format!(
        "SLACK_WEBHOOK_URL={}",
        slack.url("/services/T1/B2/hook-secret-xyz")
    );
    let out = run(dir.path(), &["-s", &hook]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let reqs = slack.requests();
    assert_eq!(reqs.len(), 1, "one run-level message: {reqs:?}");
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/services/T1/B2/hook-secret-xyz");
    let body = &r.body;
    let sha = head(dir.path());
    let fallback = body["text"].as_str().unwrap();
    assert!(fallback.starts_with("<@U024BE7LH> ❌ Run #"), "{fallback}");
    assert!(fallback.contains("failed"), "{fallback}");
    let branch = git2::Repository::open(dir.path())
        .unwrap()
        .head()
        .unwrap()
        .shorthand()
        .unwrap()
        .to_string();
    assert!(
        fallback.contains(&format!("{branch}@{} by carol", &sha[..7])),
        "{fallback}"
    );
    assert!(fallback.contains("Failed jobs: broken"), "{fallback}");
    assert!(
        !fallback.contains("fine"),
        "only failed jobs are listed: {fallback}"
    );
    let att = &body["attachments"][0];
    assert_eq!(att["color"], "danger");
    let fields: Vec<String> = att["blocks"][0]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["text"].as_str().unwrap().to_string())
        .collect();
    let has = |prefix: &str| fields.iter().any(|f| f.starts_with(prefix));
    assert!(has("*Repository*\nlocal/"), "{fields:?}");
    assert!(fields.contains(&format!("*Ref*\n{branch}")), "{fields:?}");
    assert!(
        fields.contains(&format!("*Commit*\n`{}` init", &sha[..7])),
        "short sha and message: {fields:?}"
    );
    assert!(fields.contains(&"*Actor*\ncarol".to_string()), "{fields:?}");
    assert!(
        has("*Workflow*\n.github/workflows/ship.yml #"),
        "{fields:?}"
    );
    assert!(has("*Duration*\n"), "{fields:?}");
    assert!(
        fields.contains(&"*Status*\nfailure".to_string()),
        "{fields:?}"
    );
    let details = body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["text"]["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(details.contains("*Failed jobs:* broken"), "{details}");
}

#[test]
fn slack_that_fails_only_warns() {
    // A port nobody listens on: the notifier retries, then warns; the run succeeds.
    let free = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!(
        "http://127.0.0.1:{}/hook",
        free.local_addr().unwrap().port()
    );
    drop(free);
    let config = format!("notifications:\n  slack:\n    webhook_url: \"{dead}\"\n");
    let dir = git_repo_with(&[
        (
            ".github/workflows/ok.yml",
            "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ok\n",
        ),
        (".gantry/config.yml", &config),
    ]);
    let started = Instant::now();
    let out = run(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("Slack notification failed"),
        "{}",
        text(&out)
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}

const DEPLOY_WF: &str = r#"
name: deploy
on: push
jobs:
  deploy:
    runs-on: ubuntu-latest
    environment: staging
    steps:
      - run: echo deployed
"#;

#[test]
fn web_api_threads_run_messages_under_the_deployment() {
    let slack = Recorder::slack();
    let health = Recorder::start(Arc::new(|_r: &Request, _| {
        (200, r#"{"status":"ok"}"#.into())
    }));
    let config = format!(
        r##"environments:
  staging:
    health_check:
      interval: 50ms
      count: 1
      probes:
        - name: api
          http: {{ url: "{}", json_path: "$.status", expect: ok }}
notifications:
  slack:
    bot_token: ${{{{ secrets.SLACK_BOT_TOKEN }}}}
    channel: "#deploys"
    api_url: "{}"
    events: [deployment_succeeded, run_succeeded, run_failed]
"##,
        health.url("/health"),
        slack.url("/api")
    );
    let dir = git_repo_with(&[
        (".github/workflows/deploy.yml", DEPLOY_WF),
        (".gantry/config.yml", &config),
    ]);
    let out = run(dir.path(), &["-s", "SLACK_BOT_TOKEN=xoxb-test-token-123"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let reqs = slack.requests();
    let paths: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/api/chat.postMessage",
            "/api/chat.update",
            "/api/chat.postMessage"
        ],
        "root message, then the run result updates it and replies in its thread"
    );
    for r in &reqs {
        assert_eq!(r.auth.as_deref(), Some("Bearer xoxb-test-token-123"));
        assert!(r.body["channel"].as_str().is_some());
    }
    let root = &reqs[0].body;
    assert!(root.get("thread_ts").is_none());
    assert!(
        root["text"].as_str().unwrap().contains("Deployed"),
        "{root}"
    );
    assert_eq!(
        reqs[1].body["ts"], "1000.000001",
        "chat.update names the root"
    );
    assert_eq!(
        reqs[2].body["thread_ts"], "1000.000001",
        "reply in the run's thread"
    );
    assert_eq!(reqs[2].body["channel"], "C0DEPLOY");
    let reply = reqs[2].body["text"].as_str().unwrap();
    assert!(
        reply.contains("✅ Run #") && reply.contains("succeeded"),
        "{reply}"
    );
    assert_eq!(reqs[2].body["attachments"][0]["color"], "good");
}

#[test]
fn delivery_events_land_in_events_jsonl_and_json_output_masked() {
    const SECRET: &str = "hunter2-deploy-secret";
    let health = Recorder::start(Arc::new(|_r: &Request, _| {
        (200, format!(r#"{{"status":"ok","token":"{SECRET}"}}"#))
    }));
    let config = format!(
        r#"environments:
  staging:
    reviewers: [alice]
    secrets: [DEPLOY_TOKEN]
    health_check:
      interval: 50ms
      count: 2
      probes:
        - name: api
          http: {{ url: "{}", expect: "/ok/" }}
"#,
        health.url("/health")
    );
    let dir = git_repo_with(&[
        (".github/workflows/deploy.yml", DEPLOY_WF),
        (".gantry/config.yml", &config),
    ]);
    // The reviewer decides from a second process while the run waits.
    let repo = dir.path().to_path_buf();
    let approver = std::thread::spawn(move || {
        for _ in 0..300 {
            let out = gantry(&repo, &["approvals", "--json"]);
            let pending: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            if let Some(run) = pending[0]["run_id"].as_str() {
                let out = gantry(
                    &repo,
                    &[
                        "approve",
                        run,
                        "staging",
                        "--as",
                        "alice",
                        "--comment",
                        "go",
                    ],
                );
                return out.status.success();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    });
    let secret = format!("DEPLOY_TOKEN={SECRET}");
    let out = run(dir.path(), &["--json", "-s", &secret]);
    assert!(approver.join().unwrap(), "the approval was not accepted");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains(SECRET), "a secret in the output");

    let stdout: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let file = events_jsonl(dir.path());
    for evs in [&stdout, &file] {
        let of = |t: &str| -> Vec<&Value> { evs.iter().filter(|e| e["type"] == t).collect() };
        let pending = of("approval_pending");
        assert_eq!(pending.len(), 1, "{evs:?}");
        assert_eq!(pending[0]["environment"], "staging");
        assert_eq!(pending[0]["reviewers"], json!(["alice"]));
        assert!(
            pending[0]["command"]
                .as_str()
                .unwrap()
                .starts_with("gantry approve ")
        );
        let decided = of("approval_decided");
        assert_eq!(decided.len(), 1, "{evs:?}");
        assert_eq!(decided[0]["by"], "alice");
        assert_eq!(decided[0]["approved"], true);
        assert_eq!(decided[0]["comment"], "go");
        let m = of("health_measurement");
        assert_eq!(m.len(), 2, "count: 2 measurements: {evs:?}");
        for x in &m {
            assert_eq!(x["probe"], "api");
            assert_eq!(x["phase"], "successful");
            assert_eq!(x["status"], 200);
            let v = x["value"].as_str().unwrap();
            assert!(v.contains("\"token\":\"***\""), "masked value: {v}");
        }
        let ok = of("deployment_succeeded");
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0]["sha"], head(dir.path()));
        // Delivery events come before the deploy job finishes.
        let pos = |t: &str| evs.iter().position(|e| e["type"] == t).unwrap();
        assert!(pos("approval_pending") < pos("approval_decided"));
        assert!(pos("deployment_succeeded") < pos("run_finished"));
    }
    let all = std::fs::read_to_string(events_jsonl_path(dir.path())).unwrap();
    assert!(!all.contains(SECRET), "a secret in events.jsonl");
}

/// The deployed "service": /health answers 200 `{"status":"ok"}` while the version
/// deployed (the file `current` in `state`) is healthy, 500 otherwise.
fn service(state: PathBuf) -> Recorder {
    Recorder::start(Arc::new(move |_r: &Request, _| {
        let v = std::fs::read_to_string(state.join("current")).unwrap_or_default();
        if v.trim() == "v1" {
            (200, r#"{"status":"ok","version":"v1"}"#.into())
        } else {
            (
                500,
                format!(r#"{{"status":"broken","version":"{}"}}"#, v.trim()),
            )
        }
    }))
}

const PIPELINE: &str = r#"
name: cd
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    outputs:
      version: ${{ steps.v.outputs.version }}
    steps:
      - uses: actions/checkout@v4
      - id: v
        run: |
          echo "version=$(cat version)" >> "$GITHUB_OUTPUT"
          echo "$GITHUB_SHA" >> "${{ vars.STATE }}/builds"
  deploy:
    needs: build
    runs-on: ubuntu-latest
    environment: staging
    steps:
      - uses: actions/checkout@v4
      - run: |
          echo "${{ needs.build.outputs.version }}" > "${{ vars.STATE }}/current"
          echo "$GITHUB_SHA" > "${{ vars.STATE }}/deployed-sha"
          echo "$(cat version)" > "${{ vars.STATE }}/checkout-version"
"#;

#[test]
fn strategy_previous_redeploys_the_last_good_commit() {
    let state = tempfile::tempdir().unwrap();
    let svc = service(state.path().to_path_buf());
    let config = format!(
        r#"environments:
  staging:
    health_check:
      interval: 50ms
      count: 2
      probes:
        - name: api
          http: {{ url: "{}", expect_status: [200], json_path: "$.status", expect: ok }}
      on_failure: rollback
    rollback:
      strategy: previous
"#,
        svc.url("/health")
    );
    let dir = git_repo_with(&[
        (".github/workflows/cd.yml", PIPELINE),
        (".gantry/config.yml", &config),
        ("version", "v1\n"),
    ]);
    let good = head(dir.path());
    let var = format!("STATE={}", state.path().display());
    let out = run(dir.path(), &["--var", &var]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let read = |f: &str| {
        std::fs::read_to_string(state.path().join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(read("current"), "v1");

    write(dir.path(), &[("version", "v2\n")]);
    let bad = commit(dir.path(), "v2 breaks /health");
    let out = run(dir.path(), &["--var", &var]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains(&format!(
            "deployed {}, health failed (probe `api`: ",
            &bad[..7]
        )) && all.contains(&format!("rolled back to {} (healthy)", &good[..7])),
        "{all}"
    );
    // The deploy job ran again at the good commit with the recorded build output, and
    // the build job was not run again.
    assert_eq!(read("current"), "v1");
    assert_eq!(read("deployed-sha"), good);
    assert_eq!(
        read("checkout-version"),
        "v1",
        "the worktree is at the good commit"
    );
    assert_eq!(read("builds").lines().count(), 2, "build ran once per run");

    let out = gantry(dir.path(), &["deployments", "staging", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let recs: Value = serde_json::from_slice(&out.stdout).unwrap();
    let newest = &recs[0];
    assert_eq!(newest["sha"], bad);
    assert_eq!(newest["status"], "rolled_back");
    assert_eq!(newest["rollback"]["strategy"], "previous");
    assert_eq!(newest["rollback"]["to_sha"], good);
    assert_eq!(newest["rollback"]["succeeded"], true);
    assert_eq!(newest["rollback"]["health"]["passed"], true);
    assert_eq!(newest["health"]["passed"], false);
    assert_eq!(recs[1]["status"], "succeeded");
    assert_eq!(recs[1]["inputs"]["job_id"], "deploy");
    assert_eq!(recs[1]["inputs"]["needs"]["build"]["version"], "v1");

    // The run's events say the same.
    let evs = events_jsonl(dir.path());
    let rb: Vec<&Value> = evs.iter().filter(|e| e["type"] == "rolled_back").collect();
    assert_eq!(rb.len(), 1, "{evs:?}");
    assert_eq!(rb[0]["to_sha"], good);
    assert_eq!(rb[0]["healthy"], true);
    assert!(
        evs.iter()
            .any(|e| e["type"] == "health_measurement" && e["phase"] == "failed")
    );
    // No worktree is left behind.
    let wt = Command::new("git")
        .args(["worktree", "list"])
        .current_dir(dir.path())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&wt.stdout).lines().count(), 1);
}

#[test]
fn example_pipeline_deploys_then_rolls_back() {
    if !docker_available() {
        assert!(
            !docker_required(),
            "GANTRY_REQUIRE_DOCKER=1 but no Docker daemon answers"
        );
        eprintln!("SKIPPED example_pipeline_deploys_then_rolls_back: no Docker daemon");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let port = |_| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    let ports: Vec<String> = (0..4).map(port).collect();
    let started = Instant::now();
    let out = Command::new("bash")
        .arg(workspace_root().join("workflows/cd/demo.sh"))
        .env("GANTRY", gantry_bin())
        .env("DEMO_DIR", work.path())
        .env("STAGING_PORT", &ports[0])
        .env("PRODUCTION_PORT", &ports[1])
        .env("REGISTRY_PORT", &ports[2])
        .env("SLACK_PORT", &ports[3])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let all = text(&out);
    eprintln!("example pipeline: {:.1}s", started.elapsed().as_secs_f64());
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("carol triggered this run and may not review it"),
        "self-review refused: {all}"
    );
    assert!(
        all.contains("approved run 1 environment production"),
        "{all}"
    );
    assert!(all.contains("rolled back to"), "{all}");
    assert!(all.contains("(healthy)"), "{all}");
    assert!(
        !all.contains("demo-deploy-token-42"),
        "a secret in the output"
    );
    // What the Slack sink received.
    let log = std::fs::read_to_string(work.path().join("slack.jsonl")).unwrap();
    let msgs: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let texts: Vec<&str> = msgs
        .iter()
        .map(|m| m["body"]["text"].as_str().unwrap_or(""))
        .collect();
    let any = |s: &str| texts.iter().any(|t| t.contains(s));
    assert!(any("waits for 1 approval"), "{texts:?}");
    assert!(any("Deployed"), "{texts:?}");
    assert!(any("rolled back"), "{texts:?}");
    assert!(any("succeeded") && any("failed"), "{texts:?}");
    assert!(!log.contains("demo-deploy-token-42"));
}
