//! Finding installed toolchains for the `setup-*` built-ins: the programs on the job's
//! `PATH`, and the versions directories of version managers (pyenv, nodenv, goenv, asdf,
//! nvm, SDKMAN!, the runner tool cache, Debian's `/usr/lib/jvm` and `/usr/lib/go-*`).
//!
//! A version manager's shim (`~/.pyenv/shims/python`) runs whatever version the manager
//! selects globally, never the one a workflow asks for, so shims are never run: a program
//! found in a `shims` directory points at its manager's root instead, and the real
//! interpreters under that root's versions directory are probed one by one.

use super::super::ActionEnv;
use super::{Setup, capture, parse_version, version_matches};

/// One installed toolchain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The real program (never a shim).
    pub bin: String,
    pub version: String,
}

/// What a search saw: every toolchain probed (matching or not) and where it looked.
#[derive(Debug, Default)]
pub struct Search {
    pub found: Vec<Found>,
    /// Human-readable places looked at, for the error when nothing matches.
    pub tried: Vec<String>,
}

impl Search {
    /// The highest version satisfying `spec`; on a tie, the first found.
    pub fn best(&self, tool: Setup, spec: &str) -> Option<&Found> {
        let mut best: Option<&Found> = None;
        for f in self.found.iter().filter(|f| tool.matches(spec, &f.version)) {
            if best.is_none_or(|b| nums(&f.version) > nums(&b.version)) {
                best = Some(f);
            }
        }
        best
    }
}

/// `3.11.7` → `[3, 11, 7]`.
pub fn nums(v: &str) -> Vec<u64> {
    v.split('.').map_while(|p| p.parse().ok()).collect()
}

impl Setup {
    /// Whether `version` satisfies `spec`, with Node's `lts/*` and code names.
    pub fn matches(self, spec: &str, version: &str) -> bool {
        if self == Setup::Node
            && let Some(lts) = spec.trim().strip_prefix("lts/")
        {
            let major = nums(version).first().copied().unwrap_or(0);
            return match lts.to_ascii_lowercase().as_str() {
                "*" | "latest" => major >= 4 && major % 2 == 0,
                "-1" => major % 2 == 0,
                name => LTS_NAMES.iter().any(|(n, m)| *n == name && *m == major),
            };
        }
        version_matches(spec, version)
    }

    /// Shell globs (with `{root}` for a manager root and `{home}` for `HOME`) of installed
    /// toolchains outside `PATH`.
    fn layouts(self) -> &'static [&'static str] {
        match self {
            Setup::Python => &[
                "{root}/versions/*/bin/python3",
                "{root}/installs/python/*/bin/python3",
                "{tool_cache}/Python/*/x64/bin/python3",
            ],
            Setup::Node => &[
                "{root}/versions/*/bin/node",
                "{root}/installs/nodejs/*/bin/node",
                "{root}/versions/node/*/bin/node",
                "{tool_cache}/node/*/x64/bin/node",
            ],
            Setup::Go => &[
                "{root}/versions/*/bin/go",
                "{root}/installs/golang/*/go/bin/go",
                "{home}/sdk/go*/bin/go",
                "/usr/local/go/bin/go",
                "/usr/lib/go-*/bin/go",
                "{tool_cache}/go/*/x64/bin/go",
            ],
            Setup::Java => &[
                "{root}/installs/java/*/bin/java",
                "{root}/candidates/java/*/bin/java",
                "/usr/lib/jvm/*/bin/java",
                "{tool_cache}/Java_*/*/x64/bin/java",
            ],
        }
    }

    /// Version managers' roots: environment variables, then their default places in `HOME`.
    fn manager_roots(self, env: &ActionEnv<'_>) -> Vec<String> {
        let (vars, dirs): (&[&str], &[&str]) = match self {
            Setup::Python => (&["PYENV_ROOT", "ASDF_DATA_DIR"], &[".pyenv", ".asdf"]),
            Setup::Node => (
                &["NODENV_ROOT", "NVM_DIR", "ASDF_DATA_DIR"],
                &[".nodenv", ".nvm", ".asdf"],
            ),
            Setup::Go => (&["GOENV_ROOT", "ASDF_DATA_DIR"], &[".goenv", ".asdf"]),
            Setup::Java => (&["SDKMAN_DIR", "ASDF_DATA_DIR"], &[".sdkman", ".asdf"]),
        };
        let mut roots: Vec<String> = vars
            .iter()
            .filter_map(|v| env.env.get(*v).filter(|s| !s.is_empty()).cloned())
            .collect();
        if let Some(home) = env.env.get("HOME").filter(|h| !h.is_empty()) {
            roots.extend(
                dirs.iter()
                    .map(|d| format!("{}/{d}", home.trim_end_matches('/'))),
            );
        }
        roots
    }
}

/// Node's LTS code names (`lts/iron`) and their majors.
const LTS_NAMES: &[(&str, u64)] = &[
    ("argon", 4),
    ("boron", 6),
    ("carbon", 8),
    ("dubnium", 10),
    ("erbium", 12),
    ("fermium", 14),
    ("gallium", 16),
    ("hydrogen", 18),
    ("iron", 20),
    ("jod", 22),
    ("krypton", 24),
];

/// `'…'` quoting for `sh`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A layout with its placeholders filled in, the literal parts quoted and `*` left to the
/// shell.
fn glob_for(layout: &str, root: &str, home: &str, tool_cache: &str) -> Option<String> {
    let mut text = layout.to_string();
    for (k, v) in [
        ("{root}", root),
        ("{home}", home),
        ("{tool_cache}", tool_cache),
    ] {
        if text.contains(k) {
            if v.is_empty() {
                return None;
            }
            text = text.replace(k, v);
        }
    }
    let quoted: Vec<String> = text
        .split('*')
        .map(|part| {
            if part.is_empty() {
                String::new()
            } else {
                sh_quote(part)
            }
        })
        .collect();
    Some(quoted.join("*"))
}

/// If `bin` is a version manager's shim (it sits in a `shims` directory), the manager's root.
fn shim_root(bin: &str) -> Option<String> {
    let p = std::path::Path::new(bin);
    let dir = p.parent()?;
    (dir.file_name()? == "shims").then(|| dir.parent().map(|r| r.display().to_string()))?
}

/// Runs `argv` and parses a version from what it printed.
async fn probe(env: &ActionEnv<'_>, tool: Setup, bin: &str) -> Option<String> {
    let mut argv = vec![bin.to_string()];
    argv.extend(tool.version_args().iter().map(|s| s.to_string()));
    let (_, out) = capture(env, &argv).await?;
    parse_version(&out)
}

/// Finds `program` on the job's `PATH` (inside the container for container jobs).
async fn locate(env: &ActionEnv<'_>, program: &str) -> Option<String> {
    if !env.sharing.runner_programs {
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
    gantry_backend::host::which(program, &path).map(|p| p.display().to_string())
}

/// Every installed `tool` the job can see, for `spec` (which picks the `pythonX.Y` names).
pub async fn search(tool: Setup, spec: &str, env: &ActionEnv<'_>) -> Search {
    let mut s = Search::default();
    let mut roots = Vec::new();
    let mut on_path = Vec::new();
    for cand in tool.candidates(spec) {
        let Some(bin) = locate(env, &cand).await else {
            continue;
        };
        if let Some(root) = shim_root(&bin) {
            s.tried.push(format!("{bin} (a shim of {root}: not run)"));
            if !roots.contains(&root) {
                roots.push(root);
            }
            continue;
        }
        if !on_path.contains(&bin) {
            on_path.push(bin);
        }
    }
    for r in tool.manager_roots(env) {
        if !roots.contains(&r) {
            roots.push(r);
        }
    }
    // The versions directories first (they hold exact versions), then PATH.
    let home = env.env.get("HOME").cloned().unwrap_or_default();
    let tool_cache = env
        .env
        .get("RUNNER_TOOL_CACHE")
        .cloned()
        .unwrap_or_default();
    let mut globs = Vec::new();
    for layout in tool.layouts() {
        if layout.contains("{root}") {
            globs.extend(
                roots
                    .iter()
                    .filter_map(|r| glob_for(layout, r, &home, &tool_cache)),
            );
        } else if let Some(g) = glob_for(layout, "", &home, &tool_cache) {
            globs.push(g);
        }
    }
    let mut bins = Vec::new();
    if !globs.is_empty() {
        let script = format!(
            "for f in {}; do [ -x \"$f\" ] && [ ! -d \"$f\" ] && echo \"$f\"; done; true",
            globs.join(" ")
        );
        if let Some((_, out)) = capture(env, &["sh".into(), "-c".into(), script]).await {
            bins.extend(
                out.lines()
                    .map(str::to_string)
                    .filter(|l| l.starts_with('/')),
            );
        }
        s.tried.push(format!(
            "versions directories of {}",
            if roots.is_empty() {
                "the system".to_string()
            } else {
                roots.join(", ")
            }
        ));
    }
    s.tried
        .push(format!("{} on PATH", tool.candidates(spec).join(", ")));
    bins.extend(on_path);
    let mut seen = Vec::new();
    for bin in bins {
        if seen.contains(&bin) {
            continue;
        }
        seen.push(bin.clone());
        if let Some(version) = probe(env, tool, &bin).await {
            s.found.push(Found { bin, version });
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_quote_the_literal_parts() {
        assert_eq!(
            glob_for("{root}/versions/*/bin/python3", "/a b/it's", "", "").unwrap(),
            r"'/a b/it'\''s/versions/'*'/bin/python3'"
        );
        assert_eq!(glob_for("{tool_cache}/go/*/x64/bin/go", "", "/h", ""), None);
    }

    #[test]
    fn shims_point_at_their_manager() {
        assert_eq!(
            shim_root("/root/.pyenv/shims/python3").as_deref(),
            Some("/root/.pyenv")
        );
        assert_eq!(shim_root("/usr/bin/python3"), None);
    }

    #[test]
    fn node_lts_specs() {
        assert!(Setup::Node.matches("lts/*", "20.11.0"));
        assert!(!Setup::Node.matches("lts/*", "21.1.0"));
        assert!(Setup::Node.matches("lts/iron", "20.1.0"));
        assert!(!Setup::Node.matches("lts/hydrogen", "20.1.0"));
        assert!(Setup::Node.matches("20", "20.1.0"));
    }

    #[test]
    fn best_is_the_highest_match() {
        let s = Search {
            found: vec![
                Found {
                    bin: "a".into(),
                    version: "3.11.2".into(),
                },
                Found {
                    bin: "b".into(),
                    version: "3.12.1".into(),
                },
                Found {
                    bin: "c".into(),
                    version: "3.11.9".into(),
                },
            ],
            tried: vec![],
        };
        assert_eq!(s.best(Setup::Python, "3.11").unwrap().bin, "c");
        assert_eq!(s.best(Setup::Python, "3.x").unwrap().bin, "b");
        assert!(s.best(Setup::Python, "3.13").is_none());
    }
}
