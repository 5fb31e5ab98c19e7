//! Notifications about runs and deployments. Slack is the one sink today; the Slack
//! actions send through the same [`slack::SlackNotifier`].

pub mod slack;

use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;

/// The status shown (emoji and colour).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success,
    Failure,
    Waiting,
    Info,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Failure => "failure",
            Status::Waiting => "waiting",
            Status::Info => "info",
        }
    }
}

/// What a message says about its run.
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    pub repository: String,
    pub git_ref: String,
    pub sha: String,
    pub commit_message: Option<String>,
    pub actor: String,
    pub workflow: String,
    pub run_id: String,
    pub run_url: Option<String>,
    pub job: Option<String>,
    pub environment: Option<String>,
    pub duration: Option<Duration>,
}

/// One notification.
#[derive(Debug, Clone)]
pub struct Notification {
    /// `run_failed`, `approval_requested`, ... (see [`crate::config::EVENTS`]).
    pub event: String,
    pub status: Status,
    pub title: String,
    pub run: RunInfo,
    pub approval_command: Option<String>,
    /// Health figures (on failures).
    pub health: Option<String>,
    pub details: Option<String>,
}

impl Notification {
    /// Run-level outcomes also update the thread's root message in place.
    pub fn updates_root(&self) -> bool {
        matches!(self.event.as_str(), "run_failed" | "run_succeeded")
    }
}

/// The delivery's masking function: the engine's masker ([`gantry_engine::shared_masker`]), so
/// events, health values, rollback output and Slack payloads hide a secret in every form
/// the job log does (as given, base64, JSON/URI/XML escapes, each line of a multi-line
/// value), whatever its length.
pub fn masker(secrets: impl IntoIterator<Item = String>) -> slack::Mask {
    let values: Vec<String> = secrets.into_iter().collect();
    let m = gantry_engine::shared_masker::Masker::with_secrets(values.iter());
    Arc::new(move |s: &str| m.mask(s).into_owned())
}

impl Notification {
    /// A copy with every text field masked: done before the payload is built, because the
    /// payload truncates long texts and a cut through a secret would leave its prefix
    /// unmatched.
    pub fn masked(&self, mask: &(dyn Fn(&str) -> String + Send + Sync)) -> Notification {
        let mo = |s: &Option<String>| s.as_deref().map(mask);
        let r = &self.run;
        Notification {
            event: self.event.clone(),
            status: self.status,
            title: mask(&self.title),
            run: RunInfo {
                repository: mask(&r.repository),
                git_ref: mask(&r.git_ref),
                sha: mask(&r.sha),
                commit_message: mo(&r.commit_message),
                actor: mask(&r.actor),
                workflow: mask(&r.workflow),
                run_id: mask(&r.run_id),
                run_url: mo(&r.run_url),
                job: mo(&r.job),
                environment: mo(&r.environment),
                duration: r.duration,
            },
            approval_command: mo(&self.approval_command),
            health: mo(&self.health),
            details: mo(&self.details),
        }
    }
}

/// Why a notification target could not be put together from the config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    /// A `${{ secrets.X }}` / `${{ env.X }}` reference names nothing set.
    #[error("{0} is not set")]
    Unset(String),
    /// Neither a webhook nor a bot token with a channel.
    #[error("needs webhook_url or bot_token + channel")]
    Incomplete,
}

/// Resolves `${{ secrets.NAME }}` (and `${{ env.NAME }}` from the process environment) in
/// a config value such as `webhook_url`.
pub fn resolve_refs(text: &str, secrets: &IndexMap<String, String>) -> Result<String, RefError> {
    let re = regex::Regex::new(r"\$\{\{\s*(secrets|env)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
        .expect("valid regex");
    let mut err = None;
    let out = re.replace_all(text, |c: &regex::Captures| {
        let (ctx, name) = (&c[1], &c[2]);
        let v = if ctx == "secrets" {
            secrets.get(name).cloned()
        } else {
            std::env::var(name).ok()
        };
        v.unwrap_or_else(|| {
            err = Some(RefError::Unset(format!("{ctx}.{name}")));
            String::new()
        })
    });
    match err {
        Some(e) => Err(e),
        None => Ok(out.into_owned()),
    }
}
