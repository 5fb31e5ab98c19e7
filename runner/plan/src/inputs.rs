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
fn convert(name: &str, def: &InputDef, text: &str) -> Result<J, String> {
    match def.input_type {
        InputType::Boolean => match text.to_ascii_lowercase().as_str() {
            "true" => Ok(J::Bool(true)),
            "false" => Ok(J::Bool(false)),
            _ => Err(format!(
                "input '{name}' must be a boolean (true or false), got '{text}'"
            )),
        },
        InputType::Number => {
            let n = parse_number(text.trim());
            if text.trim().is_empty() || n.is_nan() {
                Err(format!("input '{name}' must be a number, got '{text}'"))
            } else {
                Ok(number(n))
            }
        }
        InputType::Choice => {
            if def.options.iter().any(|o| o == text) {
                Ok(J::String(text.to_string()))
            } else {
                Err(format!(
                    "input '{name}' must be one of [{}], got '{text}'",
                    def.options.join(", ")
                ))
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
) -> Result<IndexMap<String, J>, String> {
    resolve_inputs_with(def, given, None)
}

/// [`resolve_inputs`] evaluating expression defaults (`workflow_call`: github, inputs,
/// vars) with `ctx`.
pub fn resolve_inputs_with(
    def: &IndexMap<String, InputDef>,
    given: &IndexMap<String, String>,
    ctx: Option<&dyn EvalContext>,
) -> Result<IndexMap<String, J>, String> {
    let unexpected: Vec<&str> = given
        .keys()
        .filter(|k| !def.contains_key(*k))
        .map(String::as_str)
        .collect();
    if !unexpected.is_empty() {
        let valid: Vec<&str> = def.keys().map(String::as_str).collect();
        return Err(format!(
            "unexpected input(s) {}; declared inputs are [{}]",
            unexpected
                .iter()
                .map(|u| format!("'{u}'"))
                .collect::<Vec<_>>()
                .join(", "),
            valid.join(", ")
        ));
    }
    let mut out = IndexMap::new();
    for (name, d) in def {
        let v = if let Some(text) = given.get(name) {
            convert(name, d, text)?
        } else if let Some(default) = &d.default {
            default_value(name, d, &default.value, ctx)?
        } else if d.required {
            return Err(format!("input '{name}' is required but was not provided"));
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
) -> Result<J, String> {
    let v = match node {
        Node::String(s) if s.contains("${{") => match ctx {
            None => return Ok(J::String(s.clone())),
            Some(c) => Template::parse(s)
                .and_then(|t| t.eval(c))
                .map_err(|e| format!("input '{name}' default: {}", e.located_message(s)))?,
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
    .map_err(|e| format!("{e} (default of type {})", type_name(d.input_type)))
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
                .contains("'name' is required")
        );
        assert!(
            resolve_inputs(&d, &given(&[("name", "x"), ("level", "debug")]))
                .unwrap_err()
                .contains("one of [info, warn]")
        );
        assert!(resolve_inputs(&d, &given(&[("name", "x"), ("debug", "yes")])).is_err());
        assert!(resolve_inputs(&d, &given(&[("name", "x"), ("count", "many")])).is_err());
        assert!(
            resolve_inputs(&d, &given(&[("name", "x"), ("bogus", "1")]))
                .unwrap_err()
                .contains("'bogus'")
        );
    }
}
