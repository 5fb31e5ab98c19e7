//! The SQL run store on both databases: SQLite in a temp dir and PostgreSQL from the local
//! `gantry/postgres:15` image, through the same migrations and the same code.

#[path = "serve_support.rs"]
mod serve_support;

use gantry_server::Store;
use gantry_server::store::Admission;
use gantry_server::store_runs::{NewJob, NewRun, RunFilter, StepRecord};

fn new_run(branch: &str, event: &str) -> NewRun {
    let job = |key: &str, needs: &[&str], env: Option<&str>| NewJob {
        key: key.into(),
        name: key.into(),
        needs: needs.iter().map(|s| s.to_string()).collect(),
        labels: vec!["ubuntu-latest".into()],
        environment: env.map(str::to_string),
    };
    NewRun {
        repo: "acme/shop".into(),
        workflow_path: ".github/workflows/ci.yml".into(),
        workflow_name: "CI".into(),
        display_title: "first".into(),
        event: event.into(),
        head_branch: branch.into(),
        head_sha: "a".repeat(40),
        git_ref: format!("refs/heads/{branch}"),
        actor: "dev".into(),
        head_commit: serde_json::json!({ "id": "a".repeat(40), "message": "first" }),
        payload: serde_json::json!({ "ref": format!("refs/heads/{branch}") }),
        delivery_id: Some("d-1".into()),
        jobs: vec![
            job("build", &[], None),
            job("test", &["build"], None),
            job("deploy", &["test"], Some("production")),
        ],
    }
}

async fn exercise(store: &Store) {
    // Runs, jobs, filters, paging.
    let r1 = store.create_run(&new_run("main", "push")).await.unwrap();
    let r2 = store.create_run(&new_run("dev", "push")).await.unwrap();
    let r3 = store
        .create_run(&new_run("main", "workflow_dispatch"))
        .await
        .unwrap();
    let (total, page) = store
        .list_runs("acme/shop", &RunFilter::default(), 1, 2)
        .await
        .unwrap();
    assert_eq!(total, 3);
    assert_eq!(page.iter().map(|r| r.id).collect::<Vec<_>>(), [r3, r2]);
    assert_eq!(page[0].run_number, 3);
    let f = RunFilter {
        branch: Some("main".into()),
        event: Some("push".into()),
        ..Default::default()
    };
    let (total, only) = store.list_runs("acme/shop", &f, 1, 30).await.unwrap();
    assert_eq!((total, only[0].id), (1, r1));
    let (total, _) = store
        .list_runs("acme/other", &RunFilter::default(), 1, 30)
        .await
        .unwrap();
    assert_eq!(total, 0, "runs are per repository");

    // Steps and logs: the log is readable while the job runs and stored masked.
    let jobs = store.run_jobs(r1, 1).await.unwrap();
    assert_eq!(
        jobs.iter().map(|j| j.key.as_str()).collect::<Vec<_>>(),
        ["build", "test", "deploy"]
    );
    let build = &jobs[0];
    store
        .set_job_status(build.id, "in_progress", None)
        .await
        .unwrap();
    store
        .set_step(
            build.id,
            &StepRecord {
                number: 1,
                name: "Run echo".into(),
                status: "in_progress".into(),
                conclusion: None,
                started_at: Some(gantry_server::store::now()),
                completed_at: None,
            },
        )
        .await
        .unwrap();
    let masker = gantry_engine::masker::Masker::new();
    masker.add_secret("s3cr3t-value");
    store
        .append_log(build.id, "token=s3cr3t-value\n", &masker)
        .await
        .unwrap();
    let so_far = store.job_log(build.id).await.unwrap();
    assert_eq!(so_far, "token=***\n");
    store.append_log(build.id, "done\n", &masker).await.unwrap();
    assert_eq!(store.job_log(build.id).await.unwrap(), "token=***\ndone\n");
    store
        .set_job_status(build.id, "completed", Some("success"))
        .await
        .unwrap();
    let steps = store.job_steps(build.id).await.unwrap();
    assert_eq!(steps[0].status, "in_progress");
    let got = store.get_job("acme/shop", build.id).await.unwrap().unwrap();
    assert_eq!(got.conclusion.as_deref(), Some("success"));
    assert!(got.started_at.is_some() && got.completed_at.is_some());
    assert!(
        store
            .get_job("acme/other", build.id)
            .await
            .unwrap()
            .is_none()
    );

    // A failed job; "re-run failed jobs" takes it and what needs it, not `build`.
    store
        .set_job_status(jobs[1].id, "completed", Some("failure"))
        .await
        .unwrap();
    store
        .set_job_status(jobs[2].id, "completed", Some("skipped"))
        .await
        .unwrap();
    assert_eq!(
        store.rerun(r1, "bob", true).await.unwrap(),
        None,
        "run not completed yet"
    );
    store
        .set_run_status(r1, "completed", Some("failure"))
        .await
        .unwrap();
    assert_eq!(store.rerun(r1, "bob", true).await.unwrap(), Some(2));
    let again = store.run_jobs(r1, 2).await.unwrap();
    assert_eq!(
        again.iter().map(|j| j.key.as_str()).collect::<Vec<_>>(),
        ["test", "deploy"]
    );
    let run = store.get_run("acme/shop", r1).await.unwrap().unwrap();
    assert_eq!((run.status.as_str(), run.run_attempt), ("queued", 2));

    // Cancel.
    assert!(store.cancel_run(r2).await.unwrap());
    assert!(!store.cancel_run(r2).await.unwrap(), "already completed");
    let jobs2 = store.run_jobs(r2, 1).await.unwrap();
    assert!(
        jobs2
            .iter()
            .all(|j| j.conclusion.as_deref() == Some("cancelled"))
    );

    // Approvals with who/when/comment, deployments, artifacts.
    let deploy = &jobs[2];
    store
        .record_approval(r1, deploy.id, "production", "bob", "approved", "ship it")
        .await
        .unwrap();
    let a = store.approvals(r1).await.unwrap();
    assert_eq!(
        (a[0].reviewer.as_str(), a[0].comment.as_str()),
        ("bob", "ship it")
    );
    assert!(a[0].created_at.ends_with('Z'));
    let d = store
        .record_deployment(
            "acme/shop",
            "production",
            r1,
            deploy.id,
            &"a".repeat(40),
            "refs/heads/main",
            "dev",
            "waiting",
        )
        .await
        .unwrap();
    store.set_deployment_state(d, "success").await.unwrap();
    let ds = store.deployments("acme/shop").await.unwrap();
    assert_eq!((ds[0].id, ds[0].state.as_str()), (d, "success"));
    store
        .record_artifact(r1, "dist", 1234, "2027-03-01T00:00:00Z")
        .await
        .unwrap();
    assert_eq!(store.artifacts(r1).await.unwrap()[0].size_in_bytes, 1234);

    // Deliveries: every one recorded; an id claimed once per forge, and only by a
    // verified delivery (a refused one is recorded without claiming it).
    store
        .record_delivery(
            "github",
            Some("g-1"),
            Some("push"),
            None,
            "forged",
            401,
            "no match",
        )
        .await
        .unwrap();
    let admit = |forge: &'static str, result: &'static str| {
        let store = store.clone();
        async move {
            store
                .admit_delivery(
                    forge,
                    "g-1",
                    "push",
                    "acme/shop",
                    result,
                    202,
                    "ok",
                    "again",
                    None,
                )
                .await
                .unwrap()
        }
    };
    let Admission::New(id) = admit("github", "accepted").await else {
        panic!("the first verified delivery of g-1 is new");
    };
    let again = admit("github", "accepted").await;
    assert!(
        matches!(again, Admission::Duplicate(d) if d != id),
        "{again:?}"
    );
    assert!(
        matches!(admit("gitea", "ignored").await, Admission::New(_)),
        "ids are per forge"
    );
    store
        .finish_delivery(id, "queued", "ci.yml: on: push", &[r1])
        .await
        .unwrap();
    let log = store.deliveries(10).await.unwrap();
    let seen: Vec<_> = log
        .iter()
        .map(|d| (d.forge.as_str(), d.result.as_str(), d.status_code))
        .collect();
    assert_eq!(
        seen,
        [
            ("gitea", "ignored", 202),
            ("github", "duplicate", 200),
            ("github", "queued", 202),
            ("github", "forged", 401),
        ]
    );
    assert_eq!((log[1].reason.as_str(), log[1].run_ids.len()), ("again", 0));
    assert_eq!(log[2].run_ids, [r1]);
    let counts = store.delivery_counts().await.unwrap();
    let n = |r: &str| (r.to_string(), 1);
    assert_eq!(
        counts,
        [n("duplicate"), n("forged"), n("ignored"), n("queued")]
    );

    // An accepted delivery keeps its payload until processed; its runs and its outcome
    // commit together, once.
    let payload = r#"{"ref":"refs/heads/main"}"#;
    let Admission::New(pending) = store
        .admit_delivery(
            "github",
            "p-1",
            "push",
            "acme/hooks",
            "accepted",
            202,
            "accepted",
            "again",
            Some(payload),
        )
        .await
        .unwrap()
    else {
        panic!("p-1 is new");
    };
    assert_eq!(store.unprocessed_deliveries().await.unwrap(), [pending]);
    let stored = store.stored_delivery(pending).await.unwrap().unwrap();
    assert_eq!(stored.payload.as_deref(), Some(payload));
    assert_eq!(
        store.unprocessed_claim("github", "p-1").await.unwrap(),
        Some(pending)
    );
    let mut hook_run = new_run("main", "push");
    hook_run.repo = "acme/hooks".into();
    let queued = store
        .queue_delivery_runs(pending, &[hook_run.clone()], "ci.yml: on: push")
        .await
        .unwrap()
        .expect("queued once");
    assert_eq!(
        store
            .queue_delivery_runs(pending, &[hook_run], "again")
            .await
            .unwrap(),
        None,
        "a delivery queues its runs once"
    );
    let (total, hooked) = store
        .list_runs("acme/hooks", &RunFilter::default(), 1, 30)
        .await
        .unwrap();
    assert_eq!((total, hooked[0].id), (1, queued[0]));
    assert!(store.unprocessed_deliveries().await.unwrap().is_empty());
    assert_eq!(store.stored_delivery(pending).await.unwrap(), None);
    assert_eq!(
        store.unprocessed_claim("github", "p-1").await.unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("data/gantry.db").display()
    );
    let store = Store::open(&url).await.unwrap();
    exercise(&store).await;
    drop(store);
    // Reopening applies no migration twice and keeps everything.
    let store = Store::open(&url).await.unwrap();
    let (total, _) = store
        .list_runs("acme/shop", &RunFilter::default(), 1, 30)
        .await
        .unwrap();
    assert_eq!(total, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store() {
    let Some(pg) = serve_support::postgres() else {
        return;
    };
    let store = Store::open(&pg.url).await.unwrap();
    exercise(&store).await;
    drop(store);
    let store = Store::open(&pg.url).await.unwrap();
    let (total, _) = store
        .list_runs("acme/shop", &RunFilter::default(), 1, 30)
        .await
        .unwrap();
    assert_eq!(total, 3);
}

#[tokio::test]
async fn a_bad_database_url_says_which_without_the_password() {
    let err = match Store::open("postgres://ci:hunter2@127.0.0.1:1/gantry").await {
        Ok(_) => panic!("connected to nothing"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("postgres://ci:***@127.0.0.1:1/gantry"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}
