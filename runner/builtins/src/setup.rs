//! `actions/setup-python`, `setup-node`, `setup-go`, `setup-java`: find an installed
//! toolchain of the requested version on the host (or in the job's image for container
//! jobs; version managers' shims resolved to the real program, see [`find`]), put it on
//! PATH and report its version. Each job gets its own environment: Python a venv of the
//! chosen interpreter (so `pip install` never touches the interpreter's site-packages and
//! matrix legs never share one), Node a per-job npm prefix, Go a per-job `GOPATH`/`GOBIN`
//! (the module and build caches stay shared). Nothing is downloaded here: when
//! no installed toolchain fits, the step runner falls back to the real action (see
//! [`ActionResult::fallback`]) unless the run is offline.

pub mod find;

use std::path::Path;

use async_trait::async_trait;
use indexmap::IndexMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{ActionEnv, ActionResult, BuiltinAction, BuiltinError, input};
use gantry_backend::{ExecSpec, ExitStatus, KillPolicy, Output};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    Python,
    Node,
    Go,
    Java,
}

impl Setup {
    fn tool(self) -> &'static str {
        match self {
            Setup::Python => "python",
            Setup::Node => "node",
            Setup::Go => "go",
            Setup::Java => "java",
        }
    }
    fn version_input(self) -> &'static str {
        match self {
            Setup::Python => "python-version",
            Setup::Node => "node-version",
            Setup::Go => "go-version",
            Setup::Java => "java-version",
        }
    }
    fn version_file_input(self) -> &'static str {
        match self {
            Setup::Python => "python-version-file",
            Setup::Node => "node-version-file",
            Setup::Go => "go-version-file",
            Setup::Java => "java-version-file",
        }
    }
    /// Program names to try for a version spec.
    fn candidates(self, spec: &str) -> Vec<String> {
        let parts: Vec<&str> = spec
            .split('.')
            .filter(|p| p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty())
            .collect();
        match self {
            Setup::Python => {
                let mut v = Vec::new();
                if parts.len() >= 2 {
                    v.push(format!("python{}.{}", parts[0], parts[1]));
                }
                v.extend(["python3".to_string(), "python".to_string()]);
                v
            }
            Setup::Node => vec!["node".into(), "nodejs".into()],
            Setup::Go => vec!["go".into()],
            Setup::Java => vec!["java".into()],
        }
    }
    fn version_args(self) -> &'static [&'static str] {
        match self {
            Setup::Go => &["version"],
            Setup::Java => &["-version"],
            _ => &["--version"],
        }
    }
}

/// Extracts the first `N.N[.N]` version number from a tool's `--version` output.
pub fn parse_version(text: &str) -> Option<String> {
    let bytes: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit()
            && (i == 0
                || !bytes[i - 1].is_ascii_alphanumeric()
                || bytes[i - 1] == 'v'
                || bytes[i - 1] == 'o')
        {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == '.') {
                i += 1;
            }
            let s: String = bytes[start..i].iter().collect();
            let s = s.trim_end_matches('.').to_string();
            if s.contains('.') {
                return Some(s);
            }
        }
        i += 1;
    }
    None
}

/// Whether `version` satisfies `spec`: `3.11`, `3.x`, `3.11.7`, `>=3.8`, `^20`, `~1.22`,
/// `20.x`, `lts/*`, `latest`, `stable`, `*`.
pub fn version_matches(spec: &str, version: &str) -> bool {
    let spec = spec.trim().trim_start_matches('v');
    if spec.is_empty()
        || ["*", "x", "latest", "stable", "node", "current"].contains(&spec)
        || spec.starts_with("lts")
    {
        return true;
    }
    let nums = |s: &str| -> Vec<u64> { s.split('.').map_while(|p| p.parse().ok()).collect() };
    let have = nums(version);
    if let Some(min) = spec.strip_prefix(">=") {
        return have >= nums(min.trim());
    }
    if let Some(rest) = spec.strip_prefix('^') {
        let want = nums(rest);
        return want.first() == have.first() && have >= want;
    }
    let spec = spec.trim_start_matches('~').trim_start_matches('=');
    for (i, p) in spec.split('.').enumerate() {
        if p == "x" || p == "*" {
            return true;
        }
        let Ok(n) = p.parse::<u64>() else {
            return false;
        };
        if have.get(i) != Some(&n) {
            return false;
        }
    }
    true
}

/// Runs `argv` in the job environment (container jobs) or on the host, capturing stdout and
/// stderr together. `None` when the program cannot be started.
pub async fn capture(env: &ActionEnv<'_>, argv: &[String]) -> Option<(i32, String)> {
    if !env.sharing.runner_programs {
        let job = env.job?;
        let (tx, mut rx) = mpsc::channel(16);
        let spec = ExecSpec {
            argv: argv.to_vec(),
            env: env.env.clone(),
            workdir: job.paths().workspace.clone(),
        };
        let run = job.exec(spec, tx, CancellationToken::new(), KillPolicy::default());
        let collect = async {
            let mut s = Vec::new();
            while let Some(o) = rx.recv().await {
                match o {
                    Output::Stdout(b) | Output::Stderr(b) => s.extend(b),
                }
            }
            s
        };
        let (r, out) = tokio::join!(run, collect);
        match r.ok()? {
            ExitStatus::Code(c) => Some((c, String::from_utf8_lossy(&out).into_owned())),
            ExitStatus::Cancelled => None,
        }
    } else {
        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .env_clear()
            .envs(&env.env)
            .kill_on_drop(true);
        let out = cmd.output().await.ok()?;
        let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
        s.push_str(&String::from_utf8_lossy(&out.stderr));
        Some((out.status.code().unwrap_or(-1), s))
    }
}

/// The job's temp directory (`RUNNER_TEMP`) as the job sees it.
fn job_temp(env: &ActionEnv<'_>) -> Option<String> {
    env.job
        .map(|j| j.paths().temp.trim_end_matches('/').to_string())
        .or_else(|| env.env.get("RUNNER_TEMP").cloned())
}

/// Like the real action's tool-cache `bin` directory: `python`, `python3` (links to the chosen
/// interpreter) and `pip`, `pip3` (`python -m pip`) in the job's temp directory. Used only
/// when the interpreter cannot make a venv (no `venv` module).
async fn python_shims(env: &ActionEnv<'_>, bin: &str, ver: &str) -> Option<String> {
    let dir = format!("{}/_setup-python/{ver}/bin", job_temp(env)?);
    let script = r#"set -e; mkdir -p "$1"; ln -sf "$2" "$1/python"; ln -sf "$2" "$1/python3"
for p in pip pip3; do printf '#!/bin/sh\nexec "%s" -m pip "$@"\n' "$2" > "$1/$p"; chmod 0755 "$1/$p"; done"#;
    let argv = [
        "sh".into(),
        "-c".into(),
        script.into(),
        "setup-python".into(),
        dir.clone(),
        bin.to_string(),
    ];
    match capture(env, &argv).await {
        Some((0, _)) => Some(dir),
        _ => None,
    }
}

/// The job's venv of `bin`: `<RUNNER_TEMP>/_setup-python/venv-<version>` (made once per job).
/// Returns the venv directory and the interpreter's `sys.base_prefix`, or why it failed.
async fn python_venv(
    env: &ActionEnv<'_>,
    bin: &str,
    ver: &str,
) -> Result<(String, String), String> {
    let temp = job_temp(env).ok_or("the job has no temp directory")?;
    let dir = format!("{temp}/_setup-python/venv-{ver}");
    let script = r#"[ -x "$2/bin/python" ] || "$1" -m venv "$2" || exit 1
exec "$2/bin/python" -c 'import sys; print("base_prefix=" + sys.base_prefix)'"#;
    let argv = [
        "sh".into(),
        "-c".into(),
        script.into(),
        "setup-python".into(),
        bin.to_string(),
        dir.clone(),
    ];
    match capture(env, &argv).await {
        Some((0, out)) => {
            let base = out
                .lines()
                .find_map(|l| l.strip_prefix("base_prefix="))
                .unwrap_or_default()
                .trim()
                .to_string();
            Ok((dir, base))
        }
        Some((_, out)) => Err(out
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or("venv failed")
            .to_string()),
        None => Err(format!("cannot run {bin}")),
    }
}

/// The parent of a program's directory (`/opt/py/bin/python3` → `/opt/py`).
fn prefix_of(bin: &str) -> String {
    Path::new(bin)
        .parent()
        .and_then(Path::parent)
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// The directory of a program.
fn dir_of(bin: &str) -> String {
    Path::new(bin)
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// The job's own `GOPATH` (`<RUNNER_TEMP>/_setup-go/gopath`, `GOBIN` its `bin`, first on
/// PATH), so `go install` never writes into the host's `~/go/bin` (nor a `GOBIN` the host
/// set). The module cache (`GOMODCACHE`) and the build cache (`GOCACHE`) stay where the
/// toolchain keeps them: they are caches keyed by content, shared as act shares them on the
/// host, and a per-job module cache would download every module again (and fail offline).
async fn go_workspace(env: &ActionEnv<'_>, bin: &str, res: &mut ActionResult) {
    let Some(temp) = job_temp(env) else {
        return;
    };
    // Asked before GOPATH changes: the default module cache is `$GOPATH/pkg/mod`.
    let modcache = match capture(env, &[bin.to_string(), "env".into(), "GOMODCACHE".into()]).await {
        Some((0, out)) => out.lines().next().unwrap_or("").trim().to_string(),
        _ => String::new(),
    };
    let gopath = format!("{temp}/_setup-go/gopath");
    let gobin = format!("{gopath}/bin");
    let argv = ["mkdir".into(), "-p".into(), gobin.clone()];
    if !matches!(capture(env, &argv).await, Some((0, _))) {
        res.warnings.push(format!(
            "setup-go: cannot make {gobin}; GOPATH is left as the toolchain's default"
        ));
        return;
    }
    res.log(format!(
        "The job's own GOPATH: {gopath} (go install lands in {gobin}, first on PATH)"
    ));
    if !modcache.is_empty() {
        res.log(format!(
            "Module cache shared with the toolchain: {modcache}"
        ));
        res.env.insert("GOMODCACHE".into(), modcache);
    }
    res.env.insert("GOPATH".into(), gopath);
    res.env.insert("GOBIN".into(), gobin.clone());
    res.path.push(gobin);
}

impl Setup {
    /// Puts the chosen toolchain on PATH, with the job's own environment, and sets outputs.
    async fn apply(
        self,
        inputs: &IndexMap<String, String>,
        env: &ActionEnv<'_>,
        found: &find::Found,
        res: &mut ActionResult,
    ) -> Result<(), String> {
        let (bin, ver) = (found.bin.as_str(), found.version.clone());
        res.log(format!("Using {} {ver} from {bin}", self.tool()));
        res.path.push(dir_of(bin));
        match self {
            Setup::Python => match python_venv(env, bin, &ver).await {
                Ok((venv, base)) => {
                    res.log(format!(
                        "The job's own venv: {venv} (first on PATH; pip installs land there)"
                    ));
                    res.path.push(format!("{venv}/bin"));
                    let base = if base.is_empty() {
                        prefix_of(bin)
                    } else {
                        base
                    };
                    res.output("python-version", ver);
                    res.output("python-path", format!("{venv}/bin/python"));
                    res.env.insert("VIRTUAL_ENV".into(), venv);
                    for k in ["pythonLocation", "Python_ROOT_DIR", "Python3_ROOT_DIR"] {
                        res.env.insert(k.into(), base.clone());
                    }
                }
                Err(why) => {
                    res.warnings.push(format!(
                        "setup-python: {bin} cannot make a venv ({why}); pip would install into the interpreter's own site-packages{}",
                        if env.sharing.runner_programs {
                            ", so PIP_REQUIRE_VIRTUALENV=true is set (install python3-venv)"
                        } else {
                            ""
                        }
                    ));
                    // Not this machine's interpreter: pip changing it is the job's affair.
                    if env.sharing.runner_programs {
                        res.env
                            .insert("PIP_REQUIRE_VIRTUALENV".into(), "true".into());
                    }
                    if let Some(shims) = python_shims(env, bin, &ver).await {
                        res.log(format!("python, python3, pip and pip3 in {shims}"));
                        res.path.push(shims);
                    }
                    res.output("python-version", ver);
                    res.output("python-path", bin.to_string());
                    res.env.insert("pythonLocation".into(), prefix_of(bin));
                }
            },
            Setup::Node => {
                if let Some(temp) = job_temp(env) {
                    let prefix = format!("{temp}/_setup-node/npm-prefix");
                    let argv = [
                        "mkdir".into(),
                        "-p".into(),
                        format!("{prefix}/bin"),
                        format!("{prefix}/lib"),
                    ];
                    if let Some((0, _)) = capture(env, &argv).await {
                        res.log(format!(
                            "The job's own npm prefix: {prefix} (npm install -g lands there)"
                        ));
                        res.env.insert("NPM_CONFIG_PREFIX".into(), prefix.clone());
                        res.path.push(format!("{prefix}/bin"));
                    }
                }
                res.output("node-version", format!("v{ver}"));
            }
            Setup::Go => {
                res.env.insert("GOROOT".into(), prefix_of(bin));
                go_workspace(env, bin, res).await;
                res.output("go-version", ver);
            }
            Setup::Java => {
                let real = if env.sharing.runner_files {
                    std::fs::canonicalize(bin).unwrap_or_else(|_| bin.into())
                } else {
                    bin.into()
                };
                let home = real
                    .parent()
                    .and_then(Path::parent)
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                if let Some(d) = input(inputs, "distribution") {
                    res.log(format!(
                        "distribution '{d}': any installed OpenJDK build of the version is used"
                    ));
                }
                let major = find::nums(&ver).first().copied().unwrap_or(0);
                res.output("version", ver);
                res.output("path", home.clone());
                res.env
                    .insert(format!("JAVA_HOME_{major}_X64"), home.clone());
                res.env.insert("JAVA_HOME".into(), home);
            }
        }
        Ok(())
    }

    /// The version spec from `<tool>-version`, else the version file (setup-python
    /// reads `.python-version` when neither is given, like the real action).
    fn spec(
        self,
        inputs: &IndexMap<String, String>,
        env: &ActionEnv<'_>,
    ) -> Result<String, String> {
        let mut spec = input(inputs, self.version_input()).map(|s| s.trim().to_string());
        let file = input(inputs, self.version_file_input())
            .map(str::to_string)
            .or_else(|| {
                let default = match self {
                    Setup::Python => ".python-version",
                    Setup::Node | Setup::Go | Setup::Java => return None,
                };
                (spec.is_none() && env.workspace.join(default).is_file())
                    .then(|| default.to_string())
            });
        if spec.is_none()
            && let Some(f) = file
        {
            let text = super::files::read_input_file(env, self.version_file_input(), &f)?;
            spec = text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| {
                    l.trim_start_matches("go ")
                        .trim_start_matches("python-")
                        .trim()
                        .to_string()
                });
        }
        // A list of versions (setup-python accepts several lines): the last one wins on PATH.
        let spec = spec.unwrap_or_default();
        Ok(spec
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or("")
            .to_string())
    }
}

#[async_trait]
impl BuiltinAction for Setup {
    fn name(&self) -> &'static str {
        match self {
            Setup::Python => "actions/setup-python",
            Setup::Node => "actions/setup-node",
            Setup::Go => "actions/setup-go",
            Setup::Java => "actions/setup-java",
        }
    }

    async fn run(
        &self,
        inputs: &IndexMap<String, String>,
        env: &ActionEnv<'_>,
    ) -> Result<ActionResult, BuiltinError> {
        let mut res = ActionResult::default();
        let spec = self.spec(inputs, env)?;
        let search = find::search(*self, &spec, env).await;
        if let Some(found) = search.best(*self, &spec) {
            self.apply(inputs, env, found, &mut res).await?;
            return Ok(res);
        }
        let wanted = if spec.is_empty() {
            "any version".to_string()
        } else {
            format!("version '{spec}'")
        };
        let where_ = if env.sharing.runner_programs {
            "on this host"
        } else {
            "in the job's image"
        };
        let found = if search.found.is_empty() {
            "none found".to_string()
        } else {
            let v: Vec<String> = search
                .found
                .iter()
                .map(|f| format!("{} ({})", f.bin, f.version))
                .collect();
            format!("found {}", v.join(", "))
        };
        let msg = format!(
            "{}: no {} matching {wanted} {where_} ({found}; tried {})",
            self.name(),
            self.tool(),
            search.tried.join("; ")
        );
        if env.offline {
            return Err(BuiltinError::Offline(format!(
                "{msg}; offline: the real action (which downloads toolchains) is not tried: install it or use a job container that has it"
            )));
        }
        res.log(format!("{msg}; falling back to the real action"));
        res.fallback = Some(fallback_ref(self.name()));
        Ok(res)
    }
}

/// The real action a setup built-in falls back to (the major the built-in mirrors).
pub fn fallback_ref(name: &str) -> String {
    let major = match name {
        "actions/setup-python" => "v5",
        "actions/setup-java" => "v4",
        _ => "v4",
    };
    format!("{name}@{major}")
}
