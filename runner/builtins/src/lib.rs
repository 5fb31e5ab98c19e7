//! Actions Gantry implements natively, so that the common marketplace actions run offline.
//! Each one is described by `actions/<owner>/<name>/action.yml` at the repository root
//! (embedded here for input defaults) and implements [`BuiltinAction`].

use std::path::PathBuf;

use async_trait::async_trait;
use indexmap::IndexMap;

use gantry_backend::JobEnv;

pub mod artifact;
pub mod cache;
pub mod checkout;
pub mod docker;
pub mod files;
pub mod metadata;
pub mod setup;
pub mod slack;

/// The `github` context values built-ins need.
#[derive(Debug, Clone, Default)]
pub struct GithubFacts {
    pub sha: String,
    /// `refs/heads/main`, `refs/tags/v1.2.3`, `refs/pull/7/merge`.
    pub git_ref: String,
    pub ref_name: String,
    pub repository: String,
    pub event_name: String,
    pub run_id: String,
    pub run_number: String,
    pub job: String,
    pub workflow: String,
    pub actor: String,
    pub server_url: String,
    pub base_ref: String,
    pub head_ref: String,
    /// The event payload (`github.event`).
    pub event: serde_json::Value,
}

impl GithubFacts {
    /// Reads the fields from the `github` context as JSON.
    pub fn from_json(g: &serde_json::Value) -> Self {
        let s = |k: &str| {
            g.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let n = |k: &str| match g.get(k) {
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(serde_json::Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        GithubFacts {
            sha: s("sha"),
            git_ref: s("ref"),
            ref_name: s("ref_name"),
            repository: s("repository"),
            event_name: s("event_name"),
            run_id: n("run_id"),
            run_number: n("run_number"),
            job: s("job"),
            workflow: s("workflow"),
            actor: s("actor"),
            server_url: s("server_url"),
            base_ref: s("base_ref"),
            head_ref: s("head_ref"),
            event: g.get("event").cloned().unwrap_or(serde_json::Value::Null),
        }
    }

    /// The repository's default branch from the event payload, else `main`.
    pub fn default_branch(&self) -> String {
        self.event
            .pointer("/repository/default_branch")
            .and_then(|v| v.as_str())
            .unwrap_or("main")
            .to_string()
    }
}

/// What a built-in sees of the job.
pub struct ActionEnv<'a> {
    /// `GITHUB_WORKSPACE` as a host path.
    pub workspace: PathBuf,
    /// The repository being built (host path; `actions/checkout` clones from it).
    pub repo_root: PathBuf,
    /// `<root>/.gantry/runs/<run>`: run-scoped stores (artifacts, registry logins).
    pub run_dir: PathBuf,
    /// Store of `actions/cache` (shared across runs).
    pub cache_dir: PathBuf,
    /// The job environment, to run commands in the job's image (container jobs).
    pub job: Option<&'a dyn JobEnv>,
    /// What the job's steps share with this machine: a built-in runs here, so a job
    /// whose programs or files are not this machine's is reached through `job`.
    pub sharing: gantry_backend::Sharing,
    pub github: GithubFacts,
    /// The environment the step's process would get (PATH, `SLACK_WEBHOOK_URL`, …).
    pub env: IndexMap<String, String>,
    /// `job.status` (`success`, `failure`, `cancelled`), for post stages.
    pub job_status: String,
    /// `--offline`: built-ins that would reach the network refuse (registry logins and
    /// pushes to non-loopback registries, Slack, the setup fallbacks to the real actions).
    pub offline: bool,
}

/// What a built-in produced; the step runner applies it like the file commands of §5.3.
#[derive(Debug, Clone, Default)]
pub struct ActionResult {
    /// `steps.<id>.outputs`.
    pub outputs: IndexMap<String, String>,
    /// `GITHUB_ENV` writes.
    pub env: IndexMap<String, String>,
    /// `GITHUB_PATH` entries, in the order written.
    pub path: Vec<String>,
    /// Log lines for the step.
    pub logs: Vec<String>,
    /// Warnings (annotations).
    pub warnings: Vec<String>,
    /// Step summary (Markdown).
    pub summary: Option<String>,
    /// Values to mask from now on.
    pub masks: Vec<String>,
    /// `GITHUB_STATE` for the post stage.
    pub state: IndexMap<String, String>,
    /// Register a post stage (run at job end, in reverse order, see [`BuiltinAction::post`]).
    pub post: bool,
    /// Run this real action (`actions/setup-python@v5`) instead, resolved as a remote action
    /// with the same `with:` (a setup built-in that found no installed toolchain).
    pub fallback: Option<String>,
}

impl ActionResult {
    pub fn log(&mut self, line: impl Into<String>) {
        self.logs.push(line.into());
    }
    pub fn output(&mut self, k: &str, v: impl Into<String>) {
        self.outputs.insert(k.to_string(), v.into());
    }
}

/// Why a built-in failed. The step's log shows it (`Display`); the kinds say where it came
/// from, for callers and tests that tell them apart.
#[derive(Debug, thiserror::Error)]
pub enum BuiltinError {
    /// The job's environment or the image daemon refused or could not be reached.
    #[error(transparent)]
    Backend(#[from] gantry_backend::BackendError),
    /// Fetching a repository failed (`actions/checkout` of another repository).
    #[error(transparent)]
    Fetch(#[from] gantry_git::transport::FetchError),
    /// An input's default in the built-in's `action.yml` did not evaluate.
    #[error(transparent)]
    Input(#[from] gantry_workflow::action_inputs::DefaultError),
    /// `--offline` refused something that needs the network (the message says so).
    #[error("{0}")]
    Offline(String),
    /// Anything else: bad inputs, files, a registry's or a webhook's answer.
    #[error("{0}")]
    Failed(String),
}

impl From<String> for BuiltinError {
    fn from(s: String) -> Self {
        BuiltinError::Failed(s)
    }
}

impl From<&str> for BuiltinError {
    fn from(s: &str) -> Self {
        BuiltinError::Failed(s.to_string())
    }
}

/// One natively implemented action.
#[async_trait]
pub trait BuiltinAction: Send + Sync {
    /// Lower-case `owner/repo[/path]`.
    fn name(&self) -> &'static str;
    /// The main stage. `inputs` hold the defaults of the action's `action.yml` already.
    async fn run(
        &self,
        inputs: &IndexMap<String, String>,
        env: &ActionEnv<'_>,
    ) -> Result<ActionResult, BuiltinError>;
    /// The post stage (only when `run` set [`ActionResult::post`]); `state` is what `run`
    /// saved.
    async fn post(
        &self,
        _inputs: &IndexMap<String, String>,
        _env: &ActionEnv<'_>,
        _state: &IndexMap<String, String>,
    ) -> Result<ActionResult, BuiltinError> {
        Ok(ActionResult::default())
    }
    /// `post-if` (not wrapped in `success() && …`).
    fn post_if(&self) -> &'static str {
        "always()"
    }
}

macro_rules! metadata {
    ($($name:literal),* $(,)?) => {
        /// Lower-case names of every built-in.
        pub const NAMES: &[&str] = &[$($name),*];
        /// The embedded `action.yml` of a built-in.
        pub fn metadata_text(name: &str) -> Option<&'static str> {
            match name {
                $($name => Some(include_str!(concat!("../../../actions/", $name, "/action.yml"))),)*
                _ => None,
            }
        }
    };
}

metadata!(
    "actions/checkout",
    "actions/upload-artifact",
    "actions/download-artifact",
    "actions/cache",
    "actions/cache/restore",
    "actions/cache/save",
    "actions/setup-python",
    "actions/setup-node",
    "actions/setup-go",
    "actions/setup-java",
    "docker/metadata-action",
    "docker/setup-buildx-action",
    "docker/login-action",
    "docker/build-push-action",
    "8398a7/action-slack",
    "slackapi/slack-github-action",
);

/// Whether `name` (lower-case `owner/repo[/path]`) is a built-in.
pub fn is_builtin(name: &str) -> bool {
    NAMES.contains(&name)
}

/// The parsed `action.yml` of a built-in (for input defaults and outputs).
pub fn metadata(name: &str) -> Option<gantry_workflow::Action> {
    let text = metadata_text(name)?;
    gantry_workflow::parse_action(&format!("builtin:{name}/action.yml"), text).value
}

/// The implementation of a built-in.
pub fn get(name: &str) -> Option<Box<dyn BuiltinAction>> {
    let b: Box<dyn BuiltinAction> = match name {
        "actions/checkout" => Box::new(checkout::Checkout),
        "actions/upload-artifact" => Box::new(artifact::Upload),
        "actions/download-artifact" => Box::new(artifact::Download),
        "actions/cache" => Box::new(cache::Cache::Both),
        "actions/cache/restore" => Box::new(cache::Cache::Restore),
        "actions/cache/save" => Box::new(cache::Cache::Save),
        "actions/setup-python" => Box::new(setup::Setup::Python),
        "actions/setup-node" => Box::new(setup::Setup::Node),
        "actions/setup-go" => Box::new(setup::Setup::Go),
        "actions/setup-java" => Box::new(setup::Setup::Java),
        "docker/metadata-action" => Box::new(metadata::Metadata),
        "docker/setup-buildx-action" => Box::new(docker::SetupBuildx),
        "docker/login-action" => Box::new(docker::Login),
        "docker/build-push-action" => Box::new(docker::BuildPush),
        "8398a7/action-slack" => Box::new(slack::ActionSlack),
        "slackapi/slack-github-action" => Box::new(slack::SlackGithubAction),
        _ => return None,
    };
    Some(b)
}

/// Case-insensitive input lookup; empty strings count as absent.
pub fn input<'a>(inputs: &'a IndexMap<String, String>, key: &str) -> Option<&'a str> {
    inputs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.trim().is_empty())
}

/// A boolean input (`true`/`false`, case-insensitive).
pub fn input_bool(inputs: &IndexMap<String, String>, key: &str, default: bool) -> bool {
    match input(inputs, key) {
        Some(v) => v.trim().eq_ignore_ascii_case("true"),
        None => default,
    }
}

/// A list input: one item per line or comma-separated; trimmed, empty items dropped.
pub fn input_list(inputs: &IndexMap<String, String>, key: &str) -> Vec<String> {
    input(inputs, key)
        .map(|v| {
            v.lines()
                .flat_map(|l| l.split(','))
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// One item per line, trimmed, empty lines dropped (no comma split: for globs and rules).
pub fn input_lines(inputs: &IndexMap<String, String>, key: &str) -> Vec<String> {
    input(inputs, key)
        .map(|v| {
            v.lines()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// The step's `HOME` (else Gantry's), for `~/` in path inputs.
pub fn home_dir(env: &ActionEnv<'_>) -> String {
    env.env
        .get("HOME")
        .cloned()
        .or_else(|| std::env::var("HOME").ok())
        .unwrap_or_default()
}

/// Runs a built-in's main stage the way the step runner needs it: `with` (evaluated) over
/// the embedded `action.yml` defaults (`eval_default` evaluates a default's template), then
/// [`BuiltinAction::run`]. Returns the inputs (keep them for the post stage) and the result
/// (input warnings are added to [`ActionResult::warnings`]).
pub async fn run_builtin(
    name: &str,
    with: &IndexMap<String, String>,
    eval_default: impl FnMut(&str) -> Result<String, String>,
    env: &ActionEnv<'_>,
) -> Result<(IndexMap<String, String>, ActionResult), BuiltinError> {
    let b = get(name).ok_or_else(|| format!("'{name}' is not a Gantry built-in"))?;
    let meta = metadata(name);
    let inputs = gantry_workflow::action_inputs::resolve_inputs(meta.as_ref(), with, eval_default)?;
    let mut res = b.run(&inputs.values, env).await?;
    let mut warnings = inputs.warnings;
    warnings.append(&mut res.warnings);
    res.warnings = warnings;
    Ok((inputs.values, res))
}
