//! `workflow_dispatch` / `workflow_call` inputs (GHA-SEMANTICS §2.6, §2.7): typed values
//! for `inputs.*`, strings for `github.event.inputs.*`.

use gantry_expr::{EvalContext, Template, Value, parse_number};
use gantry_workflow::{InputDef, InputType, Node};
use indexmap::IndexMap;
use serde_json::Value as J;

fn type_name(t: InputType) -> &'static str {
    match t {
        InputType::String => "string",
        InputType::Boolean => "boolean",
        InputType::Number => "number",
        InputType::Choice => "choice",
        InputType::Environment => "environment",
    }
}

/// Why given inputs do not fit a workflow's declarations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("unexpected input(s) {}; declared inputs are [{}]", quoted(.unexpected), .declared.join(", "))]
    Undeclared {
        unexpected: Vec<String>,
        declared: Vec<String>,
    },
    #[error("input '{name}' is required but was not provided")]
    Missing { name: String },
    /// `default_of`: the wrong value is the input's default, declared with this type.
    #[error("input '{name}' must be {expected}, got '{got}'{}", default_of.map(|t| format!(" (default of type {})", type_name(t))).unwrap_or_default())]
    WrongValue {
        name: String,
        expected: Expected,
        got: String,
        default_of: Option<InputType>,
    },
    /// The default's expression does not evaluate (`message` is located in its text).
    #[error("input '{name}' default: {message}")]
    Default { name: String, message: String },
}

/// What an input of a type accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    Boolean,
    Number,
    OneOf(Vec<String>),
}

impl std::fmt::Display for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expected::Boolean => f.write_str("a boolean (true or false)"),
            Expected::Number => f.write_str("a number"),
            Expected::OneOf(options) => write!(f, "one of [{}]", options.join(", ")),
        }
    }
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|u| format!("'{u}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn number(n: f64) -> J {
    if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 {
        J::from(n as i64)
    } else {
        serde_json::Number::from_f64(n)
            .map(J::Number)
            .unwrap_or(J::Null)
    }
}

/// Converts a given string to the input's type.
fn convert(name: &str, def: &InputDef, text: &str) -> Result<J, InputError> {
    let wrong = |expected| InputError::WrongValue {
        name: name.to_string(),
        expected,
        got: text.to_string(),
        default_of: None,
    };
    match def.input_type {
        InputType::Boolean => match text.to_ascii_lowercase().as_str() {
            "true" => Ok(J::Bool(true)),
            "false" => Ok(J::Bool(false)),
            _ => Err(wrong(Expected::Boolean)),
        },
        InputType::Number => {
            let n = parse_number(text.trim());
            if text.trim().is_empty() || n.is_nan() {
                Err(wrong(Expected::Number))
            } else {
                Ok(number(n))
            }
        }
        InputType::Choice => {
            if def.options.iter().any(|o| o == text) {
                Ok(J::String(text.to_string()))
            } else {
                Err(wrong(Expected::OneOf(def.options.clone())))
            }
        }
        InputType::String | InputType::Environment => Ok(J::String(text.to_string())),
    }
}

/// The value of a missing optional input without a default: `false`, `0` or `""`.
fn zero(t: InputType) -> J {
    match t {
        InputType::Boolean => J::Bool(false),
        InputType::Number => J::from(0),
        _ => J::String(String::new()),
    }
}

/// Resolves given inputs (strings, as from `--input K=V` or the dispatch form) against the
/// declarations: undeclared inputs, missing required ones, wrong types and values outside
/// `options` are errors; defaults apply, then `false`/`0`/`""` by type. Defaults written
/// as expressions are kept as text; see [`resolve_inputs_with`].
pub fn resolve_inputs(
    def: &IndexMap<String, InputDef>,
    given: &IndexMap<String, String>,
) -> Result<IndexMap<String, J>, InputError> {
    resolve_inputs_with(def, given, None)
}

/// [`resolve_inputs`] evaluating expression defaults (`workflow_call`: github, inputs,
/// vars) with `ctx`.
pub fn resolve_inputs_with(
    def: &IndexMap<String, InputDef>,
    given: &IndexMap<String, String>,
    ctx: Option<&dyn EvalContext>,
) -> Result<IndexMap<String, J>, InputError> {
    let unexpected: Vec<&str> = given
        .keys()
        .filter(|k| !def.contains_key(*k))
        .map(String::as_str)
        .collect();
    if !unexpected.is_empty() {
        return Err(InputError::Undeclared {
            unexpected: unexpected.into_iter().map(str::to_string).collect(),
            declared: def.keys().cloned().collect(),
        });
    }
    let mut out = IndexMap::new();
    for (name, d) in def {
        let v = if let Some(text) = given.get(name) {
            convert(name, d, text)?
        } else if let Some(default) = &d.default {
            default_value(name, d, &default.value, ctx)?
        } else if d.required {
            return Err(InputError::Missing { name: name.clone() });
        } else {
            zero(d.input_type)
        };
        out.insert(name.clone(), v);
    }
    Ok(out)
}

fn default_value(
    name: &str,
    d: &InputDef,
    node: &Node,
    ctx: Option<&dyn EvalContext>,
) -> Result<J, InputError> {
    let v = match node {
        Node::String(s) if s.contains("${{") => match ctx {
            None => return Ok(J::String(s.clone())),
            Some(c) => {
                Template::parse(s)
                    .and_then(|t| t.eval(c))
                    .map_err(|e| InputError::Default {
                        name: name.to_string(),
                        message: e.located_message(s),
                    })?
            }
        },
        other => Value::from_json(&other.to_json()),
    };
    match (d.input_type, &v) {
        (InputType::Boolean, Value::Bool(b)) => Ok(J::Bool(*b)),
        (InputType::Number, Value::Number(n)) => Ok(number(*n)),
        (InputType::Boolean | InputType::Number | InputType::Choice, _) => {
            convert(name, d, &v.as_string())
        }
        (_, Value::Null) => Ok(J::String(String::new())),
        _ => Ok(J::String(v.as_string().into_owned())),
    }
    .map_err(|e| match e {
        InputError::WrongValue {
            name,
            expected,
            got,
            ..
        } => InputError::WrongValue {
            name,
            expected,
            got,
            default_of: Some(d.input_type),
        },
        e => e,
    })
}

/// The inputs of one workflow for one run: typed values for `inputs.*` and warnings for
/// the caller to print.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkflowInputs {
    /// Declared inputs (typed, defaults applied), then undeclared given ones as strings.
    pub values: IndexMap<String, J>,
    /// One line per given input the workflow does not declare.
    pub warnings: Vec<String>,
}

/// The inputs of `wf` for a run of `event_name`: `given` (`--input K=V` over the payload's
/// `inputs`, as strings) resolved against the `workflow_dispatch` / `workflow_call`
/// declarations. When the event itself declares them, missing required inputs, wrong
/// types and values outside `options` are errors; for another event (a `push` run of a
/// workflow that also has `workflow_dispatch`) the declarations give types and defaults
/// only. Undeclared inputs are passed through as strings with a warning, as act does.
pub fn workflow_inputs(
    wf: &gantry_workflow::Workflow,
    event_name: &str,
    given: &IndexMap<String, String>,
) -> Result<WorkflowInputs, InputError> {
    let own = wf
        .on
        .events
        .get(event_name)
        .filter(|t| !t.inputs.is_empty());
    let decl = own
        .or_else(|| wf.on.events.get("workflow_dispatch"))
        .or_else(|| wf.on.events.get("workflow_call"))
        .map(|t| &t.inputs);
    let empty = IndexMap::new();
    let decl = decl.unwrap_or(&empty);
    let (declared, undeclared): (IndexMap<String, String>, IndexMap<String, String>) = given
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .partition(|(k, _)| decl.contains_key(k));
    let mut values = if own.is_some() {
        resolve_inputs(decl, &declared)?
    } else {
        let lenient: IndexMap<String, InputDef> = decl
            .iter()
            .map(|(k, d)| {
                let mut d = d.clone();
                d.required = false;
                (k.clone(), d)
            })
            .collect();
        resolve_inputs(&lenient, &declared)?
    };
    let mut warnings = Vec::new();
    for (k, v) in undeclared {
        warnings.push(format!(
            "input '{k}' is not declared by {}; passed to github.event.inputs as a string",
            wf.display_name()
        ));
        values.insert(k, J::String(v));
    }
    Ok(WorkflowInputs { values, warnings })
}

/// The given inputs of a run as strings: the event payload's `inputs`, then `cli` over them.
pub fn given_inputs(event: &J, cli: &IndexMap<String, String>) -> IndexMap<String, String> {
    let mut out: IndexMap<String, String> = event
        .get("inputs")
        .and_then(J::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let text = match v {
                        J::String(s) => s.clone(),
                        other => Value::from_json(other).as_string().into_owned(),
                    };
                    (k.clone(), text)
                })
                .collect()
        })
        .unwrap_or_default();
    out.extend(cli.iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}

/// `github.event.inputs`: the same values as strings.
pub fn event_inputs(typed: &IndexMap<String, J>) -> IndexMap<String, J> {
    typed
        .iter()
        .map(|(k, v)| {
            let s = match v {
                J::String(s) => s.clone(),
                other => Value::from_json(other).as_string().into_owned(),
            };
            (k.clone(), J::String(s))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gantry_workflow::Spanned;

    fn def(t: InputType, required: bool, default: Option<Node>, options: &[&str]) -> InputDef {
        InputDef {
            span: Default::default(),
            description: None,
            required,
            input_type: t,
            default: default.map(|d| Spanned::new(d, Default::default())),
            options: options.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn given(kv: &[(&str, &str)]) -> IndexMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn typed_values_defaults_and_errors() {
        let mut d = IndexMap::new();
        d.insert(
            "debug".to_string(),
            def(InputType::Boolean, false, None, &[]),
        );
        d.insert(
            "level".to_string(),
            def(
                InputType::Choice,
                false,
                Some(Node::String("info".into())),
                &["info", "warn"],
            ),
        );
        d.insert(
            "count".to_string(),
            def(InputType::Number, false, None, &[]),
        );
        d.insert("name".to_string(), def(InputType::String, true, None, &[]));
        let r = resolve_inputs(
            &d,
            &given(&[("debug", "TRUE"), ("name", "x"), ("count", "3")]),
        )
        .unwrap();
        assert_eq!(
            J::Object(r.clone().into_iter().collect()),
            serde_json::json!({"debug": true, "level": "info", "count": 3, "name": "x"})
        );
        let s = event_inputs(&r);
        assert_eq!(s["debug"], J::String("true".into()));
        assert_eq!(s["count"], J::String("3".into()));
        let r = resolve_inputs(&d, &given(&[("name", "x")])).unwrap();
        assert_eq!(r["debug"], J::Bool(false));
        assert_eq!(r["count"], J::from(0));
        assert!(
            resolve_inputs(&d, &given(&[]))
                .unwrap_err()
                .to_string()
                .contains("'name' is required")
        );
        assert!(
            resolve_inputs(&d, &given(&[("name", "x"), ("level", "debug")]))
                .unwrap_err()
                .to_string()
                .contains("one of [info, warn]")
        );
        assert!(resolve_inputs(&d, &given(&[("name", "x"), ("debug", "yes")])).is_err());
        assert!(resolve_inputs(&d, &given(&[("name", "x"), ("count", "many")])).is_err());
        assert!(
            resolve_inputs(&d, &given(&[("name", "x"), ("bogus", "1")]))
                .unwrap_err()
                .to_string()
                .contains("'bogus'")
        );
    }
}
