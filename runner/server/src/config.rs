//! `gantry-server.yml`: the server's configuration. Read through the workflow crate's
//! positioned YAML tree so that every problem (unknown keys, a missing environment variable,
//! a bad role or duration) is reported as `file:line:col` with a snippet before the server
//! starts. Secret values come from `${NAME}` references and are never printed; API tokens are
//! kept only as their SHA-256.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gantry_workflow::{Diagnostic, Node, Severity, Span, Spanned};
use indexmap::IndexMap;
use sha2::{Digest, Sha256};

use crate::config_read::Reader;

/// A value read from the environment that must not be printed (`Debug` shows `***`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// What a user may do. Ordered: each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Read,
    Write,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "read" => Some(Role::Read),
            "write" => Some(Role::Write),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

/// A user of the server API; the token is kept only as its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub login: String,
    pub token_sha256: [u8; 32],
    pub role: Role,
}

/// The forge a repository's webhooks come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    Github,
    Gitea,
    Forgejo,
    Gitlab,
}

impl Forge {
    pub fn parse(s: &str) -> Option<Forge> {
        match s {
            "github" => Some(Forge::Github),
            "gitea" => Some(Forge::Gitea),
            "forgejo" => Some(Forge::Forgejo),
            "gitlab" => Some(Forge::Gitlab),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Forge::Github => "github",
            Forge::Gitea => "gitea",
            Forge::Forgejo => "forgejo",
            Forge::Gitlab => "gitlab",
        }
    }
    /// Where this forge's runners look for workflows, in order (Gitea and Forgejo read
    /// `.github/workflows` only when their own directory is absent).
    pub fn workflow_dirs(self) -> &'static [&'static str] {
        match self {
            Forge::Github | Forge::Gitlab => &[".github/workflows"],
            Forge::Gitea => &[".gitea/workflows", ".github/workflows"],
            Forge::Forgejo => &[".forgejo/workflows", ".github/workflows"],
        }
    }
}

/// An environment's protection rules. They come from the server config only: a commit
/// cannot change who approves its own deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Environment {
    pub reviewers: Vec<String>,
    pub required_approvals: u32,
    pub prevent_self_review: bool,
    pub wait_timer: Duration,
    /// Branch name patterns allowed to deploy; empty with `tags` empty means any ref.
    pub branches: Vec<String>,
    pub tags: Vec<String>,
    pub secrets: IndexMap<String, Secret>,
    pub vars: IndexMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Repository {
    /// `owner/name`.
    pub name: String,
    /// The clone URL the mirror fetches from; never holds a password (refused when read).
    pub url: String,
    /// `token:`: sent to the `https://` URL when it asks for credentials (through git2's
    /// credential callback, never in a URL).
    pub token: Option<Secret>,
    pub forge: Forge,
    pub webhook_secret: Secret,
    pub secrets: IndexMap<String, Secret>,
    pub vars: IndexMap<String, String>,
    pub environments: IndexMap<String, Environment>,
}

impl Repository {
    pub fn owner(&self) -> &str {
        self.name.split('/').next().unwrap_or_default()
    }
    pub fn short_name(&self) -> &str {
        self.name.rsplit('/').next().unwrap_or_default()
    }
}

/// Where jobs with a `runs-on` label run (act's `-P label=image`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelTarget {
    Host,
    Docker(String),
}

/// What a run may take of the server (`limits:`), in minutes (fractions allowed). Jobs run
/// other people's code: no workflow may hold the server's capacity for ever.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// The most a job may run: a job's `timeout-minutes` (default 360) above it is cut to
    /// it.
    pub job_timeout_minutes: f64,
    /// The most a run may take from the moment this server starts it, waits for
    /// approvals included; then it is cancelled.
    pub run_timeout_minutes: f64,
}

impl Default for Limits {
    /// GitHub's own limits for self-hosted runners, what a server running jobs on its
    /// own machine is: a job 5 days, a workflow run 35 days.
    fn default() -> Self {
        Limits {
            job_timeout_minutes: 5.0 * 24.0 * 60.0,
            run_timeout_minutes: 35.0 * 24.0 * 60.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub url: String,
    pub data: PathBuf,
    /// `None`: SQLite in `data`.
    pub database: Option<String>,
    pub users: Vec<User>,
    pub repositories: Vec<Repository>,
    pub labels: IndexMap<String, LabelTarget>,
    pub executor_capacity: usize,
    pub limits: Limits,
}

impl ServerConfig {
    /// The embedded default: no users, no repositories, SQLite in `./gantry-data`.
    pub fn embedded_default() -> ServerConfig {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            url: "http://127.0.0.1:8080".into(),
            data: PathBuf::from("gantry-data"),
            database: None,
            users: Vec::new(),
            repositories: Vec::new(),
            labels: IndexMap::new(),
            executor_capacity: 2,
            limits: Limits::default(),
        }
    }

    /// The database URL: the configured one, or SQLite in the data directory.
    pub fn database_url(&self) -> String {
        match &self.database {
            Some(u) => u.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data.join("gantry.db").display()
            ),
        }
    }

    pub fn repository(&self, name: &str) -> Option<&Repository> {
        self.repositories
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(name))
    }

    /// The user whose token this is (compared as hashes, in constant time).
    pub fn user_by_token(&self, token: &str) -> Option<&User> {
        use subtle::ConstantTimeEq;
        let h = token_sha256(token);
        self.users
            .iter()
            .find(|u| bool::from(u.token_sha256.ct_eq(&h)))
    }
}

pub fn token_sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The config could not be used; `rendered` holds every problem with its snippet.
#[derive(Debug, thiserror::Error)]
#[error("{rendered}{count} problem(s) in {file}")]
pub struct ConfigError {
    pub file: String,
    pub count: usize,
    pub rendered: String,
    pub diagnostics: Vec<Diagnostic>,
}

/// Reads `path`; `env` resolves `${NAME}` references.
pub fn load(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ServerConfig, ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        let d = Diagnostic {
            file: name.clone(),
            span: Span {
                offset: 0,
                len: 0,
                line: 1,
                col: 1,
            },
            severity: Severity::Error,
            message: format!("cannot read the server config: {e}"),
        };
        ConfigError {
            file: name.clone(),
            count: 1,
            rendered: format!("{d}\n"),
            diagnostics: vec![d],
        }
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&name, &text, base, env)
}

/// Parses the config text. Relative `data` paths are resolved against `base`.
pub fn parse(
    file: &str,
    text: &str,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ServerConfig, ConfigError> {
    let loaded = gantry_workflow::parse_tree(file, text);
    let mut r = Reader::new(file, env);
    r.diags.extend(loaded.diagnostics.iter().cloned());
    let mut cfg = ServerConfig::embedded_default();
    if let Some(root) = &loaded.value {
        read_root(&mut r, root, base, &mut cfg);
    }
    let mut errors: Vec<Diagnostic> = r
        .diags
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    errors.sort_by_key(|d| d.span.offset);
    if errors.is_empty() {
        return Ok(cfg);
    }
    Err(ConfigError {
        file: file.to_string(),
        count: errors.len(),
        rendered: gantry_workflow::render(&errors, text),
        diagnostics: errors,
    })
}

fn read_root(r: &mut Reader, root: &Spanned<Node>, base: &Path, cfg: &mut ServerConfig) {
    const KEYS: &[&str] = &[
        "listen",
        "url",
        "data",
        "database",
        "users",
        "repositories",
        "labels",
        "executor",
        "limits",
    ];
    let Some(map) = r.map(root, "the server config", KEYS) else {
        return;
    };
    let mut listen_set = false;
    for (k, v) in map {
        match k.value.as_str() {
            "listen" => {
                if let Some(s) = r.string(v, "listen")
                    && let Some(a) = r.check(v, s.parse::<SocketAddr>().ok(), || {
                        format!("listen: '{s}' is not an address such as 127.0.0.1:8080")
                    })
                {
                    cfg.listen = a;
                    listen_set = true;
                }
            }
            "url" => {
                if let Some(s) = r.string(v, "url") {
                    if s.starts_with("http://") || s.starts_with("https://") {
                        cfg.url = s.trim_end_matches('/').to_string();
                    } else {
                        r.error(
                            v.span,
                            format!("url: '{s}' must start with http:// or https://"),
                        );
                    }
                }
            }
            "data" => {
                if let Some(s) = r.string(v, "data") {
                    cfg.data = base.join(s);
                }
            }
            "database" => {
                if let Some(s) = r.string(v, "database") {
                    if s.starts_with("postgres://")
                        || s.starts_with("postgresql://")
                        || s.starts_with("sqlite:")
                    {
                        cfg.database = Some(s);
                    } else {
                        r.error(
                            v.span,
                            "database: expected a postgres:// or sqlite: URL".to_string(),
                        );
                    }
                }
            }
            "users" => cfg.users = crate::config_read::users(r, v),
            "repositories" => cfg.repositories = crate::config_read::repositories(r, v),
            "labels" => cfg.labels = crate::config_read::labels(r, v),
            "limits" => crate::config_read::limits(r, v, &mut cfg.limits),
            "executor" => {
                if let Some(m) = r.map(v, "executor", &["capacity"]) {
                    for (_, cv) in m {
                        if let Some(n) = r.positive_int(cv, "executor.capacity") {
                            cfg.executor_capacity = n as usize;
                        }
                    }
                }
            }
            _ => {}
        }
    }
    if !listen_set {
        cfg.url = format!("http://{}", cfg.listen);
    }
    crate::config_read::check_reviewers(r, root);
}

/// Parses a duration such as `0s`, `90s`, `30m`, `1h30m`, `2d`; a bare number is minutes
/// (GitHub's wait timer is given in minutes).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(mins) = s.parse::<u64>() {
        return Some(Duration::from_secs(mins * 60));
    }
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    num.is_empty().then_some(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0s"), Some(Duration::ZERO));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("5"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("10s5"), None);
    }

    #[test]
    fn limits_default_to_githubs_self_hosted_ones_and_take_fractions() {
        let none = |_: &str| None;
        let cfg = parse("s.yml", "listen: 127.0.0.1:0\n", Path::new("."), &none).unwrap();
        assert_eq!(cfg.limits.job_timeout_minutes, 7200.0);
        assert_eq!(cfg.limits.run_timeout_minutes, 50400.0);
        let text = "limits:\n  job_timeout_minutes: 0.05\n";
        let cfg = parse("s.yml", text, Path::new("."), &none).unwrap();
        assert_eq!(cfg.limits.job_timeout_minutes, 0.05);
        assert_eq!(
            cfg.limits.run_timeout_minutes, 50400.0,
            "unset keeps its default"
        );
        for bad in ["-1", "0", "'10m'", ".inf"] {
            let text = format!("limits: {{ run_timeout_minutes: {bad} }}\n");
            let err = parse("s.yml", &text, Path::new("."), &none).unwrap_err();
            assert!(
                err.rendered
                    .contains("expected a number of minutes above 0"),
                "{bad}: {}",
                err.rendered
            );
        }
    }

    /// `token:` of a repository: a `${NAME}` reference, for `https://` URLs only; a
    /// password in the URL is refused with a message that does not show it.
    #[test]
    fn repository_tokens() {
        let env = |n: &str| match n {
            "HOOK" => Some("hook-secret".to_string()),
            "SHOP_GIT_TOKEN" => Some("git-tok-123".to_string()),
            _ => None,
        };
        let repo = |url: &str, token: &str| {
            format!(
                "repositories:\n  - name: acme/shop\n    url: {url}\n    forge: github\n    \
                 webhook_secret: \"${{HOOK}}\"\n{token}"
            )
        };
        let text = repo(
            "https://git.example/acme/shop.git",
            "    token: \"${SHOP_GIT_TOKEN}\"\n",
        );
        let cfg = parse("s.yml", &text, Path::new("."), &env).unwrap();
        let r = &cfg.repositories[0];
        assert_eq!(r.token.as_ref().unwrap().expose(), "git-tok-123");
        assert!(!format!("{cfg:?}").contains("git-tok-123"));
        let none = parse(
            "s.yml",
            &repo("file:///srv/shop.git", ""),
            Path::new("."),
            &env,
        );
        assert_eq!(none.unwrap().repositories[0].token, None);

        let cases = [
            (
                repo("https://git.example/a.git", "    token: git-tok-123\n"),
                "s.yml:6:12: error: token: give the value as \"${NAME}\"",
            ),
            (
                repo("https://git.example/a.git", "    token: \"${UNSET}\"\n"),
                "s.yml:6:12: error: token: environment variable UNSET is not set",
            ),
            (
                repo(
                    "http://git.example/a.git",
                    "    token: \"${SHOP_GIT_TOKEN}\"\n",
                ),
                "s.yml:6:12: error: token: would be sent unencrypted over http://",
            ),
            (
                repo("file:///srv/a.git", "    token: \"${SHOP_GIT_TOKEN}\"\n"),
                "s.yml:6:12: error: token: is sent to https:// URLs only",
            ),
            (
                repo("https://x-access-token:hunter2@git.example/a.git", ""),
                "s.yml:3:10: error: url: 'https://***@git.example/a.git' has a password or token \
                 in it; remove it from the URL and give it as `token: \"${NAME}\"`",
            ),
        ];
        for (text, want) in cases {
            let err = parse("s.yml", &text, Path::new("."), &env).unwrap_err();
            assert!(err.rendered.contains(want), "{text}\n{}", err.rendered);
            for d in &err.diagnostics {
                assert!(!d.message.contains("git-tok-123"), "{}", d.message);
                assert!(!d.message.contains("hunter2"), "{}", d.message);
            }
        }
        // A token read from the environment is never in a message, the snippet included.
        let text = repo("https://u:${SHOP_GIT_TOKEN}@git.example/a.git", "");
        let err = parse("s.yml", &text, Path::new("."), &env).unwrap_err();
        assert!(
            err.rendered.contains("has a password or token"),
            "{}",
            err.rendered
        );
        assert!(!err.rendered.contains("git-tok-123"), "{}", err.rendered);
    }

    #[test]
    fn secrets_do_not_debug_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "***");
    }
}
