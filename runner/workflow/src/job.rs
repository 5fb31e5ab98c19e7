//! Jobs: conversion into [`Job`] and job-level semantic checks (`if` contexts, reusable
//! workflow references, matrix shape, step ids).

use crate::Diagnostics;
use crate::exprs;
use crate::load::{YKind, YNode};
use crate::model::*;
use crate::schema::ctx;
use crate::step;
use crate::workflow::{
    concurrency, defaults, entries, get, is_expr, items, or_bool, or_num, permissions, sstr,
    str_list, string_map,
};

pub(crate) fn convert(id: Spanned<String>, n: &YNode, d: &mut Diagnostics) -> Job {
    let mut job = Job {
        id,
        span: n.span,
        ..Default::default()
    };
    for (k, v) in entries(n) {
        match k.as_str().unwrap_or("") {
            "name" => job.name = sstr(v),
            "needs" => job.needs = str_list(v),
            "if" => {
                job.if_cond = sstr(v);
                if let Some(c) = &job.if_cond
                    && let Err(e) = exprs::check_if(&c.value, ctx::JOB_IF)
                {
                    d.semantic(c.span, e);
                }
            }
            "runs-on" => {
                let r = runs_on(v);
                if let Some(g) = &r.group {
                    check_runner_group(g, d);
                }
                job.runs_on = Some(r);
            }
            "environment" => job.environment = environment(v),
            "concurrency" => job.concurrency = concurrency(v),
            "outputs" => {
                job.outputs = entries(v)
                    .iter()
                    .filter_map(|(k, v)| Some((k.scalar_string()?, sstr(v)?)))
                    .collect()
            }
            "env" => job.env = crate::step::expect_mapping(v, "job env", d),
            "defaults" => job.defaults = defaults(v),
            "steps" => job.steps = steps(v, false, d),
            "timeout-minutes" => job.timeout_minutes = or_num(v),
            "cancel-timeout-minutes" => job.cancel_timeout_minutes = or_num(v),
            "strategy" => job.strategy = strategy(v, d),
            "continue-on-error" => job.continue_on_error = or_bool(v),
            "container" => job.container = container_checked(v, d),
            "services" => {
                if v.as_str().is_some_and(is_expr) {
                    d.semantic(v.span, "Unexpected type 'BasicExpressionToken' encountered while reading 'services'. The type 'MappingToken' was expected.");
                }
                job.services = entries(v)
                    .iter()
                    .filter_map(|(k, v)| Some((k.scalar_string()?, container_checked(v, d)?)))
                    .collect()
            }
            "permissions" => job.permissions = permissions(v),
            "uses" => job.uses = sstr(v),
            "with" => {
                job.with = entries(v)
                    .iter()
                    .filter_map(|(k, v)| Some((k.scalar_string()?, v.to_node())))
                    .collect()
            }
            "secrets" => {
                job.secrets = match &v.kind {
                    YKind::Str(s, _) if s == "inherit" => Some(CallSecrets::Inherit),
                    YKind::Map(e) => Some(CallSecrets::Map(
                        e.iter()
                            .filter_map(|(k, v)| Some((k.scalar_string()?, sstr(v)?)))
                            .collect(),
                    )),
                    _ => None,
                }
            }
            _ => {}
        }
    }
    if let Some(uses) = &job.uses {
        check_workflow_ref(uses, d);
    }
    job
}

/// Converts a step list (job steps, or composite-action steps when `composite`).
pub(crate) fn steps(n: &YNode, composite: bool, d: &mut Diagnostics) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    // Ids of the background steps so far: what `wait` and `cancel` may name.
    let mut background: Vec<String> = Vec::new();
    for it in items(n) {
        if !matches!(it.kind, YKind::Map(_)) {
            continue;
        }
        let s = step::convert(it, composite, d);
        let targets: &[Spanned<String>] = match &s.control {
            Some(StepControl::Wait(ids)) => ids,
            Some(StepControl::Cancel(id)) => std::slice::from_ref(id),
            _ => &[],
        };
        for t in targets {
            if !background.contains(&t.value.to_ascii_lowercase()) {
                d.semantic(
                    t.span,
                    format!(
                        "'{}' is not the id of an earlier step with `background: true`.",
                        t.value
                    ),
                );
            }
        }
        if s.background
            && let Some(id) = &s.id
        {
            background.push(id.value.to_ascii_lowercase());
        }
        // A `parallel:` group's members share the job's scope of step ids.
        for one in std::iter::once(&s).chain(s.parallel.iter()) {
            if let Some(id) = &one.id
                && !is_expr(&id.value)
            {
                let up = id.value.to_ascii_lowercase();
                if seen.contains(&up) {
                    d.semantic(
                        id.span,
                        format!(
                            "The identifier '{}' may not be used more than once within the same scope.",
                            id.value
                        ),
                    );
                } else {
                    seen.push(up);
                }
            }
        }
        out.push(s);
    }
    out
}

fn runs_on(n: &YNode) -> RunsOn {
    match &n.kind {
        YKind::Map(_) => RunsOn {
            span: n.span,
            labels: get(n, "labels").map(str_list).unwrap_or_default(),
            group: get(n, "group").and_then(sstr),
        },
        _ => RunsOn {
            span: n.span,
            labels: str_list(n),
            group: None,
        },
    }
}

fn environment(n: &YNode) -> Option<Environment> {
    match &n.kind {
        YKind::Map(_) => Some(Environment {
            span: n.span,
            name: get(n, "name").and_then(sstr)?,
            url: get(n, "url").and_then(sstr),
        }),
        _ => Some(Environment {
            span: n.span,
            name: sstr(n)?,
            url: None,
        }),
    }
}

fn container_checked(n: &YNode, d: &mut Diagnostics) -> Option<Container> {
    let c = container(n)?;
    if matches!(n.kind, YKind::Map(_)) && get(n, "image").is_none() {
        d.semantic(n.span, "Container image cannot be empty");
    }
    Some(c)
}

/// `runs-on.group`: a name, or `organization/<name>` / `enterprise/<name>`.
fn check_runner_group(g: &Spanned<String>, d: &mut Diagnostics) {
    let v = g.value.as_str();
    if is_expr(v) || !v.contains('/') {
        return;
    }
    let ok = ["organization/", "enterprise/", "org/", "ent/"]
        .iter()
        .any(|p| {
            v.strip_prefix(p)
                .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
        });
    if !ok {
        d.semantic(
            g.span,
            format!("Invalid runs-on group name '{v}'. Please use 'organization/' or 'enterprise/' prefix to target a single runner group."),
        );
    }
}

pub(crate) fn container(n: &YNode) -> Option<Container> {
    match &n.kind {
        YKind::Map(_) => Some(Container {
            span: n.span,
            image: get(n, "image").and_then(sstr).unwrap_or_default(),
            credentials: get(n, "credentials").and_then(|c| {
                Some(ContainerCredentials {
                    username: get(c, "username").and_then(sstr)?,
                    password: get(c, "password").and_then(sstr)?,
                })
            }),
            env: get(n, "env").map(string_map).unwrap_or_default(),
            ports: get(n, "ports").map(str_list).unwrap_or_default(),
            volumes: get(n, "volumes").map(str_list).unwrap_or_default(),
            options: get(n, "options").and_then(sstr),
        }),
        YKind::Null => None,
        _ => Some(Container {
            span: n.span,
            image: sstr(n)?,
            ..Default::default()
        }),
    }
}

fn strategy(n: &YNode, d: &mut Diagnostics) -> Option<Strategy> {
    if !matches!(n.kind, YKind::Map(_)) {
        return None;
    }
    let matrix = get(n, "matrix");
    if let Some(m) = matrix {
        check_matrix(m, d);
    }
    Some(Strategy {
        span: n.span,
        matrix: matrix.map(|m| m.to_node()),
        fail_fast: get(n, "fail-fast").and_then(or_bool),
        max_parallel: get(n, "max-parallel").and_then(or_num),
    })
}

/// Matrix shape errors visible without evaluation (spec §6.4).
fn check_matrix(m: &YNode, d: &mut Diagnostics) {
    let YKind::Map(e) = &m.kind else { return };
    let mut vectors: Vec<&str> = Vec::new();
    let mut dynamic = false;
    let mut include_nonempty = false;
    for (k, v) in e {
        let Some(key) = k.as_str() else { continue };
        if is_expr(key) {
            dynamic = true;
            continue;
        }
        match key {
            "include" | "exclude" => {
                if let YKind::Seq(list) = &v.kind {
                    if key == "include" && !list.is_empty() {
                        include_nonempty = true;
                    }
                } else if v.as_str().is_some_and(is_expr) {
                    dynamic = true;
                    if key == "include" {
                        include_nonempty = true;
                    }
                }
            }
            _ => {
                vectors.push(key);
                match &v.kind {
                    YKind::Seq(list) if list.is_empty() => {
                        d.semantic(
                            k.span,
                            format!("Matrix vector '{key}' does not contain any values"),
                        );
                    }
                    _ => {}
                }
            }
        }
    }
    if vectors.is_empty() && !include_nonempty && !dynamic {
        d.semantic(m.span, "Matrix must define at least one vector");
    }
    if dynamic {
        return;
    }
    if let Some(excl) = e
        .iter()
        .find(|(k, _)| k.as_str() == Some("exclude"))
        .map(|(_, v)| v)
    {
        for item in items(excl) {
            for (k, _) in entries(item) {
                if let Some(key) = k.as_str()
                    && !is_expr(key)
                    && !vectors.contains(&key)
                {
                    d.semantic(
                        k.span,
                        format!(
                            "Matrix exclude key '{key}' does not match any key within the matrix"
                        ),
                    );
                }
            }
        }
    }
}

/// `owner/repo/.github/workflows/f.yml@ref`, `./.github/workflows/f.yml` or
/// `$/.github/workflows/f.yml` (spec §1.3, §8.1).
fn check_workflow_ref(uses: &Spanned<String>, d: &mut Diagnostics) {
    let u = uses.value.as_str();
    if is_expr(u) {
        return;
    }
    if let Some(rest) = u.strip_prefix("$/") {
        if let Err(e) = crate::step::check_self_path(u, rest, true) {
            d.semantic(uses.span, e);
        }
        return;
    }
    let ok = if let Some(local) = u.strip_prefix("./") {
        !local.contains('@') && (local.ends_with(".yml") || local.ends_with(".yaml"))
    } else {
        match u.split_once('@') {
            Some((path, r)) => {
                let parts: Vec<&str> = path.split('/').collect();
                !r.is_empty()
                    && !r.contains('@')
                    && parts.len() >= 3
                    && parts.iter().all(|p| !p.is_empty())
                    && (path.ends_with(".yml") || path.ends_with(".yaml"))
            }
            None => false,
        }
    };
    if !ok {
        d.semantic(
            uses.span,
            format!(
                "Invalid workflow reference '{u}': expected '{{owner}}/{{repo}}/.github/workflows/{{file}}@{{ref}}' or './.github/workflows/{{file}}'"
            ),
        );
    }
}
