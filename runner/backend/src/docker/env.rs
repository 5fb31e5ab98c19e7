//! A started Docker job environment: `exec` through the Docker exec API, cancellation by
//! signalling the exec'd process group, and cleanup (explicit, on drop, or via prune).
//!
//! Cancellation: the exec inspect API reports the process's PID in the daemon's PID
//! namespace. When that PID is visible here (`/proc/<pid>` exists: gantry and dockerd share
//! the host, the normal case), the signals go straight to it with `libc::kill`. runc starts
//! every exec'd process as a session and process-group leader, so the whole group (the shell
//! and its children) is signalled with `killpg`, like Ctrl-C in a terminal. When the PID is
//! not visible (a remote daemon, Docker Desktop), a helper exec runs `kill -s SIG -1` inside
//! the container, which signals every process there except PID 1 (`tail -f /dev/null`).
//! Escalation follows [`KillPolicy`]: SIGINT, SIGTERM after `term_after`, SIGKILL after
//! `kill_after` more; [`crate::hurry`] (a second interrupt) skips the delays.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::cleanup::cleanup_in_background;
use super::{ContainerPaths, Created, Registry, docker_err, remove_created};
use crate::{
    BackendError, BackendResult, ContainerInfo, ExecSpec, ExitStatus, JobEnv, JobPaths, KillPolicy,
    Output, ServiceInfo, ServiceLog, Sharing,
};

/// A job environment created by [`super::DockerBackend`].
pub struct DockerJobEnv {
    docker: Docker,
    container: Option<String>,
    network: Option<String>,
    services: Vec<ServiceInfo>,
    paths: JobPaths,
    mounts: ContainerPaths,
    /// Host job with services: steps run in this environment.
    host: Option<Box<dyn JobEnv>>,
    created: Registry,
}

impl DockerJobEnv {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        docker: Docker,
        container: Option<String>,
        network: Option<String>,
        services: Vec<ServiceInfo>,
        paths: JobPaths,
        mounts: ContainerPaths,
        host: Option<Box<dyn JobEnv>>,
        created: Registry,
    ) -> Self {
        DockerJobEnv {
            docker,
            container,
            network,
            services,
            paths,
            mounts,
            host,
            created,
        }
    }

    /// Id of the job container (`job.container.id`), when the job runs in one.
    pub fn container_id(&self) -> Option<&str> {
        self.container.as_deref()
    }

    /// Name of the job network (`job.container.network`).
    pub fn network(&self) -> Option<&str> {
        self.network.as_deref()
    }

    async fn exec_in(
        &self,
        container: &str,
        spec: ExecSpec,
        out: mpsc::Sender<Output>,
        cancel: CancellationToken,
        kill: KillPolicy,
    ) -> BackendResult<ExitStatus> {
        if spec.argv.is_empty() {
            return Err(BackendError::Message("exec: empty command".into()));
        }
        let env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let create = CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            attach_stdin: Some(false),
            tty: Some(false),
            env: Some(env),
            cmd: Some(spec.argv.clone()),
            working_dir: (!spec.workdir.is_empty()).then(|| spec.workdir.clone()),
            ..Default::default()
        };
        let exec_id = self
            .docker
            .create_exec(container, create)
            .await
            .map_err(|e| docker_err("create exec", e))?
            .id;
        let started = self
            .docker
            .start_exec(
                &exec_id,
                Some(StartExecOptions {
                    detach: false,
                    tty: false,
                    output_capacity: None,
                }),
            )
            .await
            .map_err(|e| docker_err("start exec", e))?;
        let StartExecResults::Attached { mut output, input } = started else {
            return Err(BackendError::Message("docker: exec did not attach".into()));
        };
        drop(input);

        let mut cancelled = false;
        let mut killer: Option<tokio::task::JoinHandle<()>> = None;
        let mut after_kill_deadline: Option<tokio::time::Instant> = None;
        let mut hurried = false;
        loop {
            let next = tokio::select! {
                biased;
                item = output.next() => item,
                _ = cancel.cancelled(), if !cancelled => {
                    cancelled = true;
                    let (docker, exec_id, container) = (self.docker.clone(), exec_id.clone(), container.to_string());
                    killer = Some(tokio::spawn(async move {
                        escalate(&docker, &exec_id, &container, kill).await;
                    }));
                    // Output is still drained until the process is gone; give up on it a
                    // little after SIGKILL (an orphan outside the group may hold the pipe).
                    after_kill_deadline = Some(
                        tokio::time::Instant::now() + kill.term_after + kill.kill_after + Duration::from_secs(2),
                    );
                    continue;
                }
                _ = sleep_until_opt(after_kill_deadline) => break,
                // A second interrupt: SIGKILL goes out now, so stop waiting soon after.
                _ = crate::hurry().cancelled(), if cancelled && !hurried => {
                    hurried = true;
                    after_kill_deadline = Some(tokio::time::Instant::now() + Duration::from_secs(2));
                    continue;
                }
            };
            match next {
                Some(Ok(LogOutput::StdOut { message }))
                | Some(Ok(LogOutput::Console { message })) => {
                    let _ = out.send(Output::Stdout(message.to_vec())).await;
                }
                Some(Ok(LogOutput::StdErr { message })) => {
                    let _ = out.send(Output::Stderr(message.to_vec())).await;
                }
                Some(Ok(LogOutput::StdIn { .. })) => {}
                Some(Err(e)) => {
                    if cancelled {
                        break;
                    }
                    return Err(docker_err("exec output", e));
                }
                None => break,
            }
        }
        if let Some(k) = killer {
            k.abort();
        }
        if cancelled {
            return Ok(ExitStatus::Cancelled);
        }
        // The stream ends when the process has exited; the daemon records the exit code at
        // the same moment, but allow for a short lag.
        for attempt in 0..50 {
            let inspect = self
                .docker
                .inspect_exec(&exec_id)
                .await
                .map_err(|e| docker_err("inspect exec", e))?;
            if inspect.running != Some(true)
                && let Some(code) = inspect.exit_code
            {
                return Ok(ExitStatus::Code(code as i32));
            }
            tokio::time::sleep(Duration::from_millis(if attempt < 10 { 5 } else { 50 })).await;
        }
        Err(BackendError::Message(
            "docker: exec finished but reported no exit code".into(),
        ))
    }
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// SIGINT → SIGTERM → SIGKILL, per the kill policy. Runs until aborted by the caller (the
/// process is gone) or the escalation is complete.
async fn escalate(docker: &Docker, exec_id: &str, container: &str, kill: KillPolicy) {
    // The exec's PID (daemon namespace); it can lag a moment right after the start.
    let mut pid = None;
    for _ in 0..20 {
        pid = docker
            .inspect_exec(exec_id)
            .await
            .ok()
            .and_then(|i| i.pid)
            .filter(|p| *p > 0);
        if pid.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Only trust it if the daemon's PIDs are ours: the job container's PID 1 must be our
    // `tail -f /dev/null` when looked up in this /proc.
    let pid = match pid {
        Some(p) if daemon_shares_pids(docker, container).await => Some(p as i32),
        _ => None,
    };
    let steps = [
        (libc::SIGINT, "INT", Duration::ZERO),
        (libc::SIGTERM, "TERM", kill.term_after),
        (libc::SIGKILL, "KILL", kill.kill_after),
    ];
    for (sig, name, wait) in steps {
        if !wait.is_zero() {
            // A second interrupt ends the wait at once.
            crate::escalation_delay(wait).await;
        }
        match pid {
            Some(pid) => {
                if Path::new(&format!("/proc/{pid}")).exists() {
                    signal_host(pid, sig);
                }
            }
            None => signal_in_container(docker, container, name).await,
        }
    }
}

/// Whether PIDs reported by the daemon name processes in this PID namespace.
async fn daemon_shares_pids(docker: &Docker, container: &str) -> bool {
    let Some(pid) = docker
        .inspect_container(container, None)
        .await
        .ok()
        .and_then(|i| i.state?.pid)
        .filter(|p| *p > 0)
    else {
        return false;
    };
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == b"tail\0-f\0/dev/null\0")
}

/// Signal the exec'd process's group when it leads one (runc makes it a session leader),
/// else the process itself.
fn signal_host(pid: i32, sig: i32) {
    // SAFETY: plain syscalls on a pid; failures (ESRCH, EPERM) are harmless and ignored.
    unsafe {
        if libc::getpgid(pid) == pid {
            libc::killpg(pid, sig);
        } else {
            libc::kill(pid, sig);
        }
    }
}

/// Fallback when the daemon's PIDs are not visible: signal every process in the container
/// except PID 1 (`kill -1` skips init and the caller).
async fn signal_in_container(docker: &Docker, container: &str, sig: &str) {
    let create = CreateExecOptions {
        cmd: Some(vec![
            "sh".to_string(),
            "-c".to_string(),
            format!("kill -s {sig} -1"),
        ]),
        ..Default::default()
    };
    if let Ok(e) = docker.create_exec(container, create).await {
        let _ = docker
            .start_exec(
                &e.id,
                Some(StartExecOptions {
                    detach: true,
                    tty: false,
                    output_capacity: None,
                }),
            )
            .await;
    }
}

#[async_trait]
impl JobEnv for DockerJobEnv {
    fn paths(&self) -> &JobPaths {
        &self.paths
    }

    /// A job without `container:` (services only) runs its steps on the host.
    fn sharing(&self) -> Sharing {
        match &self.host {
            Some(h) if self.container.is_none() => h.sharing(),
            _ => Sharing::ISOLATED,
        }
    }

    fn services(&self) -> &[ServiceInfo] {
        &self.services
    }

    fn container(&self) -> Option<ContainerInfo> {
        self.container.as_ref().map(|id| ContainerInfo {
            id: id.clone(),
            network: self.network.clone().unwrap_or_default(),
        })
    }

    async fn service_logs(&self, lines: usize) -> Vec<ServiceLog> {
        let mut out = Vec::new();
        for s in &self.services {
            out.push(ServiceLog {
                id: s.id.clone(),
                text: super::service::tail_logs(&self.docker, &s.container_id, lines).await,
            });
        }
        out
    }

    fn to_job_path(&self, host: &Path) -> String {
        match (&self.container, &self.host) {
            (Some(_), _) => self.mounts.to_container(host),
            (None, Some(h)) => h.to_job_path(host),
            (None, None) => host.to_string_lossy().into_owned(),
        }
    }

    async fn exec(
        &self,
        spec: ExecSpec,
        out: mpsc::Sender<Output>,
        cancel: CancellationToken,
        kill: KillPolicy,
    ) -> BackendResult<ExitStatus> {
        match (&self.container, &self.host) {
            (Some(c), _) => self.exec_in(c, spec, out, cancel, kill).await,
            (None, Some(h)) => h.exec(spec, out, cancel, kill).await,
            (None, None) => Err(BackendError::Message(
                "docker backend: this job has no `container:`; its steps need a host backend \
                 (DockerBackend::with_host_backend)"
                    .into(),
            )),
        }
    }

    async fn stop(&self) -> BackendResult<()> {
        let host_result = match &self.host {
            Some(h) => h.stop().await,
            None => Ok(()),
        };
        let created = std::mem::take(&mut *self.created.lock().unwrap());
        if !created.is_empty() {
            remove_created(&self.docker, created).await?;
        }
        host_result
    }
}

impl Drop for DockerJobEnv {
    /// Not stopped (a panic, an early return): remove what is left in the background.
    fn drop(&mut self) {
        let created: Created = match self.created.lock() {
            Ok(mut g) => std::mem::take(&mut *g),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        };
        cleanup_in_background(created, None);
    }
}
