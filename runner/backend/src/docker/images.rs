//! The Docker daemon's verbs for everything that uses Docker besides a job's own
//! containers: images (find, pull, build, tag, push) and one-off containers run to
//! completion (container actions). Container actions, the `docker/*` built-ins and
//! preflight reach the daemon only through [`Daemon`]; with the job backend beside it,
//! this directory is the only code that speaks bollard (issue 13: a new backend or a
//! remote executor replaces one module, not call sites across the engine).

use std::collections::HashMap;
use std::path::PathBuf;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters as q;
use futures_util::StreamExt;
use indexmap::IndexMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::create::split_tag;
use crate::{BackendError, BackendResult, ExitStatus, Output};

/// A connection to the Docker daemon (API version negotiated).
#[derive(Clone)]
pub struct Daemon {
    docker: Docker,
}

/// Registry credentials (from `docker/login-action`), kept in memory only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryLogin {
    pub username: Option<String>,
    pub password: Option<String>,
    /// The registry host (`ghcr.io`, `localhost:5000`).
    pub server: String,
}

impl RegistryLogin {
    fn credentials(&self) -> DockerCredentials {
        DockerCredentials {
            username: self.username.clone(),
            password: self.password.clone(),
            serveraddress: Some(self.server.clone()),
            ..Default::default()
        }
    }
}

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct BuildSpec {
    pub context: PathBuf,
    /// Dockerfile path relative to the context (default `Dockerfile`).
    pub dockerfile: String,
    pub tags: Vec<String>,
    pub labels: HashMap<String, String>,
    pub build_args: HashMap<String, String>,
    pub target: Option<String>,
    pub no_cache: bool,
    pub pull: bool,
}

/// Why [`Daemon::find_image`] did not find an image; reads after the image's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageNotFound {
    #[error("is not in the local Docker daemon (Gantry never pulls)")]
    Absent,
    /// The daemon's answer to the inspection.
    #[error("cannot be inspected: {0}")]
    Daemon(String),
}

/// A failed build: the error and the whole build log up to it.
#[derive(Debug, Clone)]
pub struct BuildFailure {
    pub error: String,
    pub log: Vec<String>,
}

impl BuildFailure {
    /// The error, then the whole build log (its last line is the error line): it goes to
    /// the step's log, which the run record keeps (masked like every step line).
    pub fn message(&self) -> String {
        let mut m = format!("docker build failed: {}", self.error);
        if !self.log.is_empty() {
            m.push_str("\nthe build's log:");
            for l in &self.log {
                m.push_str("\n  ");
                m.push_str(l);
            }
        }
        m
    }
}

/// A failed push: the image, the error (the registry's answer as the daemon relayed it) and
/// the push's log up to it.
#[derive(Debug, Clone)]
pub struct PushFailure {
    pub image: String,
    pub error: String,
    pub log: Vec<String>,
}

impl PushFailure {
    /// The error, then the push's whole log (its last line is the error line), as
    /// [`BuildFailure::message`] does: it goes to the step's log, which the run record keeps.
    pub fn message(&self) -> String {
        let mut m = format!("docker push {} failed: {}", self.image, self.error);
        if !self.log.is_empty() {
            m.push_str("\nthe push's log:");
            for l in &self.log {
                m.push_str("\n  ");
                m.push_str(l);
            }
        }
        m
    }
}

/// A container run to completion and removed (`--rm`): a container action's stage.
#[derive(Debug, Clone, Default)]
pub struct DockerRunSpec {
    pub image: String,
    pub entrypoint: Option<String>,
    pub args: Vec<String>,
    /// The complete environment (already translated to container paths).
    pub env: IndexMap<String, String>,
    /// `(host, container)` bind mounts.
    pub mounts: Vec<(String, String)>,
    pub workdir: String,
    /// The job network (service containers reachable by label).
    pub network: Option<String>,
}

impl Daemon {
    /// Connects (`DOCKER_HOST` or the local socket) and negotiates the API version.
    pub async fn connect() -> BackendResult<Daemon> {
        let docker = Docker::connect_with_defaults()
            .map_err(|e| BackendError::Unavailable(format!("cannot connect to Docker: {e}")))?;
        let docker = docker.negotiate_version().await.map_err(|e| {
            BackendError::Unavailable(format!("cannot reach the Docker daemon: {e}"))
        })?;
        Ok(Daemon { docker })
    }

    pub(super) fn from_client(docker: Docker) -> Daemon {
        Daemon { docker }
    }

    /// Whether the image is in the daemon.
    pub async fn has_image(&self, image: &str) -> bool {
        self.docker.inspect_image(image).await.is_ok()
    }

    /// Whether the image is in the daemon, saying why not (absent, or the daemon failed).
    pub async fn find_image(&self, image: &str) -> Result<(), ImageNotFound> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Err(ImageNotFound::Absent),
            Err(e) => Err(ImageNotFound::Daemon(e.to_string())),
        }
    }

    /// Pulls `image`; the error is the daemon's.
    pub async fn pull(&self, image: &str) -> BackendResult<()> {
        let (repo, tag) = split_tag(image);
        let opts = q::CreateImageOptionsBuilder::default()
            .from_image(repo)
            .tag(tag)
            .build();
        let mut s = self.docker.create_image(Some(opts), None, None);
        while let Some(item) = s.next().await {
            item.map_err(|e| BackendError::Message(e.to_string()))?;
        }
        Ok(())
    }

    /// Builds `spec` from `context_tar` (the context as a tar archive) and tags it; returns
    /// the image id and the build log. The error carries the log up to the failure.
    pub async fn build(
        &self,
        spec: &BuildSpec,
        context_tar: Vec<u8>,
    ) -> Result<(String, Vec<String>), BuildFailure> {
        let fail = |error: String, log: &[String]| BuildFailure {
            error,
            log: log.to_vec(),
        };
        let first_tag = spec
            .tags
            .first()
            .cloned()
            .unwrap_or_else(|| format!("gantry-build:{}", uuid::Uuid::new_v4().simple()));
        let mut b = q::BuildImageOptionsBuilder::default()
            .dockerfile(if spec.dockerfile.is_empty() {
                "Dockerfile"
            } else {
                &spec.dockerfile
            })
            .t(&first_tag)
            .rm(true)
            // A failed step's container is removed too (else it is left unlabelled, unseen
            // by `gantry prune`).
            .forcerm(true)
            .nocache(spec.no_cache)
            .buildargs(&spec.build_args)
            .labels(&spec.labels);
        if let Some(t) = &spec.target {
            b = b.target(t);
        }
        if spec.pull {
            b = b.pull("1");
        }
        let mut logs = Vec::new();
        let mut stream = self.docker.build_image(
            b.build(),
            None,
            Some(bollard::body_full(context_tar.into())),
        );
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(s) = info.stream {
                        logs.extend(
                            s.lines()
                                .filter(|l| !l.trim().is_empty())
                                .map(str::to_string),
                        );
                    }
                    if let Some(e) = info.error_detail {
                        let msg = e.message.unwrap_or_default();
                        logs.push(msg.clone());
                        return Err(fail(msg, &logs));
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    logs.push(msg.clone());
                    return Err(fail(msg, &logs));
                }
            }
        }
        let id = self
            .docker
            .inspect_image(&first_tag)
            .await
            .map_err(|e| fail(format!("built image not found: {e}"), &logs))?
            .id
            .unwrap_or_default();
        for t in spec.tags.iter().skip(1) {
            let (repo, tag) = split_tag(t);
            let opts = q::TagImageOptionsBuilder::default()
                .repo(repo)
                .tag(tag)
                .build();
            self.docker
                .tag_image(&id, Some(opts))
                .await
                .map_err(|e| fail(format!("cannot tag {t}: {e}"), &logs))?;
        }
        Ok((id, logs))
    }

    /// Pushes `image` (with `login` when given); returns the digest the registry reported
    /// (empty when it reported none) and the push's log (the daemon's status lines, one per
    /// layer and stage, without the byte-progress lines). The error carries the log up to
    /// the failure and the registry's answer as the daemon relayed it.
    pub async fn push(
        &self,
        image: &str,
        login: Option<&RegistryLogin>,
    ) -> Result<(String, Vec<String>), PushFailure> {
        let (repo, tag) = split_tag(image);
        let opts = q::PushImageOptionsBuilder::default().tag(tag).build();
        let mut s = self
            .docker
            .push_image(repo, Some(opts), login.map(RegistryLogin::credentials));
        let mut digest = String::new();
        let mut log: Vec<String> = Vec::new();
        let fail = |error: String, log: &[String]| PushFailure {
            image: image.to_string(),
            error,
            log: log.to_vec(),
        };
        while let Some(item) = s.next().await {
            let info = match item {
                Ok(info) => info,
                Err(e) => {
                    let msg = match e {
                        bollard::errors::Error::DockerStreamError { error } => error,
                        e => e.to_string(),
                    };
                    log.push(msg.clone());
                    return Err(fail(msg, &log));
                }
            };
            if let Some(e) = info.error_detail {
                let msg = e.message.unwrap_or_default();
                log.push(msg.clone());
                return Err(fail(msg, &log));
            }
            if let Some(st) = info.status {
                // "Pushing" lines are byte counts, many per layer: the stages are kept.
                let progress = info.progress_detail.is_some_and(|p| p.current.is_some());
                let st = st.trim().to_string();
                if !progress && !st.is_empty() && log.last() != Some(&st) {
                    log.push(st.clone());
                }
                if let Some(d) = st.split("digest: ").nth(1) {
                    digest = d.split_whitespace().next().unwrap_or("").to_string();
                }
            }
        }
        Ok((digest, log))
    }

    /// Runs a container to completion and removes it, streaming its output; `cancel`
    /// kills it.
    pub async fn run_container(
        &self,
        spec: &DockerRunSpec,
        out: mpsc::Sender<Output>,
        cancel: CancellationToken,
    ) -> BackendResult<ExitStatus> {
        use bollard::models::{ContainerCreateBody, HostConfig};
        let docker = &self.docker;
        let name = format!("gantry-action-{}", uuid::Uuid::new_v4().simple());
        let binds: Vec<String> = spec
            .mounts
            .iter()
            .map(|(h, c)| format!("{h}:{c}"))
            .collect();
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: spec.entrypoint.clone().map(|e| vec![e]),
            cmd: if spec.args.is_empty() && spec.entrypoint.is_none() {
                None
            } else {
                Some(spec.args.clone())
            },
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            working_dir: Some(spec.workdir.clone()),
            labels: Some(
                [("gantry.action".to_string(), "true".to_string())]
                    .into_iter()
                    .collect(),
            ),
            host_config: Some(HostConfig {
                binds: Some(binds),
                network_mode: spec.network.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let opts = q::CreateContainerOptionsBuilder::default()
            .name(&name)
            .build();
        let created = docker
            .create_container(Some(opts), body)
            .await
            .map_err(|e| {
                BackendError::Message(format!("cannot create the action container: {e}"))
            })?;
        let id = created.id;
        let remove = || async {
            let o = q::RemoveContainerOptionsBuilder::default()
                .force(true)
                .build();
            let _ = docker.remove_container(&id, Some(o)).await;
        };
        if let Err(e) = docker
            .start_container(&id, None::<q::StartContainerOptions>)
            .await
        {
            remove().await;
            return Err(BackendError::Message(format!(
                "cannot start the action container: {e}"
            )));
        }
        let logs_opts = q::LogsOptionsBuilder::default()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .build();
        let mut logs = docker.logs(&id, Some(logs_opts));
        let mut cancelled = false;
        loop {
            tokio::select! {
                item = logs.next() => match item {
                    Some(Ok(bollard::container::LogOutput::StdErr { message })) => {
                        let _ = out.send(Output::Stderr(message.to_vec())).await;
                    }
                    Some(Ok(o)) => {
                        let _ = out.send(Output::Stdout(o.into_bytes().to_vec())).await;
                    }
                    Some(Err(_)) | None => break,
                },
                _ = cancel.cancelled(), if !cancelled => {
                    cancelled = true;
                    let _ = docker.kill_container(&id, None::<q::KillContainerOptions>).await;
                }
            }
        }
        let mut wait = docker.wait_container(&id, None::<q::WaitContainerOptions>);
        let code = match wait.next().await {
            Some(Ok(r)) => r.status_code,
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
            _ => -1,
        };
        remove().await;
        if cancelled {
            return Ok(ExitStatus::Cancelled);
        }
        Ok(ExitStatus::Code(code as i32))
    }
}
