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
    let repo = Repository::init(&ws.root).map_err(git)?;
    {
        // Objects come from the mirror by a local fetch of its refs (the commit is one of
        // them or their ancestor: the trigger read the workflows from it there).
        let mirror_url = mirror.to_string_lossy().into_owned();
        let mut remote = repo.remote_anonymous(&mirror_url).map_err(git)?;
        remote
            .fetch(&["+refs/*:refs/gantry/mirror/*"], None, None)
            .map_err(git)?;
    }
    let oid = git2::Oid::from_str(sha).map_err(git)?;
    let commit = repo.find_commit(oid).map_err(git)?;
    match git_ref.strip_prefix("refs/heads/") {
        Some(branch) => {
            repo.branch(branch, &commit, true).map_err(git)?;
            repo.set_head(git_ref).map_err(git)?;
        }
        None => repo.set_head_detached(oid).map_err(git)?,
    }
    for r in repo
        .references_glob("refs/gantry/*")
        .map_err(git)?
        .flatten()
        .collect::<Vec<_>>()
    {
        let mut r = r;
        let _ = r.delete();
    }
    repo.checkout_head(Some(git2::build::CheckoutBuilder::new().force()))
        .map_err(git)?;
    repo.remote("origin", origin_url).map_err(git)?;
    Ok(ws)
}
