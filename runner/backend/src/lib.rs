//! Backends: where a job's steps run. Every executor (host, docker, later kubernetes)
//! implements the same handful of verbs, in the spirit of Woodpecker's backend trait:
//! `start` a job environment, `exec` commands in it, `stop` it. The step runner above it
//! knows nothing about containers; it only sees [`JobPaths`] (paths as the step sees them),
//! [`Sharing`] (what the steps share with this machine) and byte streams. The run's
//! [`BackendRegistry`] holds the backends by name; a job's `runs-on` labels give its
//! [`Placement`].

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use indexmap::IndexMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub mod docker;
pub mod host;
pub mod owner;
pub mod registry;

pub use registry::{BackendRegistry, Placement};

/// Everything a backend needs to prepare a job environment.
#[derive(Debug, Clone)]
pub struct JobEnvSpec {
    /// Run id (for names and labels of everything the backend creates).
    pub run_id: String,
    /// Unique key of this job instance within the run (job id plus matrix leg), sanitized
    /// for use in container and network names.
    pub job_key: String,
    /// Host directory holding the job's checked-out workspace (bind-mounted into containers).
    pub workspace: PathBuf,
    /// Host directory for RUNNER_TEMP: scripts, file-command files, event.json.
    pub temp: PathBuf,
    /// Host directory for the tool cache (RUNNER_TOOL_CACHE).
    pub tool_cache: PathBuf,
    /// Host directory used as HOME for container jobs (`/github/home`).
    pub home: PathBuf,
    /// `None`: run steps on the host. `Some`: run every step inside this container.
    pub container: Option<ContainerSpec>,
    /// `jobs.<id>.services`, in declaration order.
    pub services: IndexMap<String, ContainerSpec>,
}

/// A container as described by `jobs.<id>.container` or a service (values already evaluated).
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    pub image: String,
    pub env: IndexMap<String, String>,
    /// `ports:` entries as written (`8080`, `8080:80`, `127.0.0.1:5432:5432/tcp`).
    pub ports: Vec<String>,
    /// `volumes:` entries (`src:dst[:ro]`, named volumes allowed).
    pub volumes: Vec<String>,
    /// `options:` as written (docker create flags; the supported subset is documented).
    pub options: Option<String>,
    pub credentials: Option<Credentials>,
    /// Command for a service container (`command:` in newer schemas); usually `None`.
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// Paths as the steps see them (host paths for the host backend, `/__w/...` style paths
/// inside a job container).
#[derive(Debug, Clone)]
pub struct JobPaths {
    pub workspace: String,
    pub temp: String,
    pub tool_cache: String,
    pub home: Option<String>,
}

/// What a job environment's steps share with the machine Gantry runs on. The step runner
/// and the built-ins ask these, never "is it a container", so a backend whose steps run
/// elsewhere fits by declaring what it shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sharing {
    /// Steps start from the runner's environment variables (what `gantry run` was started
    /// with, or the server's clean set); otherwise from their environment's own (an image's
    /// `ENV` and `PATH`), with only what the workflow sets added.
    pub runner_env: bool,
    /// Steps' programs are the runner machine's: shells, `node` and toolchains are found on
    /// its `PATH`, and setting one up changes this machine. Otherwise they are looked up
    /// inside the environment.
    pub runner_programs: bool,
    /// Steps see the runner machine's files: any path it has is theirs (`~`, an action's
    /// directory in the action cache). Otherwise they see only what is mounted, the job's
    /// workspace, temp dir, tool cache and home ([`JobEnv::to_job_path`]).
    pub runner_files: bool,
}

impl Sharing {
    /// Steps are processes of this machine.
    pub const RUNNER: Sharing = Sharing {
        runner_env: true,
        runner_programs: true,
        runner_files: true,
    };
    /// Steps run in an environment of their own (a container) that shares only the job's
    /// directories.
    pub const ISOLATED: Sharing = Sharing {
        runner_env: false,
        runner_programs: false,
        runner_files: false,
    };
}

/// What a started service exposes: `job.services.<id>` in the job context.
#[derive(Debug, Clone, Default)]
pub struct ServiceInfo {
    pub id: String,
    pub container_id: String,
    /// Network alias (the service id) reachable from a container job.
    pub network: Option<String>,
    /// container port (e.g. "5432/tcp" → "5432") → host port, for `job.services.<id>.ports`.
    pub ports: IndexMap<String, String>,
}

/// The job container, for `job.container.{id,network}`.
#[derive(Debug, Clone, Default)]
pub struct ContainerInfo {
    pub id: String,
    /// The network the job container is attached to (the job network when the job has
    /// services, else Docker's default `bridge`).
    pub network: String,
}

/// The last log lines of a service container (printed at tear-down).
#[derive(Debug, Clone)]
pub struct ServiceLog {
    pub id: String,
    pub text: String,
}

/// One command to run in the job environment.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    /// Program and arguments; paths already in the job's view ([`JobPaths`]).
    pub argv: Vec<String>,
    /// The complete environment for the process (the backend adds nothing but what it must,
    /// e.g. nothing on the host; the image's own env stays underneath inside containers).
    pub env: IndexMap<String, String>,
    /// Working directory in the job's view.
    pub workdir: String,
}

/// A chunk of process output. Chunks are raw bytes as read; lines may be split across them.
#[derive(Debug)]
pub enum Output {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
}

/// How an executed process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    /// Killed after cancellation (SIGINT → SIGTERM → SIGKILL escalation).
    Cancelled,
}

/// Escalation delays when cancelling a process: SIGINT, then SIGTERM after `term_after`,
/// then SIGKILL after `kill_after` more (GitHub: 7.5 s and 2.5 s).
#[derive(Debug, Clone, Copy)]
pub struct KillPolicy {
    pub term_after: Duration,
    pub kill_after: Duration,
}

impl Default for KillPolicy {
    fn default() -> Self {
        KillPolicy {
            term_after: Duration::from_millis(7500),
            kill_after: Duration::from_millis(2500),
        }
    }
}

/// Process-wide "stop now" (a second interrupt): every cancellation in progress and every
/// later one skips the remaining escalation delays and goes straight to SIGKILL.
pub fn hurry() -> &'static CancellationToken {
    static HURRY: std::sync::OnceLock<CancellationToken> = std::sync::OnceLock::new();
    HURRY.get_or_init(CancellationToken::new)
}

/// Waits `delay` of a kill escalation, or less when [`hurry`] fires. Returns whether the
/// full delay passed.
pub(crate) async fn escalation_delay(delay: Duration) -> bool {
    if hurry().is_cancelled() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = hurry().cancelled() => false,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{0}")]
    Message(String),
    #[error("image '{image}' is not available locally: {hint}")]
    MissingImage { image: String, hint: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A placement names a backend this runner does not have.
    #[error("no backend '{name}' (this runner has: {known})")]
    UnknownBackend { name: String, known: String },
    /// The backend could not be reached (its connect failed; the reason says how).
    #[error("{0}")]
    Unavailable(String),
}

pub type BackendResult<T> = Result<T, BackendError>;

/// Creates job environments.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Short name for logs ("host", "docker").
    fn name(&self) -> &'static str;
    /// Prepare the environment: for docker a network, services (waited on until healthy)
    /// and the job container. Progress lines go to `log`.
    async fn start(
        &self,
        spec: &JobEnvSpec,
        log: mpsc::UnboundedSender<String>,
    ) -> BackendResult<Box<dyn JobEnv>>;
    /// The image daemon of a backend that runs images: builds, pulls and pushes for
    /// container actions, `docker://` steps and the `docker/*` built-ins.
    fn image_daemon(&self) -> Option<docker::Daemon> {
        None
    }
    /// The run ended (`cancelled`: by a cancellation): remove whatever the run's jobs left
    /// that their own `stop` could not (a create still in flight when a job was cancelled).
    async fn finish_run(&self, _cancelled: bool) {}
}

/// A running job environment.
#[async_trait]
pub trait JobEnv: Send + Sync {
    fn paths(&self) -> &JobPaths;
    /// What the steps share with this machine.
    fn sharing(&self) -> Sharing;
    fn services(&self) -> &[ServiceInfo];
    /// The job container, when steps run in one.
    fn container(&self) -> Option<ContainerInfo> {
        None
    }
    /// The last `lines` log lines of every service container (nothing for the host).
    async fn service_logs(&self, _lines: usize) -> Vec<ServiceLog> {
        Vec::new()
    }
    /// Translate a host path under the workspace/temp dirs into the job's view.
    fn to_job_path(&self, host: &std::path::Path) -> String;
    /// Run one process to completion, streaming its output to `out`. When `cancel` fires the
    /// process gets SIGINT, SIGTERM and SIGKILL per `kill`, and the result is `Cancelled`.
    /// When it returns, the job's workspace and temp directory on this machine hold what the
    /// process wrote there (file commands, step summaries): a backend whose steps run on
    /// another machine copies them back before returning.
    async fn exec(
        &self,
        spec: ExecSpec,
        out: mpsc::Sender<Output>,
        cancel: CancellationToken,
        kill: KillPolicy,
    ) -> BackendResult<ExitStatus>;
    /// Remove everything this environment created. Idempotent; called on success, failure
    /// and cancellation alike.
    async fn stop(&self) -> BackendResult<()>;
}
