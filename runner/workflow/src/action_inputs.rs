//! Action inputs (GHA-SEMANTICS §8.2): case-insensitive `with` keys, defaults (which may be
//! expressions), "Unexpected input(s)" warnings, deprecation warnings, and the `INPUT_*`
//! environment of JavaScript and Docker actions.

use crate::Action;
use gantry_expr::{Object, Value};
use indexmap::IndexMap;

/// Inputs after defaults, with the warnings to show.
#[derive(Debug, Clone, Default)]
pub struct ResolvedInputs {
    /// By declared name (or as written for undeclared keys), in declaration order first.
    pub values: IndexMap<String, String>,
    pub warnings: Vec<String>,
}

impl ResolvedInputs {
    /// `INPUT_<NAME>` for every input (JavaScript and Docker actions only; composite actions
    /// read the `inputs` context instead).
    pub fn env(&self) -> IndexMap<String, String> {
        self.values
            .iter()
            .map(|(k, v)| (input_env_name(k), v.clone()))
            .collect()
    }

    /// The `inputs` context.
    pub fn context(&self) -> Value {
        let mut o = Object::new();
        for (k, v) in &self.values {
            o.insert(k.clone(), Value::string(v));
        }
        Value::object(o)
    }
}

/// `INPUT_` + the name with spaces turned into `_`, upper-cased (hyphens kept).
pub fn input_env_name(name: &str) -> String {
    format!("INPUT_{}", name.replace(' ', "_").to_uppercase())
}

/// An input's default did not evaluate; `message` is the evaluator's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("input '{input}' default: {message}")]
pub struct DefaultError {
    pub input: String,
    pub message: String,
}

/// Applies `with` (already evaluated) over the action's declared inputs. `eval_default`
/// evaluates a default's template (github, strategy, matrix, job, runner, hashFiles).
/// `action` is `None` for `docker://` steps (no metadata: no warnings).
pub fn resolve_inputs(
    action: Option<&Action>,
    with: &IndexMap<String, String>,
    mut eval_default: impl FnMut(&str) -> Result<String, String>,
) -> Result<ResolvedInputs, DefaultError> {
    let mut out = ResolvedInputs::default();
    let Some(action) = action else {
        out.values = with.clone();
        return Ok(out);
    };
    let mut unexpected = Vec::new();
    let mut given: IndexMap<String, String> = IndexMap::new();
    for (k, v) in with {
        match action.inputs.keys().find(|d| d.eq_ignore_ascii_case(k)) {
            Some(decl) => {
                if let Some(msg) = &action.inputs[decl].deprecation_message {
                    out.warnings.push(format!(
                        "Input '{decl}' has been deprecated with message: {msg}"
                    ));
                }
                given.insert(decl.clone(), v.clone());
            }
            None => {
                if !k.eq_ignore_ascii_case("entrypoint") && !k.eq_ignore_ascii_case("args") {
                    unexpected.push(k.clone());
                }
                given.insert(k.clone(), v.clone());
            }
        }
    }
    if !unexpected.is_empty() {
        let valid: Vec<String> = action.inputs.keys().map(|k| format!("'{k}'")).collect();
        out.warnings.push(format!(
            "Unexpected input(s) {}, valid inputs are [{}]",
            unexpected
                .iter()
                .map(|k| format!("'{k}'"))
                .collect::<Vec<_>>()
                .join(", "),
            valid.join(", ")
        ));
    }
    for (name, decl) in &action.inputs {
        if let Some(v) = given.shift_remove(name) {
            out.values.insert(name.clone(), v);
        } else if let Some(d) = &decl.default {
            let v = eval_default(&d.value).map_err(|message| DefaultError {
                input: name.clone(),
                message,
            })?;
            out.values.insert(name.clone(), v);
        }
    }
    out.values.extend(given);
    Ok(out)
}
