//! Conformance against GitHub's workflow parser: `shared/conformance/workflows/`.
//! Compares error/no-error and the first error's line per file; prints passed/total per
//! corpus folder. Set `GANTRY_CONFORMANCE_VERBOSE=1` to list disagreements.
//!
//! The oracle is GitHub's TypeScript parser. For the languageservices files, the corpus
//! ships `ts-known-failures-classified.json`: reader tests where that parser is known to
//! disagree with GitHub's reference implementation about whether the file has errors.
//! Gantry follows the reference there, so those vectors are counted separately (and
//! checked against the reference by the reader suite). Called reusable workflows come
//! from the same reader test, as the oracle had them.

mod common;

use gantry_workflow::{Severity, check_workflow_calls, parse_workflow_with};
use std::collections::{BTreeMap, HashSet};

/// Reader tests where the oracle and GitHub's reference disagree on error/no-error.
fn oracle_known_wrong(root: &std::path::Path) -> HashSet<String> {
    let Ok(text) =
        std::fs::read_to_string(root.join("github-official/ts-known-failures-classified.json"))
    else {
        return HashSet::new();
    };
    let v: serde_json::Value = serde_json::from_str(&text).expect("classified json");
    let mut out = HashSet::new();
    for class in [
        "reference reports errors, TS reports none",
        "TS reports errors, reference none",
    ] {
        for item in v[class].as_array().into_iter().flatten() {
            if let Some(name) = item.as_str().and_then(|s| s.split_whitespace().next()) {
                out.insert(format!("languageservices/{name}"));
            }
        }
    }
    out
}

#[test]
fn workflow_vectors() {
    let Some(root) = common::shared_path("conformance", "the workflow conformance vectors") else {
        return;
    };
    let verbose = std::env::var("GANTRY_CONFORMANCE_VERBOSE").is_ok();
    let known_wrong = oracle_known_wrong(&root);
    let text =
        std::fs::read_to_string(root.join("workflows/vectors.jsonl")).expect("vectors.jsonl");
    let mut per_corpus: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let (mut total, mut agree, mut both_err, mut line_eq, mut no_line) = (0, 0, 0, 0, 0);
    let (mut raw_agree, mut raw_total, mut excluded, mut excluded_agree) = (0, 0, 0, 0);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        let file = v["file"].as_str().expect("file");
        let path = root.join("workflows/files").join(file);
        let Ok(src) = std::fs::read_to_string(&path) else {
            continue;
        };
        let expected = v["errors"].as_array().map_or(0, |a| a.len());
        // The reader test this file came from (languageservices) supplies options and
        // called workflows.
        let reader_docs = file
            .strip_prefix("languageservices/")
            .and_then(|name| std::fs::read_to_string(common::reader_dir().join(name)).ok())
            .map(|t| common::split_docs(&t))
            .unwrap_or_default();
        let (ropts, copts) = common::options(reader_docs.first().map_or("", String::as_str));
        let loaded = parse_workflow_with(file, &src, &ropts);
        let mut diags = loaded.diagnostics.clone();
        if let Some(wf) = &loaded.value {
            let called = common::called_workflows(&reader_docs);
            let mut resolve = |r: &str| called.get(r).cloned();
            diags.extend(check_workflow_calls(wf, &mut resolve, &copts));
        }
        let errors: Vec<_> = diags
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .collect();
        let same = (expected > 0) != errors.is_empty();
        raw_total += 1;
        if same {
            raw_agree += 1;
        }
        if known_wrong.contains(file) {
            excluded += 1;
            if same {
                excluded_agree += 1;
            }
            continue;
        }
        total += 1;
        let corpus = file.split('/').next().unwrap_or("").to_string();
        let entry = per_corpus.entry(corpus).or_default();
        entry.1 += 1;
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
            // An expected error without a line has nothing to compare: counted apart.
            let Some(want) = v["errors"][0]["line"].as_u64() else {
                no_line += 1;
                continue;
            };
            both_err += 1;
            let got = errors[0].span.line as u64;
            if want == got {
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
        "workflows: error/no-error agreement {agree}/{total}; first error line equal {line_eq}/{both_err} \
         ({no_line} expected errors carry no line)"
    );
    println!(
        "workflows: {excluded} vectors where the oracle is known to differ from GitHub's reference \
         (we agree with the oracle on {excluded_agree}); raw agreement {raw_agree}/{raw_total}"
    );
    assert!(total > 450, "corpus unexpectedly small: {total}");
    assert!(
        agree * 100 >= total * 98,
        "agreement {agree}/{total} below 98%"
    );
    assert!(
        line_eq * 100 >= both_err * 95,
        "first error line {line_eq}/{both_err} below 95%"
    );
}
