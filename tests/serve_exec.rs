//! `gantry serve` executes the runs it queues: the real binary on 127.0.0.1, a real bare
//! repository, signed GitHub push webhooks; jobs on the host backend (and one in Docker),
//! read back through the API with octocrab. Cancel from the API stops the step's process;
//! `kill -9` of the server mid-run and a restart lose nothing; SIGTERM cancels and records.

#[path = "serve_support.rs"]
mod serve_support;

use std::path::Path;

use octocrab::models::workflows::Conclusion;
use serve_support::*;

const HOST_WORKFLOW: &str = r#"name: CI
on: push
jobs:
  build:
    runs-on: self-hosted
    steps:
      - run: echo "hello from $GITHUB_REPOSITORY at $(git rev-parse HEAD) on $GITHUB_REF"
      - run: echo "secret ${{ secrets.APP_SECRET }} region ${{ vars.REGION }} actor ${{ github.actor }}"
  test:
    needs: build
    runs-on: self-hosted
    strategy:
      matrix:
        n: [1, 2]
    steps:
      - run: echo "leg ${{ matrix.n }}"
"#;

/// A push runs the workflow on the host: jobs, legs, steps and conclusion through the API,
/// logs with the repository secret masked, nothing of the secret anywhere on disk.
async fn push_runs_on_the_host(database: Option<&str>) {
    let bare = BareRepo::new();
    let sha = bare.commit(
        "main",
        &[(".github/workflows/ci.yml", HOST_WORKFLOW)],
        "first",
    );
    let s = Server::start_with(&config_yaml(&bare.url(), database), &[]);
    push(&s, ZERO, &sha, "first").await;
    let run = run_of(&s, &sha).await;
    let run = completed(&s, run.id.0).await;
    assert_eq!(run.conclusion.as_deref(), Some("success"), "{}", s.output());

    let jobs = jobs(&s, run.id.0).await;
    let names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(jobs.len(), 3, "{names:?}");
    assert!(names.contains(&"build"), "{names:?}");
    for j in &jobs {
        assert_eq!(j.conclusion, Some(Conclusion::Success), "{}", j.name);
        assert!(j.completed_at.is_some(), "{}", j.name);
        assert!(!j.steps.is_empty(), "{} has steps", j.name);
        assert!(
            j.steps
                .iter()
                .all(|st| st.conclusion == Some(Conclusion::Success)),
            "{}: {:?}",
            j.name,
            j.steps
        );
    }
    let build = jobs.iter().find(|j| j.name == "build").unwrap();
    let log = job_log(&s, build).await;
    assert!(
        log.contains(&format!("hello from acme/shop at {sha} on refs/heads/main")),
        "the workspace is the pushed commit:\n{log}"
    );
    assert!(log.contains("region eu-west-1 actor dev"), "{log}");
    assert!(log.contains("secret *** region"), "{log}");
    assert!(!log.contains(APP_SECRET), "{log}");
    let legs: Vec<String> = {
        let mut v = Vec::new();
        for j in jobs.iter().filter(|j| j.name != "build") {
            v.push(job_log(&s, j).await);
        }
        v
    };
    assert!(legs.iter().any(|l| l.contains("leg 1")), "{legs:?}");
    assert!(legs.iter().any(|l| l.contains("leg 2")), "{legs:?}");

    // Metrics: jobs by status, durations, pickup latency.
    let metrics = reqwest::get(format!("{}/metrics", s.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("gantry_jobs{status=\"completed\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gantry_job_duration_seconds_count 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gantry_pickup_latency_seconds_count 1"),
        "{metrics}"
    );
    assert!(metrics.contains("gantry_queue_depth 0"), "{metrics}");

    // The workspace is gone; the secret is nowhere on disk nor in the server's output.
    // (The run is recorded completed just before its workspace is removed.)
    let work = s.dir.path().join("data/work").join(run.id.0.to_string());
    wait_for("the run's workspace to be removed", || async {
        (!work.exists()).then_some(())
    })
    .await;
    assert!(!bytes_contain(&all_bytes(s.dir.path()), APP_SECRET));
    assert!(!s.output().contains(APP_SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_runs_on_the_host_with_sqlite() {
    push_runs_on_the_host(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_runs_on_the_host_with_postgres() {
    let Some(pg) = postgres() else {
        eprintln!("SKIPPED: Docker or gantry/postgres:15 missing (GANTRY_REQUIRE_DOCKER=1 fails)");
        return;
    };
    push_runs_on_the_host(Some(&pg.url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_job_through_labels() {
    if !gantry_tests::docker_ready(&["gantry/debian:bookworm"]) {
        eprintln!("SKIPPED: Docker or gantry/debian:bookworm missing");
        return;
    }
    let wf = r#"name: CI
on: push
jobs:
  in-docker:
    runs-on: ubuntu-latest
    steps:
      - run: echo "debian $(cat /etc/debian_version) in $(cat VERSION)"
"#;
    let bare = BareRepo::new();
    let sha = bare.commit(
        "main",
        &[
            (".github/workflows/ci.yml", wf),
            ("VERSION", "v-from-commit\n"),
        ],
        "docker",
    );
    let s = Server::start_with(&config_yaml(&bare.url(), None), &[]);
    push(&s, ZERO, &sha, "docker").await;
    let run = run_of(&s, &sha).await;
    let run = completed(&s, run.id.0).await;
    assert_eq!(run.conclusion.as_deref(), Some("success"), "{}", s.output());
    let jobs = jobs(&s, run.id.0).await;
    let log = job_log(&s, &jobs[0]).await;
    assert!(
        log.contains("debian 12."),
        "ran in gantry/debian:bookworm:\n{log}"
    );
    assert!(log.contains("in v-from-commit"), "{log}");
}

fn slow_workflow(pid_file: &Path) -> String {
    format!(
        r#"name: CI
on: push
jobs:
  slow:
    runs-on: self-hosted
    steps:
      - run: echo "before the wait"
      - run: |
          if [ "$(cat mode)" = slow ]; then
            sleep 300 &
            echo $! > {pid}
            wait
          fi
          echo "mode $(cat mode) done"
"#,
        pid = pid_file.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_from_the_api_stops_the_step() {
    let tmp = tempfile::tempdir().unwrap();
    let pid_file = tmp.path().join("sleep.pid");
    let bare = BareRepo::new();
    let sha = bare.commit(
        "main",
        &[
            (".github/workflows/ci.yml", &slow_workflow(&pid_file)),
            ("mode", "slow"),
        ],
        "slow",
    );
    let s = Server::start_with(&config_yaml(&bare.url(), None), &[]);
    push(&s, ZERO, &sha, "slow").await;
    let run = run_of(&s, &sha).await;
    let pid = read_pid(&pid_file).await;
    assert!(pid_alive(pid));
    run_until(&s, run.id.0, 30, "in_progress", |r| {
        r.status == "in_progress"
    })
    .await;

    s.octocrab(WRITER_TOKEN)
        .actions()
        .cancel_workflow_run("acme", "shop", run.id)
        .await
        .expect("cancel");
    let run = completed(&s, run.id.0).await;
    assert_eq!(run.conclusion.as_deref(), Some("cancelled"));
    wait_for("the step's process to end", || async {
        (!pid_alive(pid)).then_some(())
    })
    .await;
    let jobs = jobs(&s, run.id.0).await;
    assert_eq!(
        jobs[0].conclusion,
        Some(Conclusion::Cancelled),
        "{:?}",
        jobs[0]
    );
    let log = job_log(&s, &jobs[0]).await;
    assert!(log.contains("before the wait"), "{log}");
    assert!(
        !log.contains("mode slow done"),
        "the step was stopped:\n{log}"
    );
}

/// `kill -9` mid-step, restart on the same data: the started job is failed with the
/// reason (and what it logged is kept), the queued run starts and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_kill_fails_the_started_job_and_starts_the_queued_run() {
    let tmp = tempfile::tempdir().unwrap();
    let pid_file = tmp.path().join("sleep.pid");
    let data = tmp.path().join("data");
    let data_arg = data.display().to_string();
    let bare = BareRepo::new();
    let wf = slow_workflow(&pid_file);
    let slow = bare.commit(
        "main",
        &[(".github/workflows/ci.yml", &wf), ("mode", "slow")],
        "slow",
    );
    let config = config_yaml(&bare.url(), None).replace("capacity: 2", "capacity: 1");
    let mut s = Server::start_with(&config, &["--data", &data_arg]);
    push(&s, ZERO, &slow, "slow").await;
    let run1 = run_of(&s, &slow).await;
    let pid = read_pid(&pid_file).await;
    // A second push queues behind the first (capacity 1).
    let fast = bare.commit("main", &[("mode", "fast")], "fast");
    push(&s, &slow, &fast, "fast").await;
    let run2 = run_of(&s, &fast).await;
    assert_eq!(run2.status, "queued");
    s.kill_hard();
    // The orphaned step would sleep on; it is not what this test is about.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }

    let s = Server::start_with(&config, &["--data", &data_arg]);
    let run1 = completed(&s, run1.id.0).await;
    assert_eq!(run1.conclusion.as_deref(), Some("failure"));
    let jobs1 = jobs(&s, run1.id.0).await;
    assert_eq!(jobs1[0].conclusion, Some(Conclusion::Failure));
    let log = job_log(&s, &jobs1[0]).await;
    assert!(
        log.contains("before the wait"),
        "what was recorded is kept:\n{log}"
    );
    assert!(
        log.contains("the server stopped while this job ran"),
        "{log}"
    );
    let run2 = completed(&s, run2.id.0).await;
    assert_eq!(
        run2.conclusion.as_deref(),
        Some("success"),
        "{}",
        s.output()
    );
    let jobs2 = jobs(&s, run2.id.0).await;
    assert!(job_log(&s, &jobs2[0]).await.contains("mode fast done"));
    // The interrupted run was not run again by itself.
    let log = job_log(&s, &jobs1[0]).await;
    assert_eq!(log.matches("before the wait").count(), 1, "{log}");
}

/// SIGTERM cancels the running job, records it and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_cancels_and_records_the_running_job() {
    let tmp = tempfile::tempdir().unwrap();
    let pid_file = tmp.path().join("sleep.pid");
    let data = tmp.path().join("data");
    let data_arg = data.display().to_string();
    let bare = BareRepo::new();
    let sha = bare.commit(
        "main",
        &[
            (".github/workflows/ci.yml", &slow_workflow(&pid_file)),
            ("mode", "slow"),
        ],
        "slow",
    );
    let config = config_yaml(&bare.url(), None);
    let mut s = Server::start_with(&config, &["--data", &data_arg]);
    push(&s, ZERO, &sha, "slow").await;
    let run = run_of(&s, &sha).await;
    let pid = read_pid(&pid_file).await;
    assert_eq!(s.terminate(), Some(0), "{}", s.output());
    assert!(!pid_alive(pid), "the step's process was stopped");

    let s = Server::start_with(&config, &["--data", &data_arg, "--no-executor"]);
    let run = completed(&s, run.id.0).await;
    assert_eq!(run.conclusion.as_deref(), Some("cancelled"));
    let jobs = jobs(&s, run.id.0).await;
    assert_eq!(jobs[0].conclusion, Some(Conclusion::Cancelled));
}

const CALLER: &str = r#"name: CI
on: push
jobs:
  build:
    runs-on: self-hosted
    steps:
      - run: echo build
  call:
    needs: build
    uses: ./.github/workflows/called.yml
  after:
    needs: call
    runs-on: self-hosted
    steps:
      - run: echo after
"#;

const CALLED: &str = r#"on: workflow_call
jobs:
  one:
    runs-on: self-hosted
    steps:
      - run: echo "callee one"
  two:
    needs: one
    runs-on: self-hosted
    steps:
      - run: echo "callee two"
"#;

fn sorted_names(jobs: &[octocrab::models::workflows::Job]) -> Vec<String> {
    let mut v: Vec<String> = jobs.iter().map(|j| j.name.clone()).collect();
    v.sort();
    v
}

/// Pushes `files` to `s`'s repository and checks that the run's jobs are `want` right
/// after the push and again once it completed (no row added or left over), that every job
/// ran and succeeded, that `callee`'s log shows the callee ran, and that the run page
/// draws `callee`.
async fn listed_from_the_start(
    s: &Server,
    bare: &BareRepo,
    files: &[(&str, &str)],
    want: &[&str],
    callee: &str,
) {
    let sha = bare.commit("main", files, "first");
    push(s, ZERO, &sha, "first").await;
    let run = run_of(s, &sha).await;
    assert_eq!(sorted_names(&jobs(s, run.id.0).await), want, "queued rows");
    let run = completed(s, run.id.0).await;
    assert_eq!(run.conclusion.as_deref(), Some("success"), "{}", s.output());
    let done = jobs(s, run.id.0).await;
    assert_eq!(sorted_names(&done), want, "no row was added or left over");
    for j in &done {
        assert_eq!(j.conclusion, Some(Conclusion::Success), "{}", j.name);
        assert!(!j.steps.is_empty(), "{} ran", j.name);
    }
    let two = done.iter().find(|j| j.name == callee).unwrap();
    assert!(job_log(s, two).await.contains("callee two"));
    let page = run_page(s, run.id.0).await;
    assert!(page.contains(callee), "{page}");
}

/// A call of a workflow of the same commit is listed as its callee's jobs from the moment
/// the run is queued (as GitHub does), the engine's jobs take those rows, and no row is
/// left for the caller itself; the run page draws the callee's jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_reusable_workflow_is_listed_as_its_jobs_from_the_start() {
    let bare = BareRepo::new();
    let s = Server::start_with(&config_yaml(&bare.url(), None), &[]);
    let files = [
        (".github/workflows/ci.yml", CALLER),
        (".github/workflows/called.yml", CALLED),
    ];
    let want = ["after", "build", "call / one", "call / two"];
    listed_from_the_start(&s, &bare, &files, &want, "call / two").await;
}

/// A static matrix over a local call is listed as every leg's callee jobs from the moment
/// the run is queued (`call (lin) / one`), and the engine's jobs take exactly those rows:
/// none added, none left queued or skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matrix_over_a_call_is_listed_as_each_legs_jobs_from_the_start() {
    let bare = BareRepo::new();
    let s = Server::start_with(&config_yaml(&bare.url(), None), &[]);
    // CALLER with a matrix over `call`.
    let caller = CALLER.replace(
        "    uses: ./",
        "    strategy:\n      matrix:\n        os: [lin, win]\n    uses: ./",
    );
    let files = [
        (".github/workflows/ci.yml", caller.as_str()),
        (".github/workflows/called.yml", CALLED),
    ];
    let want = [
        "after",
        "build",
        "call (lin) / one",
        "call (lin) / two",
        "call (win) / one",
        "call (win) / two",
    ];
    listed_from_the_start(&s, &bare, &files, &want, "call (win) / two").await;
}

/// A call of another repository pinned to a full sha that the engine's cache holds (a
/// run fetched it before) is listed as its callee's jobs at once, read from that cache
/// with no network; the run then resolves the same sha from the same cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_pinned_to_a_cached_sha_is_listed_as_its_jobs_from_the_start() {
    let flows = BareRepo::new();
    let callee_sha = flows.commit("main", &[(".github/workflows/c.yml", CALLED)], "reusable");
    // Warm the cache the way a run does: the engine's resolver fetching from a source.
    let cache_home = tempfile::tempdir().unwrap();
    let resolver =
        gantry_engine::actions::ActionResolver::new(gantry_engine::actions::ResolverConfig {
            sources: vec![flows.url()],
            cache_root: cache_home.path().join("gantry/actions"),
            ..Default::default()
        });
    let uses = format!("acme/flows/.github/workflows/c.yml@{callee_sha}");
    resolver.resolve(&uses, cache_home.path()).unwrap();

    let bare = BareRepo::new();
    let home = cache_home.path().to_str().unwrap();
    let s = Server::start_with_env(
        &config_yaml(&bare.url(), None),
        &[],
        &[("XDG_CACHE_HOME", home)],
    );
    let caller = format!(
        "name: CI\non: push\njobs:\n  ext:\n    uses: {uses}\n  after:\n    needs: ext\n    runs-on: self-hosted\n    steps:\n      - run: echo after\n"
    );
    let files = [(".github/workflows/ci.yml", caller.as_str())];
    let want = ["after", "ext / one", "ext / two"];
    listed_from_the_start(&s, &bare, &files, &want, "ext / two").await;
}

const CALLS_DECIDED_AT_RUN_TIME: &str = r#"name: CI
on: push
jobs:
  build:
    runs-on: self-hosted
    outputs:
      legs: ${{ steps.m.outputs.legs }}
    steps:
      - run: for i in $(seq 600); do [ -e "GO_FILE" ] && break; sleep 0.1; done
      - id: m
        run: echo 'legs=["x","y"]' >> "$GITHUB_OUTPUT"
  dyn:
    needs: build
    strategy:
      matrix:
        n: ${{ fromJSON(needs.build.outputs.legs) }}
    uses: ./.github/workflows/called.yml
  off:
    needs: build
    if: false
    uses: ./.github/workflows/called.yml
"#;

/// Calls that run otherwise than their queued rows say leave no stale row: a matrix from
/// `needs` is one row `dyn` until its legs start, then the legs' jobs (the first takes that
/// row); a call skipped by its `if:` is one skipped row `off`, not its callee's jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_decided_at_run_time_leave_no_stale_rows() {
    // `build` waits for this file: the queued rows are read before any call starts.
    let tmp = tempfile::tempdir().unwrap();
    let go = tmp.path().join("go");
    let workflow = CALLS_DECIDED_AT_RUN_TIME.replace("GO_FILE", go.to_str().unwrap());
    let bare = BareRepo::new();
    let sha = bare.commit(
        "main",
        &[
            (".github/workflows/ci.yml", &workflow),
            (".github/workflows/called.yml", CALLED),
        ],
        "first",
    );
    let s = Server::start_with(&config_yaml(&bare.url(), None), &[]);
    push(&s, ZERO, &sha, "first").await;
    let run = run_of(&s, &sha).await;
    assert_eq!(
        sorted_names(&jobs(&s, run.id.0).await),
        ["build", "dyn", "off / one", "off / two"],
        "queued rows"
    );
    std::fs::write(&go, "").unwrap();
    let run = completed(&s, run.id.0).await;
    assert_eq!(run.conclusion.as_deref(), Some("success"), "{}", s.output());
    let done = jobs(&s, run.id.0).await;
    assert_eq!(
        sorted_names(&done),
        [
            "build",
            "dyn (x) / one",
            "dyn (x) / two",
            "dyn (y) / one",
            "dyn (y) / two",
            "off",
        ],
        "{done:#?}"
    );
    for j in &done {
        let want = if j.name == "off" {
            Conclusion::Skipped
        } else {
            Conclusion::Success
        };
        assert_eq!(j.conclusion, Some(want), "{}", j.name);
    }
    let page = run_page(&s, run.id.0).await;
    assert!(!page.contains("off / one"), "{page}");
}

/// Every file under `dir` with its bytes and permissions (a snapshot of a repository).
fn files_of(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, (Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let mode = e.metadata().unwrap().permissions().mode();
                out.insert(p.clone(), (std::fs::read(&p).unwrap(), mode));
            }
        }
    }
    out
}

/// Git's own writes in a repository a job can reach: a commit and a tag, then `REPACK`.
const GIT_WRITES: &str = r#"set -e
          git -c user.name=j -c user.email=j@x commit --allow-empty -qm "job commit"
          git tag job-tag
          REPACK"#;

/// Then junk appended to every object file there and in any alternate object store: a
/// file shared with the mirror (a hard link, an alternate) would carry it into the mirror.
const JUNK: &str = r#"n=0
          for f in $(find .git/objects -type f); do chmod u+w "$f"; echo junk >> "$f"; n=$((n+1)); done
          if [ -f .git/objects/info/alternates ]; then
            for d in $(cat .git/objects/info/alternates); do
              for f in $(find "$d" -type f); do chmod u+w "$f"; echo junk >> "$f"; done
            done
          fi
          echo "vandalised $n object files in $PWD""#;

/// A job that commits, tags, repacks and then writes into every object file of its
/// workspace and of the run's checkout (where a rollback script runs) leaves the server's
/// mirror as it was, byte for byte: the checkout's objects are its own, not the mirror's
/// (a checkout with hard-linked packs fails this test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_writing_into_its_git_objects_cannot_change_the_mirror() {
    let bare = BareRepo::new();
    let first = bare.commit("main", &[("a.txt", "one")], "first");
    let s = Server::start_with(&config_yaml(&bare.url(), None), &[]);
    let data = s.dir.path().join("data");
    let go = s.dir.path().join("go");
    let workflow = format!(
        r#"name: CI
on: push
jobs:
  vandal:
    runs-on: self-hosted
    steps:
      - run: while [ ! -f {go} ]; do sleep 0.05; done
      - run: |
          {job}
          {JUNK}
      - run: |
          cd {data}/work/*/repo
          {checkout}
          {JUNK}
"#,
        // In the run's checkout a repack that keeps the packs it was given (`gc` would
        // replace them, and the junk must reach the files as the checkout made them).
        job = GIT_WRITES.replace("REPACK", "git gc -q --prune=now && git repack -q -a -d"),
        checkout = GIT_WRITES.replace("REPACK", "git repack -q -d && git prune --expire=now"),
        go = go.display(),
        data = data.display(),
    );
    let sha = bare.commit("main", &[(".github/workflows/ci.yml", &workflow)], "vandal");
    push(&s, &first, &sha, "vandal").await;
    let run = run_of(&s, &sha).await;
    run_until(&s, run.id.0, 60, "in_progress", |r| {
        r.status == "in_progress"
    })
    .await;
    // The mirror has the commit (it was fetched before the checkout) and the job waits.
    let mirror = data.join("mirrors").join("acme+shop.git");
    let before = files_of(&mirror);
    assert!(
        before
            .keys()
            .any(|p| p.extension().is_some_and(|e| e == "pack"))
    );
    std::fs::write(&go, "").unwrap();

    let run = completed(&s, run.id.0).await;
    let job = &jobs(&s, run.id.0).await[0];
    let log = job_log(&s, job).await;
    assert_eq!(run.conclusion.as_deref(), Some("success"), "{log}");
    let places: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_once("vandalised ").map(|(_, p)| p))
        // Not the script's own text, which the log shows too.
        .filter(|p| p.starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    assert_eq!(places.len(), 2, "{log}");
    let checkout = format!("{}/work/", data.display());
    assert!(
        places
            .iter()
            .any(|p| p.contains(&checkout) && p.ends_with("/repo")),
        "the run's checkout was reached: {places:?}"
    );
    let after = files_of(&mirror);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "files of the mirror came or went"
    );
    for (p, v) in &before {
        assert!(after[p] == *v, "{} changed", p.display());
    }
    let mirror_repo = git2::Repository::open_bare(&mirror).unwrap();
    assert!(mirror_repo.find_reference("refs/tags/job-tag").is_err());
    assert_eq!(
        mirror_repo
            .refname_to_id("refs/heads/main")
            .unwrap()
            .to_string(),
        sha
    );
}
