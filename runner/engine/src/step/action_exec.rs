//! One process of an action stage (a JavaScript action's `node`, a Docker action's
//! container): fresh file-command files, streaming output through the same pipe as `run`
//! steps (masking, workflow commands), step timeout and job cancellation, then the file
//! commands (§5.3) including `GITHUB_STATE`.

use std::future::Future;
use std::task::Poll;
use std::time::Duration;

use indexmap::IndexMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{JobState, OutputEffects, OutputPipe, StepRunner};
use crate::backend::{ExitStatus, Output};
use crate::commands::CommandProcessor;
use crate::envfile::{self, FileCommandFiles, StepSummary};
use crate::events::{RunEvent, Status, Stream};
use crate::expr_scope::{Ctx, StatusMode};
use crate::job::job_value;

/// How a stage process is supervised.
pub(super) struct StageControl<'c> {
    /// `ACTIONS_ALLOW_UNSECURE_COMMANDS` was set.
    pub allow_unsecure: bool,
    /// `timeout-minutes` of the step (main stage only).
    pub timeout: Option<f64>,
    /// The step's `if`, re-evaluated when the job is cancelled (main stage); `None` keeps
    /// the process running (pre and post stages finish their work).
    pub cancel_if: Option<Option<&'c str>>,
    /// For the timeout message.
    pub label: String,
}

/// What a stage produced.
pub(super) struct StageOutcome {
    pub outcome: Status,
    pub outputs: IndexMap<String, String>,
    /// `GITHUB_STATE` writes and `::save-state` commands.
    pub state: Vec<(String, String)>,
}

impl StepRunner<'_> {
    /// Runs `launch(output, cancel)` as step `i`'s process; `files` were handed to it.
    pub(super) async fn run_stage_process<F, Fut>(
        &self,
        i: usize,
        files: FileCommandFiles,
        control: StageControl<'_>,
        ctx: &Ctx,
        state: &mut JobState,
        launch: F,
    ) -> StageOutcome
    where
        F: FnOnce(mpsc::Sender<Output>, CancellationToken) -> Fut,
        Fut: Future<Output = crate::backend::BackendResult<ExitStatus>>,
    {
        let mut pipe = OutputPipe {
            bus: self.shared.bus.clone(),
            key: self.key.clone(),
            step: i,
            masker: state.masker.clone(),
            processor: CommandProcessor::new(control.allow_unsecure, false),
            bufs: [Vec::new(), Vec::new()],
            batch: String::new(),
            batch_stream: Stream::Stdout,
            effects: OutputEffects::default(),
        };
        let (tx, mut rx) = mpsc::channel::<Output>(64);
        let step_cancel = CancellationToken::new();
        // A `cancel` step naming this background step (never fires for other steps).
        let cancel_step = state.stop_step.clone().unwrap_or_default();
        let exec = launch(tx, step_cancel.clone());
        let timeout = control.timeout.filter(|m| m.is_finite() && *m > 0.0);
        let mut timed_out = false;
        let supervise = async {
            tokio::pin!(exec);
            // The first poll starts the process; the last step's leftovers are recycled
            // while it runs rather than between the two processes.
            let started = std::future::poll_fn(|cx| match exec.as_mut().poll(cx) {
                Poll::Ready(r) => Poll::Ready(Some(r)),
                Poll::Pending => Poll::Ready(None),
            })
            .await;
            self.leftovers.recycle();
            if let Some(r) = started {
                return r;
            }
            // A timeout too large for a duration (1e300 minutes) is none, not a panic.
            let sleep = tokio::time::sleep(
                timeout
                    .and_then(|m| Duration::try_from_secs_f64(m * 60.0).ok())
                    .unwrap_or(Duration::from_secs(u32::MAX as u64)),
            );
            tokio::pin!(sleep);
            let mut job_cancel_seen = control.cancel_if.is_none();
            let mut stopped = false;
            loop {
                tokio::select! {
                    r = &mut exec => break r,
                    // Past `cancel-timeout-minutes`, `always()` steps and post stages too.
                    _ = self.stop_now.cancelled(), if !stopped => {
                        stopped = true;
                        step_cancel.cancel();
                    }
                    _ = cancel_step.cancelled(), if !stopped => {
                        stopped = true;
                        step_cancel.cancel();
                    }
                    _ = self.cancel.cancelled(), if !job_cancel_seen => {
                        job_cancel_seen = true;
                        let mut c2 = ctx.clone();
                        c2.status = StatusMode::Step(Status::Cancelled);
                        c2.set("job", job_value(Status::Cancelled, self.env));
                        let keep = c2
                            .eval_if(control.cancel_if.flatten())
                            .unwrap_or(false);
                        if !keep {
                            step_cancel.cancel();
                        }
                    }
                    _ = &mut sleep, if !timed_out => {
                        timed_out = true;
                        step_cancel.cancel();
                    }
                }
            }
        };
        let consume = async {
            while let Some(o) = rx.recv().await {
                match o {
                    Output::Stdout(b) => pipe.chunk(Stream::Stdout, &b),
                    Output::Stderr(b) => pipe.chunk(Stream::Stderr, &b),
                }
            }
            pipe.finish();
        };
        // The process first: when it ends, its output channel closes and `consume` sees the
        // end in the same poll. In the other order the task wakes itself and yields, and an
        // idle worker is woken to steal it (a futex wake and a move to the other CPU on
        // every step).
        let (res, ()) = tokio::join!(biased; supervise, consume);
        let OutputPipe {
            masker, effects, ..
        } = pipe;
        state.masker = masker;
        let mut outcome = match res {
            Ok(ExitStatus::Code(0)) => Status::Success,
            Ok(ExitStatus::Code(n)) => {
                self.log(
                    i,
                    &state.masker,
                    &format!("Error: Process completed with exit code {n}."),
                );
                Status::Failure
            }
            Ok(ExitStatus::Cancelled) if timed_out => {
                self.log(
                    i,
                    &state.masker,
                    &format!(
                        "Error: The action '{}' has timed out after {} minutes.",
                        control.label,
                        gantry_expr::format_number(timeout.unwrap_or(0.0))
                    ),
                );
                Status::Failure
            }
            Ok(ExitStatus::Cancelled) => {
                self.log(i, &state.masker, "Error: The operation was canceled.");
                Status::Cancelled
            }
            Err(e) => {
                self.log(i, &state.masker, &format!("Error: {e}"));
                Status::Failure
            }
        };
        if effects.failed && outcome == Status::Success {
            outcome = Status::Failure;
        }
        let (outputs, saved, ok) = self.apply_file_commands(i, &files, effects, state);
        if !ok {
            outcome = Status::Failure;
        }
        self.leftovers.files(files);
        StageOutcome {
            outcome,
            outputs,
            state: saved,
        }
    }

    /// Applies workflow-command effects and the file commands of a finished process:
    /// outputs, env, path, state, summary. Returns (outputs, state, no file error).
    pub(super) fn apply_file_commands(
        &self,
        i: usize,
        files: &FileCommandFiles,
        effects: OutputEffects,
        state: &mut JobState,
    ) -> (IndexMap<String, String>, Vec<(String, String)>, bool) {
        let mut ok = true;
        let mut outputs = effects.outputs;
        let mut saved = effects.state;
        for (k, v) in effects.set_env {
            state.env_ctx.insert(k, v);
        }
        envfile::add_path_entries(&mut state.path_prepend, effects.add_path);
        match envfile::read_key_value_file(&files.output) {
            Ok(pairs) => outputs.extend(pairs),
            Err(e) => {
                self.log(i, &state.masker, &format!("Error: GITHUB_OUTPUT: {e}"));
                ok = false;
            }
        }
        match envfile::read_key_value_file(&files.state) {
            Ok(pairs) => saved.extend(pairs),
            Err(e) => {
                self.log(i, &state.masker, &format!("Error: GITHUB_STATE: {e}"));
                ok = false;
            }
        }
        match envfile::read_key_value_file(&files.env) {
            Ok(pairs) => {
                for (k, v) in pairs {
                    if envfile::is_blocked_env_key(&k) {
                        self.shared.bus.emit(RunEvent::Annotation {
                            job: self.key.clone(),
                            step: Some(i),
                            severity: "error".into(),
                            message: format!(
                                "Can't store {k} output parameter using '$GITHUB_ENV' command."
                            ),
                            file: None,
                            line: None,
                            col: None,
                            title: None,
                        });
                        continue;
                    }
                    state.env_ctx.insert(k, v);
                }
            }
            Err(e) => {
                self.log(i, &state.masker, &format!("Error: GITHUB_ENV: {e}"));
                ok = false;
            }
        }
        match envfile::read_path_file(&files.path) {
            Ok(entries) => envfile::add_path_entries(&mut state.path_prepend, entries),
            Err(e) => self.log(i, &state.masker, &format!("Error: GITHUB_PATH: {e}")),
        }
        let m = state.masker.clone();
        match envfile::read_step_summary(&files.summary, |l| m.mask(l)) {
            Ok(StepSummary::Markdown(md)) => self.shared.bus.emit(RunEvent::StepSummary {
                job: self.key.clone(),
                step: i,
                markdown: md,
            }),
            Ok(StepSummary::TooLarge { message }) => {
                self.log(i, &state.masker, &format!("Error: {message}"))
            }
            _ => {}
        }
        (outputs, saved, ok)
    }
}
