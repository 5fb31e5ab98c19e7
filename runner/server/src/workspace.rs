//! A run's workspace: a real git repository checked out from the bare mirror at the run's
//! commit, under `data/work/<run id>/`, removed when the run ends. Jobs see what `gantry
//! run` sees in a clone: `HEAD` on the pushed branch (detached for tags and pull requests),
//! `origin` naming the repository, so `github.repository`, `github.sha` and `github.ref`
//! come out as on GitHub.

use std::path::{Path, PathBuf};

use git2::Repository;

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("workspace {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("checking out {sha} from the mirror: {source}")]
    Git { sha: String, source: git2::Error },
}

/// A checked-out workspace; the directory is removed on drop.
#[derive(Debug)]
pub struct Workspace {
    /// `data/work/<run>` (removed on drop).
    dir: PathBuf,
    /// The repository root inside it.
    pub root: PathBuf,
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The directory of run `run_id`'s workspace.
pub fn work_dir(data: &Path, run_id: i64) -> PathBuf {
    data.join("work").join(run_id.to_string())
}

/// Checks out `sha` from the bare mirror at `mirror` into `data/work/<run_id>/repo`
/// (replacing what a dead server may have left there). `git_ref` is the run's ref: a
/// branch becomes the checked-out branch, anything else a detached HEAD. `origin_url`
/// is the remote recorded in the checkout. Blocking: call from a blocking task.
pub fn checkout(
    data: &Path,
    run_id: i64,
    mirror: &Path,
    sha: &str,
    git_ref: &str,
    origin_url: &str,
) -> Result<Workspace, WorkspaceError> {
    let dir = work_dir(data, run_id);
    let io = |source| WorkspaceError::Io {
        path: dir.clone(),
        source,
    };
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io)?;
    }
    std::fs::create_dir_all(&dir).map_err(io)?;
    // From here on a failure removes the directory (the drop).
    let ws = Workspace {
        root: dir.join("repo"),
        dir: dir.clone(),
    };
    let git = |source| WorkspaceError::Git {
        sha: sha.to_string(),
        source,
    };
    // No templates: sample hooks and `info/exclude` are files per run that nothing reads.
    let mut init = git2::RepositoryInitOptions::new();
    init.external_template(false);
    drop(Repository::init_opts(&ws.root, &init).map_err(git)?);
    // The objects are copies of the mirror's files (the caller holds the mirror's lock, so
    // no fetch writes there meanwhile): far cheaper than a local fetch, which packs and
    // indexes every object again. Copies, not hard links or alternates: no file of the
    // mirror is reachable from the checkout, so nothing done in it (a rollback script's
    // `git gc`, a write into a pack) can change the mirror.
    copy_objects(
        &mirror.join("objects"),
        &ws.root.join(".git").join("objects"),
    )
    .map_err(io)?;
    let repo = Repository::open(&ws.root).map_err(git)?;
    let oid = git2::Oid::from_str(sha).map_err(git)?;
    let commit = repo.find_commit(oid).map_err(git)?;
    match git_ref.strip_prefix("refs/heads/") {
        Some(branch) => {
            repo.branch(branch, &commit, true).map_err(git)?;
            repo.set_head(git_ref).map_err(git)?;
        }
        None => repo.set_head_detached(oid).map_err(git)?,
    }
    repo.checkout_head(Some(git2::build::CheckoutBuilder::new().force()))
        .map_err(git)?;
    repo.remote("origin", origin_url).map_err(git)?;
    Ok(ws)
}

/// Copies the object files of `from` (a repository's `objects`) into `to`: the packs with
/// their indexes, and any loose object. Files being written (`tmp_*`, a pack without its
/// index) are left out.
pub fn copy_objects(from: &Path, to: &Path) -> std::io::Result<()> {
    let pack = from.join("pack");
    if let Ok(rd) = std::fs::read_dir(&pack) {
        std::fs::create_dir_all(to.join("pack"))?;
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".pack")) else {
                continue;
            };
            let idx = format!("{stem}.idx");
            if !pack.join(&idx).is_file() {
                continue;
            }
            for f in [name.to_string_lossy().into_owned(), idx] {
                std::fs::copy(pack.join(&f), to.join("pack").join(&f))?;
            }
        }
    }
    for e in std::fs::read_dir(from)?.flatten() {
        let name = e.file_name();
        let fan_out = name.len() == 2
            && name
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_hexdigit()));
        if !fan_out || !e.file_type()?.is_dir() {
            continue;
        }
        let dir = to.join(&name);
        std::fs::create_dir_all(&dir)?;
        for o in std::fs::read_dir(e.path())?.flatten() {
            if !o.file_name().to_string_lossy().starts_with("tmp_") {
                std::fs::copy(o.path(), dir.join(o.file_name()))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mirror whose objects are loose (git2 writes them so) and a half-written pack: the
    /// checkout has the commit's files, the branch, `origin`, and none of the pack.
    #[test]
    fn checks_out_loose_objects_and_skips_a_pack_without_its_index() {
        let tmp = tempfile::tempdir().unwrap();
        let mirror = tmp.path().join("m.git");
        let bare = Repository::init_bare(&mirror).unwrap();
        let blob = bare.blob(b"hello\n").unwrap();
        let mut tb = bare.treebuilder(None).unwrap();
        tb.insert("a.txt", blob, 0o100644).unwrap();
        let tree = bare.find_tree(tb.write().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@x").unwrap();
        let sha = bare
            .commit(Some("refs/heads/main"), &sig, &sig, "one", &tree, &[])
            .unwrap()
            .to_string();
        std::fs::write(mirror.join("objects/pack/pack-0000.pack"), b"partial").unwrap();

        let data = tmp.path().join("data");
        let ws = checkout(
            &data,
            3,
            &mirror,
            &sha,
            "refs/heads/main",
            "http://ci/a/b.git",
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(ws.root.join("a.txt")).unwrap(),
            "hello\n"
        );
        let repo = Repository::open(&ws.root).unwrap();
        assert_eq!(repo.head().unwrap().name().unwrap(), "refs/heads/main");
        assert_eq!(repo.head().unwrap().target().unwrap().to_string(), sha);
        let origin = repo.find_remote("origin").unwrap();
        assert_eq!(origin.url().unwrap(), "http://ci/a/b.git");
        let git = ws.root.join(".git");
        assert!(!git.join("objects/pack/pack-0000.pack").exists());
        assert!(!git.join("hooks").join("pre-commit.sample").exists());
        let root = ws.root.clone();
        drop(ws);
        assert!(!root.exists());
    }
}
