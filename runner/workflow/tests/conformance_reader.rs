//! GitHub's workflow-parser reader suite (`github-official/workflow-parser/testdata/reader`):
//! each file is options, `---`, a workflow, [`---`, called-workflow path, `---`, its text]…,
//! `---`, the expected converted template or errors. Compares error/no-error and, for
//! successes, the converted structure we model (jobs, needs, wrapped `if`, steps).
//! `GANTRY_CONFORMANCE_VERBOSE=1` lists failures.

use gantry_workflow::{Job, Severity, Step, Workflow, check_workflow_calls, parse_workflow_with};
mod common;
use common::{called_workflows, options, split_docs};
use serde_json::Value;
use std::path::PathBuf;

/// With `include-source: true` values are `{type, file, line, col, lit}` objects.
fn lit(v: &Value) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.iter().map(lit).collect()),
        _ => match v.get("lit") {
            Some(l) => l.clone(),
            None => match v.get("seq") {
                Some(Value::Array(items)) => Value::Array(items.iter().map(lit).collect()),
                _ => v.clone(),
            },
        },
    }
}

/// A scalar as GitHub's reader sees it: `${{ 'text' }}` collapses to `text`.
fn collapsed(s: &str) -> String {
    match gantry_expr::Template::parse(s) {
        Ok(gantry_expr::Template::Literal(l)) => l,
        _ => s.to_string(),
    }
}

fn expected_if(v: &Value) -> Option<String> {
    match v {
        Value::Object(o) => o.get("expr").and_then(|e| e.as_str()).map(str::to_string),
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn compare_step(exp: &Value, got: &Step, problems: &mut Vec<String>) {
    if let Some(e) = exp.get("if").and_then(expected_if) {
        let mine = gantry_expr::if_condition(got.if_cond.as_ref().map_or("", |c| c.value.as_str()));
        if norm(&e) != norm(&mine) {
            problems.push(format!("step if: want {e:?}, got {mine:?}"));
        }
    }
    if let Some(run) = exp.get("run").map(lit) {
        let run = run.as_str().unwrap_or("${{");
        if !run.contains("${{")
            && got.run.as_ref().map(|r| collapsed(&r.value)).as_deref() != Some(run)
        {
            problems.push(format!("step run: want {run:?}, got {:?}", got.run));
        }
    }
    if let Some(uses) = exp.get("uses").map(lit) {
        let uses = uses.as_str().unwrap_or("");
        if got.uses.as_ref().map(|r| r.value.as_str()) != Some(uses) {
            problems.push(format!("step uses: want {uses:?}, got {:?}", got.uses));
        }
    }
    if let Some(id) = exp.get("id").map(lit) {
        let id = id.as_str().unwrap_or("");
        if !id.starts_with("__") && got.id.as_ref().map(|r| r.value.as_str()) != Some(id) {
            problems.push(format!("step id: want {id:?}, got {:?}", got.id));
        }
    }
}

fn norm(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn compare_job(exp: &Value, got: &Job, problems: &mut Vec<String>) {
    let needs: Vec<&str> = got.needs.iter().map(|n| n.value.as_str()).collect();
    let want_needs: Vec<Value> = exp
        .get("needs")
        .map(lit)
        .and_then(|n| n.as_array().cloned())
        .unwrap_or_default();
    let want_needs: Vec<&str> = want_needs.iter().filter_map(|x| x.as_str()).collect();
    if needs != want_needs {
        problems.push(format!(
            "job {} needs: want {want_needs:?}, got {needs:?}",
            got.id.value
        ));
    }
    if let Some(e) = exp.get("if").and_then(expected_if) {
        let mine = gantry_expr::if_condition(got.if_cond.as_ref().map_or("", |c| c.value.as_str()));
        if norm(&e) != norm(&mine) {
            problems.push(format!("job {} if: want {e:?}, got {mine:?}", got.id.value));
        }
    }
    if let Some(Value::String(name)) = exp.get("name").map(lit)
        && !name.contains("${{")
        && got.display_name() != name
    {
        problems.push(format!(
            "job {} name: want {name:?}, got {:?}",
            got.id.value,
            got.display_name()
        ));
    }
    if let Some(steps) = exp.get("steps").and_then(|s| s.as_array()) {
        if steps.len() != got.steps.len() {
            problems.push(format!(
                "job {} steps: want {}, got {}",
                got.id.value,
                steps.len(),
                got.steps.len()
            ));
        } else {
            for (e, g) in steps.iter().zip(&got.steps) {
                compare_step(e, g, problems);
            }
        }
    }
}

fn compare(exp: &Value, wf: &Workflow) -> Vec<String> {
    let mut problems = Vec::new();
    let jobs = exp
        .get("jobs")
        .and_then(|j| j.as_array())
        .cloned()
        .unwrap_or_default();
    let ids: Vec<Value> = jobs.iter().map(|j| lit(&j["id"])).collect();
    let want: Vec<&str> = ids.iter().filter_map(|j| j.as_str()).collect();
    let got: Vec<&str> = wf.jobs.keys().map(String::as_str).collect();
    if want != got {
        problems.push(format!("job ids: want {want:?}, got {got:?}"));
        return problems;
    }
    for (e, g) in jobs.iter().zip(wf.jobs.values()) {
        compare_job(e, g, &mut problems);
    }
    if let Some(events) = exp.get("events").and_then(|e| e.as_object()) {
        let want: Vec<&str> = events.keys().map(String::as_str).collect();
        let mut got: Vec<&str> = wf.on.events.keys().map(String::as_str).collect();
        let mut w = want.clone();
        w.sort_unstable();
        got.sort_unstable();
        if w != got {
            problems.push(format!("events: want {want:?}, got {got:?}"));
        }
    }
    problems
}

fn first_error_line(exp: &Value) -> Option<u32> {
    let msg = exp["errors"][0]["Message"].as_str()?;
    let at = msg.find("(Line: ")?;
    msg[at + 7..].split(',').next()?.trim().parse().ok()
}

/// Measured: 190 of the 195 cases pass.
const PASSED_FLOOR: usize = 190;
/// Measured: the first error's line equals GitHub's in 73 of the 74 cases that
/// expect an error with a line and get one.
const LINE_FLOOR: usize = 73;

#[test]
fn reader_suite() {
    let Some(dir) = common::shared_path(
        "conformance/github-official/workflow-parser/testdata/reader",
        "the workflow-parser reader suite",
    ) else {
        return;
    };
    let verbose = std::env::var("GANTRY_CONFORMANCE_VERBOSE").is_ok();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("reader dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    files.sort();
    let (mut passed, mut total, mut both_err, mut line_eq, mut no_line) = (0, 0, 0, 0, 0);
    for f in &files {
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let text = std::fs::read_to_string(f).expect("read");
        let docs = split_docs(&text);
        if docs.len() < 3 {
            continue;
        }
        total += 1;
        let Ok(expected) = serde_json::from_str::<Value>(docs.last().expect("last")) else {
            if verbose {
                eprintln!("FAIL {name}: expected output is not JSON");
            }
            continue;
        };
        let path = format!(".github/workflows/{name}");
        let (ropts, copts) = options(&docs[0]);
        let loaded = parse_workflow_with(&path, &docs[1], &ropts);
        let mut diagnostics = loaded.diagnostics.clone();
        if let Some(wf) = &loaded.value {
            // Called workflows: `path`, `---`, text pairs between the workflow and the result.
            let called = called_workflows(&docs);
            let mut resolve = |r: &str| called.get(r).cloned();
            diagnostics.extend(check_workflow_calls(wf, &mut resolve, &copts));
        }
        let errors: Vec<_> = diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .collect();
        let want_errors = expected.get("errors").is_some();
        let value = if errors.is_empty() {
            loaded.value.as_ref()
        } else {
            None
        };
        let ok = match (value, want_errors) {
            (_, true) if !errors.is_empty() => {
                // An expected error without a line has nothing to compare: counted apart.
                match first_error_line(&expected) {
                    None => no_line += 1,
                    Some(l) if l == errors[0].span.line => {
                        both_err += 1;
                        line_eq += 1;
                    }
                    Some(l) => {
                        both_err += 1;
                        if verbose {
                            eprintln!(
                                "LINE {name}: want {l} {:?}, got {}",
                                expected["errors"][0]["Message"], errors[0]
                            );
                        }
                    }
                }
                true
            }
            (Some(wf), false) if errors.is_empty() => {
                let problems = compare(&expected, wf);
                if verbose && !problems.is_empty() {
                    eprintln!("FAIL {name}: {}", problems.join("; "));
                }
                problems.is_empty()
            }
            _ => {
                if verbose {
                    eprintln!(
                        "FAIL {name}: want errors={want_errors} {:?}, got {:?}",
                        expected.get("errors").and_then(|e| e.get(0)),
                        errors.first().map(|d| d.to_string())
                    );
                }
                false
            }
        };
        if ok {
            passed += 1;
        }
    }
    println!(
        "workflow-parser reader: {passed}/{total} passed; first error line equal {line_eq}/{both_err} \
         ({no_line} expected errors carry no line)"
    );
    assert!(total >= 190, "reader suite unexpectedly small: {total}");
    // Floors at the measured counts: a regression fails here.
    assert!(
        passed >= PASSED_FLOOR,
        "reader suite: {passed}/{total} passed"
    );
    assert!(
        line_eq >= LINE_FLOOR,
        "reader suite: first error line equal {line_eq}/{both_err}"
    );
}
