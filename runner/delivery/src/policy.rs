//! Durations (`30s`, `5m`, `24h`) and the deployment branch/tag policy (`fnmatch`).

use std::time::Duration;

use crate::config::EnvironmentConfig;

/// Why a duration could not be read (the message names the text and what would do).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DurationError(String);

/// Why a ref may not deploy to an environment (its branch or tag rules).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RefNotAllowed(String);

/// A gate's refusal reason is text (`DeliveryGates::admit`'s error).
impl From<RefNotAllowed> for String {
    fn from(e: RefNotAllowed) -> String {
        e.0
    }
}

/// Parses `30s`, `5m`, `24h`, `2d`, `1h30m`, `250ms`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    parse_duration_text(text).map_err(DurationError)
}

fn parse_duration_text(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(n) = t.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("invalid duration `{text}` (use e.g. 30s, 5m, 24h)"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration `{text}`"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let d = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            "d" => Duration::from_secs(n * 86400),
            _ => {
                return Err(format!(
                    "invalid duration `{text}`: unknown unit `{unit}` (use ms, s, m, h, d)"
                ));
            }
        };
        total += d;
    }
    Ok(total)
}

/// Formats a duration compactly (`1m30s`, `250ms`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if sec > 0 || out.is_empty() {
        out.push_str(&format!("{sec}s"));
    }
    out
}

/// `fnmatch`-style matching as GitHub applies to deployment branch/tag policies: `*`
/// matches any run of characters except `/`, `**` also crosses `/`, `?` one non-`/`
/// character; everything else literally.
pub fn fnmatch(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some(b'*') => {
                let double = p.get(1) == Some(&b'*');
                let rest = if double { &p[2..] } else { &p[1..] };
                for i in 0..=t.len() {
                    if go(rest, &t[i..]) {
                        return true;
                    }
                    if i < t.len() && t[i] == b'/' && !double {
                        return false;
                    }
                }
                false
            }
            Some(b'?') => !t.is_empty() && t[0] != b'/' && go(&p[1..], &t[1..]),
            Some(c) => t.first() == Some(c) && go(&p[1..], &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

impl EnvironmentConfig {
    /// The deployment branch/tag policy: `Err` says why `git_ref` may not deploy here.
    pub fn check_ref(&self, git_ref: &str) -> Result<(), RefNotAllowed> {
        if self.branches.is_none() && self.tags.is_none() {
            return Ok(());
        }
        let (kind_, name, list) = if let Some(b) = git_ref.strip_prefix("refs/heads/") {
            ("branch", b, &self.branches)
        } else if let Some(t) = git_ref.strip_prefix("refs/tags/") {
            ("tag", t, &self.tags)
        } else {
            ("ref", git_ref, &self.branches)
        };
        let patterns = list.as_deref().unwrap_or(&[]);
        if patterns
            .iter()
            .any(|p| fnmatch(p, name) || fnmatch(p, git_ref))
        {
            return Ok(());
        }
        Err(RefNotAllowed(format!(
            "{kind_} `{name}` may not deploy to environment `{}` (allowed {}s: {})",
            self.name,
            kind_,
            if patterns.is_empty() {
                "none".to_string()
            } else {
                patterns.join(", ")
            }
        )))
    }
}
