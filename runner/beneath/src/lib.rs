//! File operations Gantry performs on behalf of a job, confined beneath one directory (the
//! workspace, an action's directory, the repository).
//!
//! A job controls the contents of its workspace, symlinks included, and in a container job
//! it writes them from inside the container while Gantry's built-ins read and write the same
//! files on the host. So every path a job names is resolved here, by the kernel where it can:
//!
//! * [`Root::open`] opens the trusted root directory once (Gantry chose it; it may be a
//!   symlink itself).
//! * Every other call takes a path *relative* to the root. It is cleaned lexically first
//!   ([`clean_relative`]): an absolute path or a `..` that climbs above the root is refused
//!   as [`BeneathError::Outside`] before the disk is touched.
//! * The rest is resolved with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`: a symlink
//!   (or `..` inside a link) that leads out of the root fails with
//!   [`BeneathError::SymlinkOutside`]; symlinks that stay inside are followed. Kernels
//!   without `openat2` (before 5.6, or a seccomp filter that refuses it) get the same rules
//!   from a component-by-component walk with `O_NOFOLLOW` that expands each link itself.
//! * Writes ([`Root::create_file`], [`Root::create_dir_all`]) never write through a symlink:
//!   a link in the final component is replaced by a regular file, and parent directories
//!   resolve beneath the root like reads.
//! * [`Root::walk`] lists a tree without following any symlink; callers decide what a link
//!   means (upload-artifact and cache refuse links that lead outside).

use std::collections::VecDeque;
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

/// Why a path was refused or could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BeneathError {
    /// Absolute, or a `..` that climbs above the root (checked without touching the disk).
    #[error("'{path}' leads outside {root}")]
    Outside { path: String, root: String },
    /// A symlink on the way (or the file itself) leads outside the root.
    #[error("'{path}' is or passes through a symlink leading outside {root}; refused")]
    SymlinkOutside { path: String, root: String },
    #[error("'{path}': {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

impl BeneathError {
    /// The path does not exist (a caller may treat that as "nothing to do").
    pub fn is_not_found(&self) -> bool {
        matches!(self, BeneathError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    /// The path was refused for leaving the root (lexically or through a symlink).
    pub fn is_escape(&self) -> bool {
        !matches!(self, BeneathError::Io { .. })
    }
}

pub type Result<T> = std::result::Result<T, BeneathError>;

/// What a directory entry or a path is, without following a final symlink unless asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File { len: u64, executable: bool },
    Dir,
    Symlink,
    Other,
}

/// One entry of [`Root::walk`]: its path relative to the root and its kind (symlinks are
/// reported, never followed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkEntry {
    pub rel: PathBuf,
    pub kind: Kind,
}

/// A single path component made of `s`, safe for directory and container names: other
/// characters than ASCII letters, digits, `-`, `_` and `.` become `_`, no leading or
/// trailing dots (never `.` or `..`), never empty.
pub fn sanitize(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let out = out.trim_matches('.').to_string();
    if out.is_empty() { "job".into() } else { out }
}

/// Lexically cleans a path relative to a root: drops `.`, resolves `..` against earlier
/// components. `None` when the path is absolute or climbs above the root. `""` is the root.
pub fn clean_relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// A trusted directory that job-named paths are resolved beneath.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
    label: String,
    walk_only: bool,
}

/// 0 = not tried yet, 1 = openat2 works, 2 = unavailable (use the walk).
static OPENAT2: AtomicU8 = AtomicU8::new(0);

fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn os_err(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn openat(dir: RawFd, name: &CString, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    loop {
        // SAFETY: `name` is NUL-terminated; the returned fd is owned by us.
        let r = unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC, mode) };
        if r >= 0 {
            return Ok(unsafe { OwnedFd::from_raw_fd(r) });
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: `st` is plain data filled by the kernel.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st)
}

fn kind_of(st: &libc::stat) -> Kind {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => Kind::File {
            len: st.st_size as u64,
            executable: st.st_mode & 0o111 != 0,
        },
        libc::S_IFDIR => Kind::Dir,
        libc::S_IFLNK => Kind::Symlink,
        _ => Kind::Other,
    }
}

fn readlinkat(dir: RawFd, name: &CString) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: the buffer is as long as we say.
    let n = unsafe { libc::readlinkat(dir, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`; `None` when the kernel lacks it.
fn try_openat2(dir: RawFd, rel: &CString, flags: i32, mode: u32) -> Option<io::Result<OwnedFd>> {
    if OPENAT2.load(Ordering::Relaxed) == 2 {
        return None;
    }
    // SAFETY: open_how is plain data; zero is "no flags".
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    if flags & libc::O_CREAT != 0 {
        how.mode = mode as u64;
    }
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    for _ in 0..64 {
        // SAFETY: pointers are valid for the call; size matches the struct passed.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir,
                rel.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if r >= 0 {
            OPENAT2.store(1, Ordering::Relaxed);
            return Some(Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) }));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            // EAGAIN: a concurrent rename raced the `..` check; try again.
            Some(libc::EINTR | libc::EAGAIN) => continue,
            // Old kernel, or a seccomp profile that refuses unknown syscalls.
            Some(libc::ENOSYS | libc::EPERM) if OPENAT2.load(Ordering::Relaxed) != 1 => {
                OPENAT2.store(2, Ordering::Relaxed);
                return None;
            }
            _ => return Some(Err(e)),
        }
    }
    Some(Err(os_err(libc::EAGAIN)))
}

/// The names to walk through: normal components and `..` (`.` and a leading `/` dropped).
fn walk_parts(p: &Path) -> impl Iterator<Item = OsString> + '_ {
    p.components().filter_map(|c| match c {
        Component::Normal(s) => Some(s.to_os_string()),
        Component::ParentDir => Some(OsString::from("..")),
        _ => None,
    })
}

/// The fallback: one component at a time with `O_NOFOLLOW`, expanding symlinks here and
/// refusing absolute link targets and `..` above the root (what RESOLVE_BENEATH does).
fn walk_open(root: RawFd, rel: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let follow_last = flags & libc::O_NOFOLLOW == 0;
    let mut pending: VecDeque<OsString> = walk_parts(rel).collect();
    // Directories entered below the root, innermost last (`..` pops).
    let mut stack: Vec<OwnedFd> = Vec::new();
    let mut links = 0;
    let dot = CString::new(".").expect("no NUL");
    if pending.is_empty() {
        return openat(root, &dot, flags, mode);
    }
    while let Some(name) = pending.pop_front() {
        let cur = stack.last().map(|f| f.as_raw_fd()).unwrap_or(root);
        let last = pending.is_empty();
        if name == ".." {
            if stack.pop().is_none() {
                return Err(os_err(libc::EXDEV));
            }
            if last {
                let cur = stack.last().map(|f| f.as_raw_fd()).unwrap_or(root);
                return openat(cur, &dot, flags, mode);
            }
            continue;
        }
        let c = cstr(&name)?;
        let fd = match openat(cur, &c, libc::O_PATH | libc::O_NOFOLLOW, 0) {
            Err(e) if last && e.kind() == io::ErrorKind::NotFound && flags & libc::O_CREAT != 0 => {
                return openat(cur, &c, flags | libc::O_NOFOLLOW, mode);
            }
            other => other?,
        };
        let st = fstat(fd.as_raw_fd())?;
        match kind_of(&st) {
            // The kernel decides: ELOOP, or the link itself with O_PATH.
            Kind::Symlink if last && !follow_last => {
                return openat(cur, &c, flags | libc::O_NOFOLLOW, mode);
            }
            Kind::Symlink => {
                links += 1;
                if links > 40 {
                    return Err(os_err(libc::ELOOP));
                }
                let target = readlinkat(cur, &c)?;
                if target.first() == Some(&b'/') {
                    return Err(os_err(libc::EXDEV));
                }
                let target = PathBuf::from(OsString::from_vec(target));
                let mut parts: Vec<OsString> = walk_parts(&target).collect();
                while let Some(p) = parts.pop() {
                    pending.push_front(p);
                }
                if pending.is_empty() {
                    // A link to "." (or to nothing): the directory we are in.
                    return openat(cur, &dot, flags, mode);
                }
            }
            // Not a link now; O_NOFOLLOW refuses it if it is swapped for one meanwhile.
            _ if last => return openat(cur, &c, flags | libc::O_NOFOLLOW, mode),
            Kind::Dir => stack.push(fd),
            _ => return Err(os_err(libc::ENOTDIR)),
        }
    }
    unreachable!("the last component returns")
}

impl Root {
    /// Opens `path` (trusted: chosen by Gantry, followed normally) as a root. `label` names
    /// it in errors ("the workspace").
    pub fn open(path: &Path, label: &str) -> Result<Root> {
        let c = cstr(path.as_os_str()).map_err(|source| BeneathError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let fd =
            openat(libc::AT_FDCWD, &c, libc::O_PATH | libc::O_DIRECTORY, 0).map_err(|source| {
                BeneathError::Io {
                    path: path.display().to_string(),
                    source,
                }
            })?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
            label: label.to_string(),
            walk_only: false,
        })
    }

    /// The same root resolved only by the `O_NOFOLLOW` walk (to test the fallback on
    /// kernels that have `openat2`).
    pub fn with_walk_fallback(mut self) -> Root {
        self.walk_only = true;
        self
    }

    /// The root's path as given to [`Root::open`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    fn clean(&self, rel: &Path) -> Result<PathBuf> {
        clean_relative(rel).ok_or_else(|| BeneathError::Outside {
            path: rel.display().to_string(),
            root: self.label.clone(),
        })
    }

    fn error(&self, rel: &Path, source: io::Error) -> BeneathError {
        let path = rel.display().to_string();
        if source.raw_os_error() == Some(libc::EXDEV) {
            BeneathError::SymlinkOutside {
                path,
                root: self.label.clone(),
            }
        } else {
            BeneathError::Io { path, source }
        }
    }

    /// Opens `rel` (already clean) with `flags`, beneath the root.
    fn open_at(&self, rel: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
        let root = self.fd.as_raw_fd();
        if !self.walk_only {
            let name = if rel.as_os_str().is_empty() {
                OsStr::new(".")
            } else {
                rel.as_os_str()
            };
            if let Some(r) = try_openat2(root, &cstr(name)?, flags, mode) {
                return r;
            }
        }
        walk_open(root, rel, flags, mode)
    }

    /// Opens a file for reading; symlinks are followed only while they stay beneath.
    pub fn open_file(&self, rel: &Path) -> Result<File> {
        let clean = self.clean(rel)?;
        let fd = self
            .open_at(&clean, libc::O_RDONLY, 0)
            .map_err(|e| self.error(rel, e))?;
        Ok(File::from(fd))
    }

    /// Reads a whole file beneath the root.
    pub fn read(&self, rel: &Path) -> Result<Vec<u8>> {
        let mut f = self.open_file(rel)?;
        let mut buf = Vec::new();
        io::Read::read_to_end(&mut f, &mut buf).map_err(|e| self.error(rel, e))?;
        Ok(buf)
    }

    /// What `rel` is. With `follow`, a final symlink is followed (beneath the root only);
    /// without, it is reported as [`Kind::Symlink`].
    pub fn kind(&self, rel: &Path, follow: bool) -> Result<Kind> {
        let clean = self.clean(rel)?;
        let flags = if follow {
            libc::O_PATH
        } else {
            libc::O_PATH | libc::O_NOFOLLOW
        };
        let fd = self
            .open_at(&clean, flags, 0)
            .map_err(|e| self.error(rel, e))?;
        let st = fstat(fd.as_raw_fd()).map_err(|e| self.error(rel, e))?;
        Ok(kind_of(&st))
    }

    /// The entries of a directory (no `.`/`..`), sorted by name bytes; kinds are those of
    /// the entries themselves (links not followed).
    pub fn read_dir(&self, rel: &Path) -> Result<Vec<(OsString, Kind)>> {
        let clean = self.clean(rel)?;
        let fd = self
            .open_at(&clean, libc::O_RDONLY | libc::O_DIRECTORY, 0)
            .map_err(|e| self.error(rel, e))?;
        let dirfd = fd.as_raw_fd();
        // fdopendir takes ownership of its own copy.
        // SAFETY: dup of a valid fd.
        let dup = cvt(unsafe { libc::fcntl(dirfd, libc::F_DUPFD_CLOEXEC, 0) })
            .map_err(|e| self.error(rel, e))?;
        let dir = unsafe { libc::fdopendir(dup) };
        if dir.is_null() {
            let e = io::Error::last_os_error();
            unsafe { libc::close(dup) };
            return Err(self.error(rel, e));
        }
        let mut out = Vec::new();
        loop {
            // SAFETY: `dir` is a valid DIR*; the entry is copied before the next call.
            let ent = unsafe { libc::readdir64(dir) };
            if ent.is_null() {
                break;
            }
            let name = unsafe { std::ffi::CStr::from_ptr((*ent).d_name.as_ptr()) };
            let bytes = name.to_bytes();
            if bytes == b"." || bytes == b".." {
                continue;
            }
            let name = OsString::from_vec(bytes.to_vec());
            let Ok(c) = cstr(&name) else { continue };
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            if unsafe { libc::fstatat(dirfd, c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } < 0 {
                continue; // removed meanwhile
            }
            out.push((name, kind_of(&st)));
        }
        unsafe { libc::closedir(dir) };
        out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        Ok(out)
    }

    /// Every entry under the directory `rel`, depth first in name order, without following
    /// symlinks (a link is listed as [`Kind::Symlink`] and not entered). Paths are relative
    /// to the root.
    pub fn walk(&self, rel: &Path) -> Result<Vec<WalkEntry>> {
        let start = self.clean(rel)?;
        let mut out = Vec::new();
        let mut stack = vec![start];
        while let Some(dir) = stack.pop() {
            let entries = self.read_dir(&dir)?;
            let mut subdirs = Vec::new();
            for (name, kind) in entries {
                let p = dir.join(&name);
                if kind == Kind::Dir {
                    subdirs.push(p.clone());
                }
                out.push(WalkEntry { rel: p, kind });
            }
            stack.extend(subdirs.into_iter().rev());
        }
        out.sort_by(|a, b| {
            a.rel
                .as_os_str()
                .as_bytes()
                .cmp(b.rel.as_os_str().as_bytes())
        });
        Ok(out)
    }

    /// Creates `rel` and its missing parents as directories beneath the root.
    pub fn create_dir_all(&self, rel: &Path) -> Result<()> {
        self.dir_fd_create(rel).map(drop)
    }

    fn dir_fd_create(&self, rel: &Path) -> Result<OwnedFd> {
        let clean = self.clean(rel)?;
        let flags = libc::O_PATH | libc::O_DIRECTORY;
        let mut cur = self
            .open_at(Path::new(""), flags, 0)
            .map_err(|e| self.error(rel, e))?;
        let mut prefix = PathBuf::new();
        for c in clean.components() {
            prefix.push(c);
            cur = match self.open_at(&prefix, flags, 0) {
                Ok(fd) => fd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let name = cstr(c.as_os_str()).map_err(|e| self.error(rel, e))?;
                    // SAFETY: valid dir fd and NUL-terminated name.
                    let r = unsafe { libc::mkdirat(cur.as_raw_fd(), name.as_ptr(), 0o777) };
                    if r < 0 {
                        let e = io::Error::last_os_error();
                        if e.kind() != io::ErrorKind::AlreadyExists {
                            return Err(self.error(rel, e));
                        }
                    }
                    openat(cur.as_raw_fd(), &name, flags | libc::O_NOFOLLOW, 0)
                        .map_err(|e| self.error(rel, e))?
                }
                Err(e) => return Err(self.error(rel, e)),
            };
        }
        Ok(cur)
    }

    /// Creates (or truncates) a regular file, creating parent directories. Never writes
    /// through a symlink: a link at `rel` is removed and replaced by the new file.
    pub fn create_file(&self, rel: &Path, mode: u32) -> Result<File> {
        let clean = self.clean(rel)?;
        let Some(name) = clean.file_name() else {
            return Err(self.error(rel, os_err(libc::EISDIR)));
        };
        let parent = self.dir_fd_create(clean.parent().unwrap_or(Path::new("")))?;
        let name = cstr(name).map_err(|e| self.error(rel, e))?;
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW;
        // An O_PATH fd serves as the directory of *at calls.
        let dir = parent;
        let fd = match openat(dir.as_raw_fd(), &name, flags, mode) {
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                // SAFETY: valid dir fd and name.
                cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) })
                    .map_err(|e| self.error(rel, e))?;
                openat(dir.as_raw_fd(), &name, flags | libc::O_EXCL, mode)
                    .map_err(|e| self.error(rel, e))?
            }
            other => other.map_err(|e| self.error(rel, e))?,
        };
        Ok(File::from(fd))
    }

    /// Writes `bytes` to `rel` (see [`Root::create_file`]).
    pub fn write(&self, rel: &Path, bytes: &[u8], mode: u32) -> Result<()> {
        let mut f = self.create_file(rel, mode)?;
        io::Write::write_all(&mut f, bytes).map_err(|e| self.error(rel, e))
    }

    /// Copies a file from anywhere Gantry trusts (its own stores) to `rel` beneath the root.
    pub fn copy_in(&self, src: &Path, rel: &Path) -> Result<u64> {
        let mut from = File::open(src).map_err(|source| BeneathError::Io {
            path: src.display().to_string(),
            source,
        })?;
        let mode = from
            .metadata()
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
            .unwrap_or(0o644);
        let mut to = self.create_file(rel, mode)?;
        io::copy(&mut from, &mut to).map_err(|e| self.error(rel, e))
    }

    /// Removes `rel` (a file, a link or a whole directory tree) without following links.
    pub fn remove_all(&self, rel: &Path) -> Result<()> {
        let clean = self.clean(rel)?;
        let (Some(parent), Some(name)) = (clean.parent(), clean.file_name()) else {
            return Err(self.error(rel, os_err(libc::EBUSY)));
        };
        let is_dir = self.kind(&clean, false)? == Kind::Dir;
        if is_dir {
            for (child, _) in self.read_dir(&clean)? {
                self.remove_all(&clean.join(child))?;
            }
        }
        let dir = self
            .open_at(parent, libc::O_PATH | libc::O_DIRECTORY, 0)
            .map_err(|e| self.error(rel, e))?;
        let c = cstr(name).map_err(|e| self.error(rel, e))?;
        let flag = if is_dir { libc::AT_REMOVEDIR } else { 0 };
        // SAFETY: valid dir fd and name.
        cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), flag) })
            .map_err(|e| self.error(rel, e))?;
        Ok(())
    }

    /// Whether `openat2` is in use (false after a fallback to the walk).
    pub fn uses_openat2(&self) -> bool {
        !self.walk_only && OPENAT2.load(Ordering::Relaxed) != 2
    }
}

impl AsRawFd for Root {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl IntoRawFd for Root {
    fn into_raw_fd(self) -> RawFd {
        self.fd.into_raw_fd()
    }
}

#[cfg(test)]
mod tests;
