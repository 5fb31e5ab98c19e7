//! Reusable-workflow calls (spec §1.3, §2.7): checks a caller's `uses:` jobs against the
//! called workflows — inputs (required, declared, typed), secrets, `GITHUB_TOKEN`
//! permissions, nesting depth and the total job count. The called files are supplied by
//! the caller through a resolver, so this module never touches the network or disk.

use crate::diagnostic::{Diagnostic, Severity};
use crate::model::*;
use crate::parse_workflow;

/// The default `GITHUB_TOKEN` permissions of the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PermissionsPolicy {
    /// `contents: read, packages: read`, everything else none.
    #[default]
    LimitedRead,
    /// Every scope `write`.
    Write,
}

/// Limits for [`check_workflow_calls`].
#[derive(Debug, Clone)]
pub struct CallOptions {
    pub permissions_policy: PermissionsPolicy,
    /// Maximum nesting of reusable workflows (GitHub: 10).
    pub max_depth: usize,
    /// Maximum number of jobs after expanding calls (GitHub: 256).
    pub max_jobs: usize,
}

impl Default for CallOptions {
    fn default() -> Self {
        CallOptions {
            permissions_policy: PermissionsPolicy::LimitedRead,
            max_depth: 10,
            max_jobs: 256,
        }
    }
}

/// Scopes in GitHub's reporting order.
const SCOPES: &[&str] = &[
    "actions",
    "checks",
    "contents",
    "deployments",
    "discussions",
    "issues",
    "packages",
    "pages",
    "pull-requests",
    "repository-projects",
    "statuses",
    "security-events",
    "id-token",
];

fn level(s: &str) -> u8 {
    match s {
        "write" => 2,
        "read" => 1,
        _ => 0,
    }
}

fn level_name(l: u8) -> &'static str {
    ["none", "read", "write"][l.min(2) as usize]
}

/// Effective level per scope.
fn levels(p: &Permissions) -> Vec<(&'static str, u8)> {
    SCOPES
        .iter()
        .map(|s| {
            let l = match p {
                Permissions::ReadAll => 1,
                Permissions::WriteAll => 2,
                Permissions::Map(m) => m.get(*s).map_or(0, |v| level(v)),
            };
            (*s, l)
        })
        .collect()
}

fn policy_levels(p: PermissionsPolicy) -> Vec<(&'static str, u8)> {
    SCOPES
        .iter()
        .map(|s| {
            let l = match p {
                PermissionsPolicy::Write => 2,
                PermissionsPolicy::LimitedRead => u8::from(matches!(*s, "contents" | "packages")),
            };
            (*s, l)
        })
        .collect()
}

/// Resolves a `uses:` reference to the called workflow's text.
pub type Resolver<'a> = dyn FnMut(&str) -> Option<String> + 'a;

/// Checks every reusable-workflow call of `wf`, recursively. References the resolver
/// cannot supply are skipped (they are reported when the run starts).
pub fn check_workflow_calls(
    wf: &Workflow,
    resolve: &mut Resolver<'_>,
    opts: &CallOptions,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let allowed = wf
        .permissions
        .as_ref()
        .map(|p| levels(&p.value))
        .unwrap_or_else(|| policy_levels(opts.permissions_policy));
    let mut jobs = 0;
    check(wf, &allowed, 1, resolve, opts, &mut out, &mut jobs);
    if jobs > opts.max_jobs {
        out.push(Diagnostic {
            file: wf.path.clone(),
            span: Span::FILE_START,
            severity: Severity::Error,
            message: format!(
                "The workflow may not contain more than {} jobs",
                opts.max_jobs
            ),
        });
    }
    out
}

fn err(file: &str, span: Span, message: String) -> Diagnostic {
    Diagnostic {
        file: file.to_string(),
        span,
        severity: Severity::Error,
        message,
    }
}

#[allow(clippy::too_many_arguments)]
fn check(
    wf: &Workflow,
    allowed_wf: &[(&'static str, u8)],
    depth: usize,
    resolve: &mut Resolver<'_>,
    opts: &CallOptions,
    out: &mut Vec<Diagnostic>,
    jobs: &mut usize,
) {
    for job in wf.jobs.values() {
        *jobs += 1;
        let Some(uses) = &job.uses else { continue };
        if depth > opts.max_depth {
            out.push(err(
                &wf.path,
                uses.span,
                format!(
                    "Nested reusable workflow depth exceeded {}.",
                    opts.max_depth
                ),
            ));
            return;
        }
        let Some(text) = resolve(&uses.value) else {
            continue;
        };
        let loaded = parse_workflow(&uses.value, &text);
        let Some(called) = loaded.value else {
            for d in loaded
                .diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Error)
            {
                out.push(err(
                    &wf.path,
                    uses.span,
                    format!("Error from called workflow {}: {}", uses.value, d.message),
                ));
            }
            continue;
        };
        check_arguments(wf, job, uses, &called, out);
        // Permissions: the caller job's, else the caller workflow's, else the policy.
        let allowed: Vec<(&'static str, u8)> = job
            .permissions
            .as_ref()
            .map(|p| levels(&p.value))
            .unwrap_or_else(|| allowed_wf.to_vec());
        let mut requests: Vec<(String, Vec<(&'static str, u8)>)> = Vec::new();
        if let Some(p) = &called.permissions {
            requests.push((format!("The workflow '{}'", uses.value), levels(&p.value)));
        }
        for cj in called.jobs.values() {
            if cj.uses.is_none()
                && let Some(p) = &cj.permissions
            {
                requests.push((
                    format!("The nested job '{}'", cj.display_name()),
                    levels(&p.value),
                ));
            }
        }
        let mut reported = false;
        for (who, req) in &requests {
            let over: Vec<usize> = (0..req.len())
                .filter(|i| req[*i].1 > allowed[*i].1)
                .collect();
            if over.is_empty() || reported {
                continue;
            }
            reported = true;
            let fmt = |v: &[(&str, u8)]| {
                over.iter()
                    .map(|i| format!("{}: {}", v[*i].0, level_name(v[*i].1)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            out.push(err(
                &wf.path,
                job.id.span,
                format!(
                    "Error calling workflow '{}'. {who} is requesting '{}', but is only allowed '{}'.",
                    uses.value,
                    fmt(req),
                    fmt(&allowed)
                ),
            ));
        }
        // Nested calls run with what the called workflow was granted.
        let granted = called
            .permissions
            .as_ref()
            .map(|p| levels(&p.value))
            .unwrap_or(allowed);
        check(&called, &granted, depth + 1, resolve, opts, out, jobs);
    }
}

/// `with:` against `on.workflow_call.inputs`, `secrets:` against `.secrets`.
fn check_arguments(
    wf: &Workflow,
    job: &Job,
    uses: &Spanned<String>,
    called: &Workflow,
    out: &mut Vec<Diagnostic>,
) {
    let Some(call) = called.on.events.get("workflow_call") else {
        out.push(err(
            &wf.path,
            uses.span,
            format!(
                "The workflow '{}' is not callable: it has no 'on: workflow_call' trigger.",
                uses.value
            ),
        ));
        return;
    };
    for (name, def) in &call.inputs {
        if def.required && def.default.is_none() && !job.with.contains_key(name) {
            out.push(err(
                &wf.path,
                uses.span,
                format!("Input {name} is required, but not provided while calling."),
            ));
        }
    }
    for (name, value) in &job.with {
        let Some(def) = call.inputs.get(name) else {
            out.push(err(
                &wf.path,
                value.span,
                format!("Invalid input, {name} is not defined in the referenced workflow."),
            ));
            continue;
        };
        let ok = match (&value.value, def.input_type) {
            (Node::String(s), _) if s.contains("${{") => true,
            (Node::Bool(_), InputType::Boolean) | (Node::Number(_), InputType::Number) => true,
            (_, InputType::String) => !matches!(value.value, Node::Seq(_) | Node::Map(_)),
            _ => false,
        };
        if !ok {
            let text = match &value.value {
                Node::String(s) => s.clone(),
                other => other.to_json().to_string(),
            };
            out.push(err(
                &wf.path,
                value.span,
                format!("Unexpected value '{text}'"),
            ));
        }
    }
    match &job.secrets {
        Some(CallSecrets::Inherit) => {}
        other => {
            let given = match other {
                Some(CallSecrets::Map(m)) => Some(m),
                _ => None,
            };
            for (name, def) in &call.secrets {
                if def.required && !given.is_some_and(|m| m.contains_key(name)) {
                    out.push(err(
                        &wf.path,
                        uses.span,
                        format!("Secret {name} is required, but not provided while calling."),
                    ));
                }
            }
            for (name, value) in given.into_iter().flatten() {
                if !call.secrets.contains_key(name) {
                    out.push(err(
                        &wf.path,
                        value.span,
                        format!(
                            "Invalid secret, {name} is not defined in the referenced workflow."
                        ),
                    ));
                }
            }
        }
    }
}
