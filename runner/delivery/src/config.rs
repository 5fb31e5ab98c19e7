//! The delivery model of `.gantry/config.yml` and its conversion from the positioned YAML
//! tree ([`gantry_workflow::Node`]) with `file:line:col` diagnostics.
//!
//! YAML itself is parsed by `gantry_workflow` (the only module that touches YAML); this
//! module only walks the resulting [`Spanned<Node>`] tree.

use std::time::Duration;

pub use crate::policy::{fnmatch, format_duration, parse_duration};
use indexmap::IndexMap;

/// The whole delivery configuration.
#[derive(Debug, Clone, Default)]
pub struct DeliveryConfig {
    pub environments: IndexMap<String, EnvironmentConfig>,
    pub notifications: Notifications,
    /// `images:`: the local image for an image name workflows use (`--image` overrides).
    pub images: IndexMap<String, String>,
}

impl DeliveryConfig {
    /// The environment of that name, compared case-insensitively as GitHub does
    /// (`environment: PRODUCTION` is `production`, with all its rules).
    pub fn environment(&self, name: &str) -> Option<&EnvironmentConfig> {
        self.environments.get(name).or_else(|| {
            self.environments
                .values()
                .find(|e| e.name.eq_ignore_ascii_case(name))
        })
    }

    /// Whether `name` is a secret of some environment: such a secret is withheld from
    /// every job until the gate admits a job of that environment (names compare
    /// case-insensitively, as secret names do on GitHub).
    pub fn is_environment_secret(&self, name: &str) -> bool {
        self.environments
            .values()
            .any(|e| e.secrets.iter().any(|s| s.eq_ignore_ascii_case(name)))
    }
}

/// One `environments.<name>` entry.
#[derive(Debug, Clone)]
pub struct EnvironmentConfig {
    pub name: String,
    pub reviewers: Vec<String>,
    pub required_approvals: u32,
    pub prevent_self_review: bool,
    pub wait_timer: Option<Duration>,
    /// Branch patterns (`*` does not cross `/`); `None` = no branch restriction given.
    pub branches: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
    pub approval_timeout: Duration,
    /// Names of environment secrets released after approval.
    pub secrets: Vec<String>,
    pub vars: IndexMap<String, String>,
    pub health_check: Option<HealthCheckConfig>,
    pub rollback: Option<RollbackConfig>,
}

impl EnvironmentConfig {
    pub fn new(name: &str) -> Self {
        EnvironmentConfig {
            name: name.to_string(),
            reviewers: Vec::new(),
            required_approvals: 1,
            prevent_self_review: false,
            wait_timer: None,
            branches: None,
            tags: None,
            approval_timeout: DEFAULT_APPROVAL_TIMEOUT,
            secrets: Vec::new(),
            vars: IndexMap::new(),
            health_check: None,
            rollback: None,
        }
    }

    /// Whether this environment needs approvals before a job may start.
    pub fn needs_approval(&self) -> bool {
        !self.reviewers.is_empty()
    }
}

/// GitHub's limit: a pending deployment fails after 30 days.
pub const DEFAULT_APPROVAL_TIMEOUT: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, Clone)]
pub struct HealthCheckConfig {
    pub initial_delay: Duration,
    pub interval: Duration,
    /// Number of measurements per probe; 0 = measure until `deadline`.
    pub count: u32,
    pub deadline: Option<Duration>,
    pub probes: Vec<ProbeConfig>,
    pub on_failure: OnFailure,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            initial_delay: Duration::ZERO,
            interval: Duration::from_secs(10),
            count: 1,
            deadline: None,
            probes: Vec::new(),
            on_failure: OnFailure::Rollback,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    Rollback,
    Fail,
}

#[derive(Debug, Clone)]
pub struct ProbeConfig {
    pub name: String,
    pub kind: ProbeKind,
    /// Failed measurements tolerated (Argo `failureLimit`, default 0).
    pub failure_limit: u32,
    /// Consecutive transport errors tolerated (Argo `consecutiveErrorLimit`, default 4).
    pub error_limit: u32,
}

#[derive(Debug, Clone)]
pub enum ProbeKind {
    Http(HttpProbe),
    /// A shell command; exit code 0 passes.
    Run(String),
}

#[derive(Debug, Clone)]
pub struct HttpProbe {
    pub url: String,
    pub method: String,
    pub timeout: Duration,
    /// Accepted statuses; empty = any 2xx.
    pub expect_status: Vec<u16>,
    pub json_path: Option<String>,
    pub expect: Option<Expect>,
    pub headers: IndexMap<String, String>,
}

impl HttpProbe {
    pub fn get(url: &str) -> Self {
        HttpProbe {
            url: url.to_string(),
            method: "GET".into(),
            timeout: Duration::from_secs(10),
            expect_status: Vec::new(),
            json_path: None,
            expect: None,
            headers: IndexMap::new(),
        }
    }
}

/// The expected value of a probe result: a literal (compared as text) or `/regex/`.
#[derive(Debug, Clone)]
pub enum Expect {
    Value(String),
    Regex(regex::Regex),
}

/// An `expect: /regex/` that is not a valid regex.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid regex {text}: {source}")]
pub struct ExpectError {
    text: String,
    source: regex::Error,
}

impl Expect {
    pub fn parse(text: &str) -> Result<Expect, ExpectError> {
        if text.len() >= 2 && text.starts_with('/') && text.ends_with('/') {
            regex::Regex::new(&text[1..text.len() - 1])
                .map(Expect::Regex)
                .map_err(|source| ExpectError {
                    text: text.to_string(),
                    source,
                })
        } else {
            Ok(Expect::Value(text.to_string()))
        }
    }

    pub fn matches(&self, value: &str) -> bool {
        match self {
            Expect::Value(v) => v == value,
            Expect::Regex(r) => r.is_match(value),
        }
    }
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expect::Value(v) => write!(f, "{v:?}"),
            Expect::Regex(r) => write!(f, "/{}/", r.as_str()),
        }
    }
}

#[derive(Debug, Clone)]
pub enum RollbackConfig {
    Run(String),
    /// Re-run the deploy job at the last successful deployment's commit.
    Previous,
}

#[derive(Debug, Clone, Default)]
pub struct Notifications {
    pub slack: Option<SlackConfig>,
}

#[derive(Debug, Clone, Default)]
pub struct SlackConfig {
    /// Raw text; may be `${{ secrets.NAME }}`.
    pub webhook_url: Option<String>,
    pub bot_token: Option<String>,
    pub channel: Option<String>,
    /// Event names; empty = all events.
    pub events: Vec<String>,
    /// Slack ids mentioned on failures (`U…` users, `S…` groups, `here`, `channel`).
    pub mention_on_failure: Vec<String>,
    /// Web API base (tests point it at a local server).
    pub api_url: Option<String>,
}

/// Events a notification filter may name.
pub const EVENTS: &[&str] = &[
    "run_failed",
    "run_succeeded",
    "approval_requested",
    "approval_decided",
    "deployment_started",
    "deployment_succeeded",
    "deployment_failed",
    "health_check_failed",
    "rolled_back",
];

mod tree;
pub use tree::config_from_node;
