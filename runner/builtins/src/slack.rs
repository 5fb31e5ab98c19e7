//! `8398a7/action-slack` and `slackapi/slack-github-action`: the inputs mapped to a Slack
//! incoming-webhook payload and POSTed to the webhook (input or `SLACK_WEBHOOK_URL`).

use async_trait::async_trait;
use indexmap::IndexMap;
use serde_json::{Value, json};

use super::{ActionEnv, ActionResult, BuiltinAction, BuiltinError, GithubFacts, input, input_list};

/// POSTs JSON to a webhook; the URL is never logged (it is a secret).
pub async fn post_json(url: &str, body: &Value) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let resp = client
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| format!("cannot reach the Slack webhook: {}", e.without_url()))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(format!("Slack webhook answered {status}: {text}"));
    }
    Ok(text)
}

fn webhook(
    inputs: &IndexMap<String, String>,
    env: &ActionEnv<'_>,
    key: &str,
) -> Result<String, String> {
    input(inputs, key)
        .map(str::to_string)
        .or_else(|| {
            env.env
                .get("SLACK_WEBHOOK_URL")
                .filter(|s| !s.is_empty())
                .cloned()
        })
        .ok_or_else(|| {
            format!("no webhook URL: set the `{key}` input or the SLACK_WEBHOOK_URL env")
        })
        .and_then(|url| {
            if env.offline && !loopback_url(&url) {
                // The URL is a secret: never in the message.
                Err("offline: not posting to the Slack webhook (only loopback URLs are reachable with --offline)".into())
            } else {
                Ok(url)
            }
        })
}

/// Whether `url` points at this machine (`http://127.0.0.1:…`, `localhost`, `[::1]`).
fn loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = host.rsplit_once('@').map(|(_, h)| h).unwrap_or(host);
    let host = if host.starts_with('[') {
        host.split(']').next().unwrap_or("").trim_start_matches('[')
    } else {
        host.split(':').next().unwrap_or("")
    };
    host == "localhost" || host.starts_with("127.") || host == "::1"
}

/// The `8398a7/action-slack` payload for `status` and `fields`.
pub fn action_slack_payload(
    inputs: &IndexMap<String, String>,
    g: &GithubFacts,
) -> Result<Value, String> {
    let status = input(inputs, "status")
        .unwrap_or("success")
        .to_ascii_lowercase();
    if status == "custom" {
        let p = input(inputs, "custom_payload").ok_or("status: custom needs custom_payload")?;
        return serde_json::from_str(p).map_err(|e| format!("custom_payload is not JSON: {e}"));
    }
    let (color, word) = match status.as_str() {
        "success" => ("good", "Succeeded"),
        "failure" => ("danger", "Failed"),
        "cancelled" => ("warning", "Cancelled"),
        other => {
            return Err(format!(
                "status '{other}' is not success, failure, cancelled or custom"
            ));
        }
    };
    let mut fields_wanted = input_list(inputs, "fields");
    if fields_wanted.iter().any(|f| f == "all") {
        fields_wanted = [
            "repo",
            "message",
            "commit",
            "author",
            "action",
            "eventName",
            "ref",
            "workflow",
            "job",
            "took",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
    }
    if fields_wanted.is_empty() {
        fields_wanted = vec!["repo".into(), "commit".into()];
    }
    let server = if g.server_url.is_empty() {
        "https://github.com"
    } else {
        &g.server_url
    };
    let head_message = g
        .event
        .pointer("/head_commit/message")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let author = g
        .event
        .pointer("/head_commit/author/name")
        .and_then(|v| v.as_str())
        .unwrap_or(&g.actor)
        .to_string();
    let mut fields = Vec::new();
    for f in &fields_wanted {
        let (title, value) = match f.as_str() {
            "repo" => (
                "repo",
                format!("<{server}/{}|{}>", g.repository, g.repository),
            ),
            "message" => (
                "message",
                head_message.lines().next().unwrap_or("").to_string(),
            ),
            "commit" => (
                "commit",
                format!(
                    "<{server}/{}/commit/{}|{}>",
                    g.repository,
                    g.sha,
                    g.sha.chars().take(8).collect::<String>()
                ),
            ),
            "author" => ("author", author.clone()),
            "action" => (
                "action",
                format!(
                    "<{server}/{}/actions/runs/{}|action>",
                    g.repository, g.run_id
                ),
            ),
            "eventName" => ("eventName", g.event_name.clone()),
            "ref" => ("ref", g.git_ref.clone()),
            "workflow" => ("workflow", g.workflow.clone()),
            "job" => ("job", g.job.clone()),
            "took" => ("took", String::new()),
            _ => continue,
        };
        fields.push(json!({"title": title, "value": value, "short": true}));
    }
    let mention = input(inputs, "mention").map(|m| {
        m.split(',')
            .map(|x| match x.trim() {
                "here" | "channel" => format!("<!{}>", x.trim()),
                id => format!("<@{id}>"),
            })
            .collect::<Vec<_>>()
            .join(" ")
    });
    let if_mention = input_list(inputs, "if_mention");
    let mut text = input(inputs, "text")
        .map(str::to_string)
        .unwrap_or_else(|| format!("{word}: {} ({})", g.workflow, g.repository));
    if let Some(m) = mention
        && (if_mention.is_empty() || if_mention.iter().any(|s| s == &status || s == "always"))
    {
        text = format!("{m} {text}");
    }
    let mut p = json!({
        "text": text,
        "attachments": [{"color": color, "author_name": input(inputs, "author_name").unwrap_or("8398a7@action-slack"), "fields": fields}],
    });
    for (k, key) in [
        ("username", "username"),
        ("icon_emoji", "icon_emoji"),
        ("icon_url", "icon_url"),
        ("channel", "channel"),
    ] {
        if let Some(v) = input(inputs, key) {
            p[k] = json!(v);
        }
    }
    Ok(p)
}

pub struct ActionSlack;

#[async_trait]
impl BuiltinAction for ActionSlack {
    fn name(&self) -> &'static str {
        "8398a7/action-slack"
    }
    async fn run(
        &self,
        inputs: &IndexMap<String, String>,
        env: &ActionEnv<'_>,
    ) -> Result<ActionResult, BuiltinError> {
        let mut res = ActionResult::default();
        let url = webhook(inputs, env, "webhook_url")?;
        res.masks.push(url.clone());
        let payload = action_slack_payload(inputs, &env.github)?;
        post_json(&url, &payload).await?;
        res.log("Sent the Slack notification");
        Ok(res)
    }
}

pub struct SlackGithubAction;

/// The `slackapi/slack-github-action` payload: `payload` (JSON), `payload-file-path`, or
/// `slack-message`.
pub fn slack_github_payload(
    inputs: &IndexMap<String, String>,
    env: &ActionEnv<'_>,
) -> Result<Value, String> {
    if let Some(p) = input(inputs, "payload") {
        return serde_json::from_str(p).map_err(|e| {
            format!(
                "payload is not valid JSON (YAML payloads are not supported by the built-in): {e}"
            )
        });
    }
    if let Some(f) = input(inputs, "payload-file-path") {
        let text = super::files::read_input_file(env, "payload-file-path", f)?;
        return serde_json::from_str(&text).map_err(|e| format!("{f}: not JSON: {e}"));
    }
    if let Some(m) = input(inputs, "slack-message") {
        let mut p = json!({"text": m});
        if let Some(c) = input(inputs, "channel-id") {
            p["channel"] = json!(c);
        }
        return Ok(p);
    }
    Err("one of payload, payload-file-path or slack-message is required".into())
}

#[async_trait]
impl BuiltinAction for SlackGithubAction {
    fn name(&self) -> &'static str {
        "slackapi/slack-github-action"
    }
    async fn run(
        &self,
        inputs: &IndexMap<String, String>,
        env: &ActionEnv<'_>,
    ) -> Result<ActionResult, BuiltinError> {
        let mut res = ActionResult::default();
        if input(inputs, "method").is_some()
            || (input(inputs, "token").is_some() && input(inputs, "webhook").is_none())
        {
            return Err("Slack API methods (method/token) are not supported by the built-in; use a webhook, or --no-builtin slackapi/slack-github-action".into());
        }
        let url = webhook(inputs, env, "webhook")?;
        res.masks.push(url.clone());
        let payload = slack_github_payload(inputs, env)?;
        let body = post_json(&url, &payload).await?;
        res.log("Sent the Slack payload");
        res.output("time", chrono::Utc::now().timestamp().to_string());
        res.output("ok", "true");
        res.output("response", body);
        Ok(res)
    }
}
