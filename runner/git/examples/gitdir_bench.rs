//! Times `repo::for_snapshot` (a job's own `.git`, depth 1) on a repository:
//! `cargo run --release -p gantry-git --example gitdir_bench -- DIR [ROUNDS]`
//! (a repository of realistic size: `bench/make_repo.py DIR`).

use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("a repository directory"));
    let rounds: usize = args.next().map_or(3, |r| r.parse().expect("ROUNDS"));
    let dir = dir.canonicalize().unwrap();
    for _ in 0..rounds {
        let t = Instant::now();
        let g = gantry_git::repo::for_snapshot(&dir)
            .expect("a work tree")
            .expect("built");
        let bytes: usize = g.files.iter().map(|(_, b)| b.len()).sum();
        println!(
            "{:.3} s, {} files, {} bytes",
            t.elapsed().as_secs_f64(),
            g.files.len(),
            bytes
        );
    }
}
