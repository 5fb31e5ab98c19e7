//! Resolution of `uses:` references to something runnable: a local directory, a Gantry
//! built-in, a cached checkout of a remote repository at a commit, or a git fetch from the
//! configured sources (GHA-SEMANTICS §8.1).
//!
//! Cache layout under the root (default `$XDG_CACHE_HOME/gantry/actions`):
//! `<owner>/<repo>/` (lower-cased) holds `mirror.git` (a bare mirror of the source),
//! `<sha>/` (the tree at that commit, created once through a temp dir and an atomic
//! rename, never modified), `refs.json` (the `ref → sha` index) and `.lock` (held while
//! fetching or writing the index, so concurrent runs are safe).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use indexmap::IndexMap;

use super::builtin;
use super::reference::{RemoteRef, UsesRef, is_full_sha, is_hex_sha, parse_uses};
use super::transport::{self, GitCredentials};

/// The default source: GitHub.
pub const DEFAULT_SOURCE: &str = "https://github.com/{owner}/{repo}";

/// How actions are found.
#[derive(Debug, Clone)]
pub struct ResolverConfig {
    /// URL templates with `{owner}` and `{repo}`, tried in order.
    pub sources: Vec<String>,
    /// Root of the shared action cache.
    pub cache_root: PathBuf,
    /// Never touch the network (or any source): cache only.
    pub offline: bool,
    /// Built-ins turned off (`--no-builtin NAME`; lower-case `owner/repo[/path]`, or `all`).
    pub no_builtin: HashSet<String>,
    /// Tokens for HTTPS sources (`GANTRY_GIT_TOKEN`, `GITHUB_TOKEN`).
    pub credentials: GitCredentials,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            sources: vec![DEFAULT_SOURCE.to_string()],
            cache_root: default_cache_root(),
            offline: false,
            no_builtin: HashSet::new(),
            credentials: GitCredentials::default(),
        }
    }
}

impl ResolverConfig {
    /// Whether the built-in `name` (lower-case `owner/repo[/path]`) is turned on.
    pub fn builtin_enabled(&self, name: &str) -> bool {
        !self.no_builtin.contains("all") && !self.no_builtin.contains(&name.to_ascii_lowercase())
    }
}

/// `$XDG_CACHE_HOME/gantry/actions`, else `~/.cache/gantry/actions`.
pub fn default_cache_root() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("gantry/actions");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache/gantry/actions")
}

/// Where a resolved action came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Local,
    Builtin,
    Cache,
    /// Fetched now from this URL.
    Fetched(String),
    Docker,
}

/// What a reference resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvedKind {
    /// A natively implemented action, by lower-case name (`actions/checkout`).
    Builtin(String),
    /// An action directory holding `action.yml`/`action.yaml` (or a legacy `Dockerfile`).
    Dir(PathBuf),
    /// `docker://image`.
    Docker(String),
    /// A reusable workflow file.
    Workflow(PathBuf),
}

#[derive(Debug, Clone)]
pub struct ResolvedAction {
    pub uses: UsesRef,
    pub kind: ResolvedKind,
    /// Resolved commit (remote references).
    pub sha: Option<String>,
    pub origin: Origin,
}

/// A reference that could not be resolved, with everything that was tried.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot resolve action '{uses}': {}", tried.join("; "))]
pub struct ResolveError {
    pub uses: String,
    pub tried: Vec<String>,
}

/// Resolves references; one per run (it remembers which repositories were re-checked).
pub struct ActionResolver {
    cfg: ResolverConfig,
    /// Repositories (`owner/repo`) fetched during this run.
    refreshed: Mutex<HashSet<String>>,
    /// Loaded `refs.json` indexes.
    index: Mutex<HashMap<String, IndexMap<String, String>>>,
}

impl ActionResolver {
    pub fn new(cfg: ResolverConfig) -> Self {
        ActionResolver {
            cfg,
            refreshed: Mutex::default(),
            index: Mutex::default(),
        }
    }

    pub fn config(&self) -> &ResolverConfig {
        &self.cfg
    }

    /// Resolves a `uses:` string; `./` paths are relative to `workspace` (host path).
    /// Blocking (git); call from `spawn_blocking` when many fetches are expected.
    pub fn resolve(&self, uses: &str, workspace: &Path) -> Result<ResolvedAction, ResolveError> {
        let parsed = parse_uses(uses).map_err(|e| ResolveError {
            uses: uses.to_string(),
            tried: vec![e.reason],
        })?;
        self.resolve_parsed(parsed, workspace)
    }

    pub fn resolve_parsed(
        &self,
        parsed: UsesRef,
        workspace: &Path,
    ) -> Result<ResolvedAction, ResolveError> {
        self.resolve_with(parsed, workspace, true)
    }

    /// Resolves a remote reference from its sources even when a built-in has its name (a
    /// setup built-in falling back to the real action). Blocking (git).
    pub fn resolve_real(
        &self,
        uses: &str,
        workspace: &Path,
    ) -> Result<ResolvedAction, ResolveError> {
        let parsed = parse_uses(uses).map_err(|e| ResolveError {
            uses: uses.to_string(),
            tried: vec![e.reason],
        })?;
        self.resolve_with(parsed, workspace, false)
    }

    fn resolve_with(
        &self,
        parsed: UsesRef,
        workspace: &Path,
        builtins: bool,
    ) -> Result<ResolvedAction, ResolveError> {
        let uses = parsed.to_string();
        let fail = |tried: Vec<String>| ResolveError {
            uses: uses.clone(),
            tried,
        };
        match &parsed {
            // `$/` actions: the caller passes the workflow's repository as `workspace`.
            UsesRef::Local { path }
            | UsesRef::LocalWorkflow { path }
            | UsesRef::SelfAction { path } => {
                let p = workspace.join(path.trim_start_matches("./"));
                let workflow = matches!(parsed, UsesRef::LocalWorkflow { .. });
                let rel = Path::new(path.trim_start_matches("./"));
                let ok = if workflow {
                    beneath_file(workspace, rel, "the repository")
                } else {
                    action_dir_beneath(workspace, rel, "the repository")
                }
                .map_err(|e| fail(vec![format!("local path: {e}")]))?;
                if !ok {
                    let what = if workflow {
                        "no such workflow file"
                    } else {
                        "no action.yml, action.yaml or Dockerfile in"
                    };
                    return Err(fail(vec![format!(
                        "local path: {what} {} (did you run actions/checkout first?)",
                        p.display()
                    )]));
                }
                let kind = if workflow {
                    ResolvedKind::Workflow(p)
                } else {
                    ResolvedKind::Dir(p)
                };
                Ok(ResolvedAction {
                    uses: parsed,
                    kind,
                    sha: None,
                    origin: Origin::Local,
                })
            }
            UsesRef::Docker { image } => Ok(ResolvedAction {
                kind: ResolvedKind::Docker(image.clone()),
                uses: parsed,
                sha: None,
                origin: Origin::Docker,
            }),
            UsesRef::Remote(r) | UsesRef::RemoteWorkflow(r) => {
                let workflow = matches!(parsed, UsesRef::RemoteWorkflow(_));
                let mut tried = Vec::new();
                if !workflow && builtins {
                    let name = r.name().to_ascii_lowercase();
                    if builtin::is_builtin(&name) {
                        if self.cfg.builtin_enabled(&name) {
                            return Ok(ResolvedAction {
                                kind: ResolvedKind::Builtin(name),
                                uses: parsed,
                                sha: None,
                                origin: Origin::Builtin,
                            });
                        }
                        tried.push(format!("built-in {name}: turned off by --no-builtin"));
                    }
                }
                let (sha, root, origin) = self
                    .remote(r, &mut tried)
                    .map_err(|_| fail(tried.clone()))?;
                let target = if r.path.is_empty() {
                    root.clone()
                } else {
                    root.join(&r.path)
                };
                let in_repo = |ok: Result<bool, String>, tried: &mut Vec<String>| match ok {
                    Ok(ok) => Ok(ok),
                    Err(e) => {
                        tried.push(format!("commit {sha}: {e}"));
                        Err(())
                    }
                };
                let repo = format!("the repository of {}", r.name());
                let rel = Path::new(&r.path);
                let kind = if workflow {
                    let Ok(ok) = in_repo(beneath_file(&root, rel, &repo), &mut tried) else {
                        return Err(fail(tried));
                    };
                    if !ok {
                        tried.push(format!("{sha}: no file {}", r.path));
                        return Err(fail(tried));
                    }
                    ResolvedKind::Workflow(target)
                } else {
                    let Ok(ok) = in_repo(action_dir_beneath(&root, rel, &repo), &mut tried) else {
                        return Err(fail(tried));
                    };
                    if !ok {
                        tried.push(format!(
                            "commit {sha}: no action.yml, action.yaml or Dockerfile in '{}'",
                            r.path
                        ));
                        return Err(fail(tried));
                    }
                    ResolvedKind::Dir(target)
                };
                Ok(ResolvedAction {
                    uses: parsed,
                    kind,
                    sha: Some(sha),
                    origin,
                })
            }
        }
    }

    fn repo_dir(&self, r: &RemoteRef) -> PathBuf {
        cached_repo_dir(&self.cfg.cache_root, r)
    }

    fn load_index(&self, key: &str, dir: &Path) -> IndexMap<String, String> {
        let mut idx = self.index.lock().unwrap();
        idx.entry(key.to_string())
            .or_insert_with(|| {
                std::fs::read(dir.join("refs.json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or_default()
            })
            .clone()
    }

    /// Cache lookup without any git operation.
    fn lookup_cache(&self, r: &RemoteRef, dir: &Path) -> Option<String> {
        let key = format!(
            "{}/{}",
            r.owner.to_ascii_lowercase(),
            r.repo.to_ascii_lowercase()
        );
        if is_full_sha(&r.git_ref) {
            let sha = r.git_ref.to_ascii_lowercase();
            return dir.join(&sha).is_dir().then_some(sha);
        }
        if let Some(sha) = self.load_index(&key, dir).get(&r.git_ref)
            && dir.join(sha).is_dir()
        {
            return Some(sha.clone());
        }
        if is_hex_sha(&r.git_ref) {
            let prefix = r.git_ref.to_ascii_lowercase();
            let mut found = std::fs::read_dir(dir)
                .ok()?
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| is_full_sha(n) && n.starts_with(&prefix));
            let first = found.next()?;
            if found.next().is_none() {
                return Some(first);
            }
        }
        None
    }

    fn remote(
        &self,
        r: &RemoteRef,
        tried: &mut Vec<String>,
    ) -> Result<(String, PathBuf, Origin), ()> {
        let dir = self.repo_dir(r);
        let key = format!(
            "{}/{}",
            r.owner.to_ascii_lowercase(),
            r.repo.to_ascii_lowercase()
        );
        let refreshed = self.refreshed.lock().unwrap().contains(&key);
        // Immutable (full sha) refs, offline mode, and refs already re-checked in this run are
        // answered from the cache.
        let trust_cache = self.cfg.offline || is_full_sha(&r.git_ref) || refreshed;
        let cached = self.lookup_cache(r, &dir);
        if trust_cache && let Some(sha) = cached.clone() {
            let root = dir.join(&sha);
            return Ok((sha, root, Origin::Cache));
        }
        tried.push(format!(
            "action cache {}: no entry for '{}'",
            dir.display(),
            r.git_ref
        ));
        if self.cfg.offline {
            // The local mirror may still know the ref (no network involved).
            let mirror = dir.join("mirror.git");
            if mirror.is_dir() {
                let found = lock_repo(&dir).ok().and_then(|_lock| {
                    let repo = git2::Repository::open_bare(&mirror).ok()?;
                    let sha = find_commit(&repo, &r.git_ref).ok()?;
                    let root = self.materialize(&repo, &dir, &sha).ok()?;
                    Some((sha, root))
                });
                // The lock is released before `record` takes it again.
                if let Some((sha, root)) = found {
                    let _ = self.record(&key, &dir, &r.git_ref, &sha);
                    return Ok((sha, root, Origin::Cache));
                }
            }
            tried.push("offline mode: no fetch attempted".into());
            return Err(());
        }
        if self.cfg.sources.is_empty() {
            tried.push("no action sources configured".into());
        }
        for tpl in &self.cfg.sources {
            let url = tpl.replace("{owner}", &r.owner).replace("{repo}", &r.repo);
            match self.fetch(&dir, &url, &r.git_ref) {
                Ok(sha) => {
                    self.refreshed.lock().unwrap().insert(key.clone());
                    let _ = self.record(&key, &dir, &r.git_ref, &sha);
                    let root = dir.join(&sha);
                    return Ok((sha, root, Origin::Fetched(transport::redact_url(&url))));
                }
                Err(e) => tried.push(e),
            }
        }
        // A source failed but the cache knows the ref: use it (stale is better than nothing).
        if let Some(sha) = cached {
            tracing::warn!("using cached {key}@{} = {sha}: re-check failed", r.git_ref);
            let root = dir.join(&sha);
            return Ok((sha, root, Origin::Cache));
        }
        Err(())
    }

    /// Fetches `url` into the mirror under `dir` and materializes `git_ref`; errors name the
    /// URL (without credentials).
    fn fetch(&self, dir: &Path, url: &str, git_ref: &str) -> Result<String, String> {
        let shown = transport::redact_url(url);
        let local = |e: String| format!("{shown}: {e}");
        std::fs::create_dir_all(dir)
            .map_err(|e| local(format!("cannot create {}: {e}", dir.display())))?;
        let _lock = lock_repo(dir).map_err(local)?;
        let mirror = dir.join("mirror.git");
        let repo = match git2::Repository::open_bare(&mirror) {
            Ok(r) => r,
            Err(_) => {
                git2::Repository::init_bare(&mirror).map_err(|e| local(e.message().to_string()))?
            }
        };
        fetch_into(&repo, url, &self.cfg.credentials, git_ref).map_err(|e| e.to_string())?;
        let sha = find_commit(&repo, git_ref).map_err(local)?;
        self.materialize(&repo, dir, &sha).map_err(local)?;
        Ok(sha)
    }

    /// Writes the tree of `sha` to `<dir>/<sha>/` (temp dir + atomic rename).
    fn materialize(
        &self,
        repo: &git2::Repository,
        dir: &Path,
        sha: &str,
    ) -> Result<PathBuf, String> {
        let target = dir.join(sha);
        if target.is_dir() {
            return Ok(target);
        }
        let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
        let res = (|| {
            let commit = repo
                .find_commit(git2::Oid::from_str(sha).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
            let tree = commit.tree().map_err(|e| e.to_string())?;
            write_tree(repo, &tree, &tmp)
        })();
        if let Err(e) = res {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        if std::fs::rename(&tmp, &target).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
            if !target.is_dir() {
                return Err(format!("cannot create {}", target.display()));
            }
        }
        Ok(target)
    }

    /// Records `ref → sha` in `refs.json` (under the lock; temp file + rename).
    fn record(&self, key: &str, dir: &Path, git_ref: &str, sha: &str) -> Result<(), String> {
        if is_full_sha(git_ref) {
            return Ok(());
        }
        let _lock = lock_repo(dir)?;
        let mut idx: IndexMap<String, String> = std::fs::read(dir.join("refs.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        idx.insert(git_ref.to_string(), sha.to_string());
        let tmp = dir.join(format!(".refs-{}.json", uuid::Uuid::new_v4().simple()));
        std::fs::write(&tmp, serde_json::to_vec_pretty(&idx).unwrap())
            .map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, dir.join("refs.json")).map_err(|e| e.to_string())?;
        self.index.lock().unwrap().insert(key.to_string(), idx);
        Ok(())
    }
}

pub(crate) use gantry_git::fetch_into;

/// Where the cache under `cache_root` keeps `r`'s repository: every fetched commit in a
/// directory named by its sha, `refs.json` mapping refs to them.
pub fn cached_repo_dir(cache_root: &Path, r: &RemoteRef) -> PathBuf {
    cache_root
        .join(r.owner.to_ascii_lowercase())
        .join(r.repo.to_ascii_lowercase())
}

/// The cached checkout of `r` when its ref is a full sha the cache holds: the one kind of
/// ref the resolver answers without the network (a tag or branch is fetched again).
pub fn cached_commit_dir(cache_root: &Path, r: &RemoteRef) -> Option<PathBuf> {
    if !is_full_sha(&r.git_ref) {
        return None;
    }
    let dir = cached_repo_dir(cache_root, r).join(r.git_ref.to_ascii_lowercase());
    dir.is_dir().then_some(dir)
}

/// An exclusive lock on `<dir>/.lock`, released on drop.
fn lock_repo(dir: &Path) -> Result<File, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))
        .map_err(|e| format!("cannot open lock file: {e}"))?;
    f.lock()
        .map_err(|e| format!("cannot lock {}: {e}", dir.display()))?;
    Ok(f)
}

/// Finds the commit for a tag, branch, full or short sha.
fn find_commit(repo: &git2::Repository, git_ref: &str) -> Result<String, String> {
    let peel = |o: git2::Object<'_>| o.peel_to_commit().map(|c| c.id().to_string());
    for name in [
        format!("refs/tags/{git_ref}"),
        format!("refs/heads/{git_ref}"),
    ] {
        if let Ok(r) = repo.find_reference(&name)
            && let Ok(o) = r.peel(git2::ObjectType::Commit)
        {
            return Ok(o.id().to_string());
        }
    }
    if is_hex_sha(git_ref)
        && let Ok(o) = repo.revparse_single(git_ref)
        && let Ok(sha) = peel(o)
    {
        return Ok(sha);
    }
    Err(format!("no tag, branch or commit '{git_ref}'"))
}

/// Writes a git tree to a directory (files, executables, symlinks, subdirectories).
fn write_tree(repo: &git2::Repository, tree: &git2::Tree<'_>, dest: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dest).map_err(|e| e.to_string())?;
    for entry in tree.iter() {
        let name = entry
            .name()
            .map_err(|_| "non-UTF-8 file name".to_string())?;
        if name == ".." || name.contains('/') {
            return Err(format!("unsafe path '{name}'"));
        }
        let path = dest.join(name);
        match entry.kind() {
            Some(git2::ObjectType::Tree) => {
                let sub = repo.find_tree(entry.id()).map_err(|e| e.to_string())?;
                write_tree(repo, &sub, &path)?;
            }
            Some(git2::ObjectType::Blob) => {
                let blob = repo.find_blob(entry.id()).map_err(|e| e.to_string())?;
                if entry.filemode() == 0o120000 {
                    let target = String::from_utf8_lossy(blob.content()).into_owned();
                    std::os::unix::fs::symlink(target, &path).map_err(|e| e.to_string())?;
                } else {
                    std::fs::write(&path, blob.content()).map_err(|e| e.to_string())?;
                    if entry.filemode() == 0o100755 {
                        use std::os::unix::fs::PermissionsExt;
                        let _ =
                            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755));
                    }
                }
            }
            _ => {} // submodules are not fetched
        }
    }
    Ok(())
}

/// Whether `dir` holds an action (metadata file or a legacy Dockerfile).
/// Refuses a file of the repository at `root` (a workflow file) that is a symlink leading
/// outside it, before anything reads it; the error names the file, never the link's target
/// or its content. Files outside `root` (named explicitly by the user) are not checked.
pub fn repository_file_beneath(root: &Path, file: &Path) -> Result<(), FileRefused> {
    let Ok(rel) = file.strip_prefix(root) else {
        return Ok(());
    };
    beneath_file(root, rel, "the repository")
        .map(drop)
        .map_err(|reason| FileRefused { reason })
}

/// A repository file that may not be read (it leads outside the repository).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("workflow file refused: {reason}")]
pub struct FileRefused {
    /// Names the file, never a link's target.
    pub reason: String,
}

/// Whether `rel` is a regular file beneath `root` (following links only while they stay
/// inside); a link leading out is an error, so its target is never read.
fn beneath_file(root: &Path, rel: &Path, label: &str) -> Result<bool, String> {
    let r = gantry_beneath::Root::open(root, label).map_err(|e| e.to_string())?;
    match r.kind(rel, true) {
        Ok(gantry_beneath::Kind::File { .. }) => Ok(true),
        Ok(_) => Ok(false),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e.to_string()),
    }
}

/// Whether `rel` is an action directory beneath `root`: the directory and its metadata
/// files (`action.yml`, `action.yaml`, `Dockerfile`) must not lead outside through a link.
fn action_dir_beneath(root: &Path, rel: &Path, label: &str) -> Result<bool, String> {
    let r = gantry_beneath::Root::open(root, label).map_err(|e| e.to_string())?;
    match r.kind(rel, true) {
        Ok(gantry_beneath::Kind::Dir) => {}
        Ok(_) => return Ok(false),
        Err(e) if e.is_not_found() => return Ok(false),
        Err(e) => return Err(e.to_string()),
    }
    let mut any = false;
    for name in ["action.yml", "action.yaml", "Dockerfile"] {
        any |= beneath_file(root, &rel.join(name), label)?;
    }
    Ok(any)
}

pub fn is_action_dir(dir: &Path) -> bool {
    dir.join("action.yml").is_file()
        || dir.join("action.yaml").is_file()
        || dir.join("Dockerfile").is_file()
}
