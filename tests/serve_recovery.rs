//! No accepted delivery is lost: the real `gantry serve` binary, a real bare repository and
//! signed GitHub pushes, with the server killed (`kill -9`) or stopped (SIGTERM) after the
//! 202 and before the delivery's run is queued. The window is held open with the
//! test-only `GANTRY_TEST_HOLD_DELIVERY` (processing waits until a file exists).

#[path = "serve_support.rs"]
mod serve_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serve_support::*;

const HOLD_ENV: &str = "GANTRY_TEST_HOLD_DELIVERY";

/// A push workflow whose one host job appends a line to `ran`: its lines count the runs.
fn counting_workflow(ran: &Path) -> String {
    format!(
        r#"name: CI
on: push
jobs:
  count:
    runs-on: self-hosted
    steps:
      - run: echo "ran $GITHUB_SHA" >> {ran}
"#,
        ran = ran.display()
    )
}

struct Setup {
    tmp: tempfile::TempDir,
    /// Kept: the server fetches from it.
    _bare: BareRepo,
    sha: String,
    config: String,
    body: Vec<u8>,
    guid: String,
}

impl Setup {
    fn new() -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let bare = BareRepo::new();
        let wf = counting_workflow(&tmp.path().join("ran.txt"));
        let sha = bare.commit("main", &[(".github/workflows/ci.yml", &wf)], "count");
        let config = config_yaml(&bare.url(), None);
        let body = github_push("acme/shop", "refs/heads/main", ZERO, &sha, "count");
        Setup {
            body: serde_json::to_vec(&body).unwrap(),
            guid: guid(),
            tmp,
            _bare: bare,
            sha,
            config,
        }
    }

    fn data(&self) -> String {
        self.tmp.path().join("data").display().to_string()
    }

    fn hold(&self) -> PathBuf {
        self.tmp.path().join("release")
    }

    /// A server whose processing of deliveries waits for [`Setup::release`].
    fn start_held(&self, extra: &[&str]) -> Server {
        let (hold, data) = (self.hold().display().to_string(), self.data());
        let mut args = vec!["--data", data.as_str()];
        args.extend_from_slice(extra);
        Server::start_with_env(&self.config, &args, &[(HOLD_ENV, &hold)])
    }

    fn start(&self, extra: &[&str]) -> Server {
        let data = self.data();
        let mut args = vec!["--data", data.as_str()];
        args.extend_from_slice(extra);
        Server::start_with(&self.config, &args)
    }

    /// Waits until the held server has accepted the delivery and is holding its
    /// processing.
    async fn held(&self) {
        let mut marker = self.hold().into_os_string();
        marker.push(".held");
        let marker = PathBuf::from(marker);
        wait_for("processing to be held", || async {
            marker.exists().then_some(())
        })
        .await;
    }

    fn release(&self) {
        std::fs::write(self.hold(), b"").unwrap();
    }

    async fn push(&self, s: &Server) -> (u16, String) {
        deliver(
            &s.base,
            "github",
            "push",
            &self.guid,
            &self.body,
            Some(SECRET),
        )
        .await
    }

    /// The lines the job wrote: one per run of it.
    fn ran(&self) -> usize {
        std::fs::read_to_string(self.tmp.path().join("ran.txt"))
            .map(|t| t.lines().filter(|l| l.contains(&self.sha)).count())
            .unwrap_or(0)
    }
}

/// The delivery's first record (the one that claimed the id).
async fn original(s: &Server, guid: &str) -> serde_json::Value {
    deliveries(&s.base)
        .await
        .into_iter()
        .rfind(|d| d["delivery_id"] == guid && d["status_code"] == 202)
        .expect("the delivery is recorded")
}

async fn run_ids(s: &Server) -> Vec<u64> {
    let runs = s
        .octocrab(READER_TOKEN)
        .workflows("acme", "shop")
        .list_all_runs()
        .send()
        .await
        .expect("list runs");
    runs.items.iter().map(|r| r.id.0).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_interrupted_by_kill_is_processed_at_restart_and_runs_once() {
    let t = Setup::new();
    let mut s = t.start_held(&[]);
    let (st, text) = t.push(&s).await;
    assert_eq!(st, 202, "{text}");
    t.held().await;
    let d = original(&s, &t.guid).await;
    assert_eq!(d["result"], "accepted", "not processed yet: {d}");
    assert!(run_ids(&s).await.is_empty());
    s.kill_hard();

    // The new server processes the delivery before it serves: once it answers, the run
    // is queued.
    let s = t.start(&[]);
    assert!(
        s.output()
            .contains("processed 1 deliveries left by the last server"),
        "{}",
        s.output()
    );
    let d = original(&s, &t.guid).await;
    assert_eq!(d["result"], "queued", "{d}");
    let ids = run_ids(&s).await;
    assert_eq!(ids.len(), 1);
    assert_eq!(d["run_ids"], serde_json::json!(ids));
    let run = completed(&s, ids[0]).await;
    assert_eq!(run.conclusion.as_deref(), Some("success"), "{}", s.output());
    assert_eq!(run.head_sha, t.sha);
    assert_eq!(t.ran(), 1);

    // The forge's redelivery of it starts nothing.
    let (st, text) = t.push(&s).await;
    assert_eq!(st, 200, "{text}");
    assert!(text.contains("received before"), "{text}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(run_ids(&s).await, ids);
    drop(s);

    // Nor does another start.
    let s = t.start(&[]);
    assert!(!s.output().contains("deliveries left by the last server"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(run_ids(&s).await, ids);
    assert_eq!(t.ran(), 1, "the run ran once");
    let results: Vec<String> = deliveries(&s.base)
        .await
        .iter()
        .filter(|d| d["delivery_id"] == t.guid.as_str())
        .map(|d| d["result"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(results, ["duplicate", "queued"]);
}

/// Two servers on one database (the second `--no-executor`, as allowed): the one that
/// accepted the delivery dies before processing it; the forge's redelivery to the other
/// gets it processed, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_processes_a_delivery_its_server_died_holding() {
    let t = Setup::new();
    let other = t.start(&["--no-executor"]);
    let mut first = t.start_held(&["--no-executor"]);
    let (st, text) = t.push(&first).await;
    assert_eq!(st, 202, "{text}");
    t.held().await;
    first.kill_hard();
    assert!(run_ids(&other).await.is_empty());

    let (st, text) = t.push(&other).await;
    assert_eq!(st, 200, "{text}");
    let d = wait_for("the redelivery to get the delivery processed", || async {
        let d = original(&other, &t.guid).await;
        (d["result"] != "accepted").then_some(d)
    })
    .await;
    assert_eq!(d["result"], "queued", "{d}");
    let ids = run_ids(&other).await;
    assert_eq!(ids.len(), 1);

    // A second redelivery finds it processed.
    let (st, _) = t.push(&other).await;
    assert_eq!(st, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(run_ids(&other).await, ids);
}

/// SIGTERM waits for a delivery being processed; when it finishes in time its run is
/// queued before the exit and the next start has nothing to recover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_waits_for_a_delivery_being_processed() {
    let t = Setup::new();
    let mut s = t.start_held(&["--no-executor"]);
    let (st, text) = t.push(&s).await;
    assert_eq!(st, 202, "{text}");
    t.held().await;
    let release = {
        let hold = t.hold();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(700));
            std::fs::write(hold, b"").unwrap();
        })
    };
    assert_eq!(s.terminate(), Some(0), "{}", s.output());
    release.join().unwrap();
    assert!(!s.output().contains("not processed yet"), "{}", s.output());

    let s = t.start(&["--no-executor"]);
    assert!(
        !s.output().contains("left by the last server"),
        "{}",
        s.output()
    );
    let d = original(&s, &t.guid).await;
    assert_eq!(d["result"], "queued", "{d}");
    assert_eq!(run_ids(&s).await.len(), 1);
}

/// SIGTERM waits a bounded time: a delivery still held is left accepted, the server exits,
/// and the next start processes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_leaves_an_unfinished_delivery_to_the_next_start() {
    let t = Setup::new();
    let mut s = t.start_held(&["--no-executor"]);
    let (st, text) = t.push(&s).await;
    assert_eq!(st, 202, "{text}");
    t.held().await;
    let stopping = Instant::now();
    assert_eq!(s.terminate(), Some(0), "{}", s.output());
    let took = stopping.elapsed();
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(20),
        "stopped after {took:?}"
    );
    assert!(
        s.output().contains("1 of 1 deliveries not processed yet"),
        "{}",
        s.output()
    );

    let s = t.start(&["--no-executor"]);
    assert!(
        s.output()
            .contains("processed 1 deliveries left by the last server"),
        "{}",
        s.output()
    );
    let d = original(&s, &t.guid).await;
    assert_eq!(d["result"], "queued", "{d}");
    assert_eq!(run_ids(&s).await.len(), 1);
    t.release();
}
