//! Spare inodes. Every step needs a fresh script file and a fresh directory of five
//! file-command files; creating and deleting them costs inode allocations and deletions,
//! and on ext4 without a journal every allocation also skips the inodes deleted in the
//! last ~30 s one by one (`recently_deleted`), so steady churn makes each new file slower
//! than the last. Instead, what a step is done with is emptied and renamed into
//! `<work-root>/_spare/`, and renamed back under the next step's fresh name: a rename
//! allocates and frees nothing, and one rename moves a whole file-command directory.
//!
//! Paths, emptiness and content are exactly as with new files: a spare keeps no name a
//! step knows, and nothing a step wrote outlives it (file-command files are emptied, a
//! script is overwritten with zero bytes, and the next script is written over those and cut
//! to size); a directory is parked only when it holds exactly the files it was handed out
//! with. The spares go away with the run's work directory.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Name of the directory of spares beside the job directories.
pub const SPARE_DIR: &str = "_spare";
/// Most spares of each kind kept per work root.
const MAX_PER_ROOT: usize = 64;
/// Most work roots remembered (older ones are forgotten, their spares deleted with them).
const MAX_ROOTS: usize = 8;

struct Root {
    dir: PathBuf,
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

static POOL: Mutex<Vec<Root>> = Mutex::new(Vec::new());
/// Names of parked spares: unique within the process, and the pid keeps two processes
/// sharing a work root apart.
static SEQ: AtomicU64 = AtomicU64::new(0);

fn pool() -> std::sync::MutexGuard<'static, Vec<Root>> {
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

fn spare_name(dir: &Path) -> PathBuf {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("{}-{n}", std::process::id()))
}

/// `<work-root>/_spare` for a job's temp directory `<work-root>/<job>/_temp`; `None`
/// for any other layout (no recycling there).
pub fn dir_for(runner_temp: &Path) -> Option<PathBuf> {
    if runner_temp.file_name()? != "_temp" {
        return None;
    }
    Some(runner_temp.parent()?.parent()?.join(SPARE_DIR))
}

/// Empties `file` if it is a regular file with content. `false` when it is not a regular
/// file or cannot be emptied.
fn empty_regular_file(file: &Path) -> bool {
    match std::fs::symlink_metadata(file) {
        Ok(m) if m.is_file() && m.len() == 0 => true,
        Ok(m) if m.is_file() => File::options()
            .write(true)
            .open(file)
            .and_then(|f| f.set_len(0))
            .is_ok(),
        _ => false,
    }
}

/// Moves `from` into the spare directory of `runner_temp` and records it. `false` when it
/// was not parked (the caller deletes it then).
fn park_path(runner_temp: &Path, from: &Path, is_dir: bool) -> bool {
    let Some(dir) = dir_for(runner_temp) else {
        return false;
    };
    {
        let mut pool = pool();
        match pool.iter().position(|r| r.dir == dir) {
            Some(i) => {
                let list = if is_dir {
                    &pool[i].dirs
                } else {
                    &pool[i].files
                };
                if list.len() >= MAX_PER_ROOT {
                    return false;
                }
            }
            None => {
                if std::fs::create_dir_all(&dir).is_err() {
                    return false;
                }
                if pool.len() >= MAX_ROOTS {
                    pool.remove(0);
                }
                pool.push(Root {
                    dir: dir.clone(),
                    files: Vec::new(),
                    dirs: Vec::new(),
                });
            }
        }
    }
    let dst = spare_name(&dir);
    if std::fs::rename(from, &dst).is_err() {
        return false;
    }
    let mut pool = pool();
    match pool.iter_mut().find(|r| r.dir == dir) {
        Some(r) => {
            if is_dir {
                r.dirs.push(dst);
            } else {
                r.files.push(dst);
            }
        }
        None => {
            // Forgotten meanwhile: delete it ourselves.
            let _ = if is_dir {
                std::fs::remove_dir_all(&dst)
            } else {
                std::fs::remove_file(&dst)
            };
        }
    }
    true
}

/// Moves a spare of the kind asked for to `dst` (a path that does not exist yet). `false`
/// when there is no usable spare.
fn take_path(runner_temp: &Path, dst: &Path, is_dir: bool) -> bool {
    let Some(dir) = dir_for(runner_temp) else {
        return false;
    };
    loop {
        let candidate = {
            let mut pool = pool();
            let Some(r) = pool.iter_mut().find(|r| r.dir == dir) else {
                return false;
            };
            let list = if is_dir { &mut r.dirs } else { &mut r.files };
            match list.pop() {
                Some(c) => c,
                None => return false,
            }
        };
        match std::fs::rename(&candidate, dst) {
            Ok(()) => return true,
            // A spare deleted with its work root meanwhile just fails here: try the next.
            Err(_) if std::fs::symlink_metadata(&candidate).is_err() => {}
            // The destination is the problem (its directory is missing, say): keep the
            // spare for a later step instead of dropping it.
            Err(_) => {
                let mut pool = pool();
                if let Some(r) = pool.iter_mut().find(|r| r.dir == dir) {
                    if is_dir {
                        r.dirs.push(candidate);
                    } else {
                        r.files.push(candidate);
                    }
                }
                return false;
            }
        }
    }
}

/// Overwrites the content of `file` (a regular file) with zero bytes, keeping its length.
/// Unlike truncation this frees no blocks, which matters on filesystems mounted with
/// `discard`, where every freed block is a device discard.
fn blank_regular_file(file: &Path) -> bool {
    use std::os::unix::fs::FileExt;
    match std::fs::symlink_metadata(file) {
        Ok(m) if m.is_file() && m.len() == 0 => true,
        Ok(m) if m.is_file() && m.len() <= MAX_BLANKED => {
            let zeros = vec![0u8; m.len() as usize];
            File::options()
                .write(true)
                .open(file)
                .and_then(|f| f.write_all_at(&zeros, 0))
                .is_ok()
        }
        Ok(m) if m.is_file() => empty_regular_file(file),
        _ => false,
    }
}

/// Largest file blanked in place rather than emptied.
const MAX_BLANKED: u64 = 64 * 1024;

/// Parks `file` (a regular file under `runner_temp`, a step's script), blanked first: what
/// a step wrote (a script with secrets in it) must not outlive the step. The spare keeps
/// its length in zero bytes; [`take`]'s caller writes over it and cuts it to size.
/// `false` when it was not parked; the caller deletes it then.
pub fn park(runner_temp: &Path, file: &Path) -> bool {
    dir_for(runner_temp).is_some()
        && blank_regular_file(file)
        && park_path(runner_temp, file, false)
}

/// Moves a spare file to `dst` (a path that does not exist yet) and opens it for writing,
/// content unchanged (zero bytes, see [`park`]). `None` when there is no usable spare.
pub fn take(runner_temp: &Path, dst: &Path) -> Option<File> {
    if !take_path(runner_temp, dst, false) {
        return None;
    }
    match File::options().write(true).open(dst) {
        Ok(f) => Some(f),
        Err(_) => {
            let _ = std::fs::remove_file(dst);
            None
        }
    }
}

/// Parks the directory `dir` if it holds exactly the regular files `names` (a step may have
/// added, removed or replaced entries: then it is not reused), each emptied. `false` when it
/// was not parked; the caller deletes it then.
pub fn park_dir(runner_temp: &Path, dir: &Path, names: &[&str]) -> bool {
    if dir_for(runner_temp).is_none() {
        return false;
    }
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {}
        _ => return false,
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut count = 0;
    for e in entries {
        let Ok(e) = e else { return false };
        let name = e.file_name();
        if !names.iter().any(|n| name == **n) || !e.file_type().is_ok_and(|t| t.is_file()) {
            return false;
        }
        count += 1;
    }
    count == names.len()
        && names.iter().all(|n| empty_regular_file(&dir.join(n)))
        && park_path(runner_temp, dir, true)
}

/// Moves a spare directory to `dst` (a path that does not exist yet). Its files are the
/// ones it was parked with, empty. `false` when there is no usable spare.
pub fn take_dir(runner_temp: &Path, dst: &Path) -> bool {
    take_path(runner_temp, dst, true)
}

/// What a finished step leaves behind: its file-command directory and its script. They are
/// recycled (parked, or deleted) once the next step's process has started, so the renames
/// and checks run while that process runs instead of between two processes; whatever is
/// left when the job's runner is dropped is recycled then.
#[derive(Debug, Default)]
pub struct Leftovers {
    items: Mutex<Vec<Leftover>>,
}

#[derive(Debug)]
enum Leftover {
    Files(super::FileCommandFiles),
    Script { temp: PathBuf, path: PathBuf },
}

impl Leftovers {
    fn push(&self, item: Leftover) {
        self.items
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(item);
    }

    /// A step's file-command files, already read.
    pub fn files(&self, files: super::FileCommandFiles) {
        self.push(Leftover::Files(files));
    }

    /// A step's script `path` in the temp directory `temp`.
    pub fn script(&self, temp: &Path, path: PathBuf) {
        self.push(Leftover::Script {
            temp: temp.to_path_buf(),
            path,
        });
    }

    /// Parks or deletes everything left so far.
    pub fn recycle(&self) {
        let items = std::mem::take(&mut *self.items.lock().unwrap_or_else(|e| e.into_inner()));
        for item in items {
            match item {
                Leftover::Files(f) => f.remove(),
                Leftover::Script { temp, path } => {
                    crate::shell::Shell::discard_script(&temp, &path)
                }
            }
        }
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        self.recycle();
    }
}
