//! Helpers shared by the integration tests: GitHub's reader-test file format, the YAML
//! files of a directory tree, and a seeded random source for the bounded fuzz tests.

#![allow(dead_code)]

use gantry_workflow::{CallOptions, PermissionsPolicy, ReaderOptions};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[path = "../../../../tests/src/shared.rs"]
pub mod shared;

/// Where GitHub's reader suite is (whether or not `../shared` exists).
pub fn reader_dir() -> PathBuf {
    shared_root().join("conformance/github-official/workflow-parser/testdata/reader")
}

/// `../shared` beside the workspace (see `shared::shared_root`).
pub fn shared_root() -> PathBuf {
    shared::shared_root(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/<sub>`, or `None` after a loud SKIPPED line (a failure under
/// `GANTRY_REQUIRE_SHARED=1`).
pub fn shared_path(sub: &str, what: &str) -> Option<PathBuf> {
    shared::shared_path(env!("CARGO_MANIFEST_DIR"), sub, what)
}

pub fn split_docs(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            docs.push(String::new());
        } else {
            let cur = docs.last_mut().expect("doc");
            cur.push_str(line);
            cur.push('\n');
        }
    }
    // A document ends before the line break that precedes `---`.
    for d in &mut docs {
        if d.ends_with('\n') {
            d.pop();
        }
    }
    docs
}

/// Called workflows of a reader test: `path`, `---`, text pairs between the workflow and
/// the expected result.
pub fn called_workflows(docs: &[String]) -> HashMap<String, String> {
    if docs.len() < 3 {
        return HashMap::new();
    }
    docs[2..docs.len() - 1]
        .chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| (c[0].trim().to_string(), c[1].clone()))
        .collect()
}

/// The test's options document: reader and call limits.
pub fn options(doc: &str) -> (ReaderOptions, CallOptions) {
    let mut r = ReaderOptions::default();
    let mut c = CallOptions::default();
    for line in doc.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim() {
            "max-depth" => r.max_depth = v.parse().unwrap_or(r.max_depth),
            "max-file-size" => r.max_file_size = v.parse().ok(),
            "max-nested-reusable-workflows-depth" => c.max_depth = v.parse().unwrap_or(c.max_depth),
            "max-job-limit" => c.max_jobs = v.parse().unwrap_or(c.max_jobs),
            "permissions-policy" => {
                c.permissions_policy = if v == "Write" {
                    PermissionsPolicy::Write
                } else {
                    PermissionsPolicy::LimitedRead
                }
            }
            _ => {}
        }
    }
    (r, c)
}

/// Appends every `.yml` / `.yaml` file under `dir` (recursively) to `out`; a missing
/// directory adds nothing.
pub fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yml" || x == "yaml") {
            out.push(p);
        }
    }
}

/// A seeded generator of `u64`s; [`Random::below`] picks an index.
pub trait Random {
    fn next(&mut self) -> u64;

    /// A number in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}
