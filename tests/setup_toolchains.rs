//! `actions/setup-node`, `setup-java` and `setup-go` on the host (`gantry run --host`, HOME
//! a temp dir): each job has its own npm prefix and GOPATH, so `npm install -g` and
//! `go install` never land in the host's prefix or `~/go`; setup-java finds the installed
//! JDK and sets `JAVA_HOME`, and fails offline naming the versions found when none fits.
//!
//! Node and Java are the machine's real toolchains (skipped loudly when absent). No Go
//! toolchain is installed on the test machines, so the Go test puts a stand-in `go` on PATH
//! that answers `go version`/`go env` and installs as `go install` does (into `$GOBIN`, else
//! `$GOPATH/bin`, else `$HOME/go/bin`); what is tested is the environment setup-go gives
//! the job, which decides where the real `go install` writes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use gantry_tests::*;

fn chmod_x(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `gantry run --host` with PATH = `extra_path` + the system directories and HOME = `home`.
fn run_host(dir: &Path, home: &Path, extra_path: Option<&Path>, args: &[&str]) -> Output {
    let mut path = String::new();
    if let Some(p) = extra_path {
        path = format!("{}:", p.display());
    }
    path.push_str("/usr/local/bin:/usr/bin:/bin");
    let cache = home.join("action-cache").display().to_string();
    let mut all = vec!["run", "--host", "--action-cache", &cache];
    all.extend_from_slice(args);
    Command::new(gantry_bin())
        .args(&all)
        .current_dir(dir)
        .stdin(Stdio::null())
        .env_remove("GANTRY_LOG")
        .env_remove("GOPATH")
        .env_remove("GOBIN")
        .env_remove("GOMODCACHE")
        .env_remove("NPM_CONFIG_PREFIX")
        .env_remove("JAVA_HOME")
        .env("PATH", path)
        .env("HOME", home)
        .output()
        .expect("running gantry")
}

/// The value after `KEY=` on a log line.
fn value_of(all: &str, key: &str) -> Option<String> {
    all.lines().find_map(|l| {
        l.split_once(&format!("{key}="))
            .map(|(_, v)| v.trim().to_string())
    })
}

fn has(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn setup_node_npm_install_g_lands_in_the_jobs_prefix() {
    if !has("node") || !has("npm") {
        eprintln!("SKIPPED: setup-node: no node/npm on this machine");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    // The host's global prefix as npm sees it with this HOME (`/usr` for Debian's node).
    let host_prefix = Command::new("npm")
        .args(["prefix", "-g"])
        .env("HOME", home.path())
        .env_remove("NPM_CONFIG_PREFIX")
        .output()
        .unwrap();
    let host_prefix = PathBuf::from(String::from_utf8_lossy(&host_prefix.stdout).trim());
    let pkg = "gantry-hello-tool";
    let installed_on_host = host_prefix.join("lib/node_modules").join(pkg);
    assert!(!installed_on_host.exists(), "{pkg} already on the host");

    // A local package with a `bin`, packed to a tarball (no registry needed).
    let src = tempfile::tempdir().unwrap();
    std::fs::write(
        src.path().join("package.json"),
        format!(r#"{{"name":"{pkg}","version":"1.0.0","bin":{{"gantry-hello":"cli.js"}}}}"#),
    )
    .unwrap();
    std::fs::write(
        src.path().join("cli.js"),
        "#!/usr/bin/env node\nconsole.log('HELLO-FROM-GLOBAL-BIN ' + __filename);\n",
    )
    .unwrap();
    let wf = "on: push\njobs:\n  npm:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n      - uses: actions/setup-node@v4\n        with:\n          node-version: '*'\n      - run: |\n          npm install -g --offline --no-audit --no-fund ./tool.tgz\n          echo NPM_PREFIX=$(npm prefix -g)\n          gantry-hello\n";
    let tree = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tree.path().join(".github/workflows")).unwrap();
    std::fs::write(tree.path().join(".github/workflows/ci.yml"), wf).unwrap();
    let packed = Command::new("npm")
        .args(["pack", "--pack-destination"])
        .arg(tree.path())
        .current_dir(src.path())
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert!(packed.status.success(), "{}", text(&packed));
    std::fs::rename(
        tree.path().join(format!("{pkg}-1.0.0.tgz")),
        tree.path().join("tool.tgz"),
    )
    .unwrap();
    let repo = git_repo_from(tree.path());

    let out = run_host(repo.path(), home.path(), None, &["--offline"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let prefix = value_of(&all, "NPM_PREFIX").expect("no NPM_PREFIX line");
    assert!(
        prefix.ends_with("_setup-node/npm-prefix"),
        "npm's global prefix is not the job's: {prefix}\n{all}"
    );
    let hello = all
        .lines()
        .find(|l| l.contains("HELLO-FROM-GLOBAL-BIN"))
        .unwrap_or_else(|| panic!("the installed bin did not run: {all}"));
    assert!(
        hello.contains(&format!("{prefix}/lib/node_modules/{pkg}")),
        "{hello}"
    );
    assert!(
        !installed_on_host.exists(),
        "npm install -g wrote into the host's prefix {}",
        host_prefix.display()
    );
}

#[test]
fn setup_java_finds_the_installed_jdk_and_names_the_versions_it_found_otherwise() {
    let Some(jdk17) = std::fs::read_dir("/usr/lib/jvm").ok().and_then(|rd| {
        rd.flatten().map(|e| e.path()).find(|p| {
            Command::new(p.join("bin/java"))
                .arg("-version")
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stderr).contains("version \"17"))
        })
    }) else {
        eprintln!("SKIPPED: setup-java: no JDK 17 under /usr/lib/jvm");
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let wf = "on: push\njobs:\n  java:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/setup-java@v4\n        id: java\n        with:\n          distribution: temurin\n          java-version: 17\n      - run: |\n          echo JAVA_HOME_IS=$JAVA_HOME\n          echo OUTPUT_VERSION=${{ steps.java.outputs.version }}\n          \"$JAVA_HOME/bin/java\" -version 2>&1 | head -1 | sed 's/^/RUNS=/'\n          java -version 2>&1 | head -1 | sed 's/^/ON_PATH=/'\n";
    let repo = git_repo_with(&[(".github/workflows/ci.yml", wf)]);
    let out = run_host(repo.path(), home.path(), None, &["--offline"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let java_home = value_of(&all, "JAVA_HOME_IS").expect("no JAVA_HOME line");
    assert!(
        Path::new(&java_home).join("bin/java").is_file(),
        "JAVA_HOME is no JDK: {java_home}"
    );
    assert_eq!(
        std::fs::canonicalize(&java_home).unwrap(),
        std::fs::canonicalize(&jdk17).unwrap(),
        "{all}"
    );
    assert!(
        value_of(&all, "OUTPUT_VERSION").is_some_and(|v| v.starts_with("17.")),
        "{all}"
    );
    assert!(
        value_of(&all, "RUNS").is_some_and(|v| v.contains("version \"17")),
        "{all}"
    );
    assert!(
        value_of(&all, "ON_PATH").is_some_and(|v| v.contains("version \"17")),
        "java on PATH is not the chosen one: {all}"
    );

    // Java 8 is not installed: offline, the failure names what was found.
    let wf = "on: push\njobs:\n  java:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/setup-java@v4\n        with:\n          distribution: temurin\n          java-version: 8\n      - run: echo AFTER-SETUP\n";
    let repo = git_repo_with(&[(".github/workflows/ci.yml", wf)]);
    let out = run_host(repo.path(), home.path(), None, &["--offline"]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(!all.contains("AFTER-SETUP"), "{all}");
    assert!(
        all.contains("no java matching version '8'"),
        "no failure naming the version: {all}"
    );
    assert!(
        all.contains(&format!("{}/bin/java (17.", jdk17.display())),
        "the JDK 17 found is not named: {all}"
    );
    assert!(all.contains("offline"), "{all}");
}

/// A stand-in `go` (see the module's comment) in `dir`, reporting `go1.22.5`.
fn stand_in_go(dir: &Path) {
    let p = dir.join("go");
    std::fs::write(
        &p,
        r#"#!/bin/sh
case "$1" in
  version) echo "go version go1.22.5 linux/amd64" ;;
  env) [ "$2" = GOMODCACHE ] && echo "${GOMODCACHE:-${GOPATH:-$HOME/go}/pkg/mod}" ;;
  install)
    bin="${GOBIN:-${GOPATH:-$HOME/go}/bin}"
    mkdir -p "$bin"
    printf '#!/bin/sh\necho HELLO-FROM-GO-INSTALL "$0"\n' > "$bin/hello"
    chmod 0755 "$bin/hello" ;;
  *) echo "go: unknown command $1" >&2; exit 2 ;;
esac
"#,
    )
    .unwrap();
    chmod_x(&p);
}

#[test]
fn setup_go_gives_the_job_its_own_gopath_and_keeps_the_module_cache() {
    let home = tempfile::tempdir().unwrap();
    let bin = tempfile::tempdir().unwrap();
    stand_in_go(bin.path());
    let wf = "on: push\njobs:\n  go:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/setup-go@v5\n        with:\n          go-version: '1.22'\n      - run: |\n          echo GOPATH_IS=$GOPATH\n          echo GOBIN_IS=$GOBIN\n          echo MODCACHE_IS=$GOMODCACHE\n          echo TEMP_IS=$RUNNER_TEMP\n          go install example.com/hello@latest\n          hello\n";
    let repo = git_repo_with(&[(".github/workflows/ci.yml", wf)]);
    let out = run_host(repo.path(), home.path(), Some(bin.path()), &["--offline"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let gopath = value_of(&all, "GOPATH_IS").expect("no GOPATH line");
    let temp = value_of(&all, "TEMP_IS").expect("no RUNNER_TEMP line");
    assert!(
        !temp.is_empty() && gopath.starts_with(&temp) && gopath.ends_with("_setup-go/gopath"),
        "GOPATH is not the job's: {gopath} (RUNNER_TEMP {temp})"
    );
    assert_eq!(
        value_of(&all, "GOBIN_IS").as_deref(),
        Some(format!("{gopath}/bin").as_str())
    );
    // The module cache is the toolchain's default (HOME/go/pkg/mod), shared between jobs.
    assert_eq!(
        value_of(&all, "MODCACHE_IS").map(PathBuf::from),
        Some(home.path().join("go/pkg/mod")),
        "{all}"
    );
    // `go install` wrote into the job's GOBIN, which is on PATH.
    let hello = all
        .lines()
        .find(|l| l.contains("HELLO-FROM-GO-INSTALL"))
        .unwrap_or_else(|| panic!("the installed program did not run: {all}"));
    assert!(hello.contains(&format!("{gopath}/bin/hello")), "{hello}");
    assert!(
        !home.path().join("go/bin").exists(),
        "go install wrote into HOME/go/bin"
    );
}
