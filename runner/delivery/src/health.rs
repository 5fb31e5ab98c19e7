//! Post-deploy health analysis with Argo Rollouts semantics: after `initial_delay`, every
//! `interval` each probe is measured (`count` times, or until `deadline` when count is 0).
//! A measurement is *successful*, *failed* (wrong status, wrong value, non-zero exit) or an
//! *error* (transport error, timeout, command not started). A probe fails when its failed
//! measurements exceed `failure_limit` or its consecutive errors exceed `error_limit`; the
//! analysis fails when any probe fails or the deadline passes first.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::config::{HealthCheckConfig, HttpProbe, ProbeConfig, ProbeKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Successful,
    Failed,
    Error,
}

/// One measurement of one probe.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    pub probe: String,
    /// 1-based measurement number of this probe.
    pub index: u32,
    pub at: DateTime<Utc>,
    pub phase: Phase,
    /// HTTP status, when an HTTP response came back.
    pub status: Option<u16>,
    /// The measured value: the JSON path's value, the body, or the command's last line.
    pub value: Option<String>,
    pub latency_ms: u64,
    /// Why it failed or errored.
    pub message: Option<String>,
}

impl Measurement {
    /// The run event for this measurement (unmasked: the gate's sink masks it).
    pub fn to_event(&self, environment: &str) -> gantry_engine::events::RunEvent {
        gantry_engine::events::RunEvent::HealthMeasurement {
            environment: environment.to_string(),
            probe: self.probe.clone(),
            index: self.index,
            phase: serde_json::to_value(self.phase)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            status: self.status,
            value: self.value.clone(),
            latency_ms: self.latency_ms,
            message: self.message.clone(),
            time: self.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        }
    }

    /// The measurement a `health_measurement` event carries.
    pub fn from_event(ev: &gantry_engine::events::RunEvent) -> Option<Measurement> {
        let gantry_engine::events::RunEvent::HealthMeasurement {
            probe,
            index,
            phase,
            status,
            value,
            latency_ms,
            message,
            time,
            ..
        } = ev
        else {
            return None;
        };
        Some(Measurement {
            probe: probe.clone(),
            index: *index,
            at: DateTime::parse_from_rfc3339(time)
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|_| Utc::now()),
            phase: serde_json::from_value(serde_json::Value::String(phase.clone())).ok()?,
            status: *status,
            value: value.clone(),
            latency_ms: *latency_ms,
            message: message.clone(),
        })
    }

    pub fn line(&self) -> String {
        let mut s = format!(
            "{} #{}: {:?} ({} ms)",
            self.probe, self.index, self.phase, self.latency_ms
        );
        if let Some(st) = self.status {
            s.push_str(&format!(" status={st}"));
        }
        if let Some(v) = &self.value {
            s.push_str(&format!(" value={v:?}"));
        }
        if let Some(m) = &self.message {
            s.push_str(&format!(" — {m}"));
        }
        s
    }
}

/// Per-probe totals.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProbeSummary {
    pub name: String,
    pub successes: u32,
    pub failures: u32,
    pub errors: u32,
    pub consecutive_errors: u32,
    pub failure_limit: u32,
    pub error_limit: u32,
    pub failed: bool,
    pub last_latency_ms: Option<u64>,
}

/// The result of one analysis.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HealthReport {
    pub passed: bool,
    /// Why the analysis failed.
    pub reason: Option<String>,
    pub probes: Vec<ProbeSummary>,
    pub measurements: Vec<Measurement>,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
}

impl HealthReport {
    /// `api: 5/6 ok, 1 failed (limit 1), 0 errors; smoke: ...`
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self
            .probes
            .iter()
            .map(|p| {
                let total = p.successes + p.failures + p.errors;
                format!(
                    "{}: {}/{} ok, {} failed (limit {}), {} errors (limit {})",
                    p.name,
                    p.successes,
                    total,
                    p.failures,
                    p.failure_limit,
                    p.errors,
                    p.error_limit
                )
            })
            .collect();
        if let Some(r) = &self.reason {
            parts.push(r.clone());
        }
        parts.join("; ")
    }
}

/// What a probe needs beyond its config: environment and directory for commands, and a
/// masking function for recorded values.
#[derive(Clone)]
pub struct ProbeContext {
    pub workdir: PathBuf,
    pub env: IndexMap<String, String>,
    pub mask: Arc<dyn Fn(&str) -> String + Send + Sync>,
    /// Time limit of one command probe.
    pub command_timeout: Duration,
}

impl Default for ProbeContext {
    fn default() -> Self {
        ProbeContext {
            workdir: PathBuf::from("."),
            env: IndexMap::new(),
            mask: Arc::new(|s| s.to_string()),
            command_timeout: Duration::from_secs(300),
        }
    }
}

/// Runs the analysis; `on_measurement` sees each measurement as it is taken.
pub async fn analyze(
    cfg: &HealthCheckConfig,
    ctx: &ProbeContext,
    mut on_measurement: impl FnMut(&Measurement),
) -> HealthReport {
    let started_at = Utc::now();
    let start = Instant::now();
    let deadline = cfg.deadline.map(|d| start + d);
    let client = reqwest::Client::builder().build().ok();
    let mut probes: Vec<ProbeSummary> = cfg
        .probes
        .iter()
        .map(|p| ProbeSummary {
            name: p.name.clone(),
            failure_limit: p.failure_limit,
            error_limit: p.error_limit,
            ..Default::default()
        })
        .collect();
    let mut measurements = Vec::new();
    let mut reason = None;

    let sleep_until_deadline = move |d: Duration| async move {
        match deadline {
            Some(dl) => {
                let now = Instant::now();
                let until = (now + d).min(dl);
                tokio::time::sleep_until(tokio::time::Instant::from_std(until)).await;
            }
            None => tokio::time::sleep(d).await,
        }
    };

    if !cfg.initial_delay.is_zero() {
        sleep_until_deadline(cfg.initial_delay).await;
    }
    let mut round = 0u32;
    'rounds: loop {
        if cfg.count > 0 && round >= cfg.count {
            break;
        }
        if let Some(dl) = deadline
            && Instant::now() >= dl
        {
            if cfg.count > 0 {
                reason = Some(format!(
                    "deadline {} passed after {round} of {} measurements",
                    crate::config::format_duration(cfg.deadline.unwrap_or_default()),
                    cfg.count
                ));
            }
            break;
        }
        round += 1;
        for (probe, summary) in cfg.probes.iter().zip(probes.iter_mut()) {
            let m = measure(probe, round, client.as_ref(), ctx).await;
            match m.phase {
                Phase::Successful => {
                    summary.successes += 1;
                    summary.consecutive_errors = 0;
                }
                Phase::Failed => {
                    summary.failures += 1;
                    summary.consecutive_errors = 0;
                }
                Phase::Error => {
                    summary.errors += 1;
                    summary.consecutive_errors += 1;
                }
            }
            summary.last_latency_ms = Some(m.latency_ms);
            on_measurement(&m);
            measurements.push(m);
            if summary.failures > summary.failure_limit {
                summary.failed = true;
                reason = Some(format!(
                    "probe `{}`: {} failed measurement(s), limit {}",
                    summary.name, summary.failures, summary.failure_limit
                ));
                break 'rounds;
            }
            if summary.consecutive_errors > summary.error_limit {
                summary.failed = true;
                reason = Some(format!(
                    "probe `{}`: {} consecutive error(s), limit {}",
                    summary.name, summary.consecutive_errors, summary.error_limit
                ));
                break 'rounds;
            }
        }
        let last = cfg.count > 0 && round >= cfg.count;
        if !last {
            sleep_until_deadline(cfg.interval).await;
        }
    }
    if reason.is_none() && round == 0 {
        reason = Some("no measurement was taken before the deadline".into());
    }
    HealthReport {
        passed: reason.is_none(),
        reason,
        probes,
        measurements,
        started_at,
        duration_ms: start.elapsed().as_millis() as u64,
    }
}

/// Takes one measurement of a probe.
pub async fn measure(
    probe: &ProbeConfig,
    index: u32,
    client: Option<&reqwest::Client>,
    ctx: &ProbeContext,
) -> Measurement {
    let at = Utc::now();
    let start = Instant::now();
    let (phase, status, value, message) = match &probe.kind {
        ProbeKind::Http(h) => match client {
            Some(c) => http_measure(c, h).await,
            None => (Phase::Error, None, None, Some("no HTTP client".into())),
        },
        ProbeKind::Run(cmd) => command_measure(cmd, ctx).await,
    };
    let mask = |s: String| (ctx.mask)(&s);
    Measurement {
        probe: probe.name.clone(),
        index,
        at,
        phase,
        status,
        value: value.map(mask),
        latency_ms: start.elapsed().as_millis() as u64,
        message: message.map(mask),
    }
}

type Outcome = (Phase, Option<u16>, Option<String>, Option<String>);

async fn http_measure(client: &reqwest::Client, h: &HttpProbe) -> Outcome {
    let method = reqwest::Method::from_bytes(h.method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut rb = client.request(method, &h.url).timeout(h.timeout);
    for (k, v) in &h.headers {
        rb = rb.header(k, v);
    }
    let resp = match rb.send().await {
        Ok(r) => r,
        Err(e) => {
            let what = if e.is_timeout() {
                format!(
                    "timeout after {}",
                    crate::config::format_duration(h.timeout)
                )
            } else {
                format!("transport error: {}", error_chain(&e))
            };
            return (Phase::Error, None, None, Some(what));
        }
    };
    let status = resp.status().as_u16();
    let body = match resp.text().await {
        Ok(b) => b,
        Err(e) => {
            return (
                Phase::Error,
                Some(status),
                None,
                Some(format!("reading the body: {}", error_chain(&e))),
            );
        }
    };
    let status_ok = if h.expect_status.is_empty() {
        (200..300).contains(&status)
    } else {
        h.expect_status.contains(&status)
    };
    let value = match &h.json_path {
        Some(path) => match serde_json::from_str::<serde_json::Value>(&body) {
            Ok(json) => match parse_json_path(path).ok().and_then(|p| lookup(&json, &p)) {
                Some(v) => Some(json_text(v)),
                None => {
                    return (
                        Phase::Failed,
                        Some(status),
                        None,
                        Some(format!("no value at {path}")),
                    );
                }
            },
            Err(_) => {
                return (
                    Phase::Failed,
                    Some(status),
                    Some(truncate(&body, 200)),
                    Some("the body is not JSON".into()),
                );
            }
        },
        None => Some(truncate(body.trim(), 200)),
    };
    if !status_ok {
        let expected = if h.expect_status.is_empty() {
            "2xx".to_string()
        } else {
            h.expect_status
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        return (
            Phase::Failed,
            Some(status),
            value,
            Some(format!("status {status}, expected {expected}")),
        );
    }
    if let Some(exp) = &h.expect {
        let v = value.as_deref().unwrap_or("");
        if !exp.matches(v) {
            return (
                Phase::Failed,
                Some(status),
                value.clone(),
                Some(format!("value {v:?} does not match {exp}")),
            );
        }
    }
    (Phase::Successful, Some(status), value, None)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}

async fn command_measure(cmd: &str, ctx: &ProbeContext) -> Outcome {
    let mut c = tokio::process::Command::new("sh");
    c.arg("-c")
        .arg(cmd)
        .current_dir(&ctx.workdir)
        .envs(&ctx.env)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = match tokio::time::timeout(ctx.command_timeout, c.output()).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            return (
                Phase::Error,
                None,
                None,
                Some(format!("could not start `{cmd}`: {e}")),
            );
        }
        Err(_) => {
            return (
                Phase::Error,
                None,
                None,
                Some(format!(
                    "`{cmd}` timed out after {}",
                    crate::config::format_duration(ctx.command_timeout)
                )),
            );
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = |s: &str| {
        s.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| truncate(l.trim(), 200))
    };
    let value = last(&stdout);
    if out.status.success() {
        (Phase::Successful, None, value, None)
    } else {
        let code = out
            .status
            .code()
            .map(|c| format!("exit code {c}"))
            .unwrap_or_else(|| "killed by a signal".into());
        let detail = last(&stderr).or_else(|| value.clone());
        let msg = match detail {
            Some(d) => format!("{code}: {d}"),
            None => code,
        };
        (Phase::Failed, None, value, Some(msg))
    }
}

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

/// A JSON path the probe cannot follow (the message names it and shows the forms).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON path `{0}` (use e.g. $.status or $.a.b[0])")]
pub struct JsonPathError(String);

/// Parses `$`, `$.a.b`, `$.a[0].b`, `$['a b']`, `a.b` (leading `$` optional).
pub fn parse_json_path(path: &str) -> Result<Vec<PathSeg>, JsonPathError> {
    let s = path.trim();
    let mut rest = s.strip_prefix('$').unwrap_or(s);
    let mut out = Vec::new();
    let bad = || JsonPathError(path.to_string());
    let mut first = !s.starts_with('$');
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').ok_or_else(bad)?;
            let inner = r[..end].trim();
            if let Ok(i) = inner.parse::<usize>() {
                out.push(PathSeg::Index(i));
            } else if inner.len() >= 2
                && ((inner.starts_with('\'') && inner.ends_with('\''))
                    || (inner.starts_with('"') && inner.ends_with('"')))
            {
                out.push(PathSeg::Key(inner[1..inner.len() - 1].to_string()));
            } else {
                return Err(bad());
            }
            rest = &r[end + 1..];
        } else {
            let r = if first {
                rest
            } else {
                rest.strip_prefix('.').ok_or_else(bad)?
            };
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end == 0 {
                return Err(bad());
            }
            out.push(PathSeg::Key(r[..end].to_string()));
            rest = &r[end..];
        }
        first = false;
    }
    Ok(out)
}

pub fn lookup<'v>(v: &'v serde_json::Value, path: &[PathSeg]) -> Option<&'v serde_json::Value> {
    let mut cur = v;
    for seg in path {
        cur = match seg {
            PathSeg::Key(k) => cur.get(k)?,
            PathSeg::Index(i) => cur.get(*i)?,
        };
    }
    Some(cur)
}

/// A JSON value as text: strings without quotes, everything else as JSON.
pub fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"status":"ok","a":{"b":[{"c":3}, 7]},"x y":true}"#).unwrap();
        let get = |p: &str| lookup(&v, &parse_json_path(p).unwrap()).map(json_text);
        assert_eq!(get("$.status").as_deref(), Some("ok"));
        assert_eq!(get("$.a.b[0].c").as_deref(), Some("3"));
        assert_eq!(get("$.a.b[1]").as_deref(), Some("7"));
        assert_eq!(get("$['x y']").as_deref(), Some("true"));
        assert_eq!(get("status").as_deref(), Some("ok"));
        assert_eq!(get("$.nope"), None);
        assert!(parse_json_path("$..a").is_err());
        assert!(parse_json_path("$.a[").is_err());
    }
}
