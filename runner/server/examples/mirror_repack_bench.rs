//! What a mirror's repack buys a run's checkout (issue 15's mirror, bench/results/
//! 2026-12-04-mirror-repack.md), run by hand:
//!
//!   cargo run -p gantry-server --example mirror_repack_bench -- [FILES] [BYTES] [PUSHES] [N]
//!
//! Builds a source repository of FILES files of BYTES bytes each (incompressible text),
//! then PUSHES pushes of one changed file each, every one fetched into a bare mirror with
//! git2 the way the server fetched before repacking existed (one pack per fetch). Times,
//! as medians of N: the copy of the mirror's objects a checkout makes
//! (`workspace::copy_objects`) and the whole checkout (`workspace::checkout`: objects,
//! then the files) with that many packs; then the repack (`mirror_pack::repack`); then
//! the same two with the one pack it leaves. Everything under one temporary directory on
//! the file system of $TMPDIR.

use std::path::Path;
use std::time::Instant;

use git2::Repository;

fn commit(src: &Repository, files: &[(String, Vec<u8>)], msg: &str) {
    let parent = src
        .find_reference("refs/heads/main")
        .ok()
        .and_then(|r| r.peel_to_commit().ok());
    let mut up = git2::build::TreeUpdateBuilder::new();
    for (path, bytes) in files {
        up.upsert(
            path.as_str(),
            src.blob(bytes).unwrap(),
            git2::FileMode::Blob,
        );
    }
    let base = match &parent {
        Some(p) => p.tree().unwrap(),
        None => src
            .find_tree(src.treebuilder(None).unwrap().write().unwrap())
            .unwrap(),
    };
    let tree = src
        .find_tree(up.create_updated(src, &base).unwrap())
        .unwrap();
    let sig = git2::Signature::now("b", "b@x").unwrap();
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    src.commit(Some("refs/heads/main"), &sig, &sig, msg, &tree, &parents)
        .unwrap();
}

/// Pseudo-random printable bytes (xorshift), so packs do not compress them away.
fn text(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if i % 64 == 63 {
                b'\n'
            } else {
                b'a' + (x % 26) as u8
            }
        })
        .collect()
}

/// One fetch as the server made it before repacking: one new pack.
fn fetch(mirror: &Repository, url: &str) {
    let mut remote = mirror.remote_anonymous(url).unwrap();
    let mut opts = git2::FetchOptions::new();
    opts.update_fetchhead(false);
    remote
        .fetch(&["+refs/heads/*:refs/heads/*"], Some(&mut opts), None)
        .unwrap();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One copy of the objects and one whole checkout, in ms.
fn measure(tmp: &Path, mirror: &Path, sha: &str, i: usize) -> (f64, f64) {
    let to = tmp.join(format!("copy-{i}"));
    let t = Instant::now();
    gantry_server::workspace::copy_objects(&mirror.join("objects"), &to).unwrap();
    let copy = t.elapsed().as_secs_f64() * 1e3;
    std::fs::remove_dir_all(&to).unwrap();
    let data = tmp.join("data");
    let t = Instant::now();
    let ws = gantry_server::workspace::checkout(
        &data,
        i as i64,
        mirror,
        sha,
        "refs/heads/main",
        "http://ci.bench/acme/shop.git",
    )
    .unwrap();
    let checkout = t.elapsed().as_secs_f64() * 1e3;
    drop(ws);
    (copy, checkout)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn files_in(dir: &Path) -> (usize, u64) {
    let mut n = 0;
    let mut bytes = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        n += 1;
        bytes += e.metadata().unwrap().len();
    }
    (n, bytes)
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().unwrap());
    let files = args.next().unwrap_or(500);
    let bytes = args.next().unwrap_or(2048);
    let pushes = args.next().unwrap_or(200);
    let n = args.next().unwrap_or(9);
    let tmp = tempfile::tempdir().unwrap();
    let src = Repository::init_bare(tmp.path().join("src.git")).unwrap();
    src.set_head("refs/heads/main").unwrap();
    let url = format!("file://{}", tmp.path().join("src.git").display());
    let mirror_dir = tmp.path().join("mirror.git");
    let mirror = Repository::init_bare(&mirror_dir).unwrap();

    let all: Vec<(String, Vec<u8>)> = (0..files)
        .map(|i| (format!("src/d{}/f{i}.txt", i % 20), text(i as u64, bytes)))
        .collect();
    commit(&src, &all, "base");
    fetch(&mirror, &url);
    for p in 1..pushes {
        let i = p % files;
        let changed = vec![(all[i].0.clone(), text((files + p) as u64, bytes))];
        commit(&src, &changed, &format!("push {p}"));
        fetch(&mirror, &url);
    }
    drop(mirror);
    let sha = src
        .find_reference("refs/heads/main")
        .unwrap()
        .peel_to_commit()
        .unwrap()
        .id()
        .to_string();
    println!("repository: {files} files of {bytes} bytes, {pushes} pushes fetched one by one");

    // The same mirror twice: one left with its packs, one repacked. Measured in turns,
    // so a busy machine slows both alike.
    let after_dir = tmp.path().join("repacked.git");
    copy_dir(&mirror_dir, &after_dir);
    let t = Instant::now();
    gantry_server::mirror_pack::repack(&after_dir).unwrap();
    let repack = t.elapsed().as_secs_f64() * 1e3;
    println!("repack: {repack:.1} ms");
    let mut rows = Vec::new();
    for (name, dir) in [("before", &mirror_dir), ("after", &after_dir)] {
        let (f, b) = files_in(&dir.join("objects/pack"));
        let packs = gantry_server::mirror_pack::packs(dir).len();
        println!("{name}: {packs} pack(s), {f} files, {b} bytes in objects/pack");
        rows.push((name, dir, Vec::new(), Vec::new()));
    }
    for i in 0..n {
        for (_, dir, copies, checkouts) in rows.iter_mut() {
            let (c, k) = measure(tmp.path(), dir, &sha, i);
            copies.push(c);
            checkouts.push(k);
        }
    }
    for (name, _, copies, checkouts) in rows {
        let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "{name}: copy of objects median {:.1} ms (min {:.1}), checkout median {:.1} ms \
             (min {:.1}), n={n}",
            median(copies.clone()),
            min(&copies),
            median(checkouts.clone()),
            min(&checkouts)
        );
    }
}
