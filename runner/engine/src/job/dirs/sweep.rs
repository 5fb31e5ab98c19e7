//! Ownership of a run's work directory (`.gantry/work/<run>/`), and the sweep of what dead
//! runs left. A run's work root is created owner-only (0700: step scripts and file-command
//! files may hold secrets) and holds [`OWNER_FILE`], the creating process
//! ([`ProcessOwner::to_record`]). A run that ends normally deletes its work root; one that
//! keeps it (`--keep-work`, `--bind`) deletes the owner file, so the tree stays. When a run
//! starts, every sibling work root whose owner file names a provably dead process (same
//! host and PID namespace, no process with that pid and start time) is deleted: the crash
//! and `kill -9` leftovers. A root without an owner file, or with an owner that may be
//! alive elsewhere, is left alone.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::backend::owner::{OwnerState, ProcessOwner};

/// The owner record inside a run's work root.
pub const OWNER_FILE: &str = ".owner";

/// What [`claim`] did.
#[derive(Debug, Clone, Copy)]
pub struct Claimed {
    /// Work roots of dead runs deleted.
    pub swept: usize,
    /// The mode a new directory gets here (the umask applied), read off the work root
    /// before it was narrowed to 0700.
    pub new_dir_mode: u32,
}

/// Deletes the work roots beside `work_root` that provably dead runs left, then creates
/// `work_root` (0700) with this process's owner record.
pub fn claim(work_root: &Path) -> io::Result<Claimed> {
    let swept = work_root.parent().map_or(0, |p| sweep(p, Some(work_root)));
    if let Some(parent) = work_root.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::create_dir(work_root) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let new_dir_mode = std::fs::metadata(work_root)?.permissions().mode() & 0o7777;
    // Owner-only: the job trees below hold scripts and file-command files.
    std::fs::set_permissions(work_root, std::fs::Permissions::from_mode(0o700))?;
    std::fs::write(
        work_root.join(OWNER_FILE),
        ProcessOwner::current().to_record(),
    )?;
    Ok(Claimed {
        swept,
        new_dir_mode,
    })
}

/// The work root is kept on purpose (`--keep-work`, `--bind`): never sweep it.
pub fn keep(work_root: &Path) {
    let _ = std::fs::remove_file(work_root.join(OWNER_FILE));
}

/// Deletes the run work roots under `work_dir` (`.gantry/work`) that provably dead runs
/// left (`gantry prune`). Returns how many.
pub fn sweep_dead_runs(work_dir: &Path) -> usize {
    sweep(work_dir, None)
}

/// Deletes the subdirectories of `parent` (except `ours`) whose owner is provably gone.
fn sweep(parent: &Path, ours: Option<&Path>) -> usize {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return 0;
    };
    let mut swept = 0;
    for e in entries.flatten() {
        let dir = e.path();
        if Some(dir.as_path()) == ours || !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Ok(record) = std::fs::read_to_string(dir.join(OWNER_FILE)) else {
            continue;
        };
        if ProcessOwner::judge_record(&record) == OwnerState::Gone {
            make_writable(&dir);
            if std::fs::remove_dir_all(&dir).is_ok() {
                swept += 1;
            }
        }
    }
    swept
}

/// A step may have left read-only directories behind (`chmod -w`), which `remove_dir_all`
/// cannot empty: give every directory its owner's write bit back first.
fn make_writable(dir: &Path) {
    let Ok(m) = std::fs::symlink_metadata(dir) else {
        return;
    };
    if !m.is_dir() {
        return;
    }
    if m.permissions().mode() & 0o700 != 0o700 {
        let _ = std::fs::set_permissions(
            dir,
            std::fs::Permissions::from_mode(m.permissions().mode() | 0o700),
        );
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            make_writable(&e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn dead_runs_are_swept_live_and_unowned_ones_stay() {
        let t = tempfile::tempdir().unwrap();
        let work = t.path().join("work");
        let me = ProcessOwner::current();
        // A dead owner: a child process that has exited (its pid and start time are gone).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = child.id();
        let dead_start = crate::backend::owner::process_start_time(dead_pid).unwrap_or(1);
        child.wait().unwrap();
        let dead = ProcessOwner {
            pid: dead_pid,
            start_time: dead_start,
            ..me.clone()
        };
        let parent = std::os::unix::process::parent_id();
        let alive = ProcessOwner {
            pid: parent,
            start_time: crate::backend::owner::process_start_time(parent).unwrap(),
            ..me.clone()
        };
        let elsewhere = ProcessOwner {
            host_id: "another-machine".into(),
            ..dead.clone()
        };
        for (name, owner) in [
            ("1", Some(&dead)),
            ("2", Some(&alive)),
            ("3", Some(&elsewhere)),
            ("4", None),
        ] {
            let d = work.join(name);
            std::fs::create_dir_all(d.join("job/_temp/ro")).unwrap();
            std::fs::write(d.join("job/_temp/ro/x.sh"), "echo secret").unwrap();
            std::fs::set_permissions(
                d.join("job/_temp/ro"),
                std::fs::Permissions::from_mode(0o500),
            )
            .unwrap();
            if let Some(o) = owner {
                std::fs::write(d.join(OWNER_FILE), o.to_record()).unwrap();
            }
        }
        let claimed = claim(&work.join("5")).unwrap();
        assert_eq!(claimed.swept, 1);
        assert!(!work.join("1").exists(), "a dead run's work dir was kept");
        for kept in ["2", "3", "4"] {
            assert!(work.join(kept).exists(), "run {kept} was swept");
        }
        let m = std::fs::metadata(work.join("5")).unwrap();
        assert_eq!(m.mode() & 0o777, 0o700);
        let record = std::fs::read_to_string(work.join("5").join(OWNER_FILE)).unwrap();
        assert_eq!(ProcessOwner::judge_record(&record), OwnerState::ThisProcess);
        keep(&work.join("5"));
        assert!(!work.join("5").join(OWNER_FILE).exists());
        for name in ["2", "3", "4"] {
            let _ = std::fs::set_permissions(
                work.join(name).join("job/_temp/ro"),
                std::fs::Permissions::from_mode(0o700),
            );
        }
    }
}
