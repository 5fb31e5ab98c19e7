//! Running the steps of a job: `if` (§3.10, step-level status functions), env layering
//! (§5.2), shells and scripts (§5.1), fresh file-command files per step (§5.3), workflow
//! commands and masking on the output (§5.4, §5.5), outcome versus conclusion with
//! `continue-on-error`, step timeouts and job cancellation (§5.6).

use std::sync::Arc;
use std::time::Instant;

use gantry_expr::{Object, Value};
use gantry_workflow::{Job, Step, Workflow};
use indexmap::IndexMap;
use tokio_util::sync::CancellationToken;

mod action_exec;
pub mod background;
mod builtin;
mod docker_step;
mod node_step;
mod parallel;
mod script;
mod stages;
mod uses;

use crate::backend::{JobEnv, KillPolicy};
use crate::commands::{Command, CommandProcessor, LineAction};
use crate::envfile;
use crate::events::{EventBus, RunEvent, Status, Stream, Text, millis};
use crate::expr_scope::{Ctx, StatusMode};
use crate::github_contexts as context;
use crate::job::{at, eval_bool, eval_string_map, job_value, runner_log};
use crate::run::RunShared;
use crate::shared_masker::Masker;
use crate::shell;

/// PATH inside containers when the job prepends entries (the image's own PATH is not known
/// to the engine).
const CONTAINER_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Mutable job state carried from step to step.
/// A step that may have a pre stage: its workflow step index and, for a member of a
/// `parallel:` group, its index in the group.
pub type PreKey = (usize, Option<usize>);

#[derive(Clone)]
pub struct JobState {
    /// `env` context below the step's own env: workflow, job, then `GITHUB_ENV` writes.
    pub env_ctx: IndexMap<String, String>,
    /// `GITHUB_PATH` entries, oldest first.
    pub path_prepend: Vec<String>,
    /// `steps` context.
    pub steps: Object,
    /// `job.status`.
    pub status: Status,
    pub masker: Masker,
    /// The job's `github` context (step fields are set on a copy per step).
    pub github_value: Value,
    /// Inside a composite action: the calling step's env (and enclosing ones).
    pub scope_env: IndexMap<String, String>,
    /// Inside a composite action: the index of the workflow step running it (inner steps
    /// log under it and emit no step events).
    pub nest: Option<usize>,
    /// Inside a composite action: `github.action_path` (job view).
    pub action_path: Option<String>,
    pub depth: usize,
    /// Post stages of actions (run at job end, last registered first) and the state
    /// (`GITHUB_STATE`) of each action instance.
    pub post: crate::actions::PostStack,
    /// Pre stages that ran at job set-up: the step ([`PreKey`]) → action instance.
    pub pre_done: std::collections::HashMap<PreKey, usize>,
    /// In a member of a `parallel:` group: (the group's workflow step index, the member's
    /// index in the group), the member's [`PreKey`].
    pub member: Option<(usize, usize)>,
    /// Steps shown besides the workflow's (pre and post stages), for their event indices.
    pub extra_steps: usize,
    /// The node runtime of container jobs, once found (program and leading arguments).
    pub container_node: Option<Vec<String>>,
    /// `uses:` values that failed to resolve at set-up (reported by their steps, not
    /// fetched twice).
    pub resolve_failed: std::collections::HashMap<String, crate::actions::ResolveError>,
    /// The conclusion of the last step that ended (a `parallel:` group's members report
    /// theirs through it).
    pub last_conclusion: Status,
    /// In a background step: fired by a `cancel` step naming it.
    pub stop_step: Option<CancellationToken>,
}

impl JobState {
    pub fn new(env_ctx: IndexMap<String, String>, masker: Masker, github_value: Value) -> Self {
        JobState {
            env_ctx,
            path_prepend: Vec::new(),
            steps: Object::new(),
            status: Status::Success,
            masker,
            github_value,
            scope_env: IndexMap::new(),
            nest: None,
            action_path: None,
            depth: 0,
            post: crate::actions::PostStack::new(),
            pre_done: Default::default(),
            member: None,
            extra_steps: 0,
            container_node: None,
            resolve_failed: Default::default(),
            last_conclusion: Status::Skipped,
            stop_step: None,
        }
    }
}

/// Per-job constants for running steps.
pub struct StepRunner<'a> {
    pub shared: Arc<RunShared>,
    pub key: Text,
    pub env: &'a dyn JobEnv,
    pub job: &'a Job,
    pub workflow: &'a Workflow,
    /// Process environment (host jobs) or empty (container jobs).
    pub base_env: IndexMap<String, String>,
    /// `GITHUB_*` / `RUNNER_*` / `CI` / `HOME` (containers).
    pub default_env: IndexMap<String, String>,
    /// What the job's steps share with this machine (env, programs, files).
    pub sharing: crate::backend::Sharing,
    pub temp_host: std::path::PathBuf,
    pub workspace_view: String,
    pub workspace_host: std::path::PathBuf,
    /// The workflow's own repository at the running commit (`$/` actions resolve here).
    pub repo_root: std::path::PathBuf,
    /// The job's cancellation (a user, a concurrency group, `timeout-minutes`): the
    /// running step's `if` is re-evaluated and only `always()`/`cancelled()` steps go on.
    pub cancel: CancellationToken,
    /// Fired `cancel-timeout-minutes` after `cancel`: the clean-up took too long, so every
    /// process is stopped and no further step or post stage starts.
    pub stop_now: CancellationToken,
    pub kill: KillPolicy,
    pub bash_cache: std::sync::OnceLock<bool>,
    /// The job's slots for steps running beside others (background steps and `parallel:`
    /// members: GitHub's 10 at once in all).
    pub slots: std::sync::Arc<tokio::sync::Semaphore>,
    /// The last step's script and file-command files, recycled once the next process runs.
    pub leftovers: crate::envfile::spare::Leftovers,
}

/// What a step's output produced besides log lines.
#[derive(Default)]
struct OutputEffects {
    outputs: IndexMap<String, String>,
    set_env: Vec<(String, String)>,
    add_path: Vec<String>,
    /// `::save-state` (actions' pre and main stages).
    state: Vec<(String, String)>,
    failed: bool,
}

/// Turns raw output chunks into masked log batches, carrying out workflow commands.
struct OutputPipe {
    bus: EventBus,
    key: Text,
    step: usize,
    masker: Masker,
    processor: CommandProcessor,
    bufs: [Vec<u8>; 2],
    batch: String,
    batch_stream: Stream,
    effects: OutputEffects,
}

impl OutputPipe {
    fn flush(&mut self) {
        if !self.batch.is_empty() {
            let text = std::mem::take(&mut self.batch);
            self.bus.emit(RunEvent::Log {
                job: self.key.clone(),
                step: Some(self.step),
                stream: self.batch_stream,
                text: Text::from(text),
            });
        }
    }

    fn push_text(&mut self, stream: Stream, line: &str) {
        if stream != self.batch_stream {
            self.flush();
            self.batch_stream = stream;
        }
        self.masker.refresh_if_changed();
        let masked = self.masker.mask(line);
        self.batch.push_str(&masked);
        self.batch.push('\n');
    }

    fn line(&mut self, stream: Stream, raw: &[u8]) {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = String::from_utf8_lossy(raw);
        match self.processor.process_line(&line) {
            LineAction::Print => self.push_text(stream, &line),
            LineAction::Run { command, echo } => {
                if let Some(e) = echo {
                    self.push_text(stream, &e);
                }
                self.command(command);
            }
            LineAction::Failed { error, echo } => {
                if let Some(e) = echo {
                    self.push_text(stream, &e);
                }
                let msg = format!(
                    "Error: Unable to process command '{}' successfully.\nError: {error}",
                    line.trim()
                );
                for l in msg.lines() {
                    self.push_text(Stream::Runner, l);
                }
                self.effects.failed = true;
            }
        }
    }

    fn command(&mut self, c: Command) {
        match c {
            Command::AddMask(v) => {
                self.masker.add(&v);
            }
            Command::Debug(_) => {}
            Command::Annotation(sev, a) => {
                self.flush();
                let severity = format!("{sev:?}").to_ascii_lowercase();
                self.bus.emit(RunEvent::Annotation {
                    job: self.key.clone(),
                    step: Some(self.step),
                    severity,
                    message: self.masker.mask(&a.message).into_owned(),
                    file: a.file.clone(),
                    line: a.line,
                    col: a.col,
                    title: a.title.as_ref().map(|t| self.masker.mask(t).into_owned()),
                });
            }
            Command::Group(title) => {
                self.flush();
                self.bus.emit(RunEvent::GroupStarted {
                    job: self.key.clone(),
                    step: self.step,
                    title: self.masker.mask(&title).into_owned(),
                });
            }
            Command::EndGroup => {
                self.flush();
                self.bus.emit(RunEvent::GroupEnded {
                    job: self.key.clone(),
                    step: self.step,
                });
            }
            Command::StopCommands(token) if token.len() > 6 => {
                self.masker.add(&token);
            }
            Command::SetOutput { name, value } => {
                self.effects.outputs.insert(name, value);
            }
            Command::SetEnv { name, value } => self.effects.set_env.push((name, value)),
            Command::AddPath(p) => self.effects.add_path.push(p),
            Command::SaveState { name, value } => self.effects.state.push((name, value)),
            _ => {}
        }
    }

    fn chunk(&mut self, stream: Stream, data: &[u8]) {
        let idx = if stream == Stream::Stderr { 1 } else { 0 };
        let mut buf = std::mem::take(&mut self.bufs[idx]);
        let mut start = 0;
        if buf.is_empty() {
            // Fast path: process complete lines straight from the chunk.
            for nl in memchr::memchr_iter(b'\n', data) {
                self.line(stream, &data[start..nl]);
                start = nl + 1;
            }
            buf.extend_from_slice(&data[start..]);
        } else {
            buf.extend_from_slice(data);
            let mut consumed = 0;
            let owned = std::mem::take(&mut buf);
            for nl in memchr::memchr_iter(b'\n', &owned) {
                self.line(stream, &owned[consumed..nl]);
                consumed = nl + 1;
            }
            buf = owned[consumed..].to_vec();
        }
        // A very long unterminated line is logged as is.
        if buf.len() > 1 << 20 {
            let b = std::mem::take(&mut buf);
            self.line(stream, &b);
        }
        self.bufs[idx] = buf;
        self.flush();
    }

    fn finish(&mut self) {
        for (idx, stream) in [(0, Stream::Stdout), (1, Stream::Stderr)] {
            let b = std::mem::take(&mut self.bufs[idx]);
            if !b.is_empty() {
                self.line(stream, &b);
            }
        }
        self.flush();
    }
}

fn allow_unsecure(env: &IndexMap<String, String>) -> bool {
    crate::commands::is_true(
        env.get("ACTIONS_ALLOW_UNSECURE_COMMANDS")
            .map(|s| s.as_str()),
    )
}

impl StepRunner<'_> {
    fn log(&self, step: usize, masker: &Masker, text: &str) {
        runner_log(
            &self.shared,
            &self.key,
            Some(step),
            masker.mask(text).into_owned(),
        );
    }

    fn bash_available(&self, path: &str) -> bool {
        if !self.sharing.runner_programs {
            return self.bash_cache.get().copied().unwrap_or(true);
        }
        self.which("bash", path).is_some()
    }

    /// The step's `PATH`: `GITHUB_PATH` additions before the environment's own. An
    /// environment that keeps its own variables (an image's) gets `PATH` set only when
    /// something was added, so the image's value stays otherwise.
    fn step_path(&self, penv: &mut IndexMap<String, String>, state: &JobState) -> String {
        let orig_path = penv.get("PATH").cloned().unwrap_or_else(|| {
            if self.sharing.runner_env {
                String::new()
            } else {
                CONTAINER_PATH.into()
            }
        });
        let path = envfile::build_path(&state.path_prepend, &orig_path);
        if !state.path_prepend.is_empty() || self.sharing.runner_env {
            penv.insert("PATH".into(), path.clone());
        }
        path
    }

    /// A step process's environment (GHA-SEMANTICS §5.2): the job environment's base, the
    /// `env` context, the enclosing composite steps' env, the step's own, the runner's
    /// defaults (`CI` kept when the workflow set it), `GITHUB_ACTION` and the file-command
    /// paths. The caller adds what its kind of step has (action path, inputs, state).
    fn process_env(
        &self,
        state: &JobState,
        step_env: &IndexMap<String, String>,
        action_name: &str,
        file_vars: &[(&'static str, String)],
    ) -> IndexMap<String, String> {
        let mut penv = self.base_env.clone();
        for (k, v) in state
            .env_ctx
            .iter()
            .chain(state.scope_env.iter())
            .chain(step_env.iter())
        {
            penv.insert(k.clone(), v.clone());
        }
        for (k, v) in &self.default_env {
            if k == "CI" && penv.contains_key("CI") {
                continue;
            }
            penv.insert(k.clone(), v.clone());
        }
        penv.insert("GITHUB_ACTION".into(), action_name.to_string());
        for (var, p) in file_vars {
            penv.insert(var.to_string(), p.clone());
        }
        penv
    }

    fn which(&self, program: &str, path: &str) -> Option<std::path::PathBuf> {
        self.shared.programs.which(program, path)
    }

    /// [`StepRunner::run_step`] behind a box (composite actions recurse through it).
    pub fn run_step_boxed<'b>(
        &'b self,
        i: usize,
        step: &'b Step,
        ctx: &'b mut Ctx,
        state: &'b mut JobState,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'b>> {
        Box::pin(self.run_step(i, step, ctx, state))
    }

    fn emit_started(&self, state: &JobState, i: usize, name: &str) {
        self.emit_step(
            state,
            RunEvent::StepStarted {
                job: self.key.clone(),
                step: i,
                name: name.to_string(),
            },
        );
    }

    fn emit_step(&self, state: &JobState, ev: RunEvent) {
        if state.nest.is_none() {
            self.shared.bus.emit(ev);
        }
    }

    /// Runs step `i`, updating `ctx` (`steps`, `env`, `job`) and `state`.
    pub async fn run_step(&self, i: usize, step: &Step, ctx: &mut Ctx, state: &mut JobState) {
        if self.stop_now.is_cancelled() {
            // Past `cancel-timeout-minutes`: nothing starts (composite and parallel members
            // come through here too).
            return;
        }
        if !step.parallel.is_empty() {
            return self.run_parallel(i, step, ctx, state).await;
        }
        let started = Instant::now();
        let i = state.nest.unwrap_or(i);
        ctx.set("steps", Value::object(state.steps.clone()));
        ctx.set("job", job_value(state.status, self.env));
        ctx.status = StatusMode::Step(state.status);

        // Step env (evaluated before `if` so that `if` sees it; errors surface only if the
        // step runs).
        ctx.set("env", context::string_map_value(state.env_ctx.iter()));
        let step_env = eval_string_map(&step.env, ctx);
        let mut env_view = state.env_ctx.clone();
        env_view.extend(state.scope_env.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Ok(se) = &step_env {
            env_view.extend(se.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        ctx.set("env", context::string_map_value(env_view.iter()));

        let name = self.display_name(step, ctx, &state.masker);
        let id = step.id.as_ref().map(|s| s.value.clone());

        let cond = step.if_cond.as_ref().map(|c| c.value.as_str());
        let run_it = match ctx.eval_if(cond) {
            Ok(b) => b,
            Err(e) => {
                self.emit_started(state, i, &name);
                let msg = match &step.if_cond {
                    Some(c) => at(c, &format!("The step's if condition failed: {e}")),
                    None => e.to_string(),
                };
                self.log(i, &state.masker, &format!("Error: {msg}"));
                self.finish(
                    i,
                    &name,
                    id,
                    Status::Failure,
                    false,
                    IndexMap::new(),
                    started,
                    state,
                );
                return;
            }
        };
        if !run_it {
            self.emit_started(state, i, &name);
            state.last_conclusion = Status::Skipped;
            self.record(
                id.as_deref(),
                Status::Skipped,
                Status::Skipped,
                IndexMap::new(),
                state,
            );
            self.emit_step(
                state,
                RunEvent::StepFinished {
                    job: self.key.clone(),
                    step: i,
                    name,
                    outcome: Status::Skipped,
                    conclusion: Status::Skipped,
                    duration_ms: 0,
                },
            );
            return;
        }
        self.emit_started(state, i, &name);
        let coe = match eval_bool(&step.continue_on_error, ctx) {
            Ok(b) => b,
            Err(e) => {
                self.log(i, &state.masker, &format!("Error: continue-on-error: {e}"));
                false
            }
        };
        let step_env = match step_env {
            Ok(e) => e,
            Err(e) => {
                self.log(i, &state.masker, &format!("Error: env: {e}"));
                self.finish(
                    i,
                    &name,
                    id,
                    Status::Failure,
                    coe,
                    IndexMap::new(),
                    started,
                    state,
                );
                return;
            }
        };

        let (outcome, outputs) = if let Some(run) = &step.run {
            self.run_script(i, step, run, &step_env, ctx, state).await
        } else if let Some(uses) = &step.uses {
            self.run_uses(i, step, uses, &step_env, ctx, state).await
        } else {
            self.log(i, &state.masker, "Error: a step needs `run` or `uses`");
            (Status::Failure, IndexMap::new())
        };
        self.finish(i, &name, id, outcome, coe, outputs, started, state);
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        i: usize,
        name: &str,
        id: Option<String>,
        outcome: Status,
        coe: bool,
        outputs: IndexMap<String, String>,
        started: Instant,
        state: &mut JobState,
    ) {
        let conclusion = if outcome == Status::Failure && coe {
            Status::Success
        } else {
            outcome
        };
        if conclusion == Status::Failure && state.status == Status::Success {
            state.status = Status::Failure;
        }
        if outcome == Status::Cancelled && state.status != Status::Failure {
            state.status = Status::Cancelled;
        }
        state.last_conclusion = conclusion;
        self.record(id.as_deref(), outcome, conclusion, outputs, state);
        self.emit_step(
            state,
            RunEvent::StepFinished {
                job: self.key.clone(),
                step: i,
                name: name.to_string(),
                outcome,
                conclusion,
                duration_ms: millis(started.elapsed()),
            },
        );
    }

    fn record(
        &self,
        id: Option<&str>,
        outcome: Status,
        conclusion: Status,
        outputs: IndexMap<String, String>,
        state: &mut JobState,
    ) {
        let Some(id) = id else { return };
        let mut o = Object::new();
        let mut out = Object::new();
        for (k, v) in outputs {
            out.insert(k, Value::string(v));
        }
        o.insert("outputs", Value::object(out));
        o.insert("outcome", Value::string(outcome.as_str()));
        o.insert("conclusion", Value::string(conclusion.as_str()));
        state.steps.insert(id.to_string(), Value::object(o));
    }

    fn display_name(&self, step: &Step, ctx: &Ctx, masker: &Masker) -> String {
        let raw = if let Some(n) = &step.name {
            ctx.eval_string(&n.value)
                .unwrap_or_else(|_| n.value.clone())
        } else if let Some(r) = &step.run {
            shell::run_display_name(&r.value)
        } else if let Some(u) = &step.uses {
            format!("Run {}", u.value)
        } else if let Some(c) = &step.control {
            background::control_display_name(c)
        } else {
            "Run".to_string()
        };
        masker.mask(&raw).into_owned()
    }
}
