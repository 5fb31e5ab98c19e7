//! The session API as a server-like caller uses it: its own workspace directory, its own
//! store (in memory here), its own gates, no terminal. Jobs run for real on the host
//! (`sh`), in a real git repository.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use gantry_engine::events::{EventBus, RunEvent, Status};
use gantry_engine::gate::{
    Admission, DeliveryGates, DeploymentOutcome, DeploymentRequest, Refusal, RefusalKind,
    Verification,
};
use gantry_session::{
    GateSource, LocalRunStore, Pending, RunSlot, RunStart, RunStore, Session, SessionError,
    StoreError,
};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "hunter2-session-secret";

const WORKFLOW: &str = r###"
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: echo "building with $TOKEN"
        env:
          TOKEN: ${{ secrets.TOKEN }}
      - run: echo "## built" >> "$GITHUB_STEP_SUMMARY"
  deploy:
    needs: build
    runs-on: ubuntu-latest
    environment: production
    steps:
      - run: echo deployed
"###;

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

/// A committed repository with the workflow.
fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join(".github/workflows");
    std::fs::create_dir_all(&wf).unwrap();
    std::fs::write(wf.join("ci.yml"), WORKFLOW).unwrap();
    git(dir.path(), &["init", "-q", "-b", "main"]);
    git(dir.path(), &["add", "."]);
    git(
        dir.path(),
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@e",
            "commit",
            "-qm",
            "init",
        ],
    );
    dir
}

fn request(root: &Path, gates: GateSource) -> gantry_session::RunRequest {
    let mut r = gantry_session::RunRequest::new(root.to_path_buf(), "push");
    r.secrets.insert("TOKEN".into(), SECRET.into());
    r.options.all_host = true;
    r.gates = gates;
    r
}

/// A store that keeps every event in memory (what a SQL store would insert).
#[derive(Default, Clone)]
struct MemoryStore {
    started: Arc<Mutex<Vec<Vec<String>>>>,
    events: Arc<Mutex<Vec<RunEvent>>>,
}

impl RunStore for MemoryStore {
    fn begin(&self, start: &RunStart<'_>) -> Result<RunSlot, StoreError> {
        self.started
            .lock()
            .unwrap()
            .push(start.secret_names.clone());
        let events = self.events.clone();
        let recorder = move |bus: &EventBus| {
            let mut sub = bus.subscribe();
            Pending::Task(tokio::spawn(async move {
                while let Some(ev) = sub.recv().await {
                    events.lock().unwrap().push((*ev).clone());
                }
            }))
        };
        Ok(RunSlot {
            id: "mem-1".into(),
            number: 1,
            location: "memory".into(),
            recorder: Box::new(recorder),
        })
    }
}

/// Refuses every environment, counting the requests.
#[derive(Default)]
struct Refuse {
    asked: Mutex<Vec<String>>,
}

#[async_trait]
impl DeliveryGates for Refuse {
    async fn admit(
        &self,
        req: &DeploymentRequest,
        _cancel: CancellationToken,
    ) -> Result<Admission, Refusal> {
        self.asked.lock().unwrap().push(req.environment.clone());
        Err(Refusal::new(
            RefusalKind::Blocked,
            format!("{} is closed by the caller", req.environment),
        ))
    }

    async fn verify(&self, _outcome: &DeploymentOutcome) -> Verification {
        Verification::Passed
    }
}

#[tokio::test]
async fn a_caller_with_its_own_store_and_gates_gets_the_run_recorded_from_events() {
    let repo = repo();
    let gates = Arc::new(Refuse::default());
    let store = MemoryStore::default();
    let prepared =
        Session::prepare(request(repo.path(), GateSource::Given(gates.clone()))).expect("prepares");
    assert_eq!(prepared.workflows().len(), 1);
    let result = prepared
        .execute(&store, vec![], CancellationToken::new())
        .await
        .expect("runs");

    assert_eq!(result.run_id, "mem-1");
    assert_eq!(result.result, Status::Failure);
    assert_eq!(*gates.asked.lock().unwrap(), vec!["production".to_string()]);
    let jobs: Vec<(&str, Status)> = result
        .summary
        .jobs
        .iter()
        .map(|j| (j.job_id.as_str(), j.result))
        .collect();
    assert_eq!(
        jobs,
        vec![("build", Status::Success), ("deploy", Status::Failure)]
    );
    // The store got the names of the secrets, never their values, and every event.
    assert_eq!(
        *store.started.lock().unwrap(),
        vec![vec!["TOKEN".to_string()]]
    );
    let events = store.events.lock().unwrap();
    assert!(matches!(events.last(), Some(RunEvent::RunFinished { .. })));
    let all = serde_json::to_string(&*events).unwrap();
    assert!(all.contains("building with ***"), "{all}");
    assert!(!all.contains(SECRET));
    assert!(
        all.contains("## built"),
        "the step summary is an event: {all}"
    );
    // Nothing was written into the workspace's own run records.
    assert!(!repo.path().join(".gantry/runs").exists());
}

#[tokio::test]
async fn the_local_store_derives_every_file_from_the_events_and_the_request() {
    let repo = repo();
    let store = LocalRunStore::new(repo.path());
    let prepared = Session::prepare(request(
        repo.path(),
        GateSource::Given(Arc::new(gantry_engine::gate::NoGates)),
    ))
    .unwrap();
    let result = prepared
        .execute(&store, vec![], CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(result.result, Status::Success);
    let dir = repo.path().canonicalize().unwrap().join(".gantry/runs/1");
    assert_eq!(result.location, dir);

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["result"], "success");
    assert_eq!(summary["jobs"].as_array().unwrap().len(), 2);
    assert_eq!(
        summary["jobs"][0]["duration_ms"],
        result.summary.jobs[0].duration_ms
    );
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(md.contains("## built"), "{md}");
    assert!(md.contains("| build | success |"), "{md}");
    let record = std::fs::read_to_string(dir.join("run.json")).unwrap();
    assert!(record.contains("\"TOKEN\""), "{record}");
    assert!(!record.contains(SECRET), "{record}");
    let log = std::fs::read_to_string(dir.join("logs/build/1.log")).unwrap();
    assert!(log.contains("building with ***"), "{log}");
}

#[test]
fn bad_requests_are_refused_before_a_run_exists() {
    let repo = repo();
    let mut r = request(
        repo.path(),
        GateSource::RepoConfig {
            print_events: false,
        },
    );
    r.options.only_jobs = vec!["nope".into()];
    let err = Session::prepare(r).err().expect("refused");
    assert!(
        matches!(err, SessionError::UnknownJob(ref j) if j == "nope"),
        "{err}"
    );
    assert!(err.is_bad_input());

    let mut r = request(
        repo.path(),
        GateSource::RepoConfig {
            print_events: false,
        },
    );
    r.event_name = "pull_request".into();
    let p = Session::prepare(r).unwrap();
    assert!(p.is_empty());
    assert_eq!(p.not_triggered().len(), 1);
    assert!(p.not_triggered()[0].starts_with(".github/workflows/ci.yml: "));

    std::fs::write(
        repo.path().join(".github/workflows/bad.yml"),
        "on: push\njobs:\n  x: [\n",
    )
    .unwrap();
    let r = request(
        repo.path(),
        GateSource::RepoConfig {
            print_events: false,
        },
    );
    let err = Session::prepare(r).err().expect("refused");
    assert!(matches!(err, SessionError::Workflows(_)), "{err}");
    assert!(err.to_string().contains("bad.yml"), "{err}");
}
