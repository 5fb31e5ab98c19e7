//! Bounded, deterministic byte-level mutation fuzzing of the expression engine on stable
//! Rust (issue 2). Seeds: the shared conformance vectors (expressions and `${{ }}`
//! interpolations) when present, plus our fixture vectors. Mutations: bit flips, byte
//! replacements, truncations at any byte (invalid UTF-8 is decoded lossily, as the loader
//! does), duplicated and deleted slices. Parsing, evaluation and templates must never
//! panic; every error has a message, and a located error points inside the expression.
//!
//! `GANTRY_FUZZ_MUTANTS` overrides the number of mutants (default 20000).

use gantry_expr::{MapContext, Template, if_condition, parse};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

#[path = "../../../tests/src/shared.rs"]
mod shared;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn exprs_from(path: &std::path::Path, key: &str, out: &mut Vec<String>) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    for l in text.lines() {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(l)
            && let Some(s) = v[key].as_str()
        {
            out.push(s.to_string());
        }
    }
    true
}

fn mutate(src: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = src.to_vec();
    for _ in 0..1 + rng.below(3) {
        match rng.below(5) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            1 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
            2 => b.truncate(rng.below(b.len() + 1)),
            3 if !b.is_empty() => {
                let s = rng.below(b.len());
                let e = (s + 1 + rng.below(8)).min(b.len());
                let piece = b[s..e].to_vec();
                let at = rng.below(b.len() + 1);
                b.splice(at..at, piece);
            }
            _ if !b.is_empty() => {
                let s = rng.below(b.len());
                let e = (s + 1 + rng.below(4)).min(b.len());
                b.drain(s..e);
            }
            _ => {}
        }
    }
    b
}

#[test]
fn bounded_mutation_fuzz_of_expressions() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let testdata = manifest.join("tests/testdata");
    let ctx = MapContext::from_json_str(
        &std::fs::read_to_string(testdata.join("context.json")).expect("context.json"),
    )
    .expect("context");
    let mut seeds = Vec::new();
    let shared = shared::shared_root(env!("CARGO_MANIFEST_DIR")).join("conformance/expressions");
    if !exprs_from(&shared.join("vectors.jsonl"), "expr", &mut seeds) {
        shared::missing(&shared, "fuzzing from the shared vectors (fixtures only)");
    }
    let mut templates = Vec::new();
    exprs_from(
        &shared.join("interp-vectors.jsonl"),
        "template",
        &mut templates,
    );
    exprs_from(&testdata.join("vectors.jsonl"), "expr", &mut seeds);
    assert!(!seeds.is_empty(), "no seed expressions");
    templates.extend(seeds.iter().map(|s| format!("a ${{{{ {s} }}}} b")));

    let n: usize = std::env::var("GANTRY_FUZZ_MUTANTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let mut rng = Rng(0xFEED_F00D_DEAD_BEEF);
    let started = std::time::Instant::now();
    let mut failures: Vec<String> = Vec::new();
    let (mut parsed, mut errors) = (0usize, 0usize);
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for i in 0..n {
        let template = i % 4 == 3;
        let pool = if template { &templates } else { &seeds };
        let seed = &pool[rng.below(pool.len())];
        let input = String::from_utf8_lossy(&mutate(seed.as_bytes(), &mut rng)).into_owned();
        let r = catch_unwind(AssertUnwindSafe(|| {
            let mut bad = Vec::new();
            let chars = input.chars().count();
            let mut ok = false;
            let mut check = |e: &gantry_expr::ExprError| {
                if e.message.trim().is_empty() {
                    bad.push("error without a message".to_string());
                }
                if let Some(p) = e.position
                    && p > chars
                {
                    bad.push(format!("position {p} beyond {chars} chars: {}", e.message));
                }
            };
            if template {
                match Template::parse(&input) {
                    Ok(t) => {
                        ok = true;
                        if let Err(e) = t.eval(&ctx) {
                            check(&e);
                        }
                    }
                    Err(e) => check(&e),
                }
            } else {
                match parse(&input) {
                    Ok(e) => {
                        ok = true;
                        if let Err(e) = e.eval(&ctx) {
                            check(&e);
                        }
                    }
                    Err(e) => check(&e),
                }
                // `if:` text → the expression GitHub evaluates (`success() && (...)`).
                let cond = if_condition(&input);
                if let Err(e) = parse(&cond) {
                    if e.message.trim().is_empty() {
                        bad.push("error without a message".to_string());
                    }
                    if let Some(p) = e.position
                        && p > cond.chars().count()
                    {
                        bad.push(format!("position {p} beyond the condition: {}", e.message));
                    }
                }
            }
            (ok, bad)
        }));
        match r {
            Ok((ok, bad)) => {
                if ok {
                    parsed += 1;
                } else {
                    errors += 1;
                }
                if !bad.is_empty() {
                    failures.push(format!("{input:?}: {}", bad.join("; ")));
                }
            }
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{input:?}: PANIC {msg}"));
            }
        }
    }
    std::panic::set_hook(hook);
    println!(
        "bounded fuzz: {n} mutants of {} expressions and {} templates in {:.1}s: {parsed} parsed, {errors} rejected, {} failures",
        seeds.len(),
        templates.len(),
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures; first: {}",
        failures.len(),
        failures[0]
    );
    assert!(
        parsed > n / 20 && errors > n / 20,
        "mutants should both parse and fail"
    );
}
