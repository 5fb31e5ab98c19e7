//! In-repo fixtures (`tests/testdata/`), data-driven like actionlint: every file under
//! `valid/` loads without errors; every file under `invalid/` lists its expected
//! diagnostics in `# expect: LINE:COL: [warning: ]FRAGMENT` comments, and every error
//! reported must be expected (and vice versa).

use gantry_workflow::{Severity, parse_workflow, render};
use std::path::PathBuf;

fn files(sub: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata")
        .join(sub);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("testdata dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    v.sort();
    v
}

#[test]
fn valid_fixtures_load_cleanly() {
    let list = files("valid");
    assert!(list.len() >= 4);
    for f in list {
        let text = std::fs::read_to_string(&f).unwrap();
        let loaded = parse_workflow(&f.display().to_string(), &text);
        let errors: Vec<_> = loaded
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .collect();
        assert!(
            errors.is_empty(),
            "{}:\n{}",
            f.display(),
            render(&loaded.diagnostics, &text)
        );
        let wf = loaded.value.expect("model");
        assert!(!wf.jobs.is_empty());
        assert!(!wf.on.events.is_empty());
    }
}

struct Expect {
    line: u32,
    col: u32,
    warning: bool,
    fragment: String,
}

fn expectations(text: &str) -> Vec<Expect> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(|rest| {
            let mut it = rest.splitn(3, ':');
            let line = it.next().unwrap().trim().parse().unwrap();
            let col = it.next().unwrap().trim().parse().unwrap();
            let frag = it.next().unwrap().trim();
            let (warning, fragment) = match frag.strip_prefix("warning: ") {
                Some(f) => (true, f.to_string()),
                None => (false, frag.to_string()),
            };
            Expect {
                line,
                col,
                warning,
                fragment,
            }
        })
        .collect()
}

#[test]
fn invalid_fixtures_report_expected_diagnostics() {
    let list = files("invalid");
    assert!(list.len() >= 8);
    for f in list {
        let text = std::fs::read_to_string(&f).unwrap();
        let expects = expectations(&text);
        assert!(!expects.is_empty(), "{} has no expectations", f.display());
        let loaded = parse_workflow(&f.display().to_string(), &text);
        let shown = render(&loaded.diagnostics, &text);
        for e in &expects {
            let found = loaded.diagnostics.iter().any(|d| {
                d.span.line == e.line
                    && d.span.col == e.col
                    && (d.severity == Severity::Warning) == e.warning
                    && d.message.contains(&e.fragment)
            });
            assert!(
                found,
                "{}: expected {}:{}: {} in\n{shown}",
                f.display(),
                e.line,
                e.col,
                e.fragment
            );
        }
        for d in &loaded.diagnostics {
            let expected = expects.iter().any(|e| {
                d.span.line == e.line && d.span.col == e.col && d.message.contains(&e.fragment)
            });
            assert!(expected, "{}: unexpected diagnostic {d}", f.display());
        }
        if expects.iter().any(|e| !e.warning) {
            assert!(
                loaded.value.is_none(),
                "{}: value must be None with errors",
                f.display()
            );
        }
    }
}
