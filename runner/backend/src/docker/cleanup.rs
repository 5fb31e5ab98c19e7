//! Cleanup: the per-job registry of created resources, their removal, and `prune`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use futures_util::future;

use super::{
    LABEL_HOST, LABEL_JOB, LABEL_MANAGED, LABEL_PID, LABEL_PID_START, LABEL_PIDNS, LABEL_RUN,
    LABEL_RUN_KEY, docker_err, is_status,
};
use crate::owner::{OwnerState, ProcessOwner};
use crate::{BackendError, BackendResult};

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
/// given): containers, networks and volumes, whoever created them.
pub async fn prune(run_id: Option<&str>) -> BackendResult<PruneReport> {
    let docker = connect().await?;
    prune_with(&docker, run_id, None).await
}

/// Remove gantry-managed resources whose creating gantry process is provably gone (same
/// host id and PID namespace as this process, and no process with the labelled pid and
/// start time): leftovers of crashed or killed runs. Runs in progress, other machines'
/// runs on a shared daemon and resources without complete owner labels are kept.
pub async fn prune_stale() -> BackendResult<PruneReport> {
    let docker = connect().await?;
    prune_matching(&docker, &[], |labels| {
        owner_state(labels) != OwnerState::Gone
    })
    .await
}

/// What is known about the gantry process that created a resource with these labels.
pub fn owner_state(labels: Option<&HashMap<String, String>>) -> OwnerState {
    let get = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    ProcessOwner::judge(
        get(LABEL_HOST),
        get(LABEL_PIDNS).and_then(|v| v.parse().ok()),
        get(LABEL_PID).and_then(|v| v.parse().ok()),
        get(LABEL_PID_START).and_then(|v| v.parse().ok()),
    )
}

/// [`prune`] with a given client, optionally narrowed to one job of the run.
pub async fn prune_with(
    docker: &Docker,
    run_id: Option<&str>,
    job_key: Option<&str>,
) -> BackendResult<PruneReport> {
    let mut labels = Vec::new();
    if let Some(r) = run_id {
        labels.push((LABEL_RUN, r));
    }
    if let Some(j) = job_key {
        labels.push((LABEL_JOB, j));
    }
    prune_matching(docker, &labels, |_| false).await
}

/// Remove every gantry-managed resource carrying all of `labels` (`key`, `value`).
pub(crate) async fn remove_labelled(
    docker: &Docker,
    labels: &[(&str, &str)],
) -> BackendResult<PruneReport> {
    prune_matching(docker, labels, |_| false).await
}

/// Run keys of the Docker backends of this process (see [`remove_all_of_this_process`]).
static RUN_KEYS: Mutex<Vec<String>> = Mutex::new(Vec::new());

pub(crate) fn register_run_key(key: &str) {
    let mut keys = RUN_KEYS.lock().unwrap_or_else(|e| e.into_inner());
    keys.push(key.to_string());
}

/// Remove everything any Docker backend of this process created and that is still there
/// (by its run keys). For a process about to exit after a forced stop.
pub async fn remove_all_of_this_process() -> BackendResult<PruneReport> {
    let keys = RUN_KEYS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut total = PruneReport::default();
    if keys.is_empty() {
        return Ok(total);
    }
    let docker = connect().await?;
    for k in keys {
        let r = remove_labelled(&docker, &[(LABEL_RUN_KEY, &k)]).await?;
        total.containers += r.containers;
        total.networks += r.networks;
        total.volumes += r.volumes;
    }
    Ok(total)
}

/// Lists gantry-managed resources with all of `labels` and removes those `keep` says no to.
async fn prune_matching(
    docker: &Docker,
    labels: &[(&str, &str)],
    keep: impl Fn(Option<&HashMap<String, String>>) -> bool,
) -> BackendResult<PruneReport> {
    let mut filter = vec![format!("{LABEL_MANAGED}=true")];
    filter.extend(labels.iter().map(|(k, v)| format!("{k}={v}")));
    let filters: HashMap<String, Vec<String>> = HashMap::from([("label".to_string(), filter)]);
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

/// Remove resources on a helper thread with its own runtime and client, so it works from
/// `Drop` even while the caller's runtime shuts down. With `scope` (run key, job key), also
/// remove anything else labelled for that job of this run (a create that was in flight
/// when the caller gave up) — never another run's: the run key is unique to this backend.
pub(crate) fn cleanup_in_background(created: Created, scope: Option<(String, String)>) {
    if created.is_empty() && scope.is_none() {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("gantry-docker-cleanup".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(docker) = connect().await else { return };
                let _ = remove_created(&docker, created).await;
                if let Some((run_key, job)) = scope {
                    let labels = [(LABEL_RUN_KEY, run_key.as_str()), (LABEL_JOB, job.as_str())];
                    let _ = remove_labelled(&docker, &labels).await;
                }
            });
        });
}

/// Cleans up a `start` that was abandoned (its future dropped, e.g. on cancellation, or a
/// panic) unless disarmed.
pub(crate) struct StartGuard {
    created: Registry,
    scope: Option<(String, String)>,
}

impl StartGuard {
    pub fn new(created: Registry, run_key: &str, job_key: &str) -> Self {
        StartGuard {
            created,
            scope: Some((run_key.to_string(), job_key.to_string())),
        }
    }

    pub fn disarm(mut self) {
        self.scope = None;
    }
}

impl Drop for StartGuard {
    fn drop(&mut self) {
        if self.scope.is_none() {
            return;
        }
        let created = match self.created.lock() {
            Ok(mut g) => std::mem::take(&mut *g),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        };
        cleanup_in_background(created, self.scope.take());
    }
}
