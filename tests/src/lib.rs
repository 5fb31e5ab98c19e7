//! Helpers for the end-to-end tests: the `gantry` binary, throw-away git repositories,
//! Docker detection, the shared conformance directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub mod http;
pub mod registry;
pub mod shared;

/// The workspace root (`tests/..`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `../shared` beside the project root, when present (see [`shared`] for the
/// `GANTRY_REQUIRE_SHARED=1` rule); `what` names the tests that need it.
pub fn shared_dir(what: &str) -> Option<PathBuf> {
    shared::shared_path(env!("CARGO_MANIFEST_DIR"), "", what)
}

/// Path of the `gantry` binary: `$GANTRY_BIN`, or the one next to this test's target
/// directory (built with `cargo build -p gantry` when missing).
pub fn gantry_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(b) = std::env::var("GANTRY_BIN") {
            return PathBuf::from(b);
        }
        let exe = std::env::current_exe().unwrap();
        // target/<profile>/deps/<test>-<hash>
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let bin = profile_dir.join("gantry");
        let target_dir = profile_dir.parent().unwrap().to_path_buf();
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "-p", "gantry", "--bin", "gantry"])
            .env("CARGO_TARGET_DIR", &target_dir)
            .current_dir(workspace_root());
        if release {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("cargo build -p gantry");
        assert!(st.success(), "building gantry failed");
        assert!(bin.exists(), "no gantry binary at {}", bin.display());
        bin
    })
    .clone()
}

/// Copies `src` into a fresh temp dir and makes it a git repository with one commit.
pub fn git_repo_from(src: &Path) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    copy_dir(src, t.path());
    commit_all(t.path());
    t
}

/// A git repository holding `files` (relative path → content), committed.
pub fn git_repo_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    for (p, c) in files {
        let f = t.path().join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, c).unwrap();
    }
    commit_all(t.path());
    t
}

/// `git init`, add everything, commit (author `Test <test@example.com>`).
pub fn commit_all(dir: &Path) {
    let repo = git2::Repository::init(dir).unwrap();
    let mut idx = repo.index().unwrap();
    idx.add_all(["*"].iter(), git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    idx.write().unwrap();
    let tree_id = idx.write_tree().unwrap();
    let tree = repo.find_tree(tree_id).unwrap();
    let sig = git2::Signature::now("Test", "test@example.com").unwrap();
    repo.commit(Some("HEAD"), &sig, &sig, "init", &tree, &[])
        .unwrap();
}

pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let ft = e.file_type().unwrap();
        let to = dst.join(e.file_name());
        if ft.is_dir() {
            copy_dir(&e.path(), &to);
        } else if ft.is_symlink() {
            let t = std::fs::read_link(e.path()).unwrap();
            std::os::unix::fs::symlink(t, &to).unwrap();
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
}

/// Runs `gantry` in `dir` with `args`; stdin closed.
pub fn gantry(dir: &Path, args: &[&str]) -> Output {
    Command::new(gantry_bin())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .env_remove("GANTRY_LOG")
        .output()
        .expect("running gantry")
}

/// stdout + stderr as text.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Whether a Docker daemon answers (`docker info`).
pub fn docker_available() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// True when Docker tests must not be skipped.
pub fn docker_required() -> bool {
    std::env::var("GANTRY_REQUIRE_DOCKER").is_ok_and(|v| v == "1")
}

/// Whether an image exists locally.
pub fn image_exists(image: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Every file under `dir`, recursively.
pub fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(all_files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Whether a Docker daemon answers; without one `what` is skipped loudly, or fails when
/// `GANTRY_REQUIRE_DOCKER=1` (CI).
pub fn docker_daemon_ready(what: &str) -> bool {
    if docker_available() {
        return true;
    }
    assert!(
        !docker_required(),
        "GANTRY_REQUIRE_DOCKER=1 but no Docker daemon"
    );
    eprintln!("SKIPPED: {what}: no Docker daemon");
    false
}

/// Whether Docker tests can run: a daemon answers and every image exists. Without them the
/// test is skipped loudly, or fails when `GANTRY_REQUIRE_DOCKER=1` (CI).
pub fn docker_ready(images: &[&str]) -> bool {
    if !docker_daemon_ready("Docker test") {
        return false;
    }
    for i in images {
        if !image_exists(i) {
            assert!(
                !docker_required(),
                "GANTRY_REQUIRE_DOCKER=1 but {i} is missing (docker/build-images.sh)"
            );
            eprintln!("SKIPPED: image {i} missing (bash docker/build-images.sh all)");
            return false;
        }
    }
    true
}
