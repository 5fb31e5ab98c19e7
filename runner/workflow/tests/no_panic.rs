//! Robustness: truncated and mutated versions of every corpus file (deterministic PRNG)
//! must load without panicking, and every diagnostic must point inside the text.

use common::Random;
use gantry_workflow::{parse_action, parse_workflow};
use std::path::PathBuf;

mod common;

struct Rng(u64);

impl common::Random for Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

const TOKENS: &[&str] = &[
    "{", "}", "[", "]", ":", "- ", "'", "\"", "&a ", "*a", "!", "|", ">", "#", "\n", "  ", "${{",
    "}}", "${{ x }}", "<<: ", "on", "jobs", "needs: ", "\t", "é", "\\", "?", "%", "@", ",", "~",
    "null", "true", "1e9", "0x",
];

fn mutate(text: &str, rng: &mut Rng) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out: Vec<char> = chars.clone();
    match rng.below(5) {
        0 => out.truncate(rng.below(chars.len() + 1)),
        1 => {
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(out.len() + 1);
                let tok: Vec<char> = TOKENS[rng.below(TOKENS.len())].chars().collect();
                out.splice(at..at, tok);
            }
        }
        2 => {
            for _ in 0..1 + rng.below(8) {
                if out.is_empty() {
                    break;
                }
                let at = rng.below(out.len());
                out.remove(at);
            }
        }
        3 => {
            let lines: Vec<&str> = text.lines().collect();
            if !lines.is_empty() {
                let i = rng.below(lines.len());
                let j = rng.below(lines.len());
                let mut l: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
                l.swap(i, j);
                l.insert(rng.below(l.len() + 1), lines[i].to_string());
                return l.join("\n");
            }
        }
        _ => {
            // Re-indent a random line.
            let mut l: Vec<String> = text.lines().map(str::to_string).collect();
            if !l.is_empty() {
                let i = rng.below(l.len());
                l[i] = format!("{}{}", " ".repeat(rng.below(6)), l[i].trim_start());
            }
            return l.join("\n");
        }
    }
    out.into_iter().collect()
}

#[test]
fn mutated_inputs_do_not_panic() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    common::yaml_files(&manifest.join("tests/testdata"), &mut files);
    for (sub, what) in [
        ("conformance/workflows/files", "mutating the shared corpus"),
        (
            "conformance/github-official/workflow-parser/testdata/reader",
            "mutating the reader suite",
        ),
    ] {
        if let Some(dir) = common::shared_path(sub, what) {
            common::yaml_files(&dir, &mut files);
        }
    }
    files.sort();
    let per_file = if files.len() > 100 { 12 } else { 400 };
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut count = 0;
    for f in &files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        for _ in 0..per_file {
            let m = mutate(&text, &mut rng);
            for loaded in [
                parse_workflow("m.yml", &m).diagnostics,
                parse_action("action.yml", &m).diagnostics,
            ] {
                for d in loaded {
                    assert!(
                        d.span.offset <= m.len() && d.span.line >= 1 && d.span.col >= 1,
                        "{d:?}"
                    );
                }
            }
            count += 1;
        }
    }
    println!(
        "no-panic: {count} mutated inputs from {} files",
        files.len()
    );
    assert!(count >= 4000, "too few inputs: {count}");
}

#[test]
fn hostile_inputs() {
    let laughs = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n";
    assert!(parse_workflow("l.yml", laughs).has_errors());
    let deep = format!("on: push\njobs: {}{}", "[".repeat(5000), "]".repeat(5000));
    assert!(parse_workflow("d.yml", &deep).has_errors());
    assert!(parse_workflow("e.yml", "").has_errors());
    assert!(parse_workflow("n.yml", "\u{0}\u{feff}").has_errors());
}
