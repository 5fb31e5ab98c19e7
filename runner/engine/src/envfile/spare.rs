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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Name of the directory of spares beside the job directories.
pub const SPARE_DIR: &str = "_spare";
/// Most spares of each kind kept per work root.
const MAX_PER_ROOT: usize = 64;
/// Most work roots remembered (older ones are forgotten, their spares deleted with them).
const MAX_ROOTS: usize = 8;

#[derive(Debug)]
struct Root {
    dir: PathBuf,
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

/// The spares of one run, by work root. Owned by the run's shared state
/// (`RunShared::spares`) and reached through each job's [`Leftovers`]; nothing else parks
/// or takes spares.
#[derive(Debug, Default)]
pub struct SparePool {
    roots: Mutex<Vec<Root>>,
}

/// Names of parked spares: unique within the process (pools of concurrent runs may share
/// a work root), and the pid keeps two processes sharing a work root apart. A name
/// counter, not state of a pool.
static SEQ: AtomicU64 = AtomicU64::new(0);

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

impl SparePool {
    fn roots(&self) -> std::sync::MutexGuard<'_, Vec<Root>> {
        self.roots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Parks `file` (a regular file under `runner_temp`, a step's script), blanked first: what
    /// a step wrote (a script with secrets in it) must not outlive the step. The spare keeps
    /// its length in zero bytes; [`SparePool::take`]'s caller writes over it and cuts it to size.
    /// `false` when it was not parked; the caller deletes it then.
    pub fn park(&self, runner_temp: &Path, file: &Path) -> bool {
        dir_for(runner_temp).is_some()
            && blank_regular_file(file)
            && self.park_path(runner_temp, file, false)
    }

    /// Moves a spare file to `dst` (a path that does not exist yet) and opens it for writing,
    /// content unchanged (zero bytes, see [`SparePool::park`]). `None` when there is no usable spare.
    pub fn take(&self, runner_temp: &Path, dst: &Path) -> Option<File> {
        if !self.take_path(runner_temp, dst, false) {
            return None;
        }
        use std::os::unix::fs::OpenOptionsExt;
        match File::options()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(dst)
        {
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
    pub fn park_dir(&self, runner_temp: &Path, dir: &Path, names: &[&str]) -> bool {
        dir_for(runner_temp).is_some()
            && reusable_dir(dir, names)
            && self.park_path(runner_temp, dir, true)
    }

    /// Moves a spare directory to `dst` (a path that does not exist yet). Its files are the
    /// ones it was parked with, empty. `false` when there is no usable spare.
    pub fn take_dir(&self, runner_temp: &Path, dst: &Path) -> bool {
        self.take_path(runner_temp, dst, true)
    }

    /// Moves `from` into the spare directory of `runner_temp` and records it. `false` when it
    /// was not parked (the caller deletes it then).
    fn park_path(&self, runner_temp: &Path, from: &Path, is_dir: bool) -> bool {
        let Some(dir) = dir_for(runner_temp) else {
            return false;
        };
        {
            let mut pool = self.roots();
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
        let mut pool = self.roots();
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
    fn take_path(&self, runner_temp: &Path, dst: &Path, is_dir: bool) -> bool {
        let Some(dir) = dir_for(runner_temp) else {
            return false;
        };
        loop {
            let candidate = {
                let mut pool = self.roots();
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
                    let mut pool = self.roots();
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
}

/// Whether `dir` holds exactly the regular files `names`, each emptied now.
fn reusable_dir(dir: &Path, names: &[&str]) -> bool {
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
    count == names.len() && names.iter().all(|n| empty_regular_file(&dir.join(n)))
}

/// What a finished step leaves behind: its file-command directory and its script. They are
/// recycled once the next step's process has started, so the checks and renames run while
/// that process runs instead of between two processes. When another `run:` step of the job
/// follows, they are renamed in place (same directory) to fresh names for it, emptied and
/// blanked as a parked spare is; otherwise they are parked for any later step of the run.
/// Whatever is left when the job's runner is dropped is parked then.
///
/// A renamed-ahead directory or script sits in `RUNNER_TEMP` while the step before the one
/// it is for runs (empty, under a name no step was given), as GitHub's runner leaves earlier
/// steps' scripts there.
#[derive(Debug)]
pub struct Leftovers {
    state: Mutex<LeftState>,
    /// The run's spares: where leftovers are parked and new files taken from.
    pool: Arc<SparePool>,
}

#[derive(Debug, Default)]
struct LeftState {
    items: Vec<Leftover>,
    /// The step being run is followed by a `run:` step.
    ahead: bool,
    ready_files: Option<super::FileCommandFiles>,
    ready_script: Option<(PathBuf, PathBuf)>,
}

#[derive(Debug)]
enum Leftover {
    Files(super::FileCommandFiles),
    Script { temp: PathBuf, path: PathBuf },
}

impl Leftovers {
    pub fn new(pool: Arc<SparePool>) -> Leftovers {
        Leftovers {
            state: Mutex::default(),
            pool,
        }
    }

    /// The run's spare pool, for the step runner's new scripts and file-command files.
    pub fn pool(&self) -> &SparePool {
        &self.pool
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LeftState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the step about to run is followed by a `run:` step.
    pub fn set_ahead(&self, ahead: bool) {
        self.state().ahead = ahead;
    }

    /// A step's file-command files, already read.
    pub fn files(&self, files: super::FileCommandFiles) {
        self.state().items.push(Leftover::Files(files));
    }

    /// A step's script `path` in the temp directory `temp`.
    pub fn script(&self, temp: &Path, path: PathBuf) {
        self.state().items.push(Leftover::Script {
            temp: temp.to_path_buf(),
            path,
        });
    }

    /// File-command files renamed ahead for this step, if they are still there.
    pub fn take_files(&self) -> Option<super::FileCommandFiles> {
        let files = self.state().ready_files.take()?;
        if std::fs::symlink_metadata(&files.step_dir).is_ok_and(|m| m.is_dir()) {
            Some(files)
        } else {
            // A step deleted it (`rm -rf $RUNNER_TEMP/*`): whatever is left goes.
            let _ = std::fs::remove_dir_all(&files.step_dir);
            None
        }
    }

    /// A blank script renamed ahead for this step (a path in `temp` ending in `extension`).
    /// The caller writes over it and cuts it to size, or makes a new one if it is gone.
    pub fn take_script(&self, temp: &Path, extension: &str) -> Option<PathBuf> {
        let (t, path) = self.state().ready_script.take()?;
        if t == temp && path.to_str().is_some_and(|p| p.ends_with(extension)) {
            Some(path)
        } else {
            crate::shell::Shell::discard_script(&self.pool, &t, &path);
            None
        }
    }

    #[cfg(test)]
    pub(crate) fn ready_dir_for_tests(&self) -> PathBuf {
        self.state().ready_files.as_ref().unwrap().step_dir.clone()
    }

    #[cfg(test)]
    pub(crate) fn ready_script_for_tests(&self) -> PathBuf {
        self.state().ready_script.as_ref().unwrap().1.clone()
    }

    /// Recycles everything left so far: renamed ahead for the next step, or parked.
    pub fn recycle(&self) {
        let (items, ahead) = {
            let mut st = self.state();
            (std::mem::take(&mut st.items), st.ahead)
        };
        for item in items {
            match item {
                Leftover::Files(f) => {
                    if ahead
                        && self.state().ready_files.is_none()
                        && let Some(next) = f.renew()
                    {
                        self.state().ready_files = Some(next);
                        continue;
                    }
                    f.remove(&self.pool);
                }
                Leftover::Script { temp, path } => {
                    if ahead
                        && self.state().ready_script.is_none()
                        && let Some(next) = renew_script(&path)
                    {
                        self.state().ready_script = Some((temp, next));
                        continue;
                    }
                    crate::shell::Shell::discard_script(&self.pool, &temp, &path);
                }
            }
        }
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        self.set_ahead(false);
        self.recycle();
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = st.ready_files.take() {
            f.remove(&self.pool);
        }
        if let Some((temp, path)) = st.ready_script.take() {
            crate::shell::Shell::discard_script(&self.pool, &temp, &path);
        }
    }
}

/// Renews a directory of `names` for another step: emptied and renamed to `new_path` in
/// the same directory. `false` when it cannot be reused (the caller disposes of it).
pub fn renew_dir(dir: &Path, names: &[&str], new_path: &Path) -> bool {
    reusable_dir(dir, names) && std::fs::rename(dir, new_path).is_ok()
}

/// Renews a used script for another step: blanked and renamed to a fresh name with the
/// same extension in the same directory. `None` when it cannot be reused.
fn renew_script(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let ext = name.find('.').map_or("", |i| &name[i..]);
    let next = path.with_file_name(format!("{}{ext}", uuid::Uuid::new_v4()));
    (blank_regular_file(path) && std::fs::rename(path, &next).is_ok()).then_some(next)
}
