//! Who waits for an approval: the process of the run, identified well enough that a
//! decision can tell whether anybody still waits (a killed run leaves its request behind,
//! and an approval nobody acts on must not look accepted).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How often a waiting run refreshes its heartbeat.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
/// A heartbeat older than this means the waiter is gone, when its process cannot be
/// looked up (another machine, another PID namespace).
pub const HEARTBEAT_STALE: Duration = Duration::from_secs(60);

/// The waiting process: pid, its start time and the boot and PID namespace it lives in
/// (so a recycled pid or a pid of another machine is never taken for it), and a heartbeat
/// for when it cannot be looked up from here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiter {
    pub pid: u32,
    /// Field 22 of `/proc/<pid>/stat` (clock ticks after boot).
    #[serde(default)]
    pub start_ticks: Option<u64>,
    /// `/proc/sys/kernel/random/boot_id`.
    #[serde(default)]
    pub boot_id: Option<String>,
    /// `/proc/self/ns/pid` (`pid:[4026531836]`).
    #[serde(default)]
    pub pid_ns: Option<String>,
    pub heartbeat: DateTime<Utc>,
}

impl Waiter {
    /// This process.
    pub fn current() -> Self {
        let pid = std::process::id();
        Waiter {
            pid,
            start_ticks: start_ticks(pid),
            boot_id: boot_id(),
            pid_ns: pid_namespace(),
            heartbeat: Utc::now(),
        }
    }

    /// Whether the waiter still runs: looked up by pid and start time when it lives in
    /// this boot and PID namespace, else judged by its heartbeat.
    pub fn is_alive(&self) -> bool {
        let here_boot = boot_id();
        let here_ns = pid_namespace();
        let same_place = here_boot.is_some()
            && self.boot_id == here_boot
            && here_ns.is_some()
            && self.pid_ns == here_ns;
        if same_place {
            return match (start_ticks(self.pid), self.start_ticks) {
                (Some(now), Some(then)) => now == then,
                (Some(_), None) => true,
                (None, _) => false,
            };
        }
        Utc::now()
            .signed_duration_since(self.heartbeat)
            .to_std()
            .ok()
            .is_none_or(|age| age <= HEARTBEAT_STALE)
    }

    /// Whether the heartbeat is due for a refresh.
    pub fn heartbeat_due(&self) -> bool {
        Utc::now()
            .signed_duration_since(self.heartbeat)
            .to_std()
            .is_ok_and(|age| age >= HEARTBEAT_EVERY)
    }
}

/// The start time of a live process (`None` when there is none, or only its zombie).
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count after the last ')'.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn pid_namespace() -> Option<String> {
    std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .map(|p| p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_dead_child_is_not() {
        let me = Waiter::current();
        assert!(me.start_ticks.is_some(), "no /proc start time: {me:?}");
        assert!(me.is_alive());

        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let mut w = Waiter::current();
        w.pid = child.id();
        w.start_ticks = start_ticks(child.id());
        assert!(w.is_alive(), "a running child: {w:?}");
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!w.is_alive(), "a killed child counts as alive: {w:?}");

        // Same pid, other start time: a recycled pid is not the waiter.
        let mut recycled = Waiter::current();
        recycled.start_ticks = recycled.start_ticks.map(|t| t + 1);
        assert!(!recycled.is_alive());
    }

    #[test]
    fn elsewhere_the_heartbeat_decides() {
        let mut w = Waiter::current();
        w.boot_id = Some("another-machine".into());
        w.pid = u32::MAX;
        assert!(w.is_alive(), "a fresh heartbeat");
        w.heartbeat = Utc::now() - chrono::Duration::seconds(HEARTBEAT_STALE.as_secs() as i64 + 5);
        assert!(!w.is_alive(), "a stale heartbeat");
        assert!(w.heartbeat_due());
    }
}
