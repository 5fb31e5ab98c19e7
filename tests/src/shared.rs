//! Locating `../shared` (conformance vectors, specs) for every test that reads it. This
//! one file is compiled into each crate's tests (`#[path]`), so the rule lives in one place:
//! absent in a user's clone, the caller skips loudly; with `GANTRY_REQUIRE_SHARED=1` (set by
//! `.ci/run`) absence is a failure, so CI can never pass by skipping the suites.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Set to `1` to turn a missing `../shared` into a test failure.
pub const REQUIRE_SHARED_VAR: &str = "GANTRY_REQUIRE_SHARED";

/// `../shared` beside the workspace root holding `manifest_dir` (or `$GANTRY_SHARED_DIR`),
/// whether or not it exists.
pub fn shared_root(manifest_dir: &str) -> PathBuf {
    if let Ok(d) = std::env::var("GANTRY_SHARED_DIR") {
        return PathBuf::from(d);
    }
    let manifest = Path::new(manifest_dir);
    let workspace = manifest
        .ancestors()
        .find(|d| d.join("Cargo.lock").is_file())
        .unwrap_or(manifest);
    workspace.join("..").join("shared")
}

/// `../shared/<sub>` when it exists. Otherwise `None` after a loud SKIPPED line naming
/// `what` was not run, or a panic when `GANTRY_REQUIRE_SHARED=1`.
pub fn shared_path(manifest_dir: &str, sub: &str, what: &str) -> Option<PathBuf> {
    let p = shared_root(manifest_dir).join(sub);
    if p.exists() {
        return Some(p.canonicalize().unwrap_or(p));
    }
    missing(&p, what);
    None
}

/// Reports that `path` is missing: fails under `GANTRY_REQUIRE_SHARED=1`, else prints a
/// SKIPPED line (to stderr and stdout, so it shows with and without `--nocapture`).
pub fn missing(path: &Path, what: &str) {
    assert!(
        std::env::var(REQUIRE_SHARED_VAR).as_deref() != Ok("1"),
        "{REQUIRE_SHARED_VAR}=1 but {} is missing; {what} cannot run",
        path.display()
    );
    eprintln!("SKIPPED: {} not found; {what} not run", path.display());
    println!("SKIPPED: {} not found; {what} not run", path.display());
}
