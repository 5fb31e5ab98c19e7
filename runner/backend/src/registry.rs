//! Backends by name, and where a job's `runs-on` labels place it.
//!
//! A run holds one [`BackendRegistry`]: each backend is registered under a name with what
//! it can run, and connected on first use (a run of host jobs never talks to Docker). A
//! job's labels give a [`Placement`] (a backend's name and, for a backend that runs images,
//! the image); the job asks the registry for that backend. A new backend (kubernetes) is
//! one more [`BackendRegistry::register`] and one more name `-P` and the server's `labels:`
//! can name; nothing above the registry changes.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use indexmap::IndexMap;
use tokio::sync::OnceCell;

use super::{Backend, BackendError, BackendResult};

/// The backend that runs steps as processes of this machine.
pub const HOST: &str = "host";
/// The backend that runs job containers and services in Docker.
pub const DOCKER: &str = "docker";

/// Where a job runs: a registered backend and, for a backend that runs images, the image
/// its steps run in when the job names no `container:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub backend: String,
    pub image: Option<String>,
}

impl Placement {
    /// Steps on this machine.
    pub fn host() -> Self {
        Placement {
            backend: HOST.into(),
            image: None,
        }
    }

    /// Steps in a container of `image`.
    pub fn image(image: impl Into<String>) -> Self {
        Placement {
            backend: DOCKER.into(),
            image: Some(image.into()),
        }
    }

    /// A `-P LABEL=VALUE` value, as act spells it: `host` or `-self-hosted` for this
    /// machine, anything else an image.
    pub fn from_flag(value: &str) -> Self {
        if value.eq_ignore_ascii_case(HOST) || value == "-self-hosted" {
            Placement::host()
        } else {
            Placement::image(value)
        }
    }
}

type Connect = Box<dyn Fn() -> BoxFuture<'static, BackendResult<Arc<dyn Backend>>> + Send + Sync>;

struct Entry {
    /// Can start job containers and service containers.
    runs_images: bool,
    connect: Connect,
    /// The first connect's outcome; a failure is kept as its message (every later job
    /// gets the same answer without trying again).
    backend: OnceCell<Result<Arc<dyn Backend>, String>>,
}

/// The backends a run may use, each connected at most once.
pub struct BackendRegistry {
    entries: IndexMap<&'static str, Entry>,
}

impl BackendRegistry {
    /// Nothing registered.
    pub fn empty() -> Self {
        BackendRegistry {
            entries: IndexMap::new(),
        }
    }

    /// This machine's backends: `host` (given) and `docker` (the daemon of `DOCKER_HOST`
    /// or the local socket, connected when a job first needs it; a job without
    /// `container:` but with services runs its steps on `host`).
    pub fn local(host: Arc<dyn Backend>) -> Self {
        let mut r = BackendRegistry::empty();
        let h = host.clone();
        r.register(HOST, false, move || {
            let h = h.clone();
            Box::pin(async move { Ok(h) })
        });
        r.register(DOCKER, true, move || {
            let host = host.clone();
            Box::pin(async move {
                super::docker::DockerBackend::connect()
                    .await
                    .map(|d| Arc::new(d.with_host_backend(host)) as Arc<dyn Backend>)
                    .map_err(|e| {
                        BackendError::Unavailable(format!("cannot connect to Docker: {e}"))
                    })
            })
        });
        r
    }

    /// Registers (or replaces) the backend `name`; `connect` runs on its first use.
    pub fn register<F>(&mut self, name: &'static str, runs_images: bool, connect: F)
    where
        F: Fn() -> BoxFuture<'static, BackendResult<Arc<dyn Backend>>> + Send + Sync + 'static,
    {
        self.entries.insert(
            name,
            Entry {
                runs_images,
                connect: Box::new(connect),
                backend: OnceCell::new(),
            },
        );
    }

    /// The backend for a job at `placement`. A job with a `container:` or services needs a
    /// backend that runs images: its placement's when that one does, else the first
    /// registered that does (a `-P ubuntu-latest=host` job with a `container:` runs in
    /// Docker, as on GitHub's self-hosted runners).
    pub async fn for_job(
        &self,
        placement: &Placement,
        needs_images: bool,
    ) -> BackendResult<Arc<dyn Backend>> {
        match self.entries.get(placement.backend.as_str()) {
            Some(e) if e.runs_images || !needs_images => self.get(&placement.backend).await,
            Some(_) => self.images().await,
            None => Err(self.unknown(&placement.backend)),
        }
    }

    /// The backend `name`, connected on first use.
    pub async fn get(&self, name: &str) -> BackendResult<Arc<dyn Backend>> {
        let entry = self.entries.get(name).ok_or_else(|| self.unknown(name))?;
        entry
            .backend
            .get_or_init(|| async { (entry.connect)().await.map_err(|e| e.to_string()) })
            .await
            .clone()
            .map_err(BackendError::Unavailable)
    }

    /// The first backend that runs images, connected: for what needs an image daemon
    /// (`docker://` steps, container actions, `docker/*` built-ins) and jobs with a
    /// `container:` or services.
    pub async fn images(&self) -> BackendResult<Arc<dyn Backend>> {
        let name = self
            .entries
            .iter()
            .find(|(_, e)| e.runs_images)
            .map(|(n, _)| *n)
            .ok_or_else(|| {
                BackendError::Unavailable("this runner has no backend that runs containers".into())
            })?;
        self.get(name).await
    }

    fn unknown(&self, name: &str) -> BackendError {
        BackendError::UnknownBackend {
            name: name.into(),
            known: self.entries.keys().copied().collect::<Vec<_>>().join(", "),
        }
    }

    /// The backends this run connected to (what the run's end must tidy up).
    pub fn connected(&self) -> Vec<Arc<dyn Backend>> {
        self.entries
            .values()
            .filter_map(|e| e.backend.get().and_then(|r| r.as_ref().ok()).cloned())
            .collect()
    }
}

/// The placement for jobs whose labels name no `-P` mapping: Gantry's own images for the
/// labels they stand in for (`ubuntu-*`, `ubuntu`, `linux` → the Debian image, `busybox`).
pub fn default_placement(label: &str) -> Option<Placement> {
    super::docker::default_image_for_label(label).map(Placement::image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_as_act_spells_them() {
        assert_eq!(Placement::from_flag("host"), Placement::host());
        assert_eq!(Placement::from_flag("HOST"), Placement::host());
        assert_eq!(Placement::from_flag("-self-hosted"), Placement::host());
        assert_eq!(
            Placement::from_flag("node:16-buster-slim"),
            Placement::image("node:16-buster-slim")
        );
    }

    #[tokio::test]
    async fn a_container_job_placed_on_the_host_goes_to_the_image_backend() {
        let host = super::super::host::default_backend();
        let mut r = BackendRegistry::empty();
        let h = host.clone();
        r.register(HOST, false, move || {
            let h = h.clone();
            Box::pin(async move { Ok(h) })
        });
        r.register(DOCKER, true, || {
            Box::pin(async { Err(BackendError::Unavailable("no daemon here".into())) })
        });
        let b = r.for_job(&Placement::host(), false).await.unwrap();
        assert_eq!(b.name(), "host");
        // Needing containers, the host placement asks the image backend (which fails to
        // connect here: the error is the docker entry's, cached).
        let e = r.for_job(&Placement::host(), true).await.err().unwrap();
        assert_eq!(e.to_string(), "no daemon here");
        assert_eq!(r.connected().len(), 1);
        let e = r
            .for_job(
                &Placement {
                    backend: "kubernetes".into(),
                    image: None,
                },
                false,
            )
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("no backend 'kubernetes'") && e.contains("host, docker"),
            "{e}"
        );
    }
}
