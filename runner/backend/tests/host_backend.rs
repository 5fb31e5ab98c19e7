//! Host backend: real processes, real signals.

use std::time::{Duration, Instant};

use gantry_backend::host::HostBackend;
use gantry_backend::{
    Backend, ContainerSpec, ExecSpec, ExitStatus, JobEnv, JobEnvSpec, KillPolicy, Output,
};
use indexmap::IndexMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn spec(root: &std::path::Path) -> JobEnvSpec {
    JobEnvSpec {
        run_id: "r1".into(),
        job_key: "j1".into(),
        workspace: root.join("ws"),
        temp: root.join("tmp"),
        tool_cache: root.join("tc"),
        home: root.join("home"),
        container: None,
        services: IndexMap::new(),
    }
}

async fn start(root: &std::path::Path) -> Box<dyn JobEnv> {
    let (log, _) = mpsc::unbounded_channel();
    HostBackend::new().start(&spec(root), log).await.unwrap()
}

fn base_env() -> IndexMap<String, String> {
    let mut env = IndexMap::new();
    env.insert(
        "PATH".to_string(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
    );
    env
}

fn exec_spec(env: &dyn JobEnv, script: &str) -> ExecSpec {
    ExecSpec {
        argv: vec!["bash".into(), "-e".into(), "-c".into(), script.into()],
        env: base_env(),
        workdir: env.paths().workspace.clone(),
    }
}

/// Runs and collects (status, stdout, stderr).
async fn run(
    env: &dyn JobEnv,
    spec: ExecSpec,
    cancel: CancellationToken,
    kill: KillPolicy,
) -> (ExitStatus, Vec<u8>, Vec<u8>) {
    let (tx, mut rx) = mpsc::channel(16);
    let collect = tokio::spawn(async move {
        let (mut o, mut e) = (Vec::new(), Vec::new());
        while let Some(chunk) = rx.recv().await {
            match chunk {
                Output::Stdout(b) => o.extend(b),
                Output::Stderr(b) => e.extend(b),
            }
        }
        (o, e)
    });
    let status = env.exec(spec, tx, cancel, kill).await.unwrap();
    let (o, e) = tokio::time::timeout(Duration::from_secs(10), collect)
        .await
        .expect("output channel closed after exec")
        .unwrap();
    (status, o, e)
}

fn procs_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // Zombies are gone for practical purposes.
            let zombie = stat
                .rsplit(')')
                .next()
                .is_some_and(|s| s.trim_start().starts_with('Z'));
            if cmd.contains(marker) && !zombie {
                found.push(cmd);
            }
        }
    }
    found
}

#[tokio::test]
async fn output_exit_code_and_exact_env() {
    let tmp = tempfile::tempdir().unwrap();
    let env = start(tmp.path()).await;
    assert!(std::path::Path::new(&env.paths().workspace).is_dir());
    let mut s = exec_spec(&*env, "echo out; echo err >&2; pwd; env | sort; exit 3");
    s.env.insert("ONLY_THIS".into(), "v a l".into());
    let (status, out, err) = run(&*env, s, CancellationToken::new(), KillPolicy::default()).await;
    assert_eq!(status, ExitStatus::Code(3));
    let out = String::from_utf8(out).unwrap();
    assert!(out.starts_with("out\n"), "{out}");
    assert!(out.contains(&format!("{}\n", env.paths().workspace)));
    assert!(out.contains("ONLY_THIS=v a l\n"));
    assert!(!out.contains("CARGO"), "parent env leaked: {out}");
    assert_eq!(err, b"err\n");
    assert_eq!(env.to_job_path(tmp.path()), tmp.path().to_string_lossy());
    env.stop().await.unwrap();
    env.stop().await.unwrap();
}

#[tokio::test]
async fn signal_exit_and_large_output() {
    let tmp = tempfile::tempdir().unwrap();
    let env = start(tmp.path()).await;
    let s = exec_spec(&*env, "kill -TERM $$");
    let (status, _, _) = run(&*env, s, CancellationToken::new(), KillPolicy::default()).await;
    assert_eq!(status, ExitStatus::Code(128 + 15));
    let s = exec_spec(
        &*env,
        "head -c 10000000 /dev/zero; head -c 3000000 /dev/zero >&2",
    );
    let (status, out, err) = run(&*env, s, CancellationToken::new(), KillPolicy::default()).await;
    assert_eq!(status, ExitStatus::Code(0));
    assert_eq!((out.len(), err.len()), (10_000_000, 3_000_000));
    // Order and content survive the relay's move from the step's task to a task of its own
    // (after its inline budget).
    let s = exec_spec(&*env, "seq 1 500000; seq 1 1000 >&2");
    let (status, out, err) = run(&*env, s, CancellationToken::new(), KillPolicy::default()).await;
    assert_eq!(status, ExitStatus::Code(0));
    let expected: String = (1..=500_000).map(|i| format!("{i}\n")).collect();
    assert!(
        out == expected.as_bytes(),
        "stdout differs ({} bytes)",
        out.len()
    );
    let expected: String = (1..=1000).map(|i| format!("{i}\n")).collect();
    assert_eq!(String::from_utf8(err).unwrap(), expected);
}

#[tokio::test]
async fn clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let env = start(tmp.path()).await;
    let (tx, _rx) = mpsc::channel(4);
    let mut s = exec_spec(&*env, "true");
    s.workdir = tmp.path().join("missing").to_string_lossy().into_owned();
    let e = env
        .exec(
            s,
            tx.clone(),
            CancellationToken::new(),
            KillPolicy::default(),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
    let mut s = exec_spec(&*env, "true");
    s.argv[0] = "no-such-program-gantry".into();
    let e = env
        .exec(s, tx, CancellationToken::new(), KillPolicy::default())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not found"), "{e}");

    let (log, _) = mpsc::unbounded_channel();
    let mut with_services = spec(tmp.path());
    with_services
        .services
        .insert("db".into(), ContainerSpec::default());
    let err = HostBackend::new()
        .start(&with_services, log)
        .await
        .err()
        .expect("services refused");
    assert!(err.to_string().contains("services need the docker backend"));
}

#[tokio::test]
async fn cancel_kills_the_whole_group() {
    let tmp = tempfile::tempdir().unwrap();
    let env = start(tmp.path()).await;
    let marker = format!("98765{}", std::process::id());
    let s = exec_spec(
        &*env,
        &format!("trap 'echo got-int; exit 3' INT; sleep {marker} & echo started; wait"),
    );
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    let kill = KillPolicy {
        term_after: Duration::from_millis(300),
        kill_after: Duration::from_millis(300),
    };
    let t0 = Instant::now();
    let trigger = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        c2.cancel();
    });
    let (status, out, _) = run(&*env, s, cancel, kill).await;
    trigger.await.unwrap();
    assert_eq!(status, ExitStatus::Cancelled);
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("started") && out.contains("got-int"), "{out}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(procs_with(&marker), Vec::<String>::new());
}

#[tokio::test]
async fn cancel_escalates_to_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let env = start(tmp.path()).await;
    let s = exec_spec(
        &*env,
        "trap '' INT TERM; echo ready; while :; do sleep 0.05; done",
    );
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    let kill = KillPolicy {
        term_after: Duration::from_millis(100),
        kill_after: Duration::from_millis(100),
    };
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        c2.cancel();
    });
    let t0 = Instant::now();
    let (status, out, _) = run(&*env, s, cancel, kill).await;
    assert_eq!(status, ExitStatus::Cancelled);
    assert_eq!(out, b"ready\n");
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn already_cancelled_does_not_spawn() {
    let tmp = tempfile::tempdir().unwrap();
    let env = start(tmp.path()).await;
    let cancel = CancellationToken::new();
    cancel.cancel();
    let s = exec_spec(&*env, "touch ran");
    let (status, _, _) = run(&*env, s, cancel, KillPolicy::default()).await;
    assert_eq!(status, ExitStatus::Cancelled);
    assert!(
        !std::path::Path::new(&env.paths().workspace)
            .join("ran")
            .exists()
    );
}

#[tokio::test]
async fn background_process_survives_step_until_stop() {
    let tmp = tempfile::tempdir().unwrap();
    let env = start(tmp.path()).await;
    let marker = format!("87654{}", std::process::id());
    // The background process keeps stdout open; the step must still finish.
    let s = exec_spec(&*env, &format!("sleep {marker} & echo bg-started"));
    let t0 = Instant::now();
    let (status, out, _) = run(&*env, s, CancellationToken::new(), KillPolicy::default()).await;
    assert_eq!(status, ExitStatus::Code(0));
    assert_eq!(out, b"bg-started\n");
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert_eq!(
        procs_with(&marker).len(),
        1,
        "background process kept for later steps"
    );
    env.stop().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while !procs_with(&marker).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(procs_with(&marker), Vec::<String>::new());
}

#[tokio::test]
async fn per_exec_overhead_is_small() {
    // Reported, not asserted (speed targets live in bench/).
    let tmp = tempfile::tempdir().unwrap();
    let env = start(tmp.path()).await;
    let n = 50;
    let t0 = Instant::now();
    for _ in 0..n {
        let s = ExecSpec {
            argv: vec!["true".into()],
            env: base_env(),
            workdir: env.paths().workspace.clone(),
        };
        let (status, _, _) = run(&*env, s, CancellationToken::new(), KillPolicy::default()).await;
        assert_eq!(status, ExitStatus::Code(0));
    }
    let backend = t0.elapsed() / n;
    let t0 = Instant::now();
    for _ in 0..n {
        std::process::Command::new("/bin/true").status().unwrap();
    }
    let raw = t0.elapsed() / n;
    eprintln!("host exec: {backend:?} per exec, raw std spawn+wait: {raw:?}");
}
