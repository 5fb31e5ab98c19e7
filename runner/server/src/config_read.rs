//! Reading the parts of `gantry-server.yml` from the positioned tree, with a diagnostic for
//! every problem (the config module holds the types and the top level).

use std::time::Duration;

use gantry_workflow::{Diagnostic, Node, Severity, Span, Spanned};
use indexmap::IndexMap;

use crate::config::{
    Environment, Forge, LabelTarget, Limits, Repository, Role, Secret, User, parse_duration,
    token_sha256,
};

type Entries<'a> = &'a [(Spanned<String>, Spanned<Node>)];

pub(crate) struct Reader<'a> {
    file: String,
    env: &'a dyn Fn(&str) -> Option<String>,
    pub diags: Vec<Diagnostic>,
}

impl<'a> Reader<'a> {
    pub fn new(file: &str, env: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Reader {
            file: file.to_string(),
            env,
            diags: Vec::new(),
        }
    }

    pub fn error(&mut self, span: Span, message: String) {
        self.diags.push(Diagnostic {
            file: self.file.clone(),
            span,
            severity: Severity::Error,
            message,
        });
    }

    pub fn check<T>(
        &mut self,
        at: &Spanned<Node>,
        v: Option<T>,
        msg: impl FnOnce() -> String,
    ) -> Option<T> {
        if v.is_none() {
            self.error(at.span, msg());
        }
        v
    }

    /// A mapping whose keys must be among `allowed`; unknown keys are reported.
    pub fn map<'n>(
        &mut self,
        n: &'n Spanned<Node>,
        what: &str,
        allowed: &[&str],
    ) -> Option<Entries<'n>> {
        let Node::Map(entries) = &n.value else {
            self.error(n.span, format!("{what}: expected a mapping"));
            return None;
        };
        for (k, _) in entries {
            if !allowed.is_empty() && !allowed.contains(&k.value.as_str()) {
                self.error(
                    k.span,
                    format!(
                        "{what}: unknown key '{}' (expected one of: {})",
                        k.value,
                        allowed.join(", ")
                    ),
                );
            }
        }
        Some(entries)
    }

    fn seq<'n>(&mut self, n: &'n Spanned<Node>, what: &str) -> Option<&'n [Spanned<Node>]> {
        match &n.value {
            Node::Seq(items) => Some(items),
            _ => {
                self.error(n.span, format!("{what}: expected a list"));
                None
            }
        }
    }

    /// A scalar as text with `${NAME}` references replaced from the environment.
    pub fn string(&mut self, n: &Spanned<Node>, what: &str) -> Option<String> {
        let raw = match &n.value {
            Node::String(s) => s.clone(),
            Node::Number(_) | Node::Bool(_) => n.value.to_json().to_string(),
            _ => {
                self.error(n.span, format!("{what}: expected a string"));
                return None;
            }
        };
        self.interpolate(n.span, &raw, what)
    }

    /// A value that must be given as a `${NAME}` reference (tokens, secrets): a literal
    /// secret in a config file would end up in backups and version control.
    fn secret(&mut self, n: &Spanned<Node>, what: &str) -> Option<Secret> {
        let Node::String(raw) = &n.value else {
            self.error(n.span, format!("{what}: expected \"${{NAME}}\""));
            return None;
        };
        let t = raw.trim();
        let is_ref =
            t.starts_with("${") && t.ends_with('}') && t[2..t.len() - 1].find('}').is_none();
        if !is_ref {
            self.error(
                n.span,
                format!("{what}: give the value as \"${{NAME}}\" and set NAME in the environment (secrets are not written in the config)"),
            );
            return None;
        }
        let v = self.interpolate(n.span, t, what)?;
        if v.is_empty() {
            self.error(n.span, format!("{what}: the environment variable is empty"));
            return None;
        }
        Some(Secret::new(v))
    }

    fn interpolate(&mut self, span: Span, raw: &str, what: &str) -> Option<String> {
        let mut out = String::new();
        let mut rest = raw;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                self.error(span, format!("{what}: unterminated '${{' reference"));
                return None;
            };
            let name = &after[..end];
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                self.error(
                    span,
                    format!("{what}: '{name}' is not an environment variable name"),
                );
                return None;
            }
            match (self.env)(name) {
                Some(v) => out.push_str(&v),
                None => {
                    self.error(
                        span,
                        format!("{what}: environment variable {name} is not set"),
                    );
                    return None;
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Some(out)
    }

    fn bool(&mut self, n: &Spanned<Node>, what: &str) -> Option<bool> {
        match n.value {
            Node::Bool(b) => Some(b),
            _ => {
                self.error(n.span, format!("{what}: expected true or false"));
                None
            }
        }
    }

    pub fn positive_int(&mut self, n: &Spanned<Node>, what: &str) -> Option<u64> {
        match n.value {
            Node::Number(x) if x >= 1.0 && x.fract() == 0.0 && x < 1e9 => Some(x as u64),
            _ => {
                self.error(
                    n.span,
                    format!("{what}: expected a whole number of at least 1"),
                );
                None
            }
        }
    }

    /// Minutes above 0, fractions allowed (as `timeout-minutes`, so a test can say 0.05).
    fn minutes(&mut self, n: &Spanned<Node>, what: &str) -> Option<f64> {
        match n.value {
            Node::Number(x) if x.is_finite() && x > 0.0 => Some(x),
            _ => {
                self.error(
                    n.span,
                    format!("{what}: expected a number of minutes above 0 (such as 360 or 0.5)"),
                );
                None
            }
        }
    }

    fn duration(&mut self, n: &Spanned<Node>, what: &str) -> Option<Duration> {
        let s = self.string(n, what)?;
        let d = parse_duration(&s);
        self.check(n, d, || {
            format!("{what}: '{s}' is not a duration (such as 0s, 30m, 1h30m, 2d)")
        })
    }

    fn strings(&mut self, n: &Spanned<Node>, what: &str) -> Vec<String> {
        let Some(items) = self.seq(n, what) else {
            return Vec::new();
        };
        items.iter().filter_map(|i| self.string(i, what)).collect()
    }

    fn plain_map(&mut self, n: &Spanned<Node>, what: &str) -> IndexMap<String, String> {
        let Some(entries) = self.map(n, what, &[]) else {
            return IndexMap::new();
        };
        entries
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    k.value.clone(),
                    self.string(v, &format!("{what}.{}", k.value))?,
                ))
            })
            .collect()
    }

    fn secret_map(&mut self, n: &Spanned<Node>, what: &str) -> IndexMap<String, Secret> {
        let Some(entries) = self.map(n, what, &[]) else {
            return IndexMap::new();
        };
        entries
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    k.value.clone(),
                    self.secret(v, &format!("{what}.{}", k.value))?,
                ))
            })
            .collect()
    }
}

/// The value of a required key, or an error at the mapping.
fn required<'n>(
    r: &mut Reader,
    at: &Spanned<Node>,
    entries: Entries<'n>,
    key: &str,
    what: &str,
) -> Option<&'n Spanned<Node>> {
    let v = entries.iter().find(|(k, _)| k.value == key).map(|(_, v)| v);
    if v.is_none() {
        r.error(at.span, format!("{what}: '{key}' is required"));
    }
    v
}

pub(crate) fn users(r: &mut Reader, n: &Spanned<Node>) -> Vec<User> {
    let mut out: Vec<User> = Vec::new();
    let Some(items) = r.seq(n, "users") else {
        return out;
    };
    for item in items {
        let Some(m) = r.map(item, "users[]", &["login", "token", "role"]) else {
            continue;
        };
        let login = required(r, item, m, "login", "user").and_then(|v| r.string(v, "login"));
        let token = required(r, item, m, "token", "user").and_then(|v| r.secret(v, "token"));
        let role = required(r, item, m, "role", "user").and_then(|v| {
            let s = r.string(v, "role")?;
            r.check(v, Role::parse(&s), || {
                format!("role: '{s}' is not a role (read, write or admin)")
            })
        });
        if let (Some(login), Some(token), Some(role)) = (login, token, role) {
            if out.iter().any(|u| u.login == login) {
                r.error(item.span, format!("user '{login}' is listed twice"));
                continue;
            }
            let token_sha256 = token_sha256(token.expose());
            if out.iter().any(|u| u.token_sha256 == token_sha256) {
                r.error(
                    item.span,
                    format!("user '{login}' has the same token as another user"),
                );
                continue;
            }
            out.push(User {
                login,
                token_sha256,
                role,
            });
        }
    }
    out
}

pub(crate) fn repositories(r: &mut Reader, n: &Spanned<Node>) -> Vec<Repository> {
    const KEYS: &[&str] = &[
        "name",
        "url",
        "token",
        "forge",
        "webhook_secret",
        "secrets",
        "vars",
        "environments",
    ];
    let mut out: Vec<Repository> = Vec::new();
    let Some(items) = r.seq(n, "repositories") else {
        return out;
    };
    for item in items {
        let Some(m) = r.map(item, "repositories[]", KEYS) else {
            continue;
        };
        let name = required(r, item, m, "name", "repository").and_then(|v| {
            let s = r.string(v, "name")?;
            let ok = s.split('/').count() == 2 && s.split('/').all(|p| !p.is_empty());
            r.check(v, ok.then_some(s.clone()), || {
                format!("name: '{s}' is not owner/name")
            })
        });
        let url = required(r, item, m, "url", "repository").and_then(|v| clone_url(r, v));
        let token = m
            .iter()
            .find(|(k, _)| k.value == "token")
            .and_then(|(_, v)| {
                let t = r.secret(v, "token")?;
                let url = url.as_deref()?;
                match token_refused(url) {
                    Some(why) => {
                        r.error(v.span, format!("token: {why}"));
                        None
                    }
                    None => Some(t),
                }
            });
        let forge = required(r, item, m, "forge", "repository").and_then(|v| {
            let s = r.string(v, "forge")?;
            r.check(v, Forge::parse(&s), || {
                format!("forge: '{s}' is not one of github, gitea, forgejo, gitlab")
            })
        });
        let secret = required(r, item, m, "webhook_secret", "repository")
            .and_then(|v| r.secret(v, "webhook_secret"));
        let mut repo_secrets = IndexMap::new();
        let mut vars = IndexMap::new();
        let mut environments = IndexMap::new();
        for (k, v) in m {
            match k.value.as_str() {
                "secrets" => repo_secrets = r.secret_map(v, "secrets"),
                "vars" => vars = r.plain_map(v, "vars"),
                "environments" => {
                    if let Some(envs) = r.map(v, "environments", &[]) {
                        for (ek, ev) in envs {
                            if let Some(e) = environment(r, ev, &ek.value) {
                                environments.insert(ek.value.clone(), e);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        if let (Some(name), Some(url), Some(forge), Some(webhook_secret)) =
            (name, url, forge, secret)
        {
            if out.iter().any(|x| x.name.eq_ignore_ascii_case(&name)) {
                r.error(item.span, format!("repository '{name}' is listed twice"));
                continue;
            }
            out.push(Repository {
                name,
                url,
                token,
                forge,
                webhook_secret,
                secrets: repo_secrets,
                vars,
                environments,
            });
        }
    }
    out
}

/// A repository's `url:`: `file://`, `https://`, `http://`, `ssh://` or scp-like `git@…`.
/// An `http(s)://` URL with a password in it (`https://user:TOKEN@host/…`) is refused: the
/// URL is kept and shown (messages, the mirror's records), and a token belongs in `token:`
/// as a `${NAME}` reference like every secret of this file. A user name alone may stay
/// (some forges want a particular one with a token); it is shown as `***` all the same.
fn clone_url(r: &mut Reader, v: &Spanned<Node>) -> Option<String> {
    let s = r.string(v, "url")?;
    let shown = gantry_git::transport::redact_url(&s);
    let ok = ["file://", "https://", "http://", "ssh://", "git@"]
        .iter()
        .any(|p| s.starts_with(p));
    if !ok {
        r.error(
            v.span,
            format!("url: '{shown}' is not a file://, https:// or ssh clone URL"),
        );
        return None;
    }
    if let Some(rest) = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
    {
        let authority = rest.split('/').next().unwrap_or_default();
        if authority
            .rsplit_once('@')
            .is_some_and(|(user, _)| user.contains(':'))
        {
            r.error(
                v.span,
                format!(
                    "url: '{shown}' has a password or token in it; remove it from the URL and \
                     give it as `token: \"${{NAME}}\"` (read from the environment, never shown)"
                ),
            );
            return None;
        }
    }
    Some(s)
}

/// Why `token:` cannot be used with this clone URL, if it cannot.
fn token_refused(url: &str) -> Option<&'static str> {
    if url.starts_with("https://") {
        None
    } else if url.starts_with("http://") {
        Some("would be sent unencrypted over http://; use the repository's https:// URL")
    } else {
        Some("is sent to https:// URLs only (file:// needs none; ssh uses the ssh agent's keys)")
    }
}

fn environment(r: &mut Reader, n: &Spanned<Node>, name: &str) -> Option<Environment> {
    const KEYS: &[&str] = &[
        "reviewers",
        "required_approvals",
        "prevent_self_review",
        "wait_timer",
        "branches",
        "tags",
        "secrets",
        "vars",
    ];
    let what = format!("environment '{name}'");
    let m = r.map(n, &what, KEYS)?;
    let mut e = Environment {
        reviewers: Vec::new(),
        required_approvals: 0,
        prevent_self_review: false,
        wait_timer: Duration::ZERO,
        branches: Vec::new(),
        tags: Vec::new(),
        secrets: IndexMap::new(),
        vars: IndexMap::new(),
    };
    let mut required_at = None;
    for (k, v) in m {
        match k.value.as_str() {
            "reviewers" => e.reviewers = r.strings(v, "reviewers"),
            "required_approvals" => {
                if let Some(x) = r.positive_int(v, "required_approvals") {
                    e.required_approvals = x as u32;
                    required_at = Some(v);
                }
            }
            "prevent_self_review" => {
                e.prevent_self_review = r.bool(v, "prevent_self_review").unwrap_or(false)
            }
            "wait_timer" => e.wait_timer = r.duration(v, "wait_timer").unwrap_or_default(),
            "branches" => e.branches = r.strings(v, "branches"),
            "tags" => e.tags = r.strings(v, "tags"),
            "secrets" => e.secrets = r.secret_map(v, "secrets"),
            "vars" => e.vars = r.plain_map(v, "vars"),
            _ => {}
        }
    }
    if !e.reviewers.is_empty() && e.required_approvals == 0 {
        e.required_approvals = 1;
    }
    if let Some(at) = required_at
        && e.required_approvals as usize > e.reviewers.len()
    {
        r.error(
            at.span,
            format!(
                "required_approvals: {} approvals required but only {} reviewer(s) listed",
                e.required_approvals,
                e.reviewers.len()
            ),
        );
    }
    Some(e)
}

/// `limits:`; a key not given keeps its default.
pub(crate) fn limits(r: &mut Reader, n: &Spanned<Node>, limits: &mut Limits) {
    const KEYS: &[&str] = &["job_timeout_minutes", "run_timeout_minutes"];
    let Some(m) = r.map(n, "limits", KEYS) else {
        return;
    };
    for (k, v) in m {
        let what = format!("limits.{}", k.value);
        match k.value.as_str() {
            "job_timeout_minutes" => {
                if let Some(x) = r.minutes(v, &what) {
                    limits.job_timeout_minutes = x;
                }
            }
            "run_timeout_minutes" => {
                if let Some(x) = r.minutes(v, &what) {
                    limits.run_timeout_minutes = x;
                }
            }
            _ => {}
        }
    }
}

pub(crate) fn labels(r: &mut Reader, n: &Spanned<Node>) -> IndexMap<String, LabelTarget> {
    let mut out = IndexMap::new();
    let Some(entries) = r.map(n, "labels", &[]) else {
        return out;
    };
    for (k, v) in entries {
        let Some(s) = r.string(v, "labels") else {
            continue;
        };
        let target = if s == "host" {
            Some(LabelTarget::Host)
        } else {
            s.strip_prefix("docker://")
                .filter(|i| !i.is_empty())
                .map(|i| LabelTarget::Docker(i.to_string()))
        };
        if let Some(t) = r.check(v, target, || {
            format!(
                "labels.{}: '{s}' is neither 'host' nor 'docker://IMAGE'",
                k.value
            )
        }) {
            out.insert(k.value.clone(), t);
        }
    }
    out
}

/// Every reviewer must be a user of this server (an unknown name could never approve, or
/// could be claimed by whoever registers it later).
pub(crate) fn check_reviewers(r: &mut Reader, root: &Spanned<Node>) {
    let Node::Map(top) = &root.value else {
        return;
    };
    // Logins as written (a user with another problem is still a user, not a second error).
    let logins: Vec<&str> = top
        .iter()
        .filter(|(k, _)| k.value == "users")
        .filter_map(|(_, v)| match &v.value {
            Node::Seq(items) => Some(items),
            _ => None,
        })
        .flatten()
        .filter_map(|u| match &u.value {
            Node::Map(m) => m.iter().find(|(k, _)| k.value == "login"),
            _ => None,
        })
        .filter_map(|(_, v)| match &v.value {
            Node::String(s) => Some(s.as_str()),
            _ => None,
        })
        .collect();
    let Some((_, repos)) = top.iter().find(|(k, _)| k.value == "repositories") else {
        return;
    };
    let Node::Seq(items) = &repos.value else {
        return;
    };
    for item in items {
        for (env_name, reviewers) in reviewer_nodes(item) {
            for rv in reviewers {
                if let Node::String(login) = &rv.value
                    && !logins.contains(&login.as_str())
                {
                    r.error(
                        rv.span,
                        format!("environment '{env_name}': reviewer '{login}' is not a user of this server"),
                    );
                }
            }
        }
    }
}

fn reviewer_nodes(repo: &Spanned<Node>) -> Vec<(String, &[Spanned<Node>])> {
    let mut out = Vec::new();
    let Node::Map(m) = &repo.value else {
        return out;
    };
    let Some((_, envs)) = m.iter().find(|(k, _)| k.value == "environments") else {
        return out;
    };
    let Node::Map(envs) = &envs.value else {
        return out;
    };
    for (name, e) in envs {
        if let Node::Map(keys) = &e.value
            && let Some((
                _,
                Spanned {
                    value: Node::Seq(items),
                    ..
                },
            )) = keys.iter().find(|(k, _)| k.value == "reviewers")
        {
            out.push((name.value.clone(), items.as_slice()));
        }
    }
    out
}
