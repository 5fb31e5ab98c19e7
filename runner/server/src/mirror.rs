//! Bare mirrors of the configured repositories under `data/mirrors`, fetched with git2.
//! Workflows are read from a commit's tree in the mirror, never from a checkout, so nothing
//! of the pushed commit is written to disk or run while deciding what to run.

use std::path::{Path, PathBuf};

use gantry_git::transport::{self, Attempt, FetchError, GitCredentials};
use git2::Repository;

use crate::config::Secret;

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    /// The fetch from the repository's URL failed: certificate, authentication, not found
    /// (`FetchError::kind`), with a sentence that never holds the token.
    #[error("fetching the repository: {0}")]
    Fetch(#[from] FetchError),
    #[error("commit {0} is not in the repository after fetching")]
    MissingCommit(String),
    #[error("repacking the mirror: {0}")]
    Repack(String),
}

/// What an authentication failure of a mirror's fetch tells the operator to do.
const AUTH_HINT: &str = "give the repository a `token: \"${NAME}\"` in the server config \
     (sent over https:// only), or configure a git credential helper for the server's user";

/// The most packs a mirror keeps after a fetch; one more and it is repacked into one
/// ([`crate::mirror_pack`]). Each push's fetch adds a pack, and each checkout copies every
/// pack, so this bounds a checkout's files at 2 × 16 (a few ms to copy, a few tens on a
/// busy disk, where 2,000 packs took 3 s: bench/results/2026-12-04-mirror-repack.md),
/// while a repack,
/// which writes the whole repository again, happens at most once every 16 fetches.
pub const MAX_PACKS: usize = 16;

/// One workflow file read from a commit.
#[derive(Debug, Clone)]
pub struct WorkflowFile {
    /// Repository-relative path (`.github/workflows/ci.yml`).
    pub path: String,
    pub text: String,
}

/// Facts about a commit read from the mirror.
#[derive(Debug, Clone)]
pub struct CommitInfo {
    pub sha: String,
    pub tree_id: String,
    pub message: String,
    pub author_name: String,
    pub author_email: String,
    pub committer_name: String,
    pub committer_email: String,
    /// Seconds since the epoch.
    pub time: i64,
}

/// The mirror directory of `owner/name`.
pub fn mirror_dir(data: &Path, repo: &str) -> PathBuf {
    let safe: String = repo
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '+'
            }
        })
        .collect();
    data.join("mirrors").join(format!("{safe}.git"))
}

/// Fetches branches, tags and `extra_refs` (a pull request's head) from `url` into the
/// bare mirror at `dir`, creating it the first time, then repacks the mirror when it has
/// more than [`MAX_PACKS`] packs. The fetch goes through the engine's git transport
/// (`gantry_git::transport`: TLS with the system's trust store and `SSL_CERT_FILE`,
/// proxies, ssh-agent keys); `token` (the repository's `token:`) is handed to libgit2
/// through the credential callback only, so it is never part of a URL, a remote in the
/// mirror's config or `FETCH_HEAD`. Blocking: call from a blocking task, holding the
/// mirror's lock.
pub fn fetch(
    dir: &Path,
    url: &str,
    token: Option<&Secret>,
    extra_refs: &[String],
) -> Result<Repository, MirrorError> {
    let repo = match Repository::open_bare(dir) {
        Ok(r) => r,
        Err(_) => {
            std::fs::create_dir_all(dir).map_err(|e| git2::Error::from_str(&e.to_string()))?;
            Repository::init_bare(dir)?
        }
    };
    let mut refspecs = vec![
        "+refs/heads/*:refs/heads/*".to_string(),
        "+refs/tags/*:refs/tags/*".to_string(),
    ];
    for r in extra_refs {
        refspecs.push(format!("+{r}:{r}"));
    }
    let creds = GitCredentials {
        any_host: token.map(|t| t.expose().to_string()),
        github: None,
    };
    let attempt = Attempt::default();
    let fail = |e: git2::Error| {
        let err = FetchError::with_auth_hint(url, &e, &attempt, AUTH_HINT);
        match token {
            // libgit2's own text never holds the token, but a message is no place to find
            // out that it did.
            Some(t) if err.to_string().contains(t.expose()) => MirrorError::Fetch(
                FetchError::with_auth_hint(url, &git2::Error::from_str("***"), &attempt, AUTH_HINT),
            ),
            _ => MirrorError::Fetch(err),
        }
    };
    {
        let mut remote = repo.remote_anonymous(url).map_err(fail)?;
        let mut opts = transport::fetch_options(url, &creds, &attempt);
        opts.prune(git2::FetchPrune::On);
        // FETCH_HEAD would keep the URL; nothing reads it.
        opts.update_fetchhead(false);
        let specs: Vec<&str> = refspecs.iter().map(String::as_str).collect();
        remote.fetch(&specs, Some(&mut opts), None).map_err(fail)?;
        if let Ok(head) = remote.default_branch()
            && let Ok(h) = head.as_str()
        {
            repo.set_head(h)?;
        }
    }
    match crate::mirror_pack::repack_if_needed(dir, MAX_PACKS) {
        Ok(false) => Ok(repo),
        // The packs this handle had open are gone: read on through a fresh one.
        Ok(true) => {
            drop(repo);
            Ok(Repository::open_bare(dir)?)
        }
        // The fetch stands: a failed repack leaves the old packs (or both sets) in place.
        Err(e) => {
            tracing::warn!(mirror = %dir.display(), "{e}");
            drop(repo);
            Ok(Repository::open_bare(dir)?)
        }
    }
}

/// The branch HEAD of the mirror names (the remote's default branch).
pub fn default_branch(repo: &Repository) -> Option<String> {
    let head = repo.find_reference("HEAD").ok()?;
    let target = head.symbolic_target().ok()??;
    target.strip_prefix("refs/heads/").map(str::to_string)
}

/// The commit a ref or sha names.
pub fn resolve(repo: &Repository, spec: &str) -> Result<String, MirrorError> {
    let candidates = [
        spec.to_string(),
        format!("refs/heads/{spec}"),
        format!("refs/tags/{spec}"),
    ];
    for c in &candidates {
        if let Ok(obj) = repo.revparse_single(c)
            && let Ok(commit) = obj.peel_to_commit()
        {
            return Ok(commit.id().to_string());
        }
    }
    Err(MirrorError::MissingCommit(spec.to_string()))
}

pub fn commit_info(repo: &Repository, sha: &str) -> Result<CommitInfo, MirrorError> {
    let oid = git2::Oid::from_str(sha).map_err(|_| MirrorError::MissingCommit(sha.into()))?;
    let c = repo
        .find_commit(oid)
        .map_err(|_| MirrorError::MissingCommit(sha.into()))?;
    Ok(CommitInfo {
        sha: sha.to_string(),
        tree_id: c.tree_id().to_string(),
        message: c.message().unwrap_or_default().to_string(),
        author_name: c.author().name().unwrap_or_default().to_string(),
        author_email: c.author().email().unwrap_or_default().to_string(),
        committer_name: c.committer().name().unwrap_or_default().to_string(),
        committer_email: c.committer().email().unwrap_or_default().to_string(),
        time: c.time().seconds(),
    })
}

/// The workflow files of the first of `dirs` that exists in the commit's tree.
pub fn workflows_at(
    repo: &Repository,
    sha: &str,
    dirs: &[&str],
) -> Result<Vec<WorkflowFile>, MirrorError> {
    let oid = git2::Oid::from_str(sha).map_err(|_| MirrorError::MissingCommit(sha.into()))?;
    let tree = repo
        .find_commit(oid)
        .map_err(|_| MirrorError::MissingCommit(sha.into()))?
        .tree()?;
    for dir in dirs {
        let Ok(entry) = tree.get_path(Path::new(dir)) else {
            continue;
        };
        let Ok(sub) = repo.find_tree(entry.id()) else {
            continue;
        };
        let mut out = Vec::new();
        for e in sub.iter() {
            let Ok(name) = e.name() else { continue };
            if !(name.ends_with(".yml") || name.ends_with(".yaml")) {
                continue;
            }
            if let Ok(blob) = repo.find_blob(e.id()) {
                out.push(WorkflowFile {
                    path: format!("{dir}/{name}"),
                    text: String::from_utf8_lossy(blob.content()).into_owned(),
                });
            }
        }
        return Ok(out);
    }
    Ok(Vec::new())
}

/// The files a push changed, as GitHub computes them for `paths` filters
/// (GHA-SEMANTICS §2.4): for a push to an existing branch the two-dot diff `before..after`;
/// for a new branch (`before` is `None`: forty zeros) the two-dot diff against the parent
/// of the deepest commit the push brought in, that is the oldest commit reachable from
/// `after` and from no other branch or tag of the mirror (none: the branch was created at a
/// commit another ref has, nothing changed; no parent: the repository's first commit,
/// every file is new). `None` when a commit is not in the mirror (a force-push whose
/// `before` the mirror never saw): the changed files are unknown, so, as on GitHub when
/// it has no diff, path filters are not applied. Never the payload's
/// `added`/`modified`/`removed` lists, which a forge may truncate or leave out.
pub fn pushed_paths(
    repo: &Repository,
    pushed_ref: &str,
    before: Option<&str>,
    after: &str,
) -> Option<Vec<String>> {
    if let Some(before) = before {
        return changed_paths(repo, Some(before), after);
    }
    let tip = git2::Oid::from_str(after).ok()?;
    repo.find_commit(tip).ok()?;
    let mut walk = repo.revwalk().ok()?;
    walk.set_sorting(git2::Sort::TOPOLOGICAL).ok()?;
    walk.push(tip).ok()?;
    for r in repo.references().ok()?.flatten() {
        let Ok(name) = r.name() else { continue };
        if name == pushed_ref
            || !(name.starts_with("refs/heads/") || name.starts_with("refs/tags/"))
        {
            continue;
        }
        if let Ok(c) = r.peel_to_commit() {
            walk.hide(c.id()).ok()?;
        }
    }
    // Topological order: every commit before its parents, so the last is the deepest.
    let Some(deepest) = walk.flatten().last() else {
        return Some(Vec::new());
    };
    let parent = repo.find_commit(deepest).ok()?.parent_id(0).ok();
    changed_paths(repo, parent.map(|p| p.to_string()).as_deref(), after)
}

/// Paths changed between two commits (a push's range), when both are in the mirror;
/// `before` `None`: against the empty tree (every file of `after`).
pub fn changed_paths(repo: &Repository, before: Option<&str>, after: &str) -> Option<Vec<String>> {
    let old = match before {
        Some(b) => Some(
            repo.find_commit(git2::Oid::from_str(b).ok()?)
                .ok()?
                .tree()
                .ok()?,
        ),
        None => None,
    };
    let new = repo
        .find_commit(git2::Oid::from_str(after).ok()?)
        .ok()?
        .tree()
        .ok()?;
    let diff = repo
        .diff_tree_to_tree(old.as_ref(), Some(&new), None)
        .ok()?;
    let mut out = Vec::new();
    for d in diff.deltas() {
        for f in [d.old_file().path(), d.new_file().path()]
            .into_iter()
            .flatten()
        {
            let p = f.to_string_lossy().into_owned();
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    Some(out)
}
