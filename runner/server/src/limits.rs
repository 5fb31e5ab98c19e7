//! The server's limits on what one run may take (`limits:` of the config). The job timeout
//! cap is the engine's (`RunConfig::job_timeout_cap`, applied where a job's timeout is
//! computed); the run timeout is the launcher's: a timer per executing run that, once
//! `run_timeout_minutes` have passed, records why and cancels the run as the API's cancel
//! does (processes and containers stopped, the run `cancelled`).

use std::sync::Arc;
use std::time::Duration;

use gantry_engine::masker::Masker;
use gantry_engine::run::JobTimeoutCap;
use tokio_util::sync::CancellationToken;

use crate::state::{App, LiveEvent};
use crate::store_reports::NewAnnotation;
use crate::store_runs::RunRecord;

/// The engine's cap on every job's timeout, from `limits.job_timeout_minutes`.
pub fn job_timeout_cap(app: &App) -> JobTimeoutCap {
    JobTimeoutCap {
        minutes: app.cfg.limits.job_timeout_minutes,
        setting: "the server's job_timeout_minutes".into(),
    }
}

/// Why a run was cancelled at its timeout (each unfinished job's log, an annotation).
pub fn run_timeout_reason(minutes: f64) -> String {
    format!(
        "the run exceeded the server's run_timeout_minutes ({})",
        gantry_expr::format_number(minutes)
    )
}

/// Starts the run's timer: when `limits.run_timeout_minutes` pass before the task is
/// aborted (the run ended), the run is recorded cancelled with the reason and `cancel`
/// stops it. Waits for approvals count: they are part of the run.
pub fn start_run_timer(
    app: Arc<App>,
    run: RunRecord,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let minutes = app.cfg.limits.run_timeout_minutes;
    // A limit too large for a duration never fires.
    let after = Duration::try_from_secs_f64(minutes * 60.0).unwrap_or(Duration::MAX);
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(after) => {}
            // Cancelled otherwise (the API, a concurrency group, shutdown): nothing to add.
            _ = cancel.cancelled() => return,
        }
        let reason = run_timeout_reason(minutes);
        tracing::warn!(run_id = run.id, repo = %run.repo, "{reason}");
        if let Err(e) = record_timeout(&app, &run, &reason).await {
            tracing::error!(run_id = run.id, "recording the run timeout: {e}");
        }
        // As the API's cancel: the engine stops the steps and records the jobs cancelled.
        cancel.cancel();
    })
}

/// The run and its unfinished jobs completed `cancelled` (GitHub's conclusion for a
/// timed-out run), the reason at the end of each unfinished job's log and as one failure
/// annotation on the run's page and in the check-run annotations API.
async fn record_timeout(
    app: &App,
    run: &RunRecord,
    reason: &str,
) -> Result<(), crate::store::StoreError> {
    let open: Vec<_> = app
        .store
        .run_jobs(run.id, run.run_attempt)
        .await?
        .into_iter()
        .filter(|j| j.status != "completed")
        .collect();
    if !app.store.cancel_run(run.id).await? {
        return Ok(()); // It completed meanwhile.
    }
    let masker = Masker::new();
    for (i, job) in open.iter().enumerate() {
        let text = format!("##[error]{reason}\n");
        let seq = app.store.append_log(job.id, &text, &masker).await?;
        app.announce(LiveEvent::Log {
            job_id: job.id,
            seq,
            text: Arc::from(text.as_str()),
        });
        if i == 0 {
            let a = NewAnnotation {
                level: "failure".into(),
                message: reason.to_string(),
                title: Some("Run timeout".into()),
                ..Default::default()
            };
            app.store.record_annotation(run.id, job.id, &a).await?;
        }
        app.announce(LiveEvent::Job {
            run_id: run.id,
            job_id: job.id,
        });
    }
    app.announce(LiveEvent::Run {
        repo: run.repo.clone(),
        run_id: run.id,
    });
    Ok(())
}
