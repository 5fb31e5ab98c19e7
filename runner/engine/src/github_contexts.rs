//! Expression contexts (GHA-SEMANTICS §4) and the default `GITHUB_*` / `RUNNER_*`
//! environment (§5.2).
//!
//! Repository facts are read once per run with git2 ([`GitInfo::discover`]); everything
//! per job is derived from them without further git work.

use std::path::Path;

use gantry_expr::{Object, Value};
use indexmap::IndexMap;
use serde_json::json;

/// What a run knows about the repository and the triggering event.
#[derive(Debug, Clone, Default)]
pub struct GitInfo {
    pub sha: String,
    /// Full ref (`refs/heads/main`); empty when HEAD is unborn and detached.
    pub git_ref: String,
    pub actor: String,
    /// `owner/name`.
    pub repository: String,
}

impl GitInfo {
    /// Reads HEAD, the branch, `user.name` and the `origin` remote. Missing pieces fall back
    /// to neutral values (`0000…` sha, `refs/heads/main`, actor `gantry`, repository
    /// `local/<directory name>`).
    pub fn discover(root: &Path) -> GitInfo {
        let dir_name = root
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "repo".into());
        let mut info = GitInfo {
            sha: "0".repeat(40),
            git_ref: "refs/heads/main".into(),
            actor: "gantry".into(),
            repository: format!("local/{dir_name}"),
        };
        let Ok(repo) = git2::Repository::discover(root) else {
            return info;
        };
        if let Ok(head) = repo.head() {
            if let Some(oid) = head.target() {
                info.sha = oid.to_string();
            }
            if head.is_branch()
                && let Ok(name) = head.name()
            {
                info.git_ref = name.to_string();
            }
        } else if let Ok(r) = repo.find_reference("HEAD")
            && let Ok(Some(t)) = r.symbolic_target()
        {
            info.git_ref = t.to_string();
        }
        if let Ok(cfg) = repo.config()
            && let Ok(name) = cfg.get_string("user.name")
            && !name.trim().is_empty()
        {
            info.actor = name.trim().to_string();
        }
        if let Ok(remote) = repo.find_remote("origin")
            && let Ok(url) = remote.url()
            && let Some(r) = repository_from_url(url)
        {
            info.repository = r;
        }
        info
    }
}

/// `owner/name` from a remote URL (`https://host/owner/name(.git)`, `git@host:owner/name`).
pub fn repository_from_url(url: &str) -> Option<String> {
    let url = url.trim().trim_end_matches('/');
    let url = url.strip_suffix(".git").unwrap_or(url);
    let path = if let Some(rest) = url.split_once("://").map(|(_, r)| r) {
        rest.split_once('/').map(|(_, p)| p)?
    } else if let Some((_, p)) = url.split_once(':') {
        p
    } else {
        url
    };
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if parts.len() < 2 {
        return None;
    }
    Some(format!(
        "{}/{}",
        parts[parts.len() - 2],
        parts[parts.len() - 1]
    ))
}

/// Event, repository and run identity shared by every job of a run.
#[derive(Debug, Clone)]
pub struct RunFacts {
    pub run_id: String,
    pub run_number: u64,
    pub event_name: String,
    pub event: serde_json::Value,
    pub git: GitInfo,
    /// `--actor` or git's user.name.
    pub actor: String,
    /// `event` as an expression value, converted on first use and shared by every job's
    /// `github` context (payloads can be large).
    pub event_ctx: std::sync::OnceLock<Value>,
    /// The run-constant part of the `github` context, built once: building it from JSON
    /// for every job was a fifth of a no-op job's instructions (P6).
    pub github_base: std::sync::OnceLock<Value>,
}

impl RunFacts {
    /// The event payload as an expression value (converted once per run).
    pub fn event_value(&self) -> Value {
        self.event_ctx
            .get_or_init(|| Value::from_json(&self.event))
            .clone()
    }

    /// The ref as GitHub sets it for this event: `pull_request` uses the PR's merge ref and
    /// head/base refs from the payload; `push` uses the payload's `ref` when present.
    pub fn refs(&self) -> (String, String, String) {
        let e = &self.event;
        let mut git_ref = self.git.git_ref.clone();
        let mut head_ref = String::new();
        let mut base_ref = String::new();
        if let Some(r) = e.get("ref").and_then(|r| r.as_str())
            && !r.is_empty()
        {
            git_ref = r.to_string();
        }
        if self.event_name.starts_with("pull_request")
            && let Some(pr) = e.get("pull_request")
        {
            {
                head_ref = pr
                    .pointer("/head/ref")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string();
                base_ref = pr
                    .pointer("/base/ref")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string();
                if let Some(n) = e.get("number").and_then(|n| n.as_u64()) {
                    git_ref = format!("refs/pull/{n}/merge");
                }
            }
        }
        (git_ref, head_ref, base_ref)
    }
}

/// Per-job facts that end up in `github`, `runner` and the default env.
#[derive(Debug, Clone)]
pub struct JobFacts<'a> {
    pub run: &'a RunFacts,
    pub workflow_name: &'a str,
    /// Workflow file path relative to the repository root.
    pub workflow_path: &'a str,
    pub job_id: &'a str,
    /// Paths as steps see them.
    pub workspace: &'a str,
    pub temp: &'a str,
    pub tool_cache: &'a str,
    pub event_path: &'a str,
    pub os: &'a str,
    pub arch: &'a str,
    pub runner_name: &'a str,
}

fn ref_name_and_type(git_ref: &str) -> (String, &'static str) {
    if let Some(b) = git_ref.strip_prefix("refs/heads/") {
        (b.to_string(), "branch")
    } else if let Some(t) = git_ref.strip_prefix("refs/tags/") {
        (t.to_string(), "tag")
    } else if let Some(p) = git_ref.strip_prefix("refs/pull/") {
        (p.to_string(), "branch")
    } else {
        (git_ref.to_string(), "branch")
    }
}

/// The `github` context of a job (JSON; convert with `Value::from_json`). Step-specific
/// fields (`action`, `env`, `output`, `path`, `state`, `step_summary`) are set per step.
pub fn github_json(f: &JobFacts<'_>) -> serde_json::Value {
    github_json_with(f, true)
}

/// The `github` context as an expression value, equal to [`github_json`]'s: the run's
/// part is built once per run (with the event payload converted once), then the job's
/// keys are set. Replacing a key keeps its position, so the key order is the same.
pub fn github_value(f: &JobFacts<'_>) -> Value {
    let mut v = f
        .run
        .github_base
        .get_or_init(|| {
            let mut base = Value::from_json(&github_json_with(f, false));
            if let Value::Object(o) = &mut base {
                std::sync::Arc::make_mut(o).insert("event", f.run.event_value());
            }
            base
        })
        .clone();
    if let Value::Object(o) = &mut v {
        let o = std::sync::Arc::make_mut(o);
        let (git_ref, _, _) = f.run.refs();
        o.insert("event_path", Value::string(f.event_path));
        o.insert("job", Value::string(f.job_id));
        o.insert("workflow", Value::string(f.workflow_name));
        o.insert("workflow_ref", Value::string(workflow_ref(f, &git_ref)));
        o.insert("workspace", Value::string(f.workspace));
    }
    v
}

/// `owner/repo/.github/workflows/file.yml@ref`.
fn workflow_ref(f: &JobFacts<'_>, git_ref: &str) -> String {
    format!("{}/{}@{}", f.run.git.repository, f.workflow_path, git_ref)
}

/// The `runner` context as an expression value.
pub fn runner_value(f: &JobFacts<'_>) -> Value {
    Value::from_json(&runner_json(f))
}

/// [`github_json`], with `event` null unless `with_event` (the environment variables and
/// [`github_value`] do not need a copy of the payload).
pub fn github_json_with(f: &JobFacts<'_>, with_event: bool) -> serde_json::Value {
    let run = f.run;
    let (git_ref, head_ref, base_ref) = run.refs();
    let (ref_name, ref_type) = ref_name_and_type(&git_ref);
    let owner = run
        .git
        .repository
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let workflow_ref = workflow_ref(f, &git_ref);
    let mut m = serde_json::Map::new();
    m.insert("action".into(), json!(""));
    m.insert("action_path".into(), json!(""));
    m.insert("action_ref".into(), json!(""));
    m.insert("action_repository".into(), json!(""));
    m.insert("action_status".into(), json!(""));
    m.insert("actor".into(), json!(run.actor));
    m.insert("actor_id".into(), json!("0"));
    m.insert("api_url".into(), json!("https://api.github.com"));
    m.insert("base_ref".into(), json!(base_ref));
    m.insert("env".into(), json!(""));
    m.insert(
        "event".into(),
        if with_event {
            run.event.clone()
        } else {
            serde_json::Value::Null
        },
    );
    m.insert("event_name".into(), json!(run.event_name));
    m.insert("event_path".into(), json!(f.event_path));
    m.insert(
        "graphql_url".into(),
        json!("https://api.github.com/graphql"),
    );
    m.insert("head_ref".into(), json!(head_ref));
    m.insert("job".into(), json!(f.job_id));
    m.insert("output".into(), json!(""));
    m.insert("path".into(), json!(""));
    m.insert("ref".into(), json!(git_ref));
    m.insert("ref_name".into(), json!(ref_name));
    m.insert("ref_protected".into(), json!(false));
    m.insert("ref_type".into(), json!(ref_type));
    m.insert("repository".into(), json!(run.git.repository));
    m.insert("repository_id".into(), json!("0"));
    m.insert("repository_owner".into(), json!(owner));
    m.insert("repository_owner_id".into(), json!("0"));
    m.insert(
        "repositoryUrl".into(),
        json!(format!("git://github.com/{}.git", run.git.repository)),
    );
    m.insert("retention_days".into(), json!("0"));
    m.insert("run_id".into(), json!(run.run_id));
    m.insert("run_number".into(), json!(run.run_number.to_string()));
    m.insert("run_attempt".into(), json!("1"));
    m.insert("secret_source".into(), json!("None"));
    m.insert("server_url".into(), json!("https://github.com"));
    m.insert("sha".into(), json!(run.git.sha));
    m.insert("state".into(), json!(""));
    m.insert("step_summary".into(), json!(""));
    m.insert("token".into(), json!(""));
    m.insert("triggering_actor".into(), json!(run.actor));
    m.insert("workflow".into(), json!(f.workflow_name));
    m.insert("workflow_ref".into(), json!(workflow_ref));
    m.insert("workflow_sha".into(), json!(run.git.sha));
    m.insert("workspace".into(), json!(f.workspace));
    serde_json::Value::Object(m)
}

/// The `runner` context.
pub fn runner_json(f: &JobFacts<'_>) -> serde_json::Value {
    json!({
        "name": f.runner_name,
        "os": f.os,
        "arch": f.arch,
        "temp": f.temp,
        "tool_cache": f.tool_cache,
        "debug": "",
        "environment": "self-hosted",
        "workspace": Path::new(f.workspace).parent().map(|p| p.display().to_string()).unwrap_or_default(),
    })
}

/// `runner.os` for this machine (`Linux`, `macOS`, `Windows`).
pub fn host_os() -> &'static str {
    match std::env::consts::OS {
        "macos" => "macOS",
        "windows" => "Windows",
        _ => "Linux",
    }
}

/// `runner.arch` for this machine.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86" => "X86",
        "arm" => "ARM",
        "aarch64" => "ARM64",
        _ => "X64",
    }
}

/// The `GITHUB_*` and `RUNNER_*` variables derived from the `github` and `runner` contexts
/// (§5.2 allow-list), plus `GITHUB_ACTIONS` and `CI`. Step-specific ones (`GITHUB_ACTION`,
/// the file-command paths) are added by the step runner.
pub fn default_env(github: &Value, runner: &Value) -> IndexMap<String, String> {
    let s = |v: &Value, k: &str| -> String {
        match v.get(k) {
            Some(Value::String(s)) => s.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(Value::Number(n)) => gantry_expr::format_number(*n),
            _ => String::new(),
        }
    };
    let mut env = IndexMap::new();
    env.insert("CI".to_string(), "true".to_string());
    env.insert("GITHUB_ACTIONS".to_string(), "true".to_string());
    for (var, key) in [
        ("GITHUB_ACTOR", "actor"),
        ("GITHUB_ACTOR_ID", "actor_id"),
        ("GITHUB_TRIGGERING_ACTOR", "triggering_actor"),
        ("GITHUB_API_URL", "api_url"),
        ("GITHUB_GRAPHQL_URL", "graphql_url"),
        ("GITHUB_SERVER_URL", "server_url"),
        ("GITHUB_BASE_REF", "base_ref"),
        ("GITHUB_HEAD_REF", "head_ref"),
        ("GITHUB_REF", "ref"),
        ("GITHUB_REF_NAME", "ref_name"),
        ("GITHUB_REF_PROTECTED", "ref_protected"),
        ("GITHUB_REF_TYPE", "ref_type"),
        ("GITHUB_SHA", "sha"),
        ("GITHUB_EVENT_NAME", "event_name"),
        ("GITHUB_EVENT_PATH", "event_path"),
        ("GITHUB_JOB", "job"),
        ("GITHUB_REPOSITORY", "repository"),
        ("GITHUB_REPOSITORY_ID", "repository_id"),
        ("GITHUB_REPOSITORY_OWNER", "repository_owner"),
        ("GITHUB_REPOSITORY_OWNER_ID", "repository_owner_id"),
        ("GITHUB_RETENTION_DAYS", "retention_days"),
        ("GITHUB_RUN_ATTEMPT", "run_attempt"),
        ("GITHUB_RUN_ID", "run_id"),
        ("GITHUB_RUN_NUMBER", "run_number"),
        ("GITHUB_WORKFLOW", "workflow"),
        ("GITHUB_WORKFLOW_REF", "workflow_ref"),
        ("GITHUB_WORKFLOW_SHA", "workflow_sha"),
        ("GITHUB_WORKSPACE", "workspace"),
    ] {
        env.insert(var.to_string(), s(github, key));
    }
    for (var, key) in [
        ("RUNNER_ARCH", "arch"),
        ("RUNNER_DEBUG", "debug"),
        ("RUNNER_ENVIRONMENT", "environment"),
        ("RUNNER_NAME", "name"),
        ("RUNNER_OS", "os"),
        ("RUNNER_TEMP", "temp"),
        ("RUNNER_TOOL_CACHE", "tool_cache"),
        ("RUNNER_WORKSPACE", "workspace"),
    ] {
        let v = s(runner, key);
        if var == "RUNNER_DEBUG" && v.is_empty() {
            continue;
        }
        env.insert(var.to_string(), v);
    }
    env
}

/// A string map as an expression object.
pub fn string_map_value<'a>(m: impl IntoIterator<Item = (&'a String, &'a String)>) -> Value {
    let mut o = Object::new();
    for (k, v) in m {
        o.insert(k.clone(), Value::string(v));
    }
    Value::object(o)
}

/// The `strategy` context.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct StrategyFacts {
    pub fail_fast: bool,
    pub job_index: usize,
    pub job_total: usize,
    pub max_parallel: usize,
}

impl StrategyFacts {
    pub fn single() -> Self {
        StrategyFacts {
            fail_fast: true,
            job_index: 0,
            job_total: 1,
            max_parallel: 1,
        }
    }

    pub fn value(&self) -> Value {
        Value::from_json(&json!({
            "fail-fast": self.fail_fast,
            "job-index": self.job_index,
            "job-total": self.job_total,
            "max-parallel": self.max_parallel,
        }))
    }
}

/// Why a dotenv file (`--env-file`, `--secret-file`, `--var-file`) did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DotenvError {
    #[error("line {line}: expected KEY=VALUE")]
    ExpectedKeyValue { line: usize },
    #[error("line {line}: unterminated quoted value")]
    UnterminatedQuote { line: usize },
}

/// Parses a dotenv file as act does (godotenv): `KEY=VALUE` lines, `#` comments, optional
/// `export `, double-quoted values with `\n`, `\t`, `\"`, `\\` escapes (and spanning lines),
/// single-quoted values literal, unquoted values trimmed with trailing ` #comment` dropped.
pub fn parse_dotenv(text: &str) -> Result<IndexMap<String, String>, DotenvError> {
    let mut out = IndexMap::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((n, raw)) = lines.next() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, rest)) = line.split_once('=').or_else(|| line.split_once(':')) else {
            return Err(DotenvError::ExpectedKeyValue { line: n + 1 });
        };
        let key = key.trim().to_string();
        let rest = rest.trim_start();
        let value = if let Some(body) = rest.strip_prefix('"') {
            let mut acc = body.to_string();
            while !closes_double(&acc) {
                match lines.next() {
                    Some((_, l)) => {
                        acc.push('\n');
                        acc.push_str(l);
                    }
                    None => return Err(DotenvError::UnterminatedQuote { line: n + 1 }),
                }
            }
            let end = closing_double_index(&acc).unwrap_or(acc.len());
            unescape_double(&acc[..end])
        } else if let Some(body) = rest.strip_prefix('\'') {
            match body.find('\'') {
                Some(e) => body[..e].to_string(),
                None => body.to_string(),
            }
        } else {
            let v = match rest.find(" #") {
                Some(i) => &rest[..i],
                None => rest,
            };
            v.trim().to_string()
        };
        out.insert(key, value);
    }
    Ok(out)
}

fn closing_double_index(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

fn closes_double(s: &str) -> bool {
    closing_double_index(s).is_some()
}

fn unescape_double(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some(o) => out.push(o),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remotes() {
        assert_eq!(
            repository_from_url("https://github.com/nektos/act.git").as_deref(),
            Some("nektos/act")
        );
        assert_eq!(
            repository_from_url("git@github.com:o/r.git").as_deref(),
            Some("o/r")
        );
        assert_eq!(repository_from_url("nope"), None);
    }

    #[test]
    fn dotenv() {
        let m = parse_dotenv(
            "# c\nMY_SECRET=top-secret\nMULTILINE_SECRET=\"foo\\nbar\\nbaz\"\nJSON={\"foo\": \"bar\"}\nexport A='x y' \nB = v #c\n",
        )
        .unwrap();
        assert_eq!(m["MY_SECRET"], "top-secret");
        assert_eq!(m["MULTILINE_SECRET"], "foo\nbar\nbaz");
        assert_eq!(m["JSON"], "{\"foo\": \"bar\"}");
        assert_eq!(m["A"], "x y");
        assert_eq!(m["B"], "v");
    }

    #[test]
    fn default_env_from_contexts() {
        let run = RunFacts {
            run_id: "7".into(),
            run_number: 7,
            event_name: "push".into(),
            event: json!({}),
            git: GitInfo {
                sha: "abc".into(),
                git_ref: "refs/heads/dev".into(),
                actor: "me".into(),
                repository: "o/r".into(),
            },
            actor: "nektos/act".into(),
            event_ctx: Default::default(),
            github_base: Default::default(),
        };
        let f = JobFacts {
            run: &run,
            workflow_name: "ci",
            workflow_path: ".github/workflows/ci.yml",
            job_id: "build",
            workspace: "/w/r",
            temp: "/w/_temp",
            tool_cache: "/w/_tool",
            event_path: "/w/_temp/_github_workflow/event.json",
            os: "Linux",
            arch: "X64",
            runner_name: "gantry",
        };
        // The value built from the run's shared part is the JSON context, key order
        // included, for every job of the run.
        let run2 = RunFacts {
            event: json!({"ref": "refs/heads/dev", "commits": [{"id": "1"}]}),
            ..run.clone()
        };
        let f2 = JobFacts { run: &run2, ..f };
        let f3 = JobFacts {
            job_id: "test",
            workspace: "/w2/r",
            workflow_name: "other",
            workflow_path: ".github/workflows/other.yml",
            event_path: "/w2/_temp/_github_workflow/event.json",
            ..f2
        };
        for f in [&f2, &f3, &f2] {
            assert_eq!(
                github_value(f).to_json_compact(),
                Value::from_json(&github_json(f)).to_json_compact()
            );
        }
        let env = default_env(&github_value(&f), &runner_value(&f));
        assert_eq!(env["GITHUB_REF_NAME"], "dev");
        assert_eq!(env["GITHUB_ACTOR"], "nektos/act");
        assert_eq!(env["GITHUB_REPOSITORY_OWNER"], "o");
        assert_eq!(env["GITHUB_REF_PROTECTED"], "false");
        assert_eq!(env["RUNNER_TEMP"], "/w/_temp");
        assert_eq!(env["CI"], "true");
    }
}
