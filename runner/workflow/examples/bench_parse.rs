//! Quick throughput check (run with `--release`): the conformance corpus in files/s and a
//! generated 1 MB workflow. Speed targets are asserted in `bench/`, not here.

use std::path::PathBuf;
use std::time::Instant;

// The tests' YAML file walk (the example uses nothing else from that module).
#[path = "../tests/common/mod.rs"]
mod common;

/// CPU time of this process in seconds (the machine may be shared; wall time lies).
fn cpu_secs() -> f64 {
    std::fs::read_to_string("/proc/self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e9)
}

fn big_workflow(target: usize) -> String {
    let mut s = String::from("on: [push, pull_request]\njobs:\n");
    let mut i = 0;
    while s.len() < target {
        s.push_str(&format!(
            "  job{i}:\n    runs-on: ubuntu-latest\n    needs: {}\n    if: ${{{{ github.ref == 'refs/heads/main' }}}}\n    env:\n      A: ${{{{ matrix.x }}}}\n    strategy:\n      matrix:\n        x: [1, 2, 3]\n    steps:\n",
            if i > 0 { format!("[job{}]", i - 1) } else { "[]".into() }
        ));
        for k in 0..8 {
            s.push_str(&format!(
                "      - name: step {k}\n        id: s{k}\n        run: |\n          echo \"${{{{ github.sha }}}} {k}\"\n          make target-{k}\n      - uses: actions/checkout@v4\n        with:\n          ref: ${{{{ github.ref }}}}\n"
            ));
        }
        i += 1;
    }
    s
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance/workflows/files");
    let mut files = Vec::new();
    common::yaml_files(&root, &mut files);
    let texts: Vec<(String, String)> = files
        .iter()
        .filter_map(|f| Some((f.display().to_string(), std::fs::read_to_string(f).ok()?)))
        .collect();
    if !texts.is_empty() && std::env::var("BENCH_BIG_ONLY").is_err() {
        let rounds = 20;
        let start = Instant::now();
        let cpu = cpu_secs();
        for _ in 0..rounds {
            for (p, t) in &texts {
                std::hint::black_box(gantry_workflow::parse_workflow(p, t));
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let cpu = cpu_secs() - cpu;
        let n = texts.len() * rounds;
        println!(
            "corpus: {n} files in {secs:.3}s wall = {:.0} files/s; {cpu:.3}s CPU = {:.0} files/s (single thread)",
            n as f64 / secs,
            n as f64 / cpu
        );
    }
    let big = big_workflow(1 << 20);
    let start = Instant::now();
    let cpu = cpu_secs();
    let loaded = gantry_workflow::parse_workflow("big.yml", &big);
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    let cpu_ms = (cpu_secs() - cpu) * 1000.0;
    println!(
        "1 MB workflow ({} bytes, {} jobs): {ms:.1} ms wall, {cpu_ms:.1} ms CPU, {} diagnostics",
        big.len(),
        loaded.value.as_ref().map_or(0, |w| w.jobs.len()),
        loaded.diagnostics.len()
    );
}
