//! `gantry eval --context FILE [EXPR]`: evaluate GitHub Actions expressions.
//!
//! With `EXPR`, prints the result as JSON (non-finite numbers as the strings "NaN",
//! "Infinity", "-Infinity") and exits 1 on an error. Without it, reads JSON lines
//! `{"expr": "..."}` from stdin and writes one line per input, in order:
//! `{"kind","result","as_string","truthy"}` or `{"error","error_kind"}`, the same fields as
//! the conformance vectors. Status functions use the default stubs (`success()`/`always()`
//! true, `failure()`/`cancelled()` false); `hashFiles` hashes below the current directory.

use anyhow::Context as _;
use gantry_expr::{ExprError, MapContext, Value, parse};
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;

/// Runs the command; returns the process exit code.
pub fn run(context_file: Option<&Path>, expr: Option<&str>) -> anyhow::Result<i32> {
    let mut ctx = match context_file {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            MapContext::from_json_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
        }
        None => MapContext::new(),
    };
    if let Ok(cwd) = std::env::current_dir() {
        ctx.workspace = Some(cwd);
    }
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    if let Some(src) = expr {
        return match parse(src).and_then(|e| e.eval(&ctx)) {
            Ok(v) => {
                writeln!(out, "{}", v.to_json_compact())?;
                out.flush()?;
                Ok(0)
            }
            Err(e) => {
                out.flush()?;
                eprintln!("error ({}): {}", e.kind.as_str(), e.located_message(src));
                Ok(1)
            }
        };
    }
    let stdin = std::io::stdin();
    let mut input = std::io::BufReader::with_capacity(1 << 16, stdin.lock());
    let mut line = String::new();
    let mut buf = String::with_capacity(256);
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        if line.trim().is_empty() {
            continue;
        }
        buf.clear();
        eval_line(&line, &ctx, &mut buf);
        out.write_all(buf.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(0)
}

/// Evaluates one `{"expr": ...}` input line into `out` (one JSON object, no newline).
fn eval_line(line: &str, ctx: &MapContext, out: &mut String) {
    let src = match serde_json::from_str::<serde_json::Value>(line) {
        Ok(serde_json::Value::Object(m)) => match m.get("expr") {
            Some(serde_json::Value::String(s)) => s.clone(),
            _ => return write_error(out, "input line has no string \"expr\"", "input"),
        },
        Ok(_) => return write_error(out, "input line is not a JSON object", "input"),
        Err(e) => return write_error(out, &format!("invalid JSON input line: {e}"), "input"),
    };
    match parse(&src).and_then(|e| e.eval(ctx)) {
        Ok(v) => write_value(out, &v),
        Err(e) => write_expr_error(out, &e),
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn write_value(out: &mut String, v: &Value) {
    out.push_str("{\"kind\":");
    out.push_str(&json_str(v.kind_name()));
    out.push_str(",\"result\":");
    out.push_str(&v.to_json_compact());
    out.push_str(",\"as_string\":");
    out.push_str(&json_str(&v.as_string()));
    out.push_str(",\"truthy\":");
    out.push_str(if v.is_truthy() { "true" } else { "false" });
    out.push('}');
}

fn write_expr_error(out: &mut String, e: &ExprError) {
    write_error(out, &e.message, e.kind.as_str());
}

fn write_error(out: &mut String, message: &str, kind: &str) {
    out.push_str("{\"error\":");
    out.push_str(&json_str(message));
    out.push_str(",\"error_kind\":");
    out.push_str(&json_str(kind));
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> MapContext {
        MapContext::from_json_str(
            r#"{"github": {"ref": "refs/heads/main"}, "matrix": {"n": [1, 2]}}"#,
        )
        .unwrap()
    }

    #[test]
    fn lines() {
        let c = ctx();
        let mut s = String::new();
        eval_line(r#"{"expr": "github.REF"}"#, &c, &mut s);
        assert_eq!(
            s,
            r#"{"kind":"String","result":"refs/heads/main","as_string":"refs/heads/main","truthy":true}"#
        );
        s.clear();
        eval_line(r#"{"expr": "matrix.n"}"#, &c, &mut s);
        assert_eq!(
            s,
            r#"{"kind":"Array","result":[1,2],"as_string":"Array","truthy":true}"#
        );
        s.clear();
        eval_line(r#"{"expr": "NaN"}"#, &c, &mut s);
        assert_eq!(
            s,
            r#"{"kind":"Number","result":"NaN","as_string":"NaN","truthy":false}"#
        );
        s.clear();
        eval_line(r#"{"expr": "foo"}"#, &c, &mut s);
        assert_eq!(
            s,
            r#"{"error":"Unrecognized named-value: 'foo'","error_kind":"parsing"}"#
        );
        s.clear();
        eval_line("not json", &c, &mut s);
        assert!(s.contains("\"error_kind\":\"input\""), "{s}");
    }
}
