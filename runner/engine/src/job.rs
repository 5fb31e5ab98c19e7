//! One job instance (a job, or one leg of a matrix): what the scheduler knows of it
//! ([`JobInstance`], [`JobOutcome`]), the evaluation helpers for job-level keys, and the
//! local executor's side of running it ([`execute`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gantry_expr::{Object, Value};
use gantry_workflow::{Container, OrExpr, Spanned, StringMap};
use indexmap::IndexMap;

use crate::backend::{ContainerSpec, Credentials, JobEnv};
use crate::events::{RunEvent, Status, Stream, Text};
use crate::expr_scope::Ctx;
use crate::github_contexts::StrategyFacts;
use crate::run::{RunShared, Scope};

pub mod dirs;
pub mod execute;
pub mod placement;

/// A job instance ready to run.
#[derive(Clone)]
pub struct JobInstance {
    pub key: Text,
    /// The workflow the job belongs to (a called workflow inside a reusable-workflow call).
    pub scope: Arc<Scope>,
    pub job_id: String,
    pub name: String,
    pub matrix: Option<serde_json::Map<String, serde_json::Value>>,
    pub strategy: StrategyFacts,
    /// `needs` context (direct needs: result and outputs).
    pub needs: Value,
}

/// How a job instance ended.
#[derive(Debug, Clone)]
pub struct JobOutcome {
    pub result: Status,
    pub continue_on_error: bool,
    pub outputs: IndexMap<String, String>,
    pub duration: Duration,
}

/// Service log lines printed at tear-down after a successful job and after any other end.
const SERVICE_LOG_LINES_OK: usize = 20;
const SERVICE_LOG_LINES_FAILED: usize = 100;

/// Evaluates a string map (`env:`, `with:`) with `ctx`.
pub fn eval_string_map(m: &StringMap, ctx: &Ctx) -> Result<IndexMap<String, String>, String> {
    let mut out = IndexMap::new();
    match m {
        StringMap::Empty => {}
        StringMap::Map(entries) => {
            for (k, v) in entries {
                let s = ctx
                    .eval_string(&v.value)
                    .map_err(|e| at(v, &format!("{k}: {e}")))?;
                out.insert(k.clone(), s);
            }
        }
        StringMap::Expr(e) => match ctx
            .eval_template(&e.value)
            .map_err(|x| at(e, &x.to_string()))?
        {
            Value::Object(o) => {
                for (k, v) in o.iter() {
                    out.insert(k.to_string(), v.as_string().into_owned());
                }
            }
            Value::Null => {}
            other => {
                return Err(at(
                    e,
                    &format!("expected a mapping, got {}", other.kind_name()),
                ));
            }
        },
    }
    Ok(out)
}

/// `line:col: message` for a spanned value.
pub fn at<T>(s: &Spanned<T>, msg: &str) -> String {
    if s.span.line > 0 {
        format!("{}:{}: {msg}", s.span.line, s.span.col)
    } else {
        msg.to_string()
    }
}

/// A workflow expression that did not evaluate, with where it is written.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", located(.line, .col, &.source.to_string()))]
pub struct LocatedExprError {
    /// 1-based; 0 when the value has no place in a file.
    pub line: u32,
    pub col: u32,
    pub source: gantry_expr::ExprError,
}

fn located(line: &u32, col: &u32, msg: &str) -> String {
    if *line > 0 {
        format!("{line}:{col}: {msg}")
    } else {
        msg.to_string()
    }
}

/// A boolean written as a value or an expression (`continue-on-error`,
/// `cancel-in-progress`); absent is `false`.
pub fn eval_bool(v: &Option<Spanned<OrExpr<bool>>>, ctx: &Ctx) -> Result<bool, LocatedExprError> {
    match v {
        None => Ok(false),
        Some(s) => match &s.value {
            OrExpr::Value(b) => Ok(*b),
            OrExpr::Expr(e) => ctx
                .eval_template(e)
                .map(|v| v.is_truthy())
                .map_err(|source| LocatedExprError {
                    line: s.span.line,
                    col: s.span.col,
                    source,
                }),
        },
    }
}

pub fn eval_number(v: &Option<Spanned<OrExpr<f64>>>, ctx: &Ctx) -> Result<Option<f64>, String> {
    match v {
        None => Ok(None),
        Some(s) => match &s.value {
            OrExpr::Value(n) => Ok(Some(*n)),
            OrExpr::Expr(e) => ctx
                .eval_template(e)
                .map(|v| Some(v.to_number()))
                .map_err(|x| at(s, &x.to_string())),
        },
    }
}

fn eval_container(c: &Container, ctx: &Ctx) -> Result<ContainerSpec, String> {
    let image = ctx
        .eval_string(&c.image.value)
        .map_err(|e| at(&c.image, &e.to_string()))?;
    let env = eval_string_map(&c.env, ctx)?;
    let mut ports = Vec::new();
    for p in &c.ports {
        ports.push(
            ctx.eval_string(&p.value)
                .map_err(|e| at(p, &e.to_string()))?,
        );
    }
    let mut volumes = Vec::new();
    for v in &c.volumes {
        volumes.push(
            ctx.eval_string(&v.value)
                .map_err(|e| at(v, &e.to_string()))?,
        );
    }
    let options = match &c.options {
        Some(o) => Some(
            ctx.eval_string(&o.value)
                .map_err(|e| at(o, &e.to_string()))?,
        ),
        None => None,
    };
    let credentials = match &c.credentials {
        Some(cr) => Some(Credentials {
            username: ctx
                .eval_string(&cr.username.value)
                .map_err(|e| at(&cr.username, &e.to_string()))?,
            password: ctx
                .eval_string(&cr.password.value)
                .map_err(|e| at(&cr.password, &e.to_string()))?,
        }),
        None => None,
    };
    Ok(ContainerSpec {
        image,
        env,
        ports,
        volumes,
        options,
        credentials,
        command: None,
        entrypoint: None,
    })
}

/// Emits a runner line for a job (masked by the caller).
pub fn runner_log(shared: &RunShared, key: &Text, step: Option<usize>, text: String) {
    let mut t = text;
    if !t.ends_with('\n') {
        t.push('\n');
    }
    shared.bus.emit(RunEvent::Log {
        job: key.clone(),
        step,
        stream: Stream::Runner,
        text: t.into(),
    });
}

/// A set-up failure (`msg` already masked), reported like a failed step: in the job's log
/// and as an error annotation naming the job (shown with `-q`, kept in the run record).
pub(crate) fn report_setup_failure(shared: &RunShared, key: &Text, msg: &str) {
    runner_log(shared, key, None, format!("Error: {msg}"));
    shared.bus.emit(RunEvent::Annotation {
        job: key.clone(),
        step: None,
        severity: "error".into(),
        message: format!("job set-up failed: {msg}"),
        file: None,
        line: None,
        col: None,
        title: Some("Set up job".into()),
    });
}

/// A job skipped before it starts (no placement for its labels): the reason in its log and
/// as a warning annotation, so `-q`, the run record and the server's run page all say why.
pub(crate) fn report_skip(shared: &RunShared, key: &Text, why: &str) {
    runner_log(shared, key, None, format!("Skipped: {why}"));
    shared.bus.emit(RunEvent::Annotation {
        job: key.clone(),
        step: None,
        severity: "warning".into(),
        message: format!("job skipped: {why}"),
        file: None,
        line: None,
        col: None,
        title: Some("Set up job".into()),
    });
}

pub fn secrets_value(secrets: &IndexMap<String, String>) -> Value {
    let mut o = Object::new();
    for (k, v) in secrets {
        o.insert(k.clone(), Value::string(v));
    }
    if o.get("GITHUB_TOKEN").is_none() {
        o.insert("GITHUB_TOKEN", Value::string(""));
    }
    Value::object(o)
}

/// The `job` context.
pub fn job_value(status: Status, env: &dyn JobEnv) -> Value {
    let mut o = Object::new();
    o.insert("status", Value::string(status.as_str()));
    if let Some(info) = env.container() {
        let mut c = Object::new();
        c.insert("id", Value::string(&info.id));
        c.insert("network", Value::string(&info.network));
        o.insert("container", Value::object(c));
    }
    let mut svcs = Object::new();
    for s in env.services() {
        let mut so = Object::new();
        so.insert("id", Value::string(&s.container_id));
        so.insert("network", Value::string(s.network.as_deref().unwrap_or("")));
        let mut ports = Object::new();
        for (k, v) in &s.ports {
            ports.insert(k.clone(), Value::string(v));
        }
        so.insert("ports", Value::object(ports));
        svcs.insert(s.id.clone(), Value::object(so));
    }
    o.insert("services", Value::object(svcs));
    Value::object(o)
}

/// Path helper used by the step runner: a job-view path joined with a working directory.
pub fn join_view(base: &str, wd: &str) -> String {
    if wd.starts_with('/') {
        wd.to_string()
    } else if wd.is_empty() {
        base.to_string()
    } else {
        PathBuf::from(base).join(wd).display().to_string()
    }
}
