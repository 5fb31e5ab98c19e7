//! Slack: incoming webhooks, or the Web API with a bot token (`chat.postMessage` with one
//! thread per run via `thread_ts`, `chat.update` of the thread's root). Block Kit with a
//! `text` fallback and a colour bar, per-event filters, mentions on failure, retries with
//! backoff on 429 (`Retry-After`) and 5xx. Every string is masked before it leaves.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Notification, Status};

/// Where messages go.
#[derive(Debug, Clone)]
pub enum SlackTarget {
    Webhook {
        url: String,
    },
    Api {
        token: String,
        channel: String,
        /// `https://slack.com/api` unless a test points it elsewhere.
        base_url: String,
    },
}

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_retries: u32,
    /// First backoff for 5xx and transport errors (doubled each time).
    pub base_delay: Duration,
    /// Upper bound of one wait (also caps `Retry-After`).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

pub type Mask = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// Why a notification was not delivered (masked; said as a warning, never a failed run).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotifyError(pub String);

pub struct SlackNotifier {
    target: SlackTarget,
    /// Event names to send; empty = all.
    events: Vec<String>,
    mention_on_failure: Vec<String>,
    retry: RetryPolicy,
    client: reqwest::Client,
    mask: Mask,
    /// run id → (channel, ts of the thread's root message).
    threads: tokio::sync::Mutex<HashMap<String, (String, String)>>,
}

impl SlackNotifier {
    pub fn new(target: SlackTarget, mask: Mask) -> Self {
        SlackNotifier {
            target,
            events: Vec::new(),
            mention_on_failure: Vec::new(),
            retry: RetryPolicy::default(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap_or_default(),
            mask,
            threads: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn with_events(mut self, events: Vec<String>) -> Self {
        self.events = events;
        self
    }

    pub fn with_mentions(mut self, ids: Vec<String>) -> Self {
        self.mention_on_failure = ids;
        self
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Whether the per-event filter lets `event` through.
    pub fn wants(&self, event: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == event)
    }

    /// Sends `n` if its event passes the filter. `Err` is for a warning only: a failed
    /// notification never fails a pipeline.
    pub async fn notify(&self, n: &Notification) -> Result<(), NotifyError> {
        self.deliver(n).await.map_err(NotifyError)
    }

    async fn deliver(&self, n: &Notification) -> Result<(), String> {
        if !self.wants(&n.event) {
            return Ok(());
        }
        let mut payload = build_payload(&n.masked(&*self.mask), &self.mention_on_failure);
        mask_json(&mut payload, &*self.mask);
        match &self.target {
            SlackTarget::Webhook { url } => self.post(url, None, &payload).await.map(|_| ()),
            SlackTarget::Api {
                token,
                channel,
                base_url,
            } => {
                let mut threads = self.threads.lock().await;
                let base = base_url.trim_end_matches('/');
                match threads.get(&n.run.run_id).cloned() {
                    None => {
                        payload["channel"] = json!(channel);
                        let resp = self
                            .post(&format!("{base}/chat.postMessage"), Some(token), &payload)
                            .await?;
                        if let Some(ts) = resp.get("ts").and_then(Value::as_str) {
                            let ch = resp
                                .get("channel")
                                .and_then(Value::as_str)
                                .unwrap_or(channel)
                                .to_string();
                            threads.insert(n.run.run_id.clone(), (ch, ts.to_string()));
                        }
                        Ok(())
                    }
                    Some((ch, root_ts)) => {
                        if n.updates_root() {
                            let mut upd = payload.clone();
                            upd["channel"] = json!(ch);
                            upd["ts"] = json!(root_ts);
                            self.post(&format!("{base}/chat.update"), Some(token), &upd)
                                .await?;
                        }
                        payload["channel"] = json!(ch);
                        payload["thread_ts"] = json!(root_ts);
                        self.post(&format!("{base}/chat.postMessage"), Some(token), &payload)
                            .await
                            .map(|_| ())
                    }
                }
            }
        }
    }

    /// POSTs JSON with retries; returns the Web API's JSON answer (or `null` for webhooks).
    async fn post(&self, url: &str, token: Option<&str>, body: &Value) -> Result<Value, String> {
        let mut attempt = 0u32;
        loop {
            let mut rb = self.client.post(url).json(body);
            if let Some(t) = token {
                rb = rb.bearer_auth(t);
            }
            let wait = match rb.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    if status.is_success() {
                        let text = resp.text().await.unwrap_or_default();
                        if token.is_none() {
                            return Ok(Value::Null);
                        }
                        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                        if v.get("ok").and_then(Value::as_bool) == Some(true) {
                            return Ok(v);
                        }
                        let err = v
                            .get("error")
                            .and_then(Value::as_str)
                            .unwrap_or("unexpected answer");
                        return Err(format!("Slack API error: {}", (self.mask)(err)));
                    }
                    if status.as_u16() == 429 {
                        let secs = resp
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.trim().parse::<u64>().ok())
                            .unwrap_or(1);
                        (Duration::from_secs(secs), format!("HTTP {status}"))
                    } else if status.is_server_error() {
                        (self.backoff(attempt), format!("HTTP {status}"))
                    } else {
                        let text = resp.text().await.unwrap_or_default();
                        return Err(format!(
                            "Slack answered HTTP {status}: {}",
                            (self.mask)(text.trim())
                        ));
                    }
                }
                Err(e) => (
                    self.backoff(attempt),
                    format!("transport error: {}", (self.mask)(&e.to_string())),
                ),
            };
            let (delay, why) = wait;
            if attempt >= self.retry.max_retries {
                return Err(format!(
                    "Slack notification failed after {} attempts: {why}",
                    attempt + 1
                ));
            }
            tokio::time::sleep(delay.min(self.retry.max_delay)).await;
            attempt += 1;
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        self.retry
            .base_delay
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.retry.max_delay)
    }
}

fn color(status: Status) -> &'static str {
    match status {
        Status::Success => "good",
        Status::Failure => "danger",
        Status::Waiting => "warning",
        Status::Info => "#439FE0",
    }
}

fn emoji(status: Status) -> &'static str {
    match status {
        Status::Success => "✅",
        Status::Failure => "❌",
        Status::Waiting => "⏸️",
        Status::Info => "ℹ️",
    }
}

fn mention(id: &str) -> String {
    match id {
        "here" | "channel" | "everyone" => format!("<!{id}>"),
        s if s.starts_with('S') => format!("<!subteam^{s}>"),
        s if s.starts_with('<') => s.to_string(),
        s => format!("<@{s}>"),
    }
}

/// The Block Kit payload: `text` fallback, `blocks`, and an attachment for the colour bar.
pub fn build_payload(n: &Notification, mention_on_failure: &[String]) -> Value {
    let r = &n.run;
    let short = &r.sha[..r.sha.len().min(7)];
    let branch = r
        .git_ref
        .strip_prefix("refs/heads/")
        .or_else(|| r.git_ref.strip_prefix("refs/tags/"))
        .unwrap_or(&r.git_ref);
    let mentions = if n.status == Status::Failure && !mention_on_failure.is_empty() {
        mention_on_failure
            .iter()
            .map(|m| mention(m))
            .collect::<Vec<_>>()
            .join(" ")
            + " "
    } else {
        String::new()
    };
    let header = format!("{} {}", emoji(n.status), n.title);
    let mut text = format!(
        "{mentions}{header} — {} {branch}@{short} by {}",
        r.repository, r.actor
    );
    if let Some(cmd) = &n.approval_command {
        text.push_str(&format!(" — approve with `{cmd}`"));
    }
    if let Some(h) = &n.health {
        text.push_str(&format!(" — health: {h}"));
    }
    if n.updates_root()
        && let Some(d) = &n.details
    {
        // Run-level messages: the failed jobs in the fallback too (plain, no `*bold*`).
        text.push_str(&format!(" — {}", d.replace('*', "").replace('\n', "; ")));
    }

    let mut fields = vec![
        json!({"type": "mrkdwn", "text": format!("*Repository*\n{}", r.repository)}),
        json!({"type": "mrkdwn", "text": format!("*Ref*\n{branch}")}),
        json!({"type": "mrkdwn", "text": format!("*Commit*\n`{short}` {}", r.commit_message.as_deref().unwrap_or(""))}),
        json!({"type": "mrkdwn", "text": format!("*Actor*\n{}", r.actor)}),
        json!({"type": "mrkdwn", "text": format!("*Workflow*\n{} #{}", r.workflow, r.run_id)}),
    ];
    if let Some(job) = &r.job {
        fields.push(json!({"type": "mrkdwn", "text": format!("*Job*\n{job}")}));
    }
    if let Some(env) = &r.environment {
        fields.push(json!({"type": "mrkdwn", "text": format!("*Environment*\n{env}")}));
    }
    if let Some(d) = r.duration {
        fields.push(json!({"type": "mrkdwn", "text": format!("*Duration*\n{}", crate::config::format_duration(d))}));
    }
    fields.push(json!({"type": "mrkdwn", "text": format!("*Status*\n{}", n.status.as_str())}));

    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&header, 150), "emoji": true}}),
    ];
    if !mentions.is_empty() {
        blocks
            .push(json!({"type": "section", "text": {"type": "mrkdwn", "text": mentions.trim()}}));
    }
    if let Some(d) = &n.details {
        blocks.push(
            json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(d, 2900)}}),
        );
    }
    let mut att_blocks = vec![json!({"type": "section", "fields": fields})];
    if let Some(cmd) = &n.approval_command {
        att_blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*Approve from a terminal*\n`{cmd}`")}}));
    }
    if let Some(h) = &n.health {
        att_blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*Health*\n{}", truncate(h, 2900))}}));
    }
    if let Some(url) = &r.run_url {
        att_blocks.push(json!({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "View run"}, "url": url}
        ]}));
    }
    json!({
        "text": text,
        "blocks": blocks,
        "attachments": [{"color": color(n.status), "blocks": att_blocks}],
    })
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n.saturating_sub(1)).collect::<String>() + "…"
    }
}

/// Masks every string in a JSON document.
pub fn mask_json(v: &mut Value, mask: &(dyn Fn(&str) -> String + Send + Sync)) {
    match v {
        Value::String(s) => *s = mask(s),
        Value::Array(a) => a.iter_mut().for_each(|x| mask_json(x, mask)),
        Value::Object(o) => o.values_mut().for_each(|x| mask_json(x, mask)),
        _ => {}
    }
}
