//! Conformance against GitHub's workflow parser: `shared/conformance/workflows/`.
//! Compares error/no-error and the first error's line per file; prints passed/total per
//! corpus folder. Set `GANTRY_CONFORMANCE_VERBOSE=1` to list disagreements.

use gantry_workflow::{Severity, parse_workflow};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn shared() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance");
    p.exists().then_some(p)
}

#[test]
fn workflow_vectors() {
    let Some(root) = shared() else {
        eprintln!("SKIPPED: ../shared/conformance not found; workflow conformance not run");
        return;
    };
    let verbose = std::env::var("GANTRY_CONFORMANCE_VERBOSE").is_ok();
    let text =
        std::fs::read_to_string(root.join("workflows/vectors.jsonl")).expect("vectors.jsonl");
    let mut per_corpus: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let (mut total, mut agree, mut both_err, mut line_eq) = (0, 0, 0, 0);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        let file = v["file"].as_str().expect("file");
        let path = root.join("workflows/files").join(file);
        let Ok(src) = std::fs::read_to_string(&path) else {
            continue;
        };
        let expected = v["errors"].as_array().map_or(0, |a| a.len());
        let loaded = parse_workflow(file, &src);
        let errors: Vec<_> = loaded
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .collect();
        total += 1;
        let corpus = file.split('/').next().unwrap_or("").to_string();
        let entry = per_corpus.entry(corpus).or_default();
        entry.1 += 1;
        let same = (expected > 0) == !errors.is_empty();
        if same {
            agree += 1;
            entry.0 += 1;
        } else if verbose {
            eprintln!(
                "DISAGREE {file}: expected {:?}, got {:?}",
                v["errors"]
                    .as_array()
                    .and_then(|a| a.first())
                    .map(|e| (&e["line"], &e["raw_message"])),
                errors.first().map(|d| (d.span.line, &d.message))
            );
        }
        if expected > 0 && !errors.is_empty() {
            both_err += 1;
            let want = v["errors"][0]["line"].as_u64();
            let got = errors[0].span.line as u64;
            if want.is_none() || want == Some(got) {
                line_eq += 1;
            } else if verbose {
                eprintln!(
                    "LINE {file}: expected line {:?} {:?}, got {} {:?}",
                    want, v["errors"][0]["raw_message"], got, errors[0].message
                );
            }
        }
    }
    for (corpus, (p, t)) in &per_corpus {
        println!("workflows/{corpus}: {p}/{t}");
    }
    println!(
        "workflows: error/no-error agreement {agree}/{total}; first error line equal {line_eq}/{both_err}"
    );
    assert!(total > 500, "corpus unexpectedly small: {total}");
    assert!(
        agree * 100 >= total * 98,
        "agreement {agree}/{total} below 98%"
    );
}
