use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::*;

/// A repository (no git: every file is listed) with a nested file, a read-only file and a
/// symlink.
fn repo(root: &Path) -> Snapshot {
    std::fs::create_dir_all(root.join("src/deep")).unwrap();
    std::fs::write(root.join("a.txt"), "a").unwrap();
    std::fs::write(root.join("same.txt"), "same size").unwrap();
    std::fs::write(root.join("src/deep/b.txt"), "b").unwrap();
    std::fs::write(root.join("ro.txt"), "read only").unwrap();
    std::fs::set_permissions(root.join("ro.txt"), std::fs::Permissions::from_mode(0o444)).unwrap();
    std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
    Snapshot::scan(root, false).unwrap()
}

/// Every entry under `dir`: type, mode, links and bytes (or link target).
pub(super) fn listing(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            let mode = m.mode() & 0o7777;
            let what = if m.file_type().is_symlink() {
                format!("link -> {}", std::fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                stack.push(p.clone());
                format!("dir {mode:o}")
            } else {
                format!(
                    "file {mode:o} nlink {} {}",
                    m.nlink(),
                    std::fs::read(&p).unwrap().escape_ascii()
                )
            };
            out.insert(rel, what);
        }
    }
    out
}

/// A run's work root under `t` and its job directories.
fn run_root(t: &Path) -> (PathBuf, JobDirs) {
    let work = t.join("run");
    std::fs::create_dir_all(&work).unwrap();
    let dirs = JobDirs::new(&work);
    (work, dirs)
}

/// The tree of job `name` under `work`, prepared with the event payload `event`.
fn prepared(dirs: &JobDirs, snap: &Snapshot, work: &Path, name: &str, event: &str) -> JobTree {
    let mut tree = dirs.tree(snap, &work.join(name), "repo");
    dirs.prepare(snap, &mut tree, event).unwrap();
    tree
}

/// Does to a job tree what a careless or hostile job could.
fn mess_up(tree: &JobTree, outside: &Path) {
    let ws = &tree.workspace;
    std::fs::write(ws.join("a.txt"), "changed by the job").unwrap();
    std::fs::write(ws.join("same.txt"), "SAME SIZE").unwrap();
    std::fs::write(ws.join("build.out"), "artifact").unwrap();
    std::fs::create_dir_all(ws.join("target/debug")).unwrap();
    std::fs::write(ws.join("target/debug/x"), "x").unwrap();
    std::fs::set_permissions(ws.join("src"), std::fs::Permissions::from_mode(0o500)).unwrap();
    std::fs::remove_file(ws.join("src/deep/b.txt")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", ws.join("src/deep/b.txt")).unwrap();
    std::fs::remove_file(ws.join("link")).unwrap();
    std::fs::write(ws.join("link"), "no longer a link").unwrap();
    std::fs::hard_link(ws.join("ro.txt"), outside.join("hardlink")).unwrap();
    std::fs::write(tree.temp.join("secret.txt"), "s3cr3t").unwrap();
    std::fs::write(&tree.event_file, "{\"edited\": true}").unwrap();
    std::fs::write(tree.temp.join(WORKFLOW_DIR).join("extra"), "x").unwrap();
    let fc = tree.temp.join(crate::envfile::FILE_COMMANDS_DIR);
    std::fs::create_dir_all(fc.join("leftover")).unwrap();
    std::fs::write(fc.join("leftover/set_env"), "A=1").unwrap();
    std::fs::create_dir_all(tree.job_dir.join("_home/.cache")).unwrap();
    std::fs::write(tree.job_dir.join("_home/.cache/token"), "t").unwrap();
}

#[test]
fn recycled_job_tree_holds_nothing_from_the_previous_job() {
    let t = tempfile::tempdir().unwrap();
    let snap = repo(&t.path().join("repo"));
    let outside = t.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();

    // The reference: a new tree in a run of its own.
    let fresh_root = t.path().join("fresh-run");
    std::fs::create_dir_all(&fresh_root).unwrap();
    let fresh_dirs = JobDirs::new(&fresh_root);
    let mut fresh = fresh_dirs.tree(&snap, &fresh_root.join("b"), "repo");
    fresh_dirs.prepare(&snap, &mut fresh, "{\"e\": 1}").unwrap();
    assert!(!fresh.recycled);

    let (work, dirs) = run_root(t.path());
    let first = prepared(&dirs, &snap, &work, "a", "{\"e\": 1}");
    assert!(!first.recycled);
    assert_eq!(listing(&first.job_dir), listing(&fresh.job_dir));
    let first_inode = std::fs::metadata(first.workspace.join("a.txt"))
        .unwrap()
        .ino();
    mess_up(&first, &outside);
    dirs.release(&snap, &first);
    assert!(!first.job_dir.exists());

    let second = prepared(&dirs, &snap, &work, "b", "{\"e\": 1}");
    assert!(second.recycled, "the first job's tree was not reused");
    assert_eq!(
        std::fs::metadata(second.workspace.join("a.txt"))
            .unwrap()
            .ino(),
        first_inode,
        "the workspace file was not reused"
    );
    assert_eq!(listing(&second.job_dir), listing(&fresh.job_dir));
    // The hard link the first job made elsewhere kept its content; the tree has its own file.
    assert_eq!(
        std::fs::read_to_string(outside.join("hardlink")).unwrap(),
        "read only"
    );
    assert_eq!(
        std::fs::metadata(outside.join("hardlink")).unwrap().nlink(),
        1
    );
}

#[test]
fn a_file_deleted_from_the_repository_is_gone_from_a_recycled_workspace() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("repo");
    let snap = repo(&root);
    let (work, dirs) = run_root(t.path());
    let first = prepared(&dirs, &snap, &work, "a", "{}");
    // Directories of the skeleton gone: the next job gets them back.
    std::fs::remove_dir_all(first.workspace.join("src")).unwrap();
    std::fs::remove_dir_all(first.temp.join(crate::envfile::FILE_COMMANDS_DIR)).unwrap();
    dirs.release(&snap, &first);

    std::fs::remove_file(root.join("src/deep/b.txt")).unwrap();
    std::fs::write(root.join("a.txt"), "edited in the repository").unwrap();
    let second = prepared(&dirs, &snap, &work, "b", "{}");
    assert!(second.recycled);
    assert!(!second.workspace.join("src/deep/b.txt").exists());
    assert!(second.workspace.join("src/deep").is_dir());
    assert!(second.temp.join(crate::envfile::FILE_COMMANDS_DIR).is_dir());
    assert_eq!(std::fs::read_to_string(&second.event_file).unwrap(), "{}");
    assert_eq!(
        std::fs::read_to_string(second.workspace.join("a.txt")).unwrap(),
        "edited in the repository"
    );
}

#[test]
fn bind_mode_recycles_only_temp_and_clear_removes_the_parked_trees() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("repo");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("a.txt"), "a").unwrap();
    let snap = Snapshot::scan(&root, true).unwrap();
    let (work, dirs) = run_root(t.path());
    let first = prepared(&dirs, &snap, &work, "a", "{}");
    assert_eq!(first.workspace, snap.root);
    std::fs::write(first.temp.join("x"), "x").unwrap();
    dirs.release(&snap, &first);
    // The repository itself is never touched.
    assert_eq!(std::fs::read_to_string(root.join("a.txt")).unwrap(), "a");

    let second = prepared(&dirs, &snap, &work, "b", "{}");
    assert!(second.recycled);
    assert!(!second.temp.join("x").exists());
    assert_eq!(
        std::fs::read_dir(&second.job_dir).unwrap().count(),
        1,
        "only _temp"
    );
    dirs.release(&snap, &second);
    let spares = || {
        std::fs::read_dir(&work)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().starts_with(SPARE_PREFIX)
            })
            .count()
    };
    assert_eq!(spares(), 1);
    dirs.clear();
    assert_eq!(spares(), 0);
}

#[test]
fn an_edit_that_keeps_size_and_mtime_is_still_undone() {
    let t = tempfile::tempdir().unwrap();
    let snap = repo(&t.path().join("repo"));
    let (work, dirs) = run_root(t.path());
    let first = prepared(&dirs, &snap, &work, "a", "{\"e\": 1}");
    dirs.release(&snap, &first);
    // Old enough for the next refresh to trust what it sees.
    std::thread::sleep(SETTLED + std::time::Duration::from_millis(20));
    let second = prepared(&dirs, &snap, &work, "b", "{\"e\": 1}");
    assert!(second.recycled);
    let same = second.workspace.join("same.txt");
    assert!(
        second.copies.iter().flatten().count() >= 2,
        "settled copies were not stamped: {:?}",
        second.copies
    );

    assert!(
        second.event.is_some(),
        "the settled event file was not stamped"
    );

    // The job rewrites files in place with the same size and puts their mtime back.
    let rewrite = |path: &Path, text: &str| {
        let before = std::fs::metadata(path).unwrap();
        std::fs::write(path, text).unwrap();
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(before.modified().unwrap())
            .unwrap();
        assert_eq!(std::fs::metadata(path).unwrap().len(), before.len());
    };
    rewrite(&same, "SAME SIZE");
    rewrite(&second.event_file, "{\"e\": 2}");
    dirs.release(&snap, &second);

    let third = prepared(&dirs, &snap, &work, "c", "{\"e\": 1}");
    assert!(third.recycled);
    assert_eq!(
        std::fs::read_to_string(third.workspace.join("same.txt")).unwrap(),
        "same size"
    );
    assert_eq!(
        std::fs::read_to_string(third.workspace.join("a.txt")).unwrap(),
        "a"
    );
    assert_eq!(
        std::fs::read_to_string(&third.event_file).unwrap(),
        "{\"e\": 1}"
    );
}
