//! The job-executor boundary: every job crosses it as JSON (a layer serializes each
//! assignment and result and runs the deserialized copy), the gate is asked on the
//! scheduler's side before the executor sees the job, a refused job never reaches the
//! executor, and an environment's secrets reach only the job the gate admitted. Jobs run
//! for real on the host, in a real git repository.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use gantry_engine::events::{EventBus, Status};
use gantry_engine::executor::{ExecutedJob, JobAssignment, JobExecutor};
use gantry_engine::gate::{
    Admission, DeliveryGates, DeploymentOutcome, DeploymentRequest, Refusal, RefusalKind,
    Verification,
};
use gantry_engine::run::{RunConfig, WorkflowEntry};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "run-token-5f1c9a";
const STAGING_KEY: &str = "staging-key-83b2e7";
const PROD_KEY: &str = "prod-key-d04a61";

const WORKFLOW: &str = r###"
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    outputs:
      version: ${{ steps.v.outputs.version }}
    steps:
      - id: v
        run: |
          echo "version=1.4.2" >> "$GITHUB_OUTPUT"
          echo "build sees token $TOKEN and staging key '$STAGING_KEY'"
        env:
          TOKEN: ${{ secrets.TOKEN }}
          STAGING_KEY: ${{ secrets.STAGING_KEY }}
  staging:
    needs: build
    runs-on: ubuntu-latest
    environment:
      name: staging
      url: https://staging.example/${{ needs.build.outputs.version }}
    steps:
      - run: |
          test "${#KEY}" = 18 && test "${KEY#staging-key-}" != "$KEY" && echo "staging key released"
          echo "staging sees prod key '$PROD'"
        env:
          KEY: ${{ secrets.STAGING_KEY }}
          PROD: ${{ secrets.PROD_KEY }}
  production:
    needs: build
    runs-on: ubuntu-latest
    environment: production
    steps:
      - run: echo "production ran"
"###;

/// Admits `staging` (releasing its key), refuses `production`; records what it was asked.
struct TestGates {
    log: Arc<Mutex<Vec<String>>>,
    urls: Arc<Mutex<Vec<Option<String>>>>,
}

#[async_trait]
impl DeliveryGates for TestGates {
    async fn admit(
        &self,
        req: &DeploymentRequest,
        _cancel: CancellationToken,
    ) -> Result<Admission, Refusal> {
        self.log
            .lock()
            .unwrap()
            .push(format!("admit {}", req.environment));
        match req.environment.as_str() {
            "staging" => {
                let mut a = Admission::default();
                a.secrets.insert("STAGING_KEY".into(), STAGING_KEY.into());
                a.vars.insert("TIER".into(), "staging".into());
                Ok(a)
            }
            _ => Err(Refusal::new(
                RefusalKind::Rejected,
                "refused by the test's rules",
            )),
        }
    }

    async fn verify(&self, outcome: &DeploymentOutcome) -> Verification {
        self.log
            .lock()
            .unwrap()
            .push(format!("verify {}", outcome.request.environment));
        self.urls.lock().unwrap().push(outcome.url.clone());
        Verification::Passed
    }

    fn withholds_secret(&self, name: &str) -> bool {
        name == "STAGING_KEY" || name == "PROD_KEY"
    }
}

/// Sends every job through JSON, as a remote agent would receive it.
struct JsonLayer {
    inner: Arc<dyn JobExecutor>,
    log: Arc<Mutex<Vec<String>>>,
    sent: Arc<Mutex<Vec<(String, String)>>>,
}

#[async_trait]
impl JobExecutor for JsonLayer {
    async fn execute(&self, job: JobAssignment, cancel: CancellationToken) -> ExecutedJob {
        let wire = serde_json::to_string(&job).expect("an assignment serializes");
        self.log
            .lock()
            .unwrap()
            .push(format!("execute {}", job.job_id));
        self.sent
            .lock()
            .unwrap()
            .push((job.job_id.clone(), wire.clone()));
        let received: JobAssignment =
            serde_json::from_str(&wire).expect("an assignment deserializes");
        let done = self.inner.execute(received, cancel).await;
        let back = serde_json::to_string(&done).expect("a result serializes");
        serde_json::from_str(&back).expect("a result deserializes")
    }
}

/// A repository on `main` with one commit of `README`.
fn repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("README"), "boundary\n").unwrap();
    let repo = git2::Repository::init(dir.path()).unwrap();
    let mut index = repo.index().unwrap();
    index.add_path(Path::new("README")).unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("t", "t@e").unwrap();
    repo.commit(Some("refs/heads/main"), &sig, &sig, "init", &tree, &[])
        .unwrap();
    repo.set_head("refs/heads/main").unwrap();
    dir
}

#[tokio::test]
async fn jobs_cross_the_executor_boundary_as_data_after_admission() {
    let dir = repository();

    let loaded = gantry_workflow::parse_workflow(".github/workflows/ci.yml", WORKFLOW);
    let workflow = loaded.value.expect("the workflow parses");
    let mut cfg = RunConfig::new(
        dir.path().to_path_buf(),
        vec![WorkflowEntry {
            workflow,
            rel_path: ".github/workflows/ci.yml".into(),
        }],
    );
    cfg.all_host = true;
    cfg.run_id = "boundary-1".into();
    cfg.secrets.insert("TOKEN".into(), TOKEN.into());
    cfg.secrets.insert("STAGING_KEY".into(), STAGING_KEY.into());
    cfg.secrets.insert("PROD_KEY".into(), PROD_KEY.into());
    let log = Arc::new(Mutex::new(Vec::new()));
    let urls = Arc::new(Mutex::new(Vec::new()));
    let sent = Arc::new(Mutex::new(Vec::new()));
    cfg.gates = Arc::new(TestGates {
        log: log.clone(),
        urls: urls.clone(),
    });
    {
        let (log, sent) = (log.clone(), sent.clone());
        cfg.wrap_executor = Some(Arc::new(move |inner| {
            Arc::new(JsonLayer {
                inner,
                log: log.clone(),
                sent: sent.clone(),
            }) as Arc<dyn JobExecutor>
        }));
    }

    let bus = EventBus::new();
    let mut rx = bus.subscribe();
    let collect = tokio::spawn(async move {
        let mut events = Vec::new();
        while let Some(e) = rx.recv().await {
            events.push(serde_json::to_string(&*e).unwrap());
        }
        events
    });
    let outcome = gantry_engine::run::execute(cfg, bus.clone(), CancellationToken::new())
        .await
        .expect("the run executes");
    bus.close();
    drop(bus);
    let events = collect.await.unwrap();

    let result_of = |id: &str| {
        outcome
            .jobs
            .iter()
            .find(|j| j.job_id == id)
            .unwrap_or_else(|| panic!("no record of {id}: {:?}", outcome.jobs))
            .result
    };
    assert_eq!(result_of("build"), Status::Success);
    assert_eq!(result_of("staging"), Status::Success);
    assert_eq!(result_of("production"), Status::Failure);

    // The refused job never reached the executor; the admitted one only after the gate,
    // and verification came after the executor returned.
    let log = log.lock().unwrap().clone();
    let pos = |s: &str| log.iter().position(|l| l == s);
    assert_eq!(pos("execute production"), None, "{log:?}");
    assert!(pos("admit production").is_some(), "{log:?}");
    assert!(
        pos("admit staging") < pos("execute staging")
            && pos("execute staging") < pos("verify staging"),
        "{log:?}"
    );
    assert_eq!(
        urls.lock().unwrap().as_slice(),
        [Some("https://staging.example/1.4.2".to_string())]
    );

    // What crossed the boundary: each job's own secrets, never another environment's.
    let sent = sent.lock().unwrap().clone();
    let wire = |id: &str| {
        sent.iter()
            .find(|(j, _)| j == id)
            .map(|(_, w)| w.clone())
            .unwrap_or_else(|| panic!("{id} was not sent"))
    };
    let build = wire("build");
    assert!(build.contains(TOKEN), "the run's secret goes with build");
    assert!(!build.contains(STAGING_KEY) && !build.contains(PROD_KEY));
    let staging = wire("staging");
    assert!(
        staging.contains(STAGING_KEY),
        "released to the admitted job"
    );
    assert!(!staging.contains(PROD_KEY), "another environment's secret");
    let a: JobAssignment = serde_json::from_str(&staging).unwrap();
    assert_eq!(a.environment.as_deref(), Some("staging"));
    assert_eq!(a.vars.get("TIER").map(String::as_str), Some("staging"));
    assert_eq!(
        sent.len(),
        2,
        "{:?}",
        sent.iter().map(|s| &s.0).collect::<Vec<_>>()
    );

    // The jobs ran from the deserialized copies, and no secret left in an event.
    let all = events.join("\n");
    assert!(all.contains("staging key released"), "{all}");
    assert!(
        all.contains("build sees token *** and staging key ''"),
        "{all}"
    );
    assert!(all.contains("staging sees prod key ''"), "{all}");
    assert!(!all.contains("production ran"));
    for s in [TOKEN, STAGING_KEY, PROD_KEY] {
        assert!(!all.contains(s), "{s} in an event");
    }
    let finished = events
        .iter()
        .filter(|e| e.contains("\"job_finished\""))
        .count();
    assert_eq!(finished, 3, "one job_finished per job");
}
