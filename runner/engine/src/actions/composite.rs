//! Composite actions (GHA-SEMANTICS §8.5). The steps themselves are run by the step runner,
//! which implements [`StepHost`]; this module checks the action, builds the nested scope and
//! maps the outputs.
//!
//! Scope rules the host must follow in `run_steps`:
//! - a fresh `steps` context (the caller's is not visible, the composite's is not leaked);
//! - `inputs` = [`CompositeScope::inputs`]; no `secrets` context; no `INPUT_*` env;
//! - `github.action_path` / `GITHUB_ACTION_PATH` = the action directory;
//! - a step's `env:` applies to that step only (it does not leak into the composite nor back
//!   to the caller), but `GITHUB_ENV`/`GITHUB_PATH` writes propagate to the whole job;
//! - inner `if:` status functions follow the composite's own status;
//! - nested `uses:` steps go back through the action machinery (depth + 1).

use std::path::PathBuf;

use async_trait::async_trait;
use gantry_workflow::{Action, ActionRuns, Step};
use indexmap::IndexMap;

/// GitHub's limit on nested composite actions.
pub const MAX_DEPTH: usize = 10;

/// The nested scope a composite's steps run in.
#[derive(Debug, Clone)]
pub struct CompositeScope {
    /// The `uses:` value (for logs and `GITHUB_ACTION_REPOSITORY`).
    pub uses: String,
    /// Host path of the action directory (`github.action_path`).
    pub action_path: PathBuf,
    /// `inputs` context (after defaults).
    pub inputs: IndexMap<String, String>,
    /// 1 for a composite called from a workflow step, +1 per nesting level.
    pub depth: usize,
}

/// One inner step's record (`steps.<id>` of the composite's scope).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepRecord {
    pub outcome: String,
    pub conclusion: String,
    pub outputs: IndexMap<String, String>,
}

/// What the inner steps produced.
#[derive(Debug, Clone, Default)]
pub struct StepsResult {
    /// `success`, `failure` or `cancelled` (the composite's status after its steps).
    pub status: String,
    /// `steps` context of the composite, by id.
    pub steps: IndexMap<String, StepRecord>,
}

/// Implemented by the step runner.
#[async_trait]
pub trait StepHost: Send {
    /// Runs the steps in the nested scope (see the module docs) and reports their records.
    async fn run_steps(&mut self, steps: &[Step], scope: &CompositeScope) -> StepsResult;
    /// Evaluates an output `value` template against the composite's scope: github, strategy,
    /// matrix, runner, job, env, `inputs` = scope inputs, `steps` = `steps`.
    fn eval_output(
        &self,
        template: &str,
        scope: &CompositeScope,
        steps: &IndexMap<String, StepRecord>,
    ) -> Result<String, String>;
}

/// The result of a composite action.
#[derive(Debug, Clone, Default)]
pub struct CompositeOutcome {
    pub status: String,
    pub outputs: IndexMap<String, String>,
    pub errors: Vec<String>,
}

/// Checks the composite's steps (GitHub rejects these when loading the action).
pub fn check_steps(steps: &[Step]) -> Vec<String> {
    let mut errs = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let at = format!(
            "steps[{i}]{}",
            s.id.as_ref()
                .map(|id| format!(" ({})", id.value))
                .unwrap_or_default()
        );
        match (&s.run, &s.uses) {
            (Some(_), None) if s.shell.is_none() => errs.push(format!(
                "{at}: a run step in a composite action requires 'shell'"
            )),
            (Some(_), Some(_)) => {
                errs.push(format!("{at}: a step cannot have both 'run' and 'uses'"))
            }
            (None, None) => errs.push(format!("{at}: a step needs 'run' or 'uses'")),
            _ => {}
        }
    }
    errs
}

/// Runs a composite action through the host: checks, nested scope, outputs from
/// `outputs.<id>.value` evaluated after the steps (errors reported, failing the step).
pub async fn run_composite(
    host: &mut dyn StepHost,
    action: &Action,
    scope: CompositeScope,
) -> CompositeOutcome {
    let ActionRuns::Composite { steps } = &action.runs else {
        return CompositeOutcome {
            status: "failure".into(),
            errors: vec!["not a composite action".into()],
            ..Default::default()
        };
    };
    if scope.depth > MAX_DEPTH {
        return CompositeOutcome {
            status: "failure".into(),
            errors: vec![format!(
                "composite actions nest deeper than {MAX_DEPTH} levels ({})",
                scope.uses
            )],
            ..Default::default()
        };
    }
    let errs = check_steps(steps);
    if !errs.is_empty() {
        return CompositeOutcome {
            status: "failure".into(),
            errors: errs,
            ..Default::default()
        };
    }
    let res = host.run_steps(steps, &scope).await;
    let mut out = CompositeOutcome {
        status: res.status.clone(),
        ..Default::default()
    };
    for (name, o) in &action.outputs {
        let Some(v) = &o.value else { continue };
        match host.eval_output(&v.value, &scope, &res.steps) {
            Ok(s) => {
                out.outputs.insert(name.clone(), s);
            }
            Err(e) => {
                out.errors.push(format!("output '{name}': {e}"));
                out.status = "failure".into();
            }
        }
    }
    out
}

/// The `steps` context value for a composite scope.
pub fn steps_value(steps: &IndexMap<String, StepRecord>) -> gantry_expr::Value {
    use gantry_expr::{Object, Value};
    let mut o = Object::new();
    for (id, r) in steps {
        let mut s = Object::new();
        let mut outs = Object::new();
        for (k, v) in &r.outputs {
            outs.insert(k.clone(), Value::string(v));
        }
        s.insert("outputs", Value::object(outs));
        s.insert("outcome", Value::string(&r.outcome));
        s.insert("conclusion", Value::string(&r.conclusion));
        o.insert(id.clone(), Value::object(s));
    }
    Value::object(o)
}
