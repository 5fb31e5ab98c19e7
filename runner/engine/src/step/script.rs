//! A `run:` step: its `github` context, process environment, shell and script file,
//! working directory, then the process through the same stage runner as an action's.

use gantry_expr::{Object, Value};
use gantry_workflow::Step;
use indexmap::IndexMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{JobState, StepRunner, action_exec, allow_unsecure};
use crate::backend::{ExecSpec, ExitStatus, Output};
use crate::envfile::FileCommandFiles;
use crate::events::Status;
use crate::expr_scope::Ctx;
use crate::job::{at, eval_number, join_view};
use crate::shell::Shell;

impl StepRunner<'_> {
    pub(super) async fn run_script(
        &self,
        i: usize,
        step: &Step,
        run: &gantry_workflow::Spanned<String>,
        step_env: &IndexMap<String, String>,
        ctx: &mut Ctx,
        state: &mut JobState,
    ) -> (Status, IndexMap<String, String>) {
        let fail = |this: &Self, state: &JobState, msg: String| {
            this.log(i, &state.masker, &format!("Error: {msg}"));
            (Status::Failure, IndexMap::new())
        };
        // Fresh file-command files.
        let files = match self.leftovers.take_files().map_or_else(
            || FileCommandFiles::create(self.leftovers.pool(), &self.temp_host),
            Ok,
        ) {
            Ok(f) => f,
            Err(e) => {
                return fail(
                    self,
                    state,
                    format!("cannot create the file-command files: {e}"),
                );
            }
        };
        let file_vars = files.env_vars(|p| self.env.to_job_path(p));
        let action_name = step
            .id
            .as_ref()
            .map(|s| s.value.clone())
            .unwrap_or_else(|| format!("__run_{i}"));
        set_step_github(ctx, state, &action_name, &file_vars);

        let script = match ctx.eval_string(&run.value) {
            Ok(s) => s,
            Err(e) => return fail(self, state, at(run, &e.to_string())),
        };
        let mut penv = self.process_env(state, step_env, &action_name, &file_vars);
        if let Some(ap) = &state.action_path {
            penv.insert("GITHUB_ACTION_PATH".into(), ap.clone());
        }
        let path = self.step_path(&mut penv, state);
        let (sh, program) = match self.script_shell(step, ctx, &path).await {
            Ok(s) => s,
            Err(e) => return fail(self, state, e),
        };
        let ready = self.leftovers.take_script(&self.temp_host, sh.extension);
        let script_path =
            match sh.write_script(self.leftovers.pool(), &self.temp_host, &script, ready) {
                Ok(p) => p,
                Err(e) => return fail(self, state, format!("cannot write the script: {e}")),
            };
        let argv = sh.argv(&program, &self.env.to_job_path(&script_path));
        let workdir = match self.working_directory(step, ctx) {
            Ok(w) => w,
            Err(e) => return fail(self, state, e),
        };
        let timeout = match eval_number(&step.timeout_minutes, ctx) {
            Ok(t) => t.filter(|m| m.is_finite() && *m > 0.0),
            Err(e) => return fail(self, state, format!("timeout-minutes: {e}")),
        };
        // The process runs like an action stage: streaming output through the pipe,
        // timeout and cancellation (the step's `if` re-evaluated), then file commands.
        let control = action_exec::StageControl {
            allow_unsecure: allow_unsecure(&penv),
            timeout,
            cancel_if: Some(step.if_cond.as_ref().map(|c| c.value.as_str())),
            label: step
                .name
                .as_ref()
                .map_or_else(|| "run".to_string(), |n| n.value.clone()),
        };
        let spec = ExecSpec {
            argv,
            env: penv,
            workdir,
        };
        let out = self
            .run_stage_process(i, files, control, ctx, state, |tx, cancel| {
                self.env.exec(spec, tx, cancel, self.kill)
            })
            .await;
        self.leftovers.script(&self.temp_host, script_path);
        (out.outcome, out.outputs)
    }

    /// The step's shell (its `shell:`, the job's or workflow's default, else bash when
    /// there is one, else sh) and the program to start it with: found on this machine's
    /// `PATH`, or left to the environment's own `PATH` when its programs are not this
    /// machine's (whether it has bash is asked once per job).
    async fn script_shell(
        &self,
        step: &Step,
        ctx: &Ctx,
        path: &str,
    ) -> Result<(Shell, String), String> {
        let shell_name = step
            .shell
            .as_ref()
            .or(self.job.defaults.shell.as_ref())
            .or(self.workflow.defaults.shell.as_ref())
            .map(|s| ctx.eval_string(&s.value))
            .transpose()
            .map_err(|e| format!("shell: {e}"))?;
        if !self.sharing.runner_programs && shell_name.is_none() && self.bash_cache.get().is_none()
        {
            let (tx, mut rx) = mpsc::channel::<Output>(4);
            let probe = ExecSpec {
                argv: vec!["sh".into(), "-c".into(), "command -v bash".into()],
                env: IndexMap::new(),
                workdir: "/".into(),
            };
            let drain = async { while rx.recv().await.is_some() {} };
            let (r, ()) = tokio::join!(
                self.env
                    .exec(probe, tx, CancellationToken::new(), self.kill),
                drain
            );
            let _ = self.bash_cache.set(matches!(r, Ok(ExitStatus::Code(0))));
        }
        let sh = Shell::resolve(
            shell_name.as_deref(),
            shell_name.is_some() || self.bash_available(path),
        )
        .map_err(|e| e.to_string())?;
        let program = if !self.sharing.runner_programs {
            sh.program.clone()
        } else {
            match self.which(&sh.program, path) {
                Some(p) => p.display().to_string(),
                None => {
                    return Err(format!(
                        "{}: command not found (shell '{}')",
                        sh.program, sh.program
                    ));
                }
            }
        };
        Ok((sh, program))
    }

    /// `working-directory` (the step's, else the defaults') in the job's view. A missing
    /// directory is reported by the backend when the process cannot start there (no `stat`
    /// before every step).
    fn working_directory(&self, step: &Step, ctx: &Ctx) -> Result<String, String> {
        let wd = step
            .working_directory
            .as_ref()
            .or(self.job.defaults.working_directory.as_ref())
            .or(self.workflow.defaults.working_directory.as_ref());
        let wd = match wd {
            Some(w) => ctx
                .eval_string(&w.value)
                .map_err(|e| at(w, &e.to_string()))?,
            None => String::new(),
        };
        Ok(join_view(&self.workspace_view, &wd))
    }
}

/// The `github` context of one step: the job's, with `action`, `action_path` and the
/// file-command paths (`output`, `env`, `path`, `state`, `step_summary`) set.
fn set_step_github(
    ctx: &mut Ctx,
    state: &JobState,
    action_name: &str,
    file_vars: &[(&'static str, String)],
) {
    // Clone the job's github object (values are shared) and set the step fields.
    let mut o = match &state.github_value {
        Value::Object(o) => (**o).clone(),
        _ => Object::new(),
    };
    o.insert("action", Value::string(action_name));
    if let Some(ap) = &state.action_path {
        o.insert("action_path", Value::string(ap));
    }
    for (var, p) in file_vars {
        let k = match *var {
            "GITHUB_OUTPUT" => "output",
            "GITHUB_ENV" => "env",
            "GITHUB_PATH" => "path",
            "GITHUB_STATE" => "state",
            _ => "step_summary",
        };
        o.insert(k, Value::string(p));
    }
    ctx.set("github", Value::object(o));
}
