//! Shared helpers for the conformance tests: locating `../shared/conformance`, reading
//! vectors, applying the documented C# corrections (`oracle_notes`) and comparing results.
#![allow(dead_code)]

use gantry_expr::{EvalContext, MapContext, Value, parse};
use serde_json::Value as J;
use std::path::PathBuf;

#[path = "../../../../tests/src/shared.rs"]
pub mod shared;

/// `<repo>/../shared/conformance`, or `None` after a loud SKIPPED line (a failure under
/// `GANTRY_REQUIRE_SHARED=1`).
pub fn conformance_dir() -> Option<PathBuf> {
    shared::shared_path(
        env!("CARGO_MANIFEST_DIR"),
        "conformance",
        "the expression conformance suites",
    )
}

pub fn read_jsonl(path: &std::path::Path) -> Vec<J> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("jsonl line"))
        .collect()
}

pub fn load_context(path: &std::path::Path) -> MapContext {
    MapContext::from_json_str(&std::fs::read_to_string(path).expect("context.json"))
        .expect("context")
}

/// What a vector expects after applying the C# corrections.
#[derive(Debug)]
pub enum Expect {
    Skip,
    Error,
    Value {
        result: J,
        kind: String,
        as_string: Vec<String>,
        truthy: bool,
    },
}

fn notes(v: &J) -> Vec<&str> {
    v.get("oracle_notes")
        .and_then(J::as_array)
        .map(|a| a.iter().filter_map(J::as_str).collect())
        .unwrap_or_default()
}

/// The expectation for one `vectors.jsonl` line, following C# where the oracle is flagged.
pub fn expectation(v: &J) -> Expect {
    if v.get("error_kind").and_then(J::as_str) == Some("stub") {
        return Expect::Skip;
    }
    let n = notes(v);
    let expr = v["expr"].as_str().unwrap_or_default();
    if n.contains(&"format-specifier") {
        // C#'s Format rejects `{0 }`, `{0,5}`, and any `{N:spec}` on a non-date value.
        return Expect::Error;
    }
    if n.contains(&"js-number-literal") {
        // C# ParseNumber: only lowercase `0x` (Int32.TryParse with AllowHexSpecifier, so
        // 8 hex digits wrap to negative) and `0o`; `0X`, `0O`, `0b` are lexing errors.
        if let Some(h) = expr.strip_prefix("0x")
            && h.len() <= 8
            && let Ok(u) = u32::from_str_radix(h, 16)
        {
            let n = f64::from(u as i32);
            return Expect::Value {
                result: serde_json::json!(n),
                kind: "Number".into(),
                as_string: vec![gantry_expr::format_number(n)],
                truthy: n != 0.0,
            };
        }
        return Expect::Error;
    }
    if v.get("error").is_some() {
        return Expect::Error;
    }
    let mut result = v["result"].clone();
    let mut kind = v["kind"].as_str().unwrap_or_default().to_string();
    let mut as_string = vec![v["as_string"].as_str().unwrap_or_default().to_string()];
    let truthy = v["truthy"].as_bool().unwrap_or(false);
    if n.contains(&"string-escape-first-only")
        && let Some(f) = v.get("fixed_escapes")
    {
        result = f["result"].clone();
        kind = f["kind"].as_str().unwrap_or_default().to_string();
        as_string = vec![f["as_string"].as_str().unwrap_or_default().to_string()];
    }
    if n.contains(&"number-format-g15")
        && let Some(g) = v.get("csharp_g15").and_then(J::as_str)
    {
        as_string = vec![g.to_string()];
    }
    if n.contains(&"negative-zero") {
        // .NET Core formats negative zero as "-0"; the oracle prints "0".
        as_string.push("-0".into());
    }
    Expect::Value {
        result,
        kind,
        as_string,
        truthy,
    }
}

/// JSON form of a value for comparison with vectors (non-finite numbers as strings).
pub fn value_json(v: &Value) -> J {
    v.to_json()
}

/// Structural comparison: numbers by value, objects order-insensitive.
pub fn json_eq(a: &J, b: &J) -> bool {
    match (a, b) {
        (J::Number(x), J::Number(y)) => x.as_f64() == y.as_f64(),
        (J::Array(x), J::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (J::Object(x), J::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Evaluates `expr` and checks it against `want`; `Err(reason)` on mismatch.
pub fn check(expr: &str, want: &Expect, ctx: &dyn EvalContext) -> Result<(), String> {
    let got = parse(expr).and_then(|e| e.eval(ctx));
    match (want, got) {
        (Expect::Skip, _) => Ok(()),
        (Expect::Error, Err(_)) => Ok(()),
        (Expect::Error, Ok(v)) => Err(format!(
            "expected an error, got {} {}",
            v.kind_name(),
            v.to_json()
        )),
        (Expect::Value { .. }, Err(e)) => Err(format!("unexpected error: {e}")),
        (
            Expect::Value {
                result,
                kind,
                as_string,
                truthy,
            },
            Ok(v),
        ) => {
            let mut why = Vec::new();
            if v.kind_name() != kind {
                why.push(format!("kind {} != {kind}", v.kind_name()));
            }
            if !json_eq(&value_json(&v), result) {
                why.push(format!("result {} != {result}", value_json(&v)));
            }
            let s = v.as_string();
            if !as_string.iter().any(|a| *a == *s) {
                why.push(format!("as_string {s:?} != {:?}", as_string[0]));
            }
            if v.is_truthy() != *truthy {
                why.push(format!("truthy {} != {truthy}", v.is_truthy()));
            }
            if why.is_empty() {
                Ok(())
            } else {
                Err(why.join("; "))
            }
        }
    }
}
