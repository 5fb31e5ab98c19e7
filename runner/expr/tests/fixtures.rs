//! In-repo fixtures (`tests/testdata/`): vectors copied from `shared/conformance` plus a
//! few derived C# cases, so a clone without `../shared` still tests the essentials.

mod common;

use common::*;
use std::path::PathBuf;

#[test]
fn fixture_vectors() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/testdata");
    let ctx = load_context(&dir.join("context.json"));
    let vectors = read_jsonl(&dir.join("vectors.jsonl"));
    let mut failures = Vec::new();
    let mut total = 0;
    for v in &vectors {
        let want = expectation(v);
        if matches!(want, Expect::Skip) {
            continue;
        }
        total += 1;
        let expr = v["expr"].as_str().expect("expr");
        if let Err(why) = check(expr, &want, &ctx) {
            failures.push(format!("#{} {expr:?}: {why}", v["id"]));
        }
    }
    println!("fixtures: {}/{total}", total - failures.len());
    assert!(total > 300, "fixture file too small: {total}");
    assert!(
        failures.is_empty(),
        "fixture failures:\n{}",
        failures.join("\n")
    );
}
