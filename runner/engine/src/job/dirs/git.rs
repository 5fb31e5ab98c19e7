//! The workspace's own `.git` and `_home/.gitconfig`, kept across recycled trees.
//!
//! Writing the run's [`GitDir`] into every job's workspace and deleting it when the tree was
//! pruned created and deleted ~16 inodes per job (the `.git` directories, its six files,
//! `_home` and its `.gitconfig`): the churn the parent module exists to avoid (every inode
//! allocation on this ext4 walks the recently deleted ones). So they stay with the tree,
//! reset to exactly what a new tree gets:
//! - pruning keeps in `.git` only the directories the run's git directory has and the files
//!   it lists (regular, ours, one link, no extended attributes beyond `security.*`) and
//!   deletes everything else a job added: hooks, loose objects, `objects/info/alternates`,
//!   new packs, refs, reflogs, `info/`, lock files. `_home` keeps only `.gitconfig`;
//! - refreshing gives every listed file the run's bytes and a new file's mode. A file that
//!   looks as it did when it was last known to hold them ([`Stamp`]: inode, size, mode,
//!   links, mtime, ctime; ctime cannot be set by a user) is kept without reading; any other
//!   is compared and written over when it differs.
//!
//! No file is shared between trees (no hard links to one copy of the pack): a job can
//! `chmod` and write any file of its own `.git`, and a file with a second link (one a job
//! made to keep a way in) is deleted rather than reused, so nothing a job does reaches the
//! next job's repository.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{Reference, Stamp, has_foreign_xattrs, ours, remove_any, reset_dir, reusable_file};
use crate::workspace::git::{DIRS, GitDir, HOME_GITCONFIG};

/// The job directory's `HOME` for a container job (`/github/home`).
pub const HOME_DIR: &str = "_home";
const GITCONFIG: &str = ".gitconfig";

/// What a tree's git files looked like when they were last known to hold the run's bytes
/// (`files` in the order of [`GitDir::files`]).
#[derive(Debug, Clone, Default)]
pub(super) struct GitStamps {
    files: Vec<Option<Stamp>>,
    home: Option<Stamp>,
}

/// The layout of the run's git directory (paths relative to `.git`).
pub(super) struct GitLayout {
    dirs: HashSet<PathBuf>,
    /// File → its index in [`GitDir::files`].
    files: HashMap<PathBuf, usize>,
}

impl GitLayout {
    pub(super) fn of(git: &GitDir) -> GitLayout {
        let mut dirs = HashSet::new();
        let mut add_ancestors = |p: &Path| {
            let mut d = Some(p);
            while let Some(x) = d.filter(|x| !x.as_os_str().is_empty()) {
                dirs.insert(x.to_path_buf());
                d = x.parent();
            }
        };
        for d in DIRS {
            add_ancestors(Path::new(d));
        }
        for (f, _) in &git.files {
            add_ancestors(f.parent().unwrap_or(Path::new("")));
        }
        GitLayout {
            dirs,
            files: git
                .files
                .iter()
                .enumerate()
                .map(|(i, (p, _))| (p.clone(), i))
                .collect(),
        }
    }

    /// How many directories a complete `.git` has (itself not counted).
    pub(super) fn dir_count(&self) -> usize {
        self.dirs.len()
    }
}

/// A listed file may stay: it is unchanged since it was stamped (and so still ours, with
/// one link and no foreign attributes), or passes those checks now.
fn keep_file(path: &Path, m: &std::fs::Metadata, stamp: Option<Stamp>, r: &Reference) -> bool {
    (stamp.is_some() && stamp == Some(Stamp::of(m))) || reusable_file(path, m, r)
}

/// Makes a kept file writable, so that refreshing can write over it.
fn writable(path: &Path, m: &std::fs::Metadata) -> io::Result<()> {
    if m.mode() & 0o200 == 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Prunes `<workspace>/.git` (`dir`, at `rel`) to the layout; returns how many directories
/// below `dir` it kept.
pub(super) fn prune_git(
    dir: &Path,
    rel: &Path,
    layout: &GitLayout,
    stamps: &GitStamps,
    r: &Reference,
) -> io::Result<usize> {
    let mut dirs = 0;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let path = e.path();
        let rel = rel.join(e.file_name());
        let m = e.metadata()?;
        if m.is_dir() && ours(&m, r) && layout.dirs.contains(&rel) {
            reset_dir(&path, &m, r)?;
            dirs += 1 + prune_git(&path, &rel, layout, stamps, r)?;
        } else if let Some(&i) = layout.files.get(&rel)
            && keep_file(&path, &m, stamps.files.get(i).copied().flatten(), r)
        {
            writable(&path, &m)?;
        } else {
            remove_any(&path)?;
        }
    }
    Ok(dirs)
}

/// Prunes `_home` to its `.gitconfig`.
pub(super) fn prune_home(home: &Path, stamps: &GitStamps, r: &Reference) -> io::Result<()> {
    for e in std::fs::read_dir(home)? {
        let e = e?;
        let path = e.path();
        let m = e.metadata()?;
        if e.file_name() == GITCONFIG && keep_file(&path, &m, stamps.home, r) {
            writable(&path, &m)?;
        } else {
            remove_any(&path)?;
        }
    }
    Ok(())
}

/// Puts the run's git directory into `<workspace>/.git` and `.gitconfig` into `home`, over
/// what a pruned tree kept (`complete`: every directory is there already).
pub(super) fn refresh(
    git: &GitDir,
    workspace: &Path,
    home: &Path,
    complete: bool,
    stamps: &mut GitStamps,
    r: &Reference,
) -> io::Result<()> {
    let dot_git = workspace.join(".git");
    if !complete {
        match std::fs::symlink_metadata(&dot_git) {
            Ok(m) if !m.is_dir() => remove_any(&dot_git)?,
            _ => {}
        }
        for d in DIRS {
            std::fs::create_dir_all(dot_git.join(d))?;
        }
        std::fs::create_dir_all(home)?;
    }
    stamps.files.resize(git.files.len(), None);
    for ((rel, bytes), stamp) in git.files.iter().zip(stamps.files.iter_mut()) {
        let path = dot_git.join(rel);
        if !complete && let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        *stamp = put(&path, bytes, stamp.take(), r)?;
    }
    stamps.home = put(
        &home.join(GITCONFIG),
        HOME_GITCONFIG.as_bytes(),
        stamps.home.take(),
        r,
    )?;
    Ok(())
}

/// Makes `path` a regular file of ours with one link, `bytes` and a new file's mode; returns
/// its stamp when it can be trusted next time (see [`Stamp::settled`]).
fn put(path: &Path, bytes: &[u8], prev: Option<Stamp>, r: &Reference) -> io::Result<Option<Stamp>> {
    let mode = r.dir_mode & 0o666;
    let m = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return create(path, bytes, mode),
        Err(e) => return Err(e),
    };
    if prev.is_some() && prev == Some(Stamp::of(&m)) {
        return Ok(prev);
    }
    let reusable = m.is_file() && ours(&m, r) && m.nlink() == 1 && m.mode() & 0o200 != 0;
    if !reusable || has_foreign_xattrs(path) {
        remove_any(path)?;
        return create(path, bytes, mode);
    }
    if m.len() == bytes.len() as u64 && same_content(path, bytes)? {
        if m.mode() & 0o7777 != mode {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
            return Ok(None);
        }
        return Ok(Stamp::settled(&m));
    }
    // Written over, then cut to size: truncating to zero first would free every block (a
    // discard on this kind of mount) and make ext4 flush the rewrite on close.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    f.write_all(bytes)?;
    if m.len() > bytes.len() as u64 {
        f.set_len(bytes.len() as u64)?;
    }
    if m.mode() & 0o7777 != mode {
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    Ok(None)
}

fn create(path: &Path, bytes: &[u8], mode: u32) -> io::Result<Option<Stamp>> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.write_all(bytes)?;
    Ok(None)
}

/// Whether the file at `path` holds exactly `bytes` (read in chunks: the pack may be large).
fn same_content(path: &Path, bytes: &[u8]) -> io::Result<bool> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let mut buf = vec![0u8; (bytes.len() + 1).min(64 * 1024)];
    let mut off = 0;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(off == bytes.len());
        }
        if off + n > bytes.len() || buf[..n] != bytes[off..off + n] {
            return Ok(false);
        }
        off += n;
    }
}

#[cfg(test)]
mod tests;
