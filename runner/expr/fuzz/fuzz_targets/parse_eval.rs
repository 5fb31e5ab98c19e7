//! `cargo +nightly fuzz run parse_eval` (from runner/expr/fuzz): parse, evaluate and template
//! arbitrary text; nothing may panic.
#![no_main]

use gantry_expr::{parse, parse_json, MapContext, Template};
use libfuzzer_sys::fuzz_target;

const CONTEXT: &str = r#"{"github": {"ref": "refs/heads/main", "event": {"labels": [{"name": "bug"}], "n": 1.5}},
  "matrix": {"os": ["a", "b"], "x": null}, "env": {"A": "1"}}"#;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let ctx = MapContext::from_json_str(CONTEXT).expect("context");
    if let Ok(e) = parse(s) {
        let _ = e.eval(&ctx);
    }
    if let Ok(t) = Template::parse(s) {
        let _ = t.eval(&ctx);
        let _ = t.converted_expr();
    }
    let _ = gantry_expr::if_condition(s);
    let _ = parse_json(s);
});
