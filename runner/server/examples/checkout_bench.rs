//! Time of one run's checkout from the server's mirror (issue 15), run by hand:
//!
//!   cargo run --release -p gantry-server --example checkout_bench -- MIRROR.git [N]
//!
//! MIRROR.git is a bare repository (bench/make_repo.py, then `git clone --bare`); each of
//! the N checkouts is `workspace::checkout` at the mirror's HEAD on `refs/heads/main`,
//! into a data directory beside the mirror (same file system, as `data/mirrors` and
//! `data/work` are). Prints each time, the median and the size of the checkout's `.git`.

use std::path::Path;
use std::time::Instant;

fn dir_bytes(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mirror = std::path::PathBuf::from(args.next().expect("usage: checkout_bench MIRROR [N]"));
    let n: usize = args.next().map(|s| s.parse().unwrap()).unwrap_or(10);
    let repo = git2::Repository::open_bare(&mirror).expect("a bare repository");
    let sha = repo
        .head()
        .unwrap()
        .peel_to_commit()
        .unwrap()
        .id()
        .to_string();
    let data = mirror.with_extension("bench-data");
    let mut times = Vec::new();
    for i in 0..n {
        let t = Instant::now();
        let ws = gantry_server::workspace::checkout(
            &data,
            i as i64,
            &mirror,
            &sha,
            "refs/heads/main",
            "http://ci.bench/acme/shop.git",
        )
        .expect("checkout");
        let took = t.elapsed();
        if i == 0 {
            let git = dir_bytes(&ws.root.join(".git"));
            let tree = dir_bytes(&ws.root) - git;
            println!("checkout: {tree} bytes of files, .git {git} bytes");
        }
        let t = Instant::now();
        drop(ws);
        println!(
            "{i}: checkout {:.1} ms, removal {:.1} ms",
            took.as_secs_f64() * 1e3,
            t.elapsed().as_secs_f64() * 1e3
        );
        times.push(took.as_secs_f64() * 1e3);
    }
    let _ = std::fs::remove_dir_all(&data);
    times.sort_by(f64::total_cmp);
    println!(
        "median {:.1} ms, min {:.1} ms, max {:.1} ms (n={n})",
        times[n / 2],
        times[0],
        times[n - 1]
    );
}
