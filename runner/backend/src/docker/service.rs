//! Waiting for services: health-check polling, port read-back, logs on failure.

use std::time::{Duration, Instant};

use bollard::models::HealthStatusEnum;
use bollard::query_parameters::LogsOptionsBuilder;
use futures_util::StreamExt;
use indexmap::IndexMap;
use tokio::sync::mpsc;

use super::{DockerBackend, docker_err, options};
use crate::{BackendError, BackendResult, ServiceInfo};

impl DockerBackend {
    /// Poll a service until it is ready (no health check, or `healthy`); read its ports.
    pub(super) async fn wait_service(
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
        tail_logs(&self.docker, cid, n).await
    }
}

/// The last `n` log lines of a container, stdout and stderr merged.
pub(crate) async fn tail_logs(docker: &bollard::Docker, cid: &str, n: usize) -> String {
    let opts = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .tail(&n.to_string())
        .build();
    let mut out = String::new();
    let mut stream = docker.logs(cid, Some(opts));
    while let Some(Ok(chunk)) = stream.next().await {
        out.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
    }
    if out.trim().is_empty() {
        "(no output)".into()
    } else {
        out.trim_end().to_string()
    }
}
