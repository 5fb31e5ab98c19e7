use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::super::{JobDirs, JobTree, SETTLED};
use crate::job::dirs::tests::listing;
use crate::workspace::Snapshot;

/// A repository with two commits on `main` and a nested file.
fn repo(root: &Path) -> Snapshot {
    std::fs::create_dir_all(root.join("src")).unwrap();
    let repo = git2::Repository::init(root).unwrap();
    let sig = git2::Signature::now("Test", "test@example.com").unwrap();
    let mut parent: Option<git2::Oid> = None;
    for n in ["one", "two"] {
        std::fs::write(root.join("a.txt"), format!("{n}\n")).unwrap();
        std::fs::write(root.join("src/b.txt"), "b\n").unwrap();
        let mut idx = repo.index().unwrap();
        idx.add_all(["*"].iter(), git2::IndexAddOption::DEFAULT, None)
            .unwrap();
        idx.write().unwrap();
        let tree = repo.find_tree(idx.write_tree().unwrap()).unwrap();
        let parents: Vec<git2::Commit<'_>> = parent
            .iter()
            .map(|p| repo.find_commit(*p).unwrap())
            .collect();
        let refs: Vec<&git2::Commit<'_>> = parents.iter().collect();
        parent = Some(
            repo.commit(Some("HEAD"), &sig, &sig, n, &tree, &refs)
                .unwrap(),
        );
    }
    let head = repo.find_commit(parent.unwrap()).unwrap();
    repo.branch("main", &head, true).unwrap();
    repo.set_head("refs/heads/main").unwrap();
    let snap = Snapshot::scan(root, false).unwrap();
    assert!(snap.git.is_some());
    snap
}

/// `git` in `dir`, isolated from this machine's configuration; its stdout.
fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Job")
        .env("GIT_AUTHOR_EMAIL", "job@example.com")
        .env("GIT_COMMITTER_NAME", "Job")
        .env("GIT_COMMITTER_EMAIL", "job@example.com")
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn prepared(dirs: &JobDirs, snap: &Snapshot, work: &Path, name: &str) -> JobTree {
    let mut tree = dirs.tree(snap, &work.join(name), "repo");
    dirs.prepare(snap, &mut tree, "{}").unwrap();
    tree
}

fn pack(dot_git: &Path, ext: &str) -> PathBuf {
    std::fs::read_dir(dot_git.join("objects/pack"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == ext))
        .unwrap()
}

/// Writes `text` over `path` in place and puts its mtime back.
fn rewrite_keeping_mtime(path: &Path, text: &[u8]) {
    let before = std::fs::metadata(path).unwrap();
    let f = std::fs::File::options().write(true).open(path).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, text, 0).unwrap();
    f.set_modified(before.modified().unwrap()).unwrap();
}

/// Does to a job's repository what a careless or hostile job could.
fn mess_up(tree: &JobTree, outside: &Path) {
    let ws = &tree.workspace;
    let dot_git = ws.join(".git");
    git(ws, &["tag", "x"]).unwrap();
    git(ws, &["config", "--local", "a.b", "c"]).unwrap();
    // A hook the next job's commit would run.
    std::fs::create_dir_all(dot_git.join("hooks")).unwrap();
    let marker = outside.join("hook-ran");
    std::fs::write(
        dot_git.join("hooks/pre-commit"),
        format!("#!/bin/sh\ntouch {}\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(
        dot_git.join("hooks/pre-commit"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(ws.join("a.txt"), "committed by the job\n").unwrap();
    git(ws, &["commit", "-qam", "job"]).unwrap();
    assert!(
        marker.exists(),
        "the planted hook did not run in its own job"
    );
    std::fs::remove_file(&marker).unwrap();
    // Objects from elsewhere, a pack written through after chmod, a link kept out.
    let other = outside.join("other.git");
    git(outside, &["init", "-q", "--bare", other.to_str().unwrap()]).unwrap();
    std::fs::write(
        dot_git.join("objects/info/alternates"),
        format!("{}/objects\n", other.display()),
    )
    .unwrap();
    let pack_file = pack(&dot_git, "pack");
    std::fs::set_permissions(&pack_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    rewrite_keeping_mtime(&pack_file, b"PACK-BROKEN");
    std::fs::hard_link(pack(&dot_git, "idx"), outside.join("idx-link")).unwrap();
    // The same size and mtime as before: only ctime tells.
    let head = std::fs::read(dot_git.join("HEAD")).unwrap();
    rewrite_keeping_mtime(&dot_git.join("HEAD"), &vec![b'x'; head.len()]);
    std::fs::remove_file(dot_git.join("packed-refs")).unwrap();
    std::fs::write(outside.join("refs"), "").unwrap();
    std::os::unix::fs::symlink(outside.join("refs"), dot_git.join("packed-refs")).unwrap();
    std::fs::create_dir_all(dot_git.join("info")).unwrap();
    std::fs::write(dot_git.join("info/exclude"), "*\n").unwrap();
    std::fs::set_permissions(
        dot_git.join("refs/heads"),
        std::fs::Permissions::from_mode(0o500),
    )
    .unwrap();
    std::fs::set_permissions(
        dot_git.join("index"),
        std::fs::Permissions::from_mode(0o444),
    )
    .unwrap();
    let home = tree.job_dir.join(super::HOME_DIR);
    std::fs::write(home.join(".gitconfig"), "[core]\n\tpager = evil\n").unwrap();
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/id"), "key").unwrap();
}

#[test]
fn a_recycled_repository_holds_nothing_of_the_previous_job() {
    let t = tempfile::tempdir().unwrap();
    let snap = repo(&t.path().join("repo"));
    let outside = t.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let g = snap.git.as_deref().unwrap();

    // The reference: a new tree, and the git directory as `GitDir::write` makes it.
    let fresh_root = t.path().join("fresh-run");
    std::fs::create_dir_all(&fresh_root).unwrap();
    let fresh_dirs = JobDirs::new(&fresh_root);
    let fresh = prepared(&fresh_dirs, &snap, &fresh_root, "b");
    let written = t.path().join("written");
    g.write(&written).unwrap();
    assert_eq!(
        listing(&fresh.workspace.join(".git")),
        listing(&written.join(".git"))
    );

    let work = t.path().join("run");
    std::fs::create_dir_all(&work).unwrap();
    let dirs = JobDirs::new(&work);
    let first = prepared(&dirs, &snap, &work, "a");
    assert!(!first.recycled);
    let pack_inode = std::fs::metadata(pack(&first.workspace.join(".git"), "pack"))
        .unwrap()
        .ino();
    mess_up(&first, &outside);
    dirs.release(&snap, &first);

    let second = prepared(&dirs, &snap, &work, "b");
    assert!(second.recycled, "the first job's tree was not reused");
    let dot_git = second.workspace.join(".git");
    assert_eq!(
        std::fs::metadata(pack(&dot_git, "pack")).unwrap().ino(),
        pack_inode,
        "the pack was not reused"
    );
    assert_eq!(listing(&dot_git), listing(&fresh.workspace.join(".git")));
    let home = |t: &JobTree| listing(&t.job_dir.join(super::HOME_DIR));
    assert_eq!(home(&second), home(&fresh));
    // The link the first job kept leads to a file the tree no longer has.
    assert_eq!(
        std::fs::metadata(outside.join("idx-link")).unwrap().nlink(),
        1
    );

    // Real git agrees: the run's commit, no tag, no config, no hook, whole objects.
    let ws = &second.workspace;
    assert_eq!(git(ws, &["rev-parse", "HEAD"]).unwrap(), g.commit);
    assert_eq!(
        git(ws, &["rev-parse", "--abbrev-ref", "HEAD"]).unwrap(),
        "main"
    );
    assert_eq!(git(ws, &["tag"]).unwrap(), "");
    assert!(git(ws, &["config", "--local", "a.b"]).is_err());
    git(ws, &["fsck", "--full", "--no-dangling"]).unwrap();
    assert_eq!(git(ws, &["status", "--porcelain"]).unwrap(), "");
    assert_eq!(git(ws, &["log", "--oneline"]).unwrap().lines().count(), 1);
    git(ws, &["commit", "-q", "--allow-empty", "-m", "next"]).unwrap();
    assert!(
        !outside.join("hook-ran").exists(),
        "the first job's hook ran in the next job"
    );
}

#[test]
fn settled_git_files_are_kept_unread_and_a_same_size_edit_is_still_undone() {
    let t = tempfile::tempdir().unwrap();
    let snap = repo(&t.path().join("repo"));
    let work = t.path().join("run");
    std::fs::create_dir_all(&work).unwrap();
    let dirs = JobDirs::new(&work);
    let first = prepared(&dirs, &snap, &work, "a");
    let config = first.workspace.join(".git/config");
    let inode = std::fs::metadata(&config).unwrap().ino();
    dirs.release(&snap, &first);
    std::thread::sleep(SETTLED + std::time::Duration::from_millis(20));

    let second = prepared(&dirs, &snap, &work, "b");
    assert!(second.recycled);
    let n = snap.git.as_ref().unwrap().files.len();
    assert_eq!(
        second.git.files.iter().flatten().count(),
        n,
        "settled git files were not stamped: {:?}",
        second.git
    );
    assert!(second.git.home.is_some());
    let config = second.workspace.join(".git/config");
    assert_eq!(std::fs::metadata(&config).unwrap().ino(), inode);
    let text = std::fs::read(&config).unwrap();
    let mut edited = text.clone();
    let at = edited.len() - 2;
    edited[at] ^= 0x20;
    rewrite_keeping_mtime(&config, &edited);
    dirs.release(&snap, &second);

    let third = prepared(&dirs, &snap, &work, "c");
    assert!(third.recycled);
    assert_eq!(
        std::fs::read(third.workspace.join(".git/config")).unwrap(),
        text
    );
}

#[test]
fn a_git_directory_made_outside_a_repository_is_not_kept() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("plain");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("a.txt"), "a").unwrap();
    let snap = Snapshot::scan(&root, false).unwrap();
    assert!(snap.git.is_none());
    let work = t.path().join("run");
    std::fs::create_dir_all(&work).unwrap();
    let dirs = JobDirs::new(&work);
    let first = prepared(&dirs, &snap, &work, "a");
    git(&first.workspace, &["init", "-q"]).unwrap();
    std::fs::create_dir_all(first.job_dir.join(super::HOME_DIR)).unwrap();
    dirs.release(&snap, &first);
    let second = prepared(&dirs, &snap, &work, "b");
    assert!(second.recycled);
    assert!(!second.workspace.join(".git").exists());
    assert!(!second.job_dir.join(super::HOME_DIR).exists());
}
