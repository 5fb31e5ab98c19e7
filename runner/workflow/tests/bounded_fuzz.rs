//! Bounded, deterministic mutation fuzzing on stable Rust (issue 2: "CI runs the fuzz
//! targets for a short bounded time; no panics"). A fixed seed drives a few thousand
//! byte-level mutations (bit flips, truncations at any byte, line duplications and
//! deletions, byte swaps) of the conformance workflow files and our fixtures. Every
//! mutant goes through the workflow loader/validator and the action loader; none may panic,
//! and every rejected input must come back with at least one positioned error whose
//! position lies inside the text. A failing input is written to the target directory so
//! it can be replayed.
//!
//! `GANTRY_FUZZ_MUTANTS` overrides the number of mutants (default 10000).

use common::Random;
use gantry_workflow::{Diagnostic, Loaded, Severity, parse_action, parse_workflow};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

mod common;

/// splitmix64: tiny, good enough, and identical on every platform.
struct Rng(u64);

impl common::Random for Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Line boundaries (start offsets) of `b`.
fn line_starts(b: &[u8]) -> Vec<usize> {
    let mut v = vec![0];
    v.extend(
        b.iter()
            .enumerate()
            .filter(|(_, c)| **c == b'\n')
            .map(|(i, _)| i + 1),
    );
    v
}

/// One to three byte-level mutations.
fn mutate(src: &[u8], rng: &mut Rng) -> (Vec<u8>, Vec<&'static str>) {
    let mut b = src.to_vec();
    let mut ops = Vec::new();
    for _ in 0..1 + rng.below(3) {
        match rng.below(6) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
                ops.push("bit flip");
            }
            1 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
                ops.push("byte replace");
            }
            2 => {
                b.truncate(rng.below(b.len() + 1));
                ops.push("truncate");
            }
            3 => {
                let ls = line_starts(&b);
                let i = rng.below(ls.len());
                let end = ls.get(i + 1 + rng.below(3)).copied().unwrap_or(b.len());
                let line = b[ls[i]..end].to_vec();
                let at = ls[rng.below(ls.len())];
                b.splice(at..at, line);
                ops.push("line duplicate");
            }
            4 => {
                let ls = line_starts(&b);
                let i = rng.below(ls.len());
                let end = ls.get(i + 1).copied().unwrap_or(b.len());
                b.drain(ls[i]..end);
                ops.push("line delete");
            }
            _ if b.len() > 1 => {
                let (i, j) = (rng.below(b.len()), rng.below(b.len()));
                b.swap(i, j);
                ops.push("byte swap");
            }
            _ => {}
        }
    }
    (b, ops)
}

/// Problems with the diagnostics of one load (empty when all is well).
fn check<T>(text: &str, loaded: &Loaded<T>) -> Vec<String> {
    let mut bad = Vec::new();
    let lines = text.split('\n').count() as u32;
    if loaded.value.is_none()
        && !loaded
            .diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    {
        bad.push("rejected without any error diagnostic".to_string());
    }
    for d in &loaded.diagnostics {
        let Diagnostic { span, message, .. } = d;
        if message.trim().is_empty() {
            bad.push(format!("empty message at {}:{}", span.line, span.col));
        }
        if span.line < 1 || span.col < 1 || span.line > lines + 1 {
            bad.push(format!(
                "position {}:{} outside the text ({lines} lines): {message}",
                span.line, span.col
            ));
        }
        if span.offset > text.len() {
            bad.push(format!(
                "offset {} beyond the text ({} bytes): {message}",
                span.offset,
                text.len()
            ));
        }
    }
    bad
}

#[test]
fn bounded_mutation_fuzz_of_the_loader() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    if let Some(shared) = common::shared_path(
        "conformance/workflows/files",
        "fuzzing from the shared corpus (fixtures only)",
    ) {
        common::yaml_files(&shared, &mut files);
    }
    common::yaml_files(&manifest.join("tests/testdata"), &mut files);
    files.sort();
    let corpus: Vec<Vec<u8>> = files.iter().filter_map(|f| std::fs::read(f).ok()).collect();
    assert!(!corpus.is_empty(), "no seed files found");

    let n: usize = std::env::var("GANTRY_FUZZ_MUTANTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let mut rng = Rng(0x0123_4567_89AB_CDEF);
    let started = std::time::Instant::now();
    let (mut rejected, mut accepted) = (0usize, 0usize);
    let mut failures = Vec::new();
    // Panics are caught and reported with their input; keep the default hook quiet.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for i in 0..n {
        let seed = &corpus[rng.below(corpus.len())];
        let (bytes, ops) = mutate(seed, &mut rng);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let result = catch_unwind(AssertUnwindSafe(|| {
            let wf = parse_workflow("m.yml", &text);
            let act = parse_action("action.yml", &text);
            let mut bad = check(&text, &wf);
            bad.extend(check(&text, &act));
            (wf.value.is_some(), bad)
        }));
        match result {
            Ok((ok, bad)) => {
                if ok {
                    accepted += 1;
                } else {
                    rejected += 1;
                }
                if !bad.is_empty() {
                    failures.push((i, ops, text, bad.join("; ")));
                }
            }
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push((i, ops, text, format!("PANIC: {msg}")));
            }
        }
    }
    std::panic::set_hook(hook);
    println!(
        "bounded fuzz: {n} mutants of {} files in {:.1}s: {accepted} accepted, {rejected} rejected, {} failures",
        corpus.len(),
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    if let Some((i, ops, text, why)) = failures.first() {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let path = dir.join(format!("fuzz-failure-{i}.yml"));
        let _ = std::fs::write(&path, text);
        panic!(
            "{} of {n} mutants failed; first: mutant {i} ({}) saved to {}: {why}",
            failures.len(),
            ops.join(", "),
            path.display()
        );
    }
    assert!(rejected > n / 10, "the mutations should break some files");
}
