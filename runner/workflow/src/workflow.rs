//! Conversion of a checked YAML tree into [`Workflow`], plus the workflow-level semantic
//! checks (triggers, filters, cron, inputs). Conversion is lenient: structural problems
//! were already reported by the schema reader, so anything malformed is skipped here.

use crate::Diagnostics;
use crate::load::{YKind, YNode};
use crate::model::*;
use crate::pattern;
use crate::{job, validate};
use indexmap::IndexMap;

pub(crate) fn convert(path: &str, root: &YNode, d: &mut Diagnostics) -> Workflow {
    let mut wf = Workflow {
        path: path.to_string(),
        name: None,
        run_name: None,
        on: Triggers::default(),
        permissions: None,
        env: StringMap::Empty,
        defaults: Defaults::default(),
        concurrency: None,
        jobs: IndexMap::new(),
    };
    let mut jobs_node = None;
    for (k, v) in entries(root) {
        match k.as_str().unwrap_or("") {
            "name" => wf.name = sstr(v),
            "run-name" => wf.run_name = sstr(v),
            "on" => wf.on = triggers(v, d),
            "permissions" => wf.permissions = permissions(v),
            "env" => wf.env = string_map(v),
            "defaults" => wf.defaults = defaults(v),
            "concurrency" => wf.concurrency = concurrency(v),
            "jobs" => jobs_node = Some(v),
            _ => {}
        }
    }
    if let Some(jobs) = jobs_node {
        for (k, v) in entries(jobs) {
            let Some(id) = sstr(k) else { continue };
            if id.value.contains("${{") {
                continue;
            }
            validate::check_id(&id, "job", d);
            let job = job::convert(id.clone(), v, d);
            if !wf.jobs.contains_key(&id.value) {
                wf.jobs.insert(id.value.clone(), job);
            }
        }
        if entries(jobs).is_empty() && matches!(jobs.kind, YKind::Map(_)) {
            d.semantic(jobs.span, "The workflow must contain at least one job");
        }
        validate::job_graph(&wf.jobs, jobs.span, d);
    }
    wf
}

// ---- small tree helpers -------------------------------------------------------------

static NO_ENTRIES: Vec<(YNode, YNode)> = Vec::new();

pub(crate) fn entries(n: &YNode) -> &[(YNode, YNode)] {
    match &n.kind {
        YKind::Map(e) => e,
        _ => &NO_ENTRIES,
    }
}

pub(crate) fn items(n: &YNode) -> &[YNode] {
    match &n.kind {
        YKind::Seq(e) => e,
        _ => &[],
    }
}

pub(crate) fn get<'a>(n: &'a YNode, key: &str) -> Option<&'a YNode> {
    entries(n)
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

/// A scalar as text (numbers and booleans converted as GitHub does); `None` for
/// collections.
pub(crate) fn sstr(n: &YNode) -> Option<Spanned<String>> {
    n.scalar_string().map(|s| Spanned::new(s, n.span))
}

/// A string or a sequence of strings.
pub(crate) fn str_list(n: &YNode) -> Vec<Spanned<String>> {
    match &n.kind {
        YKind::Seq(items) => items.iter().filter_map(sstr).collect(),
        YKind::Null => Vec::new(),
        _ => sstr(n).into_iter().collect(),
    }
}

pub(crate) fn is_expr(s: &str) -> bool {
    s.contains("${{")
}

pub(crate) fn string_map(n: &YNode) -> StringMap {
    match &n.kind {
        YKind::Map(e) => StringMap::Map(
            e.iter()
                .filter_map(|(k, v)| Some((k.scalar_string()?, sstr(v)?)))
                .collect(),
        ),
        YKind::Str(s, _) if is_expr(s) => StringMap::Expr(Spanned::new(s.clone(), n.span)),
        _ => StringMap::Empty,
    }
}

pub(crate) fn or_bool(n: &YNode) -> Option<Spanned<OrExpr<bool>>> {
    let v = match &n.kind {
        YKind::Bool(b) => OrExpr::Value(*b),
        YKind::Str(s, _) if is_expr(s) => OrExpr::Expr(s.clone()),
        _ => return None,
    };
    Some(Spanned::new(v, n.span))
}

pub(crate) fn or_num(n: &YNode) -> Option<Spanned<OrExpr<f64>>> {
    let v = match &n.kind {
        YKind::Number(x) => OrExpr::Value(*x),
        YKind::Str(s, _) if is_expr(s) => OrExpr::Expr(s.clone()),
        _ => return None,
    };
    Some(Spanned::new(v, n.span))
}

pub(crate) fn bool_of(n: Option<&YNode>) -> bool {
    matches!(n.map(|n| &n.kind), Some(YKind::Bool(true)))
}

pub(crate) fn text_of(n: Option<&YNode>) -> Option<String> {
    n.and_then(|n| n.scalar_string())
}

pub(crate) fn permissions(n: &YNode) -> Option<Spanned<Permissions>> {
    let p = match &n.kind {
        YKind::Str(s, _) if s == "read-all" => Permissions::ReadAll,
        YKind::Str(s, _) if s == "write-all" => Permissions::WriteAll,
        YKind::Map(e) => Permissions::Map(
            e.iter()
                .filter_map(|(k, v)| Some((k.scalar_string()?, v.scalar_string()?)))
                .collect(),
        ),
        _ => return None,
    };
    Some(Spanned::new(p, n.span))
}

pub(crate) fn defaults(n: &YNode) -> Defaults {
    let mut d = Defaults::default();
    if let Some(run) = get(n, "run") {
        d.shell = get(run, "shell").and_then(sstr);
        d.working_directory = get(run, "working-directory").and_then(sstr);
    }
    d
}

pub(crate) fn concurrency(n: &YNode) -> Option<Spanned<Concurrency>> {
    let c = match &n.kind {
        YKind::Map(_) => Concurrency {
            group: get(n, "group").and_then(sstr)?,
            cancel_in_progress: get(n, "cancel-in-progress").and_then(or_bool),
        },
        _ => Concurrency {
            group: sstr(n)?,
            cancel_in_progress: None,
        },
    };
    Some(Spanned::new(c, n.span))
}

// ---- on: ------------------------------------------------------------------------------

fn triggers(n: &YNode, d: &mut Diagnostics) -> Triggers {
    let mut t = Triggers {
        events: IndexMap::new(),
        span: n.span,
    };
    match &n.kind {
        YKind::Str(s, _) => {
            t.events.insert(
                s.clone(),
                EventTrigger {
                    span: n.span,
                    ..Default::default()
                },
            );
        }
        YKind::Seq(items) => {
            for it in items {
                if let Some(s) = it.as_str() {
                    t.events.entry(s.to_string()).or_insert(EventTrigger {
                        span: it.span,
                        ..Default::default()
                    });
                }
            }
        }
        YKind::Map(e) => {
            for (k, v) in e {
                let Some(name) = k.as_str() else { continue };
                let ev = event(name, k, v, d);
                t.events.entry(name.to_string()).or_insert(ev);
            }
        }
        _ => {}
    }
    t
}

fn event(name: &str, key: &YNode, v: &YNode, d: &mut Diagnostics) -> EventTrigger {
    let mut ev = EventTrigger {
        span: key.span,
        ..Default::default()
    };
    if name == "schedule" {
        for it in items(v) {
            if let Some(cron) = get(it, "cron").and_then(sstr) {
                if let Err(e) = pattern::check_cron(&cron.value) {
                    d.semantic(cron.span, format!("invalid cron '{}': {e}", cron.value));
                }
                ev.cron.push(cron);
            }
        }
        return ev;
    }
    let list = |k: &str| get(v, k).map(str_list);
    ev.types = list("types");
    ev.branches = list("branches");
    ev.branches_ignore = list("branches-ignore");
    ev.tags = list("tags");
    ev.tags_ignore = list("tags-ignore");
    ev.paths = list("paths");
    ev.paths_ignore = list("paths-ignore");
    ev.workflows = list("workflows");
    for (a, b) in [
        ("branches", "branches-ignore"),
        ("tags", "tags-ignore"),
        ("paths", "paths-ignore"),
    ] {
        if let (Some(_), Some(_)) = (get(v, a), get(v, b)) {
            let span = entries(v)
                .iter()
                .find(|(k, _)| k.as_str() == Some(b))
                .map_or(v.span, |(k, _)| k.span);
            // GitHub documents this as invalid, but its parsers accept the file; warn.
            d.warning(
                span,
                format!("'{a}' and '{b}' cannot be used together for the '{name}' event"),
            );
        }
    }
    for filters in [
        &ev.branches,
        &ev.branches_ignore,
        &ev.tags,
        &ev.tags_ignore,
        &ev.paths,
        &ev.paths_ignore,
    ]
    .into_iter()
    .flatten()
    {
        for p in filters {
            if let Err(e) = pattern::check_glob(&p.value) {
                d.semantic(p.span, format!("invalid filter pattern '{}': {e}", p.value));
            }
        }
    }
    if let Some(inputs) = get(v, "inputs") {
        for (k, iv) in entries(inputs) {
            let Some(id) = k.scalar_string() else {
                continue;
            };
            ev.inputs.insert(id, input_def(name, iv, d));
        }
    }
    if let Some(outputs) = get(v, "outputs") {
        for (k, ov) in entries(outputs) {
            let (Some(id), Some(value)) = (k.scalar_string(), get(ov, "value").and_then(sstr))
            else {
                continue;
            };
            ev.outputs.insert(
                id,
                CallOutputDef {
                    description: text_of(get(ov, "description")),
                    value,
                },
            );
        }
    }
    if let Some(secrets) = get(v, "secrets") {
        for (k, sv) in entries(secrets) {
            let Some(id) = k.scalar_string() else {
                continue;
            };
            ev.secrets.insert(
                id,
                CallSecretDef {
                    description: text_of(get(sv, "description")),
                    required: bool_of(get(sv, "required")),
                },
            );
        }
    }
    ev
}

fn input_def(event: &str, n: &YNode, d: &mut Diagnostics) -> InputDef {
    let input_type = match text_of(get(n, "type")).as_deref() {
        Some("boolean") => InputType::Boolean,
        Some("number") => InputType::Number,
        Some("choice") => InputType::Choice,
        Some("environment") => InputType::Environment,
        _ => InputType::String,
    };
    let options: Vec<String> = get(n, "options")
        .map(str_list)
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.value)
        .collect();
    let default = get(n, "default").map(|v| v.to_node());
    if event == "workflow_dispatch" {
        if input_type == InputType::Choice && options.is_empty() {
            d.semantic(n.span, "a 'choice' input must have 'options'");
        }
        if let (InputType::Choice, Some(def)) = (input_type, &default)
            && let Node::String(s) = &def.value
            && !options.is_empty()
            && !options.contains(s)
            && !is_expr(s)
        {
            d.semantic(def.span, format!("default '{s}' is not one of the options"));
        }
    }
    InputDef {
        span: n.span,
        description: text_of(get(n, "description")),
        required: bool_of(get(n, "required")),
        input_type,
        default,
        options,
    }
}
