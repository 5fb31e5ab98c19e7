//! A job's whole process tree on the host, found and killed even when steps escape their
//! process group (`setsid`, double forks, `nohup ... &`).
//!
//! Two mechanisms together:
//! * gantry makes itself the *child subreaper* of its descendants
//!   (`prctl(PR_SET_CHILD_SUBREAPER)`), so an orphaned step process re-parents to gantry
//!   instead of init and stays in gantry's process tree (a `/proc` descendant walk finds it);
//! * every process a job starts carries the job's random cookie in its environment
//!   (`GANTRY_JOB_COOKIE`, inherited by everything it starts), which says which job a
//!   process in the tree belongs to (several jobs run side by side in one gantry).
//!
//! Limits, honestly: a process that re-executes itself with an emptied environment loses
//! the cookie; it stays in gantry's tree and dies at the end of the run
//! ([`kill_all_step_processes`] is called on a forced stop; a normal job end only kills what
//! it can attribute). Where the subreaper cannot be set, the walk covers every process
//! this user can read instead. A cgroup (or PID namespace) per job would close the gap; it
//! needs privileges or a delegated cgroup v2 tree that most machines running gantry lack.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The environment variable that marks a job's processes.
pub const COOKIE_VAR: &str = "GANTRY_JOB_COOKIE";

/// Makes gantry the subreaper of its descendants (once per process). `false` when the
/// kernel refused (then the walk scans every readable process).
pub fn become_subreaper() -> bool {
    static DONE: OnceLock<bool> = OnceLock::new();
    *DONE.get_or_init(|| {
        // SAFETY: prctl with an integer option and argument; no memory is passed.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0 }
    })
}

/// What `/proc/<pid>/stat` says about a process.
#[derive(Debug, Clone, Copy)]
struct ProcInfo {
    ppid: i32,
    pgrp: i32,
    /// Exited, not reaped yet.
    zombie: bool,
}

fn proc_info(pid: i32) -> Option<ProcInfo> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold ')'): state, ppid, pgrp, ...
    let mut f = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = f.next()?;
    Some(ProcInfo {
        zombie: state == "Z" || state == "X",
        ppid: f.next()?.parse().ok()?,
        pgrp: f.next()?.parse().ok()?,
    })
}

/// Every process visible in /proc.
fn process_info_table() -> HashMap<i32, ProcInfo> {
    let mut out = HashMap::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if let Some(info) = proc_info(pid) {
            out.insert(pid, info);
        }
    }
    out
}

/// Reaps the zombies among gantry's children that are step processes' orphans (they
/// re-parented to gantry, the subreaper): not in gantry's own process group (children of
/// `std::process::Command` are, and their owners reap them), and not a process the host
/// backend spawned (its [`super::spawn::Child`] reaps it). Returns how many.
pub fn reap_orphans() -> usize {
    if !become_subreaper() {
        return 0;
    }
    reap_orphans_in(&process_info_table())
}

/// [`reap_orphans`] for the zombies `table` lists (a table read a moment ago: reading
/// /proc is most of a no-op job's end, ~3 syscalls per process on the machine).
fn reap_orphans_in(table: &HashMap<i32, ProcInfo>) -> usize {
    let me = std::process::id() as i32;
    // SAFETY: getpgrp has no arguments and cannot fail.
    let my_group = unsafe { libc::getpgrp() };
    let orphan = |i: &ProcInfo| i.zombie && i.ppid == me && i.pgrp != my_group;
    let candidates: Vec<i32> = table
        .iter()
        .filter(|(_, i)| orphan(i))
        .map(|(&pid, _)| pid)
        .collect();
    if candidates.is_empty() {
        return 0;
    }
    // Held while reaping: a spawn in progress cannot slip in between the check and the wait.
    let spawned = super::spawn::spawned_children();
    let mut reaped = 0;
    for pid in candidates {
        // Checked again under the lock: the table may be older than the last spawn.
        if proc_info(pid).is_some_and(|i| orphan(&i)) && !spawned.contains(pid) {
            let mut status = 0;
            // SAFETY: waitpid on a zombie child of ours that nobody else waits for.
            if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
                reaped += 1;
            }
        }
    }
    reaped
}

/// The descendants of `root` in `table` (not `root` itself).
fn descendants(root: i32, table: &HashMap<i32, i32>) -> HashSet<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for (&pid, &ppid) in table {
        children.entry(ppid).or_default().push(pid);
    }
    let mut out = HashSet::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for &c in children.get(&p).into_iter().flatten() {
            if out.insert(c) {
                todo.push(c);
            }
        }
    }
    out
}

/// Whether the process's environment holds `COOKIE_VAR=<cookie>` (any cookie for `None`).
fn carries_cookie(pid: i32, cookie: Option<&str>) -> bool {
    let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let prefix = format!("{COOKIE_VAR}=");
    env.split(|b| *b == 0)
        .any(|entry| match entry.strip_prefix(prefix.as_bytes()) {
            Some(value) => cookie.is_none_or(|c| value == c.as_bytes()),
            None => false,
        })
}

/// The processes of a job: those carrying its cookie (any job's for `None`) and their
/// descendants, plus the members of `groups`. Gantry itself is never included. Also the
/// process table read for it.
fn job_processes(cookie: Option<&str>, groups: &[i32]) -> (HashSet<i32>, HashMap<i32, ProcInfo>) {
    let me = std::process::id() as i32;
    let info = process_info_table();
    let table: HashMap<i32, i32> = info.iter().map(|(&pid, i)| (pid, i.ppid)).collect();
    let candidates: Vec<i32> = if become_subreaper() {
        descendants(me, &table).into_iter().collect()
    } else {
        table.keys().copied().filter(|&p| p != me).collect()
    };
    let mut found = HashSet::new();
    for &pid in &candidates {
        // SAFETY: getpgid reads a process's group id; an error (gone) gives -1.
        let in_group = !groups.is_empty() && groups.contains(&unsafe { libc::getpgid(pid) });
        if in_group || carries_cookie(pid, cookie) {
            found.insert(pid);
        }
    }
    let roots: Vec<i32> = found.iter().copied().collect();
    for pid in roots {
        found.extend(descendants(pid, &table));
    }
    found.remove(&me);
    (found, info)
}

/// SIGKILLs a job's processes (see [`job_processes`]) until none is left (a process may
/// fork while it is being killed) or two seconds passed, and reaps those that re-parented
/// to gantry. Returns how many processes were killed.
pub fn kill_job_tree(cookie: Option<&str>, groups: &[i32]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut killed: HashSet<i32> = HashSet::new();
    let table = loop {
        let (procs, table) = job_processes(cookie, groups);
        let procs: Vec<i32> = procs.into_iter().filter(|p| !is_zombie(*p)).collect();
        if procs.is_empty() || Instant::now() >= deadline {
            break table;
        }
        for &pid in &procs {
            // SAFETY: kill(2) on a pid found in this job's tree a moment ago.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed.insert(pid);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // Orphans re-parented to gantry (the subreaper) are its children now: reap them so
    // they do not stay zombies. Direct step processes are reaped by their exec. When
    // nothing was killed, the table just read already shows every zombie there is (one
    // that dies later is reaped by the next call).
    if !killed.is_empty() {
        reap_orphans();
    } else if become_subreaper() {
        reap_orphans_in(&table);
    }
    killed.len()
}

/// Kills every step process of every job of this gantry (a forced stop before exit).
pub fn kill_all_step_processes() -> usize {
    kill_job_tree(None, &[])
}

/// Exited (a zombie) or gone.
fn is_zombie(pid: i32) -> bool {
    proc_info(pid).is_none_or(|i| i.zombie)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    /// An orphan that exited before the job's end is reaped from the table the kill pass
    /// read, although nothing was left to kill. Other tests of this binary run host
    /// processes and reap orphans too (this process is their subreaper): an orphan one of
    /// them reaped before this test saw it as a zombie is replaced by a new one.
    #[test]
    fn a_dead_orphan_is_reaped_when_nothing_is_killed() {
        assert!(become_subreaper());
        let me = std::process::id() as i32;
        for _attempt in 0..20 {
            let out = std::process::Command::new("sh")
                .args(["-c", "sh -c 'exit 0' & echo $!"])
                .process_group(0)
                .output()
                .unwrap();
            let orphan: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut seen = false;
            while Instant::now() < deadline {
                match proc_info(orphan) {
                    Some(i) if i.zombie && i.ppid == me => {
                        seen = true;
                        break;
                    }
                    // Reaped by another test's pass (or never ours): try again.
                    None => break,
                    Some(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            if !seen {
                continue;
            }
            assert_eq!(kill_job_tree(Some("no-job-has-this-cookie"), &[]), 0);
            assert!(
                proc_info(orphan).is_none(),
                "zombie {orphan} was not reaped"
            );
            return;
        }
        panic!("no orphan stayed a zombie of this process long enough to be observed");
    }
}
