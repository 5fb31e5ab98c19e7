//! Docker backend: a job's steps run through `docker exec` in a job container, next to its
//! service containers on a per-job bridge network (GHA-SEMANTICS §7).
//!
//! * One bollard client per backend (API version negotiated once; the daemon may speak 1.41).
//! * Nothing is pulled when an image exists locally; a missing image is an immediate
//!   [`BackendError::MissingImage`] naming `--image` (and `-P`, `gantry image build`), unless the reference names a
//!   registry or carries credentials, in which case one pull is attempted.
//! * Everything created (network, containers, named volumes) carries the labels
//!   `dev.gantry.managed=true`, `gantry.run=<run_id>`, `gantry.job=<job_key>`, the backend's
//!   random `gantry.run-key` (unique across machines and repositories, unlike the run
//!   number) and its creator ([`super::owner::ProcessOwner`]: `gantry.host`, `gantry.pidns`,
//!   `gantry.pid`, `gantry.pid-start`). It is recorded in a per-job registry as soon as it
//!   exists and removed by id by [`JobEnv::stop`], by a failed `start`, or by dropping the
//!   environment without stopping it; an abandoned `start` also removes what carries its run
//!   key and job key (a create that was in flight). [`DockerBackend::cleanup_run`] removes
//!   whatever still carries the run key at the end of a run, and [`prune_stale`] only what
//!   provably dead processes left.
//!
//! Container path layout (job container; see [`ContainerPaths`]):
//!
//! | host (`JobEnvSpec`)   | job container                     |
//! |-----------------------|-----------------------------------|
//! | `workspace`           | `/__w/<name>/<name>` (`<name>` = the workspace dir's basename) |
//! | `temp`                | `/__w/_temp`                      |
//! | `tool_cache`          | `/__t`                            |
//! | `home`                | `/github/home` (`HOME`)           |
//! | `temp/_github_workflow` | `/github/workflow` (`event.json`) |
//! | `/var/run/docker.sock`| same path (when present)          |
//!
//! All are bind mounts: files written by steps appear on the host at once.

mod cleanup;
mod create;
pub use create::{ImageUse, missing_image_hint};
mod env;
mod images;
pub use images::{
    BuildFailure, BuildSpec, Daemon, DockerRunSpec, ImageNotFound, PushFailure, RegistryLogin,
};
pub mod options;
mod service;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{NetworkCreateRequest, VolumeCreateRequest};
use futures_util::future;
use tokio::sync::mpsc;

pub(crate) use cleanup::{Created, Registry, remove_created};
pub use cleanup::{
    PruneReport, connect, owner_state, prune, prune_stale, prune_with, remove_all_of_this_process,
};
use create::Prepared;
pub use create::registry_of;
pub use env::DockerJobEnv;

use super::{
    Backend, BackendError, BackendResult, ContainerSpec, JobEnv, JobEnvSpec, JobPaths, ServiceInfo,
};

/// Label set on everything gantry creates.
pub const LABEL_MANAGED: &str = "dev.gantry.managed";
pub const LABEL_RUN: &str = "gantry.run";
pub const LABEL_JOB: &str = "gantry.job";
/// `job` or `service:<id>`.
pub const LABEL_ROLE: &str = "gantry.role";
/// Random key of the run (one per backend) that created the resource.
pub const LABEL_RUN_KEY: &str = "gantry.run-key";
/// The creating process (for [`prune_stale`]): host id, PID namespace inode, pid and the
/// process's start time (clock ticks since boot).
pub const LABEL_HOST: &str = "gantry.host";
pub const LABEL_PIDNS: &str = "gantry.pidns";
pub const LABEL_PID: &str = "gantry.pid";
pub const LABEL_PID_START: &str = "gantry.pid-start";

pub const BUSYBOX_IMAGE: &str = "gantry/busybox:latest";
pub const DEBIAN_IMAGE: &str = "gantry/debian:bookworm";
/// Hint attached to [`BackendError::MissingImage`].
pub const BUILD_HINT: &str = "run 'gantry image build' (or docker/build-images.sh)";

/// Container-side paths (see the module docs).
pub const CONTAINER_TEMP: &str = "/__w/_temp";
pub const CONTAINER_TOOL_CACHE: &str = "/__t";
pub const CONTAINER_HOME: &str = "/github/home";
/// `<temp>/_github_workflow` (where `event.json` lives) is also mounted here, as on GitHub.
pub const CONTAINER_WORKFLOW: &str = "/github/workflow";
/// Subdirectory of the temp dir mounted at [`CONTAINER_WORKFLOW`].
pub const WORKFLOW_SUBDIR: &str = "_github_workflow";
const DOCKER_SOCK: &str = "/var/run/docker.sock";

/// The image a `runs-on` label maps to when a job runs in Docker without `container:`.
pub fn default_image_for_label(label: &str) -> Option<&'static str> {
    let label = label.trim().to_ascii_lowercase();
    // Every `ubuntu-*` (`ubuntu-latest`, `ubuntu-slim`, `ubuntu-26.04`, …): Debian is
    // the closest image Gantry builds. `self-hosted` has no image: it needs `-P`.
    if label.starts_with("ubuntu-") || label == "ubuntu" || label == "linux" {
        Some(DEBIAN_IMAGE)
    } else if label == "busybox" {
        Some(BUSYBOX_IMAGE)
    } else {
        None
    }
}

/// Container path of the workspace for a host workspace dir: `/__w/<name>/<name>`.
pub fn container_workspace(host_workspace: &Path) -> String {
    let name: String = host_workspace
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = if name.is_empty() || name == "." || name == ".." {
        "workspace".into()
    } else {
        name
    };
    format!("/__w/{name}/{name}")
}

/// Host → container mount table of a job container, longest host path first.
#[derive(Debug, Clone)]
pub struct ContainerPaths {
    mounts: Vec<(PathBuf, String)>,
}

impl ContainerPaths {
    pub fn new(spec: &JobEnvSpec) -> Self {
        let mut mounts = vec![
            (spec.workspace.clone(), container_workspace(&spec.workspace)),
            (spec.temp.clone(), CONTAINER_TEMP.to_string()),
            (spec.tool_cache.clone(), CONTAINER_TOOL_CACHE.to_string()),
            (spec.home.clone(), CONTAINER_HOME.to_string()),
            (
                spec.temp.join(WORKFLOW_SUBDIR),
                CONTAINER_WORKFLOW.to_string(),
            ),
        ];
        mounts.sort_by_key(|(h, _)| std::cmp::Reverse(h.as_os_str().len()));
        ContainerPaths { mounts }
    }

    /// `src:dst` bind strings for the Docker API.
    fn binds(&self) -> Vec<String> {
        self.mounts
            .iter()
            .map(|(h, c)| format!("{}:{c}", h.display()))
            .collect()
    }

    /// Translate a host path under one of the mounts; other paths are returned unchanged.
    pub fn to_container(&self, host: &Path) -> String {
        for (h, c) in &self.mounts {
            if let Ok(rest) = host.strip_prefix(h) {
                return if rest.as_os_str().is_empty() {
                    c.clone()
                } else {
                    format!("{c}/{}", rest.to_string_lossy())
                };
            }
        }
        host.to_string_lossy().into_owned()
    }
}

/// Six random hex digits for disambiguating names.
pub(crate) fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..6].to_string()
}

/// Docker names allow `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
fn sanitize_name(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    out.trim_start_matches(['.', '-', '_']).to_string()
}

fn is_status(e: &DockerError, code: u16) -> bool {
    matches!(e, DockerError::DockerResponseServerError { status_code, .. } if *status_code == code)
}

fn docker_err(what: &str, e: DockerError) -> BackendError {
    match e {
        DockerError::DockerResponseServerError { message, .. } => {
            BackendError::Message(format!("docker: {what}: {message}"))
        }
        other => BackendError::Message(format!("docker: {what}: {other}")),
    }
}

/// The Docker backend. Cheap to clone; holds one negotiated bollard client.
#[derive(Clone)]
pub struct DockerBackend {
    docker: Docker,
    host: Option<Arc<dyn Backend>>,
    /// `gantry.run-key` of everything this backend creates.
    run_key: String,
}

impl DockerBackend {
    /// Connect (`DOCKER_HOST` or the local socket) and negotiate the API version.
    pub async fn connect() -> BackendResult<Self> {
        Ok(Self::from_client(connect().await?))
    }

    /// Use an already negotiated client.
    pub fn from_client(docker: Docker) -> Self {
        let run_key = uuid::Uuid::new_v4().simple().to_string();
        cleanup::register_run_key(&run_key);
        DockerBackend {
            docker,
            host: None,
            run_key,
        }
    }

    /// The random key labelling everything this backend creates (`gantry.run-key`).
    pub fn run_key(&self) -> &str {
        &self.run_key
    }

    /// Remove everything still labelled with this backend's run key: what a job's cleanup
    /// could not finish (an abandoned start whose cleanup runs in the background, a create
    /// that completed after its caller gave up). Called at the end of a run.
    pub async fn cleanup_run(&self) -> BackendResult<PruneReport> {
        cleanup::remove_labelled(&self.docker, &[(LABEL_RUN_KEY, &self.run_key)]).await
    }

    /// Backend used to run the steps of a job that has services but no `container:` (the
    /// steps run on the host, the services in Docker).
    pub fn with_host_backend(mut self, host: Arc<dyn Backend>) -> Self {
        self.host = Some(host);
        self
    }

    /// The daemon's image and one-off container verbs, on this backend's connection.
    pub fn daemon(&self) -> Daemon {
        Daemon::from_client(self.docker.clone())
    }
}

impl DockerBackend {
    /// Create the job network `gantry-<run>-<job>-<6 hex>`; returns its name and id. The
    /// random suffix matters: API versions before 1.44 happily create two networks with one
    /// name (two repos' "run 1, job build"), and a container start then fails on the
    /// ambiguous name. Containers are attached by id.
    async fn create_network(
        &self,
        spec: &JobEnvSpec,
        created: &Registry,
    ) -> BackendResult<(String, String)> {
        let name = format!(
            "gantry-{}-{}-{}",
            sanitize_name(&spec.run_id),
            sanitize_name(&spec.job_key),
            short_id()
        );
        let req = NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".into()),
            labels: Some(self.labels(spec, "network", &[])),
            ..Default::default()
        };
        let r = self
            .docker
            .create_network(req)
            .await
            .map_err(|e| docker_err(&format!("create network {name}"), e))?;
        created.lock().unwrap().networks.push(r.id.clone());
        Ok((name, r.id))
    }

    /// Create named volumes that do not exist yet, labelled (they are removed with the job).
    async fn ensure_volumes(
        &self,
        spec: &JobEnvSpec,
        names: &[String],
        created: &Registry,
    ) -> BackendResult<()> {
        for v in names {
            if self.docker.inspect_volume(v).await.is_ok() {
                continue;
            }
            let req = VolumeCreateRequest {
                name: Some(v.clone()),
                labels: Some(self.labels(spec, "volume", &[])),
                ..Default::default()
            };
            self.docker
                .create_volume(req)
                .await
                .map_err(|e| docker_err("create volume", e))?;
            created.lock().unwrap().volumes.push(v.clone());
        }
        Ok(())
    }

    async fn start_inner(
        &self,
        spec: &JobEnvSpec,
        log: &mpsc::UnboundedSender<String>,
        created: &Registry,
    ) -> BackendResult<(
        Option<String>,
        Option<String>,
        Vec<ServiceInfo>,
        ContainerPaths,
    )> {
        let paths = ContainerPaths::new(spec);
        let services: Vec<(&String, &ContainerSpec)> = spec
            .services
            .iter()
            .filter(|(_, s)| !s.image.trim().is_empty())
            .collect();
        // Parse everything before creating anything.
        let network_name = format!(
            "gantry-{}-{}",
            sanitize_name(&spec.run_id),
            sanitize_name(&spec.job_key)
        );
        let job = match &spec.container {
            Some(c) => Some(self.prepare(spec, &network_name, c, None, &paths)?),
            None => None,
        };
        let prepared_services = services
            .iter()
            .map(|(id, s)| self.prepare(spec, &network_name, s, Some(id), &paths))
            .collect::<BackendResult<Vec<_>>>()?;
        if job.is_none() && prepared_services.is_empty() {
            return Ok((None, None, Vec::new(), paths));
        }
        if job.is_some() {
            let workflow_dir = spec.temp.join(WORKFLOW_SUBDIR);
            for dir in [
                &spec.workspace,
                &spec.temp,
                &spec.tool_cache,
                &spec.home,
                &workflow_dir,
            ] {
                std::fs::create_dir_all(dir)?;
            }
        }

        let mut job = job;
        let mut prepared_services = prepared_services;
        // A network per job exists so services are reachable by name; without services
        // the job container goes on the default bridge (one fewer create and remove).
        let network = if prepared_services.is_empty() {
            for p in job.iter_mut() {
                p.use_default_bridge();
            }
            "bridge".to_string()
        } else {
            let (network, network_id) = self.create_network(spec, created).await?;
            for p in job.iter_mut().chain(prepared_services.iter_mut()) {
                p.set_network(&network_name, &network_id);
            }
            let _ = log.send(format!("Created network {network}"));
            network
        };
        let mut volumes: Vec<String> = Vec::new();
        for p in job.iter().chain(&prepared_services) {
            volumes.extend(p.named_volumes.iter().cloned());
        }
        self.ensure_volumes(spec, &volumes, created).await?;

        // Create and start the job container and all services concurrently.
        let job_fut = async {
            match &job {
                Some(p) => self
                    .start_one(p, "job container".into(), created, log)
                    .await
                    .map(Some),
                None => Ok(None),
            }
        };
        let svc_fut = future::try_join_all(
            prepared_services
                .iter()
                .zip(&services)
                .map(|(p, (id, _))| self.start_one(p, format!("service {id}"), created, log)),
        );
        let (job_id, svc_ids) = future::try_join(job_fut, svc_fut).await?;

        // Wait for health checks and read back port mappings, all services at once.
        let infos =
            future::try_join_all(prepared_services.iter().zip(&services).zip(&svc_ids).map(
                |((p, (id, _)), cid)| {
                    self.wait_service(id, cid, p.has_ports, p.has_health, &network, log)
                },
            ))
            .await?;
        Ok((job_id, Some(network), infos, paths))
    }

    async fn start_one(
        &self,
        p: &Prepared,
        label: String,
        created: &Registry,
        log: &mpsc::UnboundedSender<String>,
    ) -> BackendResult<String> {
        let _ = log.send(format!(
            "Starting {label} ({})",
            p.config.image.as_deref().unwrap_or("")
        ));
        let id = self.create(p, created).await?;
        self.docker
            .start_container(
                &id,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
            .map_err(|e| docker_err(&format!("start {label}"), e))?;
        Ok(id)
    }
}

#[async_trait]
impl Backend for DockerBackend {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn image_daemon(&self) -> Option<Daemon> {
        Some(self.daemon())
    }

    /// Every job removed what it created by id, but an abandoned start (a job cancelled
    /// while its services were starting) cleans up in the background and a create in
    /// flight may land after it. Whatever still carries this run's key goes before the run
    /// counts as finished; after a cancellation look twice, since the daemon may still be
    /// completing such a create.
    async fn finish_run(&self, cancelled: bool) {
        let passes = if cancelled { 2 } else { 1 };
        for pass in 0..passes {
            if pass > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
            if let Err(e) = self.cleanup_run().await {
                tracing::warn!("removing the run's docker resources: {e}");
            }
        }
    }

    async fn start(
        &self,
        spec: &JobEnvSpec,
        log: mpsc::UnboundedSender<String>,
    ) -> BackendResult<Box<dyn JobEnv>> {
        let created: Registry = Arc::default();
        // Dropping this future midway (job cancelled while a service warms up) must not
        // leak what was created so far.
        let guard = cleanup::StartGuard::new(created.clone(), &self.run_key, &spec.job_key);
        let result = self.start_inner(spec, &log, &created).await;
        let (job_container, network, services, paths) = match result {
            Ok(r) => r,
            Err(e) => {
                let leftovers = std::mem::take(&mut *created.lock().unwrap());
                if let Err(ce) = remove_created(&self.docker, leftovers).await {
                    let _ = log.send(format!("warning: cleanup after a failed start: {ce}"));
                }
                guard.disarm();
                return Err(e);
            }
        };
        // A job without `container:` runs its steps on the host.
        let host_env = match (&job_container, &self.host) {
            (Some(_), _) => None,
            (None, Some(host)) => {
                let mut host_spec = spec.clone();
                host_spec.services.clear();
                match host.start(&host_spec, log.clone()).await {
                    Ok(env) => Some(env),
                    Err(e) => {
                        let leftovers = std::mem::take(&mut *created.lock().unwrap());
                        let _ = remove_created(&self.docker, leftovers).await;
                        guard.disarm();
                        return Err(e);
                    }
                }
            }
            (None, None) => None,
        };
        let job_paths = match (&job_container, &host_env) {
            (Some(_), _) => JobPaths {
                workspace: container_workspace(&spec.workspace),
                temp: CONTAINER_TEMP.to_string(),
                tool_cache: CONTAINER_TOOL_CACHE.to_string(),
                home: Some(CONTAINER_HOME.to_string()),
            },
            (None, Some(h)) => h.paths().clone(),
            (None, None) => JobPaths {
                workspace: spec.workspace.to_string_lossy().into_owned(),
                temp: spec.temp.to_string_lossy().into_owned(),
                tool_cache: spec.tool_cache.to_string_lossy().into_owned(),
                home: None,
            },
        };
        guard.disarm();
        Ok(Box::new(DockerJobEnv::new(
            self.docker.clone(),
            job_container,
            network,
            services,
            job_paths,
            paths,
            host_env,
            created,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_map_to_images() {
        assert_eq!(default_image_for_label("ubuntu-latest"), Some(DEBIAN_IMAGE));
        assert_eq!(default_image_for_label("Ubuntu-22.04"), Some(DEBIAN_IMAGE));
        assert_eq!(default_image_for_label("ubuntu-slim"), Some(DEBIAN_IMAGE));
        assert_eq!(default_image_for_label("self-hosted"), None);
        assert_eq!(default_image_for_label("busybox"), Some(BUSYBOX_IMAGE));
        assert_eq!(default_image_for_label("windows-latest"), None);
    }

    #[test]
    fn path_translation() {
        let spec = JobEnvSpec {
            run_id: "r".into(),
            job_key: "j".into(),
            workspace: "/runner/_work/repo/repo".into(),
            temp: "/runner/_work/_temp".into(),
            tool_cache: "/runner/tools".into(),
            home: "/runner/_work/_temp/_github_home".into(),
            container: None,
            services: indexmap::IndexMap::new(),
        };
        let p = ContainerPaths::new(&spec);
        assert_eq!(
            p.to_container(Path::new("/runner/_work/repo/repo")),
            "/__w/repo/repo"
        );
        assert_eq!(
            p.to_container(Path::new("/runner/_work/repo/repo/a/b.txt")),
            "/__w/repo/repo/a/b.txt"
        );
        assert_eq!(
            p.to_container(Path::new("/runner/_work/_temp/x.sh")),
            "/__w/_temp/x.sh"
        );
        assert_eq!(
            p.to_container(Path::new("/runner/_work/_temp/_github_workflow/event.json")),
            "/github/workflow/event.json"
        );
        assert_eq!(
            p.to_container(Path::new("/runner/_work/_temp/_github_home/.npmrc")),
            "/github/home/.npmrc"
        );
        assert_eq!(p.to_container(Path::new("/runner/tools/node")), "/__t/node");
        assert_eq!(p.to_container(Path::new("/etc/passwd")), "/etc/passwd");
        assert_eq!(
            p.to_container(Path::new("/runner/_work/repo/repository")),
            "/runner/_work/repo/repository"
        );
        assert_eq!(
            container_workspace(Path::new("/")),
            "/__w/workspace/workspace"
        );
        assert_eq!(sanitize_name("run 1/job:a"), "run-1-job-a");
    }
}
