//! `actions/setup-python`, `setup-node`, `setup-go`, `setup-java`: find a matching toolchain
//! on the host (or in the job's image for container jobs), put its directory on PATH and
//! report its version. Nothing is downloaded: a missing toolchain fails clearly.

use std::path::Path;

use async_trait::async_trait;
use indexmap::IndexMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{ActionEnv, ActionResult, BuiltinAction, input};
use crate::backend::{ExecSpec, ExitStatus, KillPolicy, Output};

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
    if env.is_container {
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

/// Finds `program` on the PATH of `env` (inside the container for container jobs).
async fn locate(env: &ActionEnv<'_>, program: &str) -> Option<String> {
    if env.is_container {
        let (code, out) = capture(
            env,
            &["sh".into(), "-c".into(), format!("command -v {program}")],
        )
        .await?;
        return (code == 0)
            .then(|| out.lines().next().unwrap_or("").trim().to_string())
            .filter(|s| !s.is_empty());
    }
    let path = env.env.get("PATH").cloned().unwrap_or_default();
    crate::shell::which(program, &path).map(|p| p.display().to_string())
}

/// Like the real action's tool-cache `bin` directory: `python`, `python3` (links to the chosen
/// interpreter) and `pip`, `pip3` (`python -m pip`) in the job's temp directory, so that
/// steps written for GitHub (`python -m ...`, `pip install`) work on images that only have
/// `python3`. `None` (nothing added) when there is no job or the directory cannot be made.
async fn python_shims(env: &ActionEnv<'_>, bin: &str, ver: &str) -> Option<String> {
    let job = env.job?;
    let dir = format!(
        "{}/_setup-python/{ver}/bin",
        job.paths().temp.trim_end_matches('/')
    );
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
    ) -> Result<ActionResult, String> {
        let mut res = ActionResult::default();
        let mut spec = input(inputs, self.version_input()).map(|s| s.trim().to_string());
        if spec.is_none()
            && let Some(f) = input(inputs, self.version_file_input())
        {
            {
                let text = super::files::read_input_file(env, self.version_file_input(), f)?;
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
        }
        // A list of versions (setup-python accepts several lines): the last one wins on PATH.
        let spec = spec.unwrap_or_default();
        let spec = spec
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or("")
            .to_string();
        let mut seen = Vec::new();
        for cand in self.candidates(&spec) {
            let Some(bin) = locate(env, &cand).await else {
                continue;
            };
            let mut argv = vec![bin.clone()];
            argv.extend(self.version_args().iter().map(|s| s.to_string()));
            let Some((_, out)) = capture(env, &argv).await else {
                continue;
            };
            let Some(ver) = parse_version(&out) else {
                continue;
            };
            if !version_matches(&spec, &ver) {
                seen.push(format!("{bin} ({ver})"));
                continue;
            }
            let dir = Path::new(&bin)
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            res.log(format!("Using {} {ver} from {bin}", self.tool()));
            res.path.push(dir.clone());
            match self {
                Setup::Python => {
                    if let Some(shims) = python_shims(env, &bin, &ver).await {
                        res.log(format!("python, python3, pip and pip3 in {shims}"));
                        res.path.push(shims);
                    }
                    res.output("python-version", ver);
                    res.output("python-path", bin.clone());
                    res.env.insert(
                        "pythonLocation".into(),
                        Path::new(&dir)
                            .parent()
                            .map(|p| p.display().to_string())
                            .unwrap_or_default(),
                    );
                }
                Setup::Node => res.output("node-version", format!("v{ver}")),
                Setup::Go => {
                    res.output("go-version", ver);
                }
                Setup::Java => {
                    let real = std::fs::canonicalize(&bin).unwrap_or_else(|_| bin.clone().into());
                    let home = real
                        .parent()
                        .and_then(Path::parent)
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    res.output("version", ver);
                    res.output("path", home.clone());
                    res.env.insert("JAVA_HOME".into(), home);
                }
            }
            return Ok(res);
        }
        let wanted = if spec.is_empty() {
            "any version".to_string()
        } else {
            format!("version '{spec}'")
        };
        let where_ = if env.is_container {
            "in the job's image"
        } else {
            "on this host"
        };
        let found = if seen.is_empty() {
            "none found".to_string()
        } else {
            format!("found {}", seen.join(", "))
        };
        Err(format!(
            "{}: no {} matching {wanted} {where_} ({found}); Gantry does not download toolchains: install it or use a job container that has it",
            self.name(),
            self.tool()
        ))
    }
}
