//! Reusable workflows (`workflow_call`, GHA-SEMANTICS §2.7): the callee's typed inputs with
//! defaults, secrets (named or `inherit`) and outputs. The scheduler runs the callee's jobs
//! (shown as `caller / callee`); this module checks and maps the values crossing the call.

use gantry_expr::{Object, Value};
use gantry_workflow::{CallSecrets, InputType, Node, Workflow};
use indexmap::IndexMap;

/// GitHub's limits: nesting depth and distinct called workflows per run.
pub const MAX_DEPTH: usize = 10;
pub const MAX_WORKFLOWS: usize = 50;

/// The `workflow_call` trigger of a callee, or an error when it has none.
pub fn call_trigger(callee: &Workflow) -> Result<&gantry_workflow::EventTrigger, String> {
    callee.on.events.get("workflow_call").ok_or_else(|| {
        format!(
            "{}: the called workflow has no 'on: workflow_call' trigger",
            callee.path
        )
    })
}

fn node_value(n: &Node) -> Value {
    Value::from_json(&n.to_json())
}

fn typed(name: &str, t: InputType, v: Value) -> Result<Value, String> {
    match (t, &v) {
        (InputType::Boolean, Value::Bool(_)) | (InputType::Number, Value::Number(_)) => Ok(v),
        (InputType::String | InputType::Choice | InputType::Environment, Value::String(_)) => Ok(v),
        (
            InputType::String | InputType::Choice | InputType::Environment,
            Value::Number(_) | Value::Bool(_),
        ) => Ok(Value::string(v.as_string())),
        (InputType::Boolean, Value::String(s)) if &**s == "true" || &**s == "false" => {
            Ok(Value::Bool(&**s == "true"))
        }
        (InputType::Number, Value::String(s)) if s.trim().parse::<f64>().is_ok() => {
            Ok(Value::Number(s.trim().parse().unwrap()))
        }
        _ => Err(format!(
            "input '{name}' has the wrong type: expected {t:?}, got {}",
            v.kind_name()
        )
        .to_lowercase()),
    }
}

/// The callee's `inputs` context from the caller's evaluated `with:` values. `eval_default`
/// evaluates a string default (github, inputs, vars). Undeclared or mistyped inputs and
/// missing required ones are errors; a missing optional input defaults to `false`, `0`, `""`.
pub fn call_inputs(
    callee: &Workflow,
    with: &IndexMap<String, Value>,
    mut eval_default: impl FnMut(&str) -> Result<Value, String>,
) -> Result<Value, Vec<String>> {
    let trig = call_trigger(callee).map_err(|e| vec![e])?;
    let mut errs = Vec::new();
    let mut out = Object::new();
    for k in with.keys() {
        if !trig.inputs.keys().any(|d| d.eq_ignore_ascii_case(k)) {
            errs.push(format!(
                "Invalid input, {k} is not defined in the referenced workflow."
            ));
        }
    }
    for (name, def) in &trig.inputs {
        let given = with
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone());
        let v = match given {
            Some(v) => v,
            None => match &def.default {
                Some(d) => match &d.value {
                    Node::String(s) if s.contains("${{") => match eval_default(s) {
                        Ok(v) => v,
                        Err(e) => {
                            errs.push(format!("input '{name}' default: {e}"));
                            continue;
                        }
                    },
                    other => node_value(other),
                },
                None if def.required => {
                    errs.push(format!(
                        "Input {name} is required, but not provided while calling."
                    ));
                    continue;
                }
                None => match def.input_type {
                    InputType::Boolean => Value::Bool(false),
                    InputType::Number => Value::Number(0.0),
                    _ => Value::string(""),
                },
            },
        };
        match typed(name, def.input_type, v) {
            Ok(v) => out.insert(name.clone(), v),
            Err(e) => errs.push(e),
        }
    }
    if errs.is_empty() {
        Ok(Value::object(out))
    } else {
        Err(errs)
    }
}

/// The callee's `secrets`: `inherit` passes all of the caller's; a map passes the named ones
/// (already evaluated by the caller). Undeclared secrets and missing required ones are errors.
pub fn call_secrets(
    callee: &Workflow,
    passed: Option<&CallSecrets>,
    evaluated: &IndexMap<String, String>,
    caller_secrets: &IndexMap<String, String>,
) -> Result<IndexMap<String, String>, Vec<String>> {
    let trig = call_trigger(callee).map_err(|e| vec![e])?;
    let mut errs = Vec::new();
    let out: IndexMap<String, String> = match passed {
        Some(CallSecrets::Inherit) => caller_secrets.clone(),
        Some(CallSecrets::Map(_)) => {
            for k in evaluated.keys() {
                if !trig.secrets.keys().any(|d| d.eq_ignore_ascii_case(k)) {
                    errs.push(format!(
                        "Invalid secret, {k} is not defined in the referenced workflow."
                    ));
                }
            }
            evaluated.clone()
        }
        None => IndexMap::new(),
    };
    if !matches!(passed, Some(CallSecrets::Inherit)) {
        for (name, def) in &trig.secrets {
            if def.required && !out.keys().any(|k| k.eq_ignore_ascii_case(name)) {
                errs.push(format!(
                    "Secret {name} is required, but not provided while calling."
                ));
            }
        }
    }
    if errs.is_empty() { Ok(out) } else { Err(errs) }
}

/// The callee's `outputs.<id>.value` templates, for the scheduler to evaluate with the
/// callee's `jobs` context once its jobs are done.
pub fn call_outputs(callee: &Workflow) -> IndexMap<String, String> {
    call_trigger(callee)
        .map(|t| {
            t.outputs
                .iter()
                .map(|(k, o)| (k.clone(), o.value.value.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Display name of a callee job: `caller / callee`.
pub fn job_display_name(caller: &str, callee: &str) -> String {
    format!("{caller} / {callee}")
}
