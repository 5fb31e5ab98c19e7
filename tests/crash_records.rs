//! Run records that survive a crash, and honest re-runs: the real `gantry` binary is
//! killed with SIGKILL at random points of a long host run (several jobs, many steps
//! printing output); then every line of `events.jsonl` but a cut last one parses, the
//! running step's log holds what was printed before the kill, and `gantry rerun --failed`
//! re-runs exactly the jobs that had not finished. Re-runs use the workflow files the run
//! ran (its commit's, or its snapshot of an uncommitted file), not the working tree's, and
//! take secrets again, naming the ones missing without their values.
//!
//! The kill points are random; `GANTRY_CRASH_SEED=N` repeats a sequence (the seed is
//! printed).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gantry_tests::*;
use serde_json::Value;

/// What the terminal may lag behind the run record: the store writes out at least every
/// 100 ms; the rest is scheduling slack on a loaded machine.
const LOG_LAG: Duration = Duration::from_millis(400);

/// A step that prints `LINES` numbered lines, one every 20 ms.
const LINES: u32 = 12;

fn long_workflow() -> String {
    let step = |job: &str, n: u32| {
        format!(
            "      - name: s{n}\n        run: |\n          for i in $(seq 1 {LINES}); do \
             echo \"MARK {job} {n} $i\"; sleep 0.02; done\n"
        )
    };
    let job = |id: &str, needs: &str, steps: u32| {
        let mut j = format!("  {id}:\n    runs-on: ubuntu-latest\n{needs}    steps:\n");
        for n in 1..=steps {
            j.push_str(&step(id, n));
        }
        j
    };
    let mut wf = String::from("on: push\njobs:\n");
    wf.push_str(&job("prep", "", 2));
    wf.push_str(&job("left", "    needs: prep\n", 5));
    wf.push_str(&job("right", "    needs: prep\n", 5));
    wf.push_str(&job("last", "    needs: [left, right]\n", 5));
    wf
}

/// xorshift64*: enough randomness for kill points without a dependency.
struct Rng(u64);

impl Rng {
    fn from_env_or_clock() -> Self {
        let seed = std::env::var("GANTRY_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("crash_records: GANTRY_CRASH_SEED={seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// `gantry run --host --json` in its own process group, its stdout read on a thread:
/// every JSON line with the moment it was seen.
struct LiveRun {
    child: Child,
    lines: mpsc::Receiver<(Instant, Value)>,
    seen: Vec<(Instant, Value)>,
}

impl LiveRun {
    fn start(dir: &Path) -> Self {
        let mut child = Command::new(gantry_bin())
            .args(["run", "--host", "--json"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .env_remove("GANTRY_LOG")
            .process_group(0)
            .spawn()
            .expect("starting gantry");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str(&line) {
                    let _ = tx.send((Instant::now(), v));
                }
            }
        });
        LiveRun {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Collects output until `until` (or the end of the output).
    fn collect_until(&mut self, until: Instant) {
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
    }

    fn wait_for_run_started(&mut self) -> Instant {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(l) = self.lines.recv_timeout(Duration::from_millis(50)) {
                let started = l.1["type"] == "run_started";
                self.seen.push(l);
                if started {
                    return Instant::now();
                }
            }
        }
        panic!("gantry printed no run_started within 30 s");
    }

    /// SIGKILL to gantry alone (the crash), then to the rest of its process group (the
    /// step processes it left, so that they do not run on into the re-run).
    fn kill_9(&mut self) -> Instant {
        let pid = self.child.id() as i32;
        let at = Instant::now();
        // SAFETY: plain syscalls on our own child and its process group.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
        let status = self.child.wait().unwrap();
        unsafe {
            libc::killpg(pid, libc::SIGKILL);
        }
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL),
            "gantry ended before the kill ({status:?}): the kill point is past the run"
        );
        // What was already in the pipe.
        self.collect_until(Instant::now() + Duration::from_millis(200));
        at
    }
}

fn run_dir(repo: &Path, id: &str) -> PathBuf {
    repo.join(".gantry/runs").join(id)
}

/// Every complete line of `events.jsonl` parses as an event; only a last line without its
/// newline may not. Returns the parsed events.
fn check_events_file(path: &Path) -> Vec<Value> {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut parts: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    // After the last newline: empty, or the one line a crash may cut.
    let tail = parts.pop().unwrap_or_default();
    let mut events = Vec::new();
    for (i, line) in parts.iter().enumerate() {
        let v: Value = serde_json::from_slice(line).unwrap_or_else(|e| {
            panic!(
                "{}:{}: a finished line does not parse ({e}): {}",
                path.display(),
                i + 1,
                String::from_utf8_lossy(line)
            )
        });
        assert!(v["type"].is_string(), "{}:{}: {v}", path.display(), i + 1);
        events.push(v);
    }
    if let Ok(v) = serde_json::from_slice::<Value>(tail) {
        events.push(v);
    }
    events
}

/// Every `MARK` line printed at least [`LOG_LAG`] before the kill is in its step's log.
/// Returns how many were checked.
fn check_step_logs(repo: &Path, id: &str, seen: &[(Instant, Value)], killed: Instant) -> usize {
    let mut logs: BTreeMap<PathBuf, String> = BTreeMap::new();
    let mut checked = 0;
    for (at, v) in seen {
        if v["type"] != "log" || *at + LOG_LAG > killed {
            continue;
        }
        let line = v["line"].as_str().unwrap_or_default();
        if !line.starts_with("MARK ") {
            continue;
        }
        let job = v["job"].as_str().unwrap();
        let step = v["step"].as_u64().expect("a step line has a step");
        let path = run_dir(repo, id)
            .join("logs")
            .join(job)
            .join(format!("{}.log", step + 1));
        let log = logs
            .entry(path.clone())
            .or_insert_with(|| std::fs::read_to_string(&path).unwrap_or_default());
        assert!(
            log.lines().any(|l| l == line),
            "{line:?} was printed {:?} before the kill but is not in {}:\n{log}",
            killed - *at,
            path.display()
        );
        checked += 1;
    }
    checked
}

fn finished_jobs(events: &[Value]) -> BTreeMap<String, String> {
    events
        .iter()
        .filter(|e| e["type"] == "job_finished")
        .map(|e| {
            (
                e["job"].as_str().unwrap().to_string(),
                e["result"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn json_lines(out: &std::process::Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn kill_9_at_random_points_leaves_records_that_rerun_failed_completes() {
    let repo = git_repo_with(&[(".github/workflows/long.yml", &long_workflow())]);
    let mut rng = Rng::from_env_or_clock();
    // The critical path is 12 steps of at least 12 × 20 ms (over 3.2 s); one kill point in
    // each of three windows spreads them over its life, all before its end. The first one
    // leaves the record time to hold the first events (see LOG_LAG).
    let windows = [(400u64, 1000u64), (1000, 1900), (1900, 2700)];
    let mut checked_lines = 0;
    for (n, (lo, hi)) in windows.into_iter().enumerate() {
        let id = (2 * n + 1).to_string();
        let mut run = LiveRun::start(repo.path());
        let started = run.wait_for_run_started();
        let kill_at = started + Duration::from_millis(lo + rng.below(hi - lo));
        run.collect_until(kill_at);
        let killed = run.kill_9();
        eprintln!(
            "crash_records: run {id} killed {:?} after it started",
            killed - started
        );

        let dir = run_dir(repo.path(), &id);
        assert!(!dir.join("summary.json").exists(), "run {id} has a summary");
        let events = check_events_file(&dir.join("events.jsonl"));
        assert_eq!(
            events.first().map(|e| e["type"].clone()),
            Some("run_started".into())
        );
        let checked = check_step_logs(repo.path(), &id, &run.seen, killed);
        checked_lines += checked;

        // Jobs the crashed run finished with success are reused; every other job runs.
        let done: BTreeSet<String> = finished_jobs(&events)
            .into_iter()
            .filter(|(_, r)| r == "success")
            .map(|(j, _)| j)
            .collect();
        let out = gantry(repo.path(), &["rerun", "--failed", "--json", &id]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "rerun of run {id}:\n{}",
            text(&out)
        );
        let rerun = json_lines(&out);
        let jobs: BTreeMap<String, (String, bool)> = rerun
            .iter()
            .filter(|e| e["type"] == "job_finished")
            .map(|e| {
                (
                    e["job"].as_str().unwrap().to_string(),
                    (
                        e["result"].as_str().unwrap().to_string(),
                        e["reused"] == true,
                    ),
                )
            })
            .collect();
        let all: BTreeSet<&str> = ["prep", "left", "right", "last"].into();
        assert_eq!(
            jobs.keys().map(String::as_str).collect::<BTreeSet<_>>(),
            all,
            "{}",
            text(&out)
        );
        for (job, (result, reused)) in &jobs {
            assert_eq!(result, "success", "job {job} in the re-run of {id}");
            assert_eq!(
                *reused,
                done.contains(job),
                "job {job}: reused {reused}, finished in run {id}: {}",
                done.contains(job)
            );
        }
        // The re-run ran the unfinished jobs' steps again.
        let marks = rerun
            .iter()
            .filter(|e| {
                e["type"] == "log" && e["line"].as_str().is_some_and(|l| l.starts_with("MARK "))
            })
            .count();
        let unfinished = all.len() - done.len();
        eprintln!(
            "crash_records: run {id}: {} events, {checked} printed lines found in the logs, \
             finished {done:?}, {marks} lines printed by the re-run",
            events.len()
        );
        assert!(
            unfinished == 0 || marks > 0,
            "run {id} left {unfinished} unfinished job(s) but the re-run printed nothing"
        );
        let rerun_id = (2 * n + 2).to_string();
        assert!(
            run_dir(repo.path(), &rerun_id)
                .join("summary.json")
                .is_file()
        );
    }
    assert!(
        checked_lines > 0,
        "no printed line was old enough at a kill to be checked in the logs"
    );
}

const VERSIONED: &str = r#"on: push
jobs:
  gate:
    runs-on: ubuntu-latest
    steps:
      - run: test -f "$MARKS/ok"
        env:
          MARKS: @MARKS@
  show:
    needs: gate
    runs-on: ubuntu-latest
    steps:
      - run: echo "VERSION @VERSION@"
"#;

fn versioned(marks: &Path, version: &str) -> String {
    VERSIONED
        .replace("@MARKS@", &marks.display().to_string())
        .replace("@VERSION@", version)
}

fn printed_versions(out: &std::process::Output) -> Vec<String> {
    json_lines(out)
        .iter()
        .filter_map(|e| e["line"].as_str())
        .filter_map(|l| l.strip_prefix("VERSION "))
        .map(str::to_string)
        .collect()
}

/// A run of committed files re-runs the committed version after the working tree changed;
/// a run of an uncommitted file re-runs that uncommitted text, not what the file holds now.
#[test]
fn a_rerun_runs_the_workflow_files_the_run_ran() {
    let marks = tempfile::tempdir().unwrap();
    let path = ".github/workflows/ci.yml";
    let repo = git_repo_with(&[(path, &versioned(marks.path(), "committed"))]);

    let (printed, from) = run_edit_rerun(repo.path(), marks.path(), "1", "edited");
    assert_eq!(printed, vec!["committed".to_string()]);
    assert_eq!(from, "commit");

    // Run 3 is made from the uncommitted "edited" file; the file changes again after it.
    std::fs::remove_file(marks.path().join("ok")).unwrap();
    let (printed, from) = run_edit_rerun(repo.path(), marks.path(), "3", "later");
    assert_eq!(printed, vec!["edited".to_string()]);
    assert_eq!(from, "snapshot");
}

/// Runs (its gate fails: run `id`), rewrites the workflow file with version `then`, lets
/// the gate pass and re-runs run `id`: the versions the re-run printed, and where run
/// `id`'s record says its workflow comes from.
fn run_edit_rerun(repo: &Path, marks: &Path, id: &str, then: &str) -> (Vec<String>, String) {
    let out = gantry(repo, &["run", "--host", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    std::fs::write(
        repo.join(".github/workflows/ci.yml"),
        versioned(marks, then),
    )
    .unwrap();
    std::fs::write(marks.join("ok"), "").unwrap();
    let out = gantry(repo, &["rerun", "--failed", "--json", id]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir(repo, id).join("run.json")).unwrap())
            .unwrap();
    let from = record["sources"]["workflows"][0]["from"].as_str();
    (printed_versions(&out), from.unwrap_or_default().to_string())
}

/// A local reusable workflow edited after the run: its re-run calls the version the run
/// called, also when that version was never committed.
#[test]
fn a_rerun_calls_the_local_workflows_the_run_called() {
    let marks = tempfile::tempdir().unwrap();
    let caller = format!(
        "on: push\njobs:\n  gate:\n    runs-on: ubuntu-latest\n    steps:\n      \
         - run: test -f \"{m}/ok\"\n  call:\n    needs: gate\n    \
         uses: ./.github/workflows/callee.yml\n",
        m = marks.path().display()
    );
    let callee = |version: &str| {
        format!(
            "on: workflow_call\njobs:\n  show:\n    runs-on: ubuntu-latest\n    steps:\n      \
             - run: echo \"VERSION {version}\"\n"
        )
    };
    let callee_path = ".github/workflows/callee.yml";
    let repo = git_repo_with(&[
        (".github/workflows/ci.yml", &caller),
        (callee_path, &callee("committed")),
    ]);
    let edit_and_rerun = |id: &str, then: &str| {
        let out = gantry(repo.path(), &["run", "--host", "--json"]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        std::fs::write(repo.path().join(callee_path), callee(then)).unwrap();
        std::fs::write(marks.path().join("ok"), "").unwrap();
        let out = gantry(repo.path(), &["rerun", "--failed", "--json", id]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        std::fs::remove_file(marks.path().join("ok")).unwrap();
        printed_versions(&out)
    };
    assert_eq!(edit_and_rerun("1", "edited"), vec!["committed".to_string()]);
    // Run 3 calls the uncommitted "edited" callee.
    assert_eq!(edit_and_rerun("3", "later"), vec!["edited".to_string()]);
    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir(repo.path(), "3").join("run.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        record["sources"]["called"][0]["from"], "snapshot",
        "{record}"
    );
}

/// The names the re-run's warning lists as not given again.
fn missing_secrets(out: &std::process::Output) -> Vec<String> {
    let err = String::from_utf8_lossy(&out.stderr);
    let Some(line) = err.lines().find(|l| l.contains("not given again: ")) else {
        return vec![];
    };
    let list = line.split("not given again: ").nth(1).unwrap();
    let mut names: Vec<String> = list
        .split(';')
        .next()
        .unwrap()
        .split(", ")
        .map(str::to_string)
        .collect();
    names.sort();
    names
}

/// Secrets are taken again by `rerun` (`-s`, `--secret-file`); those of the original run
/// that are not given are named, their values never printed.
#[test]
fn a_rerun_takes_secrets_again_and_names_the_missing_ones() {
    let marks = tempfile::tempdir().unwrap();
    let wf = format!(
        r#"on: push
jobs:
  use:
    runs-on: ubuntu-latest
    steps:
      - run: test "$TOKEN" = "$(cat {m}/token)" && test "$FROM_FILE" = "$(cat {m}/from-file)"
        env:
          TOKEN: ${{{{ secrets.TOKEN }}}}
          FROM_FILE: ${{{{ secrets.FROM_FILE }}}}
"#,
        m = marks.path().display()
    );
    let repo = git_repo_with(&[(".github/workflows/ci.yml", &wf)]);
    let secret_file = marks.path().join("secrets.env");
    std::fs::write(&secret_file, "FROM_FILE=file-value-2\n").unwrap();
    let file_arg = secret_file.display().to_string();
    let out = gantry(
        repo.path(),
        &[
            "run",
            "--host",
            "-s",
            "TOKEN=tok-value-1",
            "-s",
            "UNUSED=unused-value-3",
            "--secret-file",
            &file_arg,
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // The expected values, kept out of the workflow text (a re-run without the secrets
    // does not mask them, and step names are recorded).
    std::fs::write(marks.path().join("token"), "tok-value-1").unwrap();
    std::fs::write(marks.path().join("from-file"), "file-value-2").unwrap();

    // Nothing given: the job fails, and all three are named.
    let out = gantry(repo.path(), &["rerun", "--failed"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        missing_secrets(&out),
        vec!["FROM_FILE", "TOKEN", "UNUSED"],
        "{}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("--secret-file {file_arg}")),
        "the original secret file is not pointed at: {}",
        text(&out)
    );

    // Given again (one on the command line, one in a file): the job passes and only the
    // one still missing is named.
    let out = gantry(
        repo.path(),
        &[
            "rerun",
            "--failed",
            "-s",
            "TOKEN=tok-value-1",
            "--secret-file",
            &file_arg,
            "1",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        missing_secrets(&out),
        vec!["UNUSED".to_string()],
        "{}",
        text(&out)
    );

    for run in std::fs::read_dir(repo.path().join(".gantry/runs")).unwrap() {
        for f in all_files(&run.unwrap().path()) {
            let content = std::fs::read_to_string(&f).unwrap_or_default();
            for value in ["tok-value-1", "unused-value-3", "file-value-2"] {
                assert!(!content.contains(value), "{value} in {}", f.display());
            }
        }
    }
    let everything = text(&out);
    assert!(!everything.contains("tok-value-1") && !everything.contains("unused-value-3"));
}
