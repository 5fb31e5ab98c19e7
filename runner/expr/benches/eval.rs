//! `cargo bench -p gantry-expr`: parses and evaluates the fixture vectors (and the shared
//! conformance vectors when present) repeatedly and prints parses+evals per second.

use gantry_expr::{MapContext, parse};
use std::path::PathBuf;
use std::time::Instant;

fn exprs(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|t| {
            t.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter_map(|v| v["expr"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let data = root.join("tests/testdata");
    let ctx =
        MapContext::from_json_str(&std::fs::read_to_string(data.join("context.json")).unwrap())
            .unwrap();
    let mut list = exprs(&root.join("../../../shared/conformance/expressions/vectors.jsonl"));
    if list.is_empty() {
        list = exprs(&data.join("vectors.jsonl"));
    }
    // Repeat to about 10k expressions.
    let mut all = Vec::new();
    while all.len() < 10_000 {
        all.extend(list.iter().cloned());
    }
    all.truncate(10_000);
    let parsed: Vec<_> = all.iter().filter_map(|s| parse(s).ok()).collect();
    for round in 0..3 {
        let t = Instant::now();
        let mut ok = 0usize;
        for s in &all {
            if let Ok(e) = parse(s) {
                ok += usize::from(e.eval(&ctx).is_ok());
            }
        }
        let pe = t.elapsed();
        let t = Instant::now();
        for e in &parsed {
            let _ = e.eval(&ctx);
        }
        let ev = t.elapsed();
        let t = Instant::now();
        let mut n = 0usize;
        for s in &all {
            n += usize::from(parse(s).is_ok());
        }
        let po = t.elapsed();
        println!(
            "round {round}: parse only {:.0}/s ({n} parsed)",
            all.len() as f64 / po.as_secs_f64()
        );
        println!(
            "round {round}: parse+eval {:.0}/s ({ok} ok of {}), eval only {:.0}/s",
            all.len() as f64 / pe.as_secs_f64(),
            all.len(),
            parsed.len() as f64 / ev.as_secs_f64()
        );
    }
}
