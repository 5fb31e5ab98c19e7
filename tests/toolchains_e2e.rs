//! `actions/setup-python` on the host with a version manager's layout (a fake pyenv root: a
//! shim script in `shims/` and a `versions/` directory whose entries link to the real
//! python3): the job's `python` is a venv of the requested interpreter, each matrix leg has
//! its own venv, and `pip install` of a local wheel lands in the job's venv, never in the
//! interpreter's site-packages. When nothing installed fits: `--offline` fails naming the
//! versions found and what was tried; otherwise the real action (a fixture
//! `actions/setup-python@v5` in a local action source) runs instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use gantry_tests::registry::registry_with_htpasswd;
use gantry_tests::*;

#[path = "actions_fixtures.rs"]
#[allow(dead_code)]
mod fixtures;

/// The real interpreter behind `python3` (through any shim) and its version.
fn real_python() -> Option<(PathBuf, String)> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, sys; print(os.path.realpath(sys.executable)); print('%d.%d.%d' % sys.version_info[:3])",
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut l = text.lines();
    Some((PathBuf::from(l.next()?), l.next()?.to_string()))
}

/// `<root>/shims/{python,python3}` (scripts running the real python3 whatever was asked, as
/// a global pyenv version does), `<root>/versions/<ver>/bin/python3` → the real python3, and
/// `<root>/versions/2.7.99/bin/python3` (a script that only answers `--version`).
fn fake_pyenv(root: &Path, real: &Path, ver: &str) {
    let shims = root.join("shims");
    std::fs::create_dir_all(&shims).unwrap();
    for name in ["python", "python3"] {
        let p = shims.join(name);
        std::fs::write(&p, format!("#!/bin/sh\nexec '{}' \"$@\"\n", real.display())).unwrap();
        chmod_x(&p);
    }
    let good = root.join("versions").join(ver).join("bin");
    std::fs::create_dir_all(&good).unwrap();
    std::os::unix::fs::symlink(real, good.join("python3")).unwrap();
    let old = root.join("versions/2.7.99/bin");
    std::fs::create_dir_all(&old).unwrap();
    let p = old.join("python3");
    std::fs::write(&p, "#!/bin/sh\necho 'Python 2.7.99'\n").unwrap();
    chmod_x(&p);
}

fn chmod_x(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `gantry run --host --json` with PATH = the fake shims + the system directories, HOME and
/// the action cache in temp dirs (so the host's own version managers are not seen).
fn run(dir: &Path, root: &Path, home: &Path, extra: &[&str]) -> Output {
    let path = format!("{}/shims:/usr/local/bin:/usr/bin:/bin", root.display());
    let cache = home.join("action-cache").display().to_string();
    let mut args = vec!["run", "--host", "--json", "--action-cache", &cache];
    args.extend_from_slice(extra);
    Command::new(gantry_bin())
        .args(&args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .env_remove("GANTRY_LOG")
        .env("PATH", path)
        .env("PYENV_ROOT", root)
        .env("HOME", home)
        .output()
        .expect("running gantry")
}

/// Log lines per job key, from `--json` events.
fn logs(out: &Output) -> Vec<(String, String)> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["type"] == "log")
        .map(|e| {
            (
                e["job"].as_str().unwrap_or_default().to_string(),
                e["line"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn value(lines: &[(String, String)], job: &str, key: &str) -> String {
    lines
        .iter()
        .filter(|(j, _)| j == job)
        .find_map(|(_, l)| l.split_once(key).map(|(_, v)| v.trim().to_string()))
        .unwrap_or_else(|| panic!("no '{key}' in the log of {job}: {lines:#?}"))
}

const WHEEL_SCRIPT: &str = r#"import zipfile
files = {
    "tinypkg_gantry/__init__.py": "X = 1\n",
    "tinypkg_gantry-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: tinypkg_gantry\nVersion: 0.1\n",
    "tinypkg_gantry-0.1.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = "".join(f"{n},,\n" for n in files) + "tinypkg_gantry-0.1.dist-info/RECORD,,\n"
with zipfile.ZipFile("tinypkg_gantry-0.1-py3-none-any.whl", "w") as z:
    for n, t in files.items():
        z.writestr(n, t)
    z.writestr("tinypkg_gantry-0.1.dist-info/RECORD", record)
"#;

fn workflow(spec: &str) -> String {
    let wheel = WHEEL_SCRIPT
        .lines()
        .map(|l| format!("          {l}\n"))
        .collect::<String>();
    format!(
        r#"on: push
jobs:
  py:
    runs-on: ubuntu-latest
    strategy:
      matrix:
        leg: [a, b]
    steps:
      - id: sp
        uses: actions/setup-python@v5
        with:
          python-version: '{spec}'
      - run: |
          echo "VERSION=$(python --version 2>&1)"
          python -c 'import sys; print("PREFIX=" + sys.prefix); print("BASE=" + sys.base_prefix)'
          echo "PYPATH=${{{{ steps.sp.outputs.python-path }}}}"
          echo "VENV=$VIRTUAL_ENV"
          python - <<'EOF'
{wheel}          EOF
          pip install --no-index --no-deps --disable-pip-version-check -q ./tinypkg_gantry-0.1-py3-none-any.whl
          python -c 'import tinypkg_gantry; print("IMPORTED=" + tinypkg_gantry.__file__)'
"#
    )
}

#[test]
fn setup_python_resolves_shims_and_gives_each_job_its_own_venv() {
    let Some((real, ver)) = real_python() else {
        eprintln!("SKIP: no python3 on this machine");
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let (root, home) = (t.path().join("pyenv"), t.path().join("home"));
    std::fs::create_dir_all(&home).unwrap();
    fake_pyenv(&root, &real, &ver);
    let minor: String = ver.split('.').take(2).collect::<Vec<_>>().join(".");
    let repo = git_repo_with(&[(".github/workflows/ci.yml", &workflow(&minor))]);
    let out = run(repo.path(), &root, &home, &[]);
    let lines = logs(&out);
    assert!(out.status.success(), "{}", text(&out));
    let want_bin = root.join("versions").join(&ver).join("bin/python3");
    let all: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
    assert!(
        all.iter()
            .any(|l| l.contains(&format!("Using python {ver} from {}", want_bin.display()))),
        "the versions directory's interpreter, not the shim: {all:#?}"
    );
    let mut prefixes = Vec::new();
    // Matrix legs are keyed by position: py-1 is leg a, py-2 is leg b.
    for leg in ["py-1", "py-2"] {
        let prefix = value(&lines, leg, "PREFIX=");
        let base = value(&lines, leg, "BASE=");
        assert_eq!(value(&lines, leg, "VERSION="), format!("Python {ver}"));
        assert!(prefix.contains("_setup-python/venv-"), "{prefix}");
        assert_eq!(value(&lines, leg, "VENV="), prefix);
        assert_eq!(
            value(&lines, leg, "PYPATH="),
            format!("{prefix}/bin/python")
        );
        assert_ne!(prefix, base, "python is a venv, not the interpreter itself");
        let imported = value(&lines, leg, "IMPORTED=");
        assert!(
            imported.starts_with(&prefix),
            "{imported} not under {prefix}"
        );
        prefixes.push(prefix);
    }
    assert_ne!(prefixes[0], prefixes[1], "matrix legs share one venv");
    // The interpreter's own site-packages did not get the package.
    let host = Command::new(&real)
        .args(["-c", "import tinypkg_gantry"])
        .env_remove("PYTHONPATH")
        .output()
        .unwrap();
    assert!(
        !host.status.success(),
        "pip install reached the host's python"
    );
}

#[test]
fn setup_python_without_a_match_fails_offline_and_falls_back_to_the_real_action_online() {
    let Some((real, ver)) = real_python() else {
        eprintln!("SKIP: no python3 on this machine");
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let (root, home) = (t.path().join("pyenv"), t.path().join("home"));
    std::fs::create_dir_all(&home).unwrap();
    fake_pyenv(&root, &real, &ver);
    let wf = "on: push\njobs:\n  py:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/setup-python@v5\n        with:\n          python-version: '3.99'\n      - run: echo AFTER-SETUP-$((40+2))\n";
    let repo = git_repo_with(&[(".github/workflows/ci.yml", wf)]);

    let out = run(repo.path(), &root, &home, &["--offline"]);
    assert!(!out.status.success(), "{}", text(&out));
    let all = text(&out);
    for needle in [
        "version '3.99'",
        "2.7.99",
        &ver,
        "offline",
        "versions directories of",
    ] {
        assert!(all.contains(needle), "'{needle}' missing: {all}");
    }
    assert!(!all.contains("AFTER-SETUP-42"), "{all}");

    // Online: the real action from the action source runs instead.
    let src = tempfile::tempdir().unwrap();
    let bare = fixtures::bare(src.path(), "actions", "setup-python");
    let c = fixtures::commit(
        &bare,
        &[(
            "action.yml",
            "name: real setup-python\ninputs:\n  python-version:\n    default: ''\nruns:\n  using: composite\n  steps:\n    - run: echo \"REAL-SETUP-PYTHON ${{ inputs.python-version }}\"\n      shell: sh\n",
        )],
        None,
    );
    fixtures::tag(&bare, "v5", c, false);
    let tpl = format!("file://{}/src/{{owner}}/{{repo}}.git", src.path().display());
    let out = run(repo.path(), &root, &home, &["--action-source", &tpl]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("falling back to the real action"), "{all}");
    assert!(all.contains("REAL-SETUP-PYTHON 3.99"), "{all}");
    assert!(all.contains("AFTER-SETUP-42"), "{all}");
}

/// Docker tests skip loudly without a daemon (fail under `GANTRY_REQUIRE_DOCKER=1`).
fn docker_or_skip(what: &str) -> bool {
    if docker_available() && image_exists("gantry/debian:bookworm") {
        return true;
    }
    assert!(
        !docker_required(),
        "{what}: Docker or gantry/debian:bookworm missing"
    );
    eprintln!("SKIP {what}: no Docker daemon or no gantry/debian:bookworm");
    false
}

#[test]
fn python_job_in_the_debian_image_makes_a_venv_and_installs_a_local_wheel_offline() {
    if !docker_or_skip("python in gantry/debian") {
        return;
    }
    let wheel = WHEEL_SCRIPT
        .lines()
        .map(|l| format!("          {l}\n"))
        .collect::<String>();
    let wf = format!(
        r#"on: push
jobs:
  py:
    runs-on: ubuntu-latest
    container: gantry/debian:bookworm
    steps:
      - run: |
          python3 -m venv /tmp/venv
          python3 - <<'EOF'
{wheel}          EOF
          /tmp/venv/bin/pip install --no-index --no-deps --disable-pip-version-check -q ./tinypkg_gantry-0.1-py3-none-any.whl
          /tmp/venv/bin/python -c 'import tinypkg_gantry; print("IMPORTED=" + tinypkg_gantry.__file__)'
"#
    );
    let repo = git_repo_with(&[(".github/workflows/ci.yml", &wf)]);
    let out = gantry(repo.path(), &["run", "--offline"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("IMPORTED=/tmp/venv/lib/python3"),
        "the wheel is not in the venv: {all}"
    );
}

#[test]
fn a_broken_dockerfile_shows_its_error_line_in_the_output_and_the_run_record() {
    if !docker_or_skip("broken Dockerfile") || !image_exists("gantry/busybox:latest") {
        return;
    }
    let wf = "on: push\njobs:\n  img:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n      - uses: docker/build-push-action@v6\n        with:\n          context: .\n          tags: gantry-test/broken:1\n";
    let repo = git_repo_with(&[
        (".github/workflows/ci.yml", wf),
        (
            "Dockerfile",
            "FROM gantry/busybox:latest\nRUN echo BUILD-LINE-BEFORE-ERROR\nRUN sh -c 'echo broken-step; exit 7'\n",
        ),
    ]);
    let out = gantry(repo.path(), &["run", "--host"]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    let error_line = "returned a non-zero code: 7";
    assert!(
        all.contains(error_line),
        "no error line in the output: {all}"
    );
    assert!(
        all.contains("BUILD-LINE-BEFORE-ERROR"),
        "no build log: {all}"
    );
    let logs: Vec<PathBuf> = all_files(&repo.path().join(".gantry/runs"))
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(p)
                .is_ok_and(|t| t.contains(error_line) && t.contains("BUILD-LINE-BEFORE-ERROR"))
        })
        .collect();
    assert!(!logs.is_empty(), "the run record lacks the build log");
}

#[test]
fn login_action_checks_the_credentials_with_the_registry() {
    if !docker_or_skip("login-action") {
        return;
    }
    let (user, password) = ("ci-user", "Pw-9f3b2c7d1e");
    let Some(reg) = registry_with_htpasswd(user, password) else {
        return;
    };
    let wf = format!(
        "on: push\njobs:\n  login:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: docker/login-action@v3\n        with:\n          registry: 127.0.0.1:{}\n          username: {user}\n          password: ${{{{ secrets.REG_PASSWORD }}}}\n      - run: echo AFTER-LOGIN\n",
        reg.port
    );
    let repo = git_repo_with(&[(".github/workflows/ci.yml", &wf)]);
    let good = gantry(
        repo.path(),
        &["run", "--host", "-s", &format!("REG_PASSWORD={password}")],
    );
    let all = text(&good);
    assert!(good.status.success(), "{all}");
    assert!(all.contains("Login Succeeded (Basic auth"), "{all}");
    assert!(all.contains("AFTER-LOGIN"), "{all}");
    assert!(!all.contains(password), "the password leaked: {all}");

    let wrong = "Wrong-71c2aa";
    let bad = gantry(
        repo.path(),
        &["run", "--host", "-s", &format!("REG_PASSWORD={wrong}")],
    );
    let all = text(&bad);
    assert!(!bad.status.success(), "{all}");
    assert!(
        all.contains("refused the credentials of 'ci-user'") && all.contains("401"),
        "{all}"
    );
    assert!(!all.contains("AFTER-LOGIN"), "{all}");
    assert!(!all.contains(wrong), "the password leaked: {all}");
    for f in all_files(&repo.path().join(".gantry")) {
        let t = std::fs::read(&f).unwrap_or_default();
        let t = String::from_utf8_lossy(&t);
        assert!(
            !t.contains(password) && !t.contains(wrong),
            "{} holds a password",
            f.display()
        );
    }

    // --offline refuses a registry that is not on this machine, before any request.
    let wf = "on: push\njobs:\n  login:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: docker/login-action@v3\n        with:\n          registry: ghcr.io\n          username: someone\n          password: x-not-used\n";
    let repo = git_repo_with(&[(".github/workflows/ci.yml", wf)]);
    let off = gantry(repo.path(), &["run", "--host", "--offline"]);
    let all = text(&off);
    assert!(!off.status.success(), "{all}");
    assert!(all.contains("offline: not logging in to ghcr.io"), "{all}");
}
