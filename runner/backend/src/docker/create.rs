//! Turning a [`ContainerSpec`] into a Docker create request, and creating it (with the
//! missing-image policy: no pull unless a registry is plausible).

use std::collections::HashMap;
use std::path::Path;

use bollard::auth::DockerCredentials;
use bollard::models::{ContainerCreateBody, EndpointSettings, HostConfig, NetworkingConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures_util::TryStreamExt;

use super::cleanup::owner_state;
use super::options::{self, ParsedOptions, VolumeSpec};
use super::{
    BUILD_HINT, CONTAINER_HOME, ContainerPaths, DOCKER_SOCK, DockerBackend, LABEL_HOST, LABEL_JOB,
    LABEL_MANAGED, LABEL_PID, LABEL_PID_START, LABEL_PIDNS, LABEL_ROLE, LABEL_RUN, LABEL_RUN_KEY,
    Registry, container_workspace, docker_err, is_status, sanitize_name, short_id,
};
use crate::owner::{OwnerState, ProcessOwner};
use crate::{BackendError, BackendResult, ContainerSpec, JobEnvSpec};

/// Everything parsed up front so that bad input fails before anything is created.
pub(super) struct Prepared {
    pub name: String,
    pub config: ContainerCreateBody,
    pub credentials: Option<DockerCredentials>,
    pub named_volumes: Vec<String>,
    pub has_ports: bool,
    pub has_health: bool,
}

impl Prepared {
    /// Point the create request at the created network (by id).
    /// A job container without services needs no network of its own: put it on Docker's
    /// default bridge (no aliases there) and save the create/remove round trips.
    pub(super) fn use_default_bridge(&mut self) {
        if let Some(hc) = self.config.host_config.as_mut() {
            hc.network_mode = Some("bridge".to_string());
        }
        self.config.networking_config = None;
    }

    pub(super) fn set_network(&mut self, from: &str, to: &str) {
        if let Some(hc) = self.config.host_config.as_mut() {
            hc.network_mode = Some(to.to_string());
        }
        if let Some(eps) = self
            .config
            .networking_config
            .as_mut()
            .and_then(|n| n.endpoints_config.as_mut())
            && let Some(ep) = eps.remove(from)
        {
            eps.insert(to.to_string(), ep);
        }
    }
}

impl DockerBackend {
    pub(super) fn labels(
        &self,
        spec: &JobEnvSpec,
        role: &str,
        extra: &[(String, String)],
    ) -> HashMap<String, String> {
        let mut l: HashMap<String, String> = extra.iter().cloned().collect();
        l.insert(LABEL_MANAGED.into(), "true".into());
        l.insert(LABEL_RUN.into(), spec.run_id.clone());
        l.insert(LABEL_JOB.into(), spec.job_key.clone());
        l.insert(LABEL_ROLE.into(), role.into());
        l.insert(LABEL_RUN_KEY.into(), self.run_key.clone());
        let me = ProcessOwner::current();
        l.insert(LABEL_HOST.into(), me.host_id.clone());
        l.insert(LABEL_PIDNS.into(), me.pid_ns.to_string());
        l.insert(LABEL_PID.into(), me.pid.to_string());
        l.insert(LABEL_PID_START.into(), me.start_time.to_string());
        l
    }

    /// Build the create body for a service (`service = Some(id)`) or the job container.
    pub(super) fn prepare(
        &self,
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
            labels: Some(self.labels(spec, &role, &opts.labels)),
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
    pub(super) async fn create(&self, p: &Prepared, created: &Registry) -> BackendResult<String> {
        let image = p.config.image.clone().unwrap_or_default();
        let is_job = p
            .config
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_ROLE))
            .is_some_and(|r| r == "job");
        let used = if is_job {
            ImageUse::JobContainer
        } else {
            ImageUse::Named
        };
        let mut name = p.name.clone();
        let mut opts = CreateContainerOptionsBuilder::default().name(&name).build();
        let mut pulled = false;
        let mut attempts = 0;
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
                    self.pull_if_plausible(&image, used, p.credentials.clone())
                        .await?;
                }
                Err(e) if is_status(&e, 409) && attempts < 3 => {
                    // The name is taken: by a leftover of a provably dead gantry (removed),
                    // or by anything else — a live run, another host's run on a shared
                    // daemon, a container we cannot judge — (take another name).
                    attempts += 1;
                    let labels = self
                        .docker
                        .inspect_container(&name, None)
                        .await
                        .ok()
                        .and_then(|i| i.config?.labels);
                    let ours = labels
                        .as_ref()
                        .is_some_and(|l| l.get(LABEL_MANAGED).map(String::as_str) == Some("true"));
                    if ours && attempts == 1 && owner_state(labels.as_ref()) == OwnerState::Gone {
                        let rm = RemoveContainerOptionsBuilder::default()
                            .force(true)
                            .v(true)
                            .build();
                        let _ = self.docker.remove_container(&name, Some(rm)).await;
                    } else {
                        name = format!("{}-{}", p.name, short_id());
                        opts = CreateContainerOptionsBuilder::default().name(&name).build();
                    }
                }
                Err(e) => return Err(docker_err(&format!("create container {name}"), e)),
            }
        }
    }

    async fn pull_if_plausible(
        &self,
        image: &str,
        used: ImageUse,
        credentials: Option<DockerCredentials>,
    ) -> BackendResult<()> {
        let missing = |extra: String| BackendError::MissingImage {
            image: image.to_string(),
            hint: format!("{}{extra}", missing_image_hint(image, used)),
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
}

/// Which part of a job named a missing image: what the hint can suggest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageUse {
    /// The image a `runs-on` label maps to (`-P LABEL=IMAGE`).
    Label,
    /// The job container: its `container:` or its `runs-on` label's image (the backend
    /// cannot tell which).
    JobContainer,
    /// An image the workflow names: `container:`, a service, a `docker://` step, a
    /// container action.
    Named,
}

/// What to do about a missing image, the same wherever it is missing (job container,
/// service, `-P` label, `docker://` step, container action, preflight): point the name at
/// a local image with `--image`, for a label's image choose another with `-P`, and build
/// Gantry's own images.
pub fn missing_image_hint(image: &str, used: ImageUse) -> String {
    let mut hint = format!(
        "map it to a local image with --image {image}=LOCAL (or `images:` in .gantry/config.yml)"
    );
    match used {
        ImageUse::Label => hint.push_str(
            ", map the runs-on label to another image with -P LABEL=IMAGE, or run the job on \
             this machine with --host",
        ),
        ImageUse::JobContainer => hint.push_str(
            "; when a runs-on label chose it, -P LABEL=IMAGE maps the label to another image \
             (--host runs the job on this machine)",
        ),
        ImageUse::Named => {}
    }
    if image.starts_with("gantry/") {
        hint.push_str(&format!("; for Gantry's own images, {BUILD_HINT}"));
    } else {
        hint.push_str(&format!(
            "; or build it locally (docker build -t {image} …)"
        ));
    }
    hint
}

/// The registry host of an image reference, when it names one (`ghcr.io/x/y`,
/// `localhost:5000/x`); Docker Hub references give `None`.
pub fn registry_of(image: &str) -> Option<String> {
    let (first, rest) = image.split_once('/')?;
    let _ = rest;
    (first.contains('.') || first.contains(':') || first == "localhost").then(|| first.to_string())
}

/// `repo[:tag][@digest]` → (repo, tag-or-digest); the default tag is `latest`.
pub(super) fn split_tag(image: &str) -> (&str, &str) {
    if let Some((repo, digest)) = image.split_once('@') {
        return (repo, digest);
    }
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    }
}
#[cfg(test)]
mod tests {
    use super::*;

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
}
