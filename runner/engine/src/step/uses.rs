//! `uses:` steps (GHA-SEMANTICS §8): the reference goes through the run's
//! [`ActionResolver`](crate::actions::ActionResolver) (local path, built-in, action cache,
//! git sources), then runs as a built-in, a composite, a JavaScript or a Docker action.

use std::path::{Path, PathBuf};

use gantry_expr::{Object, Value};
use gantry_workflow::{Action, ActionRuns, Spanned, Step};
use indexmap::IndexMap;

use super::action_exec::StageControl;
use super::{JobState, StepRunner};
use crate::actions::{
    ActionInstance, PostEntry, PostKind, ResolveError, ResolvedAction, ResolvedKind, UsesRef,
};
use crate::events::Status;
use crate::expr_scope::Ctx;
use crate::github_contexts as context;
use crate::job::{eval_number, eval_string_map};

/// What `run_uses` returns: the step's outcome and outputs.
type StepResult = (Status, IndexMap<String, String>);

impl StepRunner<'_> {
    /// `Error: <file>:<line>:<col>: step <n> '<uses>': <msg>` (the file is the workflow at
    /// the top level, the composite's `action.yml` inside one).
    pub(super) fn uses_error(
        &self,
        i: usize,
        uses: &Spanned<String>,
        state: &JobState,
        msg: &str,
    ) -> StepResult {
        let file = match &state.action_path {
            Some(ap) if state.depth > 0 => format!("{ap}/action.yml"),
            _ => self.workflow.path.clone(),
        };
        let pos = if uses.span.line > 0 {
            format!("{file}:{}:{}", uses.span.line, uses.span.col)
        } else {
            file
        };
        self.log(
            i,
            &state.masker,
            &format!(
                "Error: {pos}: step {} '{}': {msg}",
                i + 1,
                uses.value.trim()
            ),
        );
        (Status::Failure, IndexMap::new())
    }

    /// Resolves a `uses:` value; remote references (git) are resolved on a blocking thread.
    pub(super) async fn resolve_uses(&self, u: &str) -> Result<ResolvedAction, ResolveError> {
        let resolver = self.shared.cfg.resolver.clone();
        let needs_git = match crate::actions::parse_uses(u) {
            Ok(UsesRef::Remote(r)) => {
                let name = r.name().to_ascii_lowercase();
                !(crate::actions::builtin::is_builtin(&name)
                    && resolver.config().builtin_enabled(&name))
            }
            Ok(UsesRef::RemoteWorkflow(_)) => true,
            _ => false,
        };
        if !needs_git {
            if let Ok(parsed @ UsesRef::SelfAction { .. }) = crate::actions::parse_uses(u) {
                // The workflow's own repository at the running commit, checked out or not.
                return resolver
                    .resolve_parsed(parsed, &self.repo_root)
                    .map_err(|mut e| {
                        for t in &mut e.tried {
                            *t = t.replace(
                                " (did you run actions/checkout first?)",
                                " (the workflow's repository at the run's commit)",
                            );
                        }
                        e
                    });
            }
            return resolver.resolve(u, &self.workspace_host);
        }
        let (owned, ws) = (u.to_string(), self.workspace_host.clone());
        match tokio::task::spawn_blocking(move || resolver.resolve(&owned, &ws)).await {
            Ok(r) => r,
            Err(e) => Err(ResolveError {
                uses: u.to_string(),
                tried: vec![format!("the resolver task failed: {e}")],
            }),
        }
    }

    /// Runs a `uses:` step: resolution, then the action by kind.
    pub(super) async fn run_uses(
        &self,
        i: usize,
        step: &Step,
        uses: &Spanned<String>,
        step_env: &IndexMap<String, String>,
        ctx: &mut Ctx,
        state: &mut JobState,
    ) -> StepResult {
        let u = uses.value.trim();
        if let Err(e) = crate::actions::parse_uses(u) {
            return self.uses_error(i, uses, state, &e.to_string());
        }
        let known_failure = if state.depth == 0 {
            state.resolve_failed.get(u).cloned()
        } else {
            None
        };
        let resolved = match known_failure {
            Some(e) => Err(e),
            None => self.resolve_uses(u).await,
        };
        let resolved = match resolved {
            Ok(r) => r,
            Err(e) => {
                let msg = format!("cannot resolve the action; tried: {}", e.tried.join("; "));
                return self.uses_error(i, uses, state, &msg);
            }
        };
        let with = match eval_string_map(&step.with, ctx) {
            Ok(w) => w,
            Err(e) => return self.uses_error(i, uses, state, &format!("with: {e}")),
        };
        let mut resolved = resolved;
        if let ResolvedKind::Builtin(name) = &resolved.kind {
            let name = name.clone();
            let display = self.display_name(step, ctx, &state.masker);
            let real = match self
                .run_builtin_step(i, &name, &display, &with, step_env, ctx, state)
                .await
            {
                Ok(done) => return done,
                Err(real) => real,
            };
            let resolver = self.shared.cfg.resolver.clone();
            let ws = self.workspace_host.clone();
            let r = real.clone();
            resolved = match tokio::task::spawn_blocking(move || resolver.resolve_real(&r, &ws))
                .await
            {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    let msg = format!(
                        "{name}: no installed toolchain fits and the real action {real} cannot be resolved; tried: {}",
                        e.tried.join("; ")
                    );
                    return self.uses_error(i, uses, state, &msg);
                }
                Err(e) => return self.uses_error(i, uses, state, &e.to_string()),
            };
        }
        match &resolved.kind {
            ResolvedKind::Builtin(name) => {
                let msg = format!("{name}: the fallback resolved to the built-in again");
                self.uses_error(i, uses, state, &msg)
            }
            ResolvedKind::Workflow(_) => self.uses_error(
                i,
                uses,
                state,
                "a reusable workflow can only be called by a job-level `uses:`",
            ),
            ResolvedKind::Docker(image) => {
                let image = image.clone();
                let call = self.action_call(i, step, &resolved, PathBuf::new(), step_env, state);
                self.run_docker_image_step(i, step, uses, &image, call, &with, ctx, state)
                    .await
            }
            ResolvedKind::Dir(dir) => {
                let dir = dir.clone();
                let loaded = {
                    let d = dir.clone();
                    tokio::task::spawn_blocking(move || crate::actions::load_action(&d)).await
                };
                let action = match loaded {
                    Ok(Ok(a)) => a,
                    Ok(Err(e)) => {
                        return self.uses_error(i, uses, state, &format!("invalid action: {e}"));
                    }
                    Err(e) => return self.uses_error(i, uses, state, &e.to_string()),
                };
                let inputs = {
                    let c: &Ctx = ctx;
                    crate::actions::resolve_inputs(Some(&action), &with, |d| {
                        c.eval_string(d).map_err(|e| e.to_string())
                    })
                };
                let inputs = match inputs {
                    Ok(x) => x,
                    Err(e) => return self.uses_error(i, uses, state, &e.to_string()),
                };
                for w in &inputs.warnings {
                    self.log(i, &state.masker, &format!("Warning: {w}"));
                }
                let dir = match self.visible_action_dir(&dir) {
                    Ok(d) => d,
                    Err(e) => return self.uses_error(i, uses, state, &e),
                };
                if let ActionRuns::Composite { .. } = &action.runs {
                    return self
                        .run_composite_step(
                            i,
                            u,
                            &dir,
                            &action,
                            inputs.values,
                            step_env,
                            ctx,
                            state,
                        )
                        .await;
                }
                let mut call = self.action_call(i, step, &resolved, dir, step_env, state);
                call.inputs = inputs.values;
                self.run_action_main(i, step, uses, &action, call, &with, ctx, state)
                    .await
            }
        }
    }

    /// The action directory as the job sees it: a job that does not see this machine's
    /// files (a container job) gets a copy under its temp dir (mounted) unless the
    /// directory is in the workspace already.
    pub(super) fn visible_action_dir(&self, dir: &Path) -> Result<PathBuf, String> {
        if self.sharing.runner_files || dir.starts_with(&self.workspace_host) {
            return Ok(dir.to_path_buf());
        }
        let root = &self.shared.cfg.resolver.config().cache_root;
        let key = dir.strip_prefix(root).unwrap_or(dir).display().to_string();
        crate::actions::node::stage_action_dir(&self.temp_host, dir, &key)
            .map_err(|e| format!("cannot copy the action into the job's temp dir: {e}"))
    }

    /// The identity of one action instance (no inputs yet).
    pub(super) fn action_call(
        &self,
        i: usize,
        step: &Step,
        resolved: &ResolvedAction,
        dir: PathBuf,
        step_env: &IndexMap<String, String>,
        state: &mut JobState,
    ) -> ActionInstance {
        let (repository, git_ref, name) = match &resolved.uses {
            UsesRef::Remote(r) => (
                format!("{}/{}", r.owner, r.repo),
                r.git_ref.clone(),
                format!("__{}_{}", r.owner, r.repo),
            ),
            _ => (String::new(), String::new(), "__self".to_string()),
        };
        let action_name = step
            .id
            .as_ref()
            .map(|s| s.value.clone())
            .unwrap_or(if state.depth > 0 {
                name
            } else {
                format!("{name}_{i}")
            });
        let mut env = state.scope_env.clone();
        env.extend(step_env.iter().map(|(k, v)| (k.clone(), v.clone())));
        ActionInstance {
            instance: 0,
            uses: resolved.uses.to_string(),
            repository,
            git_ref,
            dir_view: if dir.as_os_str().is_empty() {
                String::new()
            } else {
                self.env.to_job_path(&dir)
            },
            dir_host: dir,
            action_name,
            step_env: env,
            inputs: IndexMap::new(),
        }
    }

    /// The main stage of a JavaScript or Docker action (pre ran at set-up, or the post stage
    /// is registered now), then its state is kept for the post stage.
    #[allow(clippy::too_many_arguments)]
    async fn run_action_main(
        &self,
        i: usize,
        step: &Step,
        uses: &Spanned<String>,
        action: &Action,
        mut call: ActionInstance,
        with: &IndexMap<String, String>,
        ctx: &mut Ctx,
        state: &mut JobState,
    ) -> StepResult {
        let timeout = match eval_number(&step.timeout_minutes, ctx) {
            Ok(t) => t,
            Err(e) => return self.uses_error(i, uses, state, &format!("timeout-minutes: {e}")),
        };
        let control = StageControl {
            allow_unsecure: super::allow_unsecure(&state.env_ctx),
            timeout,
            cancel_if: Some(step.if_cond.as_ref().map(|c| c.value.as_str())),
            label: step
                .name
                .as_ref()
                .map(|n| n.value.clone())
                .unwrap_or_else(|| uses.value.clone()),
        };
        let from_pre = if state.nest.is_none() {
            let key = match state.member {
                Some((group, k)) => (group, Some(k)),
                None => (i, None),
            };
            state.pre_done.remove(&key)
        } else {
            None
        };
        let display = self.display_name(step, ctx, &state.masker);
        match &action.runs {
            ActionRuns::Node {
                using,
                main,
                post,
                post_if,
                ..
            } => {
                if let Err(e) = crate::actions::node::required_major(using) {
                    return self.uses_error(i, uses, state, &e);
                }
                call.instance = match from_pre {
                    Some(n) => n,
                    None => {
                        let n = state.post.new_instance();
                        call.instance = n;
                        if let Some(p) = post {
                            state.post.push(PostEntry {
                                step: i,
                                display_name: format!("Post {display}"),
                                condition: cond_or_always(post_if),
                                kind: PostKind::Node {
                                    action: call.clone(),
                                    using: using.clone(),
                                    script: p.clone(),
                                },
                            });
                        }
                        n
                    }
                };
                let out = self
                    .run_node_stage(i, &call, main, using, control, ctx, state)
                    .await;
                state.post.save_state(call.instance, out.state);
                (out.outcome, out.outputs)
            }
            ActionRuns::Docker { .. } => {
                let prepared = match self
                    .prepare_docker_action(i, action, &call, with, ctx, state)
                    .await
                {
                    Ok(p) => p,
                    Err(e) => return self.uses_error(i, uses, state, &e),
                };
                call.instance = match from_pre {
                    Some(n) => n,
                    None => {
                        let n = state.post.new_instance();
                        call.instance = n;
                        self.register_docker_post(i, &display, &call, &prepared, state);
                        n
                    }
                };
                let out = self
                    .run_docker_stage(
                        i,
                        &call,
                        &prepared,
                        prepared.entrypoint.clone(),
                        control,
                        ctx,
                        state,
                    )
                    .await;
                state.post.save_state(call.instance, out.state);
                (out.outcome, out.outputs)
            }
            ActionRuns::Composite { .. } => {
                unreachable!("composites run through run_composite_step")
            }
        }
    }

    /// A composite action: its steps in a nested scope (see `actions::composite`).
    #[allow(clippy::too_many_arguments)]
    async fn run_composite_step(
        &self,
        i: usize,
        u: &str,
        dir: &Path,
        action: &Action,
        inputs: IndexMap<String, String>,
        step_env: &IndexMap<String, String>,
        ctx: &mut Ctx,
        state: &mut JobState,
    ) -> StepResult {
        use crate::actions::composite::{self, CompositeScope};
        let scope = CompositeScope {
            uses: u.to_string(),
            action_path: dir.to_path_buf(),
            inputs,
            depth: state.depth + 1,
        };
        let mut host = CompositeHost {
            runner: self,
            ctx,
            state,
            outer_env: step_env.clone(),
            index: i,
        };
        let out = composite::run_composite(&mut host, action, scope).await;
        let CompositeHost { state, .. } = host;
        for e in &out.errors {
            self.log(i, &state.masker, &format!("Error: {u}: {e}"));
        }
        let st = match out.status.as_str() {
            "success" => Status::Success,
            "cancelled" => Status::Cancelled,
            _ => Status::Failure,
        };
        (st, out.outputs)
    }
}

/// `pre-if`/`post-if` as written, `always()` when absent.
pub(super) fn cond_or_always(c: &Option<String>) -> String {
    c.clone()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "always()".into())
}

/// Runs a composite action's steps in a nested scope (see `actions::composite`).
struct CompositeHost<'r, 'a> {
    runner: &'r StepRunner<'a>,
    ctx: &'r mut Ctx,
    state: &'r mut JobState,
    outer_env: IndexMap<String, String>,
    index: usize,
}

#[async_trait::async_trait]
impl crate::actions::composite::StepHost for CompositeHost<'_, '_> {
    async fn run_steps(
        &mut self,
        steps: &[Step],
        scope: &crate::actions::composite::CompositeScope,
    ) -> crate::actions::composite::StepsResult {
        use crate::actions::composite::{StepRecord, StepsResult};
        let st = &mut *self.state;
        let saved_steps = std::mem::take(&mut st.steps);
        let saved_status = std::mem::replace(&mut st.status, Status::Success);
        let mut env = st.scope_env.clone();
        env.extend(self.outer_env.clone());
        let saved_env = std::mem::replace(&mut st.scope_env, env);
        let saved_nest = st.nest.replace(self.index);
        let ap = self.runner.env.to_job_path(&scope.action_path);
        let saved_ap = st.action_path.replace(ap);
        st.depth += 1;
        let saved_inputs = self.ctx.get("inputs").cloned();
        let saved_secrets = self.ctx.get("secrets").cloned();
        self.ctx
            .set("inputs", context::string_map_value(scope.inputs.iter()));
        self.ctx.set("secrets", Value::object(Object::new()));
        for (j, s) in steps.iter().enumerate() {
            self.runner.run_step_boxed(j, s, self.ctx, st).await;
        }
        let mut records = IndexMap::new();
        for (id, v) in st.steps.iter() {
            let get = |k: &str| {
                if let Value::Object(o) = v {
                    o.get(k)
                        .map(|x| x.as_string().into_owned())
                        .unwrap_or_default()
                } else {
                    String::new()
                }
            };
            let mut outputs = IndexMap::new();
            if let Value::Object(o) = v
                && let Some(Value::Object(outs)) = o.get("outputs")
            {
                for (k, x) in outs.iter() {
                    outputs.insert(k.to_string(), x.as_string().into_owned());
                }
            }
            records.insert(
                id.to_string(),
                StepRecord {
                    outcome: get("outcome"),
                    conclusion: get("conclusion"),
                    outputs,
                },
            );
        }
        let status = st.status;
        st.steps = saved_steps;
        st.status = saved_status;
        st.scope_env = saved_env;
        st.nest = saved_nest;
        st.action_path = saved_ap;
        st.depth -= 1;
        // Outputs are evaluated with the composite's inputs and env; restore the rest after.
        self.pending_restore(saved_inputs, saved_secrets);
        StepsResult {
            status: status.as_str().to_string(),
            steps: records,
        }
    }

    fn eval_output(
        &self,
        template: &str,
        scope: &crate::actions::composite::CompositeScope,
        steps: &IndexMap<String, crate::actions::composite::StepRecord>,
    ) -> Result<String, String> {
        let mut c = self.ctx.clone();
        c.set("steps", crate::actions::composite::steps_value(steps));
        c.set("inputs", context::string_map_value(scope.inputs.iter()));
        let mut env = self.state.env_ctx.clone();
        env.extend(self.state.scope_env.clone());
        env.extend(self.outer_env.clone());
        c.set("env", context::string_map_value(env.iter()));
        c.eval_string(template).map_err(|e| e.to_string())
    }
}

impl CompositeHost<'_, '_> {
    fn pending_restore(&mut self, inputs: Option<Value>, secrets: Option<Value>) {
        self.ctx.set("inputs", inputs.unwrap_or(Value::Null));
        self.ctx.set("secrets", secrets.unwrap_or(Value::Null));
    }
}
