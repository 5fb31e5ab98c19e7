//! Deterministic "fuzzing" without nightly: 200k random and mutated inputs (from the
//! fixture vectors and a token alphabet) go through parse, eval, Template and fromJSON;
//! nothing may panic. The cargo-fuzz target in `fuzz/` does the same for nightly users.

use gantry_expr::{MapContext, Template, if_condition, parse, parse_json};
use std::path::PathBuf;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const PIECES: &[&str] = &[
    "github",
    "matrix",
    "env",
    ".",
    "*",
    "[",
    "]",
    "(",
    ")",
    ",",
    "'",
    "''",
    "!",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "&&",
    "||",
    "=",
    "&",
    "|",
    " ",
    "0",
    "1",
    "-1",
    "1.5",
    "1e308",
    "0x1F",
    "0o7",
    "NaN",
    "Infinity",
    "null",
    "true",
    "false",
    "format(",
    "contains(",
    "startsWith(",
    "endsWith(",
    "join(",
    "toJSON(",
    "fromJSON(",
    "case(",
    "success()",
    "always()",
    "hashFiles(",
    "'{0}'",
    "'{{'",
    "'}}'",
    "'{'",
    "'[1,{}]'",
    "${{",
    "}}",
    "ref",
    "event",
    "labels",
    "name",
    "é",
    "ß",
    "🚀",
    "\u{a0}",
    "\n",
    "\t",
];

fn mutate(rng: &mut XorShift, base: &str) -> String {
    let mut chars: Vec<char> = base.chars().collect();
    for _ in 0..=rng.below(4) {
        match rng.below(4) {
            0 if !chars.is_empty() => {
                let i = rng.below(chars.len());
                chars.remove(i);
            }
            1 => {
                let i = rng.below(chars.len() + 1);
                let p = PIECES[rng.below(PIECES.len())];
                for (k, c) in p.chars().enumerate() {
                    chars.insert(i + k, c);
                }
            }
            2 if !chars.is_empty() => {
                let i = rng.below(chars.len());
                chars[i] = char::from_u32(rng.below(0x250) as u32).unwrap_or('x');
            }
            _ if chars.len() > 1 => {
                let a = rng.below(chars.len());
                let b = rng.below(chars.len());
                chars.swap(a, b);
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

#[test]
fn no_panics_on_random_input() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/testdata");
    let ctx =
        MapContext::from_json_str(&std::fs::read_to_string(dir.join("context.json")).unwrap())
            .unwrap();
    let seeds: Vec<String> = std::fs::read_to_string(dir.join("vectors.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["expr"].as_str().map(str::to_string))
        .collect();
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let n: usize = std::env::var("GANTRY_EXPR_FUZZ_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let (mut parsed, mut evaluated) = (0usize, 0usize);
    for i in 0..n {
        let input = if i % 3 == 0 {
            (0..=rng.below(12))
                .map(|_| PIECES[rng.below(PIECES.len())])
                .collect::<String>()
        } else {
            let base = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, base)
        };
        if let Ok(e) = parse(&input) {
            parsed += 1;
            if e.eval(&ctx).is_ok() {
                evaluated += 1;
            }
        }
        if i % 4 == 0 {
            if let Ok(t) = Template::parse(&input) {
                let _ = t.eval(&ctx);
                let _ = t.converted_expr();
            }
            let _ = if_condition(&input);
            let _ = parse_json(&input);
        }
    }
    println!("no_panic: {n} inputs, {parsed} parsed, {evaluated} evaluated");
    assert!(
        parsed > n / 20,
        "the generator should produce some valid expressions"
    );
}
