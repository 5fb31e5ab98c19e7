//! Docker container actions run from a step (GHA-SEMANTICS §7.5): `runs.image` (a
//! Dockerfile built with the Docker daemon and cached by content hash, or an image), `docker://`
//! steps, `args`/`entrypoint`/`env` with the `inputs` context, `INPUT_*`, and the mounts
//! GitHub uses (`/github/workspace`, `/github/file_commands`, `/github/home`,
//! `/github/workflow`). Host jobs and container jobs alike: the action container is a
//! sibling started through the daemon with the job's host directories.

use std::path::Path;

use gantry_workflow::{Action, ActionRuns, Spanned, Step};
use indexmap::IndexMap;

use super::action_exec::{StageControl, StageOutcome};
use super::uses::cond_or_always;
use super::{JobState, StepRunner};
use crate::actions::docker_action::{self, DockerActionPaths};
use crate::actions::{ActionInstance, PostEntry, PostKind};
use crate::envfile::FileCommandFiles;
use crate::events::Status;
use crate::expr_scope::Ctx;
use crate::job::eval_number;

/// A Docker action ready to run: its image exists.
#[derive(Debug, Clone)]
pub(super) struct PreparedDocker {
    pub image: String,
    pub args: Vec<String>,
    /// Main stage entrypoint (`runs.entrypoint`, else `with.entrypoint`).
    pub entrypoint: Option<String>,
    pub runs_env: IndexMap<String, String>,
    /// `(pre-entrypoint, pre-if)`, `(post-entrypoint, post-if)`.
    pub pre: Option<(String, String)>,
    pub post: Option<(String, String)>,
}

impl StepRunner<'_> {
    /// `--offline`: an image that is not in the daemon is an error, not a pull.
    fn offline(&self) -> bool {
        self.shared.cfg.resolver.config().offline
    }

    async fn docker_client(&self) -> Result<crate::backend::docker::Daemon, String> {
        let backend = self
            .shared
            .backends
            .images()
            .await
            .map_err(|e| e.to_string())?;
        backend
            .image_daemon()
            .ok_or_else(|| format!("the '{}' backend has no image daemon", backend.name()))
    }

    /// Builds or finds the image and evaluates `args`, `env` and the entrypoints.
    pub(super) async fn prepare_docker_action(
        &self,
        i: usize,
        action: &Action,
        call: &ActionInstance,
        with: &IndexMap<String, String>,
        ctx: &Ctx,
        state: &JobState,
    ) -> Result<PreparedDocker, String> {
        let ActionRuns::Docker {
            image,
            env,
            entrypoint,
            args,
            pre_entrypoint,
            pre_if,
            post_entrypoint,
            post_if,
        } = &action.runs
        else {
            return Err("not a Docker action".into());
        };
        let mut c = ctx.clone();
        c.set(
            "inputs",
            crate::github_contexts::string_map_value(call.inputs.iter()),
        );
        let eval = |s: &str| c.eval_string(s).map_err(|e| e.to_string());
        let runs_args: Vec<String> = args.iter().map(|a| a.value.clone()).collect();
        let args = docker_action::assemble_args(&runs_args, with_key(with, "args"), eval)
            .map_err(|e| format!("runs.args: {e}"))?;
        let mut runs_env = IndexMap::new();
        for (k, v) in env {
            let val = c
                .eval_string(&v.value)
                .map_err(|e| format!("runs.env.{k}: {e}"))?;
            runs_env.insert(k.clone(), val);
        }
        let mut source = docker_action::image_source(image);
        if let docker_action::ImageSource::Image(img) = &mut source {
            *img = self.shared.cfg.local_image(img);
        }
        let docker = self.docker_client().await?;
        let (tag, logs) =
            docker_action::ensure_image(&docker, &source, &call.dir_host, self.offline())
                .await
                .map_err(|e| format!("image '{image}': {e}"))?;
        for l in logs {
            self.log(i, &state.masker, &l);
        }
        Ok(PreparedDocker {
            image: tag,
            args,
            entrypoint: entrypoint
                .clone()
                .filter(|e| !e.trim().is_empty())
                .or_else(|| with_key(with, "entrypoint").map(str::to_string)),
            runs_env,
            pre: pre_entrypoint.clone().map(|p| (p, cond_or_always(pre_if))),
            post: post_entrypoint
                .clone()
                .map(|p| (p, cond_or_always(post_if))),
        })
    }

    pub(super) fn register_docker_post(
        &self,
        i: usize,
        display: &str,
        call: &ActionInstance,
        prepared: &PreparedDocker,
        state: &mut JobState,
    ) {
        if let Some((entrypoint, cond)) = &prepared.post {
            state.post.push(PostEntry {
                step: i,
                display_name: format!("Post {display}"),
                condition: cond.clone(),
                kind: PostKind::Docker {
                    action: call.clone(),
                    image: prepared.image.clone(),
                    entrypoint: entrypoint.clone(),
                    args: prepared.args.clone(),
                    runs_env: prepared.runs_env.clone(),
                },
            });
        }
    }

    /// `uses: docker://image`: the image with `with.args` / `with.entrypoint`.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run_docker_image_step(
        &self,
        i: usize,
        step: &Step,
        uses: &Spanned<String>,
        image: &str,
        mut call: ActionInstance,
        with: &IndexMap<String, String>,
        ctx: &mut Ctx,
        state: &mut JobState,
    ) -> (Status, IndexMap<String, String>) {
        let timeout = match eval_number(&step.timeout_minutes, ctx) {
            Ok(t) => t,
            Err(e) => return self.uses_error(i, uses, state, &format!("timeout-minutes: {e}")),
        };
        call.inputs = with
            .iter()
            .filter(|(k, _)| {
                !k.eq_ignore_ascii_case("args") && !k.eq_ignore_ascii_case("entrypoint")
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let prepared = async {
            let docker = self.docker_client().await?;
            let source = docker_action::ImageSource::Image(self.shared.cfg.local_image(image));
            let (tag, logs) =
                docker_action::ensure_image(&docker, &source, Path::new("."), self.offline())
                    .await
                    .map_err(|e| format!("image '{image}': {e}"))?;
            Ok::<_, String>((tag, logs))
        }
        .await;
        let (tag, logs) = match prepared {
            Ok(x) => x,
            Err(e) => return self.uses_error(i, uses, state, &e),
        };
        for l in logs {
            self.log(i, &state.masker, &l);
        }
        let prepared = PreparedDocker {
            image: tag,
            args: with_key(with, "args")
                .map(docker_action::split_args)
                .unwrap_or_default(),
            entrypoint: with_key(with, "entrypoint").map(str::to_string),
            runs_env: IndexMap::new(),
            pre: None,
            post: None,
        };
        let control = StageControl {
            allow_unsecure: super::allow_unsecure(&state.env_ctx),
            timeout,
            cancel_if: Some(step.if_cond.as_ref().map(|c| c.value.as_str())),
            label: uses.value.clone(),
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
        (out.outcome, out.outputs)
    }

    /// A job-view path (`GITHUB_*`/`RUNNER_*` values) back to the host path it stands for.
    fn view_to_host(&self, v: &str) -> String {
        let paths = self.env.paths();
        let map: [(&str, std::path::PathBuf); 3] = [
            (&self.workspace_view, self.workspace_host.clone()),
            (&paths.temp, self.temp_host.clone()),
            ("/github/workflow", self.temp_host.join("_github_workflow")),
        ];
        for (view, host) in map {
            if view.is_empty() {
                continue;
            }
            if v == view {
                return host.display().to_string();
            }
            if let Some(rest) = v.strip_prefix(view).and_then(|r| r.strip_prefix('/')) {
                return host.join(rest).display().to_string();
            }
        }
        v.to_string()
    }

    /// Runs one stage of a Docker action (`entrypoint` = this stage's) in a new container.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run_docker_stage(
        &self,
        i: usize,
        call: &ActionInstance,
        prepared: &PreparedDocker,
        entrypoint: Option<String>,
        control: StageControl<'_>,
        ctx: &Ctx,
        state: &mut JobState,
    ) -> StageOutcome {
        let files = match FileCommandFiles::create(self.leftovers.pool(), &self.temp_host) {
            Ok(f) => f,
            Err(e) => {
                self.log(
                    i,
                    &state.masker,
                    &format!("Error: cannot create the file-command files: {e}"),
                );
                return StageOutcome {
                    outcome: Status::Failure,
                    outputs: IndexMap::new(),
                    state: Vec::new(),
                };
            }
        };
        let docker = match self.docker_client().await {
            Ok(d) => d,
            Err(e) => {
                self.log(i, &state.masker, &format!("Error: {e}"));
                files.remove(self.leftovers.pool());
                return StageOutcome {
                    outcome: Status::Failure,
                    outputs: IndexMap::new(),
                    state: Vec::new(),
                };
            }
        };
        // The environment with host paths; `assemble` translates them to /github/*.
        let mut env = IndexMap::new();
        env.extend(state.env_ctx.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.extend(state.scope_env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.extend(call.step_env.iter().map(|(k, v)| (k.clone(), v.clone())));
        for (k, v) in &self.default_env {
            if k == "CI" && env.contains_key("CI") {
                continue;
            }
            let v = if k.starts_with("GITHUB_") || k.starts_with("RUNNER_") {
                self.view_to_host(v)
            } else {
                v.clone()
            };
            env.insert(k.clone(), v);
        }
        env.insert("GITHUB_ACTION".into(), call.action_name.clone());
        if !call.repository.is_empty() {
            env.insert("GITHUB_ACTION_REPOSITORY".into(), call.repository.clone());
            env.insert("GITHUB_ACTION_REF".into(), call.git_ref.clone());
        }
        for (var, p) in files.env_vars(|p| p.display().to_string()) {
            env.insert(var.to_string(), p);
        }
        for (k, v) in crate::actions::node::state_env(&state.post.state(call.instance)) {
            env.insert(k, v);
        }
        for (k, v) in &call.inputs {
            env.insert(crate::actions::input_env_name(k), v.clone());
        }
        let paths = DockerActionPaths {
            workspace: self.workspace_host.clone(),
            temp: self.temp_host.clone(),
        };
        // In a container job the action joins the job's network (services by name).
        let network = self
            .env
            .container()
            .map(|c| c.network)
            .filter(|n| !n.is_empty());
        let spec = docker_action::assemble(
            &prepared.image,
            entrypoint,
            prepared.args.clone(),
            &env,
            &prepared.runs_env,
            &paths,
            network,
        );
        self.run_stage_process(i, files, control, ctx, state, |tx, cancel| async move {
            docker.run_container(&spec, tx, cancel).await
        })
        .await
    }
}

/// A `with` value by case-insensitive key.
fn with_key<'a>(with: &'a IndexMap<String, String>, key: &str) -> Option<&'a str> {
    with.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}
