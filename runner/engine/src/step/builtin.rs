//! Gantry's built-in actions run from a workflow step (`actions/checkout`, artifacts,
//! cache, `setup-*`, `docker/*`, Slack): `with:` over the built-in's `action.yml` defaults,
//! then the result is applied the way file commands are (§5.3): outputs, `GITHUB_ENV`,
//! `GITHUB_PATH`, masks, summary. A built-in that asks for a post stage (`actions/cache`
//! saving) gets one on the job's post stack.

use indexmap::IndexMap;

use super::{JobState, StepRunner};
use crate::actions::builtin::{self, ActionEnv, ActionResult, GithubFacts};
use crate::envfile;
use crate::events::{RunEvent, Status};
use crate::expr_scope::Ctx;

impl StepRunner<'_> {
    /// What a built-in sees of the job, with `step_env` as the step's own env.
    pub(super) fn builtin_env(
        &self,
        step_env: &IndexMap<String, String>,
        state: &JobState,
    ) -> ActionEnv<'_> {
        // The environment the step's process would see (§5.2), for tools on PATH and
        // variables such as SLACK_WEBHOOK_URL.
        let mut env = self.base_env.clone();
        env.extend(state.env_ctx.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.extend(state.scope_env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.extend(step_env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.extend(self.default_env.iter().map(|(k, v)| (k.clone(), v.clone())));
        if !state.path_prepend.is_empty() {
            let orig = env.get("PATH").cloned().unwrap_or_default();
            env.insert(
                "PATH".into(),
                envfile::build_path(&state.path_prepend, &orig),
            );
        }
        let root = &self.shared.cfg.root;
        ActionEnv {
            workspace: self.workspace_host.clone(),
            repo_root: root.clone(),
            run_dir: root
                .join(".gantry")
                .join("runs")
                .join(&self.shared.facts.run_id),
            cache_dir: root.join(".gantry").join("cache"),
            job: Some(self.env),
            sharing: self.sharing,
            github: GithubFacts::from_json(&state.github_value.to_json()),
            env,
            job_status: state.status.as_str().to_string(),
            offline: self.shared.cfg.resolver.config().offline,
        }
    }

    /// Applies a built-in's result to the job: masks, logs, env, path, summary.
    pub(super) fn apply_builtin_result(
        &self,
        i: usize,
        res: ActionResult,
        state: &mut JobState,
    ) -> IndexMap<String, String> {
        for m in &res.masks {
            state.masker.add(m);
        }
        for line in &res.logs {
            self.log(i, &state.masker, line);
        }
        for w in &res.warnings {
            self.log(i, &state.masker, &format!("Warning: {w}"));
        }
        for (k, v) in res.env {
            state.env_ctx.insert(k, v);
        }
        envfile::add_path_entries(&mut state.path_prepend, res.path);
        if let Some(md) = res.summary.filter(|s| !s.trim().is_empty()) {
            let masked = state.masker.mask(&md).into_owned();
            self.shared.bus.emit(RunEvent::StepSummary {
                job: self.key.clone(),
                step: i,
                markdown: masked,
            });
        }
        res.outputs
    }

    /// Runs the built-in `name` (lower-case `owner/repo[/path]`) as step `i`. `Err` holds
    /// the real action to run instead ([`ActionResult::fallback`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run_builtin_step(
        &self,
        i: usize,
        name: &str,
        display: &str,
        with: &IndexMap<String, String>,
        step_env: &IndexMap<String, String>,
        ctx: &Ctx,
        state: &mut JobState,
    ) -> Result<(Status, IndexMap<String, String>), String> {
        let aenv = self.builtin_env(step_env, state);
        let cancel_step = state.stop_step.clone().unwrap_or_default();
        let result = tokio::select! {
            r = builtin::run_builtin(
                name,
                with,
                |d| ctx.eval_string(d).map_err(|e| e.to_string()),
                &aenv,
            ) => r,
            // Past `cancel-timeout-minutes`: the built-in's work is dropped (a Docker build
            // ends with its connection).
            _ = self.stop_now.cancelled() => {
                self.log(i, &state.masker, "Error: The operation was canceled.");
                return Ok((Status::Cancelled, IndexMap::new()));
            }
            _ = cancel_step.cancelled() => {
                self.log(i, &state.masker, "Error: The operation was canceled.");
                return Ok((Status::Cancelled, IndexMap::new()));
            }
        };
        drop(aenv);
        let (inputs, res) = match result {
            Ok(x) => x,
            Err(e) => {
                self.log(i, &state.masker, &format!("Error: {name}: {e}"));
                return Ok((Status::Failure, IndexMap::new()));
            }
        };
        if let Some(real) = res.fallback.clone() {
            for line in &res.logs {
                self.log(i, &state.masker, line);
            }
            return Err(real);
        }
        let mut env = state.scope_env.clone();
        env.extend(step_env.iter().map(|(k, v)| (k.clone(), v.clone())));
        state
            .post
            .register_builtin(i, display, name, &inputs, &res, &env);
        Ok((Status::Success, self.apply_builtin_result(i, res, state)))
    }
}
