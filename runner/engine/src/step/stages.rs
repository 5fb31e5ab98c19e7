//! Pre and post stages of actions (GHA-SEMANTICS §6.8): pre stages of the workflow's
//! remote JavaScript and Docker actions run at job set-up in step order under `pre-if`;
//! post stages run at job end, last registered first, under `post-if`. Both conditions
//! default to `always()` and are evaluated as written (not wrapped in `success() && …`).
//! Each shows as a step of its own (`Pre <name>`, `Post <name>`) numbered after the
//! workflow's steps.

use std::time::Instant;

use gantry_expr::{Object, Template, Value};
use gantry_workflow::{ActionRuns, Step};
use indexmap::IndexMap;

use super::action_exec::StageControl;
use super::docker_step::PreparedDocker;
use super::uses::cond_or_always;
use super::{JobState, PreKey, StepRunner, allow_unsecure};
use crate::actions::{PostEntry, PostKind, ResolvedKind, UsesRef};
use crate::events::{RunEvent, Status};
use crate::expr_scope::{Ctx, StatusMode};
use crate::github_contexts as context;
use crate::job::{eval_string_map, job_value};

/// Evaluates `pre-if`/`post-if` as written.
pub(super) fn eval_unwrapped(ctx: &Ctx, cond: &str) -> Result<bool, String> {
    let text = match Template::parse(cond) {
        Ok(Template::Literal(s)) => s,
        Ok(t) => t.converted_expr().unwrap_or_default(),
        Err(_) => cond.to_string(),
    };
    if text.trim().is_empty() {
        return Ok(true);
    }
    let e = gantry_expr::parse_with(&text, &Default::default()).map_err(|e| e.to_string())?;
    e.eval(ctx)
        .map(|v| v.is_truthy())
        .map_err(|e| e.to_string())
}

impl StepRunner<'_> {
    /// The event index of the next pre or post stage.
    fn extra_index(&self, state: &mut JobState) -> usize {
        let n = self.job.steps.len() + state.extra_steps;
        state.extra_steps += 1;
        n
    }

    fn stage_started(&self, idx: usize, name: &str) {
        self.shared.bus.emit(RunEvent::StepStarted {
            job: self.key.clone(),
            step: idx,
            name: name.to_string(),
        });
    }

    fn stage_control(&self, state: &JobState, label: &str) -> StageControl<'static> {
        StageControl {
            allow_unsecure: allow_unsecure(&state.env_ctx),
            timeout: None,
            cancel_if: None,
            label: label.to_string(),
        }
    }

    /// Runs the pre stages of the job's remote actions ("Set up job"). Resolution errors
    /// are left to the step itself, which reports them where it stands.
    pub async fn run_pre_stages(&self, ctx: &mut Ctx, state: &mut JobState) {
        // Every action of the job, `parallel:` members included (a member's post stage and
        // state are registered under its group's step index).
        let steps = self.job.steps.iter().enumerate().flat_map(|(i, step)| {
            let members: Vec<(PreKey, &Step)> = if step.parallel.is_empty() {
                vec![((i, None), step)]
            } else {
                (step.parallel.iter().enumerate())
                    .map(|(k, m)| ((i, Some(k)), m))
                    .collect()
            };
            members
        });
        for (key, step) in steps {
            let i = key.0;
            if self.cancel.is_cancelled() {
                return;
            }
            let Some(uses) = &step.uses else { continue };
            let u = uses.value.trim();
            if !matches!(crate::actions::parse_uses(u), Ok(UsesRef::Remote(_))) {
                continue;
            }
            let resolved = match self.resolve_uses(u).await {
                Ok(r) => r,
                Err(e) => {
                    state.resolve_failed.insert(u.to_string(), e);
                    continue;
                }
            };
            let ResolvedKind::Dir(dir) = &resolved.kind else {
                continue;
            };
            let Ok(action) = crate::actions::load_action(dir) else {
                continue;
            };
            let pre_if = match &action.runs {
                ActionRuns::Node {
                    pre: Some(_),
                    pre_if,
                    ..
                } => pre_if,
                ActionRuns::Docker {
                    pre_entrypoint: Some(_),
                    pre_if,
                    ..
                } => pre_if,
                _ => continue,
            };
            // Contexts of a pre stage: no `steps`; the step's env.
            ctx.status = StatusMode::Step(state.status);
            ctx.set("steps", Value::object(Object::new()));
            ctx.set("job", job_value(state.status, self.env));
            ctx.set("env", context::string_map_value(state.env_ctx.iter()));
            let step_env = eval_string_map(&step.env, ctx).unwrap_or_default();
            let mut env_view = state.env_ctx.clone();
            env_view.extend(step_env.clone());
            ctx.set("env", context::string_map_value(env_view.iter()));
            let started = Instant::now();
            let name = format!("Pre {}", self.display_name(step, ctx, &state.masker));
            match eval_unwrapped(ctx, &cond_or_always(pre_if)) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    self.condition_failed(&name, &format!("Error: pre-if: {e}"), started, state);
                    continue;
                }
            }
            let Ok(with) = eval_string_map(&step.with, ctx) else {
                continue;
            };
            let inputs = {
                let c: &Ctx = ctx;
                crate::actions::resolve_inputs(Some(&action), &with, |d| {
                    c.eval_string(d).map_err(|e| e.to_string())
                })
            };
            let Ok(inputs) = inputs else { continue };
            let idx = self.extra_index(state);
            self.stage_started(idx, &name);
            let main_name = self.display_name(step, ctx, &state.masker);
            let dir = match self.visible_action_dir(dir) {
                Ok(d) => d,
                Err(e) => {
                    self.fail_stage(idx, &name, &format!("Error: {u}: {e}"), started, state);
                    continue;
                }
            };
            let mut call = self.action_call(i, step, &resolved, dir, &step_env, state);
            call.inputs = inputs.values;
            call.instance = state.post.new_instance();
            let control = self.stage_control(state, &name);
            let outcome = match &action.runs {
                ActionRuns::Node {
                    using,
                    pre: Some(pre),
                    post,
                    post_if,
                    ..
                } => {
                    if let Some(p) = post {
                        state.post.push(PostEntry {
                            step: i,
                            display_name: format!("Post {main_name}"),
                            condition: cond_or_always(post_if),
                            kind: PostKind::Node {
                                action: call.clone(),
                                using: using.clone(),
                                script: p.clone(),
                            },
                        });
                    }
                    self.run_node_stage(idx, &call, pre, using, control, ctx, state)
                        .await
                }
                _ => {
                    let prepared = self
                        .prepare_docker_action(idx, &action, &call, &with, ctx, state)
                        .await;
                    match prepared {
                        Ok(p) => {
                            self.register_docker_post(i, &main_name, &call, &p, state);
                            let ep = p.pre.as_ref().map(|(e, _)| e.clone());
                            self.run_docker_stage(idx, &call, &p, ep, control, ctx, state)
                                .await
                        }
                        Err(e) => {
                            self.fail_stage(
                                idx,
                                &name,
                                &format!("Error: {u}: {e}"),
                                started,
                                state,
                            );
                            continue;
                        }
                    }
                }
            };
            state.post.save_state(call.instance, outcome.state);
            state.pre_done.insert(key, call.instance);
            self.finish(
                idx,
                &name,
                None,
                outcome.outcome,
                false,
                IndexMap::new(),
                started,
                state,
            );
        }
    }

    /// Runs the registered post stages, last registered first.
    pub async fn run_post_stages(&self, ctx: &mut Ctx, state: &mut JobState) {
        for e in state.post.drain_in_run_order() {
            if self.stop_now.is_cancelled() {
                return;
            }
            ctx.status = StatusMode::Step(state.status);
            ctx.set("steps", Value::object(state.steps.clone()));
            ctx.set("job", job_value(state.status, self.env));
            ctx.set("env", context::string_map_value(state.env_ctx.iter()));
            let started = Instant::now();
            let name = e.display_name.clone();
            match eval_unwrapped(ctx, &e.condition) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(err) => {
                    self.condition_failed(&name, &format!("Error: post-if: {err}"), started, state);
                    continue;
                }
            }
            let idx = self.extra_index(state);
            self.stage_started(idx, &name);
            let control = self.stage_control(state, &name);
            let outcome = match e.kind {
                PostKind::Builtin {
                    name: b,
                    inputs,
                    state: saved,
                    step_env,
                } => {
                    let aenv = self.builtin_env(&step_env, state);
                    let r =
                        crate::actions::post::run_builtin_post(&b, &inputs, &saved, &aenv).await;
                    drop(aenv);
                    match r {
                        Ok(res) => {
                            self.apply_builtin_result(idx, res, state);
                            Status::Success
                        }
                        Err(err) => {
                            self.log(idx, &state.masker, &format!("Error: {b}: {err}"));
                            Status::Failure
                        }
                    }
                }
                PostKind::Node {
                    action,
                    using,
                    script,
                } => {
                    self.run_node_stage(idx, &action, &script, &using, control, ctx, state)
                        .await
                        .outcome
                }
                PostKind::Docker {
                    action,
                    image,
                    entrypoint,
                    args,
                    runs_env,
                } => {
                    let prepared = PreparedDocker {
                        image,
                        args,
                        entrypoint: None,
                        runs_env,
                        pre: None,
                        post: None,
                    };
                    self.run_docker_stage(
                        idx,
                        &action,
                        &prepared,
                        Some(entrypoint),
                        control,
                        ctx,
                        state,
                    )
                    .await
                    .outcome
                }
            };
            self.finish(
                idx,
                &name,
                None,
                outcome,
                false,
                IndexMap::new(),
                started,
                state,
            );
        }
    }
}

impl StepRunner<'_> {
    /// A pre/post stage whose condition could not be evaluated: shown as a failed stage.
    fn condition_failed(&self, name: &str, message: &str, started: Instant, state: &mut JobState) {
        let idx = self.extra_index(state);
        self.stage_started(idx, name);
        self.fail_stage(idx, name, message, started, state);
    }

    /// Stage `idx` (already started) failed before its process ran: log why, finish it.
    fn fail_stage(
        &self,
        idx: usize,
        name: &str,
        message: &str,
        started: Instant,
        state: &mut JobState,
    ) {
        self.log(idx, &state.masker, message);
        self.finish(
            idx,
            name,
            None,
            Status::Failure,
            false,
            IndexMap::new(),
            started,
            state,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(status: Status) -> Ctx {
        let mut c = Ctx::new();
        c.status = StatusMode::Step(status);
        c.set(
            "runner",
            Value::from_json(&serde_json::json!({"os": "Linux"})),
        );
        c
    }

    #[test]
    fn post_if_is_not_wrapped_in_success() {
        let failed = ctx(Status::Failure);
        // GitHub evaluates the condition as written: no implicit success() && (…).
        assert!(eval_unwrapped(&failed, "runner.os == 'Linux'").unwrap());
        assert!(eval_unwrapped(&failed, "${{ runner.os == 'Linux' }}").unwrap());
        assert!(!eval_unwrapped(&failed, "success()").unwrap());
        assert!(eval_unwrapped(&failed, "failure()").unwrap());
        assert!(eval_unwrapped(&failed, "always()").unwrap());
        let ok = ctx(Status::Success);
        assert!(eval_unwrapped(&ok, "success()").unwrap());
        assert!(!eval_unwrapped(&ok, "runner.os == 'Windows'").unwrap());
        assert!(eval_unwrapped(&ok, "").unwrap());
        assert!(eval_unwrapped(&ok, "runner.os ==").is_err());
    }
}
