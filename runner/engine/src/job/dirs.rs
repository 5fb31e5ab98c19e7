//! Job directories, recycled. Every job needs `<work-root>/<job>/` with a copy of the
//! repository and `_temp/{_github_workflow/event.json,_runner_file_commands}`; creating
//! and deleting ~10 inodes per job dominated a run of many small jobs, because on ext4
//! without a journal every inode allocation skips each inode deleted in the last ~30 s
//! one by one (`recently_deleted`; see also [`crate::envfile::spare`]).
//!
//! So a finished job's tree is not deleted: it is pruned back to its skeleton and parked as
//! `<work-root>/.spare-job-<n>` (same parent: the rename rewrites one directory; no job
//! directory starts with a dot), and the next job renames it to its own path and
//! refreshes it.
//! Nothing of the earlier job survives:
//! - the workspace keeps only directories and regular files the snapshot lists, owned by
//!   us, with one link and no extended attributes beyond `security.*`; every listed file is
//!   copied again (content and mode), symlinks are made anew, a listed file that vanished
//!   from the repository is removed, directories get the mode of a new directory;
//! - `_temp` keeps only `_github_workflow/event.json` (written again) and an empty
//!   `_runner_file_commands`; everything else a job left there is deleted;
//! - the workspace's `.git` keeps only the directories and files of the run's
//!   [`crate::workspace::git::GitDir`], and `_home` only `.gitconfig`; each is given the
//!   run's bytes again ([`git`]);
//! - anything else in the job directory is deleted.
//!
//! When pruning fails (files a container left owned by root), the tree is deleted as before.

use std::collections::HashSet;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::workspace::Snapshot;

mod git;
pub mod sweep;

/// Name prefix of parked job trees beside the job directories.
pub const SPARE_PREFIX: &str = ".spare-job-";
/// `_temp/_github_workflow` holds the event payload (`GITHUB_EVENT_PATH`).
pub const WORKFLOW_DIR: &str = "_github_workflow";
pub const EVENT_FILE: &str = "event.json";
/// Most trees kept parked (a run holds at most `--jobs` trees at once).
const MAX_PARKED: usize = 16;

/// The paths of one job's directory tree.
#[derive(Debug, Clone)]
pub struct JobTree {
    /// `<work-root>/<job>`.
    pub job_dir: PathBuf,
    /// `<job>/<repo-name>`, or the repository itself under `--bind`.
    pub workspace: PathBuf,
    /// `<job>/_temp` (RUNNER_TEMP).
    pub temp: PathBuf,
    /// `<job>/_temp/_github_workflow/event.json`.
    pub event_file: PathBuf,
    /// Whether the tree was a parked one.
    pub recycled: bool,
    /// Per file of the snapshot (same order): how it and its copy in the workspace looked
    /// when the copy was last known to match.
    copies: Vec<Option<CopyStamp>>,
    /// How the event file looked when it was last known to hold this run's payload.
    event: Option<Stamp>,
    /// The same for the files of the workspace's `.git` and `_home/.gitconfig`.
    git: git::GitStamps,
}

/// A parked tree. `complete`: every directory of the skeleton was still there when it was
/// pruned (then refreshing it needs no directory checks).
struct Parked {
    path: PathBuf,
    complete: bool,
    copies: Vec<Option<CopyStamp>>,
    event: Option<Stamp>,
    git: git::GitStamps,
}

/// The metadata that changes whenever a file's content, mode or links change. `ctime`
/// cannot be set by a user (unlike `mtime`, which `touch -d` restores).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    size: u64,
    mode: u32,
    nlink: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Stamp {
        Stamp {
            ino: m.ino(),
            size: m.len(),
            mode: m.mode(),
            nlink: m.nlink(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// A repository file and its workspace copy, as they were when the copy matched. When both
/// still look the same the copy is kept without reading either file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CopyStamp {
    src: Stamp,
    dst: Stamp,
}

/// How old both ctimes must be before a stamp is trusted. Timestamps come from a coarse
/// clock (a tick of up to 10 ms on older kernels), so a write within the same tick as the
/// stamp could leave ctime as it was (git's "racy clean" case).
const SETTLED: std::time::Duration = std::time::Duration::from_millis(50);

impl Stamp {
    /// The stamp of a file whose ctime is settled.
    fn settled(m: &std::fs::Metadata) -> Option<Stamp> {
        let ctime = std::time::UNIX_EPOCH
            + std::time::Duration::new(m.ctime().max(0) as u64, m.ctime_nsec() as u32);
        (ctime + SETTLED <= std::time::SystemTime::now()).then(|| Stamp::of(m))
    }
}

impl CopyStamp {
    /// The stamp of a matching pair, if both ctimes are settled.
    fn of(src: &std::fs::Metadata, dst: &std::fs::Metadata) -> Option<CopyStamp> {
        Some(CopyStamp {
            src: Stamp::settled(src)?,
            dst: Stamp::settled(dst)?,
        })
    }
}

/// What a kept entry must look like, learned from the work root we create ourselves.
#[derive(Debug, Clone, Copy)]
struct Reference {
    uid: u32,
    gid: u32,
    dir_mode: u32,
}

/// The workspace layout the snapshot produces (relative paths).
struct Layout {
    files: HashSet<PathBuf>,
    dirs: HashSet<PathBuf>,
}

/// The parked job trees of one run.
pub struct JobDirs {
    work_root: PathBuf,
    /// The mode of a new directory (the work root itself is narrowed to 0700).
    new_dir_mode: Option<u32>,
    parked: Mutex<Vec<Parked>>,
    seq: AtomicU64,
    reference: OnceLock<Option<Reference>>,
    layout: OnceLock<Layout>,
    git_layout: OnceLock<Option<git::GitLayout>>,
    tool_cache: OnceLock<()>,
}

impl JobDirs {
    /// The run's trees under `work_root`. Also claims `work_root` for this process (0700,
    /// with an owner record) and sweeps the work roots that dead runs left beside it (see
    /// [`sweep`]); a failure there is not fatal (the jobs create what they need).
    pub fn new(work_root: &Path) -> Self {
        let new_dir_mode = match sweep::claim(work_root) {
            Ok(c) => Some(c.new_dir_mode),
            Err(e) => {
                tracing::warn!(
                    "cannot prepare the work directory {}: {e}",
                    work_root.display()
                );
                None
            }
        };
        JobDirs {
            work_root: work_root.to_path_buf(),
            new_dir_mode,
            parked: Mutex::new(Vec::new()),
            seq: AtomicU64::new(0),
            reference: OnceLock::new(),
            layout: OnceLock::new(),
            git_layout: OnceLock::new(),
            tool_cache: OnceLock::new(),
        }
    }

    fn parked(&self) -> std::sync::MutexGuard<'_, Vec<Parked>> {
        self.parked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `<work-root>/_tool`, created once per run.
    pub fn tool_cache(&self) -> PathBuf {
        let dir = self.work_root.join("_tool");
        self.tool_cache.get_or_init(|| {
            let _ = std::fs::create_dir_all(&dir);
        });
        dir
    }

    /// The tree of a job at `job_dir` (not created).
    pub fn tree(&self, snapshot: &Snapshot, job_dir: &Path, repo_name: &str) -> JobTree {
        let temp = job_dir.join("_temp");
        JobTree {
            job_dir: job_dir.to_path_buf(),
            workspace: if snapshot.bind {
                snapshot.root.clone()
            } else {
                job_dir.join(repo_name)
            },
            event_file: temp.join(WORKFLOW_DIR).join(EVENT_FILE),
            temp,
            recycled: false,
            copies: Vec::new(),
            event: None,
            git: git::GitStamps::default(),
        }
    }

    /// Makes the job's tree ready: a parked tree renamed to `tree.job_dir` and refreshed,
    /// else a new one. Sets `tree.recycled`.
    pub fn prepare(
        &self,
        snapshot: &Snapshot,
        tree: &mut JobTree,
        event_json: &str,
    ) -> io::Result<()> {
        let taken = self.take(&tree.job_dir);
        tree.recycled = taken.is_some();
        let reference = self.reference();
        if let Some(parked) = taken {
            tree.copies = parked.copies;
            tree.event = parked.event;
            tree.git = parked.git;
            let how = if parked.complete {
                Fill::Complete
            } else {
                Fill::Recycled
            };
            if fill(snapshot, tree, event_json, how, reference.as_ref()).is_ok() {
                return Ok(());
            }
            // A tree that cannot be refreshed is replaced by a new one.
            let _ = std::fs::remove_dir_all(&tree.job_dir);
            tree.recycled = false;
            tree.copies.clear();
            tree.event = None;
            tree.git = git::GitStamps::default();
        }
        std::fs::create_dir_all(&tree.job_dir)?;
        fill(snapshot, tree, event_json, Fill::New, reference.as_ref())
    }

    /// At the end of a job: prunes its tree back to the skeleton and parks it, or deletes it.
    pub fn release(&self, snapshot: &Snapshot, tree: &JobTree) {
        if !self.park(snapshot, tree) {
            let _ = std::fs::remove_dir_all(&tree.job_dir);
        }
    }

    /// Deletes the parked trees (the end of a run that keeps its work root).
    /// The work root stays and is no longer swept as a dead run's.
    pub fn clear(&self) {
        for p in std::mem::take(&mut *self.parked()) {
            let _ = std::fs::remove_dir_all(&p.path);
        }
        sweep::keep(&self.work_root);
    }

    fn layout(&self, snapshot: &Snapshot) -> &Layout {
        self.layout.get_or_init(|| {
            let mut dirs = HashSet::new();
            for f in &snapshot.files {
                let mut p = f.parent();
                while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
                    if !dirs.insert(d.to_path_buf()) {
                        break;
                    }
                    p = d.parent();
                }
            }
            Layout {
                files: snapshot.files.iter().cloned().collect(),
                dirs,
            }
        })
    }

    fn reference(&self) -> Option<Reference> {
        *self.reference.get_or_init(|| {
            // The work root is a directory this process created, like every job directory
            // (its mode before it was narrowed to 0700 is the mode of a new directory).
            let m = std::fs::metadata(&self.work_root).ok()?;
            Some(Reference {
                uid: m.uid(),
                gid: m.gid(),
                dir_mode: self.new_dir_mode.unwrap_or(m.mode() & 0o7777),
            })
        })
    }

    fn git_layout(&self, snapshot: &Snapshot) -> Option<&git::GitLayout> {
        self.git_layout
            .get_or_init(|| snapshot.git.as_deref().map(git::GitLayout::of))
            .as_ref()
    }

    /// Renames a parked tree to `job_dir`; the parked tree when there was one.
    fn take(&self, job_dir: &Path) -> Option<Parked> {
        loop {
            let candidate = self.parked().pop()?;
            if std::fs::rename(&candidate.path, job_dir).is_ok() {
                return Some(candidate);
            }
            let _ = std::fs::remove_dir_all(&candidate.path);
        }
    }

    fn park(&self, snapshot: &Snapshot, tree: &JobTree) -> bool {
        let Some(reference) = self.reference() else {
            return false;
        };
        if self.parked().len() >= MAX_PARKED {
            return false;
        }
        let layout = self.layout(snapshot);
        let git_layout = self.git_layout(snapshot).filter(|_| !snapshot.bind);
        let Ok(complete) = prune_job_dir(tree, snapshot.bind, layout, git_layout, &reference)
        else {
            return false;
        };
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let dst = self.work_root.join(format!("{SPARE_PREFIX}{n}"));
        if std::fs::rename(&tree.job_dir, &dst).is_err() {
            return false;
        }
        self.parked().push(Parked {
            path: dst,
            complete,
            copies: tree.copies.clone(),
            event: tree.event,
            git: tree.git.clone(),
        });
        true
    }
}

/// The state of a tree [`fill`] starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    /// An empty job directory.
    New,
    /// A pruned tree: entries may exist already (listed files are copied over, symlinks
    /// replaced, files gone from the repository removed), directories may be missing.
    Recycled,
    /// A pruned tree with every directory of the skeleton.
    Complete,
}

/// Creates what is missing in the tree and writes the workspace files and the event file.
fn fill(
    snapshot: &Snapshot,
    tree: &mut JobTree,
    event_json: &str,
    how: Fill,
    reference: Option<&Reference>,
) -> io::Result<()> {
    let recycled = how != Fill::New;
    if !snapshot.bind {
        copy_workspace(snapshot, &tree.workspace, how, &mut tree.copies)?;
        // The job's own git directory, over what pruning kept of the last job's.
        if let Some(g) = &snapshot.git {
            let home = tree.job_dir.join(git::HOME_DIR);
            match reference {
                Some(r) => git::refresh(
                    g,
                    &tree.workspace,
                    &home,
                    how == Fill::Complete,
                    &mut tree.git,
                    r,
                )?,
                // Not a tree that is ever parked: written as new.
                None => {
                    g.write(&tree.workspace)?;
                    std::fs::create_dir_all(&home)?;
                    std::fs::write(
                        home.join(".gitconfig"),
                        crate::workspace::git::HOME_GITCONFIG,
                    )?;
                }
            }
        }
    }
    if how != Fill::Complete {
        let workflow_dir = tree.temp.join(WORKFLOW_DIR);
        for d in [
            &workflow_dir,
            &tree.temp.join(crate::envfile::FILE_COMMANDS_DIR),
        ] {
            std::fs::create_dir_all(d)?;
        }
    }
    // The payload is the same for every job of the run: a recycled tree's event file is
    // kept when it still looks as it did when it last held it, or when it holds it now.
    let prev = tree.event.take();
    if recycled
        && let Ok(m) = std::fs::symlink_metadata(&tree.event_file)
        && m.is_file()
    {
        if prev.is_some() && prev == Some(Stamp::of(&m)) {
            tree.event = prev;
            return Ok(());
        }
        if std::fs::read(&tree.event_file).is_ok_and(|b| b == event_json.as_bytes()) {
            tree.event = Stamp::settled(&m);
            return Ok(());
        }
    }
    std::fs::write(&tree.event_file, event_json)
}

/// Largest file compared before it is copied over a recycled one.
const COMPARE_LIMIT: u64 = 1 << 20;

/// Copies `src` to `dst`, returning the pair's stamp when it can be trusted next time.
/// Over a recycled `dst`: when neither file changed since `prev` was taken, nothing is
/// done; else a `dst` of the same size is compared first and only the mode is set when it
/// matches: truncating a file frees its blocks (a discard on this kind of mount) and makes
/// ext4 flush the rewrite on close.
fn copy_file(
    src: &Path,
    src_meta: &std::fs::Metadata,
    dst: &Path,
    recycled: bool,
    prev: Option<CopyStamp>,
) -> io::Result<Option<CopyStamp>> {
    if !recycled {
        std::fs::copy(src, dst)?;
        return Ok(None);
    }
    let Ok(dm) = std::fs::symlink_metadata(dst) else {
        std::fs::copy(src, dst)?;
        return Ok(None);
    };
    if let Some(prev) = prev
        && prev.src == Stamp::of(src_meta)
        && prev.dst == Stamp::of(&dm)
    {
        return Ok(Some(prev));
    }
    if src_meta.len() <= COMPARE_LIMIT
        && dm.is_file()
        && dm.len() == src_meta.len()
        && let Ok(old) = std::fs::read(dst)
        && let Ok(new) = std::fs::read(src)
        && old == new
    {
        if dm.mode() & 0o7777 != src_meta.mode() & 0o7777 {
            std::fs::set_permissions(dst, src_meta.permissions())?;
            return Ok(None);
        }
        return Ok(CopyStamp::of(src_meta, &dm));
    }
    std::fs::copy(src, dst)?;
    Ok(None)
}

fn copy_workspace(
    snapshot: &Snapshot,
    dest: &Path,
    how: Fill,
    copies: &mut Vec<Option<CopyStamp>>,
) -> io::Result<()> {
    let recycled = how != Fill::New;
    copies.resize(snapshot.files.len(), None);
    if how != Fill::Complete {
        std::fs::create_dir_all(dest)?;
    }
    let mut ready: HashSet<&Path> = HashSet::new();
    for (rel, stamp) in snapshot.files.iter().zip(copies.iter_mut()) {
        let prev = stamp.take();
        let src = snapshot.root.join(rel);
        let dst = dest.join(rel);
        if how != Fill::Complete
            && let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty())
            && ready.insert(parent)
        {
            std::fs::create_dir_all(dest.join(parent))?;
        }
        let Ok(meta) = std::fs::symlink_metadata(&src) else {
            // Deleted in the working tree since the scan.
            if recycled {
                remove_any(&dst)?;
            }
            continue;
        };
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&src)?;
            if recycled {
                remove_any(&dst)?;
            }
            let _ = std::os::unix::fs::symlink(target, &dst);
        } else if meta.is_file() {
            *stamp = copy_file(&src, &meta, &dst, recycled, prev)?;
        } else if recycled {
            remove_any(&dst)?;
        }
    }
    Ok(())
}

/// Removes a file, symlink or directory tree; a missing path is fine.
fn remove_any(p: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn ours(m: &std::fs::Metadata, r: &Reference) -> bool {
    m.uid() == r.uid && m.gid() == r.gid
}

/// A regular file that may be reused: ours, one link, no extended attributes a new file
/// would not have.
fn reusable_file(path: &Path, m: &std::fs::Metadata, r: &Reference) -> bool {
    m.is_file() && ours(m, r) && m.nlink() == 1 && !has_foreign_xattrs(path)
}

/// Extended attributes other than `security.*` (which the system gives new files too).
fn has_foreign_xattrs(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return true;
    };
    let mut buf = vec![0u8; 1024];
    // SAFETY: `c` is a NUL-terminated path and `buf` is writable for `buf.len()` bytes.
    let n = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        // ENOTSUP: the filesystem has none; anything else (a list too long): not reused.
        return std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOTSUP);
    }
    buf[..n as usize]
        .split(|&b| b == 0)
        .any(|name| !name.is_empty() && !name.starts_with(b"security."))
}

/// Gives a kept directory the mode of a new one (a job may have made it read-only).
fn reset_dir(path: &Path, m: &std::fs::Metadata, r: &Reference) -> io::Result<()> {
    if m.mode() & 0o7777 != r.dir_mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(r.dir_mode))?;
    }
    Ok(())
}

/// Prunes the tree; `Ok(true)` when every directory of the skeleton is still there.
fn prune_job_dir(
    tree: &JobTree,
    bind: bool,
    layout: &Layout,
    git_layout: Option<&git::GitLayout>,
    r: &Reference,
) -> io::Result<bool> {
    let m = std::fs::symlink_metadata(&tree.job_dir)?;
    if !m.is_dir() || !ours(&m, r) {
        return Err(io::Error::other("not a job directory of ours"));
    }
    reset_dir(&tree.job_dir, &m, r)?;
    let (mut temp_complete, mut workspace_dirs, mut home) = (false, None, false);
    let mut git_dirs = None;
    for e in std::fs::read_dir(&tree.job_dir)? {
        let e = e?;
        let path = e.path();
        let m = e.metadata()?;
        if path == tree.temp && m.is_dir() && ours(&m, r) {
            reset_dir(&path, &m, r)?;
            temp_complete = prune_temp(&path, r)?;
        } else if !bind && path == tree.workspace && m.is_dir() && ours(&m, r) {
            reset_dir(&path, &m, r)?;
            let git = git_layout.map(|l| (l, &tree.git, &mut git_dirs));
            workspace_dirs = Some(prune_workspace(&path, Path::new(""), layout, git, r)?);
        } else if git_layout.is_some()
            && e.file_name() == git::HOME_DIR
            && m.is_dir()
            && ours(&m, r)
        {
            reset_dir(&path, &m, r)?;
            git::prune_home(&path, &tree.git, r)?;
            home = true;
        } else {
            remove_any(&path)?;
        }
    }
    let git_complete = git_layout.is_none_or(|l| home && git_dirs == Some(l.dir_count()));
    Ok(temp_complete && (bind || (workspace_dirs == Some(layout.dirs.len()) && git_complete)))
}

/// Keeps `_github_workflow/event.json` and an empty `_runner_file_commands`; `Ok(true)`
/// when both directories are there.
fn prune_temp(temp: &Path, r: &Reference) -> io::Result<bool> {
    let mut kept = 0;
    for e in std::fs::read_dir(temp)? {
        let e = e?;
        let name = e.file_name();
        let path = e.path();
        let m = e.metadata()?;
        let keep_dir = m.is_dir() && ours(&m, r);
        if keep_dir && name == WORKFLOW_DIR {
            kept += 1;
            reset_dir(&path, &m, r)?;
            for f in std::fs::read_dir(&path)? {
                let f = f?;
                let fm = f.metadata()?;
                if f.file_name() != EVENT_FILE || !reusable_file(&f.path(), &fm, r) {
                    remove_any(&f.path())?;
                } else if fm.mode() & 0o200 == 0 {
                    // The next job rewrites it in place.
                    std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o644))?;
                }
            }
        } else if keep_dir && name == crate::envfile::FILE_COMMANDS_DIR {
            kept += 1;
            reset_dir(&path, &m, r)?;
            for f in std::fs::read_dir(&path)? {
                remove_any(&f?.path())?;
            }
        } else {
            remove_any(&path)?;
        }
    }
    Ok(kept == 2)
}

/// The run's git layout, the tree's stamps of its files, and where to count the
/// directories kept in `.git` (given for the top of the workspace only).
type GitPrune<'a> = (
    &'a git::GitLayout,
    &'a git::GitStamps,
    &'a mut Option<usize>,
);

/// Keeps the directories and regular files the snapshot lists (see the module comment) and,
/// with `git`, what the run's `.git` holds; returns how many directories below `dir` it kept
/// (those of `.git` are counted apart).
fn prune_workspace(
    dir: &Path,
    rel: &Path,
    layout: &Layout,
    mut git: Option<GitPrune<'_>>,
    r: &Reference,
) -> io::Result<usize> {
    let mut dirs = 0;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let path = e.path();
        let rel = rel.join(e.file_name());
        let m = e.metadata()?;
        if let Some((git_layout, stamps, git_dirs)) = git.as_mut()
            && rel == Path::new(".git")
            && m.is_dir()
            && ours(&m, r)
        {
            reset_dir(&path, &m, r)?;
            **git_dirs = Some(git::prune_git(&path, Path::new(""), git_layout, stamps, r)?);
        } else if m.is_dir() && ours(&m, r) && layout.dirs.contains(&rel) {
            reset_dir(&path, &m, r)?;
            dirs += 1 + prune_workspace(&path, &rel, layout, None, r)?;
        } else if layout.files.contains(&rel) && reusable_file(&path, &m, r) {
            if m.mode() & 0o200 == 0 {
                // Copying over it opens it for writing; the copy sets the listed mode.
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            }
        } else {
            remove_any(&path)?;
        }
    }
    Ok(dirs)
}

#[cfg(test)]
mod tests;
