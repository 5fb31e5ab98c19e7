//! Steps: conversion into [`Step`] and step-level checks (`uses` forms, `if` contexts,
//! template injection in `run`).

use crate::Diagnostics;
use crate::exprs;
use crate::load::YNode;
use crate::model::*;
use crate::schema::ctx;
use crate::validate;
use crate::workflow::{entries, is_expr, or_bool, or_num, sstr, string_map};

pub(crate) fn convert(n: &YNode, composite: bool, d: &mut Diagnostics) -> Step {
    let mut s = Step {
        span: n.span,
        ..Default::default()
    };
    for (k, v) in entries(n) {
        match k.as_str().unwrap_or("") {
            "id" => s.id = sstr(v),
            "name" => s.name = sstr(v),
            "if" => s.if_cond = sstr(v),
            "uses" => s.uses = sstr(v),
            "run" => s.run = sstr(v),
            "shell" => s.shell = sstr(v),
            "with" => s.with = string_map(v),
            "env" => s.env = expect_mapping(v, "step env", d),
            "working-directory" => s.working_directory = sstr(v),
            "continue-on-error" => s.continue_on_error = or_bool(v),
            "timeout-minutes" => s.timeout_minutes = or_num(v),
            "background" => s.background = crate::workflow::bool_of(Some(v)),
            "wait" => s.control = Some(StepControl::Wait(crate::workflow::str_list(v))),
            "wait-all" if !matches!(v.kind, crate::load::YKind::Bool(false)) => {
                s.control = Some(StepControl::WaitAll)
            }
            "cancel" => s.control = sstr(v).map(StepControl::Cancel),
            "parallel" => {
                s.parallel = crate::workflow::items(v)
                    .iter()
                    .filter(|m| matches!(m.kind, crate::load::YKind::Map(_)))
                    .map(|m| convert(m, composite, d))
                    .collect()
            }
            _ => {}
        }
    }
    if let Some(id) = &s.id
        && !is_expr(&id.value)
    {
        validate::check_id(id, "step", d);
    }
    if composite && (s.background || s.control.is_some() || !s.parallel.is_empty()) {
        // GitHub: a composite action can run as a background step, not declare one.
        d.semantic(
            s.span,
            "Background steps, parallel groups and wait, wait-all and cancel steps cannot be used inside a composite action.",
        );
    }
    if let Some(c) = &s.if_cond {
        let bits = if composite {
            ctx::STEP_IF & !ctx::NEEDS
        } else {
            ctx::STEP_IF
        };
        if let Err(e) = exprs::check_if(&c.value, bits) {
            d.semantic(c.span, e);
        }
    }
    if let Some(u) = &s.uses
        && let Err(e) = check_action_ref(&u.value)
    {
        d.semantic(u.span, e);
    }
    if let Some(run) = &s.run {
        let found = exprs::untrusted_inputs(&run.value);
        if !found.is_empty() {
            d.warning(
                run.span,
                format!(
                    "possible script injection: {} is controlled by the event's author and is interpolated into `run`; pass it through `env:` (e.g. `env: {{ VALUE: ${{{{ {} }}}} }}`) and use \"$VALUE\" in the script",
                    found.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", "),
                    found[0]
                ),
            );
        }
        if composite && s.shell.is_none() {
            d.semantic(s.span, "Required property is missing: shell");
        }
    }
    s
}

/// `env:` must be a mapping: GitHub's parser rejects a whole-value expression here.
pub(crate) fn expect_mapping(v: &YNode, what: &str, d: &mut Diagnostics) -> StringMap {
    if let Some(s) = v.as_str()
        && is_expr(s)
    {
        d.semantic(v.span, format!("Unexpected type 'BasicExpressionToken' encountered while reading '{what}'. The type 'MappingToken' was expected."));
        return StringMap::Empty;
    }
    string_map(v)
}

/// Checks a step's `uses:` (spec §8.1).
pub(crate) fn check_action_ref(u: &str) -> Result<(), String> {
    if is_expr(u) || u.starts_with("docker://") || u.starts_with("./") || u.starts_with(".\\") {
        return Ok(());
    }
    if let Some(rest) = u.strip_prefix("$/") {
        return check_self_path(u, rest, false);
    }
    let bad = || format!("Expected format {{org}}/{{repo}}[/path]@ref. Actual '{u}'");
    let parts: Vec<&str> = u.split('@').collect();
    if parts.len() != 2 || parts[1].is_empty() {
        return Err(bad());
    }
    let path: Vec<&str> = parts[0].split(['/', '\\']).collect();
    if path.len() < 2 || path[0].is_empty() || path[1].is_empty() {
        return Err(bad());
    }
    Ok(())
}

/// `$/path` (spec §8.1): the workflow's own repository at the running commit. No `@ref`,
/// no `..`, and for a job-level `uses` (`workflow`) a file under `.github/workflows/`.
pub(crate) fn check_self_path(u: &str, rest: &str, workflow: bool) -> Result<(), String> {
    let why = if rest.contains('@') {
        Some(
            "a $/ reference takes no @ref: it is the workflow's own repository at the running commit",
        )
    } else if rest.replace('\\', "/").split('/').any(|s| s == "..") {
        Some("'..' is not allowed in a $/ path: it must stay inside the repository")
    } else if rest.starts_with('/') || rest.contains(char::is_whitespace) {
        Some("expected $/path/inside/the/repository")
    } else if workflow && !is_workflow_file(rest) {
        Some("expected '$/.github/workflows/{file}.yml'")
    } else if !workflow && is_workflow_file(rest) {
        Some("a reusable workflow can only be called by a job-level `uses:`")
    } else {
        None
    };
    match why {
        Some(w) => Err(format!("Invalid reference '{u}': {w}")),
        None => Ok(()),
    }
}

fn is_workflow_file(rest: &str) -> bool {
    let l = rest.to_ascii_lowercase();
    l.starts_with(".github/workflows/") && (l.ends_with(".yml") || l.ends_with(".yaml"))
}

#[cfg(test)]
mod tests {
    use super::check_action_ref;

    #[test]
    fn parallel_groups() {
        let group = "on: push\njobs:\n  b:\n    runs-on: x\n    steps:\n      - name: g\n        parallel:\n          - id: a\n            run: echo a\n          - uses: $/.github/actions/x\n";
        let l = crate::parse_workflow("w.yml", group);
        let wf = l.value.expect("parsed");
        let steps = &wf.jobs["b"].steps;
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].parallel.len(), 2);
        assert_eq!(steps[0].parallel[0].id.as_ref().unwrap().value, "a");
        // Member ids share the job's scope: a later step may not reuse one.
        let text = format!("{group}      - id: a\n        run: echo again\n");
        let l = crate::parse_workflow("w.yml", &text);
        let dup: Vec<_> = l
            .diagnostics
            .iter()
            .filter(|d| d.message.contains("more than once"))
            .collect();
        assert_eq!(dup.len(), 1, "{:?}", l.diagnostics);
        assert_eq!(dup[0].span.line, 11);
        // A member is an ordinary step: unknown keys are refused.
        let bad = "on: push\njobs:\n  b:\n    runs-on: x\n    steps:\n      - parallel:\n          - run: x\n            nope: 1\n";
        let l = crate::parse_workflow("w.yml", bad);
        assert!(
            l.diagnostics.iter().any(|d| d.span.line == 8),
            "{:?}",
            l.diagnostics
        );
    }

    #[test]
    fn composite_actions_cannot_declare_steps_that_run_at_once() {
        for step in [
            "      - shell: bash\n        background: true\n        run: x\n",
            "      - parallel:\n          - shell: bash\n            run: x\n",
        ] {
            let text = format!("name: a\nruns:\n  using: composite\n  steps:\n{step}");
            let l = crate::parse_action("action.yml", &text);
            assert!(
                l.diagnostics.iter().any(|d| d
                    .message
                    .contains("cannot be used inside a composite action")),
                "{step}: {:?}",
                l.diagnostics
            );
        }
    }

    #[test]
    fn self_forms() {
        assert!(check_action_ref("$/.github/actions/x").is_ok());
        for bad in [
            "$/.github/actions/x@v1",
            "$/../x",
            "$/.github/workflows/w.yml",
        ] {
            assert!(check_action_ref(bad).is_err(), "{bad}");
        }
        assert!(super::check_self_path("$/", ".github/workflows/w.yml", true).is_ok());
        assert!(super::check_self_path("$/", ".github/w.yml", true).is_err());
    }

    #[test]
    fn uses_forms() {
        for ok in [
            "actions/checkout@v4",
            "o/r/sub/dir@main",
            "./local",
            "docker://alpine:3",
            "o/r\\x@1",
        ] {
            assert!(check_action_ref(ok).is_ok(), "{ok}");
        }
        for bad in [
            "actions/checkout",
            "checkout@v4",
            "o/r@",
            "o/r@a@b",
            "/r@v1",
        ] {
            assert!(check_action_ref(bad).is_err(), "{bad}");
        }
    }
}
