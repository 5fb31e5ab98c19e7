//! Data-driven tables: filter patterns (§2.3/§2.4) and matrix expansion (§6.4).

use gantry_plan::filters::{compile_strs, ignore_list, include_list};
use gantry_plan::matrix;
use serde_json::Value as J;

fn load(name: &str) -> Vec<J> {
    let path = format!("{}/tests/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str::<J>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn strs(v: &J) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn pattern_table() {
    let cases = load("patterns.json");
    assert!(cases.len() > 50);
    let mut failures = Vec::new();
    for c in &cases {
        let pats = strs(&c["patterns"]);
        let items = strs(&c["items"]);
        let p: Vec<&str> = pats.iter().map(String::as_str).collect();
        let i: Vec<&str> = items.iter().map(String::as_str).collect();
        let compiled = compile_strs(&p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
        let skip_inc = !include_list(&compiled, &i) && !p.is_empty();
        let skip_ign = !ignore_list(&compiled, &i) && !p.is_empty();
        if skip_inc != c["skip_include"].as_bool().unwrap()
            || skip_ign != c["skip_ignore"].as_bool().unwrap()
        {
            failures.push(format!(
                "{p:?} on {i:?}: skip_include={skip_inc} skip_ignore={skip_ign}, expected {} {}",
                c["skip_include"], c["skip_ignore"]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn matrix_table() {
    let cases = load("matrix.json");
    let mut failures = Vec::new();
    for c in &cases {
        let name = c["name"].as_str().unwrap();
        let got = matrix::expand(&c["matrix"]);
        match (&got, c.get("error")) {
            (Err(e), Some(want)) => {
                if e.to_string() != want.as_str().unwrap() {
                    failures.push(format!("{name}: error {e:?}, expected {want}"));
                }
            }
            (Err(e), None) => failures.push(format!("{name}: unexpected error {e}")),
            (Ok(_), Some(want)) => failures.push(format!("{name}: expected error {want}")),
            (Ok(legs), None) => {
                if let Some(want) = c.get("legs") {
                    let got: Vec<J> = legs
                        .iter()
                        .map(|l| J::Object(l.values.clone().into_iter().collect()))
                        .collect();
                    // key order matters too: compare serialized text
                    if serde_json::to_string(&got).unwrap() != serde_json::to_string(want).unwrap()
                    {
                        failures.push(format!(
                            "{name}:\n  got      {}\n  expected {}",
                            serde_json::to_string(&got).unwrap(),
                            want
                        ));
                    }
                }
                if let Some(want) = c.get("names") {
                    let got: Vec<String> = legs.iter().map(|l| l.display_name("j")).collect();
                    if got != strs(want) {
                        failures.push(format!("{name}: names {got:?}, expected {want}"));
                    }
                }
                if let Some(n) = c.get("count")
                    && legs.len() as u64 != n.as_u64().unwrap()
                {
                    failures.push(format!("{name}: {} legs, expected {n}", legs.len()));
                }
            }
        }
    }
    println!(
        "matrix table: {}/{} passed",
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
