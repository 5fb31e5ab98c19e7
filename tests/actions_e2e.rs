//! End-to-end tests of `uses:` steps through `gantry run`: bare git repositories built with
//! git2 in a temp dir hold a composite action, a JavaScript action with pre/post stages and
//! a Docker action (Dockerfile), at tags, branches and shas; `gantry run` resolves them
//! through `--action-source file://<tmp>/{owner}/{repo}.git` into an `--action-cache` in the
//! temp dir. Host jobs, container jobs (`container:` and `-P label=image`), warm and cold
//! `--offline`, and `--no-builtin` turning a built-in off for the real (fixture) action.

use std::path::Path;
use std::process::{Command, Stdio};

use gantry_tests::*;

#[path = "actions_fixtures.rs"]
mod fixtures;
use fixtures::*;

fn repo_with_workflow(body: &str) -> tempfile::TempDir {
    git_repo_with(&[(".github/workflows/ci.yml", body)])
}

fn events(out: &std::process::Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn log_lines(ev: &[serde_json::Value]) -> Vec<String> {
    ev.iter()
        .filter(|e| e["type"] == "log")
        .filter_map(|e| e["line"].as_str().map(str::to_string))
        .collect()
}

fn has_line(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| l.contains(needle))
}

fn position(lines: &[String], needle: &str) -> usize {
    lines
        .iter()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no log line containing '{needle}':\n{}", lines.join("\n")))
}

fn step_names(ev: &[serde_json::Value], job: &str) -> Vec<String> {
    ev.iter()
        .filter(|e| e["type"] == "step_started" && e["job"] == job)
        .filter_map(|e| e["name"].as_str().map(str::to_string))
        .collect()
}

fn job_outputs(ev: &[serde_json::Value], job: &str) -> serde_json::Value {
    ev.iter()
        .find(|e| e["type"] == "job_finished" && e["job"] == job)
        .map(|e| e["outputs"].clone())
        .unwrap_or_else(|| panic!("no job_finished for {job}"))
}

fn run(dir: &Path, src: &Sources, cache: &str, extra: &[&str]) -> std::process::Output {
    let tpl = src.template();
    let cache = src.cache(cache).display().to_string();
    let mut args = vec![
        "run",
        "--json",
        "--action-source",
        &tpl,
        "--action-cache",
        &cache,
    ];
    args.extend_from_slice(extra);
    gantry(dir, &args)
}

fn host_workflow(src: &Sources) -> String {
    let short = &src.composite_main[..7];
    format!(
        r#"on: push
jobs:
  acts:
    runs-on: ubuntu-latest
    outputs:
      c1: ${{{{ steps.c1.outputs.greeting }}}}
      c2: ${{{{ steps.c2.outputs.greeting }}}}
      c2nested: ${{{{ steps.c2.outputs.nested }}}}
      c3: ${{{{ steps.c3.outputs.greeting }}}}
      c4: ${{{{ steps.c4.outputs.greeting }}}}
      c5: ${{{{ steps.c5.outputs.greeting }}}}
      sub: ${{{{ steps.sub.outputs.where }}}}
      first: ${{{{ steps.first.outputs.greeting }}}}
      second: ${{{{ steps.second.outputs.greeting }}}}
    steps:
      - run: echo STEP-ONE
      - id: c1
        uses: acme/composite-action@v1
        with:
          who: tag
      - id: c2
        uses: acme/composite-action@main
      - id: c3
        uses: acme/composite-action@{full}
        with:
          who: sha
      - id: c4
        uses: acme/composite-action@{short}
        with:
          who: short
      - id: c5
        uses: acme/composite-action@v1.0.0
        with:
          who: light
      - id: sub
        uses: acme/composite-action/sub/inner@v1
      - id: first
        name: JS first
        uses: acme/js-action@v1
        with:
          name: first
          NUM-OCTOCATS: 3
      - id: second
        name: JS second
        uses: acme/js-action@v1
        with:
          name: second
      - run: echo "ENV-FROM-JS $JS_SET_FIRST $JS_SET_SECOND"
"#,
        full = src.composite_v1,
        short = short,
    )
}

#[test]
fn remote_composite_and_js_actions_on_the_host() {
    let src = sources();
    let r = repo_with_workflow(&host_workflow(&src));
    let out = run(r.path(), &src, "cache", &["--host"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let ev = events(&out);
    let lines = log_lines(&ev);
    let o = job_outputs(&ev, "acts");
    assert_eq!(o["c1"], "hello tag v1", "tag: {o}");
    assert_eq!(o["c2"], "hello world v2", "branch: {o}");
    assert_eq!(o["c2nested"], "hi nested-world", "nested remote JS: {o}");
    assert_eq!(o["c3"], "hello sha v1", "full sha: {o}");
    assert_eq!(o["c4"], "hello short v2", "short sha: {o}");
    assert_eq!(o["c5"], "hello light v1", "lightweight tag: {o}");
    assert_eq!(o["sub"], "inner-v1", "sub path: {o}");
    assert_eq!(o["first"], "hi first");
    assert_eq!(o["second"], "hi second");

    // INPUT_* (hyphen kept, case-insensitive with), GITHUB_ACTION_*, cwd, state from pre.
    assert!(
        has_line(
            &lines,
            "JS-MAIN first octo=3 pre=P-first repo=acme/js-action ref=v1 cwd-is-workspace=true"
        ),
        "{}",
        lines.join("\n")
    );
    assert!(has_line(&lines, "JS-MAIN second octo=1 pre=P-second"));
    // Post stages see pre, main and ::save-state state.
    assert!(has_line(
        &lines,
        "JS-POST second pre=P-second main=M-second cmd=C-second"
    ));
    assert!(has_line(
        &lines,
        "JS-POST first pre=P-first main=M-first cmd=C-first"
    ));
    // GITHUB_ENV from a JS action reaches later steps.
    assert!(
        has_line(&lines, "ENV-FROM-JS yes yes"),
        "{}",
        lines.join("\n")
    );
    // Workflow commands from the action's output.
    assert!(
        ev.iter()
            .any(|e| e["type"] == "annotation" && e["message"] == "noticed first"),
        "no annotation"
    );

    // Order: pre stages before the first step, in step order; posts last, reversed.
    let pre_first = position(&lines, "JS-PRE first");
    let pre_second = position(&lines, "JS-PRE second");
    let step_one = position(&lines, "STEP-ONE");
    let post_first = position(&lines, "JS-POST first");
    let post_second = position(&lines, "JS-POST second");
    let last_step = position(&lines, "ENV-FROM-JS");
    assert!(pre_first < pre_second && pre_second < step_one, "pre order");
    assert!(
        last_step < post_second && post_second < post_first,
        "post order"
    );
    let names = step_names(&ev, "acts");
    assert_eq!(
        names.first().map(String::as_str),
        Some("Pre JS first"),
        "{names:?}"
    );
    assert_eq!(
        names.get(1).map(String::as_str),
        Some("Pre JS second"),
        "{names:?}"
    );
    let posts: Vec<&String> = names.iter().filter(|n| n.starts_with("Post JS")).collect();
    assert_eq!(posts, ["Post JS second", "Post JS first"], "{names:?}");
    // The nested JS action (inside the composite at main) registered a post stage too.
    assert!(has_line(
        &lines,
        "JS-POST nested-world pre=undefined main=M-nested-world"
    ));

    // The cache holds the commits by sha and the ref index.
    let cache = src.cache("cache").join("acme").join("composite-action");
    assert!(cache.join(&src.composite_v1).is_dir());
    assert!(cache.join(&src.composite_main).is_dir());
    let refs = std::fs::read_to_string(cache.join("refs.json")).unwrap();
    assert!(
        refs.contains("\"v1\"") && refs.contains("\"main\""),
        "{refs}"
    );

    // Warm cache, --offline: same results without touching the sources.
    let moved = src.root.path().join("src-moved");
    std::fs::rename(src.root.path().join("src"), &moved).unwrap();
    let out2 = run(r.path(), &src, "cache", &["--host", "--offline"]);
    assert_eq!(out2.status.code(), Some(0), "warm offline: {}", text(&out2));
    let o2 = job_outputs(&events(&out2), "acts");
    assert_eq!(o2, o, "offline run gives the same outputs");

    // Cold cache, --offline: a clear error naming the uses, the position and what was tried.
    let out3 = run(r.path(), &src, "cold", &["--host", "--offline"]);
    assert_ne!(out3.status.code(), Some(0), "{}", text(&out3));
    let l3 = log_lines(&events(&out3));
    let err = l3
        .iter()
        .find(|l| l.contains("acme/composite-action@v1") && l.starts_with("Error:"))
        .unwrap_or_else(|| panic!("no resolve error:\n{}", l3.join("\n")));
    assert!(err.contains("ci.yml:"), "{err}");
    assert!(err.contains("step 2"), "{err}");
    assert!(err.contains("cannot resolve"), "{err}");
    assert!(err.contains("offline mode: no fetch attempted"), "{err}");
    assert!(err.contains("action cache"), "{err}");
}

#[test]
fn no_builtin_runs_the_real_action_and_unknown_refs_fail_clearly() {
    let src = sources();
    let r = repo_with_workflow(
        r#"on: push
jobs:
  co:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
"#,
    );
    // The built-in checkout by default.
    let out = run(r.path(), &src, "cache", &["--host"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!has_line(&log_lines(&events(&out)), "FIXTURE-CHECKOUT"));
    // --no-builtin: the fixture repository's action.
    let out = run(
        r.path(),
        &src,
        "cache",
        &["--host", "--no-builtin", "actions/checkout"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        has_line(
            &log_lines(&events(&out)),
            "FIXTURE-CHECKOUT actions/checkout"
        ),
        "{}",
        text(&out)
    );

    // A ref that exists nowhere: the error lists every source tried.
    let r2 = repo_with_workflow(
        r#"on: push
jobs:
  bad:
    runs-on: ubuntu-latest
    steps:
      - run: echo first
      - uses: acme/js-action@no-such-ref
"#,
    );
    let out = run(r2.path(), &src, "cache", &["--host"]);
    assert_ne!(out.status.code(), Some(0));
    let lines = log_lines(&events(&out));
    let err = lines
        .iter()
        .find(|l| l.starts_with("Error:") && l.contains("acme/js-action@no-such-ref"))
        .unwrap_or_else(|| panic!("{}", lines.join("\n")));
    assert!(err.contains("step 2"), "{err}");
    assert!(
        err.contains("no tag, branch or commit 'no-such-ref'"),
        "{err}"
    );
    assert!(err.contains("js-action.git"), "{err}");
}

static DOCKER_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Action containers Gantry left behind (label `gantry.action`).
fn action_containers() -> String {
    let o = Command::new("docker")
        .args(["ps", "-aq", "--filter", "label=gantry.action=true"])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn docker_steps() -> &'static str {
    r#"      - id: d
        name: Docker fixture
        uses: acme/docker-action@v1
        with:
          greeting: hey
      - id: uri
        uses: docker://gantry/busybox:latest
        with:
          entrypoint: /bin/sh
          args: -c "echo URI-$INPUT_FOO; echo v=uri-ok >> $GITHUB_OUTPUT"
          foo: bar
      - run: echo "AFTER-DOCKER $DOCKER_ENV"
"#
}

fn check_docker_lines(lines: &[String], job: &str) {
    let all = lines.join("\n");
    assert!(
        has_line(
            lines,
            "DOCKER-MAIN args=[hey][two words] input=hey env=hey-env ws=/github/workspace home=/github/home pre=DP"
        ),
        "{job}: {all}"
    );
    assert!(has_line(lines, "DOCKER-SAW-WORKSPACE"), "{job}: {all}");
    assert!(has_line(lines, "DOCKER-SAW-EVENT"), "{job}: {all}");
    assert!(has_line(lines, "DOCKER-PRE hey"), "{job}: {all}");
    assert!(
        has_line(lines, "DOCKER-POST pre=DP main=DM"),
        "{job}: {all}"
    );
    assert!(has_line(lines, "URI-bar"), "{job}: {all}");
    assert!(has_line(lines, "AFTER-DOCKER set"), "{job}: {all}");
    assert!(position(lines, "DOCKER-PRE") < position(lines, "DOCKER-MAIN"));
    assert!(position(lines, "AFTER-DOCKER") < position(lines, "DOCKER-POST"));
}

#[test]
fn docker_actions_on_the_host() {
    let _g = DOCKER_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_ready(&["gantry/busybox:latest"]) {
        return;
    }
    let src = sources();
    let wf = format!(
        "on: push\njobs:\n  dk:\n    runs-on: ubuntu-latest\n    outputs:\n      result: ${{{{ steps.d.outputs.result }}}}\n      uri: ${{{{ steps.uri.outputs.v }}}}\n    steps:\n{}",
        docker_steps()
    );
    let r = repo_with_workflow(&wf);
    let out = run(r.path(), &src, "cache", &["--host"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let ev = events(&out);
    check_docker_lines(&log_lines(&ev), "host");
    let o = job_outputs(&ev, "dk");
    assert_eq!(o["result"], "ok-hey", "{o}");
    assert_eq!(o["uri"], "uri-ok", "{o}");
    // Second run: the image built from the Dockerfile is reused (content hash).
    let out = run(r.path(), &src, "cache", &["--host", "--offline"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(has_line(
        &log_lines(&events(&out)),
        "Using the cached action image"
    ));
    assert!(
        action_containers().is_empty(),
        "action containers left behind"
    );
}

#[test]
fn actions_in_container_jobs() {
    let _g = DOCKER_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_ready(&["gantry/busybox:latest", "gantry/debian:bookworm"]) {
        return;
    }
    // A service the Docker action reaches by name on the job's network.
    let svc = tempfile::tempdir().unwrap();
    std::fs::write(
        svc.path().join("Dockerfile"),
        "FROM gantry/busybox:latest\nRUN mkdir -p /www && echo from-service > /www/index.html\n\
         CMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n",
    )
    .unwrap();
    let st = Command::new("docker")
        .args(["build", "-q", "-t", "gantry-test/actions-websvc:latest"])
        .arg(svc.path())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "building the service image failed");
    let src = sources();
    let wf = format!(
        r#"on: push
jobs:
  in-busybox:
    runs-on: ubuntu-latest
    container: gantry/busybox:latest
    services:
      web:
        image: gantry-test/actions-websvc:latest
    outputs:
      js: ${{{{ steps.js.outputs.greeting }}}}
      comp: ${{{{ steps.comp.outputs.greeting }}}}
      result: ${{{{ steps.d.outputs.result }}}}
    steps:
      - id: js
        name: JS in busybox
        uses: acme/js-action@v1
        with:
          name: boxed
      - id: comp
        uses: acme/composite-action@main
        with:
          who: boxed
{docker}
      - uses: docker://gantry/busybox:latest
        with:
          entrypoint: /bin/sh
          args: -c "for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O- http://web:8080/ && exit 0; sleep 0.5; done; exit 1"
  in-debian:
    runs-on: debian-label
    outputs:
      js: ${{{{ steps.js.outputs.greeting }}}}
    steps:
      - id: js
        uses: acme/js-action@v1
        with:
          name: deb
"#,
        docker = docker_steps()
    );
    let r = repo_with_workflow(&wf);
    let out = run(
        r.path(),
        &src,
        "cache",
        &["-P", "debian-label=gantry/debian:bookworm"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let ev = events(&out);
    let lines = log_lines(&ev);
    let all = lines.join("\n");
    let o = job_outputs(&ev, "in-busybox");
    assert_eq!(o["js"], "hi boxed", "{o}");
    assert_eq!(o["comp"], "hello boxed v2", "{o}");
    assert_eq!(o["result"], "ok-hey", "{o}");
    assert_eq!(job_outputs(&ev, "in-debian")["js"], "hi deb");
    assert!(
        has_line(
            &lines,
            "JS-MAIN boxed octo=1 pre=P-boxed repo=acme/js-action ref=v1 cwd-is-workspace=true"
        ),
        "{all}"
    );
    assert!(
        has_line(&lines, "JS-POST boxed pre=P-boxed main=M-boxed"),
        "{all}"
    );
    assert!(
        has_line(&lines, "JS-POST deb pre=P-deb main=M-deb"),
        "{all}"
    );
    check_docker_lines(&lines, "container");
    assert!(has_line(&lines, "from-service"), "service by name: {all}");
    assert!(
        action_containers().is_empty(),
        "action containers left behind"
    );

    // Without any node on the host PATH the busybox job has none: a clear error.
    let r2 = repo_with_workflow(
        r#"on: push
jobs:
  no-node:
    runs-on: ubuntu-latest
    container: gantry/busybox:latest
    steps:
      - uses: acme/js-action@v1
"#,
    );
    let tpl = src.template();
    let cache = src.cache("cache").display().to_string();
    let out = Command::new(gantry_bin())
        .args([
            "run",
            "--json",
            "--offline",
            "--action-source",
            &tpl,
            "--action-cache",
            &cache,
        ])
        .current_dir(r2.path())
        .env("PATH", "/nonexistent")
        .env_remove("GANTRY_NODE_STATIC")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    let lines = log_lines(&events(&out));
    assert!(
        has_line(
            &lines,
            "JavaScript actions need node20 inside the job container"
        ) && has_line(&lines, "the image has no `node`"),
        "{}",
        lines.join("\n")
    );
}

#[test]
fn builtin_cache_saves_in_its_post_stage() {
    let src = sources();
    let r = repo_with_workflow(
        r#"on: push
jobs:
  cached:
    runs-on: ubuntu-latest
    outputs:
      hit: ${{ steps.c.outputs.cache-hit }}
    steps:
      - id: c
        name: Cache deps
        uses: actions/cache@v4
        with:
          path: deps
          key: deps-${{ hashFiles('.github/workflows/ci.yml') }}
      - run: |
          if [ -f deps/made ]; then echo "RESTORED $(cat deps/made)"; else mkdir -p deps && echo fresh > deps/made; fi
"#,
    );
    let out = run(r.path(), &src, "cache", &["--host"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let ev = events(&out);
    assert_eq!(job_outputs(&ev, "cached")["hit"], "false");
    let names = step_names(&ev, "cached");
    assert_eq!(
        names.last().map(String::as_str),
        Some("Post Cache deps"),
        "{names:?}"
    );
    let lines = log_lines(&ev);
    assert!(
        has_line(&lines, "Cache saved with key: deps-"),
        "{}",
        lines.join("\n")
    );
    // The next run restores what the post stage saved, and does not save again.
    let out = run(r.path(), &src, "cache", &["--host"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let ev = events(&out);
    assert_eq!(job_outputs(&ev, "cached")["hit"], "true");
    let lines = log_lines(&ev);
    assert!(has_line(&lines, "RESTORED fresh"), "{}", lines.join("\n"));
    assert!(has_line(
        &lines,
        "Cache hit occurred on the primary key, not saving cache."
    ));
}

#[test]
fn local_js_action_runs_without_pre_stage() {
    let src = sources();
    let wf = r#"on: push
jobs:
  local:
    runs-on: ubuntu-latest
    steps:
      - id: l
        name: Local JS
        uses: ./.github/actions/js
        with:
          name: local
      - name: Skipped JS
        if: false
        uses: ./.github/actions/js
"#;
    let r = git_repo_with(&[
        (".github/workflows/ci.yml", wf),
        (".github/actions/js/action.yml", JS_ACTION_YML),
        (".github/actions/js/pre.js", JS_PRE),
        (".github/actions/js/main.js", JS_MAIN),
        (".github/actions/js/post.js", JS_POST),
    ]);
    let out = run(r.path(), &src, "cache", &["--host", "--offline"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let ev = events(&out);
    let lines = log_lines(&ev);
    let all = lines.join("\n");
    assert!(
        !has_line(&lines, "JS-PRE"),
        "local actions have no pre stage: {all}"
    );
    assert!(
        has_line(&lines, "JS-MAIN local octo=1 pre=undefined repo=undefined"),
        "{all}"
    );
    assert!(
        has_line(
            &lines,
            "JS-POST local pre=undefined main=M-local cmd=C-local"
        ),
        "{all}"
    );
    // A step skipped by `if:` registers no post stage.
    let names = step_names(&ev, "local");
    assert_eq!(
        names,
        ["Local JS", "Skipped JS", "Post Local JS"],
        "{names:?}"
    );
}

#[test]
fn pre_and_post_stages_of_actions_in_a_parallel_group() {
    let src = sources();
    let wf = r#"name: ci
on: push
jobs:
  par:
    runs-on: ubuntu-latest
    steps:
      - run: echo FIRST-STEP
      - name: both
        parallel:
          - id: a
            uses: acme/js-action@v1
            with:
              name: alpha
          - id: b
            uses: acme/js-action@v1
            with:
              name: beta
      - run: echo "AFTER ${{ steps.a.outputs.greeting }} / ${{ steps.b.outputs.greeting }}"
"#;
    let r = repo_with_workflow(wf);
    let out = run(r.path(), &src, "cache", &["--host"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let ev = events(&out);
    let lines = log_lines(&ev);
    let all = lines.join("\n");
    // Each member's pre stage ran at set-up, before the job's first step, and its main
    // and post stages saw the state it saved.
    let first_step = position(&lines, "FIRST-STEP");
    assert!(position(&lines, "JS-PRE alpha") < first_step, "{all}");
    assert!(position(&lines, "JS-PRE beta") < first_step, "{all}");
    assert!(
        has_line(&lines, "JS-MAIN alpha octo=1 pre=P-alpha"),
        "{all}"
    );
    assert!(has_line(&lines, "JS-MAIN beta octo=1 pre=P-beta"), "{all}");
    assert!(
        has_line(&lines, "JS-POST alpha pre=P-alpha main=M-alpha cmd=C-alpha"),
        "{all}"
    );
    assert!(
        has_line(&lines, "JS-POST beta pre=P-beta main=M-beta cmd=C-beta"),
        "{all}"
    );
    assert!(has_line(&lines, "AFTER hi alpha / hi beta"), "{all}");
    // One pre and one post stage per member, no more.
    let names = step_names(&ev, "par");
    assert_eq!(
        names.iter().filter(|n| n.starts_with("Pre ")).count(),
        2,
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| n.starts_with("Post ")).count(),
        2,
        "{names:?}"
    );
}
