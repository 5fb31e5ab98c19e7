//! Hostile workflows that try to make Gantry's own file operations (artifacts, cache,
//! checkout, hashFiles, file commands, local actions, workflow files) reach outside the
//! workspace, from a host job and from a container job (`gantry/busybox:latest`; the
//! built-ins run on the host against the bind-mounted workspace). Every attempt must fail
//! with a clear error, and a sentinel directory outside the repository must keep exactly
//! its files and contents.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gantry_tests::*;

/// The secret is written in KEY=VALUE form so that a GITHUB_ENV link to it would set it.
const SECRET_VALUE: &str = "HOST-ONLY-7f3a9c41";
const VICTIM: &str = "victim untouched\n";
const BUSYBOX: &str = "gantry/busybox:latest";

/// A directory outside the repository: `secret.txt`, `victim/victim.txt`, and a composite
/// action in `action/` that would create `pwned` if it ever ran.
struct Sentinel {
    dir: tempfile::TempDir,
}

impl Sentinel {
    fn new() -> Sentinel {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(p.join("secret.txt"), format!("HOST_ONLY={SECRET_VALUE}\n")).unwrap();
        std::fs::create_dir_all(p.join("victim")).unwrap();
        std::fs::write(p.join("victim/victim.txt"), VICTIM).unwrap();
        std::fs::create_dir_all(p.join("action")).unwrap();
        std::fs::write(
            p.join("action/action.yml"),
            format!(
                "name: outside\nruns:\n  using: composite\n  steps:\n    - run: touch '{}/pwned'\n      shell: sh\n",
                p.display()
            ),
        )
        .unwrap();
        Sentinel { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Every file and directory of the sentinel with the content of the files.
    fn snapshot(&self) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![self.path().to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let rel = p.strip_prefix(self.path()).unwrap().to_path_buf();
                let meta = std::fs::symlink_metadata(&p).unwrap();
                if meta.is_dir() {
                    stack.push(p);
                    out.insert(rel, None);
                } else {
                    out.insert(rel, Some(std::fs::read(&p).unwrap()));
                }
            }
        }
        out
    }

    fn assert_untouched(&self, before: &BTreeMap<PathBuf, Option<Vec<u8>>>) {
        assert_eq!(
            &self.snapshot(),
            before,
            "the sentinel outside the repository changed"
        );
    }
}

/// Per job: its result and its log lines.
struct Outcome {
    results: BTreeMap<String, String>,
    logs: BTreeMap<String, Vec<String>>,
    all: String,
}

impl Outcome {
    fn of(out: &std::process::Output) -> Outcome {
        let mut results = BTreeMap::new();
        let mut logs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(e) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let job = e["job"].as_str().unwrap_or_default().to_string();
            match e["type"].as_str() {
                Some("job_finished") => {
                    results.insert(job, e["result"].as_str().unwrap_or_default().to_string());
                }
                Some("log") => logs
                    .entry(job)
                    .or_default()
                    .push(e["line"].as_str().unwrap_or_default().to_string()),
                _ => {}
            }
        }
        Outcome {
            results,
            logs,
            all: text(out),
        }
    }

    fn log(&self, job: &str) -> String {
        self.logs.get(job).map(|l| l.join("\n")).unwrap_or_default()
    }

    /// `job` ended with `result` and its log says `needle`.
    fn expect(&self, job: &str, result: &str, needle: &str) {
        assert_eq!(
            self.results.get(job).map(String::as_str),
            Some(result),
            "job {job}: {}",
            self.log(job)
        );
        assert!(
            self.log(job).contains(needle),
            "job {job} should log {needle:?}:\n{}",
            self.log(job)
        );
    }
}

/// The attempts, each as a job body (steps) using `$HOST_DIR` for the sentinel; `{m}` is
/// replaced by the mode (`host` or `ctr`) so that artifact names and cache keys differ.
const ATTEMPTS: &[(&str, &str)] = &[
    (
        "upload-link",
        r#"      - run: mkdir out && echo fine > out/ok.txt && ln -s "$HOST_DIR/secret.txt" out/leak.txt
      - uses: actions/upload-artifact@v4
        with:
          name: leak-{m}
          path: out
"#,
    ),
    (
        "upload-through-dir-link",
        r#"      - run: ln -s "$HOST_DIR" hostdir
      - uses: actions/upload-artifact@v4
        with:
          name: dirleak-{m}
          path: hostdir/secret.txt
"#,
    ),
    (
        "cache-save-link",
        r#"      - run: mkdir c && echo fine > c/ok.txt && ln -s "$HOST_DIR/secret.txt" c/leak.txt
      - uses: actions/cache/save@v4
        with:
          key: leak-{m}
          path: c
"#,
    ),
    (
        "download-dotdot",
        r#"      - run: echo art > a.txt
      - uses: actions/upload-artifact@v4
        with:
          name: dd-{m}
          path: a.txt
      - uses: actions/download-artifact@v4
        with:
          name: dd-{m}
          path: ../..
"#,
    ),
    (
        "download-through-dir-link",
        r#"      - run: echo art > b.txt && ln -s "$HOST_DIR/victim" dl
      - uses: actions/upload-artifact@v4
        with:
          name: dl-{m}
          path: b.txt
      - uses: actions/download-artifact@v4
        with:
          name: dl-{m}
          path: dl
"#,
    ),
    (
        "download-over-file-link",
        r#"      - run: echo art > victim.txt
      - uses: actions/upload-artifact@v4
        with:
          name: fl-{m}
          path: victim.txt
      - run: rm victim.txt && ln -s "$HOST_DIR/victim/victim.txt" victim.txt
      - uses: actions/download-artifact@v4
        with:
          name: fl-{m}
          path: .
      - run: test ! -L victim.txt && grep -q art victim.txt && echo REPLACED-THE-LINK
"#,
    ),
    (
        "cache-restore-through-link",
        r#"      - run: mkdir cdir && echo cached > cdir/victim.txt
      - uses: actions/cache/save@v4
        with:
          key: r-{m}
          path: cdir
      - run: rm -r cdir && ln -s "$HOST_DIR/victim" cdir
      - uses: actions/cache/restore@v4
        with:
          key: r-{m}
          path: cdir
"#,
    ),
    (
        "hashfiles-link",
        r#"      - run: mkdir h && ln -s "$HOST_DIR/secret.txt" h/leak.lock && ln -s "$HOST_DIR" h/dir
      - run: test -z "${{ hashFiles('h/**') }}" && echo HASH-EMPTY
"#,
    ),
    (
        "env-file-link",
        r#"      - run: ln -sf "$HOST_DIR/secret.txt" "$GITHUB_ENV"
      - if: always()
        run: echo "seen=[${HOST_ONLY:-}]"
"#,
    ),
    (
        "version-file-link",
        r#"      - run: ln -s "$HOST_DIR/secret.txt" .nvmrc
      - uses: actions/setup-node@v4
        with:
          node-version-file: .nvmrc
"#,
    ),
    (
        "checkout-dotdot",
        r#"      - uses: actions/checkout@v4
        with:
          path: ../../co
"#,
    ),
];

fn jobs_yaml(sentinel: &Path, container: bool, attempts: &[(&str, &str)]) -> String {
    let (mode, extra) = if container {
        ("ctr", format!("    container: {BUSYBOX}\n"))
    } else {
        ("host", String::new())
    };
    let mut out = String::new();
    for (name, steps) in attempts {
        out.push_str(&format!(
            "  {mode}-{name}:\n    runs-on: ubuntu-latest\n{extra}    env:\n      HOST_DIR: {}\n    steps:\n{}",
            sentinel.display(),
            steps.replace("{m}", mode)
        ));
    }
    out
}

fn hostile_repo(files: &[(&str, &str)], links: &[(&str, &Path)]) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    for (p, c) in files {
        let f = t.path().join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, c).unwrap();
    }
    for (p, target) in links {
        let f = t.path().join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, f).unwrap();
    }
    commit_all(t.path());
    t
}

/// Whether any file under `dir` holds the secret value.
fn holds_secret(dir: &Path) -> Vec<PathBuf> {
    all_files(dir)
        .into_iter()
        .filter(|f| {
            std::fs::read(f).is_ok_and(|b| {
                b.windows(SECRET_VALUE.len())
                    .any(|w| w == SECRET_VALUE.as_bytes())
            })
        })
        .collect()
}

fn modes() -> Vec<bool> {
    if docker_ready(&[BUSYBOX]) {
        vec![false, true]
    } else {
        vec![false]
    }
}

#[test]
fn builtins_refuse_every_escape_from_host_and_container_jobs() {
    let sentinel = Sentinel::new();
    let before = sentinel.snapshot();
    let modes = modes();
    let mut wf = String::from("on: push\njobs:\n");
    for &c in &modes {
        wf.push_str(&jobs_yaml(sentinel.path(), c, ATTEMPTS));
    }
    let repo = hostile_repo(&[(".github/workflows/ci.yml", &wf)], &[]);
    let out = gantry(repo.path(), &["run", "-P", "ubuntu-latest=host", "--json"]);
    let o = Outcome::of(&out);
    for &c in &modes {
        let m = if c { "ctr" } else { "host" };
        let job = |n: &str| format!("{m}-{n}");
        let outside = "symlink leading outside the workspace; refused";
        o.expect(
            &job("upload-link"),
            "failure",
            &format!("'out/leak.txt' is or passes through a {outside}"),
        );
        o.expect(&job("upload-through-dir-link"), "failure", outside);
        // A cache save failure is a warning, as on GitHub; no entry is written.
        o.expect(
            &job("cache-save-link"),
            "success",
            &format!("'c/leak.txt' is or passes through a {outside}"),
        );
        o.expect(
            &job("download-dotdot"),
            "failure",
            "input 'path': '../..' leads outside the workspace; refused",
        );
        o.expect(
            &job("download-through-dir-link"),
            "failure",
            &format!("'dl' is or passes through a {outside}"),
        );
        o.expect(
            &job("download-over-file-link"),
            "success",
            "REPLACED-THE-LINK",
        );
        o.expect(
            &job("cache-restore-through-link"),
            "failure",
            &format!("'cdir' is or passes through a {outside}"),
        );
        o.expect(&job("hashfiles-link"), "success", "HASH-EMPTY");
        o.expect(
            &job("env-file-link"),
            "failure",
            "outside the job's temp directory; refused",
        );
        o.expect(&job("env-file-link"), "failure", "seen=[]");
        o.expect(
            &job("version-file-link"),
            "failure",
            &format!("input 'node-version-file': '.nvmrc' is or passes through a {outside}"),
        );
        o.expect(
            &job("checkout-dotdot"),
            "failure",
            "input 'path': '../../co' leads outside the workspace; refused",
        );
    }
    assert!(
        !o.all.contains(SECRET_VALUE),
        "the secret reached the output"
    );
    let leaked = holds_secret(&repo.path().join(".gantry"));
    assert!(leaked.is_empty(), "the secret was copied to {leaked:?}");
    sentinel.assert_untouched(&before);
}

#[test]
fn local_actions_outside_the_repository_are_refused() {
    let sentinel = Sentinel::new();
    let before = sentinel.snapshot();
    let modes = modes();
    let attempts: &[(&str, &str)] = &[
        ("action-dir-link", "      - uses: ./evil-action\n"),
        ("action-yml-link", "      - uses: ./act\n"),
    ];
    let mut wf = String::from("on: push\njobs:\n");
    for &c in &modes {
        wf.push_str(&jobs_yaml(sentinel.path(), c, attempts));
    }
    let action_yml = sentinel.path().join("action/action.yml");
    let repo = hostile_repo(
        &[(".github/workflows/ci.yml", &wf), ("act/README", "x")],
        &[
            ("evil-action", &sentinel.path().join("action")),
            ("act/action.yml", &action_yml),
        ],
    );
    let out = gantry(repo.path(), &["run", "-P", "ubuntu-latest=host", "--json"]);
    let o = Outcome::of(&out);
    for &c in &modes {
        let m = if c { "ctr" } else { "host" };
        o.expect(
            &format!("{m}-action-dir-link"),
            "failure",
            "'evil-action' is or passes through a symlink leading outside the repository; refused",
        );
        o.expect(
            &format!("{m}-action-yml-link"),
            "failure",
            "'act/action.yml' is or passes through a symlink leading outside the repository; refused",
        );
    }
    assert!(
        !sentinel.path().join("pwned").exists(),
        "the outside action ran"
    );
    sentinel.assert_untouched(&before);

    // `..` in a local action path is refused before anything runs.
    let wf = "on: push\njobs:\n  up:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: ./../../outside\n";
    let repo = hostile_repo(&[(".github/workflows/ci.yml", wf)], &[]);
    let out = gantry(repo.path(), &["run", "-P", "ubuntu-latest=host", "--json"]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("'..' is not allowed in a local action path"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_workflow_file_linking_outside_the_repository_is_refused_unread() {
    let sentinel = Sentinel::new();
    let secret = sentinel.path().join("secret.txt");
    let repo = hostile_repo(
        &[(
            ".github/workflows/ok.yml",
            "on: push\njobs:\n  ok:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ok\n",
        )],
        &[(".github/workflows/evil.yml", &secret)],
    );
    let out = gantry(repo.path(), &["run", "-P", "ubuntu-latest=host", "--json"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("workflow file refused: '.github/workflows/evil.yml' is or passes through a symlink leading outside the repository; refused"),
        "{t}"
    );
    assert!(
        !t.contains(SECRET_VALUE),
        "the link's target was echoed: {t}"
    );
    assert!(
        !t.contains(&secret.display().to_string()),
        "the link's target was named: {t}"
    );
}
