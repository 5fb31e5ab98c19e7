//! Docker backend: a job's steps run through `docker exec` in a job container, next to its
//! service containers on a per-job bridge network (GHA-SEMANTICS §7).
//!
//! * One bollard client per backend (API version negotiated once; the daemon may speak 1.41).
//! * Nothing is pulled when an image exists locally; a missing image is an immediate
//!   [`BackendError::MissingImage`] naming `gantry image build`, unless the reference names a
//!   registry or carries credentials, in which case one pull is attempted.
//! * Everything created (network, containers, named volumes) carries the labels
//!   `dev.gantry.managed=true`, `gantry.run=<run_id>`, `gantry.job=<job_key>`, is recorded in a
//!   per-job registry as soon as it exists, and is removed by [`JobEnv::stop`], by a failed
//!   `start`, by dropping the environment without stopping it, or by [`prune`].
//!
//! Container path layout (job container; see [`ContainerPaths`]):
//!
//! | host (`JobEnvSpec`)   | job container                     |
//! |-----------------------|-----------------------------------|
//! | `workspace`           | `/__w/<name>/<name>` (`<name>` = the workspace dir's basename) |
//! | `temp`                | `/__w/_temp`                      |
//! | `tool_cache`          | `/__t`                            |
//! | `home`                | `/github/home` (`HOME`)           |
//! | `/var/run/docker.sock`| same path (when present)          |
//!
//! All are bind mounts: files written by steps appear on the host at once.

mod env;
pub mod options;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::errors::Error as DockerError;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthStatusEnum, HostConfig, NetworkCreateRequest,
    NetworkingConfig, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, ListVolumesOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use futures_util::{StreamExt, TryStreamExt, future};
use indexmap::IndexMap;
use tokio::sync::mpsc;

pub use env::DockerJobEnv;
use options::{ParsedOptions, VolumeSpec};

use super::{
    Backend, BackendError, BackendResult, ContainerSpec, JobEnv, JobEnvSpec, JobPaths, ServiceInfo,
};

/// Label set on everything gantry creates.
pub const LABEL_MANAGED: &str = "dev.gantry.managed";
pub const LABEL_RUN: &str = "gantry.run";
pub const LABEL_JOB: &str = "gantry.job";
/// `job` or `service:<id>`.
pub const LABEL_ROLE: &str = "gantry.role";
/// PID of the gantry process that created the resource (for [`prune_stale`]).
pub const LABEL_PID: &str = "gantry.pid";

pub const BUSYBOX_IMAGE: &str = "gantry/busybox:latest";
pub const DEBIAN_IMAGE: &str = "gantry/debian:bookworm";
/// Hint attached to [`BackendError::MissingImage`].
pub const BUILD_HINT: &str = "run 'gantry image build' (or docker/build-images.sh)";

/// Container-side paths (see the module docs).
pub const CONTAINER_TEMP: &str = "/__w/_temp";
pub const CONTAINER_TOOL_CACHE: &str = "/__t";
pub const CONTAINER_HOME: &str = "/github/home";
const DOCKER_SOCK: &str = "/var/run/docker.sock";

/// The image a `runs-on` label maps to when a job runs in Docker without `container:`.
pub fn default_image_for_label(label: &str) -> Option<&'static str> {
    const DEBIAN_LABELS: [&str; 6] = [
        "ubuntu-latest",
        "ubuntu-24.04",
        "ubuntu-22.04",
        "ubuntu-20.04",
        "self-hosted",
        "linux",
    ];
    let label = label.trim();
    if DEBIAN_LABELS.iter().any(|l| l.eq_ignore_ascii_case(label)) {
        Some(DEBIAN_IMAGE)
    } else if label.eq_ignore_ascii_case("busybox") {
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

/// Everything one job environment created, in creation order, for cleanup.
#[derive(Debug, Default)]
pub(crate) struct Created {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
}

impl Created {
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.networks.is_empty() && self.volumes.is_empty()
    }
}

pub(crate) type Registry = Arc<Mutex<Created>>;

/// Remove resources: containers (forced, with anonymous volumes), then networks, then
/// volumes. Missing resources are fine. Returns the first real error.
pub(crate) async fn remove_created(docker: &Docker, c: Created) -> BackendResult<()> {
    let rm = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    let results = future::join_all(
        c.containers
            .iter()
            .map(|id| docker.remove_container(id, Some(rm.clone()))),
    )
    .await;
    let mut first_err = None;
    let mut note = |what: &str, r: Result<(), DockerError>| {
        if let Err(e) = r {
            // 404: already gone; 409 "removal already in progress": someone else is on it.
            if !is_status(&e, 404) && !is_status(&e, 409) && first_err.is_none() {
                first_err = Some(docker_err(what, e));
            }
        }
    };
    for r in results {
        note("remove container", r);
    }
    for n in &c.networks {
        note("remove network", docker.remove_network(n).await);
    }
    for v in &c.volumes {
        let r = docker
            .remove_volume(v, None::<bollard::query_parameters::RemoveVolumeOptions>)
            .await;
        note("remove volume", r);
    }
    first_err.map_or(Ok(()), Err)
}

/// What [`prune`] removed.
#[derive(Debug, Default, Clone)]
pub struct PruneReport {
    pub containers: usize,
    pub networks: usize,
    pub volumes: usize,
}

/// Connect to the daemon from the environment (`DOCKER_HOST` or the local socket) and
/// negotiate the API version.
pub async fn connect() -> BackendResult<Docker> {
    let docker = Docker::connect_with_defaults()
        .map_err(|e| BackendError::Message(format!("docker: cannot connect: {e}")))?;
    docker
        .negotiate_version()
        .await
        .map_err(|e| BackendError::Message(format!("docker: daemon not reachable: {e}")))
}

/// Remove everything labelled `dev.gantry.managed=true` (only one run's when `run_id` is
/// given): containers, networks and volumes.
pub async fn prune(run_id: Option<&str>) -> BackendResult<PruneReport> {
    let docker = connect().await?;
    prune_with(&docker, run_id, None).await
}

/// Remove gantry-managed resources whose creating gantry process is gone (label
/// `gantry.pid` names no live process here): leftovers of crashed or killed runs, while
/// runs in progress keep theirs.
pub async fn prune_stale() -> BackendResult<PruneReport> {
    let docker = connect().await?;
    prune_matching(&docker, None, None, true).await
}

/// Whether the gantry process that created a resource with these labels is still alive.
fn owner_alive(labels: Option<&HashMap<String, String>>) -> bool {
    let pid = labels
        .and_then(|l| l.get(LABEL_PID))
        .and_then(|p| p.parse::<u32>().ok());
    pid.is_some_and(|p| p == std::process::id() || Path::new(&format!("/proc/{p}")).exists())
}

/// [`prune`] with a given client, optionally narrowed to one job of the run.
pub async fn prune_with(
    docker: &Docker,
    run_id: Option<&str>,
    job_key: Option<&str>,
) -> BackendResult<PruneReport> {
    prune_matching(docker, run_id, job_key, false).await
}

async fn prune_matching(
    docker: &Docker,
    run_id: Option<&str>,
    job_key: Option<&str>,
    stale_only: bool,
) -> BackendResult<PruneReport> {
    let mut labels = vec![format!("{LABEL_MANAGED}=true")];
    if let Some(r) = run_id {
        labels.push(format!("{LABEL_RUN}={r}"));
    }
    if let Some(j) = job_key {
        labels.push(format!("{LABEL_JOB}={j}"));
    }
    let filters: HashMap<String, Vec<String>> = HashMap::from([("label".to_string(), labels)]);
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(|e| docker_err("list containers", e))?;
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(|e| docker_err("list networks", e))?;
    let volumes = docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(|e| docker_err("list volumes", e))?
        .volumes
        .unwrap_or_default();
    let keep = |labels: Option<&HashMap<String, String>>| stale_only && owner_alive(labels);
    let created = Created {
        containers: containers
            .into_iter()
            .filter(|c| !keep(c.labels.as_ref()))
            .filter_map(|c| c.id)
            .collect(),
        networks: networks
            .into_iter()
            .filter(|n| !keep(n.labels.as_ref()))
            .filter_map(|n| n.id)
            .collect(),
        volumes: volumes
            .into_iter()
            .filter(|v| !keep(Some(&v.labels)))
            .map(|v| v.name)
            .collect(),
    };
    let report = PruneReport {
        containers: created.containers.len(),
        networks: created.networks.len(),
        volumes: created.volumes.len(),
    };
    remove_created(docker, created).await?;
    Ok(report)
}

/// The Docker backend. Cheap to clone; holds one negotiated bollard client.
#[derive(Clone)]
pub struct DockerBackend {
    docker: Docker,
    host: Option<Arc<dyn Backend>>,
}

impl DockerBackend {
    /// Connect (`DOCKER_HOST` or the local socket) and negotiate the API version.
    pub async fn connect() -> BackendResult<Self> {
        Ok(Self::from_client(connect().await?))
    }

    /// Use an already negotiated client.
    pub fn from_client(docker: Docker) -> Self {
        DockerBackend { docker, host: None }
    }

    /// Backend used to run the steps of a job that has services but no `container:` (the
    /// steps run on the host, the services in Docker).
    pub fn with_host_backend(mut self, host: Arc<dyn Backend>) -> Self {
        self.host = Some(host);
        self
    }

    pub fn client(&self) -> &Docker {
        &self.docker
    }
}

/// Everything parsed up front so that bad input fails before anything is created.
struct Prepared {
    name: String,
    config: ContainerCreateBody,
    credentials: Option<DockerCredentials>,
    named_volumes: Vec<String>,
    has_ports: bool,
    has_health: bool,
}

impl DockerBackend {
    fn labels(
        spec: &JobEnvSpec,
        role: &str,
        extra: &[(String, String)],
    ) -> HashMap<String, String> {
        let mut l: HashMap<String, String> = extra.iter().cloned().collect();
        l.insert(LABEL_MANAGED.into(), "true".into());
        l.insert(LABEL_RUN.into(), spec.run_id.clone());
        l.insert(LABEL_JOB.into(), spec.job_key.clone());
        l.insert(LABEL_ROLE.into(), role.into());
        l.insert(LABEL_PID.into(), std::process::id().to_string());
        l
    }

    /// Build the create body for a service (`service = Some(id)`) or the job container.
    fn prepare(
        spec: &JobEnvSpec,
        network: &str,
        c: &ContainerSpec,
        service: Option<&str>,
        paths: &ContainerPaths,
    ) -> BackendResult<Prepared> {
        let what = match service {
            Some(id) => format!("service '{id}'"),
            None => "job container".to_string(),
        };
        let bad = |e: String| BackendError::Message(format!("{what}: {e}"));
        let opts: ParsedOptions = options::parse_options(c.options.as_deref()).map_err(bad)?;
        let mut ports = c.ports.clone();
        ports.extend(opts.ports.iter().cloned());
        let port_map = options::port_map(&ports).map_err(bad)?;

        let mut binds = Vec::new();
        let mut anon = Vec::new();
        let mut named_volumes = Vec::new();
        for v in c.volumes.iter().chain(&opts.volumes) {
            match options::parse_volume(v, &spec.workspace).map_err(bad)? {
                VolumeSpec::Bind { bind, named } => {
                    binds.push(bind);
                    named_volumes.extend(named);
                }
                VolumeSpec::Anonymous(dst) => anon.push(dst),
            }
        }

        let mut env: Vec<String> = Vec::new();
        let (role, name, entrypoint, cmd, workdir) = match service {
            Some(id) => {
                let entrypoint = c.entrypoint.clone().or(opts.entrypoint.clone());
                (
                    format!("service:{id}"),
                    format!(
                        "gantry-{}-{}-{}",
                        sanitize_name(&spec.run_id),
                        sanitize_name(&spec.job_key),
                        sanitize_name(id)
                    ),
                    entrypoint,
                    c.command.clone(),
                    opts.workdir.clone(),
                )
            }
            None => {
                if opts.entrypoint.is_some() || c.entrypoint.is_some() {
                    return Err(bad(
                        "--entrypoint is not supported for the job container (as on GitHub)".into(),
                    ));
                }
                // The job container stays alive with `tail -f /dev/null`, like GitHub's runner.
                binds.splice(0..0, paths.binds());
                if Path::new(DOCKER_SOCK).exists() {
                    binds.push(format!("{DOCKER_SOCK}:{DOCKER_SOCK}"));
                }
                env.push(format!("HOME={CONTAINER_HOME}"));
                env.push("GITHUB_ACTIONS=true".into());
                if !c.env.contains_key("CI") {
                    env.push("CI=true".into());
                }
                (
                    "job".to_string(),
                    format!(
                        "gantry-{}-{}",
                        sanitize_name(&spec.run_id),
                        sanitize_name(&spec.job_key)
                    ),
                    Some(vec!["tail".to_string()]),
                    Some(vec!["-f".to_string(), "/dev/null".to_string()]),
                    Some(
                        opts.workdir
                            .clone()
                            .unwrap_or_else(|| container_workspace(&spec.workspace)),
                    ),
                )
            }
        };
        env.extend(c.env.iter().map(|(k, v)| format!("{k}={v}")));
        env.extend(opts.env.iter().map(|(k, v)| format!("{k}={v}")));

        let mut endpoints = HashMap::new();
        endpoints.insert(
            network.to_string(),
            EndpointSettings {
                aliases: service.map(|id| vec![id.to_string()]),
                ..Default::default()
            },
        );
        let has_ports = !port_map.is_empty();
        let host_config = HostConfig {
            binds: (!binds.is_empty()).then_some(binds),
            network_mode: Some(network.to_string()),
            port_bindings: has_ports.then(|| port_map.clone()),
            tmpfs: (!opts.tmpfs.is_empty()).then(|| opts.tmpfs.clone()),
            privileged: opts.privileged.then_some(true),
            nano_cpus: opts.nano_cpus,
            memory: opts.memory,
            shm_size: opts.shm_size,
            cap_add: (!opts.cap_add.is_empty()).then(|| opts.cap_add.clone()),
            cap_drop: (!opts.cap_drop.is_empty()).then(|| opts.cap_drop.clone()),
            extra_hosts: (!opts.extra_hosts.is_empty()).then(|| opts.extra_hosts.clone()),
            init: opts.init.then_some(true),
            readonly_rootfs: opts.read_only.then_some(true),
            security_opt: (!opts.security_opt.is_empty()).then(|| opts.security_opt.clone()),
            ..Default::default()
        };
        let has_health = opts
            .health
            .as_ref()
            .is_some_and(|h| h.test.as_deref() != Some(&["NONE".to_string()][..]));
        let config = ContainerCreateBody {
            image: Some(c.image.clone()),
            env: Some(env),
            entrypoint,
            cmd,
            working_dir: workdir,
            user: opts.user.clone(),
            hostname: opts.hostname.clone(),
            healthcheck: opts.health.clone(),
            labels: Some(Self::labels(spec, &role, &opts.labels)),
            exposed_ports: has_ports.then(|| port_map.keys().cloned().collect()),
            volumes: (!anon.is_empty()).then_some(anon),
            host_config: Some(host_config),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(endpoints),
            }),
            ..Default::default()
        };
        let credentials = c.credentials.as_ref().map(|cr| DockerCredentials {
            username: Some(cr.username.clone()),
            password: Some(cr.password.clone()),
            serveraddress: registry_of(&c.image),
            ..Default::default()
        });
        Ok(Prepared {
            name,
            config,
            credentials,
            named_volumes,
            has_ports,
            has_health,
        })
    }

    /// Create a container; a missing image is pulled only when a registry is plausible.
    async fn create(&self, p: &Prepared, created: &Registry) -> BackendResult<String> {
        let image = p.config.image.clone().unwrap_or_default();
        let opts = CreateContainerOptionsBuilder::default()
            .name(&p.name)
            .build();
        let mut pulled = false;
        let mut removed_stale = false;
        loop {
            match self
                .docker
                .create_container(Some(opts.clone()), p.config.clone())
                .await
            {
                Ok(r) => {
                    created.lock().unwrap().containers.push(r.id.clone());
                    return Ok(r.id);
                }
                Err(e) if is_status(&e, 404) && !pulled => {
                    pulled = true;
                    self.pull_if_plausible(&image, p.credentials.clone())
                        .await?;
                }
                Err(e) if is_status(&e, 409) && !removed_stale => {
                    // A leftover with the same name (a crashed earlier attempt of this run):
                    // remove it when it is ours, then retry once.
                    removed_stale = true;
                    let ours = self
                        .docker
                        .inspect_container(&p.name, None)
                        .await
                        .ok()
                        .and_then(|i| i.config?.labels)
                        .is_some_and(|l| l.get(LABEL_MANAGED).map(String::as_str) == Some("true"));
                    if !ours {
                        return Err(docker_err(&format!("create container {}", p.name), e));
                    }
                    let rm = RemoveContainerOptionsBuilder::default()
                        .force(true)
                        .v(true)
                        .build();
                    let _ = self.docker.remove_container(&p.name, Some(rm)).await;
                }
                Err(e) => return Err(docker_err(&format!("create container {}", p.name), e)),
            }
        }
    }

    async fn pull_if_plausible(
        &self,
        image: &str,
        credentials: Option<DockerCredentials>,
    ) -> BackendResult<()> {
        let missing = |extra: String| BackendError::MissingImage {
            image: image.to_string(),
            hint: format!("{BUILD_HINT}{extra}"),
        };
        if credentials.is_none() && registry_of(image).is_none() {
            return Err(missing(String::new()));
        }
        let (repo, tag) = split_tag(image);
        let opts = CreateImageOptionsBuilder::default()
            .from_image(repo)
            .tag(tag)
            .build();
        let result: Result<Vec<_>, _> = self
            .docker
            .create_image(Some(opts), None, credentials)
            .try_collect()
            .await;
        result
            .map(|_| ())
            .map_err(|e| missing(format!("; pulling it failed: {e}")))
    }

    async fn create_network(&self, spec: &JobEnvSpec, created: &Registry) -> BackendResult<String> {
        let name = format!(
            "gantry-{}-{}",
            sanitize_name(&spec.run_id),
            sanitize_name(&spec.job_key)
        );
        let req = NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".into()),
            labels: Some(Self::labels(spec, "network", &[])),
            ..Default::default()
        };
        let mut retried = false;
        loop {
            match self.docker.create_network(req.clone()).await {
                Ok(r) => {
                    created.lock().unwrap().networks.push(r.id.clone());
                    return Ok(name);
                }
                Err(e) if is_status(&e, 409) && !retried => {
                    // Leftovers of an earlier attempt with the same run id and job key.
                    retried = true;
                    prune_with(&self.docker, Some(&spec.run_id), Some(&spec.job_key)).await?;
                }
                Err(e) => return Err(docker_err(&format!("create network {name}"), e)),
            }
        }
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
                labels: Some(Self::labels(spec, "volume", &[])),
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
            Some(c) => Some(Self::prepare(spec, &network_name, c, None, &paths)?),
            None => None,
        };
        let prepared_services = services
            .iter()
            .map(|(id, s)| Self::prepare(spec, &network_name, s, Some(id), &paths))
            .collect::<BackendResult<Vec<_>>>()?;
        if job.is_none() && prepared_services.is_empty() {
            return Ok((None, None, Vec::new(), paths));
        }
        if job.is_some() {
            for dir in [&spec.workspace, &spec.temp, &spec.tool_cache, &spec.home] {
                std::fs::create_dir_all(dir)?;
            }
        }

        let network = self.create_network(spec, created).await?;
        let _ = log.send(format!("Created network {network}"));
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

    /// Poll a service until it is ready (no health check, or `healthy`); read its ports.
    async fn wait_service(
        &self,
        id: &str,
        cid: &str,
        has_ports: bool,
        has_health: bool,
        network: &str,
        log: &mpsc::UnboundedSender<String>,
    ) -> BackendResult<ServiceInfo> {
        let mut info = ServiceInfo {
            id: id.to_string(),
            container_id: cid.to_string(),
            network: Some(network.to_string()),
            ports: IndexMap::new(),
        };
        // Nothing to wait for or read back: skip the inspect (unless the image may carry its
        // own HEALTHCHECK, which only an inspect reveals).
        let deadline = Instant::now() + Duration::from_secs(15 * 60);
        let mut delay = Duration::from_millis(50);
        let mut announced = false;
        loop {
            let inspect = self
                .docker
                .inspect_container(cid, None)
                .await
                .map_err(|e| docker_err(&format!("inspect service {id}"), e))?;
            let state = inspect.state.clone().unwrap_or_default();
            let health = state.health.clone();
            let status = health.as_ref().and_then(|h| h.status);
            let running = state.running.unwrap_or(false);
            let checked = has_health
                || matches!(status, Some(s) if s != HealthStatusEnum::NONE && s != HealthStatusEnum::EMPTY);
            let fail = |why: String| async move {
                let logs = self.tail_logs(cid, 20).await;
                let last_check = health
                    .as_ref()
                    .and_then(|h| h.log.as_ref()?.last()?.output.clone())
                    .map(|o| format!("\nlast health check output:\n{}", o.trim_end()))
                    .unwrap_or_default();
                BackendError::Message(format!(
                    "service '{id}' {why}; one or more containers failed to start\n--- last log lines of service '{id}' ---\n{logs}{last_check}"
                ))
            };
            if !running && checked {
                let code = state.exit_code.unwrap_or(-1);
                return Err(fail(format!("exited with code {code} before becoming healthy")).await);
            }
            match status {
                Some(HealthStatusEnum::UNHEALTHY) => return Err(fail("is unhealthy".into()).await),
                Some(HealthStatusEnum::STARTING) => {
                    if !announced {
                        announced = true;
                        let _ = log.send(format!("Waiting for service {id} to become healthy"));
                    }
                    if Instant::now() > deadline {
                        return Err(fail("did not become healthy within 15 minutes".into()).await);
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_millis(500));
                    continue;
                }
                _ => {}
            }
            if !running {
                let _ = log.send(format!(
                    "warning: service {id} is not running (exit code {})",
                    state.exit_code.unwrap_or(-1)
                ));
            } else if status == Some(HealthStatusEnum::HEALTHY) {
                let _ = log.send(format!("Service {id} is healthy"));
            }
            if has_ports {
                let ports = inspect
                    .network_settings
                    .and_then(|n| n.ports)
                    .unwrap_or_default();
                let mut keys: Vec<_> = ports.into_iter().collect();
                keys.sort_by(|a, b| a.0.cmp(&b.0));
                for (k, bindings) in keys {
                    if let Some(hp) = bindings
                        .unwrap_or_default()
                        .into_iter()
                        .find_map(|b| b.host_port)
                    {
                        info.ports.insert(options::port_key(&k), hp);
                    }
                }
            }
            return Ok(info);
        }
    }

    /// The last `n` log lines of a container, stdout and stderr merged.
    async fn tail_logs(&self, cid: &str, n: usize) -> String {
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&n.to_string())
            .build();
        let mut out = String::new();
        let mut stream = self.docker.logs(cid, Some(opts));
        while let Some(Ok(chunk)) = stream.next().await {
            out.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
        if out.trim().is_empty() {
            "(no output)".into()
        } else {
            out.trim_end().to_string()
        }
    }
}

/// The registry host of an image reference, when it names one (`ghcr.io/x/y`,
/// `localhost:5000/x`); Docker Hub references give `None`.
pub fn registry_of(image: &str) -> Option<String> {
    let (first, rest) = image.split_once('/')?;
    let _ = rest;
    (first.contains('.') || first.contains(':') || first == "localhost").then(|| first.to_string())
}

/// `repo[:tag][@digest]` → (repo, tag-or-digest); the default tag is `latest`.
fn split_tag(image: &str) -> (&str, &str) {
    if let Some((repo, digest)) = image.split_once('@') {
        return (repo, digest);
    }
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    }
}

#[async_trait]
impl Backend for DockerBackend {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn start(
        &self,
        spec: &JobEnvSpec,
        log: mpsc::UnboundedSender<String>,
    ) -> BackendResult<Box<dyn JobEnv>> {
        let created: Registry = Arc::default();
        let result = self.start_inner(spec, &log, &created).await;
        let (job_container, network, services, paths) = match result {
            Ok(r) => r,
            Err(e) => {
                let leftovers = std::mem::take(&mut *created.lock().unwrap());
                if let Err(ce) = remove_created(&self.docker, leftovers).await {
                    let _ = log.send(format!("warning: cleanup after a failed start: {ce}"));
                }
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
        assert_eq!(default_image_for_label("self-hosted"), Some(DEBIAN_IMAGE));
        assert_eq!(default_image_for_label("busybox"), Some(BUSYBOX_IMAGE));
        assert_eq!(default_image_for_label("windows-latest"), None);
    }

    #[test]
    fn registries_and_tags() {
        assert_eq!(registry_of("postgres:16"), None);
        assert_eq!(registry_of("gantry/busybox:latest"), None);
        assert_eq!(registry_of("ghcr.io/o/i:1").as_deref(), Some("ghcr.io"));
        assert_eq!(
            registry_of("localhost:5000/i").as_deref(),
            Some("localhost:5000")
        );
        assert_eq!(split_tag("a/b:1"), ("a/b", "1"));
        assert_eq!(
            split_tag("localhost:5000/b"),
            ("localhost:5000/b", "latest")
        );
        assert_eq!(split_tag("b@sha256:00"), ("b", "sha256:00"));
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
            services: IndexMap::new(),
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
