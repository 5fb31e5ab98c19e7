//! Keeping a mirror's packs few. Every fetch into a mirror adds a pack, and every run's
//! checkout copies all of the mirror's packs (`workspace::checkout`), so after thousands of
//! pushes a checkout would copy thousands of small files. When a mirror has more than
//! [`MAX_PACKS`](crate::mirror::MAX_PACKS) packs after a fetch, its objects are written
//! into one new pack with git2's `PackBuilder` and the old packs and loose objects are
//! removed.
//!
//! Always under the mirror's lock (the fetch holds it; checkouts take it), so no fetch
//! writes and no checkout copies meanwhile. Crash-safe: the new pack and its index are
//! written in `<mirror>/gantry-repack/`, outside `objects`, synced to the disk, checked to
//! hold every object the mirror had, and only then renamed into `objects/pack` (the pack
//! before its index: libgit2 and the checkout see a pack only once its index is there);
//! the old packs are removed after that (each index before its pack). A crash at any
//! point leaves the old set, or both sets (objects twice, which git reads fine), never
//! neither; leftovers of a crash (the scratch directory, a pack without its index, a
//! fetch's half-written `pack_git2_*` file) are removed by the next repack.
//!
//! What the new pack holds: every object reachable from the mirror's refs (walked from
//! all refs, annotated tags included, so related objects are delta-compressed together)
//! and every other object the mirror still has. Objects no ref reaches any more (a
//! force-pushed branch, a deleted tag) are kept on purpose: a queued run, or a re-run of
//! an old run, may still name such a commit, and git's own `gc` keeps unreachable objects
//! for two weeks too. Pruning them is not done yet.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use git2::{ObjectType, Oid, Repository};

use crate::mirror::MirrorError;

/// The name of the scratch directory (inside the mirror, beside `objects`).
const SCRATCH: &str = "gantry-repack";

/// The stems (`objects/pack/pack-<hash>`) of the packs that have their index.
pub fn packs(dir: &Path) -> Vec<String> {
    let pack = dir.join("objects/pack");
    let Ok(rd) = std::fs::read_dir(&pack) else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".pack")?.to_string();
            pack.join(format!("{stem}.idx")).is_file().then_some(stem)
        })
        .collect();
    out.sort();
    out
}

/// Repacks the bare mirror at `dir` when it has more than `max_packs` packs; whether it
/// did. Call with the mirror's lock held and no other handle of the repository in use
/// for writing; read through a fresh handle afterwards.
pub fn repack_if_needed(dir: &Path, max_packs: usize) -> Result<bool, MirrorError> {
    if packs(dir).len() <= max_packs {
        return Ok(false);
    }
    repack(dir)?;
    Ok(true)
}

/// Writes every object of the mirror at `dir` into one pack and removes the old packs
/// and loose objects (see the module's comment for the order and what a crash leaves).
pub fn repack(dir: &Path) -> Result<(), MirrorError> {
    let err = |what: &str, e: &dyn std::fmt::Display| MirrorError::Repack(format!("{what}: {e}"));
    let scratch = dir.join(SCRATCH);
    clean_leftovers(dir, &scratch).map_err(|e| err("removing a crashed repack's files", &e))?;
    let old = packs(dir);
    let repo = Repository::open_bare(dir)?;

    // Everything the mirror holds, in the packs and loose.
    let mut all: Vec<Oid> = Vec::new();
    repo.odb()?.foreach(|oid| {
        all.push(*oid);
        true
    })?;

    let mut pb = repo.packbuilder()?;
    // Two CPUs or so: deltas for a large repository are the cost of a repack.
    pb.set_threads(0);
    let mut walk = repo.revwalk()?;
    // Every ref's commit (annotated tags peeled; refs to trees or blobs are skipped).
    walk.push_glob("*")?;
    pb.insert_walk(&mut walk)?;
    for r in repo.references()?.flatten() {
        if let Some(oid) = r.target()
            && repo.find_object(oid, Some(ObjectType::Tag)).is_ok()
        {
            pb.insert_recursive(oid, None)?;
        }
    }
    // What no ref reaches (inserting an object twice is a no-op).
    for oid in &all {
        pb.insert_object(*oid, None)?;
    }
    let new_pack_dir = scratch.join("pack");
    std::fs::create_dir_all(&new_pack_dir)
        .map_err(|e| err("creating the scratch directory", &e))?;
    pb.write(&new_pack_dir, 0)?;
    let name = pb
        .name()?
        .ok_or_else(|| MirrorError::Repack("the pack builder wrote no pack".into()))?
        .to_string();
    let stem = format!("pack-{name}");
    drop(pb);
    drop(walk);
    drop(repo);

    let written = |ext: &str| new_pack_dir.join(format!("{stem}.{ext}"));
    for ext in ["pack", "idx"] {
        sync_file(&written(ext)).map_err(|e| err("syncing the new pack", &e))?;
    }
    sync_dir(&new_pack_dir).map_err(|e| err("syncing the new pack", &e))?;

    // The new pack must hold every object the mirror had before anything is removed.
    let check = git2::Odb::new()?;
    check.add_disk_alternate(&scratch.to_string_lossy())?;
    if let Some(missing) = all.iter().find(|o| !check.exists(**o)) {
        drop(check);
        let _ = std::fs::remove_dir_all(&scratch);
        return Err(MirrorError::Repack(format!(
            "the new pack lacks object {missing}; the old packs are kept"
        )));
    }
    drop(check);

    // In: the pack, then its index (a pack counts only once its index is there).
    let pack_dir = dir.join("objects/pack");
    std::fs::create_dir_all(&pack_dir).map_err(|e| err("objects/pack", &e))?;
    for ext in ["pack", "idx"] {
        std::fs::rename(written(ext), pack_dir.join(format!("{stem}.{ext}")))
            .map_err(|e| err("moving the new pack into objects/pack", &e))?;
    }
    sync_dir(&pack_dir).map_err(|e| err("syncing objects/pack", &e))?;

    // Out: each old pack, its index first, then the loose objects.
    for s in old.iter().filter(|s| **s != stem) {
        for ext in ["idx", "pack", "rev", "bitmap", "mtimes", "keep"] {
            match std::fs::remove_file(pack_dir.join(format!("{s}.{ext}"))) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(err("removing an old pack", &e)),
            }
        }
    }
    sync_dir(&pack_dir).map_err(|e| err("syncing objects/pack", &e))?;
    let packed: HashSet<Oid> = all.into_iter().collect();
    remove_loose(&dir.join("objects"), &packed).map_err(|e| err("removing loose objects", &e))?;
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

/// What a crashed repack or fetch left: the scratch directory, packs without an index
/// (a crash between the pack's rename and its index's), libgit2's `pack_git2_*` files.
/// Only under the mirror's lock, when nothing is being written.
fn clean_leftovers(dir: &Path, scratch: &Path) -> std::io::Result<()> {
    if scratch.exists() {
        std::fs::remove_dir_all(scratch)?;
    }
    let pack = dir.join("objects/pack");
    let Ok(rd) = std::fs::read_dir(&pack) else {
        return Ok(());
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let orphan = name
            .strip_suffix(".pack")
            .is_some_and(|stem| !pack.join(format!("{stem}.idx")).exists());
        if orphan || name.starts_with("pack_git2_") {
            std::fs::remove_file(e.path())?;
        }
    }
    Ok(())
}

/// Removes the loose objects (`objects/xx/…`) that are in `packed`, and the fan-out
/// directories left empty.
fn remove_loose(objects: &Path, packed: &HashSet<Oid>) -> std::io::Result<()> {
    for e in std::fs::read_dir(objects)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let fan_out = name.len() == 2 && name.bytes().all(|b| b.is_ascii_hexdigit());
        if !fan_out || !e.file_type()?.is_dir() {
            continue;
        }
        for o in std::fs::read_dir(e.path())?.flatten() {
            let rest = o.file_name().to_string_lossy().into_owned();
            if let Ok(oid) = Oid::from_str(&format!("{name}{rest}"))
                && packed.contains(&oid)
            {
                std::fs::remove_file(o.path())?;
            }
        }
        // Fails while something is left in it, which is fine.
        let _ = std::fs::remove_dir(e.path());
    }
    Ok(())
}

fn sync_file(p: &PathBuf) -> std::io::Result<()> {
    File::open(p)?.sync_all()
}

fn sync_dir(p: &Path) -> std::io::Result<()> {
    File::open(p)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::{self, MAX_PACKS};

    /// Commits `file` = `text` on `refs/heads/{branch}` of `src` (on top of its tip).
    fn commit(src: &Repository, branch: &str, file: &str, text: &str) -> Oid {
        let refname = format!("refs/heads/{branch}");
        let parent = src
            .find_reference(&refname)
            .ok()
            .and_then(|r| r.peel_to_commit().ok());
        let mut tb = src
            .treebuilder(parent.as_ref().map(|p| p.tree().unwrap()).as_ref())
            .unwrap();
        tb.insert(file, src.blob(text.as_bytes()).unwrap(), 0o100644)
            .unwrap();
        let tree = src.find_tree(tb.write().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@x").unwrap();
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        src.commit(Some(&refname), &sig, &sig, text, &tree, &parents)
            .unwrap()
    }

    /// Every object of `tree` read back (blobs' bytes included).
    fn read_tree(repo: &Repository, tree: &git2::Tree) -> usize {
        let mut n = 1;
        for e in tree.iter() {
            match e.kind() {
                Some(ObjectType::Tree) => n += read_tree(repo, &repo.find_tree(e.id()).unwrap()),
                _ => {
                    repo.find_blob(e.id()).unwrap().content();
                    n += 1;
                }
            }
        }
        n
    }

    /// 25 pushes, each fetched: the mirror never has more than MAX_PACKS packs after a
    /// fetch, it was repacked on the way, and every ref's commit and tree, the whole
    /// history, an annotated tag and a commit that a force-push left behind are readable.
    #[test]
    fn a_mirror_fetched_25_times_keeps_few_packs_and_every_object() {
        let tmp = tempfile::tempdir().unwrap();
        let src_dir = tmp.path().join("src.git");
        let src = Repository::init_bare(&src_dir).unwrap();
        src.set_head("refs/heads/main").unwrap();
        let url = format!("file://{}", src_dir.display());
        let dir = tmp.path().join("mirror.git");
        let mut most = 0;
        let mut repacked = false;
        let mut left_behind = None;
        for i in 0..25 {
            let tip = commit(
                &src,
                "main",
                &format!("f{}.txt", i % 7),
                &format!("push {i}\n"),
            );
            if i == 3 {
                let side = commit(&src, "side", "side.txt", "side\n");
                left_behind = Some(side);
            }
            if i == 5 {
                // A force-push: `side` is deleted, its commit now unreachable.
                src.find_reference("refs/heads/side")
                    .unwrap()
                    .delete()
                    .unwrap();
                let obj = src.find_object(tip, None).unwrap();
                let sig = git2::Signature::now("t", "t@x").unwrap();
                src.tag("v1", &obj, &sig, "release", false).unwrap();
            }
            let before = packs(&dir).len();
            let git = mirror::fetch(&dir, &url, None, &[]).unwrap();
            let after = packs(&dir).len();
            if after < before {
                repacked = true;
            }
            most = most.max(after);
            // The handle the fetch returns reads the new packs.
            assert_eq!(git.find_commit(tip).unwrap().id(), tip);
        }
        assert!(repacked, "the mirror was repacked at least once");
        assert!(most <= MAX_PACKS, "{most} packs after a fetch");
        assert!(!dir.join(SCRATCH).exists());

        let repo = Repository::open_bare(&dir).unwrap();
        let mut refs = 0;
        for r in repo.references().unwrap().flatten() {
            let commit = r.peel_to_commit().unwrap();
            let tree = commit.tree().unwrap();
            assert!(read_tree(&repo, &tree) > 1, "{:?}", r.name());
            refs += 1;
        }
        assert_eq!(refs, 2, "main and v1");
        let tag = repo.find_reference("refs/tags/v1").unwrap();
        assert!(
            repo.find_tag(tag.target().unwrap()).is_ok(),
            "the tag object"
        );
        let mut walk = repo.revwalk().unwrap();
        walk.push_glob("*").unwrap();
        let history: Vec<Oid> = walk.map(Result::unwrap).collect();
        assert_eq!(history.len(), 25);
        for c in &history {
            read_tree(&repo, &repo.find_commit(*c).unwrap().tree().unwrap());
        }
        let side = repo.find_commit(left_behind.unwrap()).unwrap();
        read_tree(&repo, &side.tree().unwrap());
        // And git itself agrees.
        let fsck = std::process::Command::new("git")
            .args(["fsck", "--full", "--no-dangling"])
            .current_dir(&dir)
            .output();
        if let Ok(out) = fsck {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// A repack takes loose objects in and removes their files; what a crash left (the
    /// scratch directory, a pack without its index) is cleaned; a crash between the new
    /// pack's arrival and the old ones' removal (both sets present) still reads, and the
    /// next repack ends with one pack.
    #[test]
    fn loose_objects_and_crash_leftovers() {
        let tmp = tempfile::tempdir().unwrap();
        let src_dir = tmp.path().join("src.git");
        let src = Repository::init_bare(&src_dir).unwrap();
        let url = format!("file://{}", src_dir.display());
        let dir = tmp.path().join("mirror.git");
        for i in 0..3 {
            commit(&src, "main", "a.txt", &format!("{i}\n"));
            mirror::fetch(&dir, &url, None, &[]).unwrap();
        }
        let repo = Repository::open_bare(&dir).unwrap();
        let loose = repo.blob(b"a loose object\n").unwrap();
        drop(repo);
        let loose_file = dir
            .join("objects")
            .join(&loose.to_string()[..2])
            .join(&loose.to_string()[2..]);
        assert!(loose_file.is_file());
        std::fs::create_dir_all(dir.join(SCRATCH).join("pack")).unwrap();
        std::fs::write(dir.join(SCRATCH).join("pack/pack-x.pack"), b"half").unwrap();
        std::fs::write(dir.join("objects/pack/pack-dead.pack"), b"no index").unwrap();

        repack(&dir).unwrap();
        assert_eq!(packs(&dir).len(), 1);
        assert!(!loose_file.exists());
        assert!(!dir.join("objects/pack/pack-dead.pack").exists());
        assert!(!dir.join(SCRATCH).exists());
        let repo = Repository::open_bare(&dir).unwrap();
        assert_eq!(
            repo.find_blob(loose).unwrap().content(),
            b"a loose object\n"
        );

        // Both sets: a copy of the pack under another name, as if the old ones were not
        // removed yet.
        let stem = &packs(&dir)[0];
        for ext in ["pack", "idx"] {
            std::fs::copy(
                dir.join(format!("objects/pack/{stem}.{ext}")),
                dir.join(format!("objects/pack/pack-{}.{ext}", "0".repeat(40))),
            )
            .unwrap();
        }
        {
            let repo = Repository::open_bare(&dir).unwrap();
            let head = repo.find_reference("refs/heads/main").unwrap();
            read_tree(&repo, &head.peel_to_commit().unwrap().tree().unwrap());
        }
        repack(&dir).unwrap();
        assert_eq!(packs(&dir).len(), 1);
        let repo = Repository::open_bare(&dir).unwrap();
        assert_eq!(
            repo.find_blob(loose).unwrap().content(),
            b"a loose object\n"
        );
    }
}
