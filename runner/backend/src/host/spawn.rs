//! Process spawning for the host backend: `posix_spawn` with a prepared environment block.
//!
//! std's `Command` keeps its environment as a map of `OsString`s and, on every spawn,
//! copies it into a second map and then into one `CString` per variable. With the ~80
//! variables of a step that was 40% of Gantry's own instructions on a quiet step (P1 in
//! `docs/benchmarks.md`). Here the step's map becomes one `KEY=VALUE\0…` buffer and its
//! pointer array, built once, and the child is started with the same `posix_spawn` std uses
//! (a vfork-style clone in glibc), then awaited through a pidfd as tokio does.
//!
//! What std does and this keeps: the signal mask is emptied and SIGPIPE (which Rust's
//! runtime ignores, and ignored signals survive `exec`) is reset to default; so are the
//! stop signals, which a background start (nohup, `gantry serve &`) leaves ignored; the working
//! directory is set in the child; every descriptor Rust opens is close-on-exec, so the child
//! gets exactly stdin (`/dev/null`), stdout and stderr. The child leads a new process group.

use std::ffi::{CString, c_char};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use indexmap::IndexMap;
use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;

/// `NAME=value\0` strings and the null-terminated pointer array `execve` takes.
struct CStrArray {
    /// Owns the bytes the pointers point into; never grown after the pointers are taken.
    _bytes: Vec<u8>,
    ptrs: Vec<*const c_char>,
}

impl CStrArray {
    fn build<'a>(items: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + Clone) -> Self {
        let len: usize = items
            .clone()
            .map(|(a, b)| a.len() + b.map_or(0, |b| b.len() + 1) + 1)
            .sum();
        let mut bytes = Vec::with_capacity(len);
        let mut starts = Vec::new();
        for (a, b) in items {
            starts.push(bytes.len());
            bytes.extend_from_slice(a);
            if let Some(b) = b {
                bytes.push(b'=');
                bytes.extend_from_slice(b);
            }
            bytes.push(0);
        }
        debug_assert_eq!(bytes.len(), len);
        let base = bytes.as_ptr();
        let mut ptrs: Vec<*const c_char> = starts
            .iter()
            // SAFETY: every start is an offset inside `bytes`, whose buffer does not move.
            .map(|&s| unsafe { base.add(s) }.cast())
            .collect();
        ptrs.push(std::ptr::null());
        CStrArray {
            _bytes: bytes,
            ptrs,
        }
    }

    fn as_ptr(&self) -> *const *mut c_char {
        self.ptrs.as_ptr().cast()
    }
}

/// A variable `execve` can carry: a name without `=` or NUL, a value without NUL.
pub(super) fn passable(name: &str, value: &str) -> bool {
    !name.is_empty() && !name.contains(['=', '\0']) && !value.contains('\0')
}

/// `/dev/null`, opened once, for every child's stdin.
fn dev_null() -> io::Result<RawFd> {
    static NULL: OnceLock<OwnedFd> = OnceLock::new();
    if let Some(fd) = NULL.get() {
        return Ok(fd.as_raw_fd());
    }
    let f = std::fs::File::open("/dev/null")?;
    Ok(NULL.get_or_init(|| f.into()).as_raw_fd())
}

/// A pipe whose read end is non-blocking (for the reactor) and whose write end, blocking as
/// programs expect, goes to the child. Both ends are close-on-exec.
fn pipe_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: F_SETFL on a descriptor we own; a fresh pipe's read end has no other flags.
    if unsafe { libc::fcntl(r.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((r, w))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// What a [`SpawnSetup`]'s file actions name.
#[derive(PartialEq, Eq)]
struct SetupKey {
    stdout: RawFd,
    stderr: RawFd,
    workdir: CString,
}

/// `posix_spawn`'s attribute and file-action objects, destroyed on every path.
struct SpawnSetup {
    key: SetupKey,
    attr: libc::posix_spawnattr_t,
    actions: libc::posix_spawn_file_actions_t,
}

// SAFETY: the objects own their heap data (glibc's action list and the copied path) and are
// not tied to the thread that made them; a setup is used by one thread at a time.
unsafe impl Send for SpawnSetup {}

/// Setups of recent spawns, reused while the descriptors and directory are the same: the
/// pipe ends get the lowest free numbers, so usually the same ones step after step, and
/// glibc checks every descriptor of an action against the limit (two `getrlimit` calls
/// each).
// Boxed: the objects stay where glibc initialized them.
#[allow(clippy::vec_box)]
static SETUPS: Mutex<Vec<Box<SpawnSetup>>> = Mutex::new(Vec::new());
/// Most setups kept (one per concurrently spawning job is plenty).
const MAX_SETUPS: usize = 8;

impl SpawnSetup {
    fn get(key: SetupKey) -> io::Result<Box<Self>> {
        let mut cache = SETUPS.lock().unwrap_or_else(|e| e.into_inner());
        match cache.iter().position(|s| s.key == key) {
            Some(i) => Ok(cache.swap_remove(i)),
            None => {
                drop(cache);
                Self::new(key)
            }
        }
    }

    fn give_back(self: Box<Self>) {
        let mut cache = SETUPS.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_SETUPS {
            cache.remove(0);
        }
        cache.push(self);
    }

    fn new(key: SetupKey) -> io::Result<Box<Self>> {
        let (workdir, stdout, stderr) = (key.workdir.as_ptr(), key.stdout, key.stderr);
        // SAFETY: zeroed storage is what the init functions expect to overwrite; each object
        // is initialized before use and destroyed in Drop (both inits run first, so Drop
        // never sees an uninitialized object).
        unsafe {
            let mut s: Box<Self> = Box::new(SpawnSetup {
                key,
                attr: std::mem::zeroed(),
                actions: std::mem::zeroed(),
            });
            check(libc::posix_spawnattr_init(&mut s.attr))?;
            if let Err(e) = check(libc::posix_spawn_file_actions_init(&mut s.actions)) {
                libc::posix_spawnattr_destroy(&mut s.attr);
                return Err(e);
            }
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            let mut default: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut default);
            // SIGPIPE: ignored by Rust's runtime. The stop signals: ignored in a process
            // started in the background by a non-interactive shell (nohup, `cmd &`), and a
            // shell cannot trap a signal ignored on entry, so a step would never see the
            // SIGINT that cancellation sends first.
            for sig in [
                libc::SIGPIPE,
                libc::SIGINT,
                libc::SIGQUIT,
                libc::SIGTERM,
                libc::SIGHUP,
            ] {
                libc::sigaddset(&mut default, sig);
            }
            let flags = libc::POSIX_SPAWN_SETPGROUP
                | libc::POSIX_SPAWN_SETSIGMASK
                | libc::POSIX_SPAWN_SETSIGDEF;
            check(libc::posix_spawnattr_setflags(&mut s.attr, flags as _))?;
            check(libc::posix_spawnattr_setpgroup(&mut s.attr, 0))?;
            check(libc::posix_spawnattr_setsigmask(&mut s.attr, &empty))?;
            check(libc::posix_spawnattr_setsigdefault(&mut s.attr, &default))?;
            let a = &mut s.actions;
            check(libc::posix_spawn_file_actions_adddup2(a, dev_null()?, 0))?;
            check(libc::posix_spawn_file_actions_adddup2(a, stdout, 1))?;
            check(libc::posix_spawn_file_actions_adddup2(a, stderr, 2))?;
            check(libc::posix_spawn_file_actions_addchdir_np(a, workdir))?;
            Ok(s)
        }
    }
}

impl Drop for SpawnSetup {
    fn drop(&mut self) {
        // SAFETY: both objects were initialized in `new`.
        unsafe {
            libc::posix_spawn_file_actions_destroy(&mut self.actions);
            libc::posix_spawnattr_destroy(&mut self.attr);
        }
    }
}

/// A started process with its output pipes.
pub(super) struct Spawned {
    pub child: Child,
    pub stdout: pipe::Receiver,
    pub stderr: pipe::Receiver,
}

/// Starts `program` (a path, not searched on PATH) with `argv` (`argv[0]` included) and
/// exactly the passable variables of `env`, in `workdir`, leading a new process group.
pub(super) fn spawn(
    program: &Path,
    argv: &[String],
    env: &IndexMap<String, String>,
    workdir: &Path,
) -> io::Result<Spawned> {
    let nul = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} holds a NUL byte"),
        )
    };
    let program =
        CString::new(program.as_os_str().as_bytes()).map_err(|_| nul("the program path"))?;
    let workdir =
        CString::new(workdir.as_os_str().as_bytes()).map_err(|_| nul("the working directory"))?;
    if argv.iter().any(|a| a.contains('\0')) {
        return Err(nul("an argument"));
    }
    let args = CStrArray::build(argv.iter().map(|a| (a.as_bytes(), None)));
    let envp = CStrArray::build(
        env.iter()
            .filter(|(k, v)| passable(k, v))
            .map(|(k, v)| (k.as_bytes(), Some(v.as_bytes()))),
    );
    let (out_r, out_w) = pipe_pair()?;
    let (err_r, err_w) = pipe_pair()?;
    let setup = SpawnSetup::get(SetupKey {
        stdout: out_w.as_raw_fd(),
        stderr: err_w.as_raw_fd(),
        workdir,
    })?;
    let mut pid: libc::pid_t = 0;
    // Held across the spawn so that the orphan reaper never sees this child unregistered.
    let mut spawned = spawned_children();
    // SAFETY: every pointer is valid for the call: the C strings and arrays above outlive
    // it, and the arrays are null-terminated.
    check(unsafe {
        libc::posix_spawn(
            &mut pid,
            program.as_ptr(),
            &setup.actions,
            &setup.attr,
            args.as_ptr(),
            envp.as_ptr(),
        )
    })?;
    spawned.insert(pid);
    drop(spawned);
    setup.give_back();
    // The child holds its own copies now; closing ours lets EOF arrive when it is done.
    drop((out_w, err_w));
    let child = Child::new(pid);
    Ok(Spawned {
        child,
        stdout: pipe::Receiver::from_owned_fd_unchecked(out_r)?,
        stderr: pipe::Receiver::from_owned_fd_unchecked(err_r)?,
    })
}

/// A child process, reaped by [`Child::wait`] or, if dropped before that, in the background.
pub(super) struct Child {
    pid: libc::pid_t,
    /// Readable once the process exited; `None` where pidfds are unavailable (kernels
    /// before 5.3, some seccomp profiles), and then a thread waits instead.
    pidfd: Option<AsyncFd<OwnedFd>>,
    waiter: Option<tokio::task::JoinHandle<io::Result<std::process::ExitStatus>>>,
    status: Option<std::process::ExitStatus>,
}

impl Child {
    fn new(pid: libc::pid_t) -> Child {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1. The
        // pid cannot have been reused: it is our unreaped child.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, libc::PIDFD_NONBLOCK) };
        let pidfd = (fd >= 0)
            // SAFETY: a descriptor pidfd_open just returned, owned by nobody else.
            .then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
            // SAFETY: the OwnedFd keeps the descriptor open, unchanged, for the AsyncFd's life.
            .and_then(|fd| unsafe {
                AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE).ok()
            });
        let waiter = pidfd
            .is_none()
            .then(|| tokio::task::spawn_blocking(move || wait_blocking(pid)));
        Child {
            pid,
            pidfd,
            waiter,
            status: None,
        }
    }

    pub fn id(&self) -> i32 {
        self.pid
    }

    /// Reaps the process if it has exited, without waiting. Where a thread waits for it
    /// (no pidfd) this is always `None`: that thread reaps it.
    pub fn try_wait(&mut self) -> io::Result<Option<std::process::ExitStatus>> {
        if self.status.is_none() && self.pidfd.is_some() {
            self.status = try_reap(self.pid)?;
        }
        Ok(self.status)
    }

    /// Waits for the process to exit and reaps it. Cancel-safe.
    pub async fn wait(&mut self) -> io::Result<std::process::ExitStatus> {
        if let Some(s) = self.status {
            return Ok(s);
        }
        let status = if let Some(fd) = &self.pidfd {
            loop {
                let mut guard = fd.readable().await?;
                match try_reap(self.pid)? {
                    Some(s) => break s,
                    None => guard.clear_ready(),
                }
            }
        } else if let Some(w) = &mut self.waiter {
            let s = w.await.map_err(io::Error::other)??;
            self.waiter = None;
            s
        } else {
            return Err(io::Error::other("the process was already reaped"));
        };
        self.status = Some(status);
        Ok(status)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.status.is_some() || self.waiter.is_some() {
            // Reaped, or a blocking waiter reaps it.
            return;
        }
        if let Ok(Some(_)) = try_reap(self.pid) {
            return;
        }
        // Still running (the caller has signalled it): reap it when it ends, so that it
        // does not stay a zombie.
        let pid = self.pid;
        let _ = std::thread::Builder::new()
            .name("gantry-reap".into())
            .spawn(move || wait_blocking(pid));
    }
}

/// Pids of the processes [`spawn`] started and nobody has reaped yet. The orphan reaper
/// ([`super::tree::reap_orphans`]) leaves these to their [`Child`].
static SPAWNED: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());

pub(super) struct SpawnedChildren(std::sync::MutexGuard<'static, Vec<libc::pid_t>>);

impl SpawnedChildren {
    pub fn contains(&self, pid: libc::pid_t) -> bool {
        self.0.contains(&pid)
    }

    fn insert(&mut self, pid: libc::pid_t) {
        self.0.push(pid);
    }
}

/// The registry of unreaped spawned children, locked (spawns wait while it is held).
pub(super) fn spawned_children() -> SpawnedChildren {
    SpawnedChildren(SPAWNED.lock().unwrap_or_else(|e| e.into_inner()))
}

fn forget_spawned(pid: libc::pid_t) {
    spawned_children().0.retain(|&p| p != pid);
}

fn try_reap(pid: libc::pid_t) -> io::Result<Option<std::process::ExitStatus>> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid on our own child, writing to a local.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            forget_spawned(pid);
            return Ok(Some(std::process::ExitStatus::from_raw(status)));
        }
        if r == 0 {
            return Ok(None);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn wait_blocking(pid: libc::pid_t) -> io::Result<std::process::ExitStatus> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid on our own child, writing to a local.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            forget_spawned(pid);
            return Ok(std::process::ExitStatus::from_raw(status));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn run(argv: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let env: IndexMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut s = spawn(Path::new("/bin/sh"), &argv, &env, Path::new("/tmp")).unwrap();
        let (mut out, mut err) = (String::new(), String::new());
        s.stdout.read_to_string(&mut out).await.unwrap();
        s.stderr.read_to_string(&mut err).await.unwrap();
        let code = s.child.wait().await.unwrap().code().unwrap_or(-1);
        (code, out, err)
    }

    #[tokio::test]
    async fn exact_environment_workdir_and_exit_code() {
        let (code, out, err) = run(
            &[
                "sh",
                "-c",
                "echo \"$A|$B|$(pwd)|$0\"; env | sort; echo e >&2; exit 3",
            ],
            &[
                ("A", "1"),
                ("B", "two words"),
                ("BAD=NAME", "x"),
                ("NUL", "a\0b"),
            ],
        )
        .await;
        assert_eq!(code, 3);
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("1|two words|/tmp|sh"));
        let vars: Vec<&str> = lines
            .filter(|l| !l.starts_with("PWD=") && !l.starts_with("SHLVL=") && !l.starts_with("_="))
            .collect();
        assert_eq!(vars, ["A=1", "B=two words"]);
        assert_eq!(err, "e\n");
    }

    /// The `SigIgn` mask of a `grep SigIgn /proc/self/status` line that starts `out`.
    fn ignored_signals(out: &str) -> u64 {
        let line = out.lines().next().unwrap();
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    }

    #[tokio::test]
    async fn child_gets_default_sigpipe_and_no_stdin() {
        // Rust ignores SIGPIPE; a child must not inherit that (`yes | head` would spin).
        let (code, out, _) = run(
            &["sh", "-c", "grep SigIgn /proc/self/status; cat; echo end"],
            &[],
        )
        .await;
        assert_eq!(code, 0);
        let mask = ignored_signals(&out);
        assert_eq!(
            mask & (1 << (libc::SIGPIPE - 1)),
            0,
            "SIGPIPE ignored in the child: {out}"
        );
        assert!(out.ends_with("end\n"));
    }

    #[tokio::test]
    async fn child_gets_default_stop_signals_when_gantry_ignores_them() {
        // As after `nohup gantry …` or `gantry serve &` from a script. No test in this
        // binary relies on receiving SIGINT or SIGQUIT itself.
        // SAFETY: changes this process's disposition of two signals, nothing else.
        unsafe {
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            libc::signal(libc::SIGQUIT, libc::SIG_IGN);
        }
        let (code, out, _) = run(
            &[
                "sh",
                "-c",
                "grep SigIgn /proc/self/status; trap 'echo trapped' INT; kill -INT $$; echo end",
            ],
            &[],
        )
        .await;
        assert_eq!(code, 0);
        let mask = ignored_signals(&out);
        for sig in [libc::SIGINT, libc::SIGQUIT] {
            assert_eq!(mask & (1 << (sig - 1)), 0, "signal {sig} ignored: {out}");
        }
        assert!(out.contains("trapped\nend"), "{out}");
    }

    #[tokio::test]
    async fn leads_its_own_process_group() {
        let argv = ["sh".to_string(), "-c".into(), "sleep 5".into()];
        let mut s = spawn(
            Path::new("/bin/sh"),
            &argv,
            &IndexMap::new(),
            Path::new("/"),
        )
        .unwrap();
        let pid = s.child.id();
        // SAFETY: getpgid reads another process's group id.
        assert_eq!(unsafe { libc::getpgid(pid) }, pid);
        // SAFETY: signals the group we just started.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let st = s.child.wait().await.unwrap();
        assert_eq!(st.signal(), Some(libc::SIGKILL));
    }

    #[tokio::test]
    async fn a_reused_setup_never_mixes_up_directories_or_pipes() {
        let argv: Vec<String> = ["sh", "-c", "pwd; echo err >&2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for dir in ["/tmp", "/", "/tmp", "/usr", "/usr"] {
            let mut s = spawn(
                Path::new("/bin/sh"),
                &argv,
                &IndexMap::new(),
                Path::new(dir),
            )
            .unwrap();
            let (mut out, mut err) = (String::new(), String::new());
            s.stdout.read_to_string(&mut out).await.unwrap();
            s.stderr.read_to_string(&mut err).await.unwrap();
            assert!(s.child.wait().await.unwrap().success());
            assert_eq!((out.trim_end(), err.as_str()), (dir, "err\n"));
        }
    }

    #[tokio::test]
    async fn spawn_errors_are_reported() {
        let fails = |program: &str, workdir: &str| {
            spawn(
                Path::new(program),
                &["x".to_string()],
                &IndexMap::new(),
                Path::new(workdir),
            )
            .err()
            .map(|e| e.kind())
        };
        assert_eq!(fails("/nonexistent/x", "/"), Some(io::ErrorKind::NotFound));
        assert_eq!(
            fails("/bin/sh", "/nonexistent"),
            Some(io::ErrorKind::NotFound)
        );
    }
}
