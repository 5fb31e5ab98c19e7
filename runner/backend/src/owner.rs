//! Who created a resource, precisely enough to tell later whether that creator is provably
//! gone. Docker containers, networks and volumes, and run work directories, record the
//! creating process as (host id, PID namespace, pid, process start time). A resource is
//! *abandoned* only when all of these point at this machine and namespace and no process
//! with that pid and start time exists. Anything else — another host sharing the daemon,
//! another PID namespace (a container running gantry), missing labels of an older version —
//! is not provably dead and is left alone: a PID that is not visible here says nothing.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The identity of one gantry process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessOwner {
    /// `/etc/machine-id`, or an id generated once and kept in the user's state directory.
    pub host_id: String,
    /// Inode of `/proc/self/ns/pid` (0 when unreadable, which makes nothing provably dead).
    pub pid_ns: u64,
    pub pid: u32,
    /// Start time of the process in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
    pub start_time: u64,
}

/// What is known about the creator of a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    /// This very process.
    ThisProcess,
    /// Same host and namespace, and that process is still running.
    Alive,
    /// Same host and namespace, and no process with that pid and start time exists.
    Gone,
    /// Another host or namespace, or incomplete records: cannot be decided from here.
    Unknown,
}

impl ProcessOwner {
    /// This process (computed once).
    pub fn current() -> &'static ProcessOwner {
        static CURRENT: OnceLock<ProcessOwner> = OnceLock::new();
        CURRENT.get_or_init(|| {
            let pid = std::process::id();
            ProcessOwner {
                host_id: host_id(),
                pid_ns: pid_namespace(),
                pid,
                start_time: process_start_time(pid).unwrap_or(0),
            }
        })
    }

    /// Judge a recorded owner (any field may be missing) from this process's point of view.
    pub fn judge(
        host_id: Option<&str>,
        pid_ns: Option<u64>,
        pid: Option<u32>,
        start_time: Option<u64>,
    ) -> OwnerState {
        let me = Self::current();
        let (Some(host), Some(ns), Some(pid), Some(start)) = (host_id, pid_ns, pid, start_time)
        else {
            return OwnerState::Unknown;
        };
        if host != me.host_id || ns == 0 || ns != me.pid_ns {
            return OwnerState::Unknown;
        }
        if pid == me.pid && start == me.start_time {
            return OwnerState::ThisProcess;
        }
        match process_start_time(pid) {
            Some(t) if t == start => OwnerState::Alive,
            // No such process, or the pid now belongs to a later process.
            _ => OwnerState::Gone,
        }
    }

    /// `key=value` lines, for an owner file.
    pub fn to_record(&self) -> String {
        format!(
            "host={}\npidns={}\npid={}\nstart={}\n",
            self.host_id, self.pid_ns, self.pid, self.start_time
        )
    }

    /// The judgement of an owner file written by [`ProcessOwner::to_record`].
    pub fn judge_record(text: &str) -> OwnerState {
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
                .map(str::trim)
        };
        Self::judge(
            get("host"),
            get("pidns").and_then(|v| v.parse().ok()),
            get("pid").and_then(|v| v.parse().ok()),
            get("start").and_then(|v| v.parse().ok()),
        )
    }
}

/// The start time of a process (clock ticks since boot), `None` when there is no such process.
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields restart after the
    // last ')'. Field 22 is the 20th after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn pid_namespace() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid")
        .map(|m| m.ino())
        .unwrap_or(0)
}

/// `/etc/machine-id` when it has one; else an id generated once and kept in
/// `$XDG_STATE_HOME/gantry/host-id` (or `~/.local/state/gantry/host-id`).
fn host_id() -> String {
    for p in ["/etc/machine-id", "/var/lib/dbus/machine-id"] {
        if let Ok(s) = std::fs::read_to_string(p) {
            let s = s.trim();
            if !s.is_empty() {
                return s.to_string();
            }
        }
    }
    let Some(dir) = state_dir() else {
        // Nowhere to keep one: a fresh id per process makes every record of this host
        // "another host", so nothing is ever judged dead by mistake.
        return format!("ephemeral-{}", uuid::Uuid::new_v4().simple());
    };
    let file = dir.join("host-id");
    if let Ok(s) = std::fs::read_to_string(&file) {
        let s = s.trim();
        if !s.is_empty() {
            return s.to_string();
        }
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let _ = std::fs::create_dir_all(&dir);
    // Two processes racing: the first writer wins, and both read its id back.
    let tmp = dir.join(format!("host-id.{}", std::process::id()));
    if std::fs::write(&tmp, &id).is_ok() {
        let _ = std::fs::hard_link(&tmp, &file);
        let _ = std::fs::remove_file(&tmp);
    }
    std::fs::read_to_string(&file)
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or(id)
}

fn state_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return Some(Path::new(&d).join("gantry"));
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(Path::new(&home).join(".local/state/gantry"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_and_a_live_parent_are_alive_a_dead_pid_is_gone() {
        let me = ProcessOwner::current();
        assert!(me.start_time > 0 && me.pid_ns > 0 && !me.host_id.is_empty());
        let judge = |pid: u32, start: u64| {
            ProcessOwner::judge(Some(&me.host_id), Some(me.pid_ns), Some(pid), Some(start))
        };
        assert_eq!(judge(me.pid, me.start_time), OwnerState::ThisProcess);
        let parent = std::os::unix::process::parent_id();
        let parent_start = process_start_time(parent).unwrap();
        assert_eq!(judge(parent, parent_start), OwnerState::Alive);
        // The parent's pid with another start time: the pid was reused, the owner is gone.
        assert_eq!(judge(parent, parent_start + 1), OwnerState::Gone);
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert_eq!(judge(pid, 1), OwnerState::Gone);
    }

    #[test]
    fn other_hosts_namespaces_and_partial_records_are_never_dead() {
        let me = ProcessOwner::current();
        let dead = u32::MAX - 1;
        let other_host = ProcessOwner::judge(Some("other"), Some(me.pid_ns), Some(dead), Some(1));
        assert_eq!(other_host, OwnerState::Unknown);
        let other_ns = ProcessOwner::judge(Some(&me.host_id), Some(1), Some(dead), Some(1));
        assert_eq!(other_ns, OwnerState::Unknown);
        let no_start = ProcessOwner::judge(Some(&me.host_id), Some(me.pid_ns), Some(dead), None);
        assert_eq!(no_start, OwnerState::Unknown);
    }

    #[test]
    fn owner_records_round_trip() {
        let me = ProcessOwner::current();
        assert_eq!(
            ProcessOwner::judge_record(&me.to_record()),
            OwnerState::ThisProcess
        );
        assert_eq!(ProcessOwner::judge_record("pid=1\n"), OwnerState::Unknown);
    }
}
