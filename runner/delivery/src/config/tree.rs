//! Conversion of the positioned YAML tree of `.gantry/config.yml` into the model, with
//! `file:line:col` diagnostics.

use std::time::Duration;

use gantry_workflow::{Diagnostic, Node, Severity, Span, Spanned};

use super::*;

type Entries = [(Spanned<String>, Spanned<Node>)];

struct Cx<'f> {
    file: &'f str,
    diags: Vec<Diagnostic>,
}

impl Cx<'_> {
    fn error(&mut self, span: Span, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            file: self.file.to_string(),
            span,
            severity: Severity::Error,
            message: message.into(),
        });
    }

    fn map<'n>(&mut self, n: &'n Spanned<Node>, what: &str) -> Option<&'n Entries> {
        match &n.value {
            Node::Map(entries) => Some(entries),
            Node::Null => Some(&[]),
            other => {
                self.error(
                    n.span,
                    format!("{what}: expected a mapping, found {}", kind(other)),
                );
                None
            }
        }
    }

    /// Reports unknown keys of a mapping.
    fn known_keys(&mut self, entries: &Entries, what: &str, allowed: &[&str]) {
        for (k, _) in entries {
            if !allowed.contains(&k.value.as_str()) {
                self.error(
                    k.span,
                    format!(
                        "unknown key `{}` in {what} (expected one of: {})",
                        k.value,
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    fn string(&mut self, n: &Spanned<Node>, what: &str) -> Option<String> {
        match &n.value {
            Node::String(s) => Some(s.clone()),
            Node::Number(x) => Some(number_text(*x)),
            Node::Bool(b) => Some(b.to_string()),
            other => {
                self.error(
                    n.span,
                    format!("{what}: expected a string, found {}", kind(other)),
                );
                None
            }
        }
    }

    fn strict_string(&mut self, n: &Spanned<Node>, what: &str) -> Option<String> {
        match &n.value {
            Node::String(s) => Some(s.clone()),
            other => {
                self.error(
                    n.span,
                    format!("{what}: expected a string, found {}", kind(other)),
                );
                None
            }
        }
    }

    fn string_list(&mut self, n: &Spanned<Node>, what: &str) -> Option<Vec<String>> {
        match &n.value {
            Node::Seq(items) => {
                let mut out = Vec::new();
                for item in items {
                    if let Some(s) = self.string(item, what) {
                        out.push(s);
                    }
                }
                Some(out)
            }
            Node::String(s) => Some(vec![s.clone()]),
            other => {
                self.error(
                    n.span,
                    format!("{what}: expected a list of strings, found {}", kind(other)),
                );
                None
            }
        }
    }

    fn uint(&mut self, n: &Spanned<Node>, what: &str) -> Option<u32> {
        match &n.value {
            Node::Number(x) if *x >= 0.0 && x.fract() == 0.0 && *x <= u32::MAX as f64 => {
                Some(*x as u32)
            }
            other => {
                self.error(
                    n.span,
                    format!(
                        "{what}: expected a non-negative integer, found {}",
                        describe(other)
                    ),
                );
                None
            }
        }
    }

    fn boolean(&mut self, n: &Spanned<Node>, what: &str) -> Option<bool> {
        match &n.value {
            Node::Bool(b) => Some(*b),
            other => {
                self.error(
                    n.span,
                    format!("{what}: expected true or false, found {}", describe(other)),
                );
                None
            }
        }
    }

    fn duration(&mut self, n: &Spanned<Node>, what: &str) -> Option<Duration> {
        let text = match &n.value {
            Node::String(s) => s.clone(),
            Node::Number(x) if *x >= 0.0 && x.fract() == 0.0 => number_text(*x),
            other => {
                self.error(
                    n.span,
                    format!(
                        "{what}: expected a duration like 30s, 5m or 24h, found {}",
                        describe(other)
                    ),
                );
                return None;
            }
        };
        match parse_duration(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(n.span, format!("{what}: {e}"));
                None
            }
        }
    }
}

fn number_text(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        x.to_string()
    }
}

fn kind(n: &Node) -> &'static str {
    match n {
        Node::Null => "null",
        Node::Bool(_) => "a boolean",
        Node::Number(_) => "a number",
        Node::String(_) => "a string",
        Node::Seq(_) => "a list",
        Node::Map(_) => "a mapping",
    }
}

fn describe(n: &Node) -> String {
    match n {
        Node::String(s) => format!("\"{s}\""),
        Node::Number(x) => number_text(*x),
        Node::Bool(b) => b.to_string(),
        other => kind(other).to_string(),
    }
}

/// Converts the tree of `.gantry/config.yml` (named `file` in diagnostics). The config is
/// returned only when there are no errors. Keys other than `environments` and
/// `notifications` are left to other parts of Gantry.
pub fn config_from_node(
    root: &Spanned<Node>,
    file: &str,
) -> (Option<DeliveryConfig>, Vec<Diagnostic>) {
    let mut cx = Cx {
        file,
        diags: Vec::new(),
    };
    let mut config = DeliveryConfig::default();
    if let Some(entries) = cx.map(root, "config") {
        for (k, v) in entries {
            match k.value.as_str() {
                "environments" => {
                    if let Some(envs) = cx.map(v, "environments") {
                        for (name, env) in envs {
                            // GitHub's environment names are case-insensitive: two spellings
                            // of one name would be two rule sets for the same environment.
                            if let Some(first) = config.environment(&name.value) {
                                let first = first.name.clone();
                                cx.error(
                                    name.span,
                                    format!(
                                        "environments.{}: the same environment as `{first}` (environment names are case-insensitive)",
                                        name.value
                                    ),
                                );
                                continue;
                            }
                            if let Some(e) = environment(&mut cx, &name.value, env) {
                                config.environments.insert(name.value.clone(), e);
                            }
                        }
                    }
                }
                "images" => {
                    if let Some(m) = cx.map(v, "images") {
                        config.images = images(&mut cx, m);
                    }
                }
                "notifications" => {
                    if let Some(n) = cx.map(v, "notifications") {
                        cx.known_keys(n, "notifications", &["slack"]);
                        for (k, v) in n {
                            if k.value == "slack" {
                                config.notifications.slack = slack(&mut cx, v);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let ok = !cx.diags.iter().any(|d| d.severity == Severity::Error);
    (ok.then_some(config), cx.diags)
}

/// `images:`: workflow image name → local image (`postgres:15: gantry/postgres:15`).
fn images(cx: &mut Cx, m: &Entries) -> IndexMap<String, String> {
    let mut out = IndexMap::new();
    for (name, local) in m {
        let what = format!("images.{}", name.value);
        if let Some(l) = cx.strict_string(local, &what) {
            if l.trim().is_empty() || l.contains(char::is_whitespace) {
                cx.error(
                    local.span,
                    format!("{what}: expected a local image name such as gantry/postgres:15"),
                );
                continue;
            }
            out.insert(name.value.trim().to_string(), l);
        }
    }
    out
}

const ENV_KEYS: &[&str] = &[
    "reviewers",
    "required_approvals",
    "prevent_self_review",
    "wait_timer",
    "branches",
    "tags",
    "approval_timeout",
    "secrets",
    "vars",
    "health_check",
    "rollback",
];

fn environment(cx: &mut Cx, name: &str, n: &Spanned<Node>) -> Option<EnvironmentConfig> {
    let what = format!("environments.{name}");
    let entries = cx.map(n, &what)?;
    cx.known_keys(entries, &what, ENV_KEYS);
    let mut env = EnvironmentConfig::new(name);
    let mut required_span = None;
    for (k, v) in entries {
        let w = format!("{what}.{}", k.value);
        match k.value.as_str() {
            "reviewers" => env.reviewers = cx.string_list(v, &w).unwrap_or_default(),
            "required_approvals" => {
                if let Some(n) = cx.uint(v, &w) {
                    if n == 0 {
                        cx.error(v.span, format!("{w}: must be at least 1"));
                    }
                    env.required_approvals = n.max(1);
                    required_span = Some(v.span);
                }
            }
            "prevent_self_review" => env.prevent_self_review = cx.boolean(v, &w).unwrap_or(false),
            "wait_timer" => env.wait_timer = cx.duration(v, &w),
            "branches" => env.branches = cx.string_list(v, &w),
            "tags" => env.tags = cx.string_list(v, &w),
            "approval_timeout" => {
                if let Some(d) = cx.duration(v, &w) {
                    env.approval_timeout = d;
                }
            }
            "secrets" => env.secrets = cx.string_list(v, &w).unwrap_or_default(),
            "vars" => {
                if let Some(m) = cx.map(v, &w) {
                    for (vk, vv) in m {
                        if let Some(s) = cx.string(vv, &format!("{w}.{}", vk.value)) {
                            env.vars.insert(vk.value.clone(), s);
                        }
                    }
                }
            }
            "health_check" => env.health_check = health_check(cx, v, &w),
            "rollback" => env.rollback = rollback(cx, v, &w),
            _ => {}
        }
    }
    if let Some(span) = required_span
        && !env.reviewers.is_empty()
        && env.required_approvals as usize > env.reviewers.len()
    {
        cx.error(
            span,
            format!(
                "{what}.required_approvals: {} approvals required but only {} reviewers listed",
                env.required_approvals,
                env.reviewers.len()
            ),
        );
    }
    Some(env)
}

fn health_check(cx: &mut Cx, n: &Spanned<Node>, what: &str) -> Option<HealthCheckConfig> {
    let entries = cx.map(n, what)?;
    cx.known_keys(
        entries,
        what,
        &[
            "initial_delay",
            "interval",
            "count",
            "deadline",
            "probes",
            "on_failure",
        ],
    );
    let mut hc = HealthCheckConfig::default();
    for (k, v) in entries {
        let w = format!("{what}.{}", k.value);
        match k.value.as_str() {
            "initial_delay" => hc.initial_delay = cx.duration(v, &w).unwrap_or_default(),
            "interval" => {
                if let Some(d) = cx.duration(v, &w) {
                    hc.interval = d;
                }
            }
            "count" => hc.count = cx.uint(v, &w).unwrap_or(1),
            "deadline" => hc.deadline = cx.duration(v, &w),
            "on_failure" => match cx.strict_string(v, &w).as_deref() {
                Some("rollback") => hc.on_failure = OnFailure::Rollback,
                Some("fail") => hc.on_failure = OnFailure::Fail,
                Some(other) => cx.error(
                    v.span,
                    format!("{w}: expected `rollback` or `fail`, found \"{other}\""),
                ),
                None => {}
            },
            "probes" => match &v.value {
                Node::Seq(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let Some(p) = probe(cx, item, &format!("{w}[{i}]")) {
                            hc.probes.push(p);
                        }
                    }
                }
                other => cx.error(
                    v.span,
                    format!("{w}: expected a list, found {}", kind(other)),
                ),
            },
            _ => {}
        }
    }
    if hc.probes.is_empty() {
        cx.error(n.span, format!("{what}: at least one probe is required"));
    }
    if hc.count == 0 && hc.deadline.is_none() {
        cx.error(
            n.span,
            format!("{what}: `count: 0` measures until `deadline`, which is missing"),
        );
    }
    Some(hc)
}

fn probe(cx: &mut Cx, n: &Spanned<Node>, what: &str) -> Option<ProbeConfig> {
    let entries = cx.map(n, what)?;
    cx.known_keys(
        entries,
        what,
        &["name", "http", "run", "failure_limit", "error_limit"],
    );
    let mut name = None;
    let mut kind_: Option<ProbeKind> = None;
    let mut failure_limit = 0;
    let mut error_limit = 4;
    for (k, v) in entries {
        let w = format!("{what}.{}", k.value);
        match k.value.as_str() {
            "name" => name = cx.string(v, &w),
            "run" => {
                if kind_.is_some() {
                    cx.error(
                        k.span,
                        format!("{what}: a probe has either `http` or `run`, not both"),
                    );
                }
                kind_ = cx.strict_string(v, &w).map(ProbeKind::Run);
            }
            "http" => {
                if kind_.is_some() {
                    cx.error(
                        k.span,
                        format!("{what}: a probe has either `http` or `run`, not both"),
                    );
                }
                kind_ = http_probe(cx, v, &w).map(ProbeKind::Http);
            }
            "failure_limit" => failure_limit = cx.uint(v, &w).unwrap_or(0),
            "error_limit" => error_limit = cx.uint(v, &w).unwrap_or(4),
            _ => {}
        }
    }
    let Some(kind_) = kind_ else {
        cx.error(n.span, format!("{what}: a probe needs `http` or `run`"));
        return None;
    };
    let name = name.unwrap_or_else(|| match &kind_ {
        ProbeKind::Http(h) => h.url.clone(),
        ProbeKind::Run(r) => r.clone(),
    });
    Some(ProbeConfig {
        name,
        kind: kind_,
        failure_limit,
        error_limit,
    })
}

fn http_probe(cx: &mut Cx, n: &Spanned<Node>, what: &str) -> Option<HttpProbe> {
    let entries = cx.map(n, what)?;
    cx.known_keys(
        entries,
        what,
        &[
            "url",
            "method",
            "timeout",
            "expect_status",
            "json_path",
            "expect",
            "headers",
        ],
    );
    let mut p = HttpProbe::get("");
    let mut has_url = false;
    for (k, v) in entries {
        let w = format!("{what}.{}", k.value);
        match k.value.as_str() {
            "url" => {
                if let Some(u) = cx.strict_string(v, &w) {
                    if !(u.starts_with("http://") || u.starts_with("https://")) {
                        cx.error(v.span, format!("{w}: expected an http:// or https:// URL"));
                    }
                    p.url = u;
                    has_url = true;
                }
            }
            "method" => {
                if let Some(m) = cx.strict_string(v, &w) {
                    let up = m.to_ascii_uppercase();
                    if !["GET", "POST", "PUT", "HEAD"].contains(&up.as_str()) {
                        cx.error(v.span, format!("{w}: expected GET, POST, PUT or HEAD"));
                    }
                    p.method = up;
                }
            }
            "timeout" => {
                if let Some(d) = cx.duration(v, &w) {
                    p.timeout = d;
                }
            }
            "expect_status" => match &v.value {
                Node::Number(_) => {
                    p.expect_status = cx.uint(v, &w).map(|s| vec![s as u16]).unwrap_or_default()
                }
                Node::Seq(items) => {
                    for item in items {
                        if let Some(s) = cx.uint(item, &w) {
                            if !(100..=599).contains(&s) {
                                cx.error(item.span, format!("{w}: {s} is not an HTTP status"));
                            }
                            p.expect_status.push(s as u16);
                        }
                    }
                }
                other => cx.error(
                    v.span,
                    format!(
                        "{w}: expected a status or a list of statuses, found {}",
                        kind(other)
                    ),
                ),
            },
            "json_path" => {
                if let Some(jp) = cx.strict_string(v, &w) {
                    if let Err(e) = crate::health::parse_json_path(&jp) {
                        cx.error(v.span, format!("{w}: {e}"));
                    }
                    p.json_path = Some(jp);
                }
            }
            "expect" => {
                if let Some(e) = cx.string(v, &w) {
                    match Expect::parse(&e) {
                        Ok(x) => p.expect = Some(x),
                        Err(msg) => cx.error(v.span, format!("{w}: {msg}")),
                    }
                }
            }
            "headers" => {
                if let Some(m) = cx.map(v, &w) {
                    for (hk, hv) in m {
                        if let Some(s) = cx.string(hv, &w) {
                            p.headers.insert(hk.value.clone(), s);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    if !has_url {
        cx.error(n.span, format!("{what}: `url` is required"));
    }
    Some(p)
}

fn rollback(cx: &mut Cx, n: &Spanned<Node>, what: &str) -> Option<RollbackConfig> {
    let entries = cx.map(n, what)?;
    cx.known_keys(entries, what, &["run", "strategy"]);
    let mut out = None;
    for (k, v) in entries {
        let w = format!("{what}.{}", k.value);
        let this = match k.value.as_str() {
            "run" => cx.strict_string(v, &w).map(RollbackConfig::Run),
            "strategy" => match cx.strict_string(v, &w).as_deref() {
                Some("previous") => Some(RollbackConfig::Previous),
                Some(other) => {
                    cx.error(
                        v.span,
                        format!("{w}: expected `previous`, found \"{other}\""),
                    );
                    None
                }
                None => None,
            },
            _ => continue,
        };
        if out.is_some() && this.is_some() {
            cx.error(
                k.span,
                format!("{what}: use either `run` or `strategy`, not both"),
            );
        }
        if this.is_some() {
            out = this;
        }
    }
    if out.is_none() && !cx.diags.iter().any(|d| d.span == n.span) && entries.is_empty() {
        cx.error(
            n.span,
            format!("{what}: needs `run` or `strategy: previous`"),
        );
    }
    out
}

fn slack(cx: &mut Cx, n: &Spanned<Node>) -> Option<SlackConfig> {
    let what = "notifications.slack";
    let entries = cx.map(n, what)?;
    cx.known_keys(
        entries,
        what,
        &[
            "webhook_url",
            "bot_token",
            "channel",
            "events",
            "mention_on_failure",
            "api_url",
        ],
    );
    let mut s = SlackConfig::default();
    for (k, v) in entries {
        let w = format!("{what}.{}", k.value);
        match k.value.as_str() {
            "webhook_url" => s.webhook_url = cx.strict_string(v, &w),
            "bot_token" => s.bot_token = cx.strict_string(v, &w),
            "channel" => s.channel = cx.string(v, &w),
            "api_url" => s.api_url = cx.strict_string(v, &w),
            "mention_on_failure" => {
                s.mention_on_failure = cx.string_list(v, &w).unwrap_or_default()
            }
            "events" => {
                if let Node::Seq(items) = &v.value {
                    for item in items {
                        if let Some(e) = cx.string(item, &w) {
                            if !EVENTS.contains(&e.as_str()) {
                                cx.error(
                                    item.span,
                                    format!(
                                        "{w}: unknown event `{e}` (expected one of: {})",
                                        EVENTS.join(", ")
                                    ),
                                );
                            }
                            s.events.push(e);
                        }
                    }
                } else {
                    cx.error(v.span, format!("{w}: expected a list of event names"));
                }
            }
            _ => {}
        }
    }
    match (&s.webhook_url, &s.bot_token, &s.channel) {
        (Some(_), None, _) | (None, Some(_), Some(_)) => {}
        (Some(_), Some(_), _) => cx.error(
            n.span,
            format!("{what}: use either `webhook_url` or `bot_token` + `channel`, not both"),
        ),
        (None, Some(_), None) => cx.error(n.span, format!("{what}: `bot_token` needs `channel`")),
        (None, None, _) => cx.error(
            n.span,
            format!("{what}: needs `webhook_url` or `bot_token` + `channel`"),
        ),
    }
    Some(s)
}
