//! Every stop cleans up, and cleanup touches only our own. Against the real `gantry` binary
//! and the real Docker daemon:
//! - SIGINT, SIGINT twice, SIGTERM and SIGHUP while a service waits to become healthy and
//!   while a host step runs (with `setsid` and double-forked children): afterwards nothing
//!   labelled for the job is left in `docker ps -a`, `docker network ls`, `docker volume
//!   ls`, no step process survives, the work directory is gone and the run record says
//!   cancelled;
//! - `cancel-timeout-minutes` stops an `always()` step that outlives it, with its children;
//! - two repositories' runs with the same run number and job id: cancelling one during its
//!   container start leaves the other running to success;
//! - `gantry prune` removes what a provably dead gantry left, and keeps what another host
//!   (or an owner it cannot judge) created.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use gantry_tests::{docker_ready, gantry_bin, git_repo_with, text};

/// A service image that stays up (`sleep 300`), built from Gantry's busybox image.
const SLEEPER: &str = "gantry-test/sleeper:latest";
const BUSYBOX: &str = "gantry/busybox:latest";

fn docker_and_sleeper() -> bool {
    if !docker_ready(&[BUSYBOX]) {
        return false;
    }
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let ctx = tempfile::tempdir().unwrap();
        std::fs::write(
            ctx.path().join("Dockerfile"),
            format!("FROM {BUSYBOX}\nCMD [\"sleep\", \"300\"]\n"),
        )
        .unwrap();
        let st = Command::new("docker")
            .args(["build", "-q", "-t", SLEEPER])
            .arg(ctx.path())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "building {SLEEPER} failed");
    });
    true
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

fn repo_with_workflow(yaml: &str) -> tempfile::TempDir {
    git_repo_with(&[(".github/workflows/ci.yml", yaml)])
}

/// Starts `gantry run --json` in `dir` with `MARK_DIR` set; stdout and stderr go to files
/// in `marks` (read after the exit).
fn start_gantry(dir: &Path, marks: &Path, extra: &[&str]) -> Child {
    let mut cmd = Command::new(gantry_bin());
    cmd.args(["run", "--json", "-P", "ubuntu-latest=host", "--env"])
        .arg(format!("MARK_DIR={}", marks.display()))
        .args(extra)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(marks.join("gantry.out")).unwrap())
        .stderr(std::fs::File::create(marks.join("gantry.err")).unwrap())
        .env_remove("GANTRY_LOG");
    cmd.spawn().unwrap()
}

fn output_of(marks: &Path) -> String {
    let read = |n: &str| std::fs::read_to_string(marks.join(n)).unwrap_or_default();
    format!("{}{}", read("gantry.out"), read("gantry.err"))
}

fn wait_until(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ready() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for gantry to exit (SIGKILL and a failure after `limit`).
fn wait_exit(child: &mut Child, limit: Duration, marks: &Path) -> i32 {
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code().unwrap_or(-1);
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "gantry did not stop within {limit:?}:\n{}",
                output_of(marks)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `docker <what> ls/ps -q` of everything labelled for `job`.
fn labelled(kind: &str, job: &str) -> String {
    let filter = format!("label=gantry.job={job}");
    let mut cmd = Command::new("docker");
    match kind {
        "container" => cmd.args(["ps", "-aq"]),
        "network" => cmd.args(["network", "ls", "-q"]),
        _ => cmd.args(["volume", "ls", "-q"]),
    };
    let out = cmd
        .args([
            "--filter",
            "label=dev.gantry.managed=true",
            "--filter",
            &filter,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn assert_nothing_left_in_docker(job: &str, context: &str) {
    for kind in ["container", "network", "volume"] {
        let left = labelled(kind, job);
        assert!(
            left.is_empty(),
            "{kind}s of {job} left behind: {left}\n{context}"
        );
    }
}

/// Alive and not a zombie.
fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let state = s[s.rfind(')').unwrap() + 1..]
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string();
            state != "Z" && state != "X"
        }
        Err(_) => false,
    }
}

fn read_pid(marks: &Path, name: &str) -> Option<i32> {
    std::fs::read_to_string(marks.join(name))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The run record of run 1 says cancelled: the summary and the last event.
fn assert_recorded_cancelled(repo: &Path, job: &str, context: &str) {
    let run = repo.join(".gantry/runs/1");
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("summary.json"))
            .unwrap_or_else(|e| panic!("no summary.json: {e}\n{context}")),
    )
    .unwrap();
    assert_eq!(summary["result"], "cancelled", "{summary}\n{context}");
    let events: Vec<serde_json::Value> = std::fs::read_to_string(run.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let job_result = events
        .iter()
        .find(|e| e["type"] == "job_finished" && e["name"] == job)
        .map(|e| e["result"].clone());
    assert_eq!(
        job_result,
        Some(serde_json::json!("cancelled")),
        "events: {events:?}"
    );
    let last = events.last().unwrap();
    assert_eq!(last["type"], "run_finished", "{last}");
    assert_eq!(last["result"], "cancelled", "{last}");
    assert!(
        !repo.join(".gantry/work/1").exists(),
        "the run's work directory was left behind"
    );
}

#[derive(Clone, Copy)]
enum Phase {
    /// A container job whose service (with a named volume) never becomes healthy.
    ServiceHealthWait,
    /// A host job with a service; the step ignores SIGINT and SIGTERM and leaves a
    /// `setsid` child, a double-forked child and a background child.
    StepRunning,
}

fn workflow(phase: Phase, job: &str, volume: &str) -> String {
    match phase {
        Phase::ServiceHealthWait => format!(
            r#"
on: push
jobs:
  {job}:
    runs-on: ubuntu-latest
    container: {BUSYBOX}
    services:
      db:
        image: {SLEEPER}
        options: --health-cmd "test -e /tmp/never" --health-interval 1s --health-retries 1000
        volumes:
          - {volume}:/data
    steps:
      - run: echo step-must-not-run
"#
        ),
        Phase::StepRunning => format!(
            r#"
on: push
jobs:
  {job}:
    runs-on: ubuntu-latest
    services:
      cache:
        image: {SLEEPER}
    steps:
      - run: |
          trap '' INT TERM
          setsid sh -c 'echo $$ > "$MARK_DIR/setsid.pid"; exec sleep 300' &
          ( sh -c 'echo $$ > "$MARK_DIR/double.pid"; exec sleep 300' & )
          sleep 300 &
          echo $! > "$MARK_DIR/bg.pid"
          echo $$ > "$MARK_DIR/step.pid"
          wait
"#
        ),
    }
}

/// Runs the job of `phase`, sends `signals` (250 ms apart) once the phase is reached, and
/// checks that everything is gone and recorded. Returns the time from the first signal to
/// gantry's exit.
fn stop_in_phase(phase: Phase, name: &str, signals: &[i32], extra: &[&str]) -> Duration {
    let job = unique(name);
    let volume = format!("{job}-vol");
    let repo = repo_with_workflow(&workflow(phase, &job, &volume));
    let marks = tempfile::tempdir().unwrap();
    let mut child = start_gantry(repo.path(), marks.path(), extra);
    let pid_files = ["setsid.pid", "double.pid", "bg.pid", "step.pid"];
    match phase {
        Phase::ServiceHealthWait => {
            wait_until("the service container", Duration::from_secs(60), || {
                let out = Command::new("docker")
                    .args(["ps", "-q", "--filter"])
                    .arg(format!("label=gantry.job={job}"))
                    .args(["--filter", "label=gantry.role=service:db"])
                    .output()
                    .unwrap();
                !String::from_utf8_lossy(&out.stdout).trim().is_empty()
            });
            // Inside the health wait now (the check fails every second).
            std::thread::sleep(Duration::from_millis(700));
        }
        Phase::StepRunning => {
            wait_until("the step's processes", Duration::from_secs(60), || {
                pid_files
                    .iter()
                    .all(|f| read_pid(marks.path(), f).is_some())
            });
        }
    }
    let pids: Vec<i32> = pid_files
        .iter()
        .filter_map(|f| read_pid(marks.path(), f))
        .collect();
    assert!(pids.iter().all(|&p| process_alive(p)));
    let pid = child.id() as i32;
    let t = Instant::now();
    for (i, &sig) in signals.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(250));
        }
        // SAFETY: signals the gantry child we started.
        unsafe { libc::kill(pid, sig) };
    }
    let code = wait_exit(&mut child, Duration::from_secs(60), marks.path());
    let stopped_after = t.elapsed();
    let context = output_of(marks.path());
    assert_eq!(code, 1, "exit code\n{context}");
    assert_nothing_left_in_docker(&job, &context);
    let volume_exists = Command::new("docker")
        .args(["volume", "inspect", &volume])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(!volume_exists, "volume {volume} left behind");
    for p in pids {
        assert!(!process_alive(p), "step process {p} survived\n{context}");
    }
    assert!(!context.contains("step-must-not-run\""), "{context}");
    assert_recorded_cancelled(repo.path(), &job, &context);
    stopped_after
}

const KILL_AFTER_1S: &[&str] = &["--kill-after", "1"];

#[test]
fn sigint_while_a_service_waits_to_become_healthy() {
    if docker_and_sleeper() {
        stop_in_phase(
            Phase::ServiceHealthWait,
            "stop-hw-int",
            &[libc::SIGINT],
            &[],
        );
    }
}

#[test]
fn second_sigint_while_a_service_waits_to_become_healthy() {
    if docker_and_sleeper() {
        let two = [libc::SIGINT, libc::SIGINT];
        stop_in_phase(Phase::ServiceHealthWait, "stop-hw-int2", &two, &[]);
    }
}

#[test]
fn sigterm_while_a_service_waits_to_become_healthy() {
    if docker_and_sleeper() {
        stop_in_phase(
            Phase::ServiceHealthWait,
            "stop-hw-term",
            &[libc::SIGTERM],
            &[],
        );
    }
}

#[test]
fn sighup_while_a_service_waits_to_become_healthy() {
    if docker_and_sleeper() {
        stop_in_phase(
            Phase::ServiceHealthWait,
            "stop-hw-hup",
            &[libc::SIGHUP],
            &[],
        );
    }
}

#[test]
fn sigint_while_a_step_runs_escalates_and_kills_setsid_children() {
    if docker_and_sleeper() {
        let took = stop_in_phase(
            Phase::StepRunning,
            "stop-step-int",
            &[libc::SIGINT],
            KILL_AFTER_1S,
        );
        // The step ignores SIGINT and SIGTERM: only the SIGKILL ends it, which
        // `--kill-after 1` sends 1 s + 1/3 s after the SIGINT.
        assert!(took >= Duration::from_millis(1300), "{took:?}");
    }
}

#[test]
fn second_sigint_while_a_step_runs_kills_at_once() {
    if docker_and_sleeper() {
        let two = [libc::SIGINT, libc::SIGINT];
        // No --kill-after: GitHub's 7.5 s + 2.5 s would apply without the second SIGINT.
        let took = stop_in_phase(Phase::StepRunning, "stop-step-int2", &two, &[]);
        assert!(took < Duration::from_secs(7), "{took:?}");
    }
}

#[test]
fn sigterm_while_a_step_runs() {
    if docker_and_sleeper() {
        let sig = [libc::SIGTERM];
        stop_in_phase(Phase::StepRunning, "stop-step-term", &sig, KILL_AFTER_1S);
    }
}

#[test]
fn sighup_while_a_step_runs() {
    if docker_and_sleeper() {
        let sig = [libc::SIGHUP];
        stop_in_phase(Phase::StepRunning, "stop-step-hup", &sig, KILL_AFTER_1S);
    }
}

#[test]
fn setsid_children_do_not_outlive_a_job_that_succeeds() {
    let marks = tempfile::tempdir().unwrap();
    let repo = repo_with_workflow(
        r#"
on: push
jobs:
  detach:
    runs-on: ubuntu-latest
    steps:
      - run: |
          setsid sh -c 'echo $$ > "$MARK_DIR/setsid.pid"; exec sleep 300' &
          ( sh -c 'echo $$ > "$MARK_DIR/double.pid"; exec sleep 300' & )
          while [ ! -s "$MARK_DIR/setsid.pid" ] || [ ! -s "$MARK_DIR/double.pid" ]; do sleep 0.05; done
      - run: ls -l "$RUNNER_TEMP" > "$MARK_DIR/temp.txt"; stat -c %a "$0" > "$MARK_DIR/mode.txt"
"#,
    );
    let mut child = start_gantry(repo.path(), marks.path(), &[]);
    let code = wait_exit(&mut child, Duration::from_secs(60), marks.path());
    let context = output_of(marks.path());
    assert_eq!(code, 0, "{context}");
    for f in ["setsid.pid", "double.pid"] {
        let pid = read_pid(marks.path(), f).expect(f);
        assert!(!process_alive(pid), "{f} {pid} outlived the job");
    }
    let mode = std::fs::read_to_string(marks.path().join("mode.txt")).unwrap();
    assert_eq!(mode.trim(), "600", "step scripts must be owner-only");
    assert!(!repo.path().join(".gantry/work/1").exists());
}

#[test]
fn a_run_killed_by_sigkill_leaves_a_work_dir_the_next_run_sweeps() {
    let marks = tempfile::tempdir().unwrap();
    let repo = repo_with_workflow(
        r#"
on: push
jobs:
  crash:
    runs-on: ubuntu-latest
    steps:
      - run: |
          if [ -e "$MARK_DIR/crash" ]; then
            echo $$ > "$MARK_DIR/step.pid"
            sleep 300
          fi
"#,
    );
    std::fs::write(marks.path().join("crash"), "").unwrap();
    let mut child = start_gantry(repo.path(), marks.path(), &[]);
    wait_until("the step", Duration::from_secs(60), || {
        read_pid(marks.path(), "step.pid").is_some()
    });
    let work = repo.path().join(".gantry/work/1");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&work).unwrap().mode() & 0o777, 0o700);
    child.kill().unwrap();
    child.wait().unwrap();
    // The step leads its own process group, which SIGKILL to gantry does not reach.
    let step = read_pid(marks.path(), "step.pid").unwrap();
    // SAFETY: kills the process group of the step this test started.
    unsafe { libc::kill(-step, libc::SIGKILL) };
    assert!(work.exists(), "nothing to sweep: the test is void");
    std::fs::remove_file(marks.path().join("crash")).unwrap();
    let mut next = start_gantry(repo.path(), marks.path(), &[]);
    let code = wait_exit(&mut next, Duration::from_secs(60), marks.path());
    assert_eq!(code, 0, "{}", output_of(marks.path()));
    assert!(!work.exists(), "the dead run's work dir was not swept");
}

#[test]
fn cancelling_one_repositorys_start_leaves_the_same_numbered_run_of_another_alone() {
    if !docker_and_sleeper() {
        return;
    }
    // Both repositories' first runs are "run 1"; the job ids are the same too.
    let job = unique("twin");
    let survivor = repo_with_workflow(&format!(
        r#"
on: push
jobs:
  {job}:
    runs-on: ubuntu-latest
    container: {BUSYBOX}
    services:
      cache:
        image: {SLEEPER}
    steps:
      - run: mkdir -p "$MARK_DIR"; touch "$MARK_DIR/started"; sleep 6; echo survivor-finished
"#
    ));
    let cancelled = repo_with_workflow(&workflow(
        Phase::ServiceHealthWait,
        &job,
        &format!("{job}-vol"),
    ));
    let marks_a = tempfile::tempdir().unwrap();
    let marks_b = tempfile::tempdir().unwrap();
    // The step runs in the container: it marks its start in its workspace.
    let mut a = Command::new(gantry_bin())
        .args(["run", "--json", "--env", "MARK_DIR=marks"])
        .current_dir(survivor.path())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(marks_a.path().join("gantry.out")).unwrap())
        .stderr(std::fs::File::create(marks_a.path().join("gantry.err")).unwrap())
        .spawn()
        .unwrap();
    let started = survivor.path().join(".gantry/work/1").join(&job);
    wait_until("the survivor's step", Duration::from_secs(60), || {
        gantry_tests::all_files(&started)
            .iter()
            .any(|f| f.ends_with("marks/started"))
    });
    let mut b = start_gantry(cancelled.path(), marks_b.path(), &[]);
    wait_until("the other run's service", Duration::from_secs(60), || {
        let out = Command::new("docker")
            .args(["ps", "-aq", "--filter"])
            .arg(format!("label=gantry.job={job}"))
            .args(["--filter", "label=gantry.role=service:db"])
            .output()
            .unwrap();
        !String::from_utf8_lossy(&out.stdout).trim().is_empty()
    });
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: signals the gantry child we started.
    unsafe { libc::kill(b.id() as i32, libc::SIGINT) };
    assert_eq!(
        wait_exit(&mut b, Duration::from_secs(60), marks_b.path()),
        1
    );
    let code = wait_exit(&mut a, Duration::from_secs(90), marks_a.path());
    let context = output_of(marks_a.path());
    assert_eq!(code, 0, "the other repository's run was hurt:\n{context}");
    assert!(context.contains("survivor-finished"), "{context}");
    assert_nothing_left_in_docker(&job, &context);
}

/// This machine's host id as gantry computes it (machine-id, else the state-dir file).
fn host_id(state: &Path) -> String {
    for p in ["/etc/machine-id", "/var/lib/dbus/machine-id"] {
        if let Ok(s) = std::fs::read_to_string(p)
            && !s.trim().is_empty()
        {
            return s.trim().to_string();
        }
    }
    std::fs::create_dir_all(state.join("gantry")).unwrap();
    std::fs::write(state.join("gantry/host-id"), "test-host-id").unwrap();
    "test-host-id".into()
}

fn create_labelled(name: &str, labels: &[(&str, String)]) -> String {
    let mut cmd = Command::new("docker");
    cmd.args(["create", "--name", name]);
    for (k, v) in labels {
        cmd.arg("--label").arg(format!("{k}={v}"));
    }
    let out = cmd.args([BUSYBOX, "true"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn container_exists(id: &str) -> bool {
    Command::new("docker")
        .args(["inspect", id])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn prune_removes_only_what_provably_dead_owners_left() {
    if !docker_ready(&[BUSYBOX]) {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let state = tempfile::tempdir().unwrap();
    let host = host_id(state.path());
    let pidns = std::fs::metadata("/proc/self/ns/pid")
        .unwrap()
        .ino()
        .to_string();
    let mut gone = Command::new("true").spawn().unwrap();
    let dead_pid = gone.id().to_string();
    gone.wait().unwrap();
    let me = std::process::id().to_string();
    let tag = unique("prune");
    let owner = |host: &str, pid: &str, start: &str| {
        vec![
            ("dev.gantry.managed", "true".to_string()),
            ("gantry.run", "1".to_string()),
            ("gantry.job", tag.clone()),
            ("gantry.host", host.to_string()),
            ("gantry.pidns", pidns.clone()),
            ("gantry.pid", pid.to_string()),
            ("gantry.pid-start", start.to_string()),
        ]
    };
    let dead = create_labelled(&format!("{tag}-dead"), &owner(&host, &dead_pid, "1"));
    // Another machine sharing the daemon, its run looking alive: never ours to judge.
    let foreign = create_labelled(&format!("{tag}-foreign"), &owner("other-host", &me, "1"));
    let foreign_dead_pid = create_labelled(
        &format!("{tag}-foreign2"),
        &owner("other-host", &dead_pid, "1"),
    );
    // An older gantry's label set (pid only): not provably dead.
    let pid_only = create_labelled(
        &format!("{tag}-pidonly"),
        &[
            ("dev.gantry.managed", "true".to_string()),
            ("gantry.job", tag.clone()),
            ("gantry.pid", dead_pid.clone()),
        ],
    );
    let cwd = tempfile::tempdir().unwrap();
    let out = Command::new(gantry_bin())
        .arg("prune")
        .current_dir(cwd.path())
        .env("XDG_STATE_HOME", state.path())
        .output()
        .unwrap();
    let survivors: Vec<bool> = [&dead, &foreign, &foreign_dead_pid, &pid_only]
        .iter()
        .map(|id| container_exists(id))
        .collect();
    for id in [&dead, &foreign, &foreign_dead_pid, &pid_only] {
        let _ = Command::new("docker")
            .args(["rm", "-f", id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        survivors,
        [false, true, true, true],
        "dead, foreign, foreign with a dead pid, pid-only\n{}",
        text(&out)
    );
}

#[test]
fn a_third_signal_stops_at_once_and_still_kills_the_step_tree() {
    let marks = tempfile::tempdir().unwrap();
    let repo = repo_with_workflow(
        r#"
on: push
jobs:
  hang:
    runs-on: ubuntu-latest
    steps:
      - run: |
          trap '' INT TERM
          setsid sh -c 'echo $$ > "$MARK_DIR/setsid.pid"; exec sleep 300' &
          echo $$ > "$MARK_DIR/step.pid"
          sleep 300
"#,
    );
    let mut child = start_gantry(repo.path(), marks.path(), &[]);
    wait_until("the step", Duration::from_secs(60), || {
        read_pid(marks.path(), "setsid.pid").is_some()
            && read_pid(marks.path(), "step.pid").is_some()
    });
    let pid = child.id() as i32;
    // Three different signals back to back: they all count, and unlike three SIGINTs they
    // cannot coalesce into one pending signal. Spaced out, the second signal's SIGKILL
    // would let the run finish (exit 1) before the third arrived.
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: signals the gantry child we started.
        unsafe { libc::kill(pid, sig) };
    }
    let code = wait_exit(&mut child, Duration::from_secs(30), marks.path());
    let context = output_of(marks.path());
    assert_eq!(code, 130, "{context}");
    assert!(context.contains("stopping now"), "{context}");
    for f in ["setsid.pid", "step.pid"] {
        let p = read_pid(marks.path(), f).unwrap();
        assert!(
            !process_alive(p),
            "{f} {p} survived the forced stop\n{context}"
        );
    }
}

/// `cancel-timeout-minutes` bounds the clean-up after a cancellation (GHA-SEMANTICS §5.6):
/// an `always()` step still running when it expires is stopped with its children, and no
/// later step starts. The job's own timeout is the cancellation here.
#[test]
fn cancel_timeout_stops_an_always_step_that_outlives_it() {
    let r = repo_with_workflow(
        r#"
on: push
jobs:
  slow-cleanup:
    runs-on: ubuntu-latest
    timeout-minutes: 0.02
    cancel-timeout-minutes: 0.03
    steps:
      - run: sleep 300
      - if: always()
        run: |
          sleep 300 &
          echo $! > "$MARK_DIR/cleanup.pid"
          echo "cleanup started"
          wait
          echo "cleanup finished"
      - if: always()
        run: touch "$MARK_DIR/later"
"#,
    );
    let marks = tempfile::tempdir().unwrap();
    let mut child = start_gantry(r.path(), marks.path(), &["--kill-after", "1"]);
    let code = wait_exit(&mut child, Duration::from_secs(60), marks.path());
    let out = output_of(marks.path());
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("cleanup started"), "{out}");
    assert!(!out.contains("cleanup finished"), "{out}");
    assert!(
        out.contains("ran past cancel-timeout-minutes (0.03)"),
        "the log says why the step was stopped:\n{out}"
    );
    assert!(
        !marks.path().join("later").exists(),
        "a step started after cancel-timeout-minutes"
    );
    let pid = read_pid(marks.path(), "cleanup.pid").expect("the clean-up step's child pid");
    assert!(!process_alive(pid), "the clean-up step's child outlived it");
    assert_recorded_cancelled(r.path(), "slow-cleanup", &out);
}
