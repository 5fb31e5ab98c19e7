//! Against `shared/conformance/workflows/vectors.jsonl` (GitHub's parser as oracle): for
//! every file the loader accepts and the oracle accepts, the trigger event list, each
//! job's needs, that planning succeeds, and strategy fail-fast / max-parallel.

use std::path::PathBuf;

use gantry_plan::{NodeKind, PlanOptions, plan};
use gantry_workflow::parse_workflow;
use serde_json::Value as J;

#[path = "../../../tests/src/shared.rs"]
mod shared;

fn vectors() -> Option<(PathBuf, Vec<J>)> {
    let dir = shared::shared_path(
        env!("CARGO_MANIFEST_DIR"),
        "conformance/workflows",
        "the plan conformance vectors",
    )?;
    let text = std::fs::read_to_string(dir.join("vectors.jsonl")).expect("vectors.jsonl");
    Some((
        dir,
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
    ))
}

#[test]
fn events_needs_and_plans_match_the_oracle() {
    let Some((dir, vectors)) = vectors() else {
        return;
    };
    let (mut total, mut passed, mut not_loaded) = (0, 0, 0);
    let mut failures: Vec<String> = Vec::new();
    for v in &vectors {
        let file = v["file"].as_str().unwrap();
        let oracle_ok = v["errors"].as_array().is_some_and(|e| e.is_empty())
            && !v["yaml_error"].as_bool().unwrap_or(false);
        if !oracle_ok || v["events"].is_null() {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(dir.join("files").join(file)) else {
            continue;
        };
        let loaded = parse_workflow(file, &text);
        let Some(wf) = loaded.value.filter(|_| {
            !loaded
                .diagnostics
                .iter()
                .any(|d| d.severity == gantry_workflow::Severity::Error)
        }) else {
            not_loaded += 1;
            continue;
        };
        total += 1;
        let mut problems: Vec<String> = Vec::new();
        let mut ours: Vec<&str> = wf.on.events.keys().map(String::as_str).collect();
        let mut theirs: Vec<&str> = v["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(J::as_str)
            .collect();
        ours.sort();
        theirs.sort();
        if ours != theirs {
            problems.push(format!("events {ours:?} vs oracle {theirs:?}"));
        }
        for j in v["jobs"].as_array().into_iter().flatten() {
            let id = j["id"].as_str().unwrap();
            let Some(job) = wf.jobs.get(id) else {
                problems.push(format!("job '{id}' missing"));
                continue;
            };
            let mut ours: Vec<&str> = job.needs.iter().map(|n| n.value.as_str()).collect();
            let mut theirs: Vec<&str> = j["needs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(J::as_str)
                .collect();
            ours.sort();
            theirs.sort();
            if ours != theirs {
                problems.push(format!("job '{id}' needs {ours:?} vs oracle {theirs:?}"));
            }
        }
        match plan(&wf, &PlanOptions::default()) {
            Err(e) => problems.push(format!("plan: {e}")),
            Ok(p) => {
                for j in v["jobs"].as_array().into_iter().flatten() {
                    let id = j["id"].as_str().unwrap();
                    let (Some(jp), Some(s)) =
                        (p.jobs.get(id), j.get("strategy").filter(|s| s.is_object()))
                    else {
                        continue;
                    };
                    if matches!(p.node(jp.nodes[0]).kind, NodeKind::Deferred) {
                        continue;
                    }
                    if let Some(ff) = s.get("fail-fast").and_then(J::as_bool)
                        && ff != jp.fail_fast
                    {
                        problems.push(format!(
                            "job '{id}' fail-fast {} vs oracle {ff}",
                            jp.fail_fast
                        ));
                    }
                    if let Some(mp) = s.get("max-parallel").and_then(J::as_f64)
                        && jp.max_parallel != Some(mp as usize)
                    {
                        problems.push(format!(
                            "job '{id}' max-parallel {:?} vs oracle {mp}",
                            jp.max_parallel
                        ));
                    }
                }
            }
        }
        if problems.is_empty() {
            passed += 1;
        } else {
            failures.push(format!("{file}: {}", problems.join("; ")));
        }
    }
    println!(
        "plan conformance: {passed}/{total} workflows match (events, needs, plan, strategy); {not_loaded} accepted by the oracle but not loaded"
    );
    for f in &failures {
        println!("  {f}");
    }
    assert!(total > 100, "too few workflows loaded ({total})");
    assert!(failures.is_empty(), "{} mismatches", failures.len());
}
