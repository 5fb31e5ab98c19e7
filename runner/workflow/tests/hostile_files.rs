//! Files a careful user (or an attacker) can hand to `gantry validate`: minified one-line
//! workflows, invalid UTF-8, several YAML documents in one file. Each must give a positioned
//! error with a readable snippet, never a panic.

use gantry_workflow::{Severity, load_workflow, parse_workflow, render};

#[test]
fn error_at_column_70000_of_a_minified_workflow_is_rendered_clipped() {
    let pad = "x".repeat(70_000);
    let text = format!(
        "{{on: push, jobs: {{build: {{runs-on: ubuntu-latest, env: {{PAD: {pad}}}, bogus-key: 1, steps: [{{run: echo}}]}}}}}}\n"
    );
    let loaded = parse_workflow("min.yml", &text);
    let err = loaded
        .diagnostics
        .iter()
        .find(|d| d.severity == Severity::Error)
        .expect("an error for bogus-key");
    let want_col = text.find("bogus-key").unwrap() as u32 + 1;
    assert!(want_col > 70_000);
    assert_eq!((err.span.line, err.span.col), (1, want_col), "{err}");
    let out = render(&loaded.diagnostics, &text);
    assert!(
        out.starts_with(&format!("min.yml:1:{want_col}: error: ")),
        "{out}"
    );
    assert!(
        out.contains("bogus-key"),
        "the snippet shows the key: {out}"
    );
    assert!(out.contains('…'), "the snippet marks the clipping: {out}");
    assert!(out.len() < 4_000, "{} bytes rendered", out.len());
}

#[test]
fn invalid_utf8_is_reported_at_the_offending_byte() {
    let dir = std::env::temp_dir().join(format!("gantry-utf8-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.yml");
    let mut bytes = b"on: push\njobs:\n  build:\n    runs-on: ub\xc3\xa9x".to_vec();
    bytes.extend_from_slice(b"\xff\xfe-latest\n");
    std::fs::write(&path, &bytes).unwrap();
    let loaded = load_workflow(&path);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(loaded.value.is_none());
    let d = &loaded.diagnostics[0];
    // Line 4, after `    runs-on: ubéx` (17 characters, the é counts once).
    assert_eq!((d.span.line, d.span.col), (4, 18), "{d}");
    assert_eq!(
        d.span.offset,
        bytes.iter().position(|&b| b == 0xff).unwrap()
    );
    assert!(
        d.message.contains("UTF-8") && d.message.contains("0xFF"),
        "{d}"
    );
}

#[test]
fn a_second_document_is_an_error_where_it_starts() {
    let text =
        "on: push\njobs:\n  a:\n    runs-on: x\n    steps: [{run: echo}]\n---\non: pull_request\n";
    let loaded = parse_workflow("two.yml", text);
    assert!(loaded.value.is_none(), "a two-document file is rejected");
    let errs: Vec<_> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!((errs[0].span.line, errs[0].span.col), (6, 1), "{}", errs[0]);
    assert!(
        errs[0].message.contains("second YAML document"),
        "{}",
        errs[0]
    );
}
