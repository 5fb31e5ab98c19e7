//! Job workspaces. Each job gets its own **copy of the working tree** under
//! `.gantry/work/<run>/<job>/<repo-name>`: the files git would see (tracked files plus
//! untracked files that are not ignored, as they are on disk, uncommitted edits included),
//! or, outside a git repository, every file except `.git`, `.gantry` and `target`. The
//! `.git` directory itself is not copied: each workspace gets a git directory of its own
//! at the run's commit ([`git`]), so `git` in a job never reaches the user's repository.
//! The user's tree is never written to unless `--bind` is given, in which case jobs run
//! directly in it.
//!
//! The file list is computed once per run ([`Snapshot::scan`]); preparing a job copies the
//! listed files, with no git operation per job.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use gantry_git::repo as git;

/// The files of the repository to copy into each job workspace.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub root: PathBuf,
    /// Relative paths of files (and symlinks) to copy.
    pub files: Vec<PathBuf>,
    /// When set, jobs use `root` itself.
    pub bind: bool,
    /// The git directory each workspace gets (`None` outside a git repository and under
    /// `--bind`).
    pub git: Option<Arc<git::GitDir>>,
}

fn skip_dir(name: &str) -> bool {
    matches!(name, ".git" | ".gantry" | "target")
}

impl Snapshot {
    /// Lists the files to copy. With `bind`, nothing is listed.
    pub fn scan(root: &Path, bind: bool) -> io::Result<Snapshot> {
        let root = root.canonicalize()?;
        if bind {
            return Ok(Snapshot {
                root,
                files: vec![],
                bind,
                git: None,
            });
        }
        let files = match git_files(&root) {
            Some(f) => f,
            None => {
                let mut out = Vec::new();
                walk(&root, Path::new(""), &mut out)?;
                out
            }
        };
        let git = match git::for_snapshot(&root) {
            None => None,
            Some(Ok(g)) => Some(Arc::new(g)),
            Some(Err(e)) => {
                return Err(io::Error::other(format!(
                    "cannot build the workspace's git directory from {}: {e}",
                    root.display()
                )));
            }
        };
        Ok(Snapshot {
            root,
            files,
            bind,
            git,
        })
    }

    /// Creates the job's workspace directory at `dest` (a fresh copy) or returns the
    /// repository root under `--bind`.
    pub fn materialize(&self, dest: &Path) -> io::Result<PathBuf> {
        if self.bind {
            return Ok(self.root.clone());
        }
        std::fs::create_dir_all(dest)?;
        let mut made_dirs: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
        for rel in &self.files {
            let src = self.root.join(rel);
            let dst = dest.join(rel);
            if let Some(parent) = dst.parent()
                && made_dirs.insert(parent.to_path_buf())
            {
                std::fs::create_dir_all(parent)?;
            }
            let meta = match std::fs::symlink_metadata(&src) {
                Ok(m) => m,
                Err(_) => continue, // deleted in the working tree
            };
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&src)?;
                let _ = std::os::unix::fs::symlink(target, &dst);
            } else if meta.is_file() {
                std::fs::copy(&src, &dst)?;
            }
        }
        if let Some(g) = &self.git {
            g.write(dest)?;
        }
        Ok(dest.to_path_buf())
    }
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in std::fs::read_dir(root.join(rel))? {
        let entry = entry?;
        let name = entry.file_name();
        let name_s = name.to_string_lossy();
        let ft = entry.file_type()?;
        let r = rel.join(&name);
        if ft.is_dir() {
            if !skip_dir(&name_s) {
                walk(root, &r, out)?;
            }
        } else {
            out.push(r);
        }
    }
    Ok(())
}

/// Tracked files plus untracked, non-ignored files, from one git status pass.
fn git_files(root: &Path) -> Option<Vec<PathBuf>> {
    let repo = git2::Repository::open(root).ok()?;
    if repo.workdir()?.canonicalize().ok()? != root {
        return None;
    }
    let mut files: Vec<PathBuf> = Vec::new();
    if let Ok(index) = repo.index() {
        for e in index.iter() {
            let p = String::from_utf8_lossy(&e.path).into_owned();
            files.push(PathBuf::from(p));
        }
    }
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false)
        .include_unmodified(false);
    if let Ok(st) = repo.statuses(Some(&mut opts)) {
        for s in st.iter() {
            if s.status().contains(git2::Status::WT_NEW)
                && let Ok(p) = s.path()
            {
                files.push(PathBuf::from(p));
            }
        }
    }
    files.retain(|p| {
        !p.components()
            .next()
            .is_some_and(|c| skip_dir(&c.as_os_str().to_string_lossy()))
    });
    files.sort();
    files.dedup();
    Some(files)
}

pub use gantry_beneath::sanitize;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_tracked_and_untracked_not_ignored() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("repo");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("a.txt"), "a").unwrap();
        std::fs::write(root.join("sub/b.txt"), "b").unwrap();
        std::fs::write(root.join(".gitignore"), "ignored.txt\n").unwrap();
        std::fs::write(root.join("ignored.txt"), "x").unwrap();
        let repo = git2::Repository::init(&root).unwrap();
        let mut idx = repo.index().unwrap();
        idx.add_path(Path::new("a.txt")).unwrap();
        idx.write().unwrap();
        let snap = Snapshot::scan(&root, false).unwrap();
        let dest = t.path().join("w/job/repo");
        snap.materialize(&dest).unwrap();
        assert!(dest.join("a.txt").exists());
        assert!(dest.join("sub/b.txt").exists());
        assert!(!dest.join("ignored.txt").exists());
        // A git directory of its own, without commits as the user's has none.
        assert!(dest.join(".git/HEAD").exists());
        assert!(git::is_snapshot(&dest));
    }
}
