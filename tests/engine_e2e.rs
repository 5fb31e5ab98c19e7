//! End-to-end tests of `gantry run` against real git repositories, processes and Docker:
//! needs and outputs across jobs, matrices, fail-fast, continue-on-error, timeouts,
//! cancellation (SIGINT) leaving nothing behind, hostile secrets never written anywhere,
//! JSON events, re-runs, a container job and a service with a health check.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gantry_tests::*;

fn wf(name: &str, body: &str) -> (String, String) {
    (format!(".github/workflows/{name}"), body.to_string())
}

fn repo(files: &[(String, String)]) -> tempfile::TempDir {
    let v: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    git_repo_with(&v)
}

fn events(out: &std::process::Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn job_results(ev: &[serde_json::Value]) -> Vec<(String, String)> {
    ev.iter()
        .filter(|e| e["type"] == "job_finished")
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["result"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn needs_outputs_matrix_and_continue_on_error() {
    let r = repo(&[wf(
        "ci.yml",
        r#"
on: push
jobs:
  prepare:
    runs-on: ubuntu-latest
    outputs:
      list: ${{ steps.s.outputs.list }}
      greeting: ${{ steps.s.outputs.greeting }}
      empty: ${{ steps.s.outputs.nothing }}
    steps:
      - id: s
        run: |
          echo 'list=["a","b","c"]' >> "$GITHUB_OUTPUT"
          {
            echo 'greeting<<EOF'
            echo 'hello'
            echo 'world'
            echo 'EOF'
          } >> "$GITHUB_OUTPUT"
  fan:
    needs: prepare
    runs-on: ubuntu-latest
    strategy:
      matrix:
        item: ${{ fromJSON(needs.prepare.outputs.list) }}
    steps:
      - run: test "${{ strategy.job-total }}" = 3
      - run: echo "leg ${{ matrix.item }} of ${{ needs.prepare.outputs.greeting }}"
  flaky:
    runs-on: ubuntu-latest
    continue-on-error: true
    steps:
      - run: exit 3
  after:
    needs: [fan, flaky]
    runs-on: ubuntu-latest
    steps:
      - run: test "${{ needs.flaky.result }}" = success
      - id: x
        continue-on-error: true
        run: exit 1
      - run: test "${{ steps.x.outcome }}/${{ steps.x.conclusion }}" = failure/success
"#,
    )]);
    let out = gantry(r.path(), &["run", "--host", "--json"]);
    let ev = events(&out);
    let res = job_results(&ev);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        res.iter().filter(|(n, _)| n.starts_with("fan (")).count(),
        3,
        "{res:?}"
    );
    assert!(res.contains(&("flaky".into(), "failure".into())), "{res:?}");
    assert!(res.contains(&("after".into(), "success".into())), "{res:?}");
    let prep = ev
        .iter()
        .find(|e| e["type"] == "job_finished" && e["name"] == "prepare")
        .unwrap();
    assert_eq!(prep["outputs"]["greeting"], "hello\nworld");
    assert!(
        prep["outputs"].get("empty").is_none(),
        "empty outputs are dropped"
    );
    // Logs are events too.
    assert!(
        ev.iter()
            .any(|e| e["type"] == "log" && e["line"] == "leg b of hello"),
        "{}",
        text(&out)
    );
    // The run was saved.
    let runs = r.path().join(".gantry/runs/1");
    assert!(runs.join("events.jsonl").is_file());
    assert!(runs.join("summary.json").is_file());
}

#[test]
fn fail_fast_cancels_siblings_and_skips_dependents() {
    let r = repo(&[wf(
        "ci.yml",
        r#"
on: push
jobs:
  m:
    runs-on: ubuntu-latest
    strategy:
      matrix:
        n: [1, 2]
    steps:
      - run: |
          if [ "${{ matrix.n }}" = 1 ]; then exit 1; fi
          sleep 20
  dep:
    needs: m
    runs-on: ubuntu-latest
    steps:
      - run: echo never
  cleanup:
    needs: m
    if: always()
    runs-on: ubuntu-latest
    steps:
      - run: test "${{ needs.m.result }}" = failure
"#,
    )]);
    let t = Instant::now();
    let out = gantry(r.path(), &["run", "--host", "--json", "--kill-after", "1"]);
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "fail-fast did not cancel the sibling"
    );
    assert_eq!(out.status.code(), Some(1));
    let res = job_results(&events(&out));
    assert!(res.contains(&("m (1)".into(), "failure".into())), "{res:?}");
    assert!(
        res.contains(&("m (2)".into(), "cancelled".into())),
        "{res:?}"
    );
    assert!(res.contains(&("dep".into(), "skipped".into())), "{res:?}");
    assert!(
        res.contains(&("cleanup".into(), "success".into())),
        "{res:?}"
    );
}

#[test]
fn fail_fast_queued_legs_never_start_their_steps() {
    let r = repo(&[wf(
        "ci.yml",
        r#"
on: push
jobs:
  m:
    runs-on: ubuntu-latest
    strategy:
      max-parallel: 1
      matrix:
        n: [1, 2, 3]
    steps:
      - run: |
          echo "leg ${{ matrix.n }} started its steps"
          if [ "${{ matrix.n }}" = 1 ]; then exit 1; fi
"#,
    )]);
    let out = gantry(r.path(), &["run", "--host", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let ev = events(&out);
    let res = job_results(&ev);
    assert!(res.contains(&("m (1)".into(), "failure".into())), "{res:?}");
    for leg in ["m (2)", "m (3)"] {
        assert!(res.contains(&(leg.into(), "cancelled".into())), "{res:?}");
    }
    let started: Vec<&serde_json::Value> = ev
        .iter()
        .filter(|e| {
            e["type"] == "log"
                && e["line"]
                    .as_str()
                    .is_some_and(|l| l.ends_with("started its steps"))
        })
        .collect();
    assert_eq!(
        started.len(),
        1,
        "only the failing leg ran a step: {started:?}"
    );
}

#[test]
fn step_timeout_fails_and_job_timeout_cancels() {
    let r = repo(&[wf(
        "ci.yml",
        r#"
on: push
jobs:
  step-timeout:
    runs-on: ubuntu-latest
    steps:
      - run: sleep 30
        timeout-minutes: 0.02
      - if: failure()
        run: echo "ran after timeout"
  job-timeout:
    runs-on: ubuntu-latest
    timeout-minutes: 0.02
    steps:
      - run: sleep 30
      - if: failure()
        run: echo "must not run"
      - if: always()
        run: echo "always ran"
"#,
    )]);
    let t = Instant::now();
    let out = gantry(r.path(), &["run", "--host", "--json", "--kill-after", "1"]);
    assert!(t.elapsed() < Duration::from_secs(15));
    let all = text(&out);
    let res = job_results(&events(&out));
    assert!(
        res.contains(&("step-timeout".into(), "failure".into())),
        "{res:?}"
    );
    assert!(
        res.contains(&("job-timeout".into(), "cancelled".into())),
        "{res:?}"
    );
    assert!(all.contains("has timed out after"), "{all}");
    assert!(all.contains("ran after timeout"));
    assert!(all.contains("always ran"));
    assert!(
        !all.contains("must not run\""),
        "failure() ran after a cancellation"
    );
}

fn pid_alive(pid: i32) -> bool {
    unsafe { libc::kill(pid, 0) == 0 }
}

#[test]
fn sigint_cancels_run_and_leaves_no_process() {
    let r = repo(&[wf(
        "ci.yml",
        r#"
on: push
jobs:
  long:
    runs-on: ubuntu-latest
    steps:
      - run: |
          sleep 300 &
          echo $! > "$MARK_DIR/child.pid"
          wait
      - if: always()
        run: touch "$MARK_DIR/always"
      - run: touch "$MARK_DIR/never"
"#,
    )]);
    let marks = tempfile::tempdir().unwrap();
    let mut child = Command::new(gantry_bin())
        .args(["run", "--host", "--kill-after", "1", "--env"])
        .arg(format!("MARK_DIR={}", marks.path().display()))
        .current_dir(r.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pidfile = marks.path().join("child.pid");
    let t = Instant::now();
    while !pidfile.exists() || std::fs::read_to_string(&pidfile).unwrap().trim().is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the job never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pid_alive(pid));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(status.code(), Some(1), "{}", text(&out));
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !pid_alive(pid),
        "the step's child process survived the cancellation"
    );
    assert!(
        marks.path().join("always").exists(),
        "always() step did not run"
    );
    assert!(!marks.path().join("never").exists());
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(r.path().join(".gantry/runs/1/summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(summary["result"], "cancelled");
}

#[test]
fn a_later_job_gets_a_recycled_tree_with_nothing_of_the_earlier_job() {
    // `a` leaves junk everywhere it can write; `b` runs after it (one slot) in the tree
    // `a` used (same inode of the tracked file) and finds none of it.
    let r = repo(&[
        wf(
            "ci.yml",
            r#"
on: push
jobs:
  a:
    runs-on: ubuntu-latest
    outputs:
      ino: ${{ steps.s.outputs.ino }}
    steps:
      - id: s
        run: |
          echo "ino=$(stat -c %i README.md)" >> "$GITHUB_OUTPUT"
          echo changed > README.md
          echo junk > junk.txt
          mkdir -p build && echo x > build/out
          echo secret-Zq9 > "$RUNNER_TEMP/left.txt"
          echo '{"edited":1}' > "$GITHUB_EVENT_PATH"
  b:
    needs: a
    runs-on: ubuntu-latest
    steps:
      - run: |
          test "$(stat -c %i README.md)" = "${{ needs.a.outputs.ino }}" || { echo not recycled; exit 1; }
          test "$(cat README.md)" = "hello"
          test ! -e junk.txt && test ! -e build
          test ! -e "$RUNNER_TEMP/left.txt"
          # Only this step's script besides the runner's own directories.
          test "$(ls "$RUNNER_TEMP" | grep -vc '^_')" = 1
          ! grep -q edited "$GITHUB_EVENT_PATH"
          echo clean tree
"#,
        ),
        ("README.md".into(), "hello\n".into()),
    ]);
    let out = gantry(r.path(), &["run", "--host", "--json", "--jobs", "1"]);
    let res = job_results(&events(&out));
    assert_eq!(
        res,
        vec![
            ("a".into(), "success".into()),
            ("b".into(), "success".into())
        ],
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("clean tree"));
    assert!(
        !r.path()
            .join(".gantry/work")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some())
    );
}

#[test]
fn hostile_secrets_never_written() {
    let secrets: [(&str, &str); 4] = [
        ("MULTI", "first-line-Zq1\nsecond-line-Zq2\nthird-line-Zq3"),
        ("REGEX", "a.*b+c?(d)[e]{f}|g^h$-Zq4"),
        ("QUOTE", "it's \"quoted\" \\ back-Zq5"),
        ("PLAIN", "hunter2-Zq6"),
    ];
    let r = repo(&[wf(
        "ci.yml",
        r#"
on: push
jobs:
  leak:
    runs-on: ubuntu-latest
    outputs:
      o: ${{ secrets.PLAIN }}
    steps:
      - run: |
          echo "${{ secrets.MULTI }}"
          echo '${{ secrets.REGEX }}'
          echo "$QUOTE"
          printf 'split hunt'; sleep 0.2; printf 'er2-Zq6 done\n'
          echo "::add-mask::added-value-Zq7"
          echo "added-value-Zq7"
          echo -n "added-value-Zq7" | base64
          echo "::warning title=${{ secrets.PLAIN }}::warn ${{ secrets.PLAIN }}"
          echo "summary ${{ secrets.PLAIN }}" >> "$GITHUB_STEP_SUMMARY"
          echo "v=${{ secrets.PLAIN }}" >> "$GITHUB_OUTPUT"
          echo "${{ secrets.PLAIN }}" >&2
        env:
          QUOTE: ${{ secrets.QUOTE }}
      - name: step ${{ secrets.PLAIN }}
        run: exit 1
"#,
    )]);
    let mut args: Vec<String> = vec!["run".into(), "--host".into(), "--json".into()];
    for (k, v) in secrets {
        args.push("-s".into());
        args.push(format!("{k}={v}"));
    }
    let refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let json_out = gantry(r.path(), &refs);
    let refs2: Vec<&str> = refs.iter().copied().filter(|a| *a != "--json").collect();
    let term_out = gantry(r.path(), &refs2);
    let mut needles: Vec<String> = vec!["added-value-Zq7".into(), "YWRkZWQtdmFsdWUtWnE3".into()];
    for (_, v) in secrets {
        needles.push(v.to_string());
        needles.extend(v.lines().map(String::from));
    }
    let mut texts = vec![
        ("json run".to_string(), text(&json_out)),
        ("terminal run".to_string(), text(&term_out)),
    ];
    for f in all_files(&r.path().join(".gantry")) {
        texts.push((
            f.display().to_string(),
            String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned(),
        ));
    }
    assert!(texts.len() > 4, "no run files written");
    for (where_, t) in &texts {
        for n in &needles {
            assert!(!t.contains(n.as_str()), "secret {n:?} leaked into {where_}");
        }
    }
    assert!(text(&term_out).contains("***"));
}

#[test]
fn rerun_failed_reuses_successful_jobs() {
    let marks = tempfile::tempdir().unwrap();
    let r = repo(&[wf(
        "ci.yml",
        &format!(
            r#"
on: push
jobs:
  a:
    runs-on: ubuntu-latest
    outputs:
      v: ${{{{ steps.s.outputs.v }}}}
    steps:
      - id: s
        run: |
          echo run >> {m}/a-runs
          echo v=from-a >> "$GITHUB_OUTPUT"
  b:
    needs: a
    runs-on: ubuntu-latest
    steps:
      - run: test -f {m}/ok && test "${{{{ needs.a.outputs.v }}}}" = from-a
"#,
            m = marks.path().display()
        ),
    )]);
    let out = gantry(r.path(), &["run", "--host"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    std::fs::write(marks.path().join("ok"), "").unwrap();
    let out = gantry(r.path(), &["rerun", "--failed", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let ev = events(&out);
    assert!(
        ev.iter()
            .any(|e| e["type"] == "job_finished" && e["name"] == "a" && e["reused"] == true)
    );
    let runs = std::fs::read_to_string(marks.path().join("a-runs")).unwrap();
    assert_eq!(runs.lines().count(), 1, "job a ran again");
}

#[test]
fn bad_input_exits_2() {
    let r = repo(&[wf(
        "ci.yml",
        "on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: true\n",
    )]);
    assert_eq!(
        gantry(r.path(), &["run", "-j", "nope"]).status.code(),
        Some(2)
    );
    assert_eq!(
        gantry(r.path(), &["run", "--secret-file", "missing"])
            .status
            .code(),
        Some(2)
    );
    let out = gantry(r.path(), &["run", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out).contains("job a"));
    assert!(!r.path().join(".gantry/runs").exists());
}

#[test]
fn a_missing_working_directory_fails_the_step_with_its_path() {
    let r = repo(&[wf(
        "ci.yml",
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      \
         - run: echo never\n        working-directory: no/such/dir\n      \
         - run: echo after\n        if: always()\n",
    )]);
    let out = gantry(r.path(), &["run", "--host", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let ev = events(&out);
    assert_eq!(job_results(&ev), [("a".to_string(), "failure".to_string())]);
    let logs: Vec<&str> = ev
        .iter()
        .filter(|e| e["type"] == "log")
        .filter_map(|e| e["line"].as_str())
        .collect();
    let all = logs.concat();
    assert!(
        all.contains("working directory")
            && all.contains("no/such/dir")
            && all.contains("does not exist"),
        "{all}"
    );
    assert!(!all.contains("never"), "{all}");
    assert!(all.contains("after"), "{all}");
}

#[test]
fn concurrency_group_replaces_pending_and_cancels_in_progress() {
    // Group `h` without cancel-in-progress: `x` runs, `y` waits, `z` arrives and replaces
    // `y` (cancelled), then runs after `x`. Group `g` with cancel-in-progress: `late`
    // cancels the running `slow`.
    let r = repo(&[wf(
        "ci.yml",
        r#"
on: push
jobs:
  x:
    runs-on: ubuntu-latest
    concurrency: H
    steps:
      - run: sleep 4
  s1:
    runs-on: ubuntu-latest
    steps:
      - run: "true"
  y:
    needs: s1
    runs-on: ubuntu-latest
    concurrency: h
    steps:
      - run: echo y ran
  s2:
    runs-on: ubuntu-latest
    steps:
      - run: sleep 1.5
  z:
    needs: s2
    runs-on: ubuntu-latest
    concurrency: h
    steps:
      - run: echo z ran
  slow:
    runs-on: ubuntu-latest
    concurrency:
      group: g-${{ github.workflow }}
      cancel-in-progress: true
    steps:
      - run: sleep 60
  starter:
    runs-on: ubuntu-latest
    steps:
      - run: sleep 1
  late:
    needs: starter
    runs-on: ubuntu-latest
    concurrency:
      group: g-${{ github.workflow }}
      cancel-in-progress: ${{ true }}
    steps:
      - run: echo late ran
"#,
    )]);
    let t = Instant::now();
    let out = gantry(
        r.path(),
        &[
            "run",
            "--host",
            "--json",
            "--jobs",
            "8",
            "--kill-after",
            "1",
        ],
    );
    let elapsed = t.elapsed();
    let ev = events(&out);
    let res = job_results(&ev);
    let get = |n: &str| {
        res.iter()
            .find(|(name, _)| name == n)
            .map(|(_, r)| r.clone())
            .unwrap_or_default()
    };
    assert_eq!(get("x"), "success", "{res:?}");
    assert_eq!(get("y"), "cancelled", "{res:?}");
    assert_eq!(get("z"), "success", "{res:?}");
    assert_eq!(get("slow"), "cancelled", "{res:?}");
    assert_eq!(get("late"), "success", "{res:?}");
    let all = text(&out);
    assert!(
        all.contains("Canceling since a higher priority waiting request for 'h' exists"),
        "{all}"
    );
    assert!(!all.contains("y ran"), "{all}");
    // z started only after x finished.
    let started = |n: &str| {
        ev.iter()
            .position(|e| e["type"] == "job_started" && e["name"] == n)
            .unwrap_or(usize::MAX)
    };
    let finished = |n: &str| {
        ev.iter()
            .position(|e| e["type"] == "job_finished" && e["name"] == n)
            .unwrap_or(0)
    };
    assert!(started("z") > finished("x"), "z started before x finished");
    assert!(elapsed < Duration::from_secs(40), "slow was not cancelled");
    assert_eq!(
        out.status.code(),
        Some(1),
        "cancelled jobs make the run cancelled"
    );
}

static DOCKER_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Containers and networks Gantry created for these job keys (label `gantry.job`), so that
/// other tests using Docker at the same time do not interfere.
fn leftovers(jobs: &[&str]) -> (String, String) {
    let mut ps_all = String::new();
    let mut nets_all = String::new();
    for j in jobs {
        let f = format!("label=gantry.job={j}");
        let ps = Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--filter",
                "label=dev.gantry.managed=true",
                "--filter",
                &f,
            ])
            .output()
            .unwrap();
        let nets = Command::new("docker")
            .args([
                "network",
                "ls",
                "-q",
                "--filter",
                "label=dev.gantry.managed=true",
                "--filter",
                &f,
            ])
            .output()
            .unwrap();
        ps_all.push_str(String::from_utf8_lossy(&ps.stdout).trim());
        nets_all.push_str(String::from_utf8_lossy(&nets.stdout).trim());
    }
    (ps_all, nets_all)
}

#[test]
fn container_job_and_healthy_service() {
    let _g = DOCKER_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_ready(&["gantry/debian:bookworm", "gantry/busybox:latest"]) {
        return;
    }
    // A local service image with a health check, built from Gantry's busybox image.
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM gantry/busybox:latest\nRUN mkdir -p /www && echo service-ok > /www/index.html\n\
         HEALTHCHECK --interval=1s --timeout=2s --retries=20 CMD wget -q -O- http://127.0.0.1:8080/ || exit 1\n\
         CMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n",
    )
    .unwrap();
    let st = Command::new("docker")
        .args(["build", "-q", "-t", "gantry-test/websvc:latest"])
        .arg(ctx.path())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "building the service image failed");
    let r = repo(&[wf(
        "ci.yml",
        r#"
on: push
jobs:
  e2e-svc-in-container:
    runs-on: ubuntu-latest
    container: gantry/debian:bookworm
    services:
      web:
        image: gantry-test/websvc:latest
    steps:
      - run: test -f "$GITHUB_WORKSPACE/.github/workflows/ci.yml"
      - run: curl -sf http://web:8080/ | grep service-ok
      - run: echo "FROM_ENV=1" >> "$GITHUB_ENV"
      - run: test "$FROM_ENV" = 1
  e2e-svc-on-host:
    runs-on: ubuntu-latest
    services:
      web:
        image: gantry-test/websvc:latest
        ports: ["8080"]
    steps:
      - run: wget -q -O- "http://127.0.0.1:${{ job.services.web.ports['8080'] }}/" | grep service-ok
"#,
    )]);
    let out = gantry(r.path(), &["run", "-P", "ubuntu-latest=host", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (ps, nets) = leftovers(&["e2e-svc-in-container", "e2e-svc-on-host"]);
    assert!(ps.is_empty() && nets.is_empty(), "left behind: {ps} {nets}");
}

#[test]
fn docker_cancellation_leaves_nothing() {
    let _g = DOCKER_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_ready(&["gantry/debian:bookworm"]) {
        return;
    }
    let r = repo(&[wf(
        "ci.yml",
        "on: push\njobs:\n  e2e-cancel-slow:\n    runs-on: ubuntu-latest\n    container: gantry/debian:bookworm\n    steps:\n      - run: echo started; sleep 300\n",
    )]);
    let mut child = Command::new(gantry_bin())
        .args(["run", "--json", "--kill-after", "1"])
        .current_dir(r.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(stdout).lines();
        for l in lines.by_ref() {
            if l.unwrap().contains("\"line\":\"started\"") {
                return true;
            }
        }
        false
    });
    assert!(reader.join().unwrap(), "the container step never started");
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    let (ps, nets) = leftovers(&["e2e-cancel-slow"]);
    assert!(ps.is_empty() && nets.is_empty(), "left behind: {ps} {nets}");
}

#[test]
fn job_container_context_matches_the_container() {
    let _g = DOCKER_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_ready(&["gantry/busybox:latest"]) {
        return;
    }
    let r = repo(&[wf(
        "ci.yml",
        r#"
on: push
jobs:
  e2e-job-container-ctx:
    runs-on: ubuntu-latest
    container: gantry/busybox:latest
    steps:
      - run: |
          echo "${{ job.container.id }}" > /github/home/id
          echo "${{ job.container.network }}" > /github/home/net
          test -n "${{ job.container.id }}"
          sleep 5
"#,
    )]);
    let child = Command::new(gantry_bin())
        .args([
            "run",
            "-P",
            "ubuntu-latest=gantry/busybox:latest",
            "--keep-work",
        ])
        .current_dir(r.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // While the step sleeps, the container with the job's label is the one the context named.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut running = String::new();
    while Instant::now() < deadline {
        let ps = Command::new("docker")
            .args([
                "ps",
                "-q",
                "--no-trunc",
                "--filter",
                "label=dev.gantry.managed=true",
                "--filter",
                "label=gantry.job=e2e-job-container-ctx",
            ])
            .output()
            .unwrap();
        running = String::from_utf8_lossy(&ps.stdout).trim().to_string();
        if !running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let home = all_files(&r.path().join(".gantry/work"))
        .into_iter()
        .find(|p| p.ends_with("_home/id"))
        .expect("the step wrote job.container.id");
    let id = std::fs::read_to_string(&home).unwrap().trim().to_string();
    let net = std::fs::read_to_string(home.with_file_name("net")).unwrap();
    assert_eq!(id.len(), 64, "job.container.id = {id:?}");
    assert_eq!(id, running, "docker ps shows another container");
    assert!(!net.trim().is_empty(), "job.container.network is empty");
}

#[test]
fn failing_service_job_prints_masked_service_logs() {
    let _g = DOCKER_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_ready(&["gantry/busybox:latest"]) {
        return;
    }
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM gantry/busybox:latest\n\
         CMD [\"sh\", \"-c\", \"echo svc-log-marker; echo token=$SVC_TOKEN; exec sleep 300\"]\n",
    )
    .unwrap();
    let st = Command::new("docker")
        .args(["build", "-q", "-t", "gantry-test/logsvc:latest"])
        .arg(ctx.path())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "building the service image failed");
    let r = repo(&[wf(
        "ci.yml",
        r#"
on: push
jobs:
  e2e-svc-logs:
    runs-on: ubuntu-latest
    services:
      logger:
        image: gantry-test/logsvc:latest
        env:
          SVC_TOKEN: ${{ secrets.SVC_TOKEN }}
    steps:
      - run: sleep 1; exit 1
"#,
    )]);
    let out = gantry(
        r.path(),
        &[
            "run",
            "-P",
            "ubuntu-latest=host",
            "-s",
            "SVC_TOKEN=svc-Secret-Q81",
        ],
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("last 100 log lines of service 'logger'"),
        "{all}"
    );
    assert!(all.contains("svc-log-marker"), "{all}");
    assert!(all.contains("token=***"), "{all}");
    assert!(!all.contains("svc-Secret-Q81"), "secret leaked: {all}");
    let (ps, nets) = leftovers(&["e2e-svc-logs"]);
    assert!(ps.is_empty() && nets.is_empty(), "left behind: {ps} {nets}");
}

#[allow(dead_code)]
fn unused(_: &Path) {}
