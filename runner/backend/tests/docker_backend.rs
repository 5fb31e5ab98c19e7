//! The Docker backend against the real daemon. Skips loudly without a daemon, fails when
//! `GANTRY_REQUIRE_DOCKER=1`. Builds `gantry/busybox:latest` with docker/build-images.sh when
//! it is missing (a few seconds; needs apt-get access to a Debian mirror).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gantry_backend::docker::{self, BUSYBOX_IMAGE, DockerBackend, LABEL_MANAGED, LABEL_RUN};
use gantry_backend::{
    Backend, BackendError, ContainerSpec, ExecSpec, ExitStatus, JobEnv, JobEnvSpec, KillPolicy,
    Output,
};
use indexmap::IndexMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

async fn backend() -> Option<DockerBackend> {
    let required = std::env::var("GANTRY_REQUIRE_DOCKER").as_deref() == Ok("1");
    match tokio::time::timeout(Duration::from_secs(10), DockerBackend::connect()).await {
        Ok(Ok(b)) => {
            ensure_busybox(&b).await;
            Some(b)
        }
        Ok(Err(e)) if !required => {
            eprintln!(
                "SKIPPED: no docker daemon ({e}); set GANTRY_REQUIRE_DOCKER=1 to fail instead"
            );
            None
        }
        Err(_) if !required => {
            eprintln!(
                "SKIPPED: no docker daemon (connect timed out); set GANTRY_REQUIRE_DOCKER=1 to fail instead"
            );
            None
        }
        Ok(Err(e)) => panic!("GANTRY_REQUIRE_DOCKER=1 but the docker daemon is not reachable: {e}"),
        Err(_) => panic!("GANTRY_REQUIRE_DOCKER=1 but connecting to the docker daemon timed out"),
    }
}

static BUILD_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn ensure_busybox(b: &DockerBackend) {
    let _guard = BUILD_LOCK.lock().await;
    if b.daemon().has_image(BUSYBOX_IMAGE).await {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docker/build-images.sh");
    let status = tokio::process::Command::new("bash")
        .arg(&script)
        .arg("busybox")
        .status()
        .await
        .expect("run docker/build-images.sh");
    assert!(status.success(), "docker/build-images.sh busybox failed");
}

struct Dirs {
    _root: tempfile::TempDir,
    workspace: PathBuf,
    temp: PathBuf,
}

fn job_spec(
    container: Option<ContainerSpec>,
    services: Vec<(&str, ContainerSpec)>,
) -> (JobEnvSpec, Dirs) {
    let root = tempfile::tempdir().unwrap();
    let workspace = root.path().join("_work/myrepo/myrepo");
    let temp = root.path().join("_work/_temp");
    std::fs::create_dir_all(&workspace).unwrap();
    std::fs::create_dir_all(&temp).unwrap();
    let run_id = format!("test-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let spec = JobEnvSpec {
        run_id,
        job_key: "build".into(),
        workspace: workspace.clone(),
        temp: temp.clone(),
        tool_cache: root.path().join("tools"),
        home: temp.join("_github_home"),
        container,
        services: services
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    };
    (
        spec,
        Dirs {
            _root: root,
            workspace,
            temp,
        },
    )
}

fn busybox() -> Option<ContainerSpec> {
    Some(ContainerSpec {
        image: BUSYBOX_IMAGE.into(),
        ..Default::default()
    })
}

fn logger() -> mpsc::UnboundedSender<String> {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Some(l) = rx.recv().await {
            eprintln!("[backend] {l}");
        }
    });
    tx
}

struct Ran {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

async fn run_with(env: &dyn JobEnv, argv: &[&str], vars: &[(&str, &str)], workdir: &str) -> Ran {
    let (tx, mut rx) = mpsc::channel(64);
    let spec = ExecSpec {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        workdir: workdir.to_string(),
    };
    let collect = async {
        let (mut o, mut e) = (Vec::new(), Vec::new());
        while let Some(chunk) = rx.recv().await {
            match chunk {
                Output::Stdout(b) => o.extend(b),
                Output::Stderr(b) => e.extend(b),
            }
        }
        (o, e)
    };
    let exec = async {
        let r = env
            .exec(spec, tx, CancellationToken::new(), KillPolicy::default())
            .await;
        r.expect("exec")
    };
    let (status, (o, e)) = tokio::join!(exec, collect);
    Ran {
        status,
        stdout: String::from_utf8_lossy(&o).into(),
        stderr: String::from_utf8_lossy(&e).into(),
    }
}

async fn run(env: &dyn JobEnv, script: &str) -> Ran {
    run_with(
        env,
        &["sh", "-c", script],
        &[],
        &env.paths().workspace.clone(),
    )
    .await
}

/// Containers and networks still carrying this run's label.
async fn leftovers(run_id: &str) -> (usize, usize) {
    let filters: HashMap<String, Vec<String>> = HashMap::from([(
        "label".to_string(),
        vec![
            format!("{LABEL_MANAGED}=true"),
            format!("{LABEL_RUN}={run_id}"),
        ],
    )]);
    // The daemon's own view, through a client of the test's.
    let client = gantry_backend::docker::connect().await.unwrap();
    let c = client
        .list_containers(Some(
            bollard::query_parameters::ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap();
    let n = client
        .list_networks(Some(
            bollard::query_parameters::ListNetworksOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap();
    (c.len(), n.len())
}

#[tokio::test]
async fn exec_streams_output_and_reports_exit_codes() {
    let Some(b) = backend().await else { return };
    let (spec, _dirs) = job_spec(busybox(), vec![]);
    let env = b.start(&spec, logger()).await.unwrap();

    let r = run(env.as_ref(), "echo out; echo err >&2; exit 3").await;
    assert_eq!(r.status, ExitStatus::Code(3));
    assert_eq!(r.stdout, "out\n");
    assert_eq!(r.stderr, "err\n");
    assert_eq!(run(env.as_ref(), "true").await.status, ExitStatus::Code(0));

    // Output arrives while the process still runs.
    let (tx, mut rx) = mpsc::channel(16);
    let spec2 = ExecSpec {
        argv: vec![
            "sh".into(),
            "-c".into(),
            "echo first; sleep 2; echo second".into(),
        ],
        env: IndexMap::new(),
        workdir: "/".into(),
    };
    let started = Instant::now();
    let exec = env.exec(spec2, tx, CancellationToken::new(), KillPolicy::default());
    let first = async {
        let first = rx.recv().await;
        let at = started.elapsed();
        while rx.recv().await.is_some() {}
        (first, at)
    };
    let (status, (first, at)) = tokio::join!(exec, first);
    assert_eq!(status.unwrap(), ExitStatus::Code(0));
    assert!(
        matches!(first, Some(Output::Stdout(ref b)) if b == b"first\n"),
        "{first:?}"
    );
    assert!(
        at < Duration::from_millis(1500),
        "first chunk only after {at:?}: not streamed"
    );

    // Large output arrives complete and in order, on both streams.
    let r = run(
        env.as_ref(),
        "i=0; while [ $i -lt 20000 ]; do echo line-$i; echo err-$i >&2; i=$((i+1)); done",
    )
    .await;
    assert_eq!(r.status, ExitStatus::Code(0));
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 20000);
    assert_eq!((lines[0], lines[19999]), ("line-0", "line-19999"));
    assert!(
        lines
            .iter()
            .enumerate()
            .all(|(i, l)| *l == format!("line-{i}"))
    );
    assert_eq!(r.stderr.lines().count(), 20000);

    // A workdir that does not exist is a failed step, not a hang.
    let r = run_with(env.as_ref(), &["pwd"], &[], "/no/such/dir").await;
    assert_ne!(r.status, ExitStatus::Code(0), "{}", r.stdout);
    assert!(
        r.stdout.contains("/no/such/dir"),
        "the daemon's reason is shown: {}",
        r.stdout
    );

    env.stop().await.unwrap();
    assert_eq!(leftovers(&spec.run_id).await, (0, 0));
}

#[tokio::test]
async fn env_workdir_and_container_defaults() {
    let Some(b) = backend().await else { return };
    let mut c = busybox().unwrap();
    c.env.insert("FROM_CONTAINER".into(), "c1".into());
    let (spec, _dirs) = job_spec(Some(c), vec![]);
    let env = b.start(&spec, logger()).await.unwrap();
    assert_eq!(env.paths().workspace, "/__w/myrepo/myrepo");
    assert_eq!(env.paths().temp, "/__w/_temp");
    assert_eq!(env.paths().home.as_deref(), Some("/github/home"));

    let r = run_with(
        env.as_ref(),
        &[
            "sh",
            "-c",
            "echo $FOO $FROM_CONTAINER $HOME $CI $GITHUB_ACTIONS; pwd",
        ],
        &[("FOO", "bar baz")],
        "/tmp",
    )
    .await;
    assert_eq!(r.status, ExitStatus::Code(0));
    assert_eq!(r.stdout, "bar baz c1 /github/home true true\n/tmp\n");
    // Default workdir: the job's workspace.
    let r = run(env.as_ref(), "pwd").await;
    assert_eq!(r.stdout, "/__w/myrepo/myrepo\n");
    // A missing program is a failure, not a backend error.
    let r = run_with(env.as_ref(), &["no-such-program"], &[], "/").await;
    assert_ne!(r.status, ExitStatus::Code(0));
    env.stop().await.unwrap();
    env.stop().await.unwrap(); // idempotent
}

#[tokio::test]
async fn workspace_and_temp_are_bind_mounted() {
    let Some(b) = backend().await else { return };
    let (spec, dirs) = job_spec(busybox(), vec![]);
    let env = b.start(&spec, logger()).await.unwrap();

    std::fs::write(dirs.workspace.join("from-host.txt"), "host data\n").unwrap();
    let script = dirs.temp.join("step.sh");
    std::fs::write(
        &script,
        "cat from-host.txt; echo written-by-step > out/result.txt\n",
    )
    .unwrap();
    std::fs::create_dir_all(dirs.workspace.join("out")).unwrap();
    let job_script = env.to_job_path(&script);
    assert_eq!(job_script, "/__w/_temp/step.sh");
    assert_eq!(
        env.to_job_path(&dirs.workspace.join("out/result.txt")),
        "/__w/myrepo/myrepo/out/result.txt"
    );

    let r = run_with(
        env.as_ref(),
        &["sh", &job_script],
        &[],
        &env.paths().workspace.clone(),
    )
    .await;
    assert_eq!(r.status, ExitStatus::Code(0), "stderr: {}", r.stderr);
    assert_eq!(r.stdout, "host data\n");
    let written = std::fs::read_to_string(dirs.workspace.join("out/result.txt")).unwrap();
    assert_eq!(written, "written-by-step\n");
    // event.json under <temp>/_github_workflow is at /github/workflow, as on GitHub.
    let ev = dirs.temp.join("_github_workflow/event.json");
    std::fs::write(&ev, "{}\n").unwrap();
    assert_eq!(env.to_job_path(&ev), "/github/workflow/event.json");
    let r = run(env.as_ref(), "cat /github/workflow/event.json").await;
    assert_eq!(r.stdout, "{}\n");
    // HOME is the host's home dir for the job.
    let r = run(env.as_ref(), "echo h > $HOME/marker").await;
    assert_eq!(r.status, ExitStatus::Code(0));
    assert!(spec.home.join("marker").exists());
    env.stop().await.unwrap();
}

/// A service that just stays up (no health check).
fn sleeper() -> ContainerSpec {
    ContainerSpec {
        image: BUSYBOX_IMAGE.into(),
        command: Some(vec!["sleep".into(), "600".into()]),
        ..Default::default()
    }
}

fn web_service(health_retries: u32) -> ContainerSpec {
    ContainerSpec {
        image: BUSYBOX_IMAGE.into(),
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            "mkdir -p /www && echo hello-from-service > /www/index.html && exec httpd -f -p 80 -h /www".into(),
        ]),
        ports: vec!["80".into()],
        options: Some(format!(
            "--health-cmd \"wget -q -O /dev/null http://127.0.0.1:80/ || exit 1\" --health-interval 200ms \
             --health-timeout 2s --health-retries {health_retries} --name ignored-name"
        )),
        ..Default::default()
    }
}

async fn http_get_host(port: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    buf
}

#[tokio::test]
async fn healthy_service_is_reachable_by_name_and_mapped_port() {
    let Some(b) = backend().await else { return };
    let (spec, _dirs) = job_spec(busybox(), vec![("web", web_service(50))]);
    let t = Instant::now();
    let env = b.start(&spec, logger()).await.unwrap();
    eprintln!("start with a health-checked service: {:?}", t.elapsed());
    let svc = &env.services()[0];
    assert_eq!(svc.id, "web");
    assert!(svc.network.as_deref().unwrap().starts_with("gantry-test-"));
    let port = svc.ports.get("80").expect("port 80 mapped").clone();

    let r = run(env.as_ref(), "wget -q -O- http://web:80/").await;
    assert_eq!(r.status, ExitStatus::Code(0), "stderr: {}", r.stderr);
    assert_eq!(r.stdout, "hello-from-service\n");
    assert!(http_get_host(&port).await.contains("hello-from-service"));
    env.stop().await.unwrap();
    assert_eq!(leftovers(&spec.run_id).await, (0, 0));
}

#[tokio::test]
async fn host_job_services_publish_ports() {
    let Some(b) = backend().await else { return };
    let (spec, _dirs) = job_spec(
        None,
        vec![
            ("web", web_service(50)),
            ("skipped", ContainerSpec::default()),
        ],
    );
    let env = b.start(&spec, logger()).await.unwrap();
    assert_eq!(
        env.services().len(),
        1,
        "a service with an empty image is not started"
    );
    let port = env.services()[0]
        .ports
        .get("80")
        .expect("port 80 mapped")
        .clone();
    assert!(http_get_host(&port).await.contains("hello-from-service"));
    env.stop().await.unwrap();
    assert_eq!(leftovers(&spec.run_id).await, (0, 0));
}

#[tokio::test]
async fn unhealthy_service_fails_start_with_its_logs() {
    let Some(b) = backend().await else { return };
    let svc = ContainerSpec {
        image: BUSYBOX_IMAGE.into(),
        entrypoint: Some(vec!["sh".into()]),
        command: Some(vec![
            "-c".into(),
            "echo service-log-marker; echo oops >&2; sleep 300".into(),
        ]),
        options: Some(
            "--health-cmd 'echo check-said-no; exit 1' --health-interval 100ms --health-retries 2"
                .into(),
        ),
        ..Default::default()
    };
    let (spec, _dirs) = job_spec(busybox(), vec![("db", svc)]);
    let t = Instant::now();
    let err = match b.start(&spec, logger()).await {
        Ok(_) => panic!("start must fail"),
        Err(e) => e.to_string(),
    };
    eprintln!("unhealthy detected after {:?}: {err}", t.elapsed());
    assert!(err.contains("service 'db' is unhealthy"), "{err}");
    assert!(
        err.contains("service-log-marker") && err.contains("oops"),
        "{err}"
    );
    assert!(err.contains("check-said-no"), "{err}");
    assert_eq!(
        leftovers(&spec.run_id).await,
        (0, 0),
        "failed start cleaned up"
    );
}

/// Run `script`, cancel `after` its first output (the script prints once it is ready), and
/// return the status and the time from cancellation to the end of `exec`.
async fn cancel_after(
    env: &dyn JobEnv,
    script: &str,
    after: Duration,
    kill: KillPolicy,
) -> (ExitStatus, Duration) {
    let (tx, mut rx) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let spec = ExecSpec {
        argv: vec!["sh".into(), "-c".into(), script.into()],
        env: IndexMap::new(),
        workdir: "/".into(),
    };
    let c2 = cancel.clone();
    let cancelled_at = std::sync::Mutex::new(None);
    let drain = async {
        let mut first = true;
        while rx.recv().await.is_some() {
            if first {
                first = false;
                tokio::time::sleep(after).await;
                *cancelled_at.lock().unwrap() = Some(Instant::now());
                c2.cancel();
            }
        }
    };
    let (r, ()) = tokio::join!(env.exec(spec, tx, cancel, kill), drain);
    let at = cancelled_at
        .lock()
        .unwrap()
        .expect("the script printed nothing");
    (r.unwrap(), at.elapsed())
}

#[tokio::test]
async fn cancellation_stops_processes_and_stop_leaves_nothing() {
    let Some(b) = backend().await else { return };
    let (spec, _dirs) = job_spec(busybox(), vec![]);
    let env = b.start(&spec, logger()).await.unwrap();

    // SIGINT ends a plain sleep (and its shell) at once.
    let (st, took) = cancel_after(
        env.as_ref(),
        "echo ready; sleep 300; echo not-reached",
        Duration::from_millis(300),
        KillPolicy::default(),
    )
    .await;
    assert_eq!(st, ExitStatus::Cancelled);
    assert!(took < Duration::from_secs(3), "cancel took {took:?}");
    // Nothing of it is left running in the container.
    let r = run(env.as_ref(), "ps | grep -c '[s]leep 300' || true").await;
    assert_eq!(r.stdout.trim(), "0", "sleep still running: {}", r.stdout);

    // A process ignoring SIGINT and SIGTERM is killed after the escalation delays.
    let kill = KillPolicy {
        term_after: Duration::from_millis(300),
        kill_after: Duration::from_millis(300),
    };
    let (st, took) = cancel_after(
        env.as_ref(),
        "trap '' INT TERM; echo ready; sleep 300",
        Duration::from_millis(200),
        kill,
    )
    .await;
    assert_eq!(st, ExitStatus::Cancelled);
    assert!(
        took >= Duration::from_millis(550),
        "escalation skipped? {took:?}"
    );
    assert!(took < Duration::from_secs(4), "cancel took {took:?}");

    env.stop().await.unwrap();
    assert_eq!(leftovers(&spec.run_id).await, (0, 0));
}

#[tokio::test]
async fn missing_image_names_the_build_command() {
    let Some(b) = backend().await else { return };
    let c = ContainerSpec {
        image: "gantry/not-built-here:1".into(),
        ..Default::default()
    };
    let (spec, _dirs) = job_spec(Some(c), vec![]);
    let t = Instant::now();
    match b.start(&spec, logger()).await {
        Err(BackendError::MissingImage { image, hint }) => {
            assert_eq!(image, "gantry/not-built-here:1");
            assert!(hint.contains("gantry image build"), "{hint}");
        }
        Err(e) => panic!("expected MissingImage, got {e}"),
        Ok(_) => panic!("expected MissingImage"),
    }
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "no pull attempt: {:?}",
        t.elapsed()
    );
    assert_eq!(leftovers(&spec.run_id).await, (0, 0));
}

#[tokio::test]
async fn bad_options_fail_before_creating_anything() {
    let Some(b) = backend().await else { return };
    let mut c = busybox().unwrap();
    c.options = Some("--cpus 1 --frobnicate".into());
    let (spec, _dirs) = job_spec(Some(c), vec![]);
    let err = b
        .start(&spec, logger())
        .await
        .err()
        .expect("must fail")
        .to_string();
    assert!(err.contains("unsupported flag '--frobnicate'"), "{err}");
    assert_eq!(leftovers(&spec.run_id).await, (0, 0));
}

#[tokio::test]
async fn dropped_env_is_cleaned_up_and_prune_removes_by_run() {
    let Some(b) = backend().await else { return };
    let (spec, _dirs) = job_spec(busybox(), vec![]);
    let env = b.start(&spec, logger()).await.unwrap();
    // No services: the job container sits on the default bridge, no network is created.
    assert_eq!(leftovers(&spec.run_id).await, (1, 0));
    drop(env);
    let deadline = Instant::now() + Duration::from_secs(10);
    while leftovers(&spec.run_id).await != (0, 0) {
        assert!(Instant::now() < deadline, "drop did not clean up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (spec2, _dirs2) = job_spec(busybox(), vec![]);
    let env2 = b.start(&spec2, logger()).await.unwrap();
    let report = docker::prune(Some(&spec2.run_id)).await.unwrap();
    assert_eq!((report.containers, report.networks), (1, 0));
    assert_eq!(leftovers(&spec2.run_id).await, (0, 0));
    env2.stop().await.unwrap(); // already pruned: still fine
}

#[tokio::test]
async fn prune_stale_keeps_resources_of_live_runs() {
    let Some(b) = backend().await else { return };
    let (spec, _dirs) = job_spec(busybox(), vec![]);
    let env = b.start(&spec, logger()).await.unwrap();
    // This process is alive: its resources are not stale.
    docker::prune_stale().await.unwrap();
    assert_eq!(leftovers(&spec.run_id).await, (1, 0));
    env.stop().await.unwrap();
    assert_eq!(leftovers(&spec.run_id).await, (0, 0));
}

#[tokio::test]
async fn host_job_steps_run_on_the_host_backend_and_reach_services() {
    let Some(b) = backend().await else { return };
    let b = b.with_host_backend(std::sync::Arc::new(gantry_backend::host::HostBackend::new()));
    let (spec, dirs) = job_spec(None, vec![("web", web_service(50))]);
    let env = b.start(&spec, logger()).await.unwrap();
    // Host paths: the host backend's view.
    assert_eq!(Path::new(&env.paths().workspace), dirs.workspace.as_path());
    let port = env.services()[0].ports["80"].clone();
    let path = std::env::var("PATH").unwrap_or_default();
    let script =
        "exec 3<>/dev/tcp/127.0.0.1/$PORT; printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3";
    let r = run_with(
        env.as_ref(),
        &["bash", "-c", script],
        &[("PORT", &port), ("PATH", &path)],
        &env.paths().workspace.clone(),
    )
    .await;
    assert_eq!(r.status, ExitStatus::Code(0), "stderr: {}", r.stderr);
    assert!(r.stdout.contains("hello-from-service"), "{}", r.stdout);
    env.stop().await.unwrap();
    assert_eq!(leftovers(&spec.run_id).await, (0, 0));
}

#[tokio::test]
async fn abandoned_start_is_cleaned_up() {
    let Some(b) = backend().await else { return };
    // A service that never becomes healthy within the time the caller is willing to wait.
    let svc = ContainerSpec {
        image: BUSYBOX_IMAGE.into(),
        command: Some(vec!["sleep".into(), "300".into()]),
        options: Some("--health-cmd 'exit 1' --health-interval 1s --health-retries 1000".into()),
        ..Default::default()
    };
    let (spec, _dirs) = job_spec(busybox(), vec![("slow", svc)]);
    let r = tokio::time::timeout(Duration::from_millis(2500), b.start(&spec, logger())).await;
    assert!(r.is_err(), "start should still be waiting for the service");
    let deadline = Instant::now() + Duration::from_secs(15);
    while leftovers(&spec.run_id).await != (0, 0) {
        assert!(
            Instant::now() < deadline,
            "abandoned start leaked resources"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn same_run_id_and_job_key_twice_do_not_collide() {
    let Some(b) = backend().await else { return };
    // Two repos' first runs: both "run 1, job build". The live one must be left alone.
    // A service makes each job create its own network, which is what could collide.
    let (spec, _d1) = job_spec(busybox(), vec![("svc", sleeper())]);
    let (mut spec2, _d2) = job_spec(busybox(), vec![("svc", sleeper())]);
    spec2.run_id = spec.run_id.clone();
    let env1 = b.start(&spec, logger()).await.unwrap();
    let env2 = b.start(&spec2, logger()).await.unwrap();
    assert_eq!(leftovers(&spec.run_id).await, (4, 2));
    assert_eq!(run(env1.as_ref(), "echo one").await.stdout, "one\n");
    assert_eq!(run(env2.as_ref(), "echo two").await.stdout, "two\n");
    env1.stop().await.unwrap();
    env2.stop().await.unwrap();
    assert_eq!(leftovers(&spec.run_id).await, (0, 0));
}

#[tokio::test]
async fn an_abandoned_start_leaves_another_runs_same_numbered_job_alone() {
    // Two repositories' "run 1, job build" on one daemon: two backends, two run keys. The
    // second one's start is abandoned while its service warms up; its cleanup must not
    // touch the first one's job.
    let Some(first) = backend().await else { return };
    let Some(second) = backend().await else {
        return;
    };
    assert_ne!(first.run_key(), second.run_key());
    let (spec, _d1) = job_spec(busybox(), vec![("svc", sleeper())]);
    let never_healthy = ContainerSpec {
        image: BUSYBOX_IMAGE.into(),
        command: Some(vec!["sleep".into(), "300".into()]),
        options: Some("--health-cmd 'exit 1' --health-interval 1s --health-retries 1000".into()),
        ..Default::default()
    };
    let (mut spec2, _d2) = job_spec(busybox(), vec![("svc", never_healthy)]);
    spec2.run_id = spec.run_id.clone();
    let env1 = first.start(&spec, logger()).await.unwrap();
    let r = tokio::time::timeout(Duration::from_millis(2500), second.start(&spec2, logger())).await;
    assert!(r.is_err(), "the second start should still be waiting");
    // The abandoned start's background cleanup, then the end-of-run sweep by run key.
    tokio::time::sleep(Duration::from_secs(2)).await;
    second.cleanup_run().await.unwrap();
    assert_eq!(leftovers(&spec.run_id).await, (2, 1));
    assert_eq!(run(env1.as_ref(), "echo alive").await.stdout, "alive\n");
    env1.stop().await.unwrap();
    assert_eq!(leftovers(&spec.run_id).await, (0, 0));
}
