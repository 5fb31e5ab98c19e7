//! The local executor's side of a job (see [`crate::executor`]): from an admitted
//! [`JobAssignment`] to its end. `runs-on` → backend, the job's directories, the job
//! environment, the steps in order, job outputs, `environment.url`, and tear-down in every
//! case. The gate was asked before this runs and verification happens after it returns,
//! both on the scheduler's side.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gantry_expr::Value;
use indexmap::IndexMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    SERVICE_LOG_LINES_FAILED, SERVICE_LOG_LINES_OK, at, eval_container, eval_number, job_value,
    placement, runner_log, secrets_value,
};
use crate::backend::{Backend, ContainerSpec, JobEnv, JobEnvSpec};
use crate::events::{Status, Text};
use crate::executor::{ExecutedJob, JobAssignment};
use crate::expr_scope::{Ctx, StatusMode};
use crate::github_contexts::{self as context, JobFacts};
use crate::run::RunShared;
use crate::shared_masker::Masker;
use crate::step::background::BackgroundSteps;
use crate::step::{JobState, StepRunner};
use crate::workspace::sanitize;

/// The contexts a job sees before its environment exists: `inputs`, `vars`, `secrets`,
/// `needs`, `strategy`, `matrix` and a provisional `github` (host paths, no temp or event
/// file yet). The scheduler's side evaluates `continue-on-error` and `environment` with
/// the same contexts.
pub(crate) fn base_contexts(shared: &RunShared, job: &JobAssignment, workspace: &str) -> Ctx {
    let mut ctx = Ctx::new();
    ctx.set("inputs", job.inputs.clone());
    ctx.set("vars", context::string_map_value(job.vars.iter()));
    ctx.set("secrets", secrets_value(&job.secrets));
    ctx.set("needs", job.needs.clone());
    ctx.set("strategy", job.strategy.value());
    ctx.set(
        "matrix",
        job.matrix
            .as_ref()
            .map(|m| Value::from_json(&serde_json::Value::Object(m.clone())))
            .unwrap_or(Value::Null),
    );
    let (github, _) = facts(shared, job, workspace, "", "", "");
    ctx.set("github", github);
    ctx
}

/// The `github` and `runner` contexts of `job` with these paths (as steps see them).
fn facts(
    shared: &RunShared,
    job: &JobAssignment,
    workspace: &str,
    temp: &str,
    tool_cache: &str,
    event_path: &str,
) -> (Value, Value) {
    let f = JobFacts {
        run: &shared.facts,
        workflow_name: &job.top_workflow.name,
        workflow_path: &job.top_workflow.path,
        job_id: &job.job_id,
        workspace,
        temp,
        tool_cache,
        event_path,
        os: context::host_os(),
        arch: context::host_arch(),
        runner_name: "gantry",
    };
    (context::github_value(&f), context::runner_value(&f))
}

/// The host directory of `job`'s tree and its workspace inside it (not created).
pub(crate) fn job_tree(shared: &RunShared, key: &Text) -> super::dirs::JobTree {
    let repo_name = shared
        .snapshot
        .root
        .file_name()
        .map(|n| sanitize(&n.to_string_lossy()))
        .unwrap_or_else(|| "repo".into());
    shared.job_dirs.tree(
        &shared.snapshot,
        &shared.work_root.join(sanitize(key)),
        &repo_name,
    )
}

/// Runs one admitted job instance. `cancel` is the job's token (run cancellation,
/// fail-fast, concurrency groups).
pub(crate) async fn run_assignment(
    shared: Arc<RunShared>,
    assignment: JobAssignment,
    cancel: CancellationToken,
) -> ExecutedJob {
    let started = Instant::now();
    let a = &assignment;
    let wf = &*a.workflow;
    let job = &wf.jobs[&a.job_id];
    // Another environment's secrets are masked too: this executor runs in the process
    // that holds them.
    let masker = shared.job_masker(&a.secrets);
    let key = a.key.clone();

    let mut tree = job_tree(&shared, &key);
    let workspace = tree.workspace.clone();
    let temp_dir = tree.temp.clone();
    let home_dir = tree.job_dir.join("_home");
    let mut ctx = base_contexts(&shared, a, &workspace.display().to_string());

    let ended = |result: Status| ExecutedJob::ended(result, started.elapsed());
    // A set-up failure is reported like a failed step: in the job's log and as an error
    // annotation naming the job (shown with `-q`, kept in the run record's events).
    let fail = |msg: String, masker: &Masker| {
        super::report_setup_failure(&shared, &key, &masker.mask(&msg));
        ended(Status::Failure)
    };

    // Workflow env (G I V Sec) with --env below it, then job env.
    let env_ctx = match crate::expr_scope::job_env(&shared, wf, job, &mut ctx) {
        Ok(m) => m,
        Err(e) => return fail(e, &masker),
    };

    let Placed {
        backend,
        container,
        services,
    } = match placed(&shared, job, &ctx).await {
        Ok(p) => p,
        Err(NotPlaced::Skipped(why)) => {
            super::report_skip(&shared, &key, &why);
            return ended(Status::Skipped);
        }
        Err(NotPlaced::Failed(e)) => return fail(e, &masker),
    };

    let filled = fill_tree(&shared, &mut tree).await;
    if let Err(e) = filled {
        cleanup_dirs(&shared, &tree).await;
        return fail(format!("cannot prepare the workspace: {e}"), &masker);
    }
    let tool_cache = shared.job_dirs.tool_cache();

    let spec = JobEnvSpec {
        run_id: shared.cfg.run_id.clone(),
        job_key: sanitize(&key),
        workspace: workspace.clone(),
        temp: temp_dir.clone(),
        tool_cache: tool_cache.clone(),
        home: home_dir.clone(),
        container: container.clone(),
        services,
    };

    // Job timeout → cancellation of the job.
    let job_cancel = cancel.child_token();
    let (timeout, cancel_timeout) = match job_timeouts(&shared, &key, job, &ctx) {
        Ok(t) => t,
        Err(e) => {
            cleanup_dirs(&shared, &tree).await;
            return fail(e, &masker);
        }
    };
    let timers = JobTimers::arm(&shared, &key, &job_cancel, timeout, cancel_timeout);
    let stop_now = timers.stop_now.clone();

    // Start the environment; backend progress goes to the job's log.
    let backend_log = BackendLog::forward(&shared, &key, &masker);
    let start = tokio::select! {
        r = backend.start(&spec, backend_log.tx.clone()) => Some(r),
        _ = job_cancel.cancelled() => None,
    };
    let env: Box<dyn JobEnv> = match start {
        Some(Ok(e)) => e,
        other => {
            timers.disarm();
            backend_log.close().await;
            cleanup_dirs(&shared, &tree).await;
            return match other {
                Some(Err(e)) if !cancel.is_cancelled() => fail(format!("{e}"), &masker),
                Some(Err(e)) => {
                    super::report_setup_failure(&shared, &key, &masker.mask(&e.to_string()));
                    ended(Status::Cancelled)
                }
                _ => ended(Status::Cancelled),
            };
        }
    };

    let (github_value, default_env) =
        job_view(&shared, a, env.as_ref(), &tree.event_file, &mut ctx);
    ctx.workspace = Some(workspace.clone());

    let mut state = JobState::new(env_ctx, masker, github_value);
    let runner = step_runner(
        &shared,
        a,
        env.as_ref(),
        default_env,
        &tree,
        &job_cancel,
        &stop_now,
    );
    // Pre stages of actions (set-up), the steps, then post stages (GHA-SEMANTICS §6.8).
    runner.run_pre_stages(&mut ctx, &mut state).await;
    run_steps(&runner, job, &mut ctx, &mut state).await;
    runner.run_post_stages(&mut ctx, &mut state).await;
    timers.disarm();

    // Job outputs (§6.3).
    ctx.status = StatusMode::None;
    ctx.set("steps", Value::object(state.steps.clone()));
    ctx.set("env", context::string_map_value(state.env_ctx.iter()));
    ctx.set("job", job_value(state.status, env.as_ref()));
    let outputs = job_outputs(&shared, &key, job, &ctx, &mut state);

    tear_down(&shared, &key, env.as_ref(), &mut state).await;
    drop(runner);
    drop(env);
    backend_log.close().await;
    cleanup_dirs(&shared, &tree).await;

    let mut result = state.status;
    if timers.timed_out() && result != Status::Success {
        runner_log(
            &shared,
            &key,
            None,
            format!(
                "The job running on runner gantry has exceeded the maximum execution time of {} minutes.",
                timeout.as_secs_f64() / 60.0
            ),
        );
        result = Status::Cancelled;
    }
    ExecutedJob {
        result,
        outputs,
        environment_url: environment_url(a, job, &ctx, &state),
        duration: started.elapsed(),
    }
}

/// The step runner of the job in its started environment.
fn step_runner<'a>(
    shared: &Arc<RunShared>,
    a: &'a JobAssignment,
    env: &'a dyn JobEnv,
    default_env: IndexMap<String, String>,
    tree: &super::dirs::JobTree,
    cancel: &CancellationToken,
    stop_now: &CancellationToken,
) -> StepRunner<'a> {
    let sharing = env.sharing();
    let base_env = if sharing.runner_env {
        shared.process_env.clone()
    } else {
        IndexMap::new()
    };
    StepRunner {
        shared: shared.clone(),
        key: a.key.clone(),
        env,
        job: &a.workflow.jobs[&a.job_id],
        workflow: &a.workflow,
        base_env,
        default_env,
        sharing,
        temp_host: tree.temp.clone(),
        workspace_view: env.paths().workspace.clone(),
        workspace_host: tree.workspace.clone(),
        repo_root: a.repo_root.clone(),
        cancel: cancel.clone(),
        stop_now: stop_now.clone(),
        kill: shared.cfg.kill,
        bash_cache: std::sync::OnceLock::new(),
        slots: crate::step::background::step_slots(),
        leftovers: crate::envfile::spare::Leftovers::new(shared.spares.clone()),
    }
}

/// `timeout-minutes` and `cancel-timeout-minutes` (with how the latter was chosen), after
/// the run's default and cap (a capped timeout is said in the job's log).
fn job_timeouts(
    shared: &RunShared,
    key: &Text,
    job: &gantry_workflow::Job,
    ctx: &Ctx,
) -> Result<(Duration, (Duration, String)), String> {
    let t = eval_number(&job.timeout_minutes, ctx).map_err(|e| format!("timeout-minutes: {e}"))?;
    let (timeout, capped) = shared.cfg.job_timeout(t);
    if let Some(line) = capped {
        runner_log(shared, key, None, line);
    }
    let c = eval_number(&job.cancel_timeout_minutes, ctx)
        .map_err(|e| format!("cancel-timeout-minutes: {e}"))?;
    Ok((timeout, shared.cfg.cancel_timeout(c)))
}

/// The backend's progress lines (image checks, service health), masked into the job's log
/// until [`BackendLog::close`].
struct BackendLog {
    tx: mpsc::UnboundedSender<String>,
    fwd: tokio::task::JoinHandle<()>,
}

impl BackendLog {
    fn forward(shared: &Arc<RunShared>, key: &Text, masker: &Masker) -> BackendLog {
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let (shared, key, m) = (shared.clone(), key.clone(), masker.clone());
        let fwd = tokio::spawn(async move {
            while let Some(line) = rx.recv().await {
                runner_log(&shared, &key, None, m.mask(&line).into_owned());
            }
        });
        BackendLog { tx, fwd }
    }

    /// Waits until every line sent so far is in the log (the backend's clones of the
    /// sender are gone by then: its environment was dropped).
    async fn close(self) {
        drop(self.tx);
        let _ = self.fwd.await;
    }
}

/// The `github`, `runner` and `job` contexts as the job's steps see them (paths inside
/// its environment), set in `ctx`; returns `github` and the default environment.
fn job_view(
    shared: &RunShared,
    a: &JobAssignment,
    env: &dyn JobEnv,
    event_file: &std::path::Path,
    ctx: &mut Ctx,
) -> (Value, IndexMap<String, String>) {
    let paths = env.paths();
    let ev_path = env.to_job_path(event_file);
    let (github_value, runner_value) = facts(
        shared,
        a,
        &paths.workspace,
        &paths.temp,
        &paths.tool_cache,
        &ev_path,
    );
    let mut default_env = context::default_env(&github_value, &runner_value);
    if let Some(h) = &paths.home {
        default_env.insert("HOME".into(), h.clone());
    }
    ctx.set("github", github_value.clone());
    ctx.set("runner", runner_value);
    ctx.set("job", job_value(Status::Success, env));
    (github_value, default_env)
}

/// `environment.url` may use step outputs: evaluated at the job's end, reported to the
/// gate by the scheduler's side. Empty or secret-bearing URLs are dropped.
fn environment_url(
    a: &JobAssignment,
    job: &gantry_workflow::Job,
    ctx: &Ctx,
    state: &JobState,
) -> Option<String> {
    job.environment
        .as_ref()
        .and_then(|e| e.url.as_ref())
        .filter(|_| a.environment.is_some())
        .and_then(|u| ctx.eval_string(&u.value).ok())
        .filter(|u| !u.is_empty() && !state.masker.would_mask(u))
}

/// Where a job runs: the backend and what it starts (job container, services).
struct Placed {
    backend: Arc<dyn Backend>,
    container: Option<ContainerSpec>,
    services: IndexMap<String, ContainerSpec>,
}

enum NotPlaced {
    /// No placement for the job's labels: skipped, for this reason.
    Skipped(String),
    Failed(String),
}

/// The job's labels' placement, its `container:` (or the placement's image) and services
/// evaluated and named as local images, then that backend from the run's registry.
async fn placed(
    shared: &RunShared,
    job: &gantry_workflow::Job,
    ctx: &Ctx,
) -> Result<Placed, NotPlaced> {
    let placement = match placement::choose_placement(shared, job, ctx) {
        Ok(placement::PlacementChoice::Run(p)) => p,
        Ok(placement::PlacementChoice::Unavailable(why)) => return Err(NotPlaced::Skipped(why)),
        Err(e) => return Err(NotPlaced::Failed(e)),
    };
    let mut container = None;
    if let Some(c) = &job.container {
        match eval_container(c, ctx) {
            Ok(spec) if !spec.image.is_empty() => container = Some(spec),
            Ok(_) => {}
            Err(e) => return Err(NotPlaced::Failed(format!("container: {e}"))),
        }
    }
    if container.is_none()
        && let Some(img) = &placement.image
    {
        container = Some(ContainerSpec {
            image: img.clone(),
            ..Default::default()
        });
    }
    if let Some(c) = &mut container {
        c.image = shared.cfg.local_image(&c.image);
    }
    let mut services = IndexMap::new();
    for (id, s) in &job.services {
        match eval_container(s, ctx) {
            Ok(mut spec) if !spec.image.is_empty() => {
                spec.image = shared.cfg.local_image(&spec.image);
                services.insert(id.clone(), spec);
            }
            Ok(_) => {}
            Err(e) => return Err(NotPlaced::Failed(format!("services.{id}: {e}"))),
        }
    }
    let needs_images = container.is_some() || !services.is_empty();
    let backend = shared
        .backends
        .for_job(&placement, needs_images)
        .await
        .map_err(|e| NotPlaced::Failed(e.to_string()))?;
    Ok(Placed {
        backend,
        container,
        services,
    })
}

/// Fills the job's tree: workspace, RUNNER_TEMP and the event file, in a recycled tree of
/// an earlier job of the run when there is one (see `dirs`). `_home` is made by the docker
/// backend, the only one that uses it.
async fn fill_tree(
    shared: &Arc<RunShared>,
    tree: &mut super::dirs::JobTree,
) -> std::io::Result<()> {
    if !shared.cfg.blocking_job_dirs {
        return shared
            .job_dirs
            .prepare(&shared.snapshot, tree, &shared.event_json);
    }
    // Copying the snapshot and writing the `.git` is file-system work: on a blocking
    // thread, so a server's workers stay free to answer (webhooks, the UI) meanwhile.
    let shared = shared.clone();
    let mut t = tree.clone();
    let r = tokio::task::spawn_blocking(move || {
        let r = shared
            .job_dirs
            .prepare(&shared.snapshot, &mut t, &shared.event_json);
        (t, r)
    })
    .await;
    match r {
        Ok((t, r)) => {
            *tree = t;
            r
        }
        Err(e) => Err(std::io::Error::other(e.to_string())),
    }
}

/// The job's two clocks: `timeout-minutes` cancels the job; `cancel-timeout-minutes` after
/// a cancellation fires `stop_now`, and whatever still runs is stopped (GHA-SEMANTICS
/// §5.6). The tear-down after the steps is not bounded by either.
struct JobTimers {
    timer: tokio::task::JoinHandle<()>,
    stop_timer: tokio::task::JoinHandle<()>,
    timed_out: Arc<std::sync::atomic::AtomicBool>,
    stop_now: CancellationToken,
}

impl JobTimers {
    fn arm(
        shared: &Arc<RunShared>,
        key: &Text,
        job_cancel: &CancellationToken,
        timeout: std::time::Duration,
        cancel_timeout: (std::time::Duration, String),
    ) -> Self {
        let timed_out = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let timer = {
            let jc = job_cancel.clone();
            let flag = timed_out.clone();
            tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                jc.cancel();
            })
        };
        let stop_now = CancellationToken::new();
        let stop_timer = {
            let (jc, stop) = (job_cancel.clone(), stop_now.clone());
            let (shared, key) = (shared.clone(), key.clone());
            tokio::spawn(async move {
                jc.cancelled().await;
                tokio::time::sleep(cancel_timeout.0).await;
                runner_log(
                    &shared,
                    &key,
                    None,
                    format!(
                        "The job's clean-up after its cancellation ran past cancel-timeout-minutes \
                         ({}): its processes were stopped and no further step or post step ran.",
                        cancel_timeout.1
                    ),
                );
                stop.cancel();
            })
        };
        JobTimers {
            timer,
            stop_timer,
            timed_out,
            stop_now,
        }
    }

    fn disarm(&self) {
        self.timer.abort();
        self.stop_timer.abort();
    }

    /// `timeout-minutes` passed (the job was cancelled by its clock).
    fn timed_out(&self) -> bool {
        self.timed_out.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The job's workflow steps in order, background steps beside them, then the implicit
/// `wait-all` before post stages: a background step no wait took back still fails the job.
async fn run_steps(
    runner: &StepRunner<'_>,
    job: &gantry_workflow::Job,
    ctx: &mut Ctx,
    state: &mut JobState,
) {
    let mut background = BackgroundSteps::default();
    for (i, step) in job.steps.iter().enumerate() {
        if runner.stop_now.is_cancelled() {
            break;
        }
        if runner.cancel.is_cancelled() && state.status != Status::Cancelled {
            state.status = Status::Cancelled;
        }
        // Files renamed ahead for "the next step" would go to whichever step asks first.
        let ahead = job.steps.get(i + 1).is_some_and(|s| s.run.is_some())
            && background.is_empty()
            && !step.background;
        runner.leftovers.set_ahead(ahead);
        runner
            .run_job_step(i, step, ctx, state, &mut background)
            .await;
    }
    for (k, name) in background.wait_all(runner, state).await {
        runner_log(
            &runner.shared,
            &runner.key,
            Some(k),
            format!("Error: background step #{} '{name}' failed.", k + 1),
        );
        if state.status == Status::Success {
            state.status = Status::Failure;
        }
    }
    drop(background);
    if runner.cancel.is_cancelled() && state.status == Status::Success {
        state.status = Status::Cancelled;
    }
}

/// `jobs.<id>.outputs`, evaluated after the steps; a value that would be masked is left
/// out with a note, as GitHub does. An evaluation error fails the job.
fn job_outputs(
    shared: &RunShared,
    key: &Text,
    job: &gantry_workflow::Job,
    ctx: &Ctx,
    state: &mut JobState,
) -> IndexMap<String, String> {
    let mut outputs = IndexMap::new();
    for (name, expr) in &job.outputs {
        match ctx.eval_string(&expr.value) {
            Ok(v) if v.is_empty() => {}
            Ok(v) if state.masker.would_mask(&v) => {
                runner_log(
                    shared,
                    key,
                    None,
                    format!("Skip output '{name}' since it may contain secret."),
                );
            }
            Ok(v) => {
                outputs.insert(name.clone(), v);
            }
            Err(e) => {
                runner_log(
                    shared,
                    key,
                    None,
                    format!(
                        "Error: outputs.{name}: {}",
                        state.masker.mask(&at(expr, &e.to_string()))
                    ),
                );
                state.status = Status::Failure;
            }
        }
    }
    outputs
}

/// "Stop containers": the services' last log lines first (masked), then the environment
/// is stopped. Runs on success, failure and cancellation alike.
async fn tear_down(shared: &RunShared, key: &Text, env: &dyn JobEnv, state: &mut JobState) {
    if !env.services().is_empty() {
        let lines = if state.status == Status::Success {
            SERVICE_LOG_LINES_OK
        } else {
            SERVICE_LOG_LINES_FAILED
        };
        runner_log(shared, key, None, "Stop containers".into());
        state.masker.refresh();
        for l in env.service_logs(lines).await {
            runner_log(
                shared,
                key,
                None,
                format!(
                    "--- last {lines} log lines of service '{}' ---\n{}",
                    l.id,
                    state.masker.mask(&l.text)
                ),
            );
        }
    }
    if let Err(e) = env.stop().await {
        runner_log(shared, key, None, format!("warning: tear-down: {e}"));
    }
}

/// The job's tree goes back to the run's spares (or away); `--keep-work` keeps it.
/// Parks or deletes the job's tree; on a blocking thread when the run asks
/// ([`crate::run::RunConfig::blocking_job_dirs`]).
async fn cleanup_dirs(shared: &Arc<RunShared>, tree: &super::dirs::JobTree) {
    if shared.cfg.keep_work {
        return;
    }
    if !shared.cfg.blocking_job_dirs {
        shared.job_dirs.release(&shared.snapshot, tree);
        return;
    }
    let (shared, tree) = (shared.clone(), tree.clone());
    let _ =
        tokio::task::spawn_blocking(move || shared.job_dirs.release(&shared.snapshot, &tree)).await;
}
