//! The HTTP server: routes, `/healthz`, `/metrics`, start-up and graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::config::{self, ServerConfig};
use crate::state::App;
use crate::store::Store;
use crate::{api, hooks};

/// Command-line overrides of `gantry serve`.
#[derive(Debug, Default, Clone)]
pub struct ServeOptions {
    pub config: Option<PathBuf>,
    pub database: Option<String>,
    pub listen: Option<SocketAddr>,
    pub data: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// The config with the command line's overrides applied.
pub fn load_config(opts: &ServeOptions) -> Result<ServerConfig, ServeError> {
    let mut cfg = match &opts.config {
        Some(p) => config::load(p, &|k| std::env::var(k).ok())?,
        None => ServerConfig::embedded_default(),
    };
    if let Some(l) = opts.listen {
        cfg.listen = l;
    }
    if let Some(d) = &opts.data {
        cfg.data = d.clone();
    }
    if let Some(db) = &opts.database {
        cfg.database = Some(db.clone());
    }
    Ok(cfg)
}

pub fn router(app: Arc<App>) -> Router {
    let repo = "/api/v3/repos/{owner}/{repo}";
    let hooks = Router::new()
        .route("/hooks/github", post(hooks::github))
        .route("/hooks/gitea", post(hooks::gitea))
        .route("/hooks/forgejo", post(hooks::forgejo))
        .route("/hooks/gitlab", post(hooks::gitlab))
        // The hook handlers enforce GitHub's 25 MB cap themselves (and record refusals).
        .layer(DefaultBodyLimit::disable());
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(&format!("{repo}/actions/runs"), get(api::list_runs))
        .route(
            &format!("{repo}/actions/workflows"),
            get(api::list_workflows),
        )
        .route(
            &format!("{repo}/actions/workflows/{{workflow}}/runs"),
            get(api::list_workflow_runs),
        )
        .route(
            &format!("{repo}/actions/workflows/{{workflow}}/dispatches"),
            post(api::dispatch_workflow),
        )
        .route(&format!("{repo}/actions/runs/{{run}}"), get(api::get_run))
        .route(
            &format!("{repo}/actions/runs/{{run}}/jobs"),
            get(api::run_jobs),
        )
        .route(
            &format!("{repo}/actions/runs/{{run}}/attempts/{{attempt}}/jobs"),
            get(api::attempt_jobs),
        )
        .route(
            &format!("{repo}/actions/runs/{{run}}/cancel"),
            post(api::cancel_run),
        )
        .route(
            &format!("{repo}/actions/runs/{{run}}/rerun"),
            post(api::rerun),
        )
        .route(
            &format!("{repo}/actions/runs/{{run}}/rerun-failed-jobs"),
            post(api::rerun_failed),
        )
        .route(&format!("{repo}/actions/jobs/{{job}}"), get(api::get_job))
        .route(
            &format!("{repo}/actions/jobs/{{job}}/logs"),
            get(api::job_logs),
        )
        .route(
            &format!("{repo}/dispatches"),
            post(api::repository_dispatch),
        )
        .route("/api/v3/gantry/deliveries", get(api::deliveries))
        .merge(crate::api_deploy::routes())
        .merge(crate::api_reports::routes())
        .merge(hooks)
        .merge(crate::ui::routes())
        .with_state(app)
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    match app.store.run_counts().await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response(),
    }
}

/// Prometheus text: queue depth, runs and jobs by status, job durations, pickup latency,
/// webhook deliveries by result.
async fn metrics(State(app): State<Arc<App>>) -> Response {
    let (Ok(runs), Ok(deliveries)) = (
        app.store.run_counts().await,
        app.store.delivery_counts().await,
    ) else {
        return (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response();
    };
    let queued = runs
        .iter()
        .find(|(s, _)| s == "queued")
        .map_or(0, |(_, n)| *n);
    let mut out = String::new();
    out.push_str("# HELP gantry_queue_depth Runs waiting to start.\n");
    out.push_str("# TYPE gantry_queue_depth gauge\n");
    out.push_str(&format!("gantry_queue_depth {queued}\n"));
    out.push_str("# HELP gantry_runs Workflow runs by status.\n");
    out.push_str("# TYPE gantry_runs gauge\n");
    for (status, n) in &runs {
        out.push_str(&format!("gantry_runs{{status=\"{status}\"}} {n}\n"));
    }
    match app.store.job_counts().await {
        Ok(jobs) => {
            out.push_str("# HELP gantry_jobs Jobs by status.\n");
            out.push_str("# TYPE gantry_jobs gauge\n");
            for (status, n) in &jobs {
                out.push_str(&format!("gantry_jobs{{status=\"{status}\"}} {n}\n"));
            }
        }
        Err(_) => {
            return (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response();
        }
    }
    app.exec_metrics.render(&mut out);
    out.push_str("# HELP gantry_webhook_deliveries_total Webhook deliveries by result.\n");
    out.push_str("# TYPE gantry_webhook_deliveries_total counter\n");
    for (result, n) in &deliveries {
        out.push_str(&format!(
            "gantry_webhook_deliveries_total{{result=\"{result}\"}} {n}\n"
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// Runs the server, its run launcher included, until SIGTERM or Ctrl-C.
pub async fn serve(cfg: ServerConfig) -> Result<(), ServeError> {
    serve_with(cfg, true).await
}

/// Runs the server until SIGTERM or Ctrl-C. Before it serves, the deliveries a previous
/// server accepted and did not process are processed (oldest first). Prints `listening on
/// http://ADDR` to stderr once it serves (with `--listen 127.0.0.1:0` that line gives the
/// port). `execute`: start the run launcher (without it runs stay queued:
/// `--no-executor`). Shutdown stops accepting connections, lets requests in flight finish,
/// waits a few seconds for deliveries being processed, cancels the runs executing here
/// and waits until they are recorded.
pub async fn serve_with(cfg: ServerConfig, execute: bool) -> Result<(), ServeError> {
    std::fs::create_dir_all(&cfg.data)?;
    let store = Store::open(&cfg.database_url()).await?;
    let addr = cfg.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Listen { addr, source })?;
    let local = listener.local_addr()?;
    let app = App::new(cfg, store);
    // Connections wait in the listen queue meanwhile: nothing new is taken before the
    // deliveries already accepted.
    let recovered = crate::processing::recover(&app).await?;
    if recovered > 0 {
        eprintln!("gantry serve: processed {recovered} deliveries left by the last server");
    }
    let launcher = execute.then(|| crate::launcher::Launcher::start(app.clone()));
    eprintln!(
        "gantry serve: listening on http://{local} ({} repositories, {} users{})",
        app.cfg.repositories.len(),
        app.cfg.users.len(),
        if execute { "" } else { ", no executor" }
    );
    // On the signal the listener stops and the runs are cancelled at the same time, so
    // that a long-lived connection still open cannot keep the runs going.
    let stop = tokio_util::sync::CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        on_signal.cancel();
    });
    let stopped = stop.clone();
    let draining = stop.clone();
    let processing = app.clone();
    let http = async move {
        axum::serve(listener, router(app))
            .with_graceful_shutdown(async move { stopped.cancelled().await })
            .await
    };
    // Deliveries being processed get a few seconds to queue their runs; what is not done
    // then is still `accepted` with its payload, processed at the next start.
    let deliveries = async move {
        draining.cancelled().await;
        let waiting = processing.processing.len();
        if waiting > 0
            && !processing
                .processing
                .wait_idle(crate::processing::SHUTDOWN_WAIT)
                .await
        {
            eprintln!(
                "gantry serve: {} of {waiting} deliveries not processed yet; the next start processes them",
                processing.processing.len()
            );
        }
    };
    let runs = async move {
        stop.cancelled().await;
        if let Some(l) = launcher {
            eprintln!("gantry serve: stopping the runs in progress");
            l.shutdown().await;
        }
    };
    let (served, (), ()) = tokio::join!(http, runs, deliveries);
    served?;
    eprintln!("gantry serve: stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let term_recv = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term_recv => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
