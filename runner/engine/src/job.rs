//! Running one job instance (a job, or one leg of a matrix): contexts, `runs-on` → backend,
//! the delivery gate for `environment:`, the job environment, the steps in order, job
//! outputs, and tear-down in every case.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gantry_expr::{Object, Value};
use gantry_workflow::{Container, OrExpr, Spanned, StringMap};
use indexmap::IndexMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, ContainerSpec, Credentials, JobEnv, JobEnvSpec};
use crate::events::{RunEvent, Status, Stream, Text, millis};
use crate::expr_scope::{Ctx, StatusMode};
use crate::gate::{DeploymentOutcome, DeploymentRequest, Verification};
use crate::github_contexts::{self as context, JobFacts, StrategyFacts};
use crate::run::{Platform, RunShared, Scope};
use crate::shared_masker::Masker;
use crate::step::{JobState, StepRunner};
use crate::workspace::sanitize;

pub mod dirs;
pub mod platform;

/// A job instance ready to run.
#[derive(Clone)]
pub struct JobInstance {
    pub key: Text,
    /// The workflow the job belongs to (a called workflow inside a reusable-workflow call).
    pub scope: Arc<Scope>,
    pub job_id: String,
    pub name: String,
    pub matrix: Option<serde_json::Map<String, serde_json::Value>>,
    pub strategy: StrategyFacts,
    /// `needs` context (direct needs: result and outputs).
    pub needs: Value,
}

/// How a job instance ended.
#[derive(Debug, Clone)]
pub struct JobOutcome {
    pub result: Status,
    pub continue_on_error: bool,
    pub outputs: IndexMap<String, String>,
    pub duration: Duration,
}

/// Service log lines printed at tear-down after a successful job and after any other end.
const SERVICE_LOG_LINES_OK: usize = 20;
const SERVICE_LOG_LINES_FAILED: usize = 100;

/// Evaluates a string map (`env:`, `with:`) with `ctx`.
pub fn eval_string_map(m: &StringMap, ctx: &Ctx) -> Result<IndexMap<String, String>, String> {
    let mut out = IndexMap::new();
    match m {
        StringMap::Empty => {}
        StringMap::Map(entries) => {
            for (k, v) in entries {
                let s = ctx
                    .eval_string(&v.value)
                    .map_err(|e| at(v, &format!("{k}: {e}")))?;
                out.insert(k.clone(), s);
            }
        }
        StringMap::Expr(e) => match ctx
            .eval_template(&e.value)
            .map_err(|x| at(e, &x.to_string()))?
        {
            Value::Object(o) => {
                for (k, v) in o.iter() {
                    out.insert(k.to_string(), v.as_string().into_owned());
                }
            }
            Value::Null => {}
            other => {
                return Err(at(
                    e,
                    &format!("expected a mapping, got {}", other.kind_name()),
                ));
            }
        },
    }
    Ok(out)
}

/// `line:col: message` for a spanned value.
pub fn at<T>(s: &Spanned<T>, msg: &str) -> String {
    if s.span.line > 0 {
        format!("{}:{}: {msg}", s.span.line, s.span.col)
    } else {
        msg.to_string()
    }
}

pub fn eval_bool(v: &Option<Spanned<OrExpr<bool>>>, ctx: &Ctx) -> Result<bool, String> {
    match v {
        None => Ok(false),
        Some(s) => match &s.value {
            OrExpr::Value(b) => Ok(*b),
            OrExpr::Expr(e) => ctx
                .eval_template(e)
                .map(|v| v.is_truthy())
                .map_err(|x| at(s, &x.to_string())),
        },
    }
}

pub fn eval_number(v: &Option<Spanned<OrExpr<f64>>>, ctx: &Ctx) -> Result<Option<f64>, String> {
    match v {
        None => Ok(None),
        Some(s) => match &s.value {
            OrExpr::Value(n) => Ok(Some(*n)),
            OrExpr::Expr(e) => ctx
                .eval_template(e)
                .map(|v| Some(v.to_number()))
                .map_err(|x| at(s, &x.to_string())),
        },
    }
}

fn eval_container(c: &Container, ctx: &Ctx) -> Result<ContainerSpec, String> {
    let image = ctx
        .eval_string(&c.image.value)
        .map_err(|e| at(&c.image, &e.to_string()))?;
    let env = eval_string_map(&c.env, ctx)?;
    let mut ports = Vec::new();
    for p in &c.ports {
        ports.push(
            ctx.eval_string(&p.value)
                .map_err(|e| at(p, &e.to_string()))?,
        );
    }
    let mut volumes = Vec::new();
    for v in &c.volumes {
        volumes.push(
            ctx.eval_string(&v.value)
                .map_err(|e| at(v, &e.to_string()))?,
        );
    }
    let options = match &c.options {
        Some(o) => Some(
            ctx.eval_string(&o.value)
                .map_err(|e| at(o, &e.to_string()))?,
        ),
        None => None,
    };
    let credentials = match &c.credentials {
        Some(cr) => Some(Credentials {
            username: ctx
                .eval_string(&cr.username.value)
                .map_err(|e| at(&cr.username, &e.to_string()))?,
            password: ctx
                .eval_string(&cr.password.value)
                .map_err(|e| at(&cr.password, &e.to_string()))?,
        }),
        None => None,
    };
    Ok(ContainerSpec {
        image,
        env,
        ports,
        volumes,
        options,
        credentials,
        command: None,
        entrypoint: None,
    })
}

/// Emits a runner line for a job (masked by the caller).
pub fn runner_log(shared: &RunShared, key: &Text, step: Option<usize>, text: String) {
    let mut t = text;
    if !t.ends_with('\n') {
        t.push('\n');
    }
    shared.bus.emit(RunEvent::Log {
        job: key.clone(),
        step,
        stream: Stream::Runner,
        text: t.into(),
    });
}

/// Runs one job instance. `cancel` is the job's token (run cancellation, fail-fast).
pub async fn run_job(
    shared: Arc<RunShared>,
    inst: JobInstance,
    cancel: CancellationToken,
) -> JobOutcome {
    let started = Instant::now();
    let entry = &shared.cfg.workflows[inst.scope.top];
    let wf = &*inst.scope.workflow;
    let job = &wf.jobs[&inst.job_id];
    let secrets = &inst.scope.secrets;
    // Environment secrets this job may never see are masked in it all the same.
    let mut masker = crate::shared_masker::Masker::with_secrets(
        shared
            .cfg
            .secrets
            .values()
            .chain(shared.withheld_secrets.values()),
    );
    for v in secrets.values() {
        masker.add_secret(v);
    }
    let key = inst.key.clone();

    // Directories of this job (made after the checks below).
    let repo_name = shared
        .snapshot
        .root
        .file_name()
        .map(|n| sanitize(&n.to_string_lossy()))
        .unwrap_or_else(|| "repo".into());
    let mut tree = shared.job_dirs.tree(
        &shared.snapshot,
        &shared.work_root.join(sanitize(&key)),
        &repo_name,
    );
    let workspace_dir = tree.workspace.clone();
    let temp_dir = tree.temp.clone();
    let home_dir = tree.job_dir.join("_home");

    // Base contexts available before the job environment exists.
    let mut ctx = Ctx::new();
    ctx.set("inputs", inst.scope.inputs.clone());
    ctx.set("vars", context::string_map_value(shared.cfg.vars.iter()));
    ctx.set("secrets", secrets_value(secrets));
    ctx.set("needs", inst.needs.clone());
    ctx.set("strategy", inst.strategy.value());
    ctx.set(
        "matrix",
        inst.matrix
            .as_ref()
            .map(|m| Value::from_json(&serde_json::Value::Object(m.clone())))
            .unwrap_or(Value::Null),
    );

    let bus = &shared.bus;
    let emit_finish = |result: Status, outputs: IndexMap<String, String>, coe: bool| {
        let duration = started.elapsed();
        bus.emit(RunEvent::JobFinished {
            job: key.clone(),
            name: inst.name.clone(),
            result,
            duration_ms: millis(duration),
            outputs: outputs.clone(),
            reused: false,
            continue_on_error: coe,
        });
        JobOutcome {
            result,
            continue_on_error: coe,
            outputs,
            duration,
        }
    };

    // Provisional github context for job-level keys (paths filled in later).
    let ws_str = workspace_dir.display().to_string();
    let facts_for = |ws: &str, temp: &str, tc: &str, ev: &str| {
        let f = JobFacts {
            run: &shared.facts,
            workflow_name: entry.workflow.display_name(),
            workflow_path: &entry.rel_path,
            job_id: &inst.job_id,
            workspace: ws,
            temp,
            tool_cache: tc,
            event_path: ev,
            os: context::host_os(),
            arch: context::host_arch(),
            runner_name: "gantry",
        };
        (context::github_value(&f), context::runner_value(&f))
    };
    let (g0, _) = facts_for(&ws_str, "", "", "");
    ctx.set("github", g0);

    let coe = match eval_bool(&job.continue_on_error, &ctx) {
        Ok(b) => b,
        Err(e) => {
            runner_log(
                &shared,
                &key,
                None,
                format!("Error: continue-on-error: {e}"),
            );
            false
        }
    };
    // A set-up failure is reported like a failed step: in the job's log and as an error
    // annotation naming the job (shown with `-q`, kept in the run record's events).
    let fail = |msg: String, masker: &Masker| {
        let msg = masker.mask(&msg).into_owned();
        runner_log(&shared, &key, None, format!("Error: {msg}"));
        shared.bus.emit(RunEvent::Annotation {
            job: key.clone(),
            step: None,
            severity: "error".into(),
            message: format!("job set-up failed: {msg}"),
            file: None,
            line: None,
            col: None,
            title: Some("Set up job".into()),
        });
    };

    bus.emit(RunEvent::JobStarted {
        job: key.clone(),
        name: inst.name.clone(),
        backend: String::new(),
    });

    // Workflow env (G I V Sec) with --env below it, then job env.
    let mut env_ctx = match crate::expr_scope::job_env(&shared, wf, job, &mut ctx) {
        Ok(m) => m,
        Err(e) => {
            fail(e, &masker);
            return emit_finish(Status::Failure, IndexMap::new(), coe);
        }
    };

    // Delivery gate.
    let mut released = false;
    let mut extra_secrets = IndexMap::new();
    let mut environment_name = None;
    if let Some(envr) = &job.environment {
        let name = match ctx.eval_string(&envr.name.value) {
            Ok(n) => n,
            Err(e) => {
                fail(at(&envr.name, &e.to_string()), &masker);
                return emit_finish(Status::Failure, IndexMap::new(), coe);
            }
        };
        if !name.is_empty() {
            bus.emit(RunEvent::GateEntered {
                job: key.clone(),
                environment: name.clone(),
            });
            let req = deployment_request(&shared, &inst, &name);
            match shared.cfg.gates.admit(&req, cancel.clone()).await {
                Ok(adm) => {
                    released = !adm.secrets.is_empty() || !adm.vars.is_empty();
                    for v in adm.secrets.values() {
                        masker.add_secret(v);
                    }
                    extra_secrets = adm.secrets;
                    if !adm.vars.is_empty() {
                        let mut vars = shared.cfg.vars.clone();
                        vars.extend(adm.vars);
                        ctx.set("vars", context::string_map_value(vars.iter()));
                    }
                }
                Err(reason) => {
                    let st = if cancel.is_cancelled() {
                        Status::Cancelled
                    } else {
                        Status::Failure
                    };
                    fail(format!("environment '{name}': {reason}"), &masker);
                    return emit_finish(st, IndexMap::new(), coe);
                }
            }
            environment_name = Some(name);
        }
    }
    if released {
        let mut all = secrets.clone();
        all.extend(extra_secrets);
        ctx.set("secrets", secrets_value(&all));
        // The env was evaluated before the gate, without the environment's secrets and
        // vars; evaluate it again now that the job may see them (as on GitHub).
        env_ctx = match crate::expr_scope::job_env(&shared, wf, job, &mut ctx) {
            Ok(m) => m,
            Err(e) => {
                fail(e, &masker);
                return emit_finish(Status::Failure, IndexMap::new(), coe);
            }
        };
    }

    // Backend choice.
    let platform = match platform::choose_platform(&shared, job, &ctx) {
        Ok(platform::PlatformChoice::Run(p)) => p,
        Ok(platform::PlatformChoice::Unavailable(why)) => {
            runner_log(&shared, &key, None, format!("Skipped: {why}"));
            return emit_finish(Status::Skipped, IndexMap::new(), coe);
        }
        Err(e) => {
            fail(e, &masker);
            return emit_finish(Status::Failure, IndexMap::new(), coe);
        }
    };
    let mut container = None;
    if let Some(c) = &job.container {
        match eval_container(c, &ctx) {
            Ok(spec) if !spec.image.is_empty() => container = Some(spec),
            Ok(_) => {}
            Err(e) => {
                fail(format!("container: {e}"), &masker);
                return emit_finish(Status::Failure, IndexMap::new(), coe);
            }
        }
    }
    if container.is_none()
        && let Platform::Image(img) = &platform
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
        match eval_container(s, &ctx) {
            Ok(mut spec) if !spec.image.is_empty() => {
                spec.image = shared.cfg.local_image(&spec.image);
                services.insert(id.clone(), spec);
            }
            Ok(_) => {}
            Err(e) => {
                fail(format!("services.{id}: {e}"), &masker);
                return emit_finish(Status::Failure, IndexMap::new(), coe);
            }
        }
    }
    let backend: Arc<dyn Backend> = if container.is_some() || !services.is_empty() {
        match shared.docker().await {
            Ok(d) => d,
            Err(e) => {
                fail(e, &masker);
                return emit_finish(Status::Failure, IndexMap::new(), coe);
            }
        }
    } else {
        shared.host.clone()
    };

    // Workspace, RUNNER_TEMP and the event file: a recycled tree of an earlier job of the
    // run when there is one (see `dirs`). `_home` is made by the docker backend, the only
    // one that uses it.
    if let Err(e) = shared
        .job_dirs
        .prepare(&shared.snapshot, &mut tree, &shared.event_json)
    {
        fail(format!("cannot prepare the workspace: {e}"), &masker);
        cleanup_dirs(&shared, &tree);
        return emit_finish(Status::Failure, IndexMap::new(), coe);
    }
    let workspace = workspace_dir;
    let tool_cache = shared.job_dirs.tool_cache();
    let event_file = tree.event_file.clone();

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
    let timeout = match eval_number(&job.timeout_minutes, &ctx) {
        Ok(t) => {
            // The default and a server's cap are the run's (`RunConfig::job_timeout`).
            let (t, capped) = shared.cfg.job_timeout(t);
            if let Some(line) = capped {
                runner_log(&shared, &key, None, line);
            }
            t
        }
        Err(e) => {
            fail(format!("timeout-minutes: {e}"), &masker);
            return emit_finish(Status::Failure, IndexMap::new(), coe);
        }
    };
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

    // Start the environment; backend progress goes to the job's log.
    let (log_tx, mut log_rx) = mpsc::unbounded_channel::<String>();
    let fwd = {
        let shared = shared.clone();
        let key = key.clone();
        let m = masker.clone();
        tokio::spawn(async move {
            while let Some(line) = log_rx.recv().await {
                runner_log(&shared, &key, None, m.mask(&line).into_owned());
            }
        })
    };
    let start = tokio::select! {
        r = backend.start(&spec, log_tx.clone()) => Some(r),
        _ = job_cancel.cancelled() => None,
    };
    let env: Box<dyn JobEnv> = match start {
        Some(Ok(e)) => e,
        Some(Err(e)) => {
            timer.abort();
            drop(log_tx);
            let _ = fwd.await;
            fail(format!("{e}"), &masker);
            cleanup_dirs(&shared, &tree);
            let st = if cancel.is_cancelled() {
                Status::Cancelled
            } else {
                Status::Failure
            };
            return emit_finish(st, IndexMap::new(), coe);
        }
        None => {
            timer.abort();
            drop(log_tx);
            let _ = fwd.await;
            cleanup_dirs(&shared, &tree);
            return emit_finish(Status::Cancelled, IndexMap::new(), coe);
        }
    };

    // Contexts in the job's view.
    let paths = env.paths().clone();
    let ev_path = env.to_job_path(&event_file);
    let (github_value, runner_value) =
        facts_for(&paths.workspace, &paths.temp, &paths.tool_cache, &ev_path);
    let mut default_env = context::default_env(&github_value, &runner_value);
    if let Some(h) = &paths.home {
        default_env.insert("HOME".into(), h.clone());
    }
    ctx.set("github", github_value.clone());
    ctx.set("runner", runner_value);
    ctx.set(
        "job",
        job_value(Status::Success, env.as_ref(), container.is_some()),
    );
    ctx.workspace = Some(workspace.clone());

    let is_container = container.is_some();
    let base_env = if is_container {
        IndexMap::new()
    } else {
        shared.process_env.clone()
    };
    let mut state = JobState::new(env_ctx, masker, github_value);
    let runner = StepRunner {
        shared: shared.clone(),
        key: key.clone(),
        env: env.as_ref(),
        job,
        workflow: wf,
        base_env,
        default_env,
        is_container,
        temp_host: temp_dir.clone(),
        workspace_view: paths.workspace.clone(),
        workspace_host: workspace.clone(),
        repo_root: inst.scope.repo_root.clone(),
        cancel: job_cancel.clone(),
        kill: shared.cfg.kill,
        bash_cache: std::sync::OnceLock::new(),
        leftovers: crate::envfile::spare::Leftovers::new(shared.spares.clone()),
    };
    // Pre stages of actions (set-up), the steps, then post stages (GHA-SEMANTICS §6.8).
    runner.run_pre_stages(&mut ctx, &mut state).await;
    for (i, step) in job.steps.iter().enumerate() {
        if job_cancel.is_cancelled() && state.status != Status::Cancelled {
            state.status = Status::Cancelled;
        }
        runner
            .leftovers
            .set_ahead(job.steps.get(i + 1).is_some_and(|s| s.run.is_some()));
        runner.run_step(i, step, &mut ctx, &mut state).await;
    }
    if job_cancel.is_cancelled() && state.status == Status::Success {
        state.status = Status::Cancelled;
    }
    runner.run_post_stages(&mut ctx, &mut state).await;
    timer.abort();

    // Job outputs (§6.3).
    let mut outputs = IndexMap::new();
    ctx.status = StatusMode::None;
    ctx.set("steps", Value::object(state.steps.clone()));
    ctx.set("env", context::string_map_value(state.env_ctx.iter()));
    ctx.set("job", job_value(state.status, env.as_ref(), is_container));
    for (name, expr) in &job.outputs {
        match ctx.eval_string(&expr.value) {
            Ok(v) if v.is_empty() => {}
            Ok(v) if state.masker.would_mask(&v) => {
                runner_log(
                    &shared,
                    &key,
                    None,
                    format!("Skip output '{name}' since it may contain secret."),
                );
            }
            Ok(v) => {
                outputs.insert(name.clone(), v);
            }
            Err(e) => {
                runner_log(
                    &shared,
                    &key,
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

    // Tear down ("Stop containers"): the services' last log lines first, masked.
    if !env.services().is_empty() {
        let lines = if state.status == Status::Success {
            SERVICE_LOG_LINES_OK
        } else {
            SERVICE_LOG_LINES_FAILED
        };
        runner_log(&shared, &key, None, "Stop containers".into());
        state.masker.refresh();
        for l in env.service_logs(lines).await {
            runner_log(
                &shared,
                &key,
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
        runner_log(&shared, &key, None, format!("warning: tear-down: {e}"));
    }
    drop(runner);
    drop(env);
    drop(log_tx);
    let _ = fwd.await;
    cleanup_dirs(&shared, &tree);

    let mut result = state.status;
    if timed_out.load(std::sync::atomic::Ordering::SeqCst) && result != Status::Success {
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
    if let Some(envname) = environment_name
        && result == Status::Success
    {
        let outcome = DeploymentOutcome {
            request: deployment_request(&shared, &inst, &envname),
            job_result: result.as_str().into(),
            outputs: outputs.clone(),
            url: job
                .environment
                .as_ref()
                .and_then(|e| e.url.as_ref())
                .and_then(|u| ctx.eval_string(&u.value).ok())
                .filter(|u| !u.is_empty() && !state.masker.would_mask(u)),
        };
        if let Verification::Failed { message } = shared.cfg.gates.verify(&outcome).await {
            runner_log(
                &shared,
                &key,
                None,
                format!("Error: {}", state.masker.mask(&message)),
            );
            result = Status::Failure;
        }
    }
    emit_finish(result, outputs, coe)
}

/// The job's tree goes back to the run's spares (or away); `--keep-work` keeps it.
fn cleanup_dirs(shared: &RunShared, tree: &dirs::JobTree) {
    if !shared.cfg.keep_work {
        shared.job_dirs.release(&shared.snapshot, tree);
    }
}

fn deployment_request(shared: &RunShared, inst: &JobInstance, env: &str) -> DeploymentRequest {
    let (git_ref, _, _) = shared.facts.refs();
    DeploymentRequest {
        run_id: shared.cfg.run_id.clone(),
        workflow: shared.cfg.workflows[inst.scope.top].rel_path.clone(),
        job_id: inst.job_id.clone(),
        job_name: inst.name.clone(),
        environment: env.to_string(),
        git_ref,
        sha: shared.facts.git.sha.clone(),
        actor: shared.facts.actor.clone(),
        repository: shared.facts.git.repository.clone(),
    }
}

pub fn secrets_value(secrets: &IndexMap<String, String>) -> Value {
    let mut o = Object::new();
    for (k, v) in secrets {
        o.insert(k.clone(), Value::string(v));
    }
    if o.get("GITHUB_TOKEN").is_none() {
        o.insert("GITHUB_TOKEN", Value::string(""));
    }
    Value::object(o)
}

/// The `job` context.
pub fn job_value(status: Status, env: &dyn JobEnv, container: bool) -> Value {
    let mut o = Object::new();
    o.insert("status", Value::string(status.as_str()));
    if container {
        let info = env.container().unwrap_or_default();
        let mut c = Object::new();
        c.insert("id", Value::string(&info.id));
        c.insert("network", Value::string(&info.network));
        o.insert("container", Value::object(c));
    }
    let mut svcs = Object::new();
    for s in env.services() {
        let mut so = Object::new();
        so.insert("id", Value::string(&s.container_id));
        so.insert("network", Value::string(s.network.as_deref().unwrap_or("")));
        let mut ports = Object::new();
        for (k, v) in &s.ports {
            ports.insert(k.clone(), Value::string(v));
        }
        so.insert("ports", Value::object(ports));
        svcs.insert(s.id.clone(), Value::object(so));
    }
    o.insert("services", Value::object(svcs));
    Value::object(o)
}

/// Path helper used by the step runner: a job-view path joined with a working directory.
pub fn join_view(base: &str, wd: &str) -> String {
    if wd.starts_with('/') {
        wd.to_string()
    } else if wd.is_empty() {
        base.to_string()
    } else {
        PathBuf::from(base).join(wd).display().to_string()
    }
}
