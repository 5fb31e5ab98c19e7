//! action.yml: conversion into [`Action`] and the `runs` checks per `using` (spec §8).

use crate::Diagnostics;
use crate::exprs;
use crate::job;
use crate::load::{YKind, YNode};
use crate::model::*;
use crate::schema::ctx;
use crate::workflow::{bool_of, entries, get, items, sstr, text_of};
use indexmap::IndexMap;

pub(crate) fn convert(path: &str, root: &YNode, d: &mut Diagnostics) -> Action {
    let mut a = Action {
        path: path.to_string(),
        name: text_of(get(root, "name")),
        description: text_of(get(root, "description")),
        author: text_of(get(root, "author")),
        inputs: IndexMap::new(),
        outputs: IndexMap::new(),
        runs: ActionRuns::Composite { steps: Vec::new() },
    };
    if let Some(inputs) = get(root, "inputs") {
        for (k, v) in entries(inputs) {
            let Some(id) = k.scalar_string() else {
                continue;
            };
            a.inputs.insert(
                id,
                ActionInput {
                    description: text_of(get(v, "description")),
                    required: bool_of(get(v, "required")),
                    default: get(v, "default").and_then(sstr),
                    deprecation_message: text_of(get(v, "deprecationMessage")),
                },
            );
        }
    }
    let mut composite = false;
    if let Some(runs) = get(root, "runs") {
        let (r, is_composite) = runs_of(runs, d);
        a.runs = r;
        composite = is_composite;
    }
    if let Some(outputs) = get(root, "outputs") {
        for (k, v) in entries(outputs) {
            let Some(id) = k.scalar_string() else {
                continue;
            };
            let value = get(v, "value").and_then(sstr);
            if composite && value.is_none() {
                d.semantic(v.span, "Required property is missing: value");
            }
            a.outputs.insert(
                id,
                ActionOutput {
                    description: text_of(get(v, "description")),
                    value,
                },
            );
        }
    }
    a
}

const NODE_KEYS: &[&str] = &["using", "main", "pre", "pre-if", "post", "post-if"];
const DOCKER_KEYS: &[&str] = &[
    "using",
    "image",
    "env",
    "entrypoint",
    "args",
    "pre-entrypoint",
    "pre-if",
    "post-entrypoint",
    "post-if",
];
const COMPOSITE_KEYS: &[&str] = &["using", "steps"];

fn runs_of(n: &YNode, d: &mut Diagnostics) -> (ActionRuns, bool) {
    let empty = (ActionRuns::Composite { steps: Vec::new() }, false);
    if !matches!(n.kind, YKind::Map(_)) {
        d.error(n.span, "'runs' must be a mapping");
        return empty;
    }
    let Some(using) = get(n, "using").and_then(sstr) else {
        d.error(n.span, "Required property is missing: using");
        return empty;
    };
    let u = using.value.as_str();
    let (keys, required): (&[&str], &str) = match u {
        "node12" | "node16" | "node20" | "node24" => (NODE_KEYS, "main"),
        "docker" => (DOCKER_KEYS, "image"),
        "composite" => (COMPOSITE_KEYS, "steps"),
        _ => {
            d.error(using.span, format!("'using: {u}' is not supported, use 'docker', 'node12', 'node16', 'node20', 'node24' or 'composite' instead."));
            return empty;
        }
    };
    for (k, _) in entries(n) {
        let key = k.scalar_string().unwrap_or_default();
        if !keys.contains(&key.as_str()) {
            d.error(k.span, format!("Unexpected value '{key}'"));
        }
    }
    if get(n, required).is_none() {
        d.error(n.span, format!("Required property is missing: {required}"));
    }
    let s = |k: &str| text_of(get(n, k));
    for cond in ["pre-if", "post-if"] {
        if let Some(c) = get(n, cond).and_then(sstr)
            && let Err(e) = exprs::check_if(&c.value, ctx::STEP_IF & !ctx::NEEDS)
        {
            d.semantic(c.span, e);
        }
    }
    let runs = match u {
        "docker" => ActionRuns::Docker {
            image: s("image").unwrap_or_default(),
            env: get(n, "env")
                .map(|e| {
                    entries(e)
                        .iter()
                        .filter_map(|(k, v)| Some((k.scalar_string()?, sstr(v)?)))
                        .collect()
                })
                .unwrap_or_default(),
            entrypoint: s("entrypoint"),
            args: get(n, "args")
                .map(|a| items(a).iter().filter_map(sstr).collect())
                .unwrap_or_default(),
            pre_entrypoint: s("pre-entrypoint"),
            pre_if: s("pre-if"),
            post_entrypoint: s("post-entrypoint"),
            post_if: s("post-if"),
        },
        "composite" => {
            let steps_node = get(n, "steps");
            if let Some(sn) = steps_node {
                if !matches!(sn.kind, YKind::Seq(_)) {
                    d.error(sn.span, "'steps' must be a sequence");
                } else {
                    for it in items(sn) {
                        check_composite_step(it, d);
                    }
                }
            }
            let steps = steps_node
                .map(|sn| job::steps(sn, true, d))
                .unwrap_or_default();
            return (ActionRuns::Composite { steps }, true);
        }
        _ => ActionRuns::Node {
            using: u.to_string(),
            main: s("main").unwrap_or_default(),
            pre: s("pre"),
            pre_if: s("pre-if"),
            post: s("post"),
            post_if: s("post-if"),
        },
    };
    (runs, false)
}

/// Composite steps (spec §8.5): run (with shell) or uses steps, no timeout, no secrets.
fn check_composite_step(n: &YNode, d: &mut Diagnostics) {
    let YKind::Map(e) = &n.kind else {
        d.error(n.span, "A step must be a mapping");
        return;
    };
    let has = |k: &str| e.iter().any(|(key, _)| key.as_str() == Some(k));
    let is_run = has("run");
    if is_run == has("uses") {
        d.error(n.span, "A step must have exactly one of 'run' or 'uses'");
    }
    const RUN: &[&str] = &[
        "name",
        "id",
        "if",
        "run",
        "shell",
        "env",
        "continue-on-error",
        "working-directory",
    ];
    const USES: &[&str] = &[
        "name",
        "id",
        "if",
        "uses",
        "with",
        "env",
        "continue-on-error",
    ];
    let allowed = if is_run { RUN } else { USES };
    let bits = (ctx::STEP & !ctx::SECRETS & !ctx::NEEDS) | ctx::INPUTS;
    for (k, v) in e {
        let key = k.scalar_string().unwrap_or_default();
        if !allowed.contains(&key.as_str()) {
            d.error(k.span, format!("Unexpected value '{key}'"));
            continue;
        }
        if key == "if" || key == "id" || key == "uses" {
            continue;
        }
        check_exprs(v, bits, d);
    }
}

fn check_exprs(n: &YNode, bits: u32, d: &mut Diagnostics) {
    match &n.kind {
        YKind::Str(s, _) if s.contains("${{") => {
            if let Err(e) = exprs::check_template(s, bits) {
                d.semantic(n.span, e);
            }
        }
        YKind::Map(e) => e.iter().for_each(|(_, v)| check_exprs(v, bits, d)),
        YKind::Seq(items) => items.iter().for_each(|v| check_exprs(v, bits, d)),
        _ => {}
    }
}
