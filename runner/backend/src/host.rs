//! Host backend: steps run as plain processes on this machine.
//!
//! Each `exec` spawns the program directly (no wrapper shell) in a new process group, with
//! exactly `spec.env` as its environment, and pumps stdout/stderr in 64 KiB chunks. On
//! cancellation the whole group gets SIGINT, SIGTERM and SIGKILL per [`KillPolicy`], until no
//! process of the group is left (a second interrupt, [`crate::hurry`], cuts the
//! delays short). Background processes that outlive a step (`server &`) keep running for
//! later steps, as on GitHub, and are killed by [`JobEnv::stop`] together with everything
//! else the job started, `setsid` and double-forked children included (see [`tree`]).

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{
    Backend, BackendError, BackendResult, ExecSpec, ExitStatus, JobEnv, JobEnvSpec, JobPaths,
    KillPolicy, Output, ServiceInfo, Sharing,
};

mod spawn;
pub mod tree;
use spawn::{Child, Spawned};

/// Size of one read from a child's pipe.
const CHUNK: usize = 64 * 1024;
/// How long to keep reading after the main process exited while a background process still
/// holds the pipes open.
const DRAIN_GRACE: Duration = Duration::from_millis(200);
/// Group liveness poll interval while cancelling.
const POLL: Duration = Duration::from_millis(10);
/// Upper bound on waiting for the group to vanish after SIGKILL.
const AFTER_KILL: Duration = Duration::from_secs(2);

/// Runs jobs directly on the host.
#[derive(Debug, Default, Clone)]
pub struct HostBackend;

impl HostBackend {
    pub fn new() -> HostBackend {
        HostBackend
    }
}

fn msg(s: impl Into<String>) -> BackendError {
    BackendError::Message(s.into())
}

#[async_trait]
impl Backend for HostBackend {
    fn name(&self) -> &'static str {
        "host"
    }

    async fn start(
        &self,
        spec: &JobEnvSpec,
        _log: mpsc::UnboundedSender<String>,
    ) -> BackendResult<Box<dyn JobEnv>> {
        if spec.container.is_some() {
            return Err(msg("a job container needs the docker backend"));
        }
        if !spec.services.is_empty() {
            return Err(msg("services need the docker backend"));
        }
        for dir in [&spec.workspace, &spec.temp, &spec.tool_cache] {
            // The job prepared them already: one stat instead of a failing mkdir and a stat.
            if !dir.is_dir() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    msg(format!("cannot create directory '{}': {e}", dir.display()))
                })?;
            }
        }
        tree::become_subreaper();
        let s = |p: &Path| p.to_string_lossy().into_owned();
        Ok(Box::new(HostJobEnv {
            cookie: uuid::Uuid::new_v4().simple().to_string(),
            paths: JobPaths {
                workspace: s(&spec.workspace),
                temp: s(&spec.temp),
                tool_cache: s(&spec.tool_cache),
                home: None,
            },
            lingering: Mutex::new(Vec::new()),
        }))
    }
}

/// A job environment on the host.
#[derive(Debug)]
pub struct HostJobEnv {
    paths: JobPaths,
    /// Value of [`tree::COOKIE_VAR`] in every process of this job.
    cookie: String,
    /// Process groups whose members outlived their step.
    lingering: Mutex<Vec<i32>>,
}

impl HostJobEnv {
    /// Process groups started by this job that still had live members after their step.
    pub fn lingering_groups(&self) -> Vec<i32> {
        let mut v = self.lingering.lock().unwrap_or_else(|e| e.into_inner());
        v.retain(|&g| group_alive(g));
        v.clone()
    }
}

fn signal_group(pgid: i32, sig: i32) {
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
    unsafe {
        libc::kill(-pgid, sig);
    }
}

fn group_alive(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    let r = unsafe { libc::kill(-pgid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Kills the group with SIGKILL if the exec future is dropped before the process ended.
struct KillGuard {
    pgid: i32,
    armed: bool,
}

impl Drop for KillGuard {
    fn drop(&mut self) {
        if self.armed {
            signal_group(self.pgid, libc::SIGKILL);
        }
    }
}

/// Resolves the program like `execvp` would with the child's PATH, so that the spawn can use
/// `posix_spawn` (std falls back to fork+exec when PATH lookup uses a modified PATH).
fn resolve_program(program: &str, spec: &ExecSpec, workdir: &Path) -> BackendResult<PathBuf> {
    if program.contains('/') {
        let p = Path::new(program);
        return Ok(if p.is_absolute() {
            p.to_path_buf()
        } else {
            workdir.join(p)
        });
    }
    let path = match spec.env.get("PATH") {
        Some(p) => p.clone(),
        None => std::env::var("PATH").unwrap_or_default(),
    };
    which(program, &path).ok_or_else(|| msg(format!("'{program}' was not found on PATH ({path})")))
}

async fn send_or_detach(
    tx: &mut Option<mpsc::Sender<Output>>,
    detach: &mut oneshot::Receiver<()>,
    item: Output,
) {
    let Some(sender) = tx.as_ref() else { return };
    tokio::select! {
        r = sender.send(item) => {
            if r.is_err() {
                *tx = None;
            }
        }
        _ = detach => {
            *tx = None;
        }
    }
}

/// A process's output relay: both pipes to the step's channel until EOF. After `detach`
/// fires it keeps draining (so background writers never get SIGPIPE) but drops the sender.
struct Relay {
    stdout: pipe::Receiver,
    stderr: pipe::Receiver,
    tx: Option<mpsc::Sender<Output>>,
    detach: oneshot::Receiver<()>,
    b_out: Vec<u8>,
    b_err: Vec<u8>,
    out_open: bool,
    err_open: bool,
}

/// How a relay run ended.
enum RelayEnd {
    /// Both pipes are closed.
    Done,
    /// The byte budget is spent (at a chunk boundary: nothing is in flight).
    Busy(Box<Relay>),
}

/// Bytes relayed in the step's own task before the relay moves to a task of its own.
/// Most steps print little, and a relay in the step's task costs no hand-off to another
/// worker; a step that prints a lot is better served by a relay running beside the output
/// processing, on the other core.
const INLINE_BUDGET: usize = 256 * 1024;

type RelayFuture = std::pin::Pin<Box<dyn std::future::Future<Output = RelayEnd> + Send>>;

impl Relay {
    fn start(
        stdout: pipe::Receiver,
        stderr: pipe::Receiver,
        tx: mpsc::Sender<Output>,
        detach: oneshot::Receiver<()>,
    ) -> RelayFuture {
        let relay = Box::new(Relay {
            stdout,
            stderr,
            tx: Some(tx),
            detach,
            // Not zero-filled (`read_buf` fills spare capacity): zeroing two 64 KiB
            // buffers per process was a third of a quiet step's CPU.
            b_out: Vec::with_capacity(CHUNK),
            b_err: Vec::with_capacity(CHUNK),
            out_open: true,
            err_open: true,
        });
        Box::pin(relay.run(Some(INLINE_BUDGET)))
    }

    /// Relays until both pipes close, or with a `budget` until that many bytes went through.
    async fn run(mut self: Box<Self>, budget: Option<usize>) -> RelayEnd {
        let mut moved = 0;
        while self.out_open || self.err_open {
            if budget.is_some_and(|b| moved >= b) {
                return RelayEnd::Busy(self);
            }
            let r = &mut *self;
            tokio::select! {
                res = r.stdout.read_buf(&mut r.b_out), if r.out_open => {
                    let chunk = take_chunk(res, &mut r.out_open, &mut r.b_out);
                    if let Some(c) = chunk {
                        moved += c.len();
                        send_or_detach(&mut r.tx, &mut r.detach, Output::Stdout(c)).await
                    }
                }
                res = r.stderr.read_buf(&mut r.b_err), if r.err_open => {
                    let chunk = take_chunk(res, &mut r.err_open, &mut r.b_err);
                    if let Some(c) = chunk {
                        moved += c.len();
                        send_or_detach(&mut r.tx, &mut r.detach, Output::Stderr(c)).await
                    }
                }
                _ = &mut r.detach, if r.tx.is_some() => r.tx = None,
            }
        }
        RelayEnd::Done
    }
}

/// The chunk a read put in `buf` (which is emptied for the next read); at the end of the
/// pipe, or on an error, `None` and the pipe counts as closed.
fn take_chunk(res: std::io::Result<usize>, open: &mut bool, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    match res {
        Ok(0) | Err(_) => {
            *open = false;
            None
        }
        Ok(_) => {
            let chunk = buf.clone();
            buf.clear();
            Some(chunk)
        }
    }
}

/// Drives `relay` to its end. A relay that spends its inline budget continues in a task of
/// its own, and `relay` becomes the wait for that task. Dropping this future loses nothing
/// (the relay itself lives in `relay`).
async fn finish_relay(relay: &mut RelayFuture) {
    loop {
        match relay.as_mut().await {
            RelayEnd::Done => return,
            RelayEnd::Busy(rest) => {
                let task = tokio::spawn(rest.run(None));
                *relay = Box::pin(async move {
                    let _ = task.await;
                    RelayEnd::Done
                });
            }
        }
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Waits until the main process is reaped and no member of the group is left, or `limit`.
async fn wait_group(child: &mut Child, reaped: &mut bool, pgid: i32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut polls = 0u32;
    loop {
        polls += 1;
        // Members that left the group's leader behind re-parent to gantry and, once dead,
        // stay zombies (still "in the group") until reaped: reap them now and then.
        if *reaped && polls.is_multiple_of(10) {
            tree::reap_orphans();
        }
        if !*reaped {
            tokio::select! {
                r = child.wait() => { *reaped = true; let _ = r; }
                _ = tokio::time::sleep(POLL) => {}
            }
        } else {
            tokio::time::sleep(POLL).await;
        }
        if *reaped && !group_alive(pgid) {
            return true;
        }
        if Instant::now() >= deadline || crate::hurry().is_cancelled() {
            return false;
        }
    }
}

#[async_trait]
impl JobEnv for HostJobEnv {
    fn paths(&self) -> &JobPaths {
        &self.paths
    }

    fn sharing(&self) -> Sharing {
        Sharing::RUNNER
    }

    fn services(&self) -> &[ServiceInfo] {
        &[]
    }

    fn to_job_path(&self, host: &Path) -> String {
        host.to_string_lossy().into_owned()
    }

    async fn exec(
        &self,
        spec: ExecSpec,
        out: mpsc::Sender<Output>,
        cancel: CancellationToken,
        kill: KillPolicy,
    ) -> BackendResult<ExitStatus> {
        let mut spec = spec;
        spec.env
            .insert(tree::COOKIE_VAR.to_string(), self.cookie.clone());
        let Some(program) = spec.argv.first() else {
            return Err(msg("nothing to run: empty command"));
        };
        let workdir = Path::new(&spec.workdir);
        if cancel.is_cancelled() {
            return Ok(ExitStatus::Cancelled);
        }
        let program_path = resolve_program(program, &spec, workdir)?;
        let spawned = spawn::spawn(&program_path, &spec.argv, &spec.env, workdir).map_err(|e| {
            // Checked only when the spawn fails: a missing directory is reported as a
            // missing program otherwise, and the happy path needs no `stat`.
            match std::fs::metadata(workdir) {
                Ok(m) if m.is_dir() => {
                    msg(format!("failed to start '{}': {e}", program_path.display()))
                }
                Ok(_) => msg(format!(
                    "working directory '{}' is not a directory",
                    spec.workdir
                )),
                Err(_) => msg(format!(
                    "working directory '{}' does not exist",
                    spec.workdir
                )),
            }
        })?;
        let Spawned {
            mut child,
            stdout,
            stderr,
        } = spawned;
        let pgid = child.id();
        let mut guard = KillGuard { pgid, armed: true };
        let (detach_tx, detach_rx) = oneshot::channel();
        let mut relay = Relay::start(stdout, stderr, out, detach_rx);
        let mut relayed = false;
        let status = loop {
            tokio::select! {
                s = child.wait() => break Some(s?),
                _ = cancel.cancelled() => break None,
                () = finish_relay(&mut relay), if !relayed => {
                    relayed = true;
                    // Both pipes are closed, so the process has most likely exited: reaping
                    // it now saves waiting for the pidfd's wake-up.
                    if let Some(s) = child.try_wait()? {
                        break Some(s);
                    }
                }
            }
        };
        let result = match status {
            Some(status) => {
                guard.armed = false;
                ExitStatus::Code(exit_code(status))
            }
            None => {
                let stop = async {
                    let mut reaped = false;
                    signal_group(pgid, libc::SIGINT);
                    if !wait_group(&mut child, &mut reaped, pgid, kill.term_after).await {
                        signal_group(pgid, libc::SIGTERM);
                        if !wait_group(&mut child, &mut reaped, pgid, kill.kill_after).await {
                            signal_group(pgid, libc::SIGKILL);
                            wait_group(&mut child, &mut reaped, pgid, AFTER_KILL).await;
                        }
                    }
                };
                tokio::pin!(stop);
                // Keep relaying while the group winds down: a process blocked on a full
                // pipe could not react to the signals.
                loop {
                    tokio::select! {
                        () = &mut stop => break,
                        () = finish_relay(&mut relay), if !relayed => relayed = true,
                    }
                }
                guard.armed = false;
                ExitStatus::Cancelled
            }
        };
        // Output written just before exit is still in the pipes: drain it. Only a process
        // left in the background keeps them open; stop forwarding after a grace period.
        if !relayed
            && tokio::time::timeout(DRAIN_GRACE, finish_relay(&mut relay))
                .await
                .is_err()
        {
            let _ = detach_tx.send(());
            tokio::spawn(async move { finish_relay(&mut relay).await });
        }
        // Only dead orphans (zombies of the subreaper) may be what keeps the group alive.
        if group_alive(pgid) && (tree::reap_orphans() == 0 || group_alive(pgid)) {
            let mut v = self.lingering.lock().unwrap_or_else(|e| e.into_inner());
            v.push(pgid);
        }
        Ok(result)
    }

    async fn stop(&self) -> BackendResult<()> {
        let groups: Vec<i32> = {
            let mut v = self.lingering.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *v)
        };
        for &pgid in &groups {
            if group_alive(pgid) {
                signal_group(pgid, libc::SIGKILL);
            }
        }
        // Whatever left the groups (`setsid`, double forks) goes too.
        let cookie = self.cookie.clone();
        let _ =
            tokio::task::spawn_blocking(move || tree::kill_job_tree(Some(&cookie), &groups)).await;
        Ok(())
    }
}

/// The host backend as a shared trait object.
pub fn default_backend() -> std::sync::Arc<dyn Backend> {
    std::sync::Arc::new(HostBackend::new())
}

/// Finds `program` like `which`: a name containing `/` is taken as is (if it exists);
/// otherwise the first executable file of that name in the `:`-separated `path`.
pub fn which(program: &str, path: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_exec = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let p = std::path::PathBuf::from(program);
        return is_exec(&p).then_some(p);
    }
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(program))
        .find(|p| is_exec(p))
}
