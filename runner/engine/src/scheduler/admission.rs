//! The scheduler's side of one job instance, around the executor (see
//! [`crate::executor`]): `continue-on-error`, `job_started`, the delivery gate for
//! `environment:` (branch rules, approvals, wait timer; the environment's secrets and
//! vars are released into the assignment only when it admits the job), then the
//! executor, then post-deploy verification and `job_finished`. The executor sees the
//! job only once it is admitted, and never decides a gate.

use std::sync::Arc;
use std::time::Instant;

use futures_util::FutureExt;
use indexmap::IndexMap;
use tokio_util::sync::CancellationToken;

use crate::events::{RunEvent, Status, millis};
use crate::executor::{ExecutedJob, JobAssignment, JobExecutor, TopWorkflow};
use crate::gate::{DeploymentOutcome, DeploymentRequest, Verification};
use crate::job::execute::{base_contexts, job_tree};
use crate::job::{JobInstance, JobOutcome, at, eval_bool, report_setup_failure, runner_log};
use crate::run::RunShared;

/// Runs one job instance through admission, the executor and verification, and reports
/// its end (`job_finished`). `cancel` is the job's token.
pub(super) async fn run_job(
    shared: &Arc<RunShared>,
    executor: &Arc<dyn JobExecutor>,
    inst: &JobInstance,
    cancel: CancellationToken,
) -> JobOutcome {
    let started = Instant::now();
    let assignment = match admit(shared, inst, &cancel).await {
        Ok(a) => a,
        Err((result, coe)) => return finish(shared, inst, result, IndexMap::new(), coe, started),
    };
    let coe = assignment.continue_on_error;
    // What verification says is masked with the secrets the job was given.
    let environment = assignment
        .environment
        .clone()
        .map(|env| (env, assignment.secrets.clone()));
    // A panic in a job must not take the run down: report it as a failure. Caught here
    // rather than through a task of its own (one spawn and wake-up less per job).
    let run = std::panic::AssertUnwindSafe(executor.execute(assignment, cancel));
    let executed = match run.catch_unwind().await {
        Ok(done) => done,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a job panicked".into());
            runner_log(
                shared,
                &inst.key,
                None,
                format!("Error: internal error: {what}"),
            );
            return finish(
                shared,
                inst,
                Status::Failure,
                IndexMap::new(),
                false,
                started,
            );
        }
    };
    let result = match environment {
        Some((env, secrets)) if executed.result == Status::Success => {
            verify(shared, inst, &env, &secrets, &executed).await
        }
        _ => executed.result,
    };
    finish(shared, inst, result, executed.outputs, coe, started)
}

/// The job instance as an assignment, before the gate: the scope's secrets only.
fn assignment(shared: &RunShared, inst: &JobInstance) -> JobAssignment {
    let top = &shared.cfg.workflows[inst.scope.top];
    JobAssignment {
        key: inst.key.clone(),
        job_id: inst.job_id.clone(),
        name: inst.name.clone(),
        workflow: inst.scope.workflow.clone(),
        top_workflow: TopWorkflow {
            name: top.workflow.display_name().to_string(),
            path: top.rel_path.clone(),
        },
        repo_root: inst.scope.repo_root.clone(),
        matrix: inst.matrix.clone(),
        strategy: inst.strategy,
        inputs: inst.scope.inputs.clone(),
        needs: inst.needs.clone(),
        vars: shared.run_vars.clone(),
        secrets: inst.scope.secrets.clone(),
        environment: None,
        continue_on_error: false,
    }
}

/// `continue-on-error`, `job_started` and the gate. `Err((result, continue_on_error))`:
/// the job ended here (refused, cancelled while waiting, or a bad key), already reported.
async fn admit(
    shared: &Arc<RunShared>,
    inst: &JobInstance,
    cancel: &CancellationToken,
) -> Result<JobAssignment, (Status, bool)> {
    let job = &inst.scope.workflow.jobs[&inst.job_id];
    let mut a = assignment(shared, inst);
    let key = &inst.key;
    // The contexts are built only for a job with keys to evaluate here (most have none).
    let mut ctx = (job.continue_on_error.is_some() || job.environment.is_some()).then(|| {
        let ws = job_tree(shared, key).workspace.display().to_string();
        base_contexts(shared, &a, &ws)
    });
    if let Some(ctx) = &ctx {
        a.continue_on_error = match eval_bool(&job.continue_on_error, ctx) {
            Ok(b) => b,
            Err(e) => {
                let e = shared
                    .job_masker(&a.secrets)
                    .mask(&e.to_string())
                    .into_owned();
                runner_log(shared, key, None, format!("Error: continue-on-error: {e}"));
                false
            }
        };
    }
    let coe = a.continue_on_error;
    shared.bus.emit(RunEvent::JobStarted {
        job: key.clone(),
        name: inst.name.clone(),
        backend: String::new(),
    });
    let (Some(envr), Some(ctx)) = (&job.environment, ctx.as_mut()) else {
        return Ok(a);
    };
    let refuse = |msg: String, a: &JobAssignment| {
        report_setup_failure(shared, key, &shared.job_masker(&a.secrets).mask(&msg));
    };
    // The job's env is checked before a possibly long wait for an approval; the executor
    // evaluates it again with what the gate releases.
    let wf = &*inst.scope.workflow;
    if let Err(e) = crate::expr_scope::job_env(shared, wf, job, ctx) {
        refuse(e, &a);
        return Err((Status::Failure, coe));
    }
    let name = match ctx.eval_string(&envr.name.value) {
        Ok(n) => n,
        Err(e) => {
            refuse(at(&envr.name, &e.to_string()), &a);
            return Err((Status::Failure, coe));
        }
    };
    if name.is_empty() {
        return Ok(a);
    }
    shared.bus.emit(RunEvent::GateEntered {
        job: key.clone(),
        environment: name.clone(),
    });
    let req = deployment_request(shared, inst, &name);
    match shared.cfg.gates.admit(&req, cancel.clone()).await {
        Ok(adm) => {
            a.secrets.extend(adm.secrets);
            if !adm.vars.is_empty() {
                let mut vars = (*a.vars).clone();
                vars.extend(adm.vars);
                a.vars = Arc::new(vars);
            }
            a.environment = Some(name);
            Ok(a)
        }
        Err(refusal) => {
            refuse(format!("environment '{name}': {refusal}"), &a);
            let cancelled = refusal.kind == crate::gate::RefusalKind::Cancelled;
            let result = if cancelled || cancel.is_cancelled() {
                Status::Cancelled
            } else {
                Status::Failure
            };
            Err((result, coe))
        }
    }
}

/// Health checks and rollback after a successful job of `environment`; the job fails when
/// verification does.
async fn verify(
    shared: &RunShared,
    inst: &JobInstance,
    environment: &str,
    secrets: &IndexMap<String, String>,
    executed: &ExecutedJob,
) -> Status {
    let outcome = DeploymentOutcome {
        request: deployment_request(shared, inst, environment),
        job_result: executed.result.as_str().into(),
        outputs: executed.outputs.clone(),
        url: executed.environment_url.clone(),
    };
    match shared.cfg.gates.verify(&outcome).await {
        Verification::Passed => executed.result,
        Verification::Failed { message } => {
            let masker = shared.job_masker(secrets);
            let msg = masker.mask(&message).into_owned();
            runner_log(shared, &inst.key, None, format!("Error: {msg}"));
            Status::Failure
        }
    }
}

/// Reports the job's end and returns its outcome.
fn finish(
    shared: &RunShared,
    inst: &JobInstance,
    result: Status,
    outputs: IndexMap<String, String>,
    continue_on_error: bool,
    started: Instant,
) -> JobOutcome {
    let duration = started.elapsed();
    shared.bus.emit(RunEvent::JobFinished {
        job: inst.key.clone(),
        name: inst.name.clone(),
        result,
        duration_ms: millis(duration),
        outputs: outputs.clone(),
        reused: false,
        continue_on_error,
    });
    JobOutcome {
        result,
        continue_on_error,
        outputs,
        duration,
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
